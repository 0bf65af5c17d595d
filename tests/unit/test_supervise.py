"""Background loops that cannot die quietly; a relay that outlives any failure (with fakes)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from shared import metrics
from shared.kafka_client import KafkaAccess
from shared.outbox import OutboxRelay
from shared.supervise import Supervisor


async def test_a_crashing_loop_is_restarted_and_reported_down_meanwhile() -> None:
    runs = 0
    gate = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise asyncpg.InterfaceError("connection is closed")  # what a database restart leaves
        gate.set()
        await asyncio.sleep(3600)

    loops = Supervisor("test-svc", min_backoff=0.01, max_backoff=0.02)
    loops.start("relay", flaky)
    await asyncio.wait_for(gate.wait(), 5)
    assert runs == 3 and loops.restarts("relay") == 2
    assert loops.checks() == {"relay": True}
    sample = metrics.BACKGROUND_RESTARTS.labels("test-svc", "relay")._value.get()
    assert sample == 2
    await loops.stop()
    assert loops.checks() == {"relay": False}


async def test_a_loop_that_returns_is_restarted_and_its_health_probe_counts() -> None:
    ended = 0
    healthy = False

    async def short() -> None:
        nonlocal ended
        ended += 1
        if ended >= 2:
            await asyncio.sleep(3600)

    loops = Supervisor("test-svc2", min_backoff=0.01)
    loops.start("timers", short, healthy=lambda: healthy)
    for _ in range(200):
        if ended >= 2:
            break
        await asyncio.sleep(0.01)
    assert ended == 2
    assert loops.checks() == {"timers": False}  # running, but says it is not healthy
    healthy = True
    assert loops.checks() == {"timers": True}
    await loops.stop()


class _Conn:
    def __init__(self, db: _FakeDb) -> None:
        self.db = db

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield

    async def fetchval(self, sql: str, *args: Any) -> Any:
        self.db.maybe_fail()
        return True

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        self.db.maybe_fail()
        limit, after = args
        return [r for r in self.db.rows if r["id"] > after][:limit]

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any]:
        self.db.maybe_fail()
        return {"n": len(self.db.rows), "oldest": time.time() - 30 if self.db.rows else None}

    async def execute(self, sql: str, *args: Any) -> None:
        self.db.maybe_fail()
        if sql.startswith("DELETE") and "ANY" in sql:
            ids = set(args[0])
            self.db.rows = [r for r in self.db.rows if r["id"] not in ids]


class _FakeDb:
    """A pool whose connections fail like a restarting database for the first attempts."""

    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.rows = [{"id": i, "topic": "t", "key": b"k", "value": b"v", "headers": None} for i in range(1, 4)]

    def maybe_fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[_Conn]:
        yield _Conn(self)


class _FakePublisher:
    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    async def publish(self, records: list[Any]) -> None:
        self.sent += records


@pytest.mark.parametrize("failure", [
    asyncpg.InterfaceError("cannot perform operation: connection is closed"),
    asyncpg.exceptions.InternalClientError("client state"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    RuntimeError("a defect"),
])
async def test_the_relay_outlives_any_failure_and_publishes_afterwards(failure: BaseException) -> None:
    db = _FakeDb([failure, failure])
    relay = OutboxRelay(pool=db, schema="s", kafka=KafkaAccess("unused:1"), service="test-relay",
                        idle_poll_seconds=0.01)
    publisher = _FakePublisher()
    relay._publisher = publisher  # type: ignore[assignment]  # a fake publisher
    task = asyncio.create_task(relay.run())
    try:
        for _ in range(500):
            if len(publisher.sent) == 3:
                break
            await asyncio.sleep(0.01)
        assert [r.value for r in publisher.sent] == [b"v"] * 3
        assert not task.done()
        assert relay.errors_total >= 1 and relay.healthy()
        assert db.rows == []
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_backlog_age_grows_while_the_relay_cannot_reach_its_database() -> None:
    relay = OutboxRelay(pool=_FakeDb([]), schema="s", kafka=KafkaAccess("unused:1"), service="test-age")
    await relay.refresh_stats()
    assert relay.backlog == 3
    samples = {s.labels.get("service"): s.value for m in metrics.OUTBOX_OLDEST_AGE.collect() for s in m.samples}
    assert samples["test-age"] >= 30
    relay.failing_since = time.monotonic() - 60
    assert not relay.healthy()
