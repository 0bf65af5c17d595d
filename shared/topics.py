"""Every Kafka topic name, in one place.

All petition topics share one partition count, chosen once (`PARTITIONS`): the key is the
petition id as raw UTF-8 bytes, so a petition's events land on the same partition number in
every topic. Changing the count re-shuffles keys; do it only with a migration plan.
"""

from __future__ import annotations

from typing import Any

from shared.codes import is_department_code

PARTITIONS = 6

PETITION_SUBMITTED = "petition.submitted"
PETITION_ROUTED = "petition.routed"
PETITION_ACTIONS = "petition.actions"
PETITION_SLA = "petition.sla"
ZERO_REPORT_SUBMITTED = "zero_report.submitted"
ZERO_REPORT_STATUS = "zero_report.status"
#: early warning: alerts (keyed by alert id) and incident links (keyed by petition id),
#: written by the watch service alone
PETITION_ALERTS = "petition.alerts"

DEAD_LETTER_INTAKE = "deadletter.intake"
DEAD_LETTER_ROUTER = "deadletter.router"
DEAD_LETTER_ESCALATION = "deadletter.escalation"
DEAD_LETTER_WATCH = "deadletter.watch"

#: the watch service's own topics (faust app id ``petition-watch``): observations re-keyed by
#: area (so each area's windows live on one partition), and its tables' changelogs (compacted)
WATCH_PREFIX = "petition-watch-"
WATCH_OBSERVATIONS = "petition-watch-observations"
WATCH_TABLES: tuple[str, ...] = ("pending", "surges", "members", "incidents")


def watch_changelog(table: str) -> str:
    """The changelog topic of the watch service's table `table` (faust's naming)."""
    return f"{WATCH_PREFIX}{table}-changelog"


#: topics of the watch service that are compacted (its tables' changelogs)
WATCH_COMPACTED: tuple[str, ...] = tuple(watch_changelog(t) for t in WATCH_TABLES)

CORE_TOPICS: tuple[str, ...] = (
    PETITION_SUBMITTED,
    PETITION_ROUTED,
    PETITION_ACTIONS,
    PETITION_SLA,
    ZERO_REPORT_SUBMITTED,
    ZERO_REPORT_STATUS,
    PETITION_ALERTS,
    DEAD_LETTER_INTAKE,
    DEAD_LETTER_ROUTER,
    DEAD_LETTER_ESCALATION,
    DEAD_LETTER_WATCH,
    WATCH_OBSERVATIONS,
    *WATCH_COMPACTED,
)


def department_topic(code: str) -> str:
    """Name of the assignment queue of department `code` (``dept.<code>.assignments``).

    Codes follow :data:`shared.codes.DepartmentCode` (upper-case letters, digits and dashes),
    so the name is a valid topic name and never collides with another after Kafka's '.'/'_'
    metric-name folding.
    """
    if not is_department_code(code):
        raise ValueError(f"invalid department code {code!r}")
    return f"dept.{code}.assignments"


def topics_not_ready(described: list[dict[str, Any]], wanted: set[str]) -> set[str]:
    """Topics of `wanted` that cannot take writes yet, from a metadata answer.

    `described` is the per-topic metadata an admin client returns (``describe_topics``:
    dicts with ``topic`` (aiokafka) or ``name`` (kafka-python), ``error_code`` and
    ``partitions``, each with ``leader`` or ``leader_id``). A freshly created topic is listed
    before its partitions have a leader (a single broker takes tens of seconds to bring up a
    few thousand new partitions); writing to it then only bounces off
    ``NOT_LEADER_OR_FOLLOWER`` and metadata retries, so whoever creates topics waits until
    this set is empty.
    """
    ready = set()
    for topic in described:
        name = topic.get("topic", topic.get("name"))
        partitions = topic.get("partitions") or []
        if topic.get("error_code", 0) == 0 and partitions and all(
            p.get("error_code", 0) == 0 and p.get("leader", p.get("leader_id", -1)) >= 0
            for p in partitions
        ):
            ready.add(name)
    return set(wanted) - ready
