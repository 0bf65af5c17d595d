"""Escalation hardening against the real broker and database: a petition received long ago
does not flood the ladder, a hotline accusation gets the 信访 clocks, and a fresh install
finds no zero report "missed" before it existed.

Uses the session stack's own escalation (no instances of its own).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
import yaml

from shared import topics
from shared.kafka_credentials import password_path
from shared.settings import Settings
from tests.integration.conftest import Stack, consume_all, parse, petition, wait_for
from tests.integration.conftest import db_rows as _db

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _submit(client: httpx.Client, **overrides: Any) -> str:
    r = client.post("/v1/petitions", json=petition(**overrides))
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _settings(stack: Stack, dsn: str) -> Settings:
    """An escalation service's settings on `dsn`, on the broker as the escalation principal."""
    return Settings(pg_dsn=dsn, kafka_bootstrap=stack.infra.bootstrap, kafka_username="escalation",
                    kafka_password_file=password_path(stack.infra.secrets_dir, "escalation"))


def _overdue_pending(stack: Stack, pid: str) -> int:
    return int(_db(stack, "SELECT count(*) AS n FROM escalation.timer WHERE petition_id = $1"
                          " AND state = 'pending' AND fire_at <= now()", pid)[0]["n"])


def test_a_petition_received_in_2001_escalates_once_per_clock_not_once_per_missed_step(
    client: httpx.Client, stack: Stack
) -> None:
    # inside intake's window (from 2000-01-01), and 26 years of ladder steps behind
    pid = _submit(client, received_at="2001-01-01T09:00:00+08:00")
    wait_for(lambda: _db(stack, "SELECT count(*) AS n FROM escalation.clock WHERE petition_id = $1",
                         pid)[0]["n"] == 3, timeout=60)
    wait_for(lambda: _db(stack, "SELECT count(*) AS n FROM escalation.timer WHERE petition_id = $1"
                                " AND kind = 'escalate' AND state = 'fired'", pid)[0]["n"] >= 2, timeout=60)
    wait_for(lambda: _overdue_pending(stack, pid) == 0, timeout=60)
    time.sleep(3.0)  # a few more timer polls: nothing more may follow
    assert _overdue_pending(stack, pid) == 0

    supervision = _db(stack, "SELECT clock, step, level, target_unit, state, missed_steps"
                             " FROM escalation.supervision WHERE petition_id = $1", pid)
    sla = [e for e in (parse(m) for m in consume_all(stack.infra.admin, topics.PETITION_SLA, idle_ms=1500))
           if e.get("petition_id") == pid]
    by_type = Counter(e["event_type"] for e in sla)
    print(f"\nbackdated petition {pid}: {len(supervision)} 督办 "
          f"{sorted((r['clock'], r['step'], r['missed_steps']) for r in supervision)}, "
          f"{len(sla)} petition.sla messages {dict(by_type)}")

    # sign_for starts at the assignment (now); first_contact and resolution were due in 2001
    per_clock = Counter(r["clock"] for r in supervision)
    assert per_clock == {"first_contact": 1, "resolution": 1}
    assert all(r["state"] == "open" and r["level"] == "city" and r["missed_steps"] > 1000 for r in supervision)
    assert by_type == {"sla.clock_armed": 3, "sla.breached": 2, "sla.escalated": 2}  # no warnings of 2001
    # each ladder's next step is planned after now (days ahead, not in 2001)
    pending = _db(stack, "SELECT clock, fire_at - now() AS ahead FROM escalation.timer WHERE petition_id = $1"
                         " AND kind = 'escalate' AND state = 'pending'", pid)
    assert sorted(r["clock"] for r in pending) == ["first_contact", "resolution"]
    assert all(timedelta(0) < r["ahead"] < timedelta(days=15) for r in pending)
    # the read model shows the same two 督办 to the city office
    items = wait_for(lambda: [s for s in client.get("/v1/supervision", params={"unit": "A-12345", "state": "all"})
                              .json()["items"] if s["petition_id"] == pid] or None, timeout=20)
    assert sorted(s["clock"] for s in items) == ["first_contact", "resolution"]


def test_a_hotline_accusation_gets_the_xinfang_clocks(client: httpx.Client, stack: Stack) -> None:
    from services.escalation.domain.deadlines import compute_due
    from shared.reference.calendar_source import load_calendar

    pid = _submit(client, kind="accusation", title="举报A3区某局工作人员收受开发商财物",
                  content="我实名举报A3区住房和城乡建设局某工作人员收受开发商财物，为其违规办理手续。")
    rows = wait_for(lambda: (x := _db(stack, "SELECT clock, policy, started_at, due_at FROM escalation.clock"
                                             " WHERE petition_id = $1", pid)) and len(x) == 3 and x, timeout=60)
    clocks = {r["clock"]: r for r in rows}
    assert set(clocks) == {"sign_for", "acceptance", "resolution"}  # not the hotline's first_contact
    assert {r["policy"] for r in rows} == {"xinfang-accusation"}
    calendar = load_calendar()
    for clock, days in (("acceptance", 15), ("resolution", 60)):
        assert clocks[clock]["due_at"] == compute_due(clocks[clock]["started_at"], days, "day", calendar).due
    # the petition's read model shows the 信访 deadlines: 15 and 60 days from receipt
    body = wait_for(lambda: (b := client.get(f"/v1/petitions/{pid}").json())
                    and {"acceptance", "resolution"} <= {d["clock"] for d in b["deadlines"]} and b, timeout=30)
    received = datetime.fromisoformat(body["received_at"])
    due = {d["clock"]: datetime.fromisoformat(d["due_at"]) for d in body["deadlines"]}
    assert timedelta(days=15) <= due["acceptance"] - received <= timedelta(days=19)
    assert timedelta(days=60) <= due["resolution"] - received <= timedelta(days=64)


def test_a_fresh_install_finds_no_zero_report_missed_before_it_existed(stack: Stack) -> None:
    from services.escalation.app import Escalation
    from shared.events import utcnow

    dsn = stack.infra.fresh_database("escalation_fresh_install")
    settings = _settings(stack, dsn)

    async def run() -> None:
        esc = Escalation(settings=settings)
        await esc.start(run_loops=False)
        assert esc.pool is not None
        try:
            # the default obligations count since 2026-11-01, before this install
            assert min(ob.since for ob in esc.obligations.values()) < utcnow().date()
            installed = utcnow()
            assert await esc.evaluate_zero_reports(installed) == 0
            async with esc.pool.acquire() as conn:
                assert await conn.fetchval("SELECT count(*) FROM escalation.supervision") == 0
                assert await conn.fetchval("SELECT count(*) FROM escalation.zero_report_period") == 0
                assert await conn.fetchval("SELECT count(*) FROM escalation.outbox") == 0
                cursors = await conn.fetch("SELECT evaluated_until FROM escalation.zero_report_cursor")
                assert len(cursors) == len(esc.obligations)
                assert all(r["evaluated_until"] >= installed for r in cursors)
            # a week passes (the service down meanwhile): periods closed since the install are caught up
            later = installed + timedelta(days=8)
            missing = await esc.evaluate_zero_reports(later)
            async with esc.pool.acquire() as conn:
                periods = await conn.fetch("SELECT unit, closes_at FROM escalation.zero_report_period"
                                           " WHERE status = 'missing'")
                opened = await conn.fetchval("SELECT count(*) FROM escalation.supervision")
            assert missing == len(periods) > 0 and opened == missing
            assert all(installed < r["closes_at"] <= later for r in periods)
        finally:
            await esc.pool.close()

    asyncio.run(run())


def test_at_the_cap_a_ladder_step_opens_no_supervision_order_and_the_ladder_goes_on(
    stack: Stack, tmp_path: Path
) -> None:
    from services.escalation import metrics
    from services.escalation.app import LADDER, Escalation, EscalationSettings

    ladder = yaml.safe_load(LADDER.read_text())
    ladder["max_open_supervisions_per_petition"] = 2
    (tmp_path / "ladder.yaml").write_text(yaml.safe_dump(ladder, allow_unicode=True))
    dsn = stack.infra.fresh_database("escalation_cap")
    esc = Escalation(settings=_settings(stack, dsn),
                     config=EscalationSettings(ladder_path=tmp_path / "ladder.yaml"))
    due = datetime(2026, 11, 2, tzinfo=SHANGHAI)  # a Monday, 00:00: the deadline was 24:00 Sunday
    capped_before = metrics.SUPERVISION_CAP_REACHED._value.get()

    async def run() -> None:
        await esc.start(run_loops=False)
        assert esc.pool is not None
        pool = esc.pool
        try:
            async with pool.acquire() as conn:
                await conn.execute(
                    """INSERT INTO escalation.clock (petition_id, clock, policy, department_code, assignment_no,
                         started_at, due_at, state, jurisdiction)
                       VALUES ('p-cap', 'resolution', 'hotline-ordinary', 'A3-HOUSING', 1, $1, $2, 'breached', $3)""",
                    due - timedelta(days=7), due, {"code": "430103", "name": "A3区", "level": "district"})
                await conn.execute(
                    """INSERT INTO escalation.timer (petition_id, clock, kind, fraction, step, clock_due_at, fire_at)
                       VALUES ('p-cap', 'resolution', 'escalate', 1.0, 1, $1, $1),
                              ('p-cap', 'resolution', 'warning', 0.9, NULL, $1, $1 - interval '17 hours')""", due)

            async def step_when_due() -> asyncpg.Record:
                async with pool.acquire() as conn:
                    at = await conn.fetchval("SELECT min(fire_at) FROM escalation.timer WHERE state = 'pending'"
                                             " AND kind = 'escalate'")
                assert await esc.fire_due(at + timedelta(minutes=1), 100) >= 1
                async with pool.acquire() as conn:
                    return await conn.fetchrow("SELECT step, outcome, missed_steps FROM escalation.timer"
                                               " WHERE kind = 'escalate' AND state = 'fired' ORDER BY id DESC LIMIT 1")

            async def counts() -> tuple[int, int, int]:
                async with pool.acquire() as conn:
                    return (await conn.fetchval("SELECT count(*) FROM escalation.supervision WHERE state = 'open'"),
                            await conn.fetchval("SELECT count(*) FROM escalation.outbox WHERE topic = 'petition.sla'"),
                            await conn.fetchval("SELECT count(*) FROM escalation.timer WHERE state = 'pending'"))

            # step 1 on time; the warning found due with it, after the deadline, is superseded
            assert tuple(await step_when_due()) == (1, "event", 0)
            async with pool.acquire() as conn:
                outcome = await conn.fetchval("SELECT outcome FROM escalation.timer WHERE kind = 'warning'")
                assert outcome == "superseded"
            assert await counts() == (1, 1, 1)
            assert tuple(await step_when_due()) == (2, "event", 0)
            assert await counts() == (2, 2, 1)
            # at the cap: step 3 opens no 督办 and publishes nothing, and step 4 is planned
            assert tuple(await step_when_due()) == (3, "capped", 0)
            assert await counts() == (2, 2, 1)
            assert metrics.SUPERVISION_CAP_REACHED._value.get() == capped_before + 1
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT step FROM escalation.timer WHERE state = 'pending'") == 4
                await conn.execute("UPDATE escalation.supervision SET state = 'closed' WHERE step = 1")
            # one closed: the next step opens one again
            assert tuple(await step_when_due()) == (4, "event", 0)
            assert await counts() == (2, 3, 1)
        finally:
            await pool.close()

    asyncio.run(run())
