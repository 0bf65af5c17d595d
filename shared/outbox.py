"""The outbox relay: publishes rows committed to a service's outbox table to Kafka.

A row is written in the same transaction as the state change that produced it, so a
committed change is always published eventually (at least once; consumers drop repeats by
event id). One relay per service schema publishes at a time (an advisory lock), which keeps
the commit order of rows and so the per-petition order of events. A published row is
deleted in the transaction that read it (Kafka keeps the record; an UPDATE would rewrite
every row, payload included).

Deleted rows stay in the table and its primary-key index until vacuumed, and a scan from the
lowest id walks every one of them: with thousands of rows a second that is most of the
relay's query. So the relay reads on from the last id it published (``id > last``) and only
every ``sweep_seconds`` from the start of the table. The sweep is what keeps this safe: with
several writers a transaction holding a lower id can commit after higher ids were read, and
the sweep publishes it then (later, never lost). One petition's events come from
transactions that follow one another (its partition has one consumer at a time), so its
events keep their order either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.protocol.metadata import MetadataRequest

from shared import metrics, retry
from shared.kafka_client import KafkaAccess

log = logging.getLogger(__name__)


def watch_oldest_pending_age(service: str, oldest: Callable[[], float | None]) -> None:
    """Export the age of the oldest waiting outbox row of `service`, computed when scraped
    from ``oldest()`` (epoch seconds of the oldest row last seen, None when none waits):
    while the relay cannot reach its database the age keeps growing instead of freezing."""

    def age() -> float:
        at = oldest()
        return max(time.time() - at, 0.0) if at is not None else 0.0

    metrics.OUTBOX_OLDEST_AGE.labels(service).set_function(age)


def make_producer(kafka: KafkaAccess) -> AIOKafkaProducer:
    """An idempotent producer that waits for all in-sync replicas."""
    return AIOKafkaProducer(
        **kafka.options(),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        # one request may carry a whole relay batch spread over many department queues
        max_request_size=16 * 1024 * 1024,
        request_timeout_ms=15000,
    )


@dataclass(frozen=True, slots=True)
class Record:
    """One message to publish: where, its key, its bytes, its headers."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class Publisher:
    """Several idempotent producers that publish a batch of records and wait for every ack.

    One idempotent producer keeps a single request in flight and caps publishing at a few
    thousand messages a second across many department queues; so there are several, and each
    topic always goes through the same one (per-partition order is kept). Records are grouped
    by destination partition (the partition the producer's own partitioner would choose:
    murmur2 of the key, like every other client of these topics) and each group goes out as
    record batches: one future per batch instead of one per message.
    """

    def __init__(self, kafka: KafkaAccess, *, producers: int = 4) -> None:
        self._kafka = kafka
        self._count = max(1, producers)
        self._producers: list[AIOKafkaProducer] = []
        self._lock = asyncio.Lock()
        self._partitioner = DefaultPartitioner()

    @property
    def started(self) -> bool:
        return bool(self._producers)

    async def start(self) -> list[AIOKafkaProducer]:
        """Start the producers once (concurrent callers share the start)."""
        async with self._lock:
            if not self._producers:
                started: list[AIOKafkaProducer] = []
                try:
                    for _ in range(self._count):
                        producer = make_producer(self._kafka)
                        started.append(producer)
                        await producer.start()
                        # Learn every topic's partitions up front: otherwise the first message
                        # to each of thousands of department queues waits for a metadata trip.
                        cluster = await producer.client.fetch_all_metadata()
                        await producer.client.set_topics(list(cluster.topics()))
                except BaseException:
                    for producer in started:
                        with contextlib.suppress(Exception):
                            await producer.stop()
                    raise
                self._producers = started
            return self._producers

    async def stop(self) -> None:
        producers, self._producers = self._producers, []
        for producer in producers:
            with contextlib.suppress(Exception):
                await producer.stop()

    def _producer_for(self, topic: str) -> AIOKafkaProducer:
        return self._producers[zlib.crc32(topic.encode()) % len(self._producers)]

    async def learn_topics(self, topics: set[str]) -> None:
        """Ask once for the partitions of every topic the producers do not know yet (new
        department queues), instead of one metadata round trip per first message."""
        waits = []
        for topic in topics:
            producer = self._producer_for(topic)
            if producer.client.cluster.partitions_for_topic(topic) is None:
                waits.append(producer.client.add_topic(topic))  # concurrent calls share one request
        if waits:
            await asyncio.wait_for(asyncio.gather(*waits), 30)

    def _by_partition(self, records: Sequence[Record]) -> dict[tuple[str, int], list[Record]]:
        groups: dict[tuple[str, int], list[Record]] = {}
        partitions: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            known = partitions.get(record.topic)
            if known is None:
                cluster = self._producer_for(record.topic).client.cluster
                known = partitions[record.topic] = sorted(cluster.partitions_for_topic(record.topic) or ())
                if not known:
                    raise KafkaError(f"no partitions known for topic {record.topic}")
            if len(known) == 1:
                partition = known[0]
            elif record.key is None:
                partition = known[i % len(known)]
            else:
                partition = self._partitioner(record.key, known, known)
            groups.setdefault((record.topic, partition), []).append(record)
        return groups

    async def publish(self, records: Sequence[Record]) -> None:
        """Send `records` and return once the broker acknowledged every one (acks=all)."""
        await self.start()
        await self.learn_topics({r.topic for r in records})
        futures = []
        for (topic, partition), group in self._by_partition(records).items():
            producer = self._producer_for(topic)
            batch = producer.create_batch()
            for r in group:
                if batch.append(key=r.key, value=r.value, timestamp=None, headers=r.headers) is None:
                    futures.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=r.key, value=r.value, timestamp=None, headers=r.headers)
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)

    async def metadata_round_trip(self) -> None:
        """One small request to a broker (metadata of no topic): proof that Kafka answers,
        without decoding the partitions of every department queue (thousands of topics)."""
        producers = await self.start()
        client = producers[0].client
        node = client.get_random_node()
        if node is None:
            raise KafkaError("no broker known")
        await client.send(node, MetadataRequest([]))


class OutboxRelay:
    """Moves outbox rows of one schema to Kafka; run :meth:`run` as a background task."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        schema: str,
        kafka: KafkaAccess,
        service: str,
        batch_size: int = 5000,
        idle_poll_seconds: float = 0.1,
        producers: int = 4,
        sweep_seconds: float = 1.0,
        cycle_timeout: float = 60.0,
    ) -> None:
        self._pool = pool
        self._schema = schema
        self._service = service
        self._batch_size = batch_size
        self._idle = idle_poll_seconds
        self._kick = asyncio.Event()
        self._publisher = Publisher(kafka, producers=producers)
        self._sweep_seconds = sweep_seconds
        self._after = 0  # the highest id published by this relay; 0: read from the start
        self._next_sweep = 0.0
        # what the metrics say, also kept here for a relay running in a child process
        self.published_total = 0
        self.errors_total = 0
        self.backlog = 0
        #: wall-clock time (epoch seconds) the oldest waiting row was written, as last seen
        self.oldest_pending_at: float | None = None
        #: monotonic time of the first failure of the current run of failures (None: fine)
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self._cycle_timeout = cycle_timeout
        watch_oldest_pending_age(service, lambda: self.oldest_pending_at)

    @property
    def connected(self) -> bool:
        return self._publisher.started

    def kick(self) -> None:
        """Tell the relay new rows were committed, so it publishes without waiting to poll."""
        self._kick.set()

    async def publish_once(self) -> int:
        """Publish up to one batch of pending rows; returns how many were published."""
        await self._publisher.start()
        schema = self._schema
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtext($1))", f"outbox:{schema}"
            ):
                return 0
            now = time.monotonic()
            after = self._after
            if now >= self._next_sweep:
                after, self._next_sweep = 0, now + self._sweep_seconds
            rows = await conn.fetch(
                # no JSON decoding for the usual empty headers
                "SELECT id, topic, key, value, NULLIF(headers, '{}'::jsonb) AS headers"
                f' FROM "{schema}".outbox'
                " WHERE published_at IS NULL AND id > $2 ORDER BY id LIMIT $1",
                self._batch_size,
                after,
            )
            swept_all = after == 0 and len(rows) < self._batch_size
            if not rows:
                if swept_all:
                    self._drained()
                return 0
            await self._publisher.publish(
                [
                    Record(
                        row["topic"],
                        row["key"],
                        row["value"],
                        [(k, str(v).encode()) for k, v in (row["headers"] or {}).items()],
                    )
                    for row in rows
                ]
            )
            await conn.execute(
                f'DELETE FROM "{schema}".outbox WHERE id = ANY($1::bigint[])',
                [row["id"] for row in rows],
            )
        self._after = max(self._after, rows[-1]["id"])
        if swept_all:
            self._drained()
        metrics.OUTBOX_PUBLISHED.labels(self._service).inc(len(rows))
        self.published_total += len(rows)
        return len(rows)

    async def refresh_stats(self, keep_seconds: float = 3600.0) -> None:
        """Count the rows waiting and find the oldest one's age (the backlog gauges), and
        delete rows marked published more than `keep_seconds` ago (older relays marked
        rows instead of deleting them)."""
        async with self._pool.acquire() as conn:
            await conn.execute(
                f'DELETE FROM "{self._schema}".outbox WHERE published_at IS NOT NULL'
                " AND published_at < now() - make_interval(secs => $1)",
                keep_seconds,
            )
            row = await conn.fetchrow(
                f'SELECT count(*) AS n, extract(epoch FROM min(created_at))::float8 AS oldest'
                f' FROM "{self._schema}".outbox WHERE published_at IS NULL'
            )
        self.backlog = int(row["n"])
        self.oldest_pending_at = row["oldest"]
        metrics.OUTBOX_BACKLOG.labels(self._service).set(self.backlog)

    prune = refresh_stats  # the name earlier callers used

    def _drained(self) -> None:
        """A sweep from the start of the table read (and published) every waiting row."""
        self.backlog, self.oldest_pending_at = 0, None
        metrics.OUTBOX_BACKLOG.labels(self._service).set(0)

    def healthy(self, grace_seconds: float = 15.0) -> bool:
        """False once publishing has been failing for longer than `grace_seconds`."""
        since = self.failing_since
        return since is None or time.monotonic() - since < grace_seconds

    async def run(self) -> None:
        """Publish forever. Any failure (Kafka or PostgreSQL unreachable, a connection left
        broken by a database restart, a defect) is logged and counted, the producers are
        dropped, the backlog gauges refreshed if the database answers, and the relay tries
        again after a capped back-off (:func:`shared.retry.forever`): it never ends on its
        own. Each cycle is bounded in time, so a frozen database or broker cannot hang it."""
        loop = asyncio.get_running_loop()
        next_refresh = 0.0

        async def cycle() -> int:
            nonlocal next_refresh
            try:
                published = await asyncio.wait_for(self.publish_once(), self._cycle_timeout)
                if loop.time() >= next_refresh:
                    await asyncio.wait_for(self.refresh_stats(), self._cycle_timeout)
                    next_refresh = loop.time() + 5.0
                return published
            except Exception:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._publisher.stop(), 10)
                with contextlib.suppress(Exception):  # rows wait: say how many, if we can
                    await asyncio.wait_for(self.refresh_stats(), 5)
                raise

        def failed(exc: BaseException, _attempt: int, _wait: float) -> None:
            metrics.OUTBOX_PUBLISH_ERRORS.labels(self._service).inc()
            self.errors_total += 1
            self.last_error = repr(exc)
            if self.failing_since is None:
                self.failing_since = time.monotonic()

        try:
            while True:
                published = await retry.forever(cycle, what=f"outbox relay ({self._schema})", min_backoff=0.2,
                                                max_backoff=5.0, on_failure=failed, logger=log)
                if self.failing_since is not None:
                    log.info("outbox relay (%s): publishing again after %.1fs",
                             self._schema, time.monotonic() - self.failing_since)
                self.failing_since, self.last_error = None, None
                if published < self._batch_size:
                    self._kick.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._kick.wait(), self._idle)
        finally:
            with contextlib.suppress(Exception):
                await self._publisher.stop()

    async def kafka_reachable(self, timeout: float = 3.0) -> bool:
        """True when a metadata round trip to the broker succeeds."""
        try:
            await asyncio.wait_for(self._publisher.metadata_round_trip(), timeout)
            return True
        except Exception:  # noqa: BLE001 - readiness answers yes or no
            return False
