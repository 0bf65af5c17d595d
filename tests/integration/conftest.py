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
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from deploy.stack import free_ports, service_process, tail, wait_http_ready
from deploy.stack.testinfra import Infra
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
    with httpx.Client(base_url=stack.base_url, timeout=10) as c:
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
