"""Router throughput through the real broker, side by side with a bare passthrough.

Starts a private Kafka broker and PostgreSQL, creates every topic (department queues
included, leaders elected: as a deployment does before services start), then runs rounds.
Each round deletes what ``petition.submitted`` holds, loads N fresh petitions (real citizen
texts from ../shared/data when present; warm-up ones first) and runs, one after the other:

1. ``passthrough``: ``bench/passthrough.py``, faust consume + produce with the relay's own
   publishing code and no other work, writing what the router writes: each record to
   ``petition.routed`` and to the department queue the router's decision code picks for it
   (computed before the run), so the same fan-out over the same partitions; a fresh
   consumer group per run;
2. ``router``: the real service (classification, jurisdiction, repeats, PostgreSQL
   transaction, outbox, relay), its own consumer group and database across rounds;
3. ``passthrough`` again: the round's baseline is the mean of the runs before and after the
   router (on a shared machine the speed drifts by 10-20 % within a minute).

Round 0 warms the broker and is not compared; round 1 also runs ``passthrough-1`` (to
``petition.routed`` only: a lower bar, half the records). Each rate is petitions/second from
the first ``petition.routed`` record of the measured ones to the last; each run prints the
cores its process (with children), Kafka and PostgreSQL used meanwhile. The figure is the
median over the rounds of router / passthrough. Also measures classification texts/second
in one process.

Reproduce: ``make bench`` or ``.venv/bin/python -m bench router`` (``BENCH_ROUTER_N`` sets N,
default 20000; ``BENCH_ROUTER_ROUNDS`` the measured rounds, default 3; ``BENCH_DIAG=1``
samples decided vs unpublished rows; ``BENCH_PROFILE=<file>`` records the router with
py-spy, when installed in the venv; ``BENCH_KEEP=1`` keeps the run's folder with the
services' logs, which is otherwise deleted).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench import cpu
from bench.machine import describe

if TYPE_CHECKING:
    from shared.kafka_client import KafkaAccess

REPO = Path(__file__).resolve().parents[1]


def _texts(limit: int) -> list[tuple[str, str]]:
    from bench.classify_bench import load_texts

    return load_texts()[0][:limit]


def _events(n: int, seed: int = 7) -> list[tuple[bytes, bytes]]:
    from shared.events import Channel, Location, PetitionSubmitted, encode_event, key_for

    texts = _texts(100_000)
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        title, content = texts[i % len(texts)]
        pid = str(uuid.UUID(int=rng.getrandbits(128)))
        event = PetitionSubmitted(
            event_id=uuid.UUID(int=rng.getrandbits(128)),
            occurred_at=now,
            petition_id=pid,
            tracking_code=f"XF-B{seed:03d}{i:07d}",
            title=title,
            content=content,
            channel=Channel.ONLINE,
            petitioner_key=f"bench-{rng.randrange(n)}" if i % 3 == 0 else None,
            location=Location(),
            received_at=now,
        )
        out.append((key_for(pid), encode_event(event)))
    return out


def _routes(events: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Petition key -> the department the router's decision code picks (classification,
    jurisdiction, routing table; repeats aside), so the passthrough fans out like the router."""
    from services.router.classify import Classifier
    from shared.events import parse_event
    from shared.settings import load_settings

    clf = Classifier.from_settings(load_settings())
    out: dict[str, str] = {}
    for i in range(0, len(events), 1000):
        chunk = [parse_event(v) for _, v in events[i : i + 1000]]
        decided = clf.classify([{"id": e.petition_id, "title": e.title, "content": e.content} for e in chunk])
        out.update({d["id"]: d["department"] for d in decided})
    return out


def _replace_input(kafka: KafkaAccess, events: list[tuple[bytes, bytes]]) -> None:
    """Delete every record of petition.submitted, then load `events` into it."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
    from aiokafka.structs import TopicPartition as AioTopicPartition
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from shared import topics

    consumer = KafkaConsumer(**kafka.options())
    parts = [TopicPartition(topics.PETITION_SUBMITTED, p)
             for p in sorted(consumer.partitions_for_topic(topics.PETITION_SUBMITTED) or [])]
    ends = consumer.end_offsets(parts)
    consumer.close()

    async def delete() -> None:
        admin = AIOKafkaAdminClient(**kafka.options())
        await admin.start()
        try:
            await admin.delete_records({AioTopicPartition(tp.topic, tp.partition): RecordsToDelete(before_offset=end)
                                        for tp, end in ends.items() if end})
        finally:
            await admin.close()

    if any(ends.values()):
        asyncio.run(delete())
    producer = KafkaProducer(**kafka.options(), linger_ms=20, batch_size=512 * 1024)
    for key, value in events:
        producer.send(topics.PETITION_SUBMITTED, key=key, value=value)
    producer.flush()
    producer.close()


class _Offsets:
    """End offsets of one topic, through one long-lived client (cheap to poll: the poller
    shares the two cores with the process under test)."""

    def __init__(self, kafka: KafkaAccess, topic: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self._consumer = KafkaConsumer(**kafka.options())
        self._parts = [TopicPartition(topic, p) for p in sorted(self._consumer.partitions_for_topic(topic) or [])]

    def end(self) -> int:
        return sum(self._consumer.end_offsets(self._parts).values())

    def close(self) -> None:
        self._consumer.close()


def _measure(offsets: _Offsets, baseline: int, expected: int, timeout: float, proc: object) -> tuple[float, float]:
    """Poll the output topic; seconds from the first output record to the last, and the rate."""
    first = last = None
    if expected <= 0:
        return 0.0, 0.0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.exited():  # type: ignore[attr-defined]  # attributes the bench adds to its Popen
            raise RuntimeError(f"the process under test died; see {proc.log_file}")  # type: ignore[attr-defined]  # attributes the bench adds to its Popen
        produced = offsets.end() - baseline
        now = time.monotonic()
        if produced > 0 and first is None:
            first = now
        if produced >= expected:
            last = now
            break
        time.sleep(0.05)
    if first is None or last is None:
        raise RuntimeError(f"only {offsets.end() - baseline}/{expected} records within {timeout}s")
    span = max(last - first, 1e-6)
    return span, (expected - 1) / span


class _Sampler:
    """Diagnostics: decisions committed vs outbox rows still unpublished, twice a second."""

    def __init__(self, dsn: str) -> None:
        import threading

        self._rows: list[tuple[float, object, object]] = []
        self._dsn, self._stop = dsn, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import asyncio

        import asyncpg

        async def loop() -> None:
            conn = await asyncpg.connect(self._dsn)
            t0 = time.monotonic()
            while not self._stop.is_set():
                decided = await conn.fetchval("SELECT count(*) FROM router.decision_log")
                pending = await conn.fetchval("SELECT count(*) FROM router.outbox WHERE published_at IS NULL")
                self._rows.append((time.monotonic() - t0, decided, pending))
                await asyncio.sleep(0.5)
            await conn.close()

        asyncio.run(loop())

    def stop(self) -> str:
        self._stop.set()
        self._thread.join()
        return "t(s) decided pending-outbox: " + "  ".join(f"{t:.1f}:{d}/{p}" for t, d, p in self._rows)


def _classify_rate() -> tuple[str, float, int]:
    from services.router.config import load_classifier

    clf = load_classifier()
    texts = _texts(100_000)
    batch = 256
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < 10:
        for i in range(0, len(texts), batch):
            clf.predict(texts[i : i + batch])
            done += len(texts[i : i + batch])
            if time.perf_counter() - started >= 10:
                break
    return type(clf).__name__, done / (time.perf_counter() - started), done


def main(argv: list[str]) -> int:
    from deploy.stack import ServiceProcess, free_ports
    from deploy.stack.testinfra import start_test_infra

    n = int(os.environ.get("BENCH_ROUTER_N", "20000"))
    warm = int(os.environ.get("BENCH_ROUTER_WARMUP", "5000"))
    print(f"machine: {describe()}")
    name, rate, done = _classify_rate()
    print(f"classification ({name}, one process, batches of 256): {rate:,.0f} texts/s over {done:,} texts")

    tmp = Path(tempfile.mkdtemp(prefix="router-bench-"))
    infra = start_test_infra(tmp)
    procs = []
    try:
        ports = dict(zip(["PETITION_HTTP_PORT", "PETITION_ROUTER_PORT", "PETITION_ESCALATION_PORT",
                          "PETITION_INTAKE_WORKER_PORT"], free_ports(4), strict=True))
        env = infra.service_env(hmac_key="00" * 32, **ports)
        env["PETITION_RUN_DIR"] = str(tmp / "run")
        env["PETITION_LOG_LEVEL"] = "WARNING"
        import subprocess

        from deploy.stack.config import service_credentials
        from petitionctl.kafka_admin import admin_client, apply_grants
        from shared.kafka_acl import Grant

        # The router and the passthrough both run as the router's principal, so the broker
        # authorizes their requests alike; the passthrough's throwaway consumer groups
        # (petition-bench-*, the app ids make_app gives them) are granted to it on this broker only.
        with admin_client(infra.admin) as admin:
            apply_grants(admin, "router", [Grant("group", "petition-bench-", "READ", "prefixed")])
        as_router = service_credentials("router", env)

        # As a deployment does: every topic, department queues included, exists and has its
        # partition leaders before any service starts. (A router that creates 2,313 queues
        # itself waits for them at start; that one-off cost is not throughput.)
        started = time.perf_counter()
        subprocess.run([str(REPO / ".venv/bin/petitionctl"), "topics", "ensure"],
                       env=env, check=True, capture_output=True)
        print(f"topics ensured (department queues included) in {time.perf_counter() - started:.1f}s")
        from shared import topics

        rounds = max(1, int(os.environ.get("BENCH_ROUTER_ROUNDS", "3")))
        batches = [_events(warm + n, seed=7 + r) for r in range(rounds + 1)]
        routes_file = tmp / "routes.json"
        started = time.perf_counter()
        routes_file.write_text(json.dumps(_routes([e for b in batches for e in b])), encoding="utf-8")
        print(f"departments of the {sum(map(len, batches)):,} petitions by the router's decision code "
              f"(for the passthrough's fan-out) in {time.perf_counter() - started:.1f}s")
        python = str(REPO / ".venv/bin/python")
        offsets = _Offsets(infra.admin, topics.PETITION_ROUTED)

        def run(label: str, outputs: str, argv_: list[str], extra: dict[str, str]) -> float:
            baseline = offsets.end()
            proc = ServiceProcess(label, argv_, env={**env, **as_router, **extra}, run_dir=tmp / "run", cwd=REPO)
            proc.start()
            procs.append(proc)
            try:
                _measure(offsets, baseline, warm, timeout=300, proc=proc)
                sampler = _Sampler(infra.dsn) if label.startswith("router") and os.environ.get("BENCH_DIAG") else None
                cpu_before, wall_before = cpu.snapshot(proc.pid), time.monotonic()
                spy = None
                if os.environ.get("BENCH_PROFILE") and label.startswith("router"):
                    spy = subprocess.Popen([str(REPO / ".venv/bin/py-spy"), "record", "-r", "200", "-d", "8",
                                            "-f", "raw", "--subprocesses", "-o", os.environ["BENCH_PROFILE"],
                                            "--pid", str(proc.pid)],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                span, rate = _measure(offsets, baseline + warm, n, timeout=300, proc=proc)
                cpu_used = cpu.describe_window(cpu_before, cpu.snapshot(proc.pid), time.monotonic() - wall_before, n)
                if sampler is not None:
                    print(sampler.stop())
                if spy is not None:
                    spy.wait()
                print(f"  {label:16s} ({outputs}): {n:,} petitions in {span:.2f}s = {rate:,.0f}/s")
                print(f"  {'':16s} {cpu_used}")
                return rate
            finally:
                proc.stop()

        passthrough = [python, "-m", "bench.passthrough"]
        fan_out = {"BENCH_PASSTHROUGH_OUTPUTS": "routed,department", "BENCH_PASSTHROUGH_ROUTES": str(routes_file)}
        ratios, routed_only = [], []
        for r, events in enumerate(batches):
            # Each round: petition.submitted holds only this round's petitions (fresh ids; the
            # older records are deleted), the passthrough reads them with a fresh consumer
            # group, the router with its own group from where it stopped.
            _replace_input(infra.admin, events)
            if r == 0:
                # The first writes to each of the 2,313 fresh department queues cost the broker
                # far more than later ones (it opens each partition's segment and index files)
                # and its JIT is cold: a passthrough measured first runs at a third of its warm
                # rate. Round 0 runs both once, warming the broker, and is not compared.
                print(f"round 0 (warm-up, not compared): {warm:,} + {n:,} petitions")
                run("passthrough", "cold broker", passthrough, {**fan_out, "BENCH_PASSTHROUGH_GROUP": "bench-warm-0"})
                run("router", "cold broker, first start", [python, "-m", "services.router"], {})
                continue
            print(f"round {r}: {warm:,} warm-up + {n:,} measured petitions in {topics.PETITION_SUBMITTED}"
                  f" ({topics.PARTITIONS} partitions); rates over the measured ones")
            before = run("passthrough", "routed + department queue", passthrough,
                         {**fan_out, "BENCH_PASSTHROUGH_GROUP": f"bench-passthrough-{r}"})
            if r == 1:
                one = run("passthrough-1", "routed only", passthrough,
                          {"BENCH_PASSTHROUGH_OUTPUTS": "routed", "BENCH_PASSTHROUGH_GROUP": f"bench-routed-{r}"})
            rate = run("router", "routed + department queue, via its outbox", [python, "-m", "services.router"], {})
            after = run("passthrough", "the same, again after the router", passthrough,
                        {**fan_out, "BENCH_PASSTHROUGH_GROUP": f"bench-passthrough-{r}-after"})
            base = (before + after) / 2  # the machine's speed drifts; the router ran in between
            ratios.append(rate / base)
            routed_only.append(rate / one)
            print(f"  router / passthrough (mean of the two, {base:,.0f}/s) = {rate / base:.1%}")
        offsets.close()
        ratios.sort()
        print(f"router / passthrough (same outputs: petition.routed + a department queue), median of "
              f"{len(ratios)} rounds = {ratios[len(ratios) // 2]:.1%} (rounds: "
              f"{', '.join(f'{x:.1%}' for x in ratios)}; target >= 50%)")
        print(f"router / passthrough-1 (petition.routed only, round 1's) = "
              f"{', '.join(f'{x:.1%}' for x in routed_only[:1])} (lower bar: half the records)")
        print("reproduce: .venv/bin/python -m bench router   (BENCH_ROUTER_N, BENCH_ROUTER_ROUNDS)")
    finally:
        for proc in procs:
            proc.stop()
        infra.stop()
        if not os.environ.get("BENCH_KEEP"):
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)  # a run leaves 1-2 GB of broker logs
    return 0
