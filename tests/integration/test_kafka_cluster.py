"""A three-broker KRaft cluster (``start_test_infra(..., brokers=3)``, as ``PETITION_KAFKA_BROKERS=3
make up`` runs it): every platform topic with three replicas and ``min.insync.replicas=2``, the
router's department queues too, and the platform's producer (acks=all, idempotent) and a consumer
going on while one broker is SIGKILLed; the broker restarted from its data rejoins every ISR.

Node 1 is the one killed: the first address of the bootstrap list is then dead, so new clients
must find the cluster through the others, as the services do after a broker's death.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.stack.testinfra import Infra, start_test_infra
from shared import topics
from shared.kafka_client import KafkaAccess, quiet_plaintext_sasl_warning
from tests.integration.conftest import replicas_of, topic_name, wait_in_sync

REPO = Path(__file__).resolve().parents[2]
TOPIC = topics.PETITION_SUBMITTED
#: a restarted broker is back in every ISR within this (it has seconds of records to catch up)
REJOIN_BOUND = 60.0

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    started = time.monotonic()
    running = start_test_infra(tmp_path_factory.mktemp("cluster-infra"), brokers=3)
    print(f"three brokers ready in {time.monotonic() - started:.1f}s")
    try:
        yield running
    finally:
        running.stop()


def _describe(access: KafkaAccess, names: list[str]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    from kafka.admin import ConfigResource, ConfigResourceType

    from petitionctl.kafka_admin import admin_client

    with admin_client(access) as admin:
        described = admin.describe_topics(names)
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names],
                                         config_filter="all")["topic"]
    return described, configs


def _send(access: KafkaAccess, values: list[bytes]) -> None:
    """Write `values` with a new producer of the platform's (acks=all, idempotent), each send
    acknowledged."""
    from shared.outbox import make_producer

    async def run() -> None:
        producer = make_producer(access)
        await producer.start()
        try:
            for value in values:
                await asyncio.wait_for(producer.send_and_wait(TOPIC, value, key=value), 60)
        finally:
            await producer.stop()

    asyncio.run(run())


def _read(access: KafkaAccess, wanted: list[bytes], timeout: float = 60.0) -> None:
    """Read TOPIC from its start in a new group until every one of `wanted` was seen."""
    from aiokafka import AIOKafkaConsumer

    async def run() -> set[bytes]:
        consumer = AIOKafkaConsumer(TOPIC, **access.options(), group_id=f"cluster-test-{time.time_ns()}",
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            missing, deadline = set(wanted), time.monotonic() + timeout
            while missing and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    missing -= {r.value for r in records}
            return missing
        finally:
            await consumer.stop()

    missing = asyncio.run(run())
    assert not missing, f"{len(missing)} acknowledged records not read back"


def test_every_platform_topic_has_three_replicas_two_of_them_in_sync(cluster: Infra) -> None:
    from services.router.topics_admin import DepartmentQueues

    assert cluster.bootstrap.count(",") == 2
    done = subprocess.run([str(REPO / ".venv" / "bin" / "petitionctl"), "topics", "ensure", "--no-departments"],
                          capture_output=True, text=True, env=cluster.service_env(), timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    assert "replication factor 3" in done.stdout
    # the router creates a department's queue when it first routes there: as the router does
    queues = ["A3-HOUSING", "K1-EDUCATION"]
    asyncio.run(DepartmentQueues(cluster.access("router"), brokers=3).ensure(set(queues)))
    names = [*topics.CORE_TOPICS, *(topics.department_topic(c) for c in queues)]
    # each broker learns of a new topic on its own: the one asked may not know it yet
    deadline = time.monotonic() + 30
    while True:
        described, configs = _describe(cluster.admin, names)
        if all(t["partitions"] for t in described) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {topic_name(t) for t in described} == set(names)
    for topic in described:
        name = topic_name(topic)
        assert topic["partitions"], name
        for partition in topic["partitions"]:
            replicas, isr = replicas_of(partition)
            assert sorted(replicas) == [1, 2, 3] and sorted(isr) == [1, 2, 3], (name, partition)
        assert configs[name]["min.insync.replicas"]["value"] == "2", name


def test_writes_and_reads_go_on_while_a_broker_is_dead_and_it_rejoins(cluster: Infra) -> None:
    from aiokafka import AIOKafkaProducer

    from shared.outbox import make_producer

    quiet_plaintext_sasl_warning()
    run = time.time_ns()
    before = [f"before {run} {i}".encode() for i in range(20)]
    _send(cluster.admin, before)
    _read(cluster.admin, before)
    # __consumer_offsets exists now (the read above used a group): replicated like the rest
    described, _ = _describe(cluster.admin, ["__consumer_offsets"])
    assert {len(replicas_of(p)[0]) for p in described[0]["partitions"]} == {3}

    # a producer that lives through the death, as a service's relay does
    loop = asyncio.new_event_loop()

    async def open_producer() -> AIOKafkaProducer:
        producer = make_producer(cluster.admin)
        await producer.start()
        return producer

    survivor = loop.run_until_complete(open_producer())
    victim = cluster.kafka.nodes[0]
    identity = (victim.log_dirs / "meta.properties").read_text()
    during = [f"during {run} {i}".encode() for i in range(20)]
    try:
        pid = victim.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        while victim.is_running() and time.monotonic() < killed + 10:
            time.sleep(0.1)
        assert not victim.is_running()

        async def keep_writing() -> None:
            for value in during[:10]:
                await asyncio.wait_for(survivor.send_and_wait(TOPIC, value, key=value), 60)

        loop.run_until_complete(keep_writing())
        print(f"writes acknowledged {time.monotonic() - killed:.1f}s after the SIGKILL of broker 1 (pid {pid})")
        # new clients, whose first bootstrap address is the dead broker
        _send(cluster.admin, during[10:])
        _read(cluster.admin, before + during)
    finally:
        loop.run_until_complete(survivor.stop())
        loop.close()

    # restarted on its own data (formatted once, never again): it catches up and rejoins
    assert victim.start()
    victim.wait_ready(timeout=90)
    assert (victim.log_dirs / "meta.properties").read_text() == identity
    rejoined = wait_in_sync(cluster.admin, [*topics.CORE_TOPICS, "__consumer_offsets"], 3, REJOIN_BOUND)
    print(f"broker 1 back in every ISR {rejoined:.1f}s after it was ready")
    after = [f"after {run}".encode()]
    _send(cluster.admin, after)
    _read(cluster.admin, before + during + after)
