"""Integration fixtures: the three services on the session's private broker and database.

The broker and the database are the ``infra`` fixture of the project's pytest plugin
(deploy/stack/pytest_plugin.py, registered in pyproject.toml); the services on top of it are
tests/service_stack.py's, started once a session by the ``stack`` fixture of tests/conftest.py
(the browser tests use the same). Everything runs on free ports under pytest's temporary
folder, so the suite never clashes with a stack started by ``make up``. The names the tests
import from here (``Stack``, ``new_stack``, ``running``, ``REPO``, ``SERVICES``) stay importable
from here.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.stack.testinfra import Infra
from shared.kafka_client import KafkaAccess
from tests.service_stack import REPO, SERVICES, WITH_WATCH, Stack, new_stack, running

__all__ = ["REPO", "SERVICES", "WITH_WATCH", "Stack", "new_stack", "running"]


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as c:
        yield c


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.2) -> Any:
    """Poll until `predicate` returns a truthy value; fail with its last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


def consume_all(kafka: KafkaAccess, topic: str, *, idle_ms: int = 3000, nulls: bool = False) -> list[Any]:
    """Read a topic from the beginning with a throwaway group (no commits). Records with a
    null value are left out unless `nulls`: no service writes one, so they are poison that
    a test wrote on purpose (tests/integration/test_poison_records.py)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        **kafka.options(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=idle_ms,
    )
    try:
        return [r for r in consumer if nulls or r.value is not None]
    finally:
        consumer.close()


def db_rows(stack: Stack, query: str, *args: Any) -> list[Any]:
    """Run one query on the stack's database (its own connection) and return the rows."""

    async def run() -> list[Any]:
        conn = await asyncpg.connect(stack.infra.dsn)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def topic_name(topic: dict[str, Any]) -> str:
    """The name of one topic of kafka-python's describe_topics."""
    return str(topic.get("name") or topic.get("topic"))


def replicas_of(partition: dict[str, Any]) -> tuple[list[int], list[int]]:
    """(replicas, in-sync replicas) of one partition of kafka-python's describe_topics."""
    return (list(partition.get("replica_nodes", partition.get("replicas")) or []),
            list(partition.get("isr_nodes", partition.get("isr")) or []))


def wait_in_sync(access: KafkaAccess, names: list[str], size: int, timeout: float) -> float:
    """Seconds until every partition of the topics `names` has `size` in-sync replicas."""
    from petitionctl.kafka_admin import admin_client

    started = time.monotonic()
    short: list[tuple[str, list[int]]] = []
    while time.monotonic() - started < timeout:
        try:
            with admin_client(access) as admin:
                described = admin.describe_topics(names)
        except Exception as exc:  # noqa: BLE001 - a cluster in recovery may refuse; ask again
            short = [("?", [repr(exc)])]  # type: ignore[list-item]
        else:
            short = [(topic_name(t), replicas_of(p)[1]) for t in described for p in t["partitions"]
                     if len(replicas_of(p)[1]) != size]
            if not short:
                return time.monotonic() - started
        time.sleep(1.0)
    raise AssertionError(f"partitions without {size} in-sync replicas after {timeout:.0f}s: {short[:5]}")


def postgres_pids(infra: Infra) -> list[int]:
    """The postmaster and every backend / auxiliary process of the test cluster."""
    postmaster = infra.postgres.pid
    assert postmaster is not None
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                pids.append(int(entry.name))
    return pids


def petition(**overrides: Any) -> dict[str, Any]:
    """A petition as an operator would post it (texts written for the tests)."""
    body: dict[str, Any] = {
        "title": "A3区某小区拆迁安置房迟迟不能交房",
        "content": "我是A市A3区某小区的拆迁户，安置房承诺两年前交房，至今仍未建成，开发商一再拖延，请住建部门督促处理。",  # noqa: E501 - a sample petition in Chinese (two columns a character)
        "channel": "hotline",
        # a fresh petitioner each time: the same person with the same words is a repeat petition
        "petitioner": {"name": "张三", "phone": f"138{uuid.uuid4().int % 10**8:08d}"},
    }
    body.update(overrides)
    return body


def parse(record: Any) -> dict[str, Any]:
    return json.loads(record.value)


def routed(client: httpx.Client, pid: str, *, assignment_no: int = 1, timeout: float = 20) -> dict[str, Any]:
    """The petition once the read model has its `assignment_no`-th assignment."""

    def ready() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/v1/petitions/{pid}").json()
        done = [t for t in body.get("timeline", []) if t["event"] in ("routed", "reassigned")]
        return body if done and done[-1].get("assignment_no", 0) >= assignment_no else None

    found: dict[str, Any] = wait_for(ready, timeout=timeout)
    return found


def age_clocks(stack: Stack, petition_ids: list[str], by: timedelta) -> None:
    """Move the petitions' clocks and pending timers `by` into the past (time passes)."""

    async def run() -> None:
        conn = await asyncpg.connect(stack.infra.dsn)
        try:
            async with conn.transaction():
                await conn.execute(
                    "UPDATE escalation.clock SET started_at = started_at - $2::interval, due_at = due_at - $2::interval"
                    " WHERE petition_id = ANY($1::text[])", petition_ids, by)
                await conn.execute(
                    "UPDATE escalation.timer SET fire_at = fire_at - $2::interval,"
                    " clock_due_at = clock_due_at - $2::interval"
                    " WHERE petition_id = ANY($1::text[]) AND state = 'pending'", petition_ids, by)
        finally:
            await conn.close()

    asyncio.run(run())


def age_until_due(stack: Stack, pid: str, clock: str, kind: str) -> None:
    """Let time pass until the clock's next pending `kind` timer is one minute overdue."""
    gap = db_rows(stack, "SELECT min(fire_at) - now() AS gap FROM escalation.timer WHERE petition_id = $1"
                         " AND clock = $2 AND kind = $3 AND state = 'pending'", pid, clock, kind)[0]["gap"]
    assert gap is not None, f"no pending {kind} timer of {clock}"
    age_clocks(stack, [pid], gap + timedelta(minutes=1))
