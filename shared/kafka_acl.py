"""Who may do what on the broker: each principal's ACLs, as data.

The broker denies whatever no ACL allows (``allow.everyone.if.no.acl.found=false``) and
knows one super user (:data:`shared.kafka_credentials.ADMIN`). Every other principal gets
exactly the grants below: least privilege, checked by the unit tests and applied by
``petitionctl topics ensure`` / ``petitionctl kafka-user add``, ``make up`` and the test
broker (idempotently: a grant that exists is left as it is). Kafka's implications keep the
table short: READ, WRITE and CREATE on a topic or group imply DESCRIBE on it.

* **intake** writes what people submit (petitions, actions, zero reports) and its dead
  letters, reads the lifecycle topics into its read model (group ``petition-intake``), and
  its consumer-lag collector (:mod:`shared.lag`) describes every group it measures and every
  department queue;
* **router** reads submissions and actions (group ``petition-router``), writes routing
  decisions, its dead letters and the department queues, and creates those queues;
* **escalation** reads routed petitions, actions and zero reports (group
  ``petition-escalation``) and writes SLA events, zero-report statuses and its dead letters;
* **watch** reads submissions and routing decisions (group ``petition-watch``), writes
  ``petition.alerts`` (its only writer) and its dead letters, and reads and writes its own
  topics (the observations re-keyed by area, its tables' changelogs);
* **a department** ``dept-<code>`` reads its own queue ``dept.<code>.assignments``, in its
  default group ``dept-<code>`` (the one ``petitionctl queue`` joins and the lag collector
  measures) or any group of its own prefix ``dept.<code>.``; nothing else.

Every producer of the platform is idempotent (IDEMPOTENT_WRITE on the cluster). The faust
workers need nothing beyond their group and topics: the apps declare no topics
(``topic_allow_declare=False``), keep tables in memory (the watch's tables recover from changelogs created with the
other topics) and run without faust's leader topic.
Pure: the standard library and the platform's topic names only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from shared import topics
from shared.codes import is_department_code

__all__ = [
    "CLUSTER",
    "DEPARTMENT_GROUP_PREFIX",
    "DEPARTMENT_TOPIC_PREFIX",
    "SERVICE_GRANTS",
    "Grant",
    "department_grants",
    "department_principal",
    "grants_for",
]

Resource = Literal["topic", "group", "cluster"]
Pattern = Literal["literal", "prefixed"]
Operation = Literal["READ", "WRITE", "CREATE", "DESCRIBE", "IDEMPOTENT_WRITE"]

#: every department queue's name starts so (``dept.<code>.assignments``)
DEPARTMENT_TOPIC_PREFIX = "dept."
#: every department's default consumer group starts so (``dept-<code>``)
DEPARTMENT_GROUP_PREFIX = "dept-"
#: the cluster resource's one name
CLUSTER = "kafka-cluster"


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW rule: `operation` on the `resource` named `name` (or every name starting
    with it, when `pattern` is ``prefixed``), from any host."""

    resource: Resource
    name: str
    operation: Operation
    pattern: Pattern = "literal"


def _topics(operation: Operation, *names: str) -> tuple[Grant, ...]:
    return tuple(Grant("topic", name, operation) for name in names)


_IDEMPOTENT = Grant("cluster", CLUSTER, "IDEMPOTENT_WRITE")

#: the services' grants, by principal (the service's own name)
SERVICE_GRANTS: Mapping[str, tuple[Grant, ...]] = {
    "intake": (
        *_topics("WRITE", topics.PETITION_SUBMITTED, topics.PETITION_ACTIONS, topics.ZERO_REPORT_SUBMITTED,
                 topics.DEAD_LETTER_INTAKE),
        _IDEMPOTENT,
        *_topics("READ", topics.PETITION_ROUTED, topics.PETITION_SLA, topics.ZERO_REPORT_STATUS,
                 topics.PETITION_ALERTS),
        Grant("group", "petition-intake", "READ"),
        # the consumer-lag collector (shared.lag.PLATFORM_GROUPS): the other services' groups,
        # the departments' groups and queues
        Grant("group", "petition-router", "DESCRIBE"),
        Grant("group", "petition-escalation", "DESCRIBE"),
        Grant("group", "petition-watch", "DESCRIBE"),
        Grant("group", DEPARTMENT_GROUP_PREFIX, "DESCRIBE", "prefixed"),
        Grant("topic", DEPARTMENT_TOPIC_PREFIX, "DESCRIBE", "prefixed"),
    ),
    "router": (
        *_topics("READ", topics.PETITION_SUBMITTED, topics.PETITION_ACTIONS, topics.PETITION_ALERTS),
        Grant("group", "petition-router", "READ"),
        *_topics("WRITE", topics.PETITION_ROUTED, topics.DEAD_LETTER_ROUTER),
        _IDEMPOTENT,
        # the department queues: created at start-up and on first work, then written
        *(Grant("topic", DEPARTMENT_TOPIC_PREFIX, op, "prefixed") for op in ("WRITE", "CREATE", "DESCRIBE")),
    ),
    "escalation": (
        *_topics("READ", topics.PETITION_ROUTED, topics.PETITION_ACTIONS, topics.ZERO_REPORT_SUBMITTED),
        Grant("group", "petition-escalation", "READ"),
        *_topics("WRITE", topics.PETITION_SLA, topics.ZERO_REPORT_STATUS, topics.DEAD_LETTER_ESCALATION),
        _IDEMPOTENT,
    ),
    "watch": (
        *_topics("READ", topics.PETITION_SUBMITTED, topics.PETITION_ROUTED),
        Grant("group", "petition-watch", "READ"),
        *_topics("WRITE", topics.PETITION_ALERTS, topics.DEAD_LETTER_WATCH),
        _IDEMPOTENT,
        # its own topics: the observations re-keyed by area and its tables' changelogs,
        # each read back (recovery) and written
        *_topics("READ", topics.WATCH_OBSERVATIONS, *topics.WATCH_COMPACTED),
        *_topics("WRITE", topics.WATCH_OBSERVATIONS, *topics.WATCH_COMPACTED),
    ),
}


def department_principal(code: str) -> str:
    """The principal of department `code` (``dept-<code>``); ValueError for a malformed code."""
    if not is_department_code(code):
        raise ValueError(f"invalid department code {code!r}")
    return f"{DEPARTMENT_GROUP_PREFIX}{code}"


def department_grants(code: str) -> tuple[Grant, ...]:
    """What department `code` may do: read its own queue, in its own groups.

    The group prefix ends with a dot, which codes never contain, so one department's prefix
    never covers another's groups (``dept.A3.`` is no prefix of ``dept.A3-GOV.``); its
    default group ``dept-<code>`` is granted by its exact name for the same reason."""
    queue = topics.department_topic(code)
    return (
        Grant("topic", queue, "READ"),
        Grant("topic", queue, "DESCRIBE"),
        Grant("group", department_principal(code), "READ"),
        Grant("group", f"dept.{code}.", "READ", "prefixed"),
    )


def grants_for(principal: str) -> tuple[Grant, ...]:
    """The grants of a service or department principal; ValueError for any other name."""
    if principal in SERVICE_GRANTS:
        return SERVICE_GRANTS[principal]
    if principal.startswith(DEPARTMENT_GROUP_PREFIX):
        return department_grants(principal[len(DEPARTMENT_GROUP_PREFIX):])
    raise ValueError(f"no grants are defined for principal {principal!r}")
