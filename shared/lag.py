"""Consumer lag of the platform's consumer groups, exported to Prometheus.

Lag is what a group still has to read: for each partition, the broker's end offset minus the
group's committed offset (or minus the log start when the group never committed there). It
is the one number that says "a consumer is falling behind" the same way for the faust workers
(``petition-router``, ``petition-escalation``), intake's read model (``petition-intake``) and
the departments' queues (``dept-<code>``), so it is read from the broker and not from inside
each consumer.

What must hold:

* Cheap: one pass every ``interval`` seconds (default 10) with a long-lived admin client and
  one group-less consumer for end offsets; a handful of requests per pass.
* Robust: Kafka down never raises out of :func:`run_lag_collector`. A failed pass clears the
  exported lag (an unknown lag is no lag series, not a stale one), counts the failure, and the
  clients are rebuilt on the next pass.
* Bounded labels: group, topic and partition only; never a petition.

When several intake instances run, each exports the same numbers under its own ``instance``;
dashboards and rules take ``max`` over instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared import topics
from shared.codes import is_department_code
from shared.kafka_client import KafkaAccess

log = logging.getLogger(__name__)

#: Topics each platform group must read, known even while the group is down and has never
#: committed on some partition. Topics a group commits on beyond these are picked up too.
PLATFORM_GROUPS: Mapping[str, tuple[str, ...]] = {
    "petition-router": (topics.PETITION_SUBMITTED, topics.PETITION_ACTIONS, topics.PETITION_ALERTS),
    "petition-escalation": (topics.PETITION_ROUTED, topics.PETITION_ACTIONS),
    "petition-intake": (topics.PETITION_ROUTED, topics.PETITION_SLA, topics.ZERO_REPORT_STATUS,
                        topics.PETITION_ALERTS),
    "petition-watch": (topics.PETITION_SUBMITTED, topics.PETITION_ROUTED),
}

#: a department queue's name; the code in it must also follow shared.codes.DepartmentCode
_DEPARTMENT_TOPIC = re.compile(r"^dept\.(.+)\.assignments$")

LAG_METRIC = "petition_consumer_lag_messages"

COLLECTION_ERRORS = Counter(
    "petition_consumer_lag_collection_errors_total",
    "Lag collection passes that failed (Kafka unreachable or a request failed).",
)


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    lag: int


def department_group(topic: str) -> str | None:
    """``dept-<code>`` for a department queue ``dept.<code>.assignments``, else None."""
    match = _DEPARTMENT_TOPIC.match(topic)
    return f"dept-{match.group(1)}" if match and is_department_code(match.group(1)) else None


def groups_to_watch(existing_topics: Iterable[str]) -> dict[str, set[str]]:
    """Group → topics to measure: the platform groups plus one group per department queue.

    A platform topic that does not exist (yet) is left out; a department queue nobody has
    read yet still counts, its whole content being the department's unread backlog.
    """
    present = set(existing_topics)
    watch = {group: {t for t in wanted if t in present} for group, wanted in PLATFORM_GROUPS.items()}
    for topic in present:
        group = department_group(topic)
        if group is not None:
            watch.setdefault(group, set()).add(topic)
    return watch


def compute_lag(
    group: str,
    partitions: Iterable[tuple[str, int]],
    committed: Mapping[tuple[str, int], int],
    starts: Mapping[tuple[str, int], int],
    ends: Mapping[tuple[str, int], int],
) -> list[PartitionLag]:
    """Lag of `group` on each partition; never negative.

    A partition without a commit lags by everything still in the log (end − log start);
    a committed offset below the log start (retention deleted unread messages) counts from
    the log start, because what retention removed can no longer be read.
    """
    out = []
    for tp in sorted(partitions):
        if tp not in ends:
            continue
        start = starts.get(tp, 0)
        position = max(committed.get(tp, start), start)
        out.append(PartitionLag(group, tp[0], tp[1], max(ends[tp] - position, 0)))
    return out


class LagSnapshot(Collector):
    """Holds the last pass's lag and serves it at scrape time (no stale label sets)."""

    def __init__(self) -> None:
        self._lags: list[PartitionLag] = []

    def replace(self, lags: list[PartitionLag]) -> None:
        self._lags = lags

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            LAG_METRIC,
            "Messages a consumer group still has to read, by group, topic and partition.",
            labels=["group", "topic", "partition"],
        )
        for item in self._lags:
            family.add_metric([item.group, item.topic, str(item.partition)], item.lag)
        yield family


_snapshot: LagSnapshot | None = None


def lag_snapshot() -> LagSnapshot:
    """The process-wide snapshot, registered in the default registry once."""
    global _snapshot
    if _snapshot is None:
        _snapshot = LagSnapshot()
        REGISTRY.register(_snapshot)
    return _snapshot


class LagReader:
    """Reads committed and end offsets from the broker; keeps its clients between passes."""

    def __init__(self, kafka: KafkaAccess, *, request_timeout_ms: int = 5000) -> None:
        self._kafka = kafka
        self._timeout_ms = request_timeout_ms
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._known_topics: set[str] = set()

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                **self._kafka.options(), request_timeout_ms=self._timeout_ms,
                client_id="petition-lag-collector",
            )
            await admin.start()
            self._admin = admin
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **self._kafka.options(), group_id=None, enable_auto_commit=False,
                request_timeout_ms=self._timeout_ms, client_id="petition-lag-collector",
            )
            await consumer.start()
            self._consumer = consumer
        return self._admin, self._consumer

    async def close(self) -> None:
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        self._known_topics = set()
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()

    async def read(self) -> list[PartitionLag]:
        admin, consumer = await self._clients()
        existing = await admin.list_topics()
        watch = groups_to_watch(existing)
        committed_by_group: dict[str, dict[tuple[str, int], int]] = {}
        for group in watch:
            offsets = await admin.list_consumer_group_offsets(group)
            committed_by_group[group] = {
                (tp.topic, tp.partition): meta.offset
                for tp, meta in offsets.items()
                if meta is not None and meta.offset >= 0
            }
            watch[group] |= {t for t, _ in committed_by_group[group] if t in existing}
        wanted_topics = sorted(set().union(*watch.values())) if watch else []
        partitions_of: dict[str, list[int]] = {}
        if wanted_topics:
            for meta in await admin.describe_topics(wanted_topics):
                if meta.get("error_code", 0) == 0:
                    partitions_of[meta["topic"]] = sorted(
                        p["partition"] for p in meta["partitions"] if p.get("error_code", 0) == 0
                    )
        tps = [TopicPartition(t, p) for t, parts in partitions_of.items() for p in parts]
        ends: dict[tuple[str, int], int] = {}
        starts: dict[tuple[str, int], int] = {}
        if tps:
            if set(partitions_of) != self._known_topics:
                # One metadata request for every topic at once: left to itself, the consumer
                # learns unknown topics one request each (~0.1 s per department queue).
                await consumer._client.set_topics(sorted(partitions_of))
                self._known_topics = set(partitions_of)
            for tp, offset in (await consumer.end_offsets(tps)).items():
                ends[(tp.topic, tp.partition)] = offset
            for tp, offset in (await consumer.beginning_offsets(tps)).items():
                starts[(tp.topic, tp.partition)] = offset
        lags: list[PartitionLag] = []
        for group, group_topics in sorted(watch.items()):
            parts = [(t, p) for t in group_topics for p in partitions_of.get(t, [])]
            lags.extend(compute_lag(group, parts, committed_by_group[group], starts, ends))
        return lags


async def run_lag_collector(*, kafka: KafkaAccess, interval: float = 10.0) -> None:
    """Measure consumer lag every `interval` seconds until cancelled; never raises otherwise.

    Start it once per process, e.g. in intake's lifespan::

        asyncio.create_task(run_lag_collector(kafka=KafkaAccess.from_settings(settings)))
    """
    snapshot = lag_snapshot()
    reader = LagReader(kafka)
    failures = 0
    try:
        while True:
            started = time.monotonic()
            try:
                lags = await asyncio.wait_for(reader.read(), timeout=max(interval, 5.0) * 3)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means "lag unknown this pass"
                failures += 1
                COLLECTION_ERRORS.inc()
                snapshot.replace([])
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("consumer lag: pass failed (%d in a row): %r", failures, exc)
                await reader.close()
            else:
                if failures:
                    log.info("consumer lag: collecting again after %d failed passes", failures)
                failures = 0
                snapshot.replace(lags)
            await asyncio.sleep(max(interval - (time.monotonic() - started), 0.5))
    finally:
        snapshot.replace([])
        await reader.close()
