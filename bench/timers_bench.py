"""Durable-timer benchmark: 1,000,000 pending timers, 10,000 fall due at once.

What it does, on a private PostgreSQL (deploy/PostgresNode with fast=False: the
stock durable settings, fsync and synchronous_commit on) and a private Kafka broker (the
escalation worker needs one to start, and its outbox relay publishes what fires):

1. migrates the escalation schema and bulk-loads 250,000 running clocks and 1,000,000
   pending timers (4 per clock, all due weeks ahead) with generate_series, then ANALYZE;
2. times the due query (the partial index ``timer_pending`` on pending rows) with 1M pending;
3. starts the real service (``python -m services.escalation``), waits until it is ready,
   then moves 10,000 warning timers (of 10,000 distinct clocks) to fall due at one instant T0;
4. polls every 20 ms until all 10,000 are fired, and reports the fire rate, the lateness
   recorded by the service (claim time - due time), the commit lateness observed by the
   poller (an upper bound: when a timer was first seen fired - T0), the time until the
   outbox relay had published all 10,000 events to Kafka, and the worker's RSS.

Reproduce: ``make bench`` (all benchmarks) or ``.venv/bin/python -m bench timers``.
Options: ``--pending N`` (default 1,000,000), ``--due N`` (default 10,000), ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import describe
from deploy.stack import (
    KafkaNode,
    PostgresNode,
    free_ports,
    is_root,
    service_env,
    service_process,
    tail,
    venv_bin,
    wait_http_ready,
)
from shared.kafka_credentials import secrets_dir_of

KAFKA_HEAP = "512m"
KAFKA_PROPERTIES = {"log.cleaner.dedupe.buffer.size": "33554432"}


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pctl(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _load(dsn: str, pending: int) -> dict[str, float]:
    import asyncpg

    from services.escalation.app import MIGRATIONS
    from shared.db import ensure_common_tables, migrate

    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, "escalation", MIGRATIONS)
        await ensure_common_tables(conn, "escalation")
        clocks = pending // 4
        started = time.perf_counter()
        await conn.execute(
            """INSERT INTO escalation.clock (petition_id, clock, policy, department_code, assignment_no,
                 started_at, due_at, state, jurisdiction)
               SELECT 'bench-' || i, 'resolution', 'xinfang-default', 'A3-HOUSING', 1,
                      now() - interval '1 day', now() + interval '59 days', 'running',
                      '{"code": "430103", "name": "A3区", "level": "district"}'::jsonb
               FROM generate_series(1, $1) AS i""",
            clocks,
        )
        await conn.execute(
            """INSERT INTO escalation.timer (petition_id, clock, kind, fraction, clock_due_at, fire_at)
               SELECT 'bench-' || i, 'resolution', CASE WHEN k = 3 THEN 'breach' ELSE 'warning' END,
                      (ARRAY[0.5, 0.75, 0.9, 1.0])[k + 1], c.due_at,
                      now() + interval '7 days' + (k * interval '10 days') + (i * interval '1 second')
               FROM generate_series(1, $1) AS i CROSS JOIN generate_series(0, 3) AS k
               JOIN escalation.clock c ON c.petition_id = 'bench-' || i AND c.clock = 'resolution'""",
            clocks,
        )
        load_seconds = time.perf_counter() - started
        await conn.execute("ANALYZE escalation.clock; ANALYZE escalation.timer")
        n = await conn.fetchval("SELECT count(*) FROM escalation.timer WHERE state = 'pending'")
        # the due query with 1M pending and nothing due: must be an index probe, not a scan
        plan = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS) SELECT id FROM escalation.timer"
            " WHERE state = 'pending' AND fire_at <= now() ORDER BY fire_at LIMIT 1000"
        )
        plan_text = [r[0] for r in plan]
        t0 = time.perf_counter()
        for _ in range(100):
            await conn.fetch(
                "SELECT id FROM escalation.timer WHERE state = 'pending' AND fire_at <= now()"
                " ORDER BY fire_at LIMIT 1000"
            )
        probe_ms = (time.perf_counter() - t0) / 100 * 1000
    finally:
        await conn.close()
    print(f"loaded {clocks:,} clocks and {n:,} pending timers in {load_seconds:.1f}s")
    print("due query plan (1M pending, none due):")
    for line in plan_text:
        print("   ", line)
    return {"pending": float(n), "probe_ms": probe_ms, "load_seconds": load_seconds}


async def _fall_due(dsn: str, due: int, lead_seconds: float) -> float:
    """Make the first-warning timers of `due` clocks fall due at one instant; returns it (epoch)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        t0 = await conn.fetchval(
            """WITH chosen AS (
                 SELECT t.id FROM escalation.timer t
                 WHERE t.kind = 'warning' AND t.fraction = 0.5
                   AND t.petition_id = ANY(SELECT 'bench-' || i FROM generate_series(1, $1) AS i))
               UPDATE escalation.timer t SET fire_at = now() + make_interval(secs => $2)
               FROM chosen WHERE t.id = chosen.id
               RETURNING extract(epoch FROM t.fire_at)""",
            due, lead_seconds,
        )
        return float(t0)
    finally:
        await conn.close()


async def _watch(dsn: str, due: int, t0: float, pid: int, timeout: float) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    seen = 0
    commit_lateness: list[float] = []
    rss_peak = 0
    done_at = None
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            rss_peak = max(rss_peak, _rss_kib(pid))
            fired = await conn.fetchval(
                "SELECT count(*) FROM escalation.timer WHERE state = 'fired' AND kind = 'warning'"
                " AND fraction = 0.5"
            )
            now = time.time()
            if fired > seen:
                commit_lateness.extend([max(now - t0, 0.0)] * (fired - seen))
                seen = fired
            if seen >= due:
                done_at = now
                break
            await asyncio.sleep(0.02)
        rows = await conn.fetch(
            "SELECT lateness_seconds, extract(epoch FROM fired_at) AS fired, fired_by"
            " FROM escalation.timer WHERE state = 'fired'"
        )
        published_at = None
        while time.time() < deadline + 60:
            backlog = await conn.fetchval("SELECT count(*) FROM escalation.outbox WHERE published_at IS NULL")
            if backlog == 0:
                published_at = time.time()
                break
            rss_peak = max(rss_peak, _rss_kib(pid))
            await asyncio.sleep(0.05)
        outbox = await conn.fetchval("SELECT count(*) FROM escalation.outbox")
        still_pending = await conn.fetchval("SELECT count(*) FROM escalation.timer WHERE state = 'pending'")
    finally:
        await conn.close()
    lateness = [float(r["lateness_seconds"]) for r in rows]
    first, last = (min(float(r["fired"]) for r in rows), max(float(r["fired"]) for r in rows)) if rows else (0, 0)
    return {
        "fired": len(rows), "done_at": done_at, "lateness": lateness, "commit_lateness": commit_lateness,
        "rss_peak_kib": rss_peak, "published_at": published_at, "outbox": outbox, "first": first,
        "last": last, "still_pending": still_pending,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench timers")
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="timers-bench-"))
    if is_root():
        os.chmod(root, 0o755)  # noqa: S103 - an executable: every user of this venv runs it
    kafka_port, controller_port, pg_port, esc_port = free_ports(4)
    kafka = KafkaNode(kafka_port, controller_port, root / "kafka", secrets_dir_of(root), heap=KAFKA_HEAP,
                      extra_properties=KAFKA_PROPERTIES)
    postgres = PostgresNode(pg_port, root / "postgres", fast=False)
    service = None
    try:
        kafka.start()
        postgres.start()
        postgres.wait_ready()
        postgres.ensure_database()
        kafka.wait_ready(timeout=120)
        kafka.ensure_services()
        env = service_env(kafka.bootstrap, postgres.dsn, "00" * 32,
                          {"PETITION_ESCALATION_PORT": esc_port}, root / "run", kafka_secrets_dir=kafka.secrets_dir)
        env["PETITION_LOG_LEVEL"] = "ERROR"
        env["PETITION_ESCALATION_INSTANCE_ID"] = "bench"
        subprocess.run([str(venv_bin("petitionctl")), "topics", "ensure", "--no-departments"],
                       env=env, check=True, capture_output=True, timeout=120)
        load = asyncio.run(_load(postgres.dsn, args.pending))

        (root / "run").mkdir(exist_ok=True)
        service = service_process("escalation", env, root / "run")
        service.start()
        if not wait_http_ready(f"http://127.0.0.1:{esc_port}/readyz", 120, service):
            print(tail(service.log_file, 60))
            return 1
        pid = service.pid
        assert pid is not None  # noqa: S101 - narrows the type: never None here
        time.sleep(2.0)
        rss_idle = _rss_kib(pid)
        t0 = asyncio.run(_fall_due(postgres.dsn, args.due, lead_seconds=1.0))
        result = asyncio.run(_watch(postgres.dsn, args.due, t0, pid, timeout=120))
        rss_after = _rss_kib(pid)
    finally:
        if service is not None:
            service.stop()
        for node in (kafka, postgres):
            try:
                node.stop()
            except Exception as exc:  # noqa: BLE001 - stop the other regardless
                print(f"stopping {node}: {exc!r}")
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    fired = int(result["fired"])
    done_at = result["done_at"]
    if done_at is None or fired < args.due:
        print(f"FAILED: only {fired} of {args.due} fired")
        return 1
    window = float(done_at) - t0
    firing = float(result["last"]) - float(result["first"])
    lateness = list(result["lateness"])
    commit = list(result["commit_lateness"])
    published = result["published_at"]
    rate = args.due / window
    p99, p99_commit = _pctl(lateness, 0.99), _pctl(commit, 0.99)
    print()
    print(f"machine: {describe()}")
    print("postgres: private PostgresNode(fast=False): stock durable settings (fsync, synchronous_commit on)")
    print(f"pending timers: {int(load['pending']):,}; due query probe with none due: {load['probe_ms']:.2f} ms")
    print(f"fell due at once: {args.due:,} (timer batch 1000, poll 0.2 s, one instance)")
    print(f"all fired and committed {window:.2f} s after they fell due -> fire rate {rate:,.0f} timers/s "
          f"(claim of first to claim of last batch: {firing:.2f} s)")
    print(f"lateness recorded by the service: p50 {_pctl(lateness, 0.5):.3f} s, p99 {p99:.3f} s, "
          f"max {max(lateness):.3f} s")
    print(f"commit lateness seen by the poller (upper bound): p99 {p99_commit:.3f} s")
    if published is not None:
        print(f"outbox: {result['outbox']:,} events, all published to Kafka {float(published) - t0:.2f} s after T0")
    print(f"escalation worker RSS: idle {rss_idle / 1024:.0f} MiB, peak {int(result['rss_peak_kib']) / 1024:.0f} MiB, "
          f"after {rss_after / 1024:.0f} MiB")
    print(f"targets: rate >= 5,000/s {'MET' if rate >= 5000 else 'MISSED'}; "
          f"p99 lateness < 2 s {'MET' if max(p99, p99_commit) < 2 else 'MISSED'}")
    print("reproduce: .venv/bin/python -m bench timers   (or: make bench)")
    return 0 if rate >= 5000 and max(p99, p99_commit) < 2 else 1
