"""End to end, open loop: operators' HTTP requests -> intake -> router -> the department's queue.

Starts a private broker and database (``start_test_infra``; with ``brokers=3`` too when it
takes that argument) and the whole stack on free ports: intake, router, escalation and watch,
each as its own broker principal, every topic created first (department queues included),
as a deployment does. The load generator is the project's own asyncio client
(bench/e2e_load.py, in a process of its own): open loop, request i leaves at t0 + i/rate
whatever the earlier answers, at most ``BENCH_E2E_IN_FLIGHT`` (512) in flight; a request that
cannot leave within a second of its time is not sent and counts as late. It posts real
petition texts from ``../shared/data`` with the tokens of 200+ operators.

Per rate (``BENCH_E2E_RATES``, default 100,500,1000,2000 a second, ``BENCH_E2E_SECONDS`` (20)
each) it measures:

* accepted/s (answered 202) and every other outcome by status;
* submit -> 202: answer time minus the request's *scheduled* time (so waiting for an
  in-flight slot counts: no coordinated omission);
* submit -> routed: the timestamp of the petition's first ``petition.routed`` record (set by
  the router's relay when it publishes) minus the scheduled time, matched by petition id (the
  202's body);
* submit -> in the department's queue: the timestamp of the petition's record in the queue
  the routed event names, read as the admin after the step;
* CPU ms per petition of each service process with its children (the router's worker and
  relay processes), the broker(s) and PostgreSQL (from /proc), over the step and the drain
  of its routing backlog; each one's cores in use while the load ran; RSS of each service
  (VmRSS of the process and its children).

Then the highest rate sustained is searched by bisection (``BENCH_E2E_SEARCH_STEPS``, 4, of
``BENCH_E2E_SEARCH_SECONDS``, 10 s each). A rate is sustained when every request was sent on
time and answered 202, p99 submit -> 202 is under 1 s, and every accepted petition was routed,
the last within 10 s of the step's end (bench/e2e_rules.py). The same generator drives a bare
baseline (bench/e2e_baseline.py: FastAPI + asyncpg committing intake's petition row and an
outbox row) at the same rates on the same machine, first, and the report gives the stack's
figures as ratios of the baseline's. The generator's own ceiling (closed loop against a
trivial asyncio server) is measured first; ``BENCH_E2E_CLIENT`` = auto (httpx when it can do
1.25x the highest rate, else raw asyncio streams), raw or httpx.

Reproduce: ``make bench`` or ``.venv/bin/python -m bench e2e``; ``BENCH_E2E_BROKERS`` (``1,3``:
both when ``start_test_infra`` takes ``brokers``), ``BENCH_E2E_RATES``, ``BENCH_E2E_SECONDS``,
``BENCH_E2E_SEARCH_STEPS`` (0: no search), ``BENCH_E2E_SEARCH_SECONDS``, ``BENCH_E2E_IN_FLIGHT``,
``BENCH_E2E_CLIENT``, ``BENCH_E2E_BASELINE=0`` (skip the baseline); ``BENCH_KEEP=1`` keeps the
run's folder (logs, the generator's raw results), which is otherwise deleted.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.e2e_rules import (
    StepOutcome,
    Summary,
    highest_sustained,
    next_rate,
    parse_brokers,
    parse_rates,
    summarize,
    sustained,
)
from bench.machine import describe

if TYPE_CHECKING:
    from deploy.stack import ServiceProcess
    from deploy.stack.testinfra import Infra
    from shared.kafka_client import KafkaAccess

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python")
SERVICES = ("intake", "router", "escalation", "watch")
#: the parts of the machine accounted for, in the report's order
PARTS = (*SERVICES, "kafka", "postgres")
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


# --- /proc: CPU and memory of process trees --------------------------------------------------

def _read_procs() -> dict[int, tuple[int, float, int, str]]:
    """pid -> (parent, CPU seconds so far, RSS bytes, command line)."""
    out: dict[int, tuple[int, float, int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK,
                                int(fields[21]) * _PAGE, cmdline)
    return out


def _machine_busy() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / _TICK


@dataclass
class Usage:
    """One reading: per part, CPU seconds of its whole tree and of its main process alone,
    RSS of the tree; the machine's busy CPU seconds; when (monotonic)."""

    tree: dict[str, float]
    main: dict[str, float]
    rss: dict[str, int]
    busy: float
    at: float


class Accounting:
    """The process trees of the parts of the stack, found again at each reading (a router's
    worker processes may restart)."""

    def __init__(self, infra_root: Path) -> None:
        self.infra_root = str(infra_root)
        self.roots: dict[str, list[int]] = {}
        self.postgres_pid: int | None = None

    def read(self) -> Usage:
        procs = _read_procs()
        children: dict[int, list[int]] = {}
        for pid, (ppid, *_rest) in procs.items():
            children.setdefault(ppid, []).append(pid)
        roots = dict(self.roots)
        roots["kafka"] = [pid for pid, p in procs.items() if "kafka.Kafka" in p[3] and self.infra_root in p[3]]
        roots["postgres"] = [self.postgres_pid] if self.postgres_pid else []
        roots["bench"] = [os.getpid()]
        tree: dict[str, float] = {}
        main: dict[str, float] = {}
        rss: dict[str, int] = {}
        for part, pids in roots.items():
            seen: set[int] = set()
            todo = [p for p in pids if p in procs]
            main[part] = sum(procs[p][1] for p in todo)
            while todo:
                pid = todo.pop()
                if pid in seen:
                    continue
                seen.add(pid)
                if part != "bench":  # the bench's children are the stack: counted there
                    todo.extend(children.get(pid, ()))
            tree[part] = sum(procs[p][1] for p in seen)
            rss[part] = sum(procs[p][2] for p in seen)
        return Usage(tree, main, rss, _machine_busy(), time.monotonic())


def _cores(before: Usage, after: Usage, which: str = "tree") -> dict[str, float]:
    span = max(after.at - before.at, 1e-6)
    a, b = getattr(after, which), getattr(before, which)
    used = {part: max(a.get(part, 0.0) - b.get(part, 0.0), 0.0) / span for part in a}
    used["machine"] = max(after.busy - before.busy, 0.0) / span
    return used


# --- Kafka: what the router wrote ------------------------------------------------------------

class RoutedWatcher(threading.Thread):
    """Reads petition.routed from the start as the admin: per petition, its first record's
    timestamp and department."""

    def __init__(self, access: KafkaAccess) -> None:
        super().__init__(daemon=True, name="routed-watcher")
        from kafka import KafkaConsumer, TopicPartition

        from shared import topics

        self.first: dict[str, tuple[float, str]] = {}
        self.timestamp_types: Counter[int] = Counter()
        self._stop_event = threading.Event()
        self._consumer = KafkaConsumer(**access.options(), enable_auto_commit=False, group_id=None)
        parts = sorted(self._consumer.partitions_for_topic(topics.PETITION_ROUTED) or [])
        self._consumer.assign([TopicPartition(topics.PETITION_ROUTED, p) for p in parts])
        self._consumer.seek_to_beginning()

    def run(self) -> None:
        while not self._stop_event.is_set():
            for records in self._consumer.poll(timeout_ms=200, max_records=5000).values():
                for r in records:
                    key = (r.key or b"").decode()
                    if key in self.first:
                        continue  # a later assignment (a return, a 并案): the first one counts
                    self.first[key] = (r.timestamp / 1000, json.loads(r.value)["department_code"])
                    self.timestamp_types[r.timestamp_type] += 1
        self._consumer.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


class QueueReader:
    """Reads department queues as the admin, each from where it stopped: per petition, the
    timestamp of its first record."""

    def __init__(self, access: KafkaAccess) -> None:
        from kafka import KafkaConsumer

        self._consumer = KafkaConsumer(**access.options(), enable_auto_commit=False, group_id=None)
        self._positions: dict[Any, int] = {}
        self.first: dict[str, float] = {}

    def read(self, departments: set[str], timeout: float = 60) -> None:
        from kafka import TopicPartition

        from shared import topics

        if not departments:
            return
        self._consumer.topics()  # one metadata request for every topic
        tps = [TopicPartition(t, p) for t in sorted(topics.department_topic(d) for d in departments)
               for p in sorted(self._consumer.partitions_for_topic(t) or {0})]
        self._consumer.assign(tps)
        for tp in tps:
            self._consumer.seek(tp, self._positions.get(tp, 0))
        ends = self._consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(self._consumer.position(tp) < ends[tp] for tp in tps):
            for tp, records in self._consumer.poll(timeout_ms=500, max_records=10000).items():
                for r in records:
                    self.first.setdefault((r.key or b"").decode(), r.timestamp / 1000)
                self._positions[tp] = self._consumer.position(tp)
        for tp in tps:
            self._positions[tp] = self._consumer.position(tp)

    def close(self) -> None:
        self._consumer.close()


# --- one step at one rate --------------------------------------------------------------------

@dataclass
class Step:
    rate: float
    seconds: float
    search: bool
    scheduled: int
    accepted: int
    late_generator: int
    late_in_flight: int
    errors: Counter[str]
    answered: Summary
    send_lag_p99: float | None
    routed: Summary = field(default_factory=lambda: summarize([]))
    queued: Summary = field(default_factory=lambda: summarize([]))
    routed_count: int = 0
    drained_after: float | None = None
    cores: dict[str, float] = field(default_factory=dict)  # per part (tree), while the load ran
    main_cores: dict[str, float] = field(default_factory=dict)  # per part (main process alone)
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per accepted petition, load + drain
    rss_mib: dict[str, float] = field(default_factory=dict)
    ok: bool = False
    why: str = ""

    @property
    def accepted_per_second(self) -> float:
        return self.accepted / self.seconds


@dataclass
class Target:
    """What a step loads: the stack (routing measured) or the baseline."""

    name: str
    url: str
    routing: bool
    tokens: Path
    accounting: Accounting
    watcher: RoutedWatcher | None = None
    queues: QueueReader | None = None
    procs: dict[str, ServiceProcess] = field(default_factory=dict)


@dataclass
class Settings:
    rates: list[float]
    seconds: float
    search_steps: int
    search_seconds: float
    in_flight: int
    client: str
    tmp: Path
    drain_wait: float = 30.0


def run_step(t: Target, s: Settings, rate: float, seconds: float, label: str, *, search: bool = False) -> Step:
    from bench.e2e_load import BROKEN, LATE_GENERATOR, LATE_IN_FLIGHT, OUTCOME_NAMES, TIMEOUT

    out = s.tmp / f"{label}.json"
    for proc in t.procs.values():
        if proc.exited():
            raise RuntimeError(f"{proc.name} died; see {proc.log_file}")
    gen = subprocess.Popen([PYTHON, "-m", "bench.e2e_load", "open", "--url", t.url, "--client", s.client,
                            "--tokens", str(t.tokens), "--rate", str(rate), "--seconds", str(seconds),
                            "--in-flight", str(s.in_flight), "--label", f"{label}-{uuid.uuid4().hex[:8]}",
                            "--seed", str(int(rate)), "--out", str(out)],
                           cwd=REPO, stdout=subprocess.PIPE, text=True)
    t.accounting.roots["generator"] = [gen.pid]
    try:
        assert gen.stdout is not None  # noqa: S101 - narrows the type
        first_line = gen.stdout.readline()
        if not first_line.startswith("start "):
            raise RuntimeError(f"the generator did not start (exit {gen.wait()})")
        before = t.accounting.read()
        if gen.stdout.readline().strip() != "end":
            raise RuntimeError(f"the generator stopped early (exit {gen.wait()})")
        loaded = t.accounting.read()
        gen.wait(timeout=seconds + 120)
    finally:
        if gen.poll() is None:
            gen.kill()
            gen.wait()
    r = json.loads(out.read_text(encoding="utf-8"))
    t0, status, sent, done, ids = r["t0_wall"], r["status"], r["sent"], r["done"], r["ids"]
    at = [i / rate for i in range(r["total"])]
    accepted = [i for i, c in enumerate(status) if c == 202 and ids[i]]
    errors: Counter[str] = Counter()
    for c in status:
        if c == 202 or c in (LATE_GENERATOR, LATE_IN_FLIGHT):
            continue
        errors[OUTCOME_NAMES[c] if c in (TIMEOUT, BROKEN) else str(c)] += 1
    step = Step(rate=rate, seconds=seconds, search=search, scheduled=r["total"], accepted=len(accepted),
                late_generator=status.count(LATE_GENERATOR), late_in_flight=status.count(LATE_IN_FLIGHT),
                errors=errors, answered=summarize([done[i] - at[i] for i in accepted]),
                send_lag_p99=summarize([x - at[i] for i, x in enumerate(sent) if x >= 0]).p99)
    step.cores, step.main_cores = _cores(before, loaded), _cores(before, loaded, "main")
    end_wall = t0 + seconds
    after = loaded
    if t.routing and t.watcher is not None and t.queues is not None:
        wanted = {ids[i]: t0 + at[i] for i in accepted}
        deadline = time.monotonic() + s.drain_wait
        while time.monotonic() < deadline and any(pid not in t.watcher.first for pid in wanted):
            time.sleep(0.2)
        after = t.accounting.read()
        routed = {pid: t.watcher.first[pid] for pid in wanted if pid in t.watcher.first}
        step.routed_count = len(routed)
        step.routed = summarize([ts - wanted[pid] for pid, (ts, _d) in routed.items()])
        if routed and len(routed) == len(wanted):
            step.drained_after = max(0.0, max(ts for ts, _d in routed.values()) - end_wall)
        t.queues.read({d for _ts, d in routed.values()})
        step.queued = summarize([t.queues.first[pid] - wanted[pid] for pid in routed if pid in t.queues.first])
    elif accepted:
        # the baseline: CPU per petition over the load and the answers that came after it
        time.sleep(max(0.0, t0 + max(done[i] for i in accepted) - time.time()))
        after = t.accounting.read()
    n = max(step.accepted, 1)
    step.cpu_ms = {part: (after.tree.get(part, 0.0) - before.tree.get(part, 0.0)) / n * 1000
                   for part in after.tree}
    step.rss_mib = {part: size / 2**20 for part, size in loaded.rss.items()}
    step.ok, step.why = sustained(StepOutcome(
        scheduled=step.scheduled, accepted=step.accepted, late=step.late_generator + step.late_in_flight,
        errors=sum(errors.values()), p99_accepted=step.answered.p99, drained_after=step.drained_after,
        routed=step.routed_count), routing=t.routing)
    t.accounting.roots.pop("generator", None)
    return step


def _print_step(target: str, st: Step) -> None:
    late = st.late_generator + st.late_in_flight
    errors = ", ".join(f"{k} x{v}" for k, v in sorted(st.errors.items())) or "none"
    line = (f"  {target} {st.rate:,.0f}/s{' (search)' if st.search else ''}: {st.accepted:,}/{st.scheduled:,} "
            f"accepted ({st.accepted_per_second:,.0f}/s), late {late:,} (generator {st.late_generator:,}, "
            f"in-flight limit {st.late_in_flight:,}), errors: {errors}; 202 p50/p99/max {st.answered.cell()} ms")
    if st.routed.count or st.routed_count:
        line += (f"; routed {st.routed.cell()} ms ({st.routed_count:,}, drained "
                 f"{'-' if st.drained_after is None else f'{st.drained_after:.1f}s'} after); "
                 f"in queue {st.queued.cell()} ms")
    print(line, flush=True)
    print(f"    {'sustained' if st.ok else 'not sustained: ' + st.why}; cores in use: "
          + ", ".join(f"{p} {st.cores.get(p, 0):.2f}" for p in (*PARTS, "baseline", "generator", "bench", "machine")
                      if p in st.cores) + f"; generator send lag p99 {_ms(st.send_lag_p99)} ms", flush=True)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f}"


def run_rates(t: Target, s: Settings) -> list[Step]:
    """The fixed rates, then the bisection for the highest sustained rate."""
    steps: list[Step] = []

    def one(rate: float, seconds: float, search: bool) -> None:
        st = run_step(t, s, rate, seconds, f"{t.name}-{rate:g}-{len(steps)}", search=search)
        steps.append(st)
        _print_step(t.name, st)
        time.sleep(2)

    for rate in s.rates:
        one(rate, s.seconds, False)
    for _ in range(s.search_steps):
        probe = next_rate([x.rate for x in steps if x.ok], [x.rate for x in steps if not x.ok])
        if probe is None:
            break
        one(probe, s.search_seconds, True)
    return steps


# --- the parts: generator ceiling, baseline, stack ---------------------------------------------

def generator_ceiling(s: Settings) -> dict[tuple[str, int], tuple[float, float]]:
    """Per client and connections: requests/s and the generator's cores, closed loop against
    a trivial server (httpx also with few connections: its pool scans every connection for
    each request, so it slows down as connections are added)."""
    from deploy.stack import free_ports

    (port,) = free_ports(1)
    server = subprocess.Popen([PYTHON, "-m", "bench.e2e_load", "trivial", "--port", str(port)],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    out: dict[tuple[str, int], tuple[float, float]] = {}
    try:
        assert server.stdout is not None  # noqa: S101 - narrows the type
        server.stdout.readline()
        for client, connections in (("raw", 64), ("httpx", 8), ("httpx", 64)):
            result = s.tmp / f"ceiling-{client}-{connections}.json"
            subprocess.run([PYTHON, "-m", "bench.e2e_load", "ceiling", "--url", f"http://127.0.0.1:{port}",
                            "--client", client, "--seconds", "4", "--concurrency", str(connections),
                            "--out", str(result)], cwd=REPO, check=True, timeout=120)
            r = json.loads(result.read_text(encoding="utf-8"))
            out[client, connections] = (r["count"] / r["wall"], r["cpu"] / r["wall"])
    finally:
        server.terminate()
        server.wait(timeout=10)
    return out


def _operator_tokens(run_dir: Path, path: Path, count: int) -> Path:
    from deploy.callers import token_for
    from shared.identity import Principal, Role

    tokens = [token_for(run_dir, Principal(f"op-bench-{k:03d}", Role.OPERATOR), ttl=4 * 3600) for k in range(count)]
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


def run_baseline(infra: Infra, s: Settings) -> list[Step]:
    from deploy.stack import ServiceProcess, free_ports, tail, wait_http_ready

    (port,) = free_ports(1)
    env = {**os.environ, "PETITION_PG_DSN": infra.fresh_database("e2e_baseline"), "PETITION_HTTP_PORT": str(port),
           "PYTHONPATH": str(REPO)}
    proc = ServiceProcess("baseline", [PYTHON, "-m", "bench.e2e_baseline"], env=env, run_dir=s.tmp / "run", cwd=REPO)
    proc.start()
    try:
        if not wait_http_ready(f"http://127.0.0.1:{port}/readyz", 60, proc):
            raise RuntimeError(f"the baseline did not start:\n{tail(proc.log_file)}")
        accounting = Accounting(infra.root)
        accounting.postgres_pid = infra.postgres.pid
        accounting.roots["baseline"] = [proc.pid or 0]
        tokens = s.tmp / "baseline-tokens.txt"
        tokens.write_text("none\n", encoding="utf-8")
        target = Target("baseline", f"http://127.0.0.1:{port}", routing=False, tokens=tokens,
                        accounting=accounting, procs={"baseline": proc})
        run_step(target, s, 50, 3, "baseline-warmup")
        return run_rates(target, s)
    finally:
        proc.stop()


def run_stack(infra: Infra, s: Settings, brokers: int) -> tuple[list[Step], dict[str, float]]:
    """The rates on the stack, and the cores each part used idle (after the warm-up)."""
    from deploy.stack import free_ports, service_process, tail, wait_http_ready

    run_dir = s.tmp / f"stack-{brokers}"
    run_dir.mkdir()
    names = ["PETITION_HTTP_PORT", "PETITION_ROUTER_PORT", "PETITION_ESCALATION_PORT", "PETITION_INTAKE_WORKER_PORT",
             "PETITION_WATCH_PORT"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = infra.service_env(hmac_key=uuid.uuid4().hex * 2, **ports)
    env["PETITION_RUN_DIR"] = str(run_dir)
    env["PETITION_LOG_LEVEL"] = "WARNING"
    env["PETITION_MAIL_PORT"] = "0"  # no mailbox: the benchmark posts over HTTP only
    started = time.perf_counter()
    subprocess.run([str(REPO / ".venv" / "bin" / "petitionctl"), "topics", "ensure"], env=env, check=True,
                   capture_output=True, timeout=900)
    print(f"  topics ensured (department queues included) in {time.perf_counter() - started:.0f}s", flush=True)
    accounting = Accounting(infra.root)
    accounting.postgres_pid = infra.postgres.pid
    target = Target(f"stack-{brokers}b", f"http://127.0.0.1:{ports['PETITION_HTTP_PORT']}", routing=True,
                    tokens=run_dir / "operators.txt", accounting=accounting)
    watcher = target.watcher = RoutedWatcher(infra.admin)
    watcher.start()
    target.queues = QueueReader(infra.admin)
    try:
        port_of = {"intake": "PETITION_HTTP_PORT", "router": "PETITION_ROUTER_PORT",
                   "escalation": "PETITION_ESCALATION_PORT", "watch": "PETITION_WATCH_PORT"}
        started = time.perf_counter()
        for name in SERVICES:
            proc = service_process(name, env, run_dir)
            proc.start()
            target.procs[name] = proc
            if not wait_http_ready(f"http://127.0.0.1:{ports[port_of[name]]}/readyz", 120, proc):
                raise RuntimeError(f"{name} not ready:\n{tail(proc.log_file, 40)}")
            accounting.roots[name] = [proc.pid or 0]
        print(f"  services ready in {time.perf_counter() - started:.0f}s", flush=True)
        operators = max(200, math.ceil(max(s.rates) / 10))
        _operator_tokens(run_dir, target.tokens, operators)
        warm = run_step(target, s, 50, 5, f"{target.name}-warmup")
        print(f"  warm-up (not reported): {warm.accepted} petitions at 50/s, routed {warm.routed_count}", flush=True)
        idle = accounting.read()
        time.sleep(5)
        cores = _cores(idle, accounting.read())
        print("  idle for 5 s (the fixed cost every rate pays), cores: " + ", ".join(
            f"{p} {cores.get(p, 0):.2f}" for p in (*PARTS, "machine")), flush=True)
        steps = run_rates(target, s)
        kinds = {0: "CreateTime (set by the router's relay as it publishes)", 1: "LogAppendTime (the broker's)"}
        print("  petition.routed record timestamps: " + ", ".join(
            f"{kinds.get(k, k)} x{v:,}" for k, v in watcher.timestamp_types.items()), flush=True)
        return steps, cores
    finally:
        for proc in target.procs.values():
            proc.stop()
        watcher.stop()
        target.queues.close()


# --- the report ----------------------------------------------------------------------------

def _table(title: str, steps: list[Step], routing: bool) -> None:
    print(f"\n{title}")
    head = "rate/s | accepted/s | late+errors | 202 p50/p99/max ms"
    if routing:
        head += " | routed p50/p99/max ms | in queue p50/p99/max ms"
    parts = PARTS if routing else ("baseline", "postgres")
    head += " | CPU ms/petition " + " ".join(parts) + " | RSS MiB " + " ".join(p for p in parts if p != "postgres")
    print(head)
    for st in sorted(steps, key=lambda x: x.rate):
        row = (f"{st.rate:>6,.0f}{'*' if st.search else ' '}| {st.accepted_per_second:>10,.0f} | "
               f"{st.late_generator + st.late_in_flight + sum(st.errors.values()):>11,} | {st.answered.cell():>18}")
        if routing:
            row += f" | {st.routed.cell():>21} | {st.queued.cell():>23}"
        row += " | " + " ".join(f"{st.cpu_ms.get(p, 0):.2f}" for p in parts)
        row += " | " + " ".join(f"{st.rss_mib.get(p, 0):.0f}" for p in parts if p != "postgres")
        row += "  ok" if st.ok else "  --"
        print(row)
    print("(* a step of the search; ok: sustained. CPU per accepted petition over the step and the drain of its"
          " routing backlog, each part with its child processes; RSS at the end of the load, process + children)")


def _limits(steps: list[Step], rate: float, routing: bool) -> str:
    """What limits the rate: the step at the highest sustained rate and the first that failed
    above it, each part's cores in use while the load ran."""
    lines = []
    at = [st for st in steps if st.rate == rate and st.ok]
    over = sorted((st for st in steps if not st.ok and st.rate > rate), key=lambda x: x.rate)
    for label, st in (("at the sustained rate", at[-1] if at else None), ("at the first rate that failed",
                                                                          over[0] if over else None)):
        if st is None:
            continue
        parts = [p for p in (*PARTS, "baseline", "generator", "bench") if p in st.cores]
        lines.append(f"  {label} ({st.rate:,.0f}/s): cores in use " + ", ".join(
            f"{p} {st.cores[p]:.2f} (main process {st.main_cores.get(p, 0):.2f})" if p in SERVICES or p == "baseline"
            else f"{p} {st.cores[p]:.2f}" for p in parts)
            + f"; the machine {st.cores.get('machine', 0):.2f} of {os.cpu_count()}"
            + f", of which other processes' {_others(st):.2f}")
    verdict = "no step failed: the rate is not bounded by what was tried"
    if over:
        st = over[0]
        singles = {p: st.main_cores.get(p, 0.0) for p in (*SERVICES, "baseline") if p in st.main_cores}
        busiest = max(singles, key=lambda p: singles[p]) if singles else None
        machine = st.cores.get("machine", 0.0)
        if busiest is not None and singles[busiest] >= 0.85:
            verdict = (f"{busiest}'s main process is CPU-bound ({singles[busiest]:.2f} of the one core an event"
                       f" loop can use at {st.rate:,.0f}/s); it fails because: {st.why}")
        elif machine >= 0.9 * (os.cpu_count() or 1):
            top = sorted([*((st.cores[p], p) for p in (*PARTS, "baseline", "generator") if p in st.cores),
                          (_others(st), "other processes")], reverse=True)[:3]
            verdict = (f"the machine's {os.cpu_count()} cores are saturated ({machine:.2f} busy at {st.rate:,.0f}/s:"
                       f" {', '.join(f'{p} {c:.2f}' for c, p in top)}); it fails because: {st.why}")
        else:
            verdict = (f"no CPU is saturated at {st.rate:,.0f}/s (machine {machine:.2f} busy): waiting, not"
                       f" computing, limits it ({st.why})")
    lines.append(f"what limits the rate{'' if routing else ' (baseline)'}: {verdict}")
    costed = at[-1] if at else (over[0] if over else None)
    if costed is not None:
        mine = [p for p in (PARTS if routing else ("baseline", "postgres")) if p in costed.cpu_ms]
        total = sum(costed.cpu_ms[p] for p in mine)
        cores = os.cpu_count() or 1
        lines.append(f"  CPU per petition at {costed.rate:,.0f}/s: {total:.1f} ms in all ("
                     + ", ".join(f"{p} {costed.cpu_ms[p]:.1f}" for p in mine)
                     + f"); at that cost {cores} cores carry at most ~{cores * 1000 / max(total, 1e-9):,.0f}/s"
                     " (the idle cost below included; the generator aside)")
    return "\n".join(lines)


def _others(st: Step) -> float:
    """Cores the rest of the machine (not the stack, the baseline, the generator or the bench) used."""
    return max(0.0, st.cores.get("machine", 0.0) - sum(v for k, v in st.cores.items() if k != "machine"))


def _broker_counts(wanted: list[int]) -> tuple[list[int], list[str]]:
    from deploy.stack.testinfra import start_test_infra

    takes_brokers = "brokers" in inspect.signature(start_test_infra).parameters
    notes = []
    counts = []
    for n in wanted:
        if n == 1 or takes_brokers:
            counts.append(n)
        else:
            notes.append(f"{n} brokers: not available (start_test_infra takes no brokers= yet; branch kafka-cluster"
                         " adds it), not run")
    return counts, notes


def _start_infra(root: Path, brokers: int) -> Infra:
    from deploy.stack.testinfra import start_test_infra

    if "brokers" in inspect.signature(start_test_infra).parameters:
        # a dict, so that this type-checks before and after branch kafka-cluster adds the argument
        extra: dict[str, Any] = {"brokers": brokers}
        return start_test_infra(root, **extra)
    return start_test_infra(root)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: every process stopped


def main(argv: list[str]) -> int:
    import signal

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    env = os.environ.get
    settings = Settings(
        rates=parse_rates(env("BENCH_E2E_RATES") or "100,500,1000,2000"),
        seconds=float(env("BENCH_E2E_SECONDS") or 20),
        search_steps=int(env("BENCH_E2E_SEARCH_STEPS") or 4),
        search_seconds=float(env("BENCH_E2E_SEARCH_SECONDS") or 10),
        in_flight=int(env("BENCH_E2E_IN_FLIGHT") or 512),
        client=env("BENCH_E2E_CLIENT") or "auto",
        tmp=Path(tempfile.mkdtemp(prefix="e2e-bench-")),
    )
    counts, notes = _broker_counts(parse_brokers(env("BENCH_E2E_BROKERS") or "1,3"))
    with_baseline = env("BENCH_E2E_BASELINE", "1") != "0"
    print(f"machine: {describe()}")
    busy = _machine_busy()
    time.sleep(2)
    print(f"before the run, other processes kept {(_machine_busy() - busy) / 2:.2f} of {os.cpu_count()} cores busy")
    knobs = " ".join(f"{k}={env(k)}" for k in sorted(os.environ) if k.startswith("BENCH_E2E_") or k == "BENCH_KEEP")
    print(f"reproduce: {knobs + ' ' if knobs else ''}.venv/bin/python -m bench e2e")
    for note in notes:
        print(note)
    results: dict[int, list[Step]] = {}
    idle: dict[int, dict[str, float]] = {}
    baseline: list[Step] = []
    try:
        ceiling = generator_ceiling(settings)
        for (client, connections), (rate, cores) in ceiling.items():
            kind = "asyncio streams, HTTP/1.1 keep-alive" if client == "raw" else "httpx.AsyncClient"
            print(f"generator ceiling ({client}: {kind}), {connections} connections: {rate:,.0f} requests/s,"
                  f" closed loop against a trivial asyncio server in another process (generator {cores:.2f} cores)")
        if settings.client == "auto":
            # open loop keeps many connections: httpx's figure with 64 of them is what it would do
            settings.client = "httpx" if ceiling["httpx", 64][0] >= 1.25 * max(settings.rates) else "raw"
        print(f"load generator: the project's own asyncio client (bench/e2e_load.py, {settings.client}), open loop,"
              f" at most {settings.in_flight} requests in flight, a request not sent within 1 s of its time is late;"
              f" real texts from ../shared/data; {settings.seconds:g} s per rate, search steps"
              f" {settings.search_seconds:g} s", flush=True)
        for i, n in enumerate(counts):
            started = time.perf_counter()
            infra = _start_infra(settings.tmp / f"infra-{n}", n)
            try:
                print(f"\n{n} broker(s) and PostgreSQL up in {time.perf_counter() - started:.0f}s", flush=True)
                if i == 0 and with_baseline:
                    print("baseline (bench/e2e_baseline.py: FastAPI + asyncpg, intake's petition row + an outbox row"
                          " in one transaction, 202), on the same PostgreSQL, before the stack starts:", flush=True)
                    baseline = run_baseline(infra, settings)
                print(f"stack (intake, router, escalation, watch) on {n} broker(s):", flush=True)
                results[n], idle[n] = run_stack(infra, settings, n)
            finally:
                infra.stop()
        print(f"\n=== e2e report === machine: {describe()}")
        print(f"reproduce: {knobs + ' ' if knobs else ''}.venv/bin/python -m bench e2e")
        base_rate = None
        if baseline:
            _table("baseline (FastAPI + asyncpg: the petition row and an outbox row, 202)", baseline, routing=False)
            base_rate, bounded = highest_sustained([x.rate for x in baseline if x.ok],
                                                   [x.rate for x in baseline if not x.ok])
            print(f"baseline: highest rate sustained {base_rate:,.0f}/s"
                  f"{'' if bounded else ' (nothing failed: a lower bound)'}")
            print(_limits(baseline, base_rate, routing=False))
        for n, steps in results.items():
            _table(f"stack on {n} broker(s): operators -> intake -> router -> department queue", steps, routing=True)
            rate, bounded = highest_sustained([x.rate for x in steps if x.ok], [x.rate for x in steps if not x.ok])
            ratio = f"; stack / baseline = {rate / base_rate:.1%}" if base_rate else ""
            print(f"stack on {n} broker(s): highest rate sustained {rate:,.0f}/s"
                  f"{'' if bounded else ' (nothing failed: a lower bound)'}{ratio}")
            if baseline:
                for st in sorted((x for x in steps if not x.search), key=lambda x: x.rate):
                    b = [x for x in baseline if x.rate == st.rate]
                    if b and b[0].answered.p99 and st.answered.p99:
                        print(f"  at {st.rate:,.0f}/s: 202 p99 stack {st.answered.p99 * 1000:,.0f} ms, baseline"
                              f" {b[0].answered.p99 * 1000:,.0f} ms = {st.answered.p99 / b[0].answered.p99:.1f}x;"
                              f" accepted/s {st.accepted_per_second / max(b[0].accepted_per_second, 1e-9):.1%} of"
                              " the baseline's")
            print(_limits(steps, rate, routing=True))
            print(f"  idle (no load, after the warm-up) the stack kept {sum(idle[n].get(p, 0) for p in PARTS):.2f}"
                  f" of {os.cpu_count()} cores busy: " + ", ".join(f"{p} {idle[n].get(p, 0):.2f}" for p in PARTS))
        others = max((_others(st) for st in [*baseline, *(x for v in results.values() for x in v)]), default=0.0)
        if others > 0.25:
            print(f"WARNING: other processes used up to {others:.2f} cores during a step: the rates and latencies"
                  " above are not this stack's alone (CPU per petition is steadier); rerun on a quiet machine")
        for note in notes:
            print(note)
    finally:
        if env("BENCH_KEEP"):
            print(f"kept {settings.tmp}")
        else:
            shutil.rmtree(settings.tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
