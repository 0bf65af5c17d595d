"""Chaos under load: petitions flow through the HTTP API while a driver kills, at random
moments, an instance of every service, a broker (when the cluster has several) and PostgreSQL
(SIGKILL, then a restart), and checks from the outside that nothing was lost or done twice.

Short in ``make test`` (``PETITION_CHAOS_SECONDS``, default 60 s of load); ``make chaos
MINUTES=20`` runs the same for as long as asked and prints the counts. Checked at the end,
once the accepted petitions have drained:

* every petition answered ``202`` is routed exactly once: one first assignment on
  ``petition.routed``, published under one event id, and one first assignment in the
  department's own queue as its consumer reads it (distinct event ids; redeliveries of the
  same id, which the consumer drops, are counted apart);
* every routed petition has its clocks (``sla.clock_armed``), each armed under one id;
* no timer fired twice (a warning or breach of one clock under two ids);
* no dead letter (the input is well formed);
* how long each part took to be ready again after its kill.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.stack.testinfra import Infra, start_test_infra
from shared import topics
from tests.integration.conftest import WITH_WATCH, Stack, consume_all, new_stack, petition, running, wait_for

pytestmark = pytest.mark.integration

SECONDS = float(os.environ.get("PETITION_CHAOS_SECONDS", "60"))
RATE = float(os.environ.get("PETITION_CHAOS_RATE", "10"))  # petitions a second, open loop
BROKERS = int(os.environ.get("PETITION_CHAOS_BROKERS", "3"))
COUNTS = {"router": 2, "escalation": 2, "watch": 2}


def _start_infra(root: Path) -> Infra:
    try:
        return start_test_infra(root, brokers=BROKERS)  # type: ignore[call-arg]  # a cluster where supported
    except TypeError:
        return start_test_infra(root)


@pytest.fixture(scope="module")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    infra = _start_infra(tmp_path_factory.mktemp("chaos-infra"))
    try:
        s = new_stack(infra, tmp_path_factory.mktemp("chaos-run"))
        # a static member killed without a goodbye holds its partitions until this runs out
        s.env["PETITION_CONSUMER_SESSION_TIMEOUT_SECONDS"] = "10"
        with running(s, WITH_WATCH, COUNTS):
            yield s
    finally:
        infra.stop()


@dataclass
class Load:
    """Open-loop submissions at a fixed rate; remembers every answer."""

    stack: Stack
    rate: float
    accepted: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self, seconds: float) -> None:
        pool = concurrent.futures.ThreadPoolExecutor(16)
        started = time.monotonic()
        i = 0
        while not self._stop.is_set() and time.monotonic() - started < seconds:
            due = started + i / self.rate
            time.sleep(max(0.0, due - time.monotonic()))
            pool.submit(self._one)
            i += 1
        pool.shutdown(wait=True)

    def _one(self) -> None:
        tag = uuid.uuid4().hex[:8]
        body = petition(content=f"我是A市A3区某小区的居民，楼下的餐馆每天深夜排放油烟，编号{tag}，请处理。")
        try:
            with self.stack.client(timeout=15) as client:
                r = client.post("/v1/petitions", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
        except httpx.HTTPError as exc:
            self.statuses[type(exc).__name__] += 1
            return
        self.statuses[str(r.status_code)] += 1
        if r.status_code == 202:
            self.accepted.append(r.json()["id"])


@dataclass
class Kill:
    victim: str
    at: float
    recovered_after: float | None = None


class Driver:
    """Kills a victim at random moments (each kind in turn, in a shuffled order) and restarts it."""

    def __init__(self, stack: Stack, rng: random.Random) -> None:
        self.stack, self.rng = stack, rng
        nodes = getattr(stack.infra, "kafka_nodes", None) or getattr(stack.infra.kafka, "nodes", None) or []
        self.brokers = list(nodes) if len(nodes) > 1 else []
        self.kills: list[Kill] = []
        self.started = time.monotonic()

    def victims(self) -> list[str]:
        names = ["intake", *self.stack.instances, "postgres"]
        names += [f"broker-{i + 1}" for i in range(len(self.brokers))]
        return names

    def run(self, seconds: float) -> None:
        order: list[str] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline - 5:
            time.sleep(self.rng.uniform(3.0, 8.0))
            if not order:
                order = self.victims()
                self.rng.shuffle(order)
            self.kill(order.pop())

    def kill(self, victim: str) -> None:
        kill = Kill(victim, round(time.monotonic() - self.started, 1))
        self.kills.append(kill)
        began = time.monotonic()
        if victim == "postgres":
            _kill_postgres(self.stack.infra)
            time.sleep(self.rng.uniform(1.0, 4.0))
            self.stack.infra.postgres.start()
            ready = self._wait(lambda: _ready(self.stack, "intake"))
        elif victim.startswith("broker-"):
            node = self.brokers[int(victim.split("-")[1]) - 1]
            os.kill(node.pid, signal.SIGKILL)
            time.sleep(self.rng.uniform(1.0, 4.0))
            node.start()
            ready = self._wait(lambda: _broker_ready(node))
        else:
            self.stack.kill(victim)
            self.stack.start(victim)  # waits until ready
            ready = True
        kill.recovered_after = round(time.monotonic() - began, 1) if ready else None

    @staticmethod
    def _wait(probe: Any, timeout: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if probe():
                return True
            time.sleep(0.25)
        return False


def _ready(stack: Stack, service: str) -> bool:
    try:
        return httpx.get(f"{stack.health_url(service)}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _broker_ready(node: Any) -> bool:
    from deploy.stack.process import port_accepts

    return bool(node.pid) and port_accepts(node.port)


def _kill_postgres(infra: Infra) -> None:
    """SIGKILL the postmaster and every process it started (a crash, not a shutdown)."""
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
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if infra.postgres.pid is None:
            break
        time.sleep(0.05)


def _events(stack: Stack, topic: str) -> list[dict[str, Any]]:
    return [json.loads(m.value) for m in consume_all(stack.infra.admin, topic, idle_ms=2000)]


def test_nothing_is_lost_or_done_twice_while_parts_die(chaos_stack: Stack) -> None:
    stack = chaos_stack
    load, driver = Load(stack, RATE), Driver(stack, random.Random(os.environ.get("PETITION_CHAOS_SEED", "17")))
    killer = threading.Thread(target=driver.run, args=(SECONDS,), daemon=True)
    killer.start()
    load.run(SECONDS)
    killer.join(timeout=300)
    accepted = set(load.accepted)
    assert accepted, f"nothing accepted: {dict(load.statuses)}"

    def routed_all() -> dict[tuple[str, int], set[str]] | None:
        ids: dict[tuple[str, int], set[str]] = defaultdict(set)
        for e in _events(stack, topics.PETITION_ROUTED):
            ids[e["petition_id"], e["assignment_no"]].add(e["event_id"])
        return ids if accepted <= {pid for pid, no in ids if no == 1} else None

    routed = wait_for(routed_all, timeout=240, interval=3)
    twice = {k: v for k, v in routed.items() if len(v) > 1}
    assert twice == {}, f"decisions published under two ids: {twice}"
    firsts = {pid: next(iter(ids)) for (pid, no), ids in routed.items() if no == 1}
    departments = {e["petition_id"]: e["department_code"] for e in _events(stack, topics.PETITION_ROUTED)
                   if e["assignment_no"] == 1}

    queued: dict[str, set[str]] = defaultdict(set)
    redelivered = 0
    for code in sorted({departments[pid] for pid in accepted}):
        seen: Counter[str] = Counter()
        for e in _events(stack, topics.department_topic(code)):
            if e["assignment_no"] == 1:
                queued[e["petition_id"]].add(e["event_id"])
                seen[e["event_id"]] += 1
        redelivered += sum(n - 1 for n in seen.values())
    assert {pid for pid in accepted if len(queued[pid]) != 1} == set(), "not exactly one first assignment queued"

    def armed_all() -> dict[tuple[str, str, str], set[str]] | None:
        ids: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        for e in _events(stack, topics.PETITION_SLA):
            ids[e["petition_id"], e["event_type"], f'{e.get("clock")}@{e.get("due_at") or e.get("started_at")}'].add(
                e["event_id"])
        armed = {pid for pid, kind, _ in ids if kind == "sla.clock_armed"}
        return ids if accepted <= armed else None

    sla = wait_for(armed_all, timeout=180, interval=3)
    fired_twice = {k: v for k, v in sla.items() if len(v) > 1}
    assert fired_twice == {}, f"clock events under two ids: {fired_twice}"

    dead = {t: len(consume_all(stack.infra.admin, t, idle_ms=500)) for t in (
        topics.DEAD_LETTER_INTAKE, topics.DEAD_LETTER_ROUTER, topics.DEAD_LETTER_ESCALATION, topics.DEAD_LETTER_WATCH)}
    kinds = Counter(k.victim.rsplit("-", 1)[0] if k.victim[-1].isdigit() else k.victim for k in driver.kills)
    report = {
        "seconds": SECONDS, "rate": RATE, "answers": dict(load.statuses), "accepted": len(accepted),
        "routed": len(accepted & set(firsts)), "lost": len(accepted - set(firsts)), "duplicated": len(twice),
        "redelivered_in_queues": redelivered, "dead_letters": dead, "kills": dict(kinds),
        "recovery_seconds": [(k.victim, k.at, k.recovered_after) for k in driver.kills],
    }
    print("\nchaos:", json.dumps(report, ensure_ascii=False))
    assert sum(dead.values()) == 0, dead
    assert all(k.recovered_after is not None for k in driver.kills), report
