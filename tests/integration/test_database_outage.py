"""PostgreSQL restarted under load, and frozen: the stack keeps working, nothing is lost.

These tests stop and freeze the database, so they run on a broker and a database of their
own (the rest of the suite keeps its session stack). Found by fault injection: after a
database restart intake's relay (and, under load, escalation's) published nothing more
while ``/readyz`` said ready; with the database frozen for 8 s submissions hung for 8-9 s
and then answered 202.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from deploy.stack import service_process, wait_http_ready
from deploy.stack.testinfra import start_test_infra
from tests.integration.conftest import SERVICES, Stack, new_stack, petition, postgres_pids, running, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    infra = start_test_infra(tmp_path_factory.mktemp("outage-infra"))
    try:
        with running(new_stack(infra, tmp_path_factory.mktemp("outage-run"))) as s:
            yield s
    finally:
        infra.stop()


def _metric(url: str, name: str, labels: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} ([0-9.e+-]+)$", text, re.M)
    return float(m[1]) if m else 0.0




class Load:
    """Open-loop submissions at a fixed rate in a thread; remembers every answer."""

    def __init__(self, stack: Stack, rate: float) -> None:
        self.stack, self.interval = stack, 1.0 / rate
        self.accepted: list[str] = []
        self.statuses: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._pool = concurrent.futures.ThreadPoolExecutor(8)

    def _one(self, client: httpx.Client) -> None:
        try:
            r = client.post("/v1/petitions", json=petition(), headers={"Idempotency-Key": uuid.uuid4().hex})
        except httpx.HTTPError:
            self.statuses[-1] = self.statuses.get(-1, 0) + 1
            return
        self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
        if r.status_code == 202:
            self.accepted.append(r.json()["id"])

    def _run(self) -> None:
        with self.stack.client(timeout=15) as client:
            nxt = time.monotonic()
            while not self._stop.is_set():
                self._pool.submit(self._one, client)
                nxt += self.interval
                time.sleep(max(nxt - time.monotonic(), 0))
            self._pool.shutdown(wait=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)


def test_relays_publish_again_after_postgres_restarts_under_load(outage_stack: Stack) -> None:
    s = outage_stack
    with s.client(timeout=10) as client:
        first = client.post("/v1/petitions", json=petition())
        assert first.status_code == 202
        wait_for(lambda: client.get(f"/v1/petitions/{first.json()['id']}").json()["deadlines"], timeout=60)
    published = {svc: (s.health_url(svc), f'service="{svc}"') for svc in SERVICES}
    with Load(s, rate=25) as load:
        time.sleep(3)
        s.infra.postgres.stop()
        down = time.monotonic()
        time.sleep(3)
        during = httpx.get(f"{s.base_url}/readyz", timeout=10)
        s.infra.postgres.start()
        back = time.monotonic()
        before = {svc: _metric(url, "petition_outbox_published_total", lab) for svc, (url, lab) in published.items()}
        again: dict[str, float] = {}
        deadline = back + 60
        while len(again) < len(SERVICES) and time.monotonic() < deadline:
            for svc, (url, lab) in published.items():
                if svc not in again and _metric(url, "petition_outbox_published_total", lab) > before[svc]:
                    again[svc] = time.monotonic() - back
            time.sleep(0.2)
        time.sleep(5)
    print(f"\npostgres down {back - down:.1f}s; relays publishing again after PostgreSQL came back: "
          + ", ".join(f"{k} {v:.1f}s" for k, v in sorted(again.items()))
          + f"; answers during the run: {load.statuses}")
    # while the database was down intake said so, naming the part
    assert during.status_code == 503 and during.json()["checks"]["postgres"] is False
    assert set(again) == set(SERVICES), f"relays that never published again: {set(SERVICES) - set(again)}"
    assert max(again.values()) < 30
    assert set(load.statuses) <= {202, 503}, load.statuses  # never a 500, never a hang
    assert load.statuses.get(503, 0) > 0 and load.statuses.get(202, 0) > 50
    # every 202 is routed and has its deadlines: nothing stuck in an outbox
    with s.client(timeout=10) as client:

        def deadlines_of(pid: str) -> list[Any]:
            # hundreds of lookups in a row are a flood for the rate limiter: wait as told
            while (answer := client.get(f"/v1/petitions/{pid}")).status_code == 429:
                time.sleep(float(answer.headers.get("retry-after", "1")))
            return list(answer.json()["deadlines"]) if answer.status_code == 200 else []

        def without_deadlines() -> list[str]:
            return [pid for pid in load.accepted if not deadlines_of(pid)]

        missing = load.accepted
        end = time.monotonic() + 90
        while missing and time.monotonic() < end:
            missing = without_deadlines()
            time.sleep(1)
        assert missing == [], f"{len(missing)} of {len(load.accepted)} accepted petitions never got deadlines"
        for svc in SERVICES:
            ready = wait_for(lambda svc=svc: httpx.get(f"{s.health_url(svc)}/readyz", timeout=10).status_code == 200,  # type: ignore[misc]  # mypy cannot infer a lambda with a default argument
                             timeout=30)
            assert ready


def test_frozen_postgres_answers_503_within_the_bound_never_a_late_202(outage_stack: Stack) -> None:
    s = outage_stack
    bound = float(s.env.get("PETITION_REQUEST_TIMEOUT_SECONDS", "2.5"))
    with s.client(timeout=10) as client:
        assert client.post("/v1/petitions", json=petition()).status_code == 202  # the pool is warm
    pids = postgres_pids(s.infra)
    results: list[tuple[int, float, str | None]] = []

    def submit(i: int) -> tuple[int, float, str | None]:
        started = time.monotonic()
        with s.client(timeout=20) as c:
            r = (c.post("/v1/petitions", json=petition()) if i % 3 else c.get(f"/v1/petitions/XF-{i:08d}"))
        return r.status_code, time.monotonic() - started, r.headers.get("retry-after")

    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            results = list(pool.map(submit, range(24)))
        ready = httpx.get(f"{s.base_url}/readyz", timeout=20)
        remaining = 8 - (time.monotonic() - frozen)
        if remaining > 0:
            time.sleep(remaining)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    thawed = time.monotonic() - frozen
    latencies = sorted(t for _, t, _ in results)
    print(f"\npostgres frozen {thawed:.1f}s; {len(results)} requests: statuses "
          f"{sorted({c for c, _, _ in results})}, latency median {latencies[len(latencies) // 2]:.2f}s,"
          f" max {latencies[-1]:.2f}s (bound {bound}s)")
    assert all(code == 503 for code, _, _ in results), results
    assert all(retry for _, _, retry in results), "every 503 says when to retry"
    assert latencies[-1] < bound + 1.5
    assert ready.status_code == 503 and ready.json()["checks"]["postgres"] is False
    # after the thaw the same service takes petitions again within seconds
    with s.client(timeout=10) as client:
        after = wait_for(lambda: (r := client.post("/v1/petitions", json=petition())).status_code == 202 and r,
                         timeout=30)
        wait_for(lambda: client.get(f"/v1/petitions/{after.json()['id']}").json()["status"] == "assigned", timeout=60)


def test_services_started_while_postgres_is_down_serve_once_it_is_back(outage_stack: Stack) -> None:
    """A restart in an outage (or a host booting before its database) waits for PostgreSQL
    instead of exiting: each process lives on, and is ready once the database answers."""
    s = outage_stack
    for svc in SERVICES:
        s.kill(svc)
    s.infra.postgres.stop()
    try:
        for svc in SERVICES:
            s.procs[svc] = service_process(svc, s.env, s.run_dir)
            s.procs[svc].start()
        time.sleep(10)
        assert [svc for svc in SERVICES if not s.procs[svc].is_running()] == [], "exited while PostgreSQL was down"
    finally:
        s.infra.postgres.start()
    for svc in SERVICES:
        assert wait_http_ready(f"{s.health_url(svc)}/readyz", 90, s.procs[svc]), svc
    with s.client(timeout=10) as client:
        answer = client.post("/v1/petitions", json=petition())
        assert answer.status_code == 202
        wait_for(lambda: client.get(f"/v1/petitions/{answer.json()['id']}").json()["deadlines"], timeout=60)
