"""The outbox relay in a child process, for a service whose event loop is its bottleneck.

The relay (:class:`shared.outbox.OutboxRelay`) reads committed outbox rows back from
PostgreSQL, groups them by partition and produces them: CPU work that, in the service's own
event loop, competes with consuming and applying. :class:`RelayProcess` runs the same relay
in a spawned child on the other core. Nothing about delivery changes: rows are published in
commit order, at least once, from the table (the child holds no state a crash could lose).

Wake-ups: the service's transaction calls :func:`notify` (``pg_notify``, delivered at
commit), the child LISTENs and publishes at once; it also polls every 0.1 s, so a missed
notification costs latency, never a row. The parent keeps the relay's metrics in its own
registry (``/metrics`` is served there): the child reports its totals once a second over a
pipe, as JSON. A child that dies is restarted with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

import asyncpg

from shared import metrics, retry
from shared.children import SPAWN, exit_with_parent
from shared.kafka_client import KafkaAccess
from shared.outbox import watch_oldest_pending_age
from shared.runtime import tune_gc

log = logging.getLogger(__name__)

REPORT_SECONDS = 1.0


def channel_for(schema: str) -> str:
    return f"outbox_{schema}"


async def notify(conn: asyncpg.Connection, schema: str) -> None:
    """Wake the schema's relay process when the caller's transaction commits."""
    await conn.execute("SELECT pg_notify($1, '')", channel_for(schema))


def _child_main(dsn: str, schema: str, kafka: KafkaAccess, service: str, log_level: str,
                writer: Connection, parent: int) -> None:
    exit_with_parent(parent)
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(_child(dsn, schema, kafka, service, writer))


async def _child(dsn: str, schema: str, kafka: KafkaAccess, service: str, writer: Connection) -> None:
    from shared.db import create_pool
    from shared.outbox import OutboxRelay

    pool = await create_pool(dsn, min_size=1, max_size=2)
    relay = OutboxRelay(pool=pool, schema=schema, kafka=kafka, service=service)

    async def settle() -> None:
        while not relay.connected:  # noqa: ASYNC110 - no event to wait on: once the producers know every topic, the heap is built
            await asyncio.sleep(0.5)
        tune_gc()
    listener: asyncpg.Connection | None = None

    async def listen() -> None:
        nonlocal listener
        if listener is None or listener.is_closed():
            listener = await asyncpg.connect(dsn)
            await listener.add_listener(channel_for(schema), lambda *_: relay.kick())

    async def report() -> None:
        nonlocal listener
        while True:
            try:
                await asyncio.wait_for(listen(), 5)
            except Exception as exc:  # noqa: BLE001 - polling covers a lost LISTEN; try again next time
                log.warning("relay %s: cannot LISTEN (%r); polling only", schema, exc)
                with contextlib.suppress(Exception):
                    if listener is not None:
                        listener.terminate()
                listener = None
            kafka = await relay.kafka_reachable(timeout=2.0) if relay.connected else False
            body = {"published": relay.published_total, "errors": relay.errors_total,
                    "backlog": relay.backlog, "kafka": kafka, "oldest": relay.oldest_pending_at,
                    "healthy": relay.healthy(), "last_error": relay.last_error}
            writer.send_bytes(json.dumps(body).encode())
            await asyncio.sleep(REPORT_SECONDS)

    reporter = asyncio.get_running_loop().create_task(report())
    settling = asyncio.get_running_loop().create_task(settle())
    try:
        await relay.run()
    finally:
        reporter.cancel()
        settling.cancel()
        if listener is not None:
            await listener.close()
        await pool.close()


class ChildExited(Exception):
    """The relay's child process exited (it is started again)."""


class RelayProcess:
    """Runs and supervises the relay child; the parent-side face of the relay (metrics,
    readiness). Start with :meth:`run` as a task of the service's event loop."""

    def __init__(self, *, dsn: str, schema: str, kafka: KafkaAccess, service: str,
                 log_level: str = "INFO") -> None:
        self._args = (dsn, schema, kafka, service, log_level)
        self._service = service
        self._process: Any = None
        self._reader: Connection | None = None
        self._seen = {"published": 0, "errors": 0}
        self._kafka = False
        self._healthy = False
        self._last_report = 0.0
        self._oldest: float | None = None
        self.last_error: str | None = None
        self.restarts = 0
        watch_oldest_pending_age(service, lambda: self._oldest)

    @property
    def connected(self) -> bool:
        return self._kafka and time.monotonic() - self._last_report < 5 * REPORT_SECONDS

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def kick(self) -> None:
        """Nothing to do: the transaction's NOTIFY wakes the child."""

    async def kafka_reachable(self, timeout: float = 3.0) -> bool:
        return self.connected

    def healthy(self) -> bool:
        """The child runs, reported lately, and its relay is not stuck failing."""
        return (self._process is not None and self._process.is_alive() and self._healthy
                and time.monotonic() - self._last_report < 5 * REPORT_SECONDS)

    def _start(self) -> None:
        reader, writer = SPAWN.Pipe(duplex=False)
        process = SPAWN.Process(target=_child_main, args=(*self._args, writer, os.getpid()),
                                name=f"outbox-relay-{self._args[1]}", daemon=True)
        process.start()
        writer.close()
        self._process, self._reader = process, reader
        self._seen = {"published": 0, "errors": 0}  # a new child counts from zero
        asyncio.get_running_loop().add_reader(reader.fileno(), self._on_report)

    def _on_report(self) -> None:
        reader = self._reader
        assert reader is not None  # noqa: S101 - narrows the type: never None here
        try:
            while reader.poll():
                body = json.loads(reader.recv_bytes())
                for key, counter in (("published", metrics.OUTBOX_PUBLISHED),
                                     ("errors", metrics.OUTBOX_PUBLISH_ERRORS)):
                    delta = int(body[key]) - self._seen[key]
                    if delta > 0:
                        counter.labels(self._service).inc(delta)
                    self._seen[key] = int(body[key])
                metrics.OUTBOX_BACKLOG.labels(self._service).set(int(body["backlog"]))
                self._kafka = bool(body["kafka"])
                self._healthy = bool(body.get("healthy", True))
                self._oldest = body.get("oldest")
                self.last_error = body.get("last_error")
                self._last_report = time.monotonic()
        except (EOFError, OSError, ValueError, KeyError):
            self._close_reader()  # the child is gone (or sent garbage): run() restarts it

    def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(reader.fileno())
            reader.close()

    async def run(self) -> None:
        """Start the child; restart it with back-off whenever it exits (the back-off starts
        over after a child that ran a minute)."""

        async def child() -> None:
            self._start()
            while self._process.is_alive():  # noqa: ASYNC110 - polls state that has no event to wait on
                await asyncio.sleep(0.5)
            code = self._process.exitcode
            self._close_reader()
            self._kafka = False
            self.restarts += 1
            metrics.OUTBOX_PUBLISH_ERRORS.labels(self._service).inc()
            # SIGTERM: the service's process group is being stopped (the parent follows)
            log.log(logging.WARNING if code == -signal.SIGTERM else logging.ERROR,
                    "outbox relay process (%s) exited with %s", self._args[1], code)
            raise ChildExited(f"outbox relay process ({self._args[1]}) exited with {code}")

        try:
            await retry.forever(child, what="outbox relay process", min_backoff=0.5, max_backoff=10.0,
                                reset_after=60.0, logger=log)
        finally:
            self.stop()

    def stop(self) -> None:
        self._close_reader()
        process, self._process = self._process, None
        if process is not None and process.is_alive():
            process.terminate()
            process.join(5)
