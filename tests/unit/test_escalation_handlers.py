"""The escalation service layer on the in-memory store: what petition.routed, the actions and
zero reports do to clocks, timers, 督办 and report periods, and the events they publish."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timedelta

import pytest

from shared import topics
from shared.errors import BadInput
from shared.events.escalation import SupervisionOrder
from shared.ids import derived_event_id
from tests.unit.escalation_world import CALENDAR, LADDER, SHANGHAI, T0, World, hours

SIGN_FOR_DUE = datetime(2026, 11, 23, 11, 0, tzinfo=SHANGHAI)  # 2 hours after the assignment
RESOLUTION_DUE = datetime(2026, 12, 1, tzinfo=SHANGHAI)  # 7 days: 24:00 of Monday 30 November


# --- arming ---------------------------------------------------------------------------------


async def test_a_routed_petition_gets_its_policys_clocks_their_timers_and_one_armed_event_each() -> None:
    w = World()
    routed, _ = await w.routed()
    assert {name: (c["policy"], c["state"], c["due_at"], c["assignment_no"]) for (_, name), c in w.db.clocks.items()} \
        == {"sign_for": ("hotline-ordinary", "running", SIGN_FOR_DUE, 1),
            "first_contact": ("hotline-ordinary", "running", datetime(2026, 11, 25, tzinfo=SHANGHAI), 1),
            "resolution": ("hotline-ordinary", "running", RESOLUTION_DUE, 1)}
    assert w.clock("resolution")["jurisdiction"] == {"code": "430103", "name": "A3区", "level": "district"}
    assert [(t["kind"], t["fraction"], t["fire_at"]) for t in w.pending("sign_for")] == [
        ("warning", 0.5, T0 + hours(1)), ("warning", 0.75, T0 + hours(1.5)), ("warning", 0.9, T0 + hours(1.8)),
        ("breach", 1.0, SIGN_FOR_DUE)]
    assert all(t["clock_due_at"] == SIGN_FOR_DUE for t in w.pending("sign_for"))
    armed = w.events()
    assert [(e.event_type, e.clock) for e in armed] == [
        ("sla.clock_armed", "sign_for"), ("sla.clock_armed", "first_contact"), ("sla.clock_armed", "resolution")]
    assert [e.event_id for e in armed] == [derived_event_id(routed.event_id, f"armed:{e.clock}") for e in armed]
    assert all(e.causation_id == routed.event_id and e.occurred_at == T0 for e in armed)


async def test_an_older_or_repeated_assignment_changes_nothing() -> None:
    w = World()
    await w.routed(assignment_no=2)
    before = copy.deepcopy((w.db.clocks, w.db.timers))
    w.clear_outbox()
    for no in (1, 2):
        _, plan = await w.routed(assignment_no=no, department="A3-URBAN", at=T0 + hours(1))
        assert plan.changes == ()
    assert (w.db.clocks, w.db.timers) == before and w.db.outbox == []


async def test_a_reassignment_restarts_a_restart_clock_and_moves_a_keep_clock_to_its_new_holder() -> None:
    w = World()
    await w.routed()
    w.clear_outbox()
    old_sign_for = {t["id"] for t in w.pending("sign_for")}
    old_resolution = [t["id"] for t in w.pending("resolution")]
    later = T0 + hours(1)
    routed, _ = await w.routed(assignment_no=2, department="A3-URBAN", at=later)
    sign_for, resolution = w.clock("sign_for"), w.clock("resolution")
    # sign_for counts again from the new assignment, for the new holder
    assert (sign_for["department_code"], sign_for["started_at"], sign_for["due_at"]) == \
        ("A3-URBAN", later, later + hours(2))
    assert all(w.db.timers[i]["state"] == "cancelled" for i in old_sign_for)
    assert [t["fire_at"] for t in w.pending("sign_for")][-1] == later + hours(2)
    # resolution keeps its deadline and timers; only its holder moved
    assert (resolution["department_code"], resolution["assignment_no"], resolution["due_at"]) == \
        ("A3-URBAN", 2, RESOLUTION_DUE)
    assert [t["id"] for t in w.pending("resolution")] == old_resolution
    assert [(e.clock, e.department_code, e.event_id) for e in w.events()] == [
        ("sign_for", "A3-URBAN", derived_event_id(routed.event_id, "armed:sign_for"))]


async def test_a_stopped_clock_stays_stopped_through_a_reassignment() -> None:
    w = World()
    await w.routed()
    await w.act("accept")
    await w.routed(assignment_no=2, department="A3-URBAN", at=T0 + hours(1))
    assert (w.clock("sign_for")["state"], w.clock("sign_for")["department_code"]) == ("stopped", "A3-HOUSING")
    assert w.pending("sign_for") == []


# --- stopping -------------------------------------------------------------------------------


async def test_a_stopping_action_stops_the_clocks_it_names_by_their_holder_only() -> None:
    w = World()
    await w.routed()
    w.clear_outbox()
    _, plan = await w.act("accept", department="A3-URBAN")  # not the holder
    assert plan.changes == () and w.clock("sign_for")["state"] == "running"
    accept, plan = await w.act("accept", at=T0 + hours(0.5))
    assert plan.stopped == (("sign_for", "accept"),)
    sign_for = w.clock("sign_for")
    assert (sign_for["state"], sign_for["stop_reason"], sign_for["stopped_at"]) == \
        ("stopped", "accept", T0 + hours(0.5))
    assert w.pending("sign_for") == [] and len(w.pending("resolution")) == 4
    [stopped] = w.events()
    assert (stopped.event_type, stopped.clock, stopped.reason, stopped.due_at, stopped.event_id) == (
        "sla.clock_stopped", "sign_for", "accept", SIGN_FOR_DUE, derived_event_id(accept.event_id, "stopped:sign_for"))
    await w.act("resolve")
    assert {c["state"] for c in w.db.clocks.values()} == {"stopped"} and w.db.pending() == []


# --- pause and resume -----------------------------------------------------------------------


async def test_pause_and_resume_move_the_deadline_by_the_time_paused_and_replan_the_warnings_left() -> None:
    w = World()
    await w.routed()
    resolution = w.clock("resolution")
    half = next(t["fire_at"] for t in w.pending("resolution") if t["fraction"] == 0.5)
    await w.fire(half)  # the 50 % warning fires before the pause
    w.clear_outbox()
    paused_at = half + hours(1)
    _, plan = await w.act("pause", at=paused_at)
    assert [type(c).__name__ for c in plan.changes] == ["PauseClock"]  # sign_for, first_contact: not pausable
    remaining = (RESOLUTION_DUE - paused_at).total_seconds()
    assert (resolution["state"], resolution["paused_at"], resolution["remaining_seconds"]) == \
        ("paused", paused_at, remaining)
    assert w.pending("resolution") == []
    resumed_at = paused_at + timedelta(days=2)
    await w.act("resume", at=resumed_at)
    new_due = RESOLUTION_DUE + timedelta(days=2)
    assert (resolution["state"], resolution["due_at"], resolution["paused_seconds"], resolution["paused_at"]) == \
        ("warned", new_due, 2 * 86400.0, None)
    # 75 % and 90 % of the active span (started to due, less the pause); 50 % is not repeated
    active = new_due - resolution["started_at"] - timedelta(days=2)
    assert [(t["kind"], t["fraction"], t["fire_at"], t["clock_due_at"]) for t in w.pending("resolution")] == [
        ("warning", 0.75, new_due - active * 0.25, new_due), ("warning", 0.9, new_due - active * 0.1, new_due),
        ("breach", 1.0, new_due, new_due)]
    paused, resumed = w.events()
    assert (paused.event_type, paused.due_at, paused.remaining_seconds) == \
        ("sla.clock_paused", RESOLUTION_DUE, remaining)
    assert (resumed.event_type, resumed.previous_due_at, resumed.due_at, resumed.paused_seconds) == \
        ("sla.clock_resumed", RESOLUTION_DUE, new_due, 2 * 86400.0)


async def test_resume_of_a_clock_that_is_not_paused_and_pause_of_a_breached_one_change_nothing() -> None:
    w = World()
    await w.routed()
    _, plan = await w.act("resume")
    assert plan.changes == ()
    w.clock("resolution")["state"] = "breached"
    _, plan = await w.act("pause")
    assert plan.changes == () and w.clock("resolution")["state"] == "breached"


# --- extension ------------------------------------------------------------------------------


async def test_an_extension_is_requested_approved_once_and_capped_at_the_policys_maximum() -> None:
    w = World()
    await w.routed()
    await w.act("request_extension", extension_days=3)
    assert w.clock("resolution")["extension_requested_days"] == 3
    w.clear_outbox()
    approval, _ = await w.act("approve_extension", department="A3-GOV")
    resolution = w.clock("resolution")
    assert (resolution["due_at"], resolution["extended_days"]) == (RESOLUTION_DUE + timedelta(days=3), 3)
    assert w.pending("resolution")[-1]["fire_at"] == RESOLUTION_DUE + timedelta(days=3)
    [extended] = w.events()
    assert (extended.event_type, extended.days, extended.rule, extended.approved_by, extended.event_id) == (
        "sla.deadline_extended", 3, "extension:requested_days", "A3-GOV",
        derived_event_id(approval.event_id, "extended:resolution"))
    _, plan = await w.act("approve_extension", department="A3-GOV", extension_days=5)
    assert plan.changes == () and w.clock("resolution")["due_at"] == RESOLUTION_DUE + timedelta(days=3)

    capped = World()
    await capped.routed()
    await capped.act("approve_extension", department="A3-GOV", extension_days=30)
    assert capped.clock("resolution")["extended_days"] == 7  # hotline-ordinary: at most 7 days
    assert capped.events(event_type="sla.deadline_extended")[0].rule == "extension:capped_at_max_days"


async def test_an_extension_past_now_lifts_a_breach_and_one_of_a_paused_clock_grows_its_remaining_time() -> None:
    w = World()
    await w.routed()
    await w.fire_until(RESOLUTION_DUE)
    assert w.clock("resolution")["state"] == "breached"
    await w.act("approve_extension", department="A3-GOV", at=RESOLUTION_DUE + hours(1))
    resolution = w.clock("resolution")
    assert (resolution["state"], resolution["due_at"]) == ("warned", RESOLUTION_DUE + timedelta(days=7))
    # every fraction fired before the breach: only the breach is planned again
    assert [(t["kind"], t["fire_at"]) for t in w.pending("resolution")] == [("breach", resolution["due_at"])]

    paused = World()
    await paused.routed()
    await paused.act("pause", at=T0 + hours(1))
    remaining = paused.clock("resolution")["remaining_seconds"]
    await paused.act("approve_extension", department="A3-GOV", extension_days=2, at=T0 + hours(2))
    clock = paused.clock("resolution")
    assert (clock["state"], clock["remaining_seconds"]) == ("paused", remaining + 2 * 86400)
    assert paused.pending("resolution") == []  # planned when it resumes


# --- 督办 closed by a supervisor --------------------------------------------------------------


def _supervision(w: World, *, target: str = "A3-GOV", supervised: str = "A3-HOUSING") -> uuid.UUID:
    sid = uuid.uuid4()
    w.db.supervisions[sid] = {
        **SupervisionOrder(id=sid, subject="petition", petition_id="p-1", clock="resolution", step=2,
                           level="superior_unit", target_unit=target, supervised_unit=supervised, rule="test",
                           opened_at=T0, due_at=T0 + timedelta(days=3)).model_dump(),
        "missed_steps": 0, "state": "open", "closed_at": None, "closed_by": None, "close_note": None,
        "overdue_at": None,
    }
    return sid


async def test_a_supervisor_closes_a_supervision_order_but_not_the_unit_it_supervises() -> None:
    w = World()
    await w.routed()
    w.clear_outbox()
    sid = _supervision(w)
    _, plan = await w.act("close_supervision", department="A3-HOUSING", supervision_id=str(sid))
    assert plan.closed_levels == () and w.db.supervisions[sid]["state"] == "open" and w.db.outbox == []
    close, plan = await w.act("close_supervision", department="A3-GOV", note="已督促", supervision_id=str(sid))
    assert plan.closed_levels == ("superior_unit",)
    assert {k: w.db.supervisions[sid][k] for k in ("state", "closed_by", "close_note")} == \
        {"state": "closed", "closed_by": "A3-GOV", "close_note": "已督促"}
    [closed] = w.events()
    assert (closed.event_type, closed.supervision_id, closed.target_unit, closed.closed_by, closed.event_id) == (
        "sla.supervision_closed", sid, "A3-GOV", "A3-GOV",
        derived_event_id(close.event_id, f"supervision_closed:{sid}"))
    _, plan = await w.act("close_supervision", department="A3-GOV", supervision_id=str(sid))  # already closed
    _, unknown = await w.act("close_supervision", department="A3-GOV", supervision_id=str(uuid.uuid4()))
    assert plan.closed_levels == unknown.closed_levels == () and len(w.events()) == 1
    assert {c["state"] for c in w.db.clocks.values()} == {"running"}  # the clocks are not touched


async def test_closing_a_supervision_order_without_a_valid_id_is_bad_input() -> None:
    w = World()
    with pytest.raises(BadInput) as refused:
        await w.act("close_supervision", department="A3-GOV", supervision_id="not-a-uuid")
    assert refused.value.code == "invalid_action"


async def test_a_supervisor_opens_a_supervision_order_addressed_to_the_holder_once() -> None:
    w = World()
    await w.routed()
    w.clear_outbox()
    sid = uuid.uuid4()
    opened, plan = await w.act("open_supervision", department="A3-GOV", note="请尽快答复",
                               supervision_id=str(sid), target_unit="A3-HOUSING")
    row = w.db.supervisions[sid]
    assert (row["level"], row["target_unit"], row["supervised_unit"], row["rule"], row["state"]) == (
        "manual", "A3-HOUSING", "A3-HOUSING", "manual:A3-GOV", "open")
    assert row["due_at"] == LADDER.supervision_due.after(opened.occurred_at, CALENDAR)
    [event] = w.events()
    assert (event.event_type, event.supervision.id, event.opened_by, event.note) == (
        "sla.supervision_opened", sid, "A3-GOV", "请尽快答复")
    assert [o.order.level for o in plan.opened] == ["manual"]
    # the same order again (a redelivered action under another event id) opens nothing more
    await w.act("open_supervision", department="A3-GOV", supervision_id=str(sid), target_unit="A3-HOUSING")
    assert len(w.db.supervisions) == 1
    with pytest.raises(BadInput):
        await w.act("open_supervision", department="A3-GOV", supervision_id=str(uuid.uuid4()))  # no target


# --- zero reports received ------------------------------------------------------------------


async def test_a_zero_report_is_on_time_by_the_cutoff_late_after_it_and_unscheduled_without_an_obligation() -> None:
    w = World()
    cutoff = datetime(2026, 11, 23, 17, 0, tzinfo=SHANGHAI)
    _, on_time = await w.report("2026-11-23", at=cutoff)
    _, late = await w.report("2026-11-22", at=cutoff)
    _, stranger = await w.report("2026-11-23", unit="A9-S09", at=cutoff)
    assert [(v.status, v.rule) for v in (on_time, late, stranger) if v] == [
        ("on_time", "on_time:by_cutoff"), ("late", "late:after_close"), ("unscheduled", "unscheduled:no_obligation")]
    assert w.db.report_periods[("A3-S01", "2026-11-23")]["status"] == "on_time"
    statuses = w.events(topics.ZERO_REPORT_STATUS)
    assert [(s.unit, s.period, s.status, s.closed_supervision_ids) for s in statuses] == [
        ("A3-S01", "2026-11-23", "on_time", ()), ("A3-S01", "2026-11-22", "late", ()),
        ("A9-S09", "2026-11-23", "unscheduled", ())]


async def test_a_report_for_a_missing_period_closes_its_supervision_orders_and_a_second_copy_does_nothing() -> None:
    w = World()
    after = datetime(2026, 11, 22, 12, tzinfo=SHANGHAI)
    w.db.report_cursors["A3-S01"] = after
    found = await w.evaluate(datetime(2026, 11, 23, 20, tzinfo=SHANGHAI))
    assert found.missing == 2  # 22 and 23 November closed at 19:00 without a report
    opened = {s["id"]: s for s in w.db.supervisions.values() if s["report_period"] == "2026-11-22"}
    w.clear_outbox()
    submitted, verdict = await w.report("2026-11-22", at=datetime(2026, 11, 24, 9, tzinfo=SHANGHAI))
    assert verdict is not None and verdict.status == "late"
    period = w.db.report_periods[("A3-S01", "2026-11-22")]
    assert (period["status"], period["escalated_to"], period["submission_id"]) == \
        ("late", "A3-GOV", submitted.submission_id)
    assert all(s["state"] == "closed" and s["close_note"] == "report received" for s in opened.values())
    assert [s["state"] for s in w.db.supervisions.values() if s["report_period"] == "2026-11-23"] == ["open"]
    [status] = w.events(topics.ZERO_REPORT_STATUS)
    assert (status.escalated_to, status.closed_supervision_ids) == ("A3-GOV", tuple(opened))
    assert status.event_id == derived_event_id(submitted.event_id, "zero_report_status")
    _, again = await w.report("2026-11-22", at=datetime(2026, 11, 24, 10, tzinfo=SHANGHAI))
    assert again is None and len(w.events(topics.ZERO_REPORT_STATUS)) == 1


async def test_a_report_for_a_period_its_unit_does_not_owe_is_unscheduled_and_one_of_no_period_bad_input() -> None:
    w = World()
    _, weekly = await w.report("2026-W48")  # A3-S01 reports daily
    assert weekly is not None and (weekly.status, weekly.rule) == ("unscheduled", "unscheduled:not_a_period_of_unit")
    with pytest.raises(BadInput) as refused:
        await w.report("2026-11-31")
    assert refused.value.code == "invalid_period"
