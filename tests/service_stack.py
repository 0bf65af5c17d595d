"""The services on a test session's private broker and database, on free ports.

Shared by the test folders that drive the running platform: tests/integration (over HTTP and
Kafka) and tests/browser (the console in a real browser). The session's ``stack`` fixture is in
tests/conftest.py; a module that needs a stack of its own (another broker, a routing table it
may not share) builds one with :func:`new_stack` and :func:`running`.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from deploy.callers import NaturalCaller, token_for
from deploy.stack import free_ports, service_process, tail, wait_http_ready
from deploy.stack.config import Instance
from deploy.stack.testinfra import Infra
from shared.identity import Principal

REPO = Path(__file__).resolve().parents[1]

#: the services every stack runs; the watch (early warning) runs only where a module asks for it
#: (:data:`WITH_WATCH`): its 并案 reassigns petitions like earlier ones, which the modules that
#: assert where the router sends repeated sample texts must not meet
SERVICES = ("intake", "router", "escalation")
WITH_WATCH = (*SERVICES, "watch")


@dataclass
class Stack:
    """The three services of one test stack: their ports, environment and run folder.

    ``base_url`` is intake's (the API, the console and the public tracking page);
    ``petitionctl`` runs the operator's command line against this stack.
    """

    infra: Infra
    run_dir: Path
    env: dict[str, str]
    ports: dict[str, int]
    procs: dict[str, Any] = field(default_factory=dict)
    #: instances of a service that runs several, by name (``router-2``)
    instances: dict[str, Instance] = field(default_factory=dict)

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
        # idle connections are dropped before the server's 5 s keep-alive ends: with equal
        # timeouts a request sent on a connection the server is closing fails (seen once in CI)
        return httpx.Client(base_url=self.base_url, timeout=timeout,
                            limits=httpx.Limits(keepalive_expiry=2.0),
                            auth=NaturalCaller(self.run_dir, routing=routing, gazetteer=gazetteer))

    def token(self, principal: Principal) -> str:
        """A token of this stack's issuer for `principal`."""
        return token_for(self.run_dir, principal)

    def health_url(self, service: str) -> str:
        """The base URL of a service, or of one instance of several (``router-2``)."""
        if service in self.instances:
            return f"http://127.0.0.1:{self.instances[service].port}"
        port = {
            "intake": self.ports["PETITION_HTTP_PORT"],
            "router": self.ports["PETITION_ROUTER_PORT"],
            "escalation": self.ports["PETITION_ESCALATION_PORT"],
            "watch": self.ports["PETITION_WATCH_PORT"],
        }[service]
        return f"http://127.0.0.1:{port}"

    def add_instances(self, service: str, count: int) -> list[str]:
        """Name `count` instances of `service` (``<service>-<n>``), each on a free port of its
        own (intake's workers: their private ports; they all serve the API on
        PETITION_HTTP_PORT, :attr:`base_url`); start them with :meth:`start`. Returns their names."""
        names = []
        for n, port in enumerate(free_ports(count), start=1):
            name = f"{service}-{n}"
            self.instances[name] = Instance(service, n, name, port)
            names.append(name)
        return names

    def start(self, service: str, timeout: float = 90) -> None:
        """Start a service, or one of its named instances (:meth:`add_instances`); wait up to
        `timeout` seconds for it to be ready."""
        instance = self.instances.get(service)
        proc = service_process(instance.part if instance else service, self.env, self.run_dir, instance)
        proc.start()
        self.procs[service] = proc
        if not wait_http_ready(f"{self.health_url(service)}/readyz", timeout, proc):
            raise RuntimeError(f"{service} not ready:\n{tail(proc.log_file, 60)}")

    def stop(self, service: str) -> None:
        self.procs[service].stop()

    def kill(self, service: str) -> None:
        import os
        import signal

        pid = self.procs[service].pid
        if pid is None:
            return  # not running (it died on its own): nothing to kill
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
    names = ["PETITION_HTTP_PORT", "PETITION_ROUTER_PORT", "PETITION_ESCALATION_PORT", "PETITION_INTAKE_WORKER_PORT",
             "PETITION_MAIL_PORT", "PETITION_WATCH_PORT"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = infra.service_env(hmac_key=uuid.uuid4().hex * 2, **ports)
    env["PETITION_RUN_DIR"] = str(run_dir)
    env["PETITION_LOG_LEVEL"] = "INFO"
    env["PETITION_MAIL_MAX_BYTES"] = str(512 * 1024)  # an oversized message is cheap to send
    if own_table:
        table_dir = run_dir / "router-data"
        table_dir.mkdir()
        for name in ("routing.yaml", "gazetteer.yaml"):
            shutil.copy(REPO / "services" / "router" / "data" / name, table_dir / name)
        env["PETITION_ROUTING_TABLE_PATH"] = str(table_dir / "routing.yaml")
        env["PETITION_GAZETTEER_PATH"] = str(table_dir / "gazetteer.yaml")
    return Stack(infra=infra, run_dir=run_dir, env=env, ports=ports)


@contextlib.contextmanager
def running(s: Stack, services: tuple[str, ...] = SERVICES,
            counts: dict[str, int] | None = None, ready_timeout: float = 90) -> Iterator[Stack]:
    """Create the petition topics, start `services` (`counts` instances of some, named
    ``<service>-<n>``: ``{"intake": 2}`` runs two intake workers on the one API port; each
    given `ready_timeout` seconds to be ready), stop them afterwards."""
    done = s.petitionctl("topics", "ensure", "--no-departments")
    assert done.returncode == 0, done.stderr
    try:
        for service in services:
            count = (counts or {}).get(service, 1)
            for name in s.add_instances(service, count) if count > 1 else [service]:
                s.start(name, ready_timeout)
        yield s
    finally:
        for proc in s.procs.values():
            proc.stop()
