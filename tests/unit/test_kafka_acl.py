"""The broker's ACL table (shared.kafka_acl), read the way Kafka's authorizer reads it: what
each principal may do, and above all what it may not."""

from __future__ import annotations

import pytest

from shared import topics
from shared.kafka_acl import SERVICE_GRANTS, Grant, department_grants, department_principal, grants_for
from shared.kafka_credentials import SERVICE_PRINCIPALS

#: Kafka: READ, WRITE and CREATE (and DESCRIBE itself) on a resource allow DESCRIBE on it
_IMPLIES_DESCRIBE = {"READ", "WRITE", "CREATE", "DESCRIBE"}


def allows(grants: tuple[Grant, ...], resource: str, name: str, operation: str) -> bool:
    """Whether `grants` allow `operation` on `resource` `name`, as StandardAuthorizer decides."""
    for g in grants:
        if g.resource != resource:
            continue
        if not (name == g.name if g.pattern == "literal" else name.startswith(g.name)):
            continue
        if g.operation == operation or (operation == "DESCRIBE" and g.operation in _IMPLIES_DESCRIBE):
            return True
    return False


def topic_ops(principal: str, operation: str) -> set[str]:
    candidates = [*topics.CORE_TOPICS, topics.department_topic("A3-HOUSING")]
    return {t for t in candidates if allows(grants_for(principal), "topic", t, operation)}


def test_every_service_principal_has_grants_and_no_other_principal_does() -> None:
    assert set(SERVICE_GRANTS) == set(SERVICE_PRINCIPALS)
    with pytest.raises(ValueError, match="no grants"):
        grants_for("admin")  # the super user needs none; the table gives it none


def test_intake_writes_what_people_submit_and_reads_the_lifecycle() -> None:
    assert topic_ops("intake", "WRITE") == {topics.PETITION_SUBMITTED, topics.PETITION_ACTIONS,
                                            topics.ZERO_REPORT_SUBMITTED, topics.DEAD_LETTER_INTAKE}
    assert topic_ops("intake", "READ") == {topics.PETITION_ROUTED, topics.PETITION_SLA, topics.ZERO_REPORT_STATUS,
                                           topics.PETITION_ALERTS}
    assert allows(grants_for("intake"), "group", "petition-intake", "READ")
    assert not allows(grants_for("intake"), "group", "petition-router", "READ")


def test_the_read_model_and_the_lag_collector_find_what_they_need() -> None:
    from services.intake.readmodel.consumer import READ_MODEL_TOPICS
    from shared.lag import PLATFORM_GROUPS

    intake = grants_for("intake")
    assert all(allows(intake, "topic", t, "READ") for t in READ_MODEL_TOPICS)
    for group, group_topics in PLATFORM_GROUPS.items():
        assert allows(intake, "group", group, "DESCRIBE"), group
        assert all(allows(intake, "topic", t, "DESCRIBE") for t in group_topics)
    # the departments' default groups and queues, every one of them, but never their content
    assert allows(intake, "group", department_principal("K1-EDUCATION"), "DESCRIBE")
    assert allows(intake, "topic", topics.department_topic("K1-EDUCATION"), "DESCRIBE")
    assert not allows(intake, "topic", topics.department_topic("K1-EDUCATION"), "READ")
    assert allows(intake, "topic", topics.ZERO_REPORT_SUBMITTED, "DESCRIBE")  # escalation's third input


def test_the_router_routes_into_department_queues_it_may_create() -> None:
    router = grants_for("router")
    assert topic_ops("router", "READ") == {topics.PETITION_SUBMITTED, topics.PETITION_ACTIONS, topics.PETITION_ALERTS}
    assert topic_ops("router", "WRITE") == {topics.PETITION_ROUTED, topics.DEAD_LETTER_ROUTER,
                                            topics.department_topic("A3-HOUSING")}
    queue = topics.department_topic("A3-HOUSING")
    assert allows(router, "topic", queue, "CREATE") and allows(router, "topic", queue, "DESCRIBE")
    assert not allows(router, "topic", queue, "READ")
    assert not allows(router, "topic", topics.PETITION_SUBMITTED, "CREATE")
    assert allows(router, "group", "petition-router", "READ")


def test_escalation_writes_clocks_and_statuses_but_never_routes() -> None:
    assert topic_ops("escalation", "READ") == {topics.PETITION_ROUTED, topics.PETITION_ACTIONS,
                                               topics.ZERO_REPORT_SUBMITTED}
    assert topic_ops("escalation", "WRITE") == {topics.PETITION_SLA, topics.ZERO_REPORT_STATUS,
                                                topics.DEAD_LETTER_ESCALATION}
    assert not allows(grants_for("escalation"), "topic", topics.PETITION_ROUTED, "WRITE")


def test_the_watch_alone_writes_alerts_and_owns_its_own_topics() -> None:
    assert topic_ops("watch", "READ") == {topics.PETITION_SUBMITTED, topics.PETITION_ROUTED,
                                          topics.WATCH_OBSERVATIONS, *topics.WATCH_COMPACTED}
    assert topic_ops("watch", "WRITE") == {topics.PETITION_ALERTS, topics.DEAD_LETTER_WATCH,
                                           topics.WATCH_OBSERVATIONS, *topics.WATCH_COMPACTED}
    writers = {p for p in SERVICE_PRINCIPALS if allows(grants_for(p), "topic", topics.PETITION_ALERTS, "WRITE")}
    assert writers == {"watch"}
    assert allows(grants_for("watch"), "group", "petition-watch", "READ")
    assert not allows(grants_for("watch"), "topic", topics.department_topic("A3-HOUSING"), "READ")


def test_every_producer_may_write_idempotently_and_nobody_administers() -> None:
    for principal in SERVICE_PRINCIPALS:
        grants = grants_for(principal)
        assert allows(grants, "cluster", "kafka-cluster", "IDEMPOTENT_WRITE")
        assert {g.operation for g in grants} <= {"READ", "WRITE", "CREATE", "DESCRIBE", "IDEMPOTENT_WRITE"}
        assert not any(g.resource == "cluster" and g.operation != "IDEMPOTENT_WRITE" for g in grants)


def test_a_department_reads_its_own_queue_in_its_own_groups_only() -> None:
    grants = grants_for("dept-A3")
    assert grants == department_grants("A3")
    assert topic_ops("dept-A3", "READ") == set()  # none of the platform's topics, no other queue
    assert allows(grants, "topic", "dept.A3.assignments", "READ")
    assert not allows(grants, "topic", "dept.A3-GOV.assignments", "DESCRIBE")
    assert not allows(grants, "topic", "dept.A3.assignments", "WRITE")
    assert allows(grants, "group", "dept-A3", "READ")
    assert allows(grants, "group", "dept.A3.audit", "READ")
    # a code that is a prefix of another's never reaches the other's groups
    assert not allows(grants, "group", "dept-A3-GOV", "READ")
    assert not allows(grants, "group", "dept.A3-GOV.audit", "READ")
    assert not allows(grants, "group", "petition-router", "READ")


def test_a_malformed_department_code_makes_no_principal() -> None:
    for code in ("a3", "A3.X", "", "A3*"):
        with pytest.raises(ValueError, match="department code"):
            department_principal(code)
        with pytest.raises(ValueError, match="department code"):
            grants_for(f"dept-{code}")


def test_grants_become_the_brokers_acls() -> None:
    from kafka.admin import ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourceType

    from petitionctl.kafka_admin import acl_of

    acl = acl_of("dept-A3", Grant("group", "dept.A3.", "READ", "prefixed"))
    assert (acl.principal, acl.host, acl.operation, acl.permission_type) == (
        "User:dept-A3", "*", ACLOperation.READ, ACLPermissionType.ALLOW)
    pattern = acl.resource_pattern
    assert (pattern.resource_type, pattern.resource_name, pattern.pattern_type) == (
        ResourceType.GROUP, "dept.A3.", ACLResourcePatternType.PREFIXED)
    cluster = acl_of("router", Grant("cluster", "kafka-cluster", "IDEMPOTENT_WRITE"))
    assert cluster.operation is ACLOperation.IDEMPOTENT_WRITE
    assert cluster.resource_pattern.pattern_type is ACLResourcePatternType.LITERAL
    # the same grant twice is one ACL: applying the table again creates nothing
    assert len({acl_of("intake", g) for g in (*grants_for("intake"), *grants_for("intake"))}) == len(
        set(grants_for("intake")))
