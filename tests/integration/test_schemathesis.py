"""Schemathesis over the published OpenAPI document, every check, against a running intake,
anonymously and as an operator, a department's clerk and a supervisor.

The run posts hundreds of petitions, actions and zero reports. So it does not hit the session
stack (other tests count events on its topics, read its queues and judge its zero reports):
it starts an intake process of its own on the session's PostgreSQL server with a database of
its own, and a broker address nobody listens on, so nothing it accepts ever leaves that
database (its outbox relay keeps retrying; /readyz says so, which the run does not need).
Bounded: ``ST_MAX_EXAMPLES`` examples per operation (default 40; a quarter anonymously, where
every operation but the public ones answers 401) and ``ST_MAX_TIME`` seconds per caller
(default 60; a third anonymously), on this 2-core machine about 3–4 minutes in all. As a caller,
schemathesis sends the token itself, so it also checks that each operation refuses a request
without it (401, not a 2xx).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.callers import token_for
from deploy.stack import free_ports, service_process, tail
from deploy.stack.testinfra import Infra
from shared.identity import Principal, Role
from tests.integration.conftest import REPO

pytestmark = pytest.mark.integration

SCHEMATHESIS = REPO / ".venv" / "bin" / "schemathesis"


@pytest.fixture(scope="module")
def lone_intake(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    run_dir = tmp_path_factory.mktemp("schemathesis-intake")
    port, dead_broker = free_ports(2)
    env = infra.service_env(hmac_key=uuid.uuid4().hex * 2, PETITION_HTTP_PORT=port)
    env.update({
        "PETITION_RUN_DIR": str(run_dir),
        "PETITION_PG_DSN": infra.fresh_database("schemathesis"),
        "PETITION_KAFKA_BOOTSTRAP": f"127.0.0.1:{dead_broker}",
        "PETITION_LOG_LEVEL": "WARNING",
        # the run is one caller sending as fast as it can: flood control would answer it 429
        # (declared, but not what this run is about; tests/unit/test_rate_limit.py is)
        "PETITION_RATE_LIMIT_PER_SECOND": "0",
    })
    proc = service_process("intake", env, run_dir)
    proc.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not proc.is_running():
            raise RuntimeError(f"intake not up:\n{tail(proc.log_file, 60)}")
        time.sleep(0.3)
    try:
        yield base, run_dir
    finally:
        proc.stop()


CALLERS: dict[str, Principal | None] = {
    "anonymous": None,
    "operator": Principal("st-operator", Role.OPERATOR),
    "department": Principal("st-clerk", Role.DEPARTMENT, frozenset({"A3-HOUSING", "A3-S01"})),
    "supervisor": Principal("st-supervisor", Role.SUPERVISOR, area="430103"),
}


@pytest.mark.parametrize("caller", list(CALLERS))
def test_schemathesis_finds_nothing_with_every_check(
    lone_intake: tuple[str, Path], tmp_path: Path, caller: str
) -> None:
    base, run_dir = lone_intake
    principal = CALLERS[caller]
    examples, seconds = int(os.environ.get("ST_MAX_EXAMPLES", "40")), int(os.environ.get("ST_MAX_TIME", "60"))
    if principal is None:
        examples, seconds = max(examples // 4, 5), max(seconds // 3, 20)
    report = tmp_path / "report.json"
    args = [
        str(SCHEMATHESIS), "run", f"{base}/openapi.json", "--checks", "all",
        "--max-examples", str(examples), "--max-time", str(seconds),
        "--seed", os.environ.get("ST_SEED", "20261122"),
        "--workers", "1", "--request-timeout", "20",
        "--report", "json", "--report-json-path", str(report), "--no-color",
    ]
    if principal is not None:
        args += ["--header", f"Authorization: Bearer {token_for(run_dir, principal, ttl=3600)}"]
    started = time.monotonic()
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    elapsed = time.monotonic() - started
    figures = _figures(report)
    print(f"\nschemathesis as {caller}: {figures} in {elapsed:.0f} s")
    (tmp_path / "schemathesis.txt").write_text(done.stdout)
    # the failures section, each line cut short (a generated body can be half a megabyte)
    section = done.stdout.split("FAILURES", 1)[-1]
    tail = "\n".join(line[:400] for line in section.splitlines())[-20000:]
    assert done.returncode == 0, f"{figures}\n{tail}\n{done.stderr[-3000:]}"
    assert figures.get("failures", 0) == 0, tail
    assert figures.get("operations", 0) >= 7 and figures.get("cases", 0) > 0, tail


def _figures(report: Path) -> dict[str, int]:
    """Operations tested, cases generated, unique failures, from schemathesis's JSON report."""
    if not report.exists():
        return {}
    data = json.loads(report.read_text())
    return {
        "operations": int(data["operations"]["tested"]),
        "cases": int(data["test_cases"]["generated"]),
        "failures": int(data["test_cases"]["unique_failures"]),
    }
