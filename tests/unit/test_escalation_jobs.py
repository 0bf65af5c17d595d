"""The escalation service's slower jobs on the in-memory store: missing zero reports and the
督办 they open, lapsed 督办 escalated one level up, the gauges; and the composition root's
counting of what the handlers did (after the commit, once)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from services.escalation import handlers, metrics
from services.escalation.app import Escalation, consumed
from shared import topics
from shared.consumer import BatchProcessor
from shared.events import encode_event
from shared.events.escalation import SupervisionOrder
from shared.ids import EVENT_NAMESPACE
from shared.records import raw_message
from shared.settings import Settings
from tests.unit.escalation_world import LADDER, SHANGHAI, T0, World, hours

NOV_24 = datetime(2026, 11, 24, tzinfo=SHANGHAI)


def _order(row: dict) -> SupervisionOrder:
    """A 督办 row of the fake as the event contract states it."""
    return SupervisionOrder.model_validate({k: v for k, v in row.items() if k in SupervisionOrder.model_fields})


# --- missing zero reports -------------------------------------------------------------------


async def test_missing_zero_reports_open_a_supervision_order_each_and_are_judged_once() -> None:
    w = World()
    assert (await w.evaluate(T0)).missing == 0  # the install: nothing that closed before it is missing
    assert w.db.report_cursors == {"A3-S01": T0}
    await w.report("2026-11-23", at=T0 + hours(2))
    later = NOV_24 + timedelta(days=1, hours=9)  # 23 and 24 November closed (at 19:00) meanwhile
    found = await w.evaluate(later)
    assert (found.missing, found.opened) == (1, 1)
    period = w.db.report_periods[("A3-S01", "2026-11-24")]
    assert (period["status"], period["rule"], period["escalated_to"]) == ("missing", "missing:regular:daily", "A3-GOV")
    [row] = w.db.supervisions.values()
    expected = SupervisionOrder(
        id=uuid.uuid5(EVENT_NAMESPACE, "zero_report_supervision:A3-S01:2026-11-24"), subject="zero_report", step=1,
        level="zero_report", target_unit="A3-GOV", supervised_unit="A3-S01", rule="zero_report:missing:regular:daily",
        opened_at=later, due_at=LADDER.supervision_due.after(later, w.ctx.calendar), report_unit="A3-S01",
        report_period="2026-11-24")
    assert _order(row) == expected and row["state"] == "open"
    [status] = [s for s in w.events(topics.ZERO_REPORT_STATUS) if s.status == "missing"]
    assert status.event_id == uuid.uuid5(EVENT_NAMESPACE, "zero_report:A3-S01:2026-11-24:missing")
    assert (status.period, status.escalated_to, status.supervision_id, status.supervision_due_at) == (
        "2026-11-24", "A3-GOV", expected.id, expected.due_at)
    assert status.supervision == expected  # the whole 督办, as recorded
    assert w.db.report_cursors == {"A3-S01": later}
    assert (await w.evaluate(later)).missing == 0
    assert (await w.evaluate(later + hours(1))).missing == 0
    assert len(w.db.supervisions) == 1


# --- lapsed 督办 ----------------------------------------------------------------------------


def _open(w: World, *, target: str, supervised: str, subject: str = "petition", due: datetime = T0) -> uuid.UUID:
    sid = uuid.uuid4()
    petition = {"petition_id": "p-1", "clock": "resolution"} if subject == "petition" else \
        {"report_unit": "A3-S01", "report_period": "2026-11-22"}
    order = SupervisionOrder.model_validate({
        "id": sid, "subject": subject, "step": 2, "level": "superior_unit", "target_unit": target,
        "supervised_unit": supervised, "rule": "test", "opened_at": due - timedelta(days=3), "due_at": due, **petition})
    w.db.supervisions[sid] = {**order.model_dump(), "missed_steps": 0, "state": "open", "closed_at": None,
                              "closed_by": None, "close_note": None, "overdue_at": None}
    return sid


async def test_a_lapsed_supervision_order_is_escalated_one_level_up_each_time_until_the_province() -> None:
    w = World()
    first = _open(w, target="A3-HOUSING", supervised="A3-HOUSING")
    chain = [first]
    units = []
    at = T0
    for _ in range(4):
        at += timedelta(minutes=1)
        plan = await handlers.fire_overdue_supervisions(w.uow, w.ctx, at)
        assert plan.lapsed == (chain[-1],) and w.db.supervisions[chain[-1]]["overdue_at"] == at
        event = w.events(event_type="sla.supervision_overdue")[-1]
        assert event.event_id == uuid.uuid5(EVENT_NAMESPACE, f"supervision_overdue_event:{chain[-1]}")
        if event.escalated_supervision is None:
            break
        new = w.db.supervisions[event.escalated_supervision_id]
        assert _order(new) == event.escalated_supervision
        assert (new["level"], new["parent_id"], new["step"], new["petition_id"], new["supervised_unit"]) == (
            "overdue", chain[-1], 2, "p-1", event.target_unit)
        assert (event.escalated_to, event.escalated_due_at) == (new["target_unit"], new["due_at"])
        units.append(new["target_unit"])
        chain.append(new["id"])
        at = new["due_at"]
    assert units == ["A3-GOV", "A-GOV", "P-GOV"]
    top = w.events(event_type="sla.supervision_overdue")[-1]
    assert (top.target_unit, top.escalated_to, top.escalated_supervision_id, top.rule) == (
        "P-GOV", None, None, "overdue:superior_unit:no_area_above:no_unit_above")
    assert len(w.db.supervisions) == 4 and all(s["overdue_at"] is not None for s in w.db.supervisions.values())


async def test_a_lapsed_zero_report_supervision_order_is_escalated_on_the_zero_report_topic() -> None:
    w = World()
    sid = _open(w, target="A3-GOV", supervised="A3-S01", subject="zero_report")
    not_due = _open(w, target="A3-GOV", supervised="A3-S02", due=T0 + hours(2))
    plan = await handlers.fire_overdue_supervisions(w.uow, w.ctx, T0 + hours(1))
    assert plan.lapsed == (sid,) and w.db.supervisions[not_due]["overdue_at"] is None
    assert w.events() == []
    [event] = w.events(topics.ZERO_REPORT_STATUS)
    assert (event.event_type, event.unit, event.period, event.escalated_to) == (
        "zero_report.supervision_overdue", "A3-S01", "2026-11-22", "A-GOV")
    order = event.escalated_supervision
    assert order is not None and _order(w.db.supervisions[order.id]) == order
    assert (order.subject, order.report_unit, order.report_period, order.parent_id, order.petition_id) == (
        "zero_report", "A3-S01", "2026-11-22", sid, None)


# --- gauges ---------------------------------------------------------------------------------


async def test_the_gauges_count_open_clocks_open_supervision_orders_rates_and_units_missing_a_report() -> None:
    w = World()
    await w.routed("p-1")
    await w.routed("p-2", department="A3-URBAN")
    await w.act("accept", pid="p-1", at=T0 + hours(1))  # sign_for met in time
    _open(w, target="A3-GOV", supervised="A3-HOUSING")
    await w.evaluate(T0)
    await w.evaluate(NOV_24)  # 23 November missing
    gauges = await handlers.read_gauges(w.uow, w.ctx, NOV_24, rate_window=timedelta(days=30))
    assert gauges.open_clocks == {
        ("A3-HOUSING", "first_contact", "running"): 1, ("A3-HOUSING", "resolution", "running"): 1,
        ("A3-URBAN", "sign_for", "running"): 1, ("A3-URBAN", "first_contact", "running"): 1,
        ("A3-URBAN", "resolution", "running"): 1}
    assert gauges.open_supervisions == {("superior_unit",): 1, ("zero_report",): 1}
    # response: p-1 signed for in time; p-2 let its deadline (T0 + 2 h) pass
    assert gauges.rates == {("A3-HOUSING", "response"): 1.0, ("A3-URBAN", "response"): 0.0}
    assert gauges.missing_units == 1


# --- counted after the commit, once ---------------------------------------------------------


async def test_the_composition_root_counts_what_was_applied_once_and_after_the_commit() -> None:
    w = World()
    esc = Escalation(settings=Settings())
    esc.uow = w.uow
    processor = BatchProcessor(
        uow=w.uow, service="escalation", consumer="escalation", dead_letter_topic=topics.DEAD_LETTER_ESCALATION,
        handlers={"petition.routed": consumed(handlers.on_routed, w.ctx, metrics.count_petition_plan)},
    )
    routed, _ = await World().routed("p-9")  # an event built by another world: p-9 is new here
    armed = metrics.CLOCKS_ARMED.labels("sign_for")
    before = armed._value.get()
    message = raw_message(topic=topics.PETITION_ROUTED, partition=0, offset=1, key=b"p-9", value=encode_event(routed))
    for _ in range(2):  # delivered twice: applied once
        await processor.process([message])
    assert armed._value.get() == before + 1
    assert len(w.events()) == 3 and {p for p, _ in w.db.clocks} == {"p-9"}

    fired = metrics.TIMERS_FIRED.labels("warning")
    warnings, lateness = fired._value.get(), metrics.TIMER_LATENESS._sum.get()
    assert await esc.fire_due(T0 + hours(1) + timedelta(seconds=2), 100) == 1
    assert (fired._value.get(), metrics.TIMER_LATENESS._sum.get()) == (warnings + 1, lateness + 2.0)
