"""Escalation against the real broker and database: the ladder and 督办, extension / pause /
resume, two instances firing every timer exactly once, catch-up after downtime (one step for
the steps missed, not a replay), zero reports.

Time is moved by *ageing* a petition's rows (shifting its clocks and pending timers into the
past in one transaction), which is what the service sees when that much time has passed.
The module replaces the session stack's escalation by two instances of its own (small timer
batches, a test obligations file) and restores the original afterwards.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from deploy.stack import free_ports, service_process, tail, wait_http_ready
from shared import topics
from shared.ids import EVENT_NAMESPACE
from tests.integration.conftest import Stack, age_clocks, age_until_due, consume_all, parse, petition, wait_for
from tests.integration.conftest import db_rows as _db

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Instances:
    def __init__(self, stack: Stack, root: Path) -> None:
        self.stack = stack
        self.root = root
        self.procs: dict[str, Any] = {}
        self.ports: dict[str, int] = {}
        today = datetime.now(SHANGHAI).date()
        self.today, self.yesterday = today, today - timedelta(days=1)
        self.obligations = root / "obligations.yaml"
        self.obligations.write_text(json.dumps({
            "version": 1,
            "obligations": [
                {"unit": "Z1-S01", "supervising_unit": "Z1-GOV", "cadence": "daily", "cutoff": "00:00",
                 "grace": {"amount": 1, "unit": "day"}, "since": self.yesterday.isoformat()},
                {"unit": "Z1-S02", "supervising_unit": "Z1-GOV", "cadence": "daily", "cutoff": "23:59",
                 "since": today.isoformat()},
                {"unit": "Z1-S03", "supervising_unit": "Z1-GOV", "cadence": "daily", "cutoff": "00:00",
                 "grace": {"amount": 1, "unit": "day"}, "since": self.yesterday.isoformat()},
            ],
        }))

    def start(self, name: str) -> None:
        port = self.ports.setdefault(name, free_ports(1)[0])
        env = dict(self.stack.env)
        env.update({
            "PETITION_ESCALATION_PORT": str(port),
            # small claims, so that two instances polling the same due timers interleave
            # (with the ladder's catch-up a backlog is a few hundred timers, not thousands)
            "PETITION_TIMER_BATCH_SIZE": "5",
            "PETITION_ESCALATION_INSTANCE_ID": name,
            "PETITION_ESCALATION_OBLIGATIONS_PATH": str(self.obligations),
            "PETITION_ESCALATION_ZERO_REPORT_POLL_SECONDS": "1",
        })
        run_dir = self.root / name
        run_dir.mkdir(exist_ok=True)
        env["PETITION_RUN_DIR"] = str(run_dir)
        proc = service_process("escalation", env, run_dir)
        proc.start()
        self.procs[name] = proc
        if not wait_http_ready(f"http://127.0.0.1:{port}/readyz", 90, proc):
            raise RuntimeError(f"{name} not ready:\n{tail(proc.log_file, 60)}")

    def stop(self, name: str) -> None:
        self.procs[name].stop()


def _installed_yesterday(stack: Stack, units: list[str], yesterday: date) -> None:
    """The zero-report evaluation of `units` started yesterday at 00:00 and the service went down.

    A unit is judged from the moment the service first meets it, never from the past; these
    units were met yesterday, so yesterday's periods, closed meanwhile, are caught up.
    """
    start = datetime.combine(yesterday, datetime.min.time(), tzinfo=SHANGHAI)
    _db(stack, "INSERT INTO escalation.zero_report_cursor (unit, evaluated_until)"
               " SELECT unnest($1::text[]), $2 ON CONFLICT (unit) DO UPDATE SET evaluated_until = $2"
               " RETURNING unit", units, start)


@pytest.fixture(scope="module")
def instances(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instances]:
    stack.stop("escalation")
    inst = Instances(stack, tmp_path_factory.mktemp("escalation-instances"))
    _installed_yesterday(stack, ["Z1-S01", "Z1-S03"], inst.yesterday)
    # intake checks zero reports against the same obligations file: restart it reading this one
    stack.stop("intake")
    stack.env["PETITION_ESCALATION_OBLIGATIONS_PATH"] = str(inst.obligations)
    try:
        stack.start("intake")
        inst.start("esc-a")
        inst.start("esc-b")
        yield inst
    finally:
        for proc in inst.procs.values():
            proc.stop()
        stack.stop("intake")
        del stack.env["PETITION_ESCALATION_OBLIGATIONS_PATH"]
        stack.start("intake")
        stack.start("escalation")


def _submit(client: httpx.Client, **overrides: Any) -> str:
    r = client.post("/v1/petitions", json=petition(**overrides))
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _armed(stack: Stack, pids: list[str], clocks_each: int) -> None:
    wait_for(lambda: _db(stack, "SELECT count(*) AS n FROM escalation.clock WHERE petition_id = ANY($1::text[])",
                         pids)[0]["n"] == clocks_each * len(pids), timeout=60)


def _overdue_pending(stack: Stack, pids: list[str]) -> int:
    return int(_db(stack, "SELECT count(*) AS n FROM escalation.timer WHERE petition_id = ANY($1::text[])"
                          " AND state = 'pending' AND fire_at <= now()", pids)[0]["n"])


def _get(client: httpx.Client, pid: str) -> dict[str, Any]:
    r = client.get(f"/v1/petitions/{pid}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _act(client: httpx.Client, pid: str, action: str, department: str, **extra: Any) -> httpx.Response:
    return client.post(f"/v1/petitions/{pid}/actions", json={"action": action, "department": department, **extra})


def test_breach_climbs_the_ladder_and_a_supervisor_closes_a_supervision_order(
    client: httpx.Client, stack: Stack, instances: Instances
) -> None:
    pid = _submit(client)
    _armed(stack, [pid], 3)
    # the router gives a district matter to the district bureau (A3区住房和城乡建设局); the read
    # model records it asynchronously (escalation may have armed the clocks first)
    assert wait_for(lambda: (_get(client, pid)["department"] or {}).get("code"), timeout=30) == "A3-HOUSING"
    # signed for and the petitioner called: only the resolution clock runs on
    assert _act(client, pid, "accept", "A3-HOUSING").status_code == 202
    assert _act(client, pid, "contact", "A3-HOUSING", note="已电话联系").status_code == 202
    wait_for(lambda: _db(stack, "SELECT count(*) AS n FROM escalation.clock WHERE petition_id = $1"
                                " AND state = 'stopped'", pid)[0]["n"] == 2)
    # time passes step by step: the breach, then each ladder step as it falls due
    age_until_due(stack, pid, "resolution", "breach")
    wait_for(lambda: _overdue_pending(stack, [pid]) == 0, timeout=60)
    for _ in range(4):
        age_until_due(stack, pid, "resolution", "escalate")
        wait_for(lambda: _overdue_pending(stack, [pid]) == 0, timeout=60)

    sla = [parse(m) for m in consume_all(stack.infra.admin, topics.PETITION_SLA, idle_ms=1500)]
    steps = [e for e in sla if e.get("petition_id") == pid and e["event_type"] == "sla.escalated"
             and e["clock"] == "resolution"]
    steps.sort(key=lambda e: e["step"])
    # district level = A3-GOV, already told as the bureau's superior: skipped
    assert [(e["level"], e["target_unit"]) for e in steps[:3]] == [
        ("handling_unit", "A3-HOUSING"), ("superior_unit", "A3-GOV"), ("city", "A-12345"),
    ]
    assert all(e["level"] == "city" and e["repeat"] for e in steps[3:]) and len(steps) == 5
    assert [e["step"] for e in steps] == list(range(1, len(steps) + 1))
    assert all(e["missed_steps"] == 0 for e in steps)  # each found due on time: nothing collapsed

    # GET /v1/supervision lists each unit's open 督办 for this petition
    def open_for(unit: str) -> list[dict[str, Any]]:
        r = client.get("/v1/supervision", params={"unit": unit})
        assert r.status_code == 200, r.text
        return [s for s in r.json()["items"] if s["petition_id"] == pid and s["clock"] == "resolution"]

    mine = wait_for(lambda: open_for("A3-GOV"), timeout=20)
    assert mine[0]["level"] == "superior_unit" and mine[0]["supervised_unit"] == "A3-HOUSING"
    assert mine[0]["rule"] == "ladder:superior_unit:bureau->government_of_area"
    assert len(wait_for(lambda: len(x := open_for("A-12345")) >= 2 and x)) >= 2

    sid = mine[0]["id"]
    r = client.post(f"/v1/supervision/{sid}/close", json={"department": "A3-HOUSING", "note": "已办"})
    assert r.status_code == 409 and r.json()["error"] == "not_supervisor"
    r = client.post(f"/v1/supervision/{sid}/close", json={"department": "A3-GOV", "note": "已督促落实"})
    assert r.status_code == 202, r.text
    r = client.post(f"/v1/supervision/{sid}/close", json={"department": "A3-GOV"})
    assert r.status_code == 409
    assert client.post(f"/v1/supervision/{uuid.uuid4()}/close", json={"department": "A3-GOV"}).status_code == 404
    assert client.get("/v1/supervision", params={"unit": "a3-gov"}).status_code == 422
    wait_for(lambda: not open_for("A3-GOV"))
    closed = client.get("/v1/supervision", params={"unit": "A3-GOV", "state": "closed"}).json()["items"]
    assert any(s["id"] == sid and s["closed_by"] == "A3-GOV" for s in closed)

    # resolving stops the clocks: the ladder stops with them
    assert _act(client, pid, "resolve", "A3-HOUSING", note="已解决").status_code == 202
    wait_for(lambda: _db(stack, "SELECT count(*) AS n FROM escalation.timer WHERE petition_id = $1"
                                " AND state = 'pending'", pid)[0]["n"] == 0)


def test_a_ladder_found_due_weeks_late_steps_once_to_the_level_reached(
    client: httpx.Client, stack: Stack, instances: Instances
) -> None:
    pid = _submit(client)
    _armed(stack, [pid], 3)
    age_clocks(stack, [pid], timedelta(days=40))  # nobody looked for 40 days: every clock breached long ago
    wait_for(lambda: _overdue_pending(stack, [pid]) == 0, timeout=60)

    sla = [e for e in (parse(m) for m in consume_all(stack.infra.admin, topics.PETITION_SLA, idle_ms=1500))
           if e.get("petition_id") == pid]
    kinds = Counter((e["event_type"], e.get("clock")) for e in sla)
    clocks = ("sign_for", "first_contact", "resolution")
    # each clock: its breach once and one ladder step, at the level reached now; no late warnings
    assert {c: kinds[("sla.breached", c)] for c in clocks} == dict.fromkeys(clocks, 1)
    assert {c: kinds[("sla.escalated", c)] for c in clocks} == dict.fromkeys(clocks, 1)
    assert not [e for e in sla if e["event_type"] == "sla.warning"]
    steps = {e["clock"]: e for e in sla if e["event_type"] == "sla.escalated"}
    resolution = steps["resolution"]
    assert resolution["level"] == "city" and resolution["repeat"] and resolution["missed_steps"] >= 5
    assert resolution["missed_from_step"] == 1 and resolution["step"] == resolution["missed_steps"] + 1
    assert not resolution["missed_estimated"]

    rows = _db(stack, "SELECT clock, step, missed_steps FROM escalation.supervision WHERE petition_id = $1", pid)
    assert sorted((r["clock"], r["step"], r["missed_steps"]) for r in rows) == sorted(
        (c, e["step"], e["missed_steps"]) for c, e in steps.items())
    outcomes = Counter(r["outcome"] for r in _db(
        stack, "SELECT outcome FROM escalation.timer WHERE petition_id = $1 AND state = 'fired'", pid))
    assert outcomes == {"event": 6, "superseded": 9}  # 3 breaches + 3 steps; 3 x 3 warnings past due
    # the next step of each ladder is planned after now, one per clock
    pending = _db(stack, "SELECT clock, step, fire_at > now() AS ahead FROM escalation.timer"
                         " WHERE petition_id = $1 AND state = 'pending'", pid)
    assert sorted((r["clock"], r["step"], r["ahead"]) for r in pending) == sorted(
        (c, e["step"] + 1, True) for c, e in steps.items())


def test_extension_then_pause_and_resume_move_the_resolution_deadline(
    client: httpx.Client, stack: Stack, instances: Instances
) -> None:
    pid = _submit(client, channel="letter")
    _armed(stack, [pid], 3)

    def due(clock: str = "resolution") -> tuple[str, str]:
        d = {x["clock"]: x for x in _get(client, pid)["deadlines"]}[clock]
        return d["due_at"], d["state"]

    # the read model follows escalation's clocks asynchronously
    wait_for(lambda: "resolution" in {x["clock"] for x in _get(client, pid)["deadlines"]}, timeout=30)
    original, _ = due()
    holder = wait_for(lambda: (_get(client, pid)["department"] or {}).get("code"), timeout=30)
    assert _act(client, pid, "accept", holder).status_code == 202
    assert _act(client, pid, "request_extension", holder, note="需现场勘验", extension_days=20).status_code == 202
    assert _act(client, pid, "approve_extension", "A-GOV", note="同意延期").status_code == 202
    extended = wait_for(lambda: (d := due())[0] != original and d)[0]
    gained = datetime.fromisoformat(extended) - datetime.fromisoformat(original)
    assert timedelta(days=20) <= gained <= timedelta(days=23)  # +20 days, moved off a rest day
    timeline = _get(client, pid)["timeline"]
    ext = [t for t in timeline if t["event"] == "deadline_extended"]
    assert len(ext) == 1 and ext[0]["days"] == 20 and ext[0]["approved_by"] == "A-GOV"
    # only one extension
    assert _act(client, pid, "request_extension", holder, note="再延").status_code == 409

    assert _act(client, pid, "pause", holder, note="等待信访人补充材料").status_code == 202
    wait_for(lambda: due()[1] == "paused")
    time.sleep(2.0)
    assert _act(client, pid, "resume", holder).status_code == 202
    resumed = wait_for(lambda: (d := due())[1] == "running" and d)[0]
    shift = datetime.fromisoformat(resumed) - datetime.fromisoformat(extended)
    assert timedelta(seconds=1.5) < shift < timedelta(seconds=30)  # moved by the time paused
    row = _db(stack, "SELECT paused_seconds, extended_days FROM escalation.clock WHERE petition_id = $1"
                     " AND clock = 'resolution'", pid)[0]
    assert row["extended_days"] == 20 and row["paused_seconds"] == pytest.approx(shift.total_seconds(), abs=0.01)
    # the timers follow the new deadline: the pending breach is at the resumed due
    breach = _db(stack, "SELECT fire_at FROM escalation.timer WHERE petition_id = $1 AND clock = 'resolution'"
                        " AND kind = 'breach' AND state = 'pending'", pid)
    assert [r["fire_at"] for r in breach] == [datetime.fromisoformat(resumed)]


def test_two_instances_fire_every_timer_exactly_once_and_catch_up_after_downtime(
    client: httpx.Client, stack: Stack, instances: Instances
) -> None:
    pids = [_submit(client, title=f"第{i}号：A3区拆迁安置房迟迟不能交房") for i in range(40)]
    _armed(stack, pids, 3)
    age_clocks(stack, pids, timedelta(days=20))  # every warning and breach due, ladders cascade
    wait_for(lambda: _overdue_pending(stack, pids) == 0, timeout=90)

    # stop both; let more time pass while down; one comes back and catches up everything
    # that fell due meanwhile (which instance claims what while both run is up to timing:
    # the ladder's catch-up keeps a backlog small, one instance may drain it alone)
    instances.stop("esc-a")
    instances.stop("esc-b")
    before = {r["id"] for r in _db(stack, "SELECT id FROM escalation.timer WHERE petition_id = ANY($1::text[])"
                                          " AND state = 'fired'", pids)}
    age_clocks(stack, pids, timedelta(days=10))
    due_while_down = _overdue_pending(stack, pids)
    assert due_while_down > 0
    time.sleep(2.0)
    instances.start("esc-b")
    wait_for(lambda: _overdue_pending(stack, pids) == 0, timeout=90)
    instances.start("esc-a")

    fired = _db(stack, "SELECT id, fired_by, lateness_seconds, kind, outcome FROM escalation.timer"
                       " WHERE petition_id = ANY($1::text[]) AND state = 'fired'", pids)
    print(f"\ntimers fired by instance: {dict(Counter(r['fired_by'] for r in fired))}")
    caught_up = [r for r in fired if r["id"] not in before]
    assert len(caught_up) >= due_while_down
    assert {r["fired_by"] for r in caught_up} == {"esc-b"}  # the instance that came back took over
    assert max(r["lateness_seconds"] for r in fired) > 10 * 86400  # downtime shows as lateness
    # warnings found due after their deadline are superseded (no event); the rest publish one
    assert {r["outcome"] for r in fired} == {"event", "superseded"}
    assert {r["kind"] for r in fired if r["outcome"] == "superseded"} == {"warning"}
    expected = {str(uuid.uuid5(EVENT_NAMESPACE, f"timer:{r['id']}")) for r in fired if r["outcome"] == "event"}

    def on_bus() -> Counter[str]:
        ids: Counter[str] = Counter()
        for m in consume_all(stack.infra.admin, topics.PETITION_SLA, idle_ms=1500):
            e = parse(m)
            if e.get("petition_id") in set(pids) and e["event_type"] in (
                    "sla.warning", "sla.breached", "sla.escalated"):
                ids[e["event_id"]] += 1
        return ids

    published = wait_for(lambda: (c := on_bus()) and set(c) >= expected and c, timeout=30)
    assert set(published) == expected  # none missed, none invented
    assert max(published.values()) == 1  # none published twice
    # The relay deletes what it published: a row written twice would have shown above as
    # an event id on the bus twice. Nothing is left behind unpublished either.
    wait_for(lambda: _db(stack, "SELECT count(*) AS n FROM escalation.outbox")[0]["n"] == 0, timeout=30)


def test_zero_reports_missing_escalated_late_marked_and_second_submission_consistent(
    client: httpx.Client, stack: Stack, instances: Instances
) -> None:
    today, yesterday = instances.today.isoformat(), instances.yesterday.isoformat()
    tomorrow = (instances.today + timedelta(days=1)).isoformat()

    def report(unit: str, period: str | None = None) -> dict[str, Any]:
        params = {"unit": unit, **({"period": period} if period else {})}
        r = client.get("/v1/zero-reports", params=params)
        assert r.status_code == 200, r.text
        return dict(r.json())

    # yesterday's period closed while the service was down (installed yesterday): caught up,
    # missing, escalated
    missing = wait_for(lambda: (b := report("Z1-S01", yesterday))["periods"] and b, timeout=30)["periods"][0]
    assert missing["status"] == "missing" and missing["escalated_to"] == "Z1-GOV"

    body = {"unit": "Z1-S01", "period": today, "incidents": []}
    first = client.post("/v1/zero-reports", json=body)
    assert first.status_code == 202, first.text
    again = client.post("/v1/zero-reports", json=body)
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    other = client.post("/v1/zero-reports", json={**body, "incidents": ["某小区发生火情，已扑灭"]})
    assert other.status_code == 409 and other.json()["error"] == "already_submitted"
    late = wait_for(lambda: (p := report("Z1-S01", today)["periods"]) and p[0]["status"] == "late" and p[0])
    assert late["rule"] == "late:within_grace"  # cut-off 00:00 today, grace one day

    # tomorrow's period has not opened: refused at the door; today's (cut-off 23:59) is on time
    early = client.post("/v1/zero-reports", json={"unit": "Z1-S02", "period": tomorrow, "incidents": ["无"]})
    assert early.status_code == 422 and early.json()["errors"][0]["field"] == "period", early.text
    assert client.post("/v1/zero-reports", json={"unit": "Z1-S02", "period": today,
                                                 "incidents": ["无"]}).status_code == 202
    on_time = wait_for(lambda: (p := report("Z1-S02", today)["periods"]) and p[0]["status"] == "on_time" and p[0])
    assert on_time["incidents"] == 1

    compliance = report("Z1-S01")["compliance"]
    assert (compliance["missing"], compliance["late"], compliance["on_time"]) == (1, 1, 0)
    assert compliance["reporting_rate"] == 0.5 and compliance["timeliness_rate"] == 0.0

    # one verdict per period on the bus although two instances evaluate
    statuses = [parse(m) for m in consume_all(stack.infra.admin, topics.ZERO_REPORT_STATUS, idle_ms=1500)]
    yesterdays = [s for s in statuses if s["unit"] == "Z1-S01" and s["period"] == yesterday]
    assert [s["status"] for s in yesterdays] == ["missing"]

    for bad in ({"unit": "Z1-S01", "period": "2026-13", "incidents": []},
                {"unit": "z1", "period": today, "incidents": []},
                {"unit": "Z1-S01", "period": today}):
        r = client.post("/v1/zero-reports", json=bad)
        assert r.status_code == 422, r.text


def _lapse(stack: Stack, where: str, *args: Any) -> None:
    """Move the due time of the open 督办 matching `where` into the past (their time passes)."""
    _db(stack, "UPDATE escalation.supervision SET due_at = now() - interval '1 minute'"
               f" WHERE state = 'open' AND overdue_at IS NULL AND {where} RETURNING id", *args)


def _supervision(client: httpx.Client, unit: str, state: str = "open") -> list[dict[str, Any]]:
    r = client.get("/v1/supervision", params={"unit": unit, "state": state})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def test_a_lapsed_supervision_order_escalates_one_level_up(
    client: httpx.Client, stack: Stack, instances: Instances
) -> None:
    from services.escalation.app import load_ladder
    from services.escalation.domain.ladder import superior_of

    pid = _submit(client)
    _armed(stack, [pid], 3)
    # whichever department the router chose, once the read model has it (escalation may arm first)
    holder = wait_for(lambda: (_get(client, pid)["department"] or {}).get("code"), timeout=30)
    above, rule = superior_of(holder, load_ladder().units)
    assert above is not None, holder
    age_until_due(stack, pid, "resolution", "breach")  # just past the deadline: step 1 (催办) fires
    wait_for(lambda: _overdue_pending(stack, [pid]) == 0, timeout=60)
    # each breached clock climbs its own ladder: follow the resolution clock's
    first = wait_for(lambda: [s for s in _supervision(client, holder) if s["petition_id"] == pid
                              and s["clock"] == "resolution" and s["level"] == "handling_unit"], timeout=20)[0]
    assert first["subject"] == "petition" and first["overdue_at"] is None

    _lapse(stack, "petition_id = $1 AND clock = 'resolution' AND level = 'handling_unit'", pid)
    # the 催办 to the handling unit lapsed: the unit above it gets a 督办 about the handling unit
    up = wait_for(lambda: [s for s in _supervision(client, above) if s["parent_id"] == first["id"]],
                  timeout=30)[0]
    assert (up["level"], up["supervised_unit"], up["petition_id"]) == ("overdue", holder, pid)
    assert up["rule"] == f"overdue:{rule}"
    lapsed = next(s for s in _supervision(client, holder) if s["id"] == first["id"])
    assert lapsed["overdue"] and lapsed["overdue_at"]
    timeline = _get(client, pid)["timeline"]
    assert [(t["clock"], t["escalated_to"]) for t in timeline if t["event"] == "supervision_overdue"] == [
        ("resolution", above)]
    sla = [parse(m) for m in consume_all(stack.infra.admin, topics.PETITION_SLA, idle_ms=1500)]
    overdue = [e for e in sla if e["event_type"] == "sla.supervision_overdue" and e["petition_id"] == pid]
    assert len(overdue) == 1 and overdue[0]["escalated_supervision_id"] == up["id"]
    # the event carries the escalated 督办 whole: a reader records it as it is
    whole = overdue[0]["escalated_supervision"]
    assert {k: whole[k] for k in ("id", "subject", "petition_id", "clock", "level", "target_unit",
                                  "supervised_unit", "rule", "parent_id")} == {
        "id": up["id"], "subject": "petition", "petition_id": pid, "clock": "resolution", "level": "overdue",
        "target_unit": above, "supervised_unit": holder, "rule": f"overdue:{rule}", "parent_id": first["id"]}
    # the escalated 督办 is closed like any other, by its supervisor
    r = client.post(f"/v1/supervision/{up['id']}/close", json={"department": above, "note": "已约谈"})
    assert r.status_code == 202, r.text


def test_a_missing_zero_report_opens_a_supervision_order_that_closes_on_the_report(
    client: httpx.Client, stack: Stack, instances: Instances
) -> None:
    yesterday = instances.yesterday.isoformat()
    mine = wait_for(lambda: [s for s in _supervision(client, "Z1-GOV") if s["report_unit"] == "Z1-S03"],
                    timeout=30)
    assert len(mine) == 1
    order = mine[0]
    assert (order["subject"], order["level"], order["report_period"], order["supervised_unit"]) == (
        "zero_report", "zero_report", yesterday, "Z1-S03")
    assert order["petition_id"] is None and order["rule"].startswith("zero_report:missing:")
    r = client.post(f"/v1/supervision/{order['id']}/close", json={"department": "Z1-GOV"})
    assert r.status_code == 409 and r.json()["error"] == "closes_on_report"

    # the supervising unit lets it lapse too: the unit above it (Z-GOV) is told
    _lapse(stack, "subject = 'zero_report' AND report_unit = $1", "Z1-S03")
    up = wait_for(lambda: [s for s in _supervision(client, "Z-GOV") if s["parent_id"] == order["id"]], timeout=30)[0]
    assert (up["level"], up["subject"], up["report_unit"], up["supervised_unit"]) == (
        "overdue", "zero_report", "Z1-S03", "Z1-GOV")

    # the unit finally reports for the period: late, and every 督办 about it closes
    r = client.post("/v1/zero-reports", json={"unit": "Z1-S03", "period": yesterday, "incidents": []})
    assert r.status_code == 202, r.text
    wait_for(lambda: not [s for s in _supervision(client, "Z-GOV") if s["report_unit"] == "Z1-S03"], timeout=30)
    closed = [s for s in _supervision(client, "Z1-GOV", "closed") if s["report_unit"] == "Z1-S03"]
    assert [(s["id"], s["closed_by"]) for s in closed] == [(order["id"], "Z1-S03")]
    rows = _db(stack, "SELECT state FROM escalation.supervision WHERE report_unit = 'Z1-S03'")
    assert {r["state"] for r in rows} == {"closed"}
    # the verdicts carry the 督办 they opened and closed, whole or by id
    statuses = wait_for(lambda: (x := [e for e in (parse(m) for m in consume_all(
        stack.infra.admin, topics.ZERO_REPORT_STATUS, idle_ms=1500)) if e["unit"] == "Z1-S03"
        and e["period"] == yesterday]) and any(e.get("status") == "late" for e in x) and x, timeout=30)
    missing = next(e for e in statuses if e.get("status") == "missing")
    assert (missing["supervision"]["id"], missing["supervision"]["report_period"]) == (order["id"], yesterday)
    lapsed = next(e for e in statuses if e["event_type"] == "zero_report.supervision_overdue")
    assert (lapsed["escalated_supervision"]["id"], lapsed["escalated_supervision"]["parent_id"]) == (
        up["id"], order["id"])
    late = next(e for e in statuses if e.get("status") == "late")
    assert sorted(late["closed_supervision_ids"]) == sorted([order["id"], up["id"]])
