"""The consumer-lag arithmetic and exposition (no Kafka needed)."""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import CollectorRegistry, generate_latest

from shared import lag
from shared.kafka_client import KafkaAccess
from shared.lag import LagSnapshot, PartitionLag, compute_lag, department_group, groups_to_watch


def test_department_queue_names_map_to_their_group() -> None:
    assert department_group("dept.A-HOUSING.assignments") == "dept-A-HOUSING"
    assert department_group("petition.submitted") is None
    assert department_group("dept.lower.assignments") is None


def test_groups_to_watch_covers_platform_groups_and_every_department_queue() -> None:
    watch = groups_to_watch(["petition.submitted", "petition.actions", "petition.routed",
                             "dept.K-EDUCATION.assignments", "deadletter.router"])
    assert watch["petition-router"] == {"petition.submitted", "petition.actions"}
    assert watch["petition-escalation"] == {"petition.routed", "petition.actions"}
    assert watch["petition-intake"] == {"petition.routed"}  # petition.sla does not exist yet
    assert watch["dept-K-EDUCATION"] == {"dept.K-EDUCATION.assignments"}
    assert not any("deadletter.router" in topics for topics in watch.values())


def test_lag_counts_from_the_commit_or_the_log_start_never_negative() -> None:
    parts = [("t", 0), ("t", 1), ("t", 2), ("t", 3)]
    committed = {("t", 0): 7, ("t", 2): 3, ("t", 3): 50}
    starts = {("t", 0): 0, ("t", 1): 4, ("t", 2): 5, ("t", 3): 0}
    ends = {("t", 0): 10, ("t", 1): 9, ("t", 2): 8, ("t", 3): 40}
    got = {(x.topic, x.partition): x.lag for x in compute_lag("g", parts, committed, starts, ends)}
    assert got == {
        ("t", 0): 3,  # committed 7 of 10
        ("t", 1): 5,  # never committed: everything from the log start
        ("t", 2): 3,  # commit below the log start: retention removed what was unread
        ("t", 3): 0,  # a commit past the end (topic recreated) is no negative lag
    }


def test_snapshot_exports_one_gauge_series_per_partition_and_forgets_old_ones() -> None:
    registry = CollectorRegistry()
    snap = LagSnapshot()
    registry.register(snap)
    snap.replace([PartitionLag("petition-router", "petition.submitted", 3, 12)])
    text = generate_latest(registry).decode()
    assert 'petition_consumer_lag_messages{group="petition-router",partition="3",topic="petition.submitted"} 12.0' in text  # noqa: E501 - one exposition line, compared whole
    snap.replace([])
    assert "petition_consumer_lag_messages{" not in generate_latest(registry).decode()


def test_collector_survives_an_unreachable_broker_and_stops_on_cancel() -> None:
    async def scenario() -> float:
        before = lag.COLLECTION_ERRORS._value.get()
        task = asyncio.create_task(lag.run_lag_collector(kafka=KafkaAccess("127.0.0.1:1"), interval=0.5))
        await asyncio.sleep(2.5)
        assert not task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return lag.COLLECTION_ERRORS._value.get() - before

    assert asyncio.run(scenario()) >= 1
