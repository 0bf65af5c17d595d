"""The broker locked per principal (secured as the local stack's and the session's are).

A department created with ``petitionctl kafka-user add`` reads its own queue and nothing else;
the broker refuses the rest at once (an authorization error, not a client waiting out a
timeout), refuses a wrong password, and refuses each service what it does not need.

This module has a broker of its own: the records it writes into department queues and the
department principals it creates must not show up in the session's broker, where other tests
read queues from the start and create department principals themselves.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from deploy.stack.testinfra import Infra, start_test_infra
from shared import topics
from shared.kafka_client import KafkaAccess, quiet_plaintext_sasl_warning

REPO = Path(__file__).resolve().parents[2]
DEPT_A, DEPT_B = "A3-HOUSING", "K1-EDUCATION"

pytestmark = pytest.mark.integration


def _petitionctl(infra: Infra, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / ".venv" / "bin" / "petitionctl"), *args], capture_output=True, text=True,
                          env=infra.service_env(), timeout=120, check=False)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    """A broker (and database) of this module's own, secured like every other."""
    running = start_test_infra(tmp_path_factory.mktemp("acl-infra"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def departments(broker: Infra) -> Iterator[dict[str, bytes]]:
    """The platform's topics, both departments' queues with one assignment in each, and both
    departments' principals (kafka-user add)."""
    from kafka import KafkaProducer
    from kafka.admin import NewTopic

    from petitionctl.kafka_admin import admin_client

    quiet_plaintext_sasl_warning()
    done = _petitionctl(broker, "topics", "ensure", "--no-departments")  # refusals on topics that exist
    assert done.returncode == 0 and "ACLs:" in done.stdout, done.stderr
    with admin_client(broker.admin) as admin:
        admin.create_topics([NewTopic(topics.department_topic(code), 1, 1) for code in (DEPT_A, DEPT_B)])
    sent = {code: f"assignment for {code} {time.time_ns()}".encode() for code in (DEPT_A, DEPT_B)}
    producer = KafkaProducer(**broker.admin.options())
    try:
        for code, value in sent.items():
            producer.send(topics.department_topic(code), key=b"P-ACL", value=value).get(timeout=30)
    finally:
        producer.close()
    for code in (DEPT_A, DEPT_B):
        done = _petitionctl(broker, "kafka-user", "add", "--department", code)
        assert done.returncode == 0, done.stderr
        assert str(broker.secrets_dir / f"dept-{code}.password") in done.stdout
    yield sent


def _read(access: KafkaAccess, topic: str, group: str, *, timeout: float = 10.0) -> list[bytes]:
    """Read `topic` from its start as `access`, assigned (no rebalance to wait for) and with
    the offsets of `group` (the group's and the topic's refusals are raised as they come; a
    reader without a group would wait in silence on a topic it may not even see)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**access.options(), group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest")
    try:
        consumer.assign([TopicPartition(topic, 0)])
        deadline, values = time.monotonic() + timeout, list[bytes]()
        while time.monotonic() < deadline and not values:
            values = [r.value for batch in consumer.poll(timeout_ms=500).values() for r in batch]
        if values:
            consumer.commit()
        return values
    finally:
        consumer.close()


def _refused(read: Any) -> tuple[type[BaseException], float]:
    """The error `read()` raised and how long the broker took to give it."""
    started = time.monotonic()
    with pytest.raises(Exception) as refused:  # the callers assert which
        read()
    return refused.type, time.monotonic() - started


def test_a_department_reads_its_own_queue_and_nothing_else(broker: Infra, departments: dict[str, bytes]) -> None:
    from kafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

    dept_a = broker.access(f"dept-{DEPT_A}")
    assert _read(dept_a, topics.department_topic(DEPT_A), f"dept-{DEPT_A}") == [departments[DEPT_A]]
    assert _read(dept_a, topics.department_topic(DEPT_A), f"dept.{DEPT_A}.audit") == [departments[DEPT_A]]

    for topic in (topics.department_topic(DEPT_B), topics.PETITION_SUBMITTED):
        error, seconds = _refused(lambda t=topic: _read(dept_a, t, f"dept-{DEPT_A}"))
        assert error is TopicAuthorizationFailedError, topic
        assert seconds < 5, f"{topic}: refused after {seconds:.1f}s, a timeout rather than a refusal"
    # its own queue, but in the other department's group
    error, _ = _refused(lambda: _read(dept_a, topics.department_topic(DEPT_A), f"dept-{DEPT_B}"))
    assert error is GroupAuthorizationFailedError
    # nor may it list what the platform has: only its own queue is visible to it
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(**dept_a.options())
    try:
        assert consumer.topics() == {topics.department_topic(DEPT_A)}
    finally:
        consumer.close()


def test_a_wrong_password_is_refused(broker: Infra, departments: dict[str, bytes]) -> None:
    from aiokafka.conn import create_conn
    from aiokafka.errors import SaslAuthenticationFailed

    wrong = KafkaAccess(broker.bootstrap, f"dept-{DEPT_A}", SecretStr("not-the-password"))
    options = {k: v for k, v in wrong.options().items() if k != "bootstrap_servers"}

    async def connect() -> None:
        conn = await create_conn("127.0.0.1", broker.kafka.port, request_timeout_ms=5000, **options)
        conn.close()

    with pytest.raises(SaslAuthenticationFailed, match="invalid credentials"):
        asyncio.run(connect())
    # and the right one is taken the same way
    right = {k: v for k, v in broker.access(f"dept-{DEPT_A}").options().items() if k != "bootstrap_servers"}

    async def connect_right() -> None:
        conn = await create_conn("127.0.0.1", broker.kafka.port, request_timeout_ms=5000, **right)
        conn.close()

    asyncio.run(connect_right())


def test_each_service_is_refused_what_it_does_not_need(broker: Infra, departments: dict[str, bytes]) -> None:
    from kafka import KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError

    # intake measures the department queues' lag but may not read a single assignment
    queue = topics.department_topic(DEPT_A)
    error, seconds = _refused(lambda: _read(broker.access("intake"), queue, "petition-intake"))
    assert error is TopicAuthorizationFailedError and seconds < 5
    # the router may not read what the escalation service publishes
    error, _ = _refused(lambda: _read(broker.access("router"), topics.PETITION_SLA, "petition-router"))
    assert error is TopicAuthorizationFailedError

    def send(principal: str, topic: str) -> None:
        # not idempotent: a department may not even ask for a producer id (the cluster refuses
        # it), and what this asks is the topic's answer
        producer = KafkaProducer(**broker.access(principal).options(), max_block_ms=10000, enable_idempotence=False)
        try:
            producer.send(topic, key=b"P-ACL", value=b"{}").get(timeout=10)
        finally:
            producer.close()

    # escalation may not route, intake may not write to a department, nor a department anywhere
    for principal, topic in (("escalation", topics.PETITION_ROUTED),
                             ("intake", topics.department_topic(DEPT_A)),
                             (f"dept-{DEPT_A}", topics.department_topic(DEPT_A))):
        error, seconds = _refused(lambda p=principal, t=topic: send(p, t))
        assert error is TopicAuthorizationFailedError, (principal, topic)
        assert seconds < 5, (principal, topic, seconds)
    send("escalation", topics.PETITION_SLA)  # what it needs it may do
