"""The outbox relay: publishes rows committed to a service's outbox table to Kafka.

A row is written in the same transaction as the state change that produced it, so a
committed change is always published eventually (at least once; consumers drop repeats by
event id). One relay per service schema publishes at a time (an advisory lock), which keeps
the commit order of rows and so the per-petition order of events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared import metrics

log = logging.getLogger(__name__)


def make_producer(bootstrap: str) -> AIOKafkaProducer:
    """An idempotent producer that waits for all in-sync replicas."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
        # one request may carry a whole relay batch spread over many department queues
        max_request_size=16 * 1024 * 1024,
        request_timeout_ms=15000,
    )


class OutboxRelay:
    """Moves outbox rows of one schema to Kafka; run :meth:`run` as a background task."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        schema: str,
        bootstrap: str,
        service: str,
        batch_size: int = 5000,
        idle_poll_seconds: float = 0.1,
        producers: int = 4,
    ) -> None:
        self._pool = pool
        self._schema = schema
        self._bootstrap = bootstrap
        self._service = service
        self._batch_size = batch_size
        self._idle = idle_poll_seconds
        self._kick = asyncio.Event()
        self._producer_count = max(1, producers)
        self._producers: list[AIOKafkaProducer] = []
        self._producer_lock = asyncio.Lock()
        self.connected = False

    def kick(self) -> None:
        """Tell the relay new rows were committed, so it publishes without waiting to poll."""
        self._kick.set()

    async def _ensure_producer(self) -> list[AIOKafkaProducer]:
        async with self._producer_lock:
            return await self._start_producers()

    async def _start_producers(self) -> list[AIOKafkaProducer]:
        """Several idempotent producers: one alone keeps a single request in flight and caps
        the relay at a few thousand messages a second across many department queues. Each
        topic always goes through the same producer, so per-partition order is kept."""
        if not self._producers:
            started: list[AIOKafkaProducer] = []
            try:
                for _ in range(self._producer_count):
                    producer = make_producer(self._bootstrap)
                    started.append(producer)
                    await producer.start()
                    # Learn every topic's partitions up front: otherwise the first message to
                    # each of thousands of department queues waits for a metadata round trip.
                    cluster = await producer.client.fetch_all_metadata()
                    await producer.client.set_topics(list(cluster.topics()))
            except BaseException:
                for producer in started:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                raise
            self._producers = started
            self.connected = True
        return self._producers

    async def _drop_producer(self) -> None:
        producers, self._producers = self._producers, []
        self.connected = False
        for producer in producers:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def publish_once(self) -> int:
        """Publish up to one batch of pending rows; returns how many were published."""
        producers = await self._ensure_producer()
        count = len(producers)
        schema = self._schema
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtext($1))", f"outbox:{schema}"
            ):
                return 0
            rows = await conn.fetch(
                f'SELECT id, topic, key, value, headers FROM "{schema}".outbox'
                " WHERE published_at IS NULL ORDER BY id LIMIT $1",
                self._batch_size,
            )
            if not rows:
                return 0
            await self._learn_topics(producers, {row["topic"] for row in rows})
            futures = []
            for row in rows:
                headers = [(k, str(v).encode()) for k, v in (row["headers"] or {}).items()]
                producer = producers[zlib.crc32(row["topic"].encode()) % count]
                futures.append(
                    await producer.send(
                        row["topic"], value=row["value"], key=row["key"], headers=headers
                    )
                )
            await asyncio.gather(*futures)
            await conn.execute(
                f'UPDATE "{schema}".outbox SET published_at = now() WHERE id = ANY($1::bigint[])',
                [row["id"] for row in rows],
            )
        metrics.OUTBOX_PUBLISHED.labels(self._service).inc(len(rows))
        return len(rows)

    @staticmethod
    async def _learn_topics(producers: list[AIOKafkaProducer], topics: set[str]) -> None:
        """Ask once for the partitions of every topic of the batch a producer does not know
        yet (new department queues), instead of one metadata round trip per first message."""
        waits = []
        for topic in topics:
            producer = producers[zlib.crc32(topic.encode()) % len(producers)]
            if producer.client.cluster.partitions_for_topic(topic) is None:
                waits.append(producer.client.add_topic(topic))  # concurrent calls share one request
        if waits:
            await asyncio.wait_for(asyncio.gather(*waits), 30)

    async def prune(self, keep_seconds: float = 3600.0) -> None:
        """Delete rows published more than `keep_seconds` ago (they are on Kafka now)."""
        async with self._pool.acquire() as conn:
            await conn.execute(
                f'DELETE FROM "{self._schema}".outbox WHERE published_at IS NOT NULL'
                " AND published_at < now() - make_interval(secs => $1)",
                keep_seconds,
            )
            backlog = await conn.fetchval(
                f'SELECT count(*) FROM "{self._schema}".outbox WHERE published_at IS NULL'
            )
        metrics.OUTBOX_BACKLOG.labels(self._service).set(backlog)

    async def run(self) -> None:
        """Publish forever; back off while Kafka or PostgreSQL is unavailable."""
        backoff = 0.2
        loop = asyncio.get_running_loop()
        next_prune = 0.0
        try:
            while True:
                try:
                    published = await self.publish_once()
                    backoff = 0.2
                    if loop.time() >= next_prune:
                        await self.prune()
                        next_prune = loop.time() + 5.0
                except (KafkaError, OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
                    metrics.OUTBOX_PUBLISH_ERRORS.labels(self._service).inc()
                    log.warning("outbox relay (%s): %r; retrying in %.1fs", self._schema, exc, backoff)
                    await self._drop_producer()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if published < self._batch_size:
                    self._kick.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._kick.wait(), self._idle)
        finally:
            await self._drop_producer()

    async def kafka_reachable(self, timeout: float = 3.0) -> bool:
        """True when a metadata round trip to the broker succeeds."""
        try:
            producers = await asyncio.wait_for(self._ensure_producer(), timeout)
            await asyncio.wait_for(producers[0].client.fetch_all_metadata(), timeout)
            return True
        except Exception:  # noqa: BLE001 - readiness answers yes or no
            return False
