"""Integration fixtures: the three services on the session's private broker and database.

The broker and the database are the ``infra`` fixture of the project's pytest plugin
(deploy/stack/pytest_plugin.py, registered in pyproject.toml); here are the services on top
of it. Everything runs on free ports under pytest's temporary folder, so the suite never
clashes with a stack started by ``make up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.callers import NaturalCaller, token_for
from deploy.stack import free_ports, service_process, tail, wait_http_ready
from deploy.stack.testinfra import Infra
from shared.identity import Principal
from shared.kafka_client import KafkaAccess

REPO = Path(__file__).resolve().parents[2]

SERVICES = ("intake", "router", "escalation")


@dataclass
class Stack:
    infra: Infra
    run_dir: Path
    env: dict[str, str]
    ports: dict[str, int]
    procs: dict[str, Any] = field(default_factory=dict)

    @property
    def routing_table(self) -> Path:
        return Path(self.env["PETITION_ROUTING_TABLE_PATH"])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['PETITION_HTTP_PORT']}"

    def client(self, timeout: float = 10) -> httpx.Client:
        """An HTTP client of intake that signs each request as its natural caller
        (:class:`tests.integration.callers.NaturalCaller`); a request with its own
        Authorization header keeps it."""
        routing = Path(self.env["PETITION_ROUTING_TABLE_PATH"]) if "PETITION_ROUTING_TABLE_PATH" in self.env else None
        gazetteer = Path(self.env["PETITION_GAZETTEER_PATH"]) if "PETITION_GAZETTEER_PATH" in self.env else None
        return httpx.Client(base_url=self.base_url, timeout=timeout,
                            auth=NaturalCaller(self.run_dir, routing=routing, gazetteer=gazetteer))

    def token(self, principal: Principal) -> str:
        """A token of this stack's issuer for `principal`."""
        return token_for(self.run_dir, principal)

    def health_url(self, service: str) -> str:
        port = {
            "intake": self.ports["PETITION_HTTP_PORT"],
            "router": self.ports["PETITION_ROUTER_PORT"],
            "escalation": self.ports["PETITION_ESCALATION_PORT"],
        }[service]
        return f"http://127.0.0.1:{port}"

    def start(self, service: str) -> None:
        proc = service_process(service, self.env, self.run_dir)
        proc.start()
        self.procs[service] = proc
        if not wait_http_ready(f"{self.health_url(service)}/readyz", 90, proc):
            raise RuntimeError(f"{service} not ready:\n{tail(proc.log_file, 60)}")

    def stop(self, service: str) -> None:
        self.procs[service].stop()

    def kill(self, service: str) -> None:
        import os
        import signal

        pid = self.procs[service].pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if not self.procs[service].is_running():
                break
            time.sleep(0.05)
        self.procs[service]._reap()

    def petitionctl(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(REPO / ".venv" / "bin" / "petitionctl"), *args],
            input=input, capture_output=True, text=True, env=self.env, timeout=timeout, check=False,
        )


def new_stack(infra: Infra, run_dir: Path, *, own_table: bool = True) -> Stack:
    """A stack description on `infra`: free ports, its own run folder and secret and, with
    `own_table`, its own copy of the routing table (so a test can change it while the
    router runs)."""
    names = ["PETITION_HTTP_PORT", "PETITION_ROUTER_PORT", "PETITION_ESCALATION_PORT", "PETITION_INTAKE_WORKER_PORT"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = infra.service_env(hmac_key=uuid.uuid4().hex * 2, **ports)
    env["PETITION_RUN_DIR"] = str(run_dir)
    env["PETITION_LOG_LEVEL"] = "INFO"
    if own_table:
        table_dir = run_dir / "router-data"
        table_dir.mkdir()
        for name in ("routing.yaml", "gazetteer.yaml"):
            shutil.copy(REPO / "services" / "router" / "data" / name, table_dir / name)
        env["PETITION_ROUTING_TABLE_PATH"] = str(table_dir / "routing.yaml")
        env["PETITION_GAZETTEER_PATH"] = str(table_dir / "gazetteer.yaml")
    return Stack(infra=infra, run_dir=run_dir, env=env, ports=ports)


@contextlib.contextmanager
def running(s: Stack) -> Iterator[Stack]:
    """Create the petition topics, start the three services, stop them afterwards."""
    done = s.petitionctl("topics", "ensure", "--no-departments")
    assert done.returncode == 0, done.stderr
    try:
        for service in SERVICES:
            s.start(service)
        yield s
    finally:
        for proc in s.procs.values():
            proc.stop()


@pytest.fixture(scope="session")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = new_stack(infra, tmp_path_factory.mktemp("run"))
    s.env["PETITION_TABLE_RELOAD_SECONDS"] = "0.5"
    with running(s):
        yield s


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
