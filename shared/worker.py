"""Glue between faust and the consumer core, shared by the router and escalation workers.

faust is used for what it is good at (group membership, fetching, offset commits); our
agents stay thin: take a batch of raw events, hand it to :class:`BatchProcessor`, and only
then let faust acknowledge them. faust's own web server (on 127.0.0.1 and the service's own
port) serves ``/healthz``, ``/readyz`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import faust
from prometheus_client import generate_latest

from shared import retry
from shared.consumer import BatchProcessor, ConsumerHealth, group_instance_id
from shared.kafka_client import KafkaAccess
from shared.records import RawMessage, raw_message
from shared.settings import Settings
from shared.topics import PARTITIONS

log = logging.getLogger(__name__)

#: batches a pipelined agent has taken but not yet committed
PIPELINE_DEPTH = 3
#: back-off of an agent retrying a batch its processor could not take (capped, forever)
AGENT_MIN_BACKOFF, AGENT_MAX_BACKOFF = 0.2, 10.0

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


class QuietWorker(faust.Worker):
    """faust's worker without its terminal spinner.

    At log level WARNING or above faust keeps the spinner, and to spin it on every log
    record it sets the root logger to DEBUG: every library's debug call then builds a
    record (aiokafka logs one per produced batch), a few per cent of a busy worker's CPU.
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None


def _recovery_seek_guarded() -> None:
    """Make faust's table recovery seek only to offsets the consumer accepts.

    faust's recovery reads each changelog partition from the offset it last applied (its
    ``-1`` meaning "from the start"). A partition assigned to a worker while recovery was
    already under way (a rebalance during a broker's or another instance's restart) can
    reach the seek with no offset at all (``None``), or with one below ``-1`` when the
    earliest offset could not be read; aiokafka then raises ``ValueError`` ("Offset must be
    a positive integer"), the recovery service crashes and the worker stops consuming for
    good. Such a partition is read from its start instead, as a new one is: the tables are
    rebuilt from their full changelogs, which is what recovery would do anyway.
    """
    from faust.tables.recovery import Recovery

    original = Recovery._seek_offsets
    if getattr(original, "petition_guarded", False):
        return

    async def seek(self: Any, consumer: Any, tps: Any, offsets: Any, title: str) -> None:
        for tp in tps:
            offset = offsets.get(tp)
            if not isinstance(offset, int) or offset < -1:
                log.warning("table recovery: %s %s had no usable offset (%r); reading it from the start",
                            title, tp, offset)
                offsets[tp] = -1
        await original(self, consumer, tps, offsets, title)

    seek.petition_guarded = True  # type: ignore[attr-defined]  # marks the patch as applied
    seek.__wrapped__ = original  # type: ignore[attr-defined]  # faust's own, for the test that it is still needed
    Recovery._seek_offsets = seek  # type: ignore[method-assign]  # the guard wraps faust's own method


def make_app(service: str, settings: Settings, *, kafka: KafkaAccess, web_port: int) -> faust.App:
    """A faust app with raw codecs, explicit topics and its web server on loopback.

    The app id is the consumer group id and the prefix of internal topics: never rename it.

    Membership is static (``group.instance.id``, :func:`shared.consumer.group_instance_id`):
    an instance restarted after a crash gets its partitions back as soon as it rejoins,
    instead of waiting out a rebalance for its dead predecessor's session. The flip side:
    a static member does not leave the group when it stops; its partitions wait for it
    until the session timeout (``PETITION_CONSUMER_SESSION_TIMEOUT_SECONDS``) runs out.

    faust's consumer, producer and admin client authenticate as `kafka`'s principal.
    """
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    _recovery_seek_guarded()
    session = settings.consumer_session_timeout_seconds
    return faust.App(
        f"petition-{service}",
        broker=f"kafka://{kafka.bootstrap}",
        broker_credentials=kafka.faust_credentials(),
        key_serializer="raw",
        value_serializer="raw",
        store="memory://",
        autodiscover=False,
        datadir=str(settings.run_dir / f"faust-{service}-{web_port}"),
        topic_partitions=PARTITIONS,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=500,
        broker_commit_interval=1.0,
        consumer_group_instance_id=group_instance_id(service, web_port, settings.instance_id),
        broker_session_timeout=session,
        broker_heartbeat_interval=max(session / 10, 1.0),
        producer_acks=-1,
        web_enabled=True,
        web_host="127.0.0.1",
        web_bind="127.0.0.1",
        web_port=web_port,
        stream_wait_empty=False,
        Worker=QuietWorker,
    )


def add_ops_pages(app: faust.App, readiness: ReadinessCheck) -> None:
    """Register ``/healthz`` (alive), ``/readyz`` (Kafka and PostgreSQL) and ``/metrics``."""

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        checks = await readiness()
        ok = all(checks.values())
        return web.json({"ready": ok, "checks": checks}, status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type="text/plain")


def raw_of(event: Any) -> RawMessage:
    """The broker's record behind a faust event. Never raises: a record that cannot be taken
    as it is (a null value, headers that are not a list of text/bytes pairs) becomes a
    RawMessage the processor dead-letters."""
    message = getattr(event, "message", None)
    try:
        stamp = getattr(message, "timestamp", None)
        return raw_message(
            topic=message.topic,  # type: ignore[union-attr]  # a missing message is caught below
            partition=message.partition,  # type: ignore[union-attr]  # a missing message is caught below
            offset=message.offset,  # type: ignore[union-attr]  # a missing message is caught below
            key=message.key,  # type: ignore[union-attr]  # a missing message is caught below
            value=message.value,  # type: ignore[union-attr]  # a missing message is caught below
            timestamp_ms=int(stamp * 1000) if stamp else None,
            headers=getattr(message, "headers", None),
        )
    except Exception as exc:  # noqa: BLE001 - no record may stop the agent
        return RawMessage(
            str(getattr(message, "topic", "?")), int(getattr(message, "partition", -1) or 0),
            int(getattr(message, "offset", -1) or 0), None, None,
            defect=("processing_error", f"unreadable record: {exc!r}"),
        )


async def start_when_reachable(start: Callable[[], Awaitable[Any]], *, service: str) -> None:
    """Run a worker's start-up (connect, migrate, start its relay) until it succeeds.

    A faust task that raises crashes the whole app, and the process exits: a worker restarted
    while PostgreSQL is down (after a crash in an outage, or a host booting before its
    database) would be gone for good. It retries instead, and is not ready until it is done."""
    await retry.forever(start, what=f"{service}: start-up (PostgreSQL)", min_backoff=0.5, max_backoff=5.0, logger=log)


async def retry_until_done(
    attempt: Callable[[], Awaitable[Any]], *, health: ConsumerHealth, source: str,
    min_backoff: float = AGENT_MIN_BACKOFF, max_backoff: float = AGENT_MAX_BACKOFF,
) -> Any:
    """Await ``attempt()`` until it returns, retrying whatever it raises with capped back-off.

    The processors dead-letter what their records cause and retry outages themselves; what
    reaches here is the service failing around them (its start-up cannot reach the database,
    a defect in its wiring). Skipping the batch would lose it, so the agent keeps trying and
    reports itself unhealthy (`health`) until an attempt succeeds."""
    result = await retry.forever(
        attempt, what=f"{source}: batch not taken", min_backoff=min_backoff, max_backoff=max_backoff,
        on_failure=lambda exc, _n, _wait: health.failed(source, exc), logger=log,
    )
    health.recovered(source)
    return result


def batch_agent(
    app: faust.App,
    topics: Sequence[str],
    *,
    name: str,
    processor: Callable[[], BatchProcessor],
    batch_size: int,
    within: float,
    pipelined: bool = False,
    health: ConsumerHealth | None = None,
) -> ConsumerHealth:
    """Register an agent that feeds batches of raw records to the processor; returns the
    agent's health (unhealthy while it retries a batch its processor could not take).

    `concurrency` stays 1 (faust can commit past in-flight messages otherwise); throughput
    comes from batching. ``take_events`` acknowledges a batch only after the loop body
    returns. The agent cannot die: records become RawMessages without raising, the processor
    dead-letters what cannot be applied, and whatever else fails is retried
    (:func:`retry_until_done`) until it succeeds, so the offsets always move on.

    ``pipelined``: the agent hands each batch on and goes back for the next, so faust fills
    batch N+2 while the processor's ``prepare`` (decoding, CPU work in worker processes)
    runs on N+1 and ``apply`` (the transaction) on N; at most ``PIPELINE_DEPTH`` batches are
    in flight. Batches are still applied one at a time and in order, and a message is
    acknowledged only after the transaction that applied it committed: each one holds an
    extra reference (faust's own mechanism for a message several streams share) that is
    released after the commit.
    """
    channel = app.topic(*topics, key_type=bytes, value_type=bytes)
    agent_health = health if health is not None else ConsumerHealth()

    async def agent(stream: Any) -> None:
        async for events in stream.take_events(batch_size, within=within):
            raws = [raw_of(e) for e in events]
            await retry_until_done(lambda: processor().process(raws),  # noqa: B023 - awaited within the iteration
                                    health=agent_health, source=name)

    async def apply_in_turn(previous: asyncio.Future[None] | None, prepared: asyncio.Future[Any],
                            raws: list[RawMessage], messages: list[Any]) -> None:
        ready: Any = None
        try:
            ready = await prepared
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - prepared again below
            log.warning("%s: preparing a batch failed (%r); again before applying it", name, exc)
        if previous is not None:
            await previous  # batches commit one at a time, in the order they were consumed

        async def attempt() -> Any:
            nonlocal ready
            if ready is None:
                ready = await processor().prepare(raws)
            return await processor().apply(ready)

        await retry_until_done(attempt, health=agent_health, source=name)
        for message in messages:
            try:
                message.ack(app.consumer)
            except Exception:  # an ack that fails is redelivered, and repeats are harmless
                log.exception("%s: acknowledging a record failed", name)

    async def pipelined_agent(stream: Any) -> None:
        in_flight: collections.deque[asyncio.Future[None]] = collections.deque()
        try:
            async for events in stream.take_events(batch_size, within=within):
                messages = [e.message for e in events]
                for message in messages:
                    message.incref()  # released by apply_in_turn, after the commit
                raws = [raw_of(e) for e in events]
                prepared = asyncio.ensure_future(processor().prepare(raws))
                previous = in_flight[-1] if in_flight else None
                in_flight.append(asyncio.ensure_future(apply_in_turn(previous, prepared, raws, messages)))
                while in_flight and (in_flight[0].done() or len(in_flight) >= PIPELINE_DEPTH):
                    await in_flight.popleft()  # returns once that batch committed (it cannot fail)
        finally:
            if in_flight:
                await asyncio.shield(asyncio.gather(*in_flight, return_exceptions=True))

    body = pipelined_agent if pipelined else agent
    body.__name__ = name
    body.__qualname__ = name
    app.agent(channel, name=name)(body)
    return agent_health


def wait_for_a_broker(hosts: Sequence[tuple[str, int]], *, poll: float = 1.0, report_every: float = 15.0) -> float:
    """Block until one of the bootstrap `hosts` accepts a TCP connection; returns the seconds waited.

    faust's worker gives up at start when no broker answers its bootstrap (the producer
    raises, the worker stops and the process exits): a worker started while the whole cluster
    is down, or restarted while two of three brokers are, would be gone for good. So it starts
    only once a broker listens, as a worker whose broker dies later keeps retrying on its own.
    """
    import socket

    started = time.monotonic()
    reported = started
    while True:
        for host, port in hosts:
            try:
                with socket.create_connection((host, port), timeout=2):
                    return time.monotonic() - started
            except OSError:
                continue
        if time.monotonic() - reported >= report_every:
            reported = time.monotonic()
            log.warning("no Kafka broker answers at %s for %.0fs; the worker starts once one does",
                        ",".join(f"{h}:{p}" for h, p in hosts), reported - started)
        time.sleep(poll)


def run_worker(app: faust.App, loglevel: str = "info") -> None:
    """Run the faust worker in this process (blocks until SIGTERM) once a broker answers."""
    wait_for_a_broker([(str(url.host), int(url.port or 9092)) for url in app.conf.broker])
    level = {"warning": "warn", "critical": "crit"}.get(loglevel.lower(), loglevel.lower())
    sys.argv = [
        sys.argv[0],
        "worker",
        "--loglevel",
        level,
        "--web-host",
        "127.0.0.1",
        "--web-port",
        str(app.conf.web_port),
    ]
    app.main()


async def pg_and_kafka_ready(
    pool: Any,
    relay: Any,
    *,
    loops: Any = None,
    parts: Mapping[str, Callable[[], bool]] | None = None,
    timeout: float = 3.0,
) -> dict[str, bool]:
    """Readiness of a service, one named check each: PostgreSQL answers a query (acquire and
    query bounded by `timeout`), a Kafka metadata round trip works, every supervised
    background loop (`loops`, a :class:`shared.supervise.Supervisor`) runs and is healthy,
    and each of `parts` (e.g. the consumer) says it is."""

    async def pg() -> bool:
        if pool is None:
            return False
        async with asyncio.timeout(timeout):
            async with pool.acquire() as conn:
                return bool(await conn.fetchval("SELECT 1"))

    async def kafka() -> bool:
        return relay is not None and bool(await relay.kafka_reachable())

    checks = await gather_checks(postgres=pg(), kafka=kafka())
    if loops is not None:
        checks.update(loops.checks())
    for name, probe in (parts or {}).items():
        try:
            checks[name] = bool(probe())
        except Exception:  # noqa: BLE001 - a probe that fails says "not ready"
            checks[name] = False
    return checks


def consumer_healthy(processor: Any) -> bool:
    """A consumer's own word on its health (it says no while it retries an outage)."""
    healthy = getattr(processor, "healthy", True)
    return bool(healthy() if callable(healthy) else healthy)


def consumer_parts(processor: Any, agent: Any = None) -> dict[str, Callable[[], bool]]:
    """Readiness parts of a consuming service: its processor (not stuck retrying an outage)
    and its agent (not stuck around the processor), each when it exists."""
    parts: dict[str, Callable[[], bool]] = {}
    if processor is not None:
        parts["consumer"] = lambda: consumer_healthy(processor)
    if agent is not None:
        parts["agent"] = lambda: consumer_healthy(agent)
    return parts


async def gather_checks(**checks: Awaitable[bool]) -> dict[str, bool]:
    names = list(checks)
    results = await asyncio.gather(*checks.values(), return_exceptions=True)
    return {n: (r is True) for n, r in zip(names, results, strict=True)}
