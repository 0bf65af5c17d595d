"""Firing due timers on the in-memory store (handlers.fire_due): warnings, breaches, ladder
steps and their 督办, warnings superseded by their deadline, stale timers of clocks that moved
on, the open-督办 cap and ladder steps caught up after a long time."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

from shared.ids import EVENT_NAMESPACE
from tests.unit.escalation_world import LADDER, T0, World, hours
from tests.unit.test_escalation_handlers import RESOLUTION_DUE, SIGN_FOR_DUE


def _fired(w: World, clock: str = "sign_for") -> list[tuple[str, float, str]]:
    return [(t["kind"], t["fraction"], t["outcome"]) for t in w.db.timers.values()
            if t["clock"] == clock and t["state"] == "fired"]


async def test_a_warning_fires_at_its_fraction_once_and_marks_the_clock_warned() -> None:
    w = World()
    await w.routed()
    w.clear_outbox()
    firing = await w.fire(T0 + hours(1) + timedelta(seconds=3))
    assert firing.by_kind == {"warning": 1}
    [timer] = [t for t in w.db.timers.values() if t["state"] == "fired"]
    assert (timer["outcome"], timer["fired_by"], timer["lateness_seconds"]) == ("event", "escalation-test", 3.0)
    sign_for = w.clock("sign_for")
    assert (sign_for["state"], sign_for["warned_fractions"]) == ("warned", [0.5])
    [warning] = w.events()
    assert (warning.event_type, warning.clock, warning.fraction, warning.due_at, warning.lateness_seconds) == \
        ("sla.warning", "sign_for", 0.5, SIGN_FOR_DUE, 3.0)
    assert warning.event_id == uuid.uuid5(EVENT_NAMESPACE, f"timer:{timer['id']}")
    assert (await w.fire(T0 + hours(1.2))).fired == ()  # nothing else due yet
    assert len(w.events()) == 1


async def test_a_breach_marks_the_clock_and_the_ladder_climbs_one_level_per_step_opening_a_supervision_order() -> None:
    w = World()
    await w.routed()
    await w.fire_until(SIGN_FOR_DUE)
    assert w.clock("sign_for")["state"] == "breached"
    assert _fired(w) == [("warning", 0.5, "event"), ("warning", 0.75, "event"), ("warning", 0.9, "event"),
                         ("breach", 1.0, "event"), ("escalate", 1.0, "event")]
    [breach] = w.events(event_type="sla.breached")
    assert (breach.clock, breach.due_at) == ("sign_for", SIGN_FOR_DUE)
    # step 1 (the handling unit, no delay) fired at the deadline; step 2 is planned
    [step1] = w.events(event_type="sla.escalated")
    assert (step1.step, step1.level, step1.target_unit, step1.missed_steps) == (1, "handling_unit", "A3-HOUSING", 0)
    order = w.db.supervisions[step1.supervision_id]
    assert {k: order[k] for k in ("subject", "petition_id", "clock", "step", "level", "target_unit",
                                  "supervised_unit", "state", "opened_at", "due_at")} == {
        "subject": "petition", "petition_id": "p-1", "clock": "sign_for", "step": 1, "level": "handling_unit",
        "target_unit": "A3-HOUSING", "supervised_unit": "A3-HOUSING", "state": "open", "opened_at": SIGN_FOR_DUE,
        "due_at": step1.supervision_due_at}
    [step2] = w.pending("sign_for")
    assert (step2["kind"], step2["step"], step2["clock_due_at"]) == ("escalate", 2, SIGN_FOR_DUE)
    firing = await w.fire(step2["fire_at"])
    assert firing.escalations_by_level() == {"superior_unit": 1}
    second = w.events(event_type="sla.escalated")[-1]
    assert (second.step, second.level, second.target_unit, second.rule) == (
        2, "superior_unit", "A3-GOV", "ladder:superior_unit:bureau->government_of_area")
    assert [t["step"] for t in w.pending("sign_for")] == [3]


async def test_a_warning_found_due_after_its_deadline_is_superseded_by_the_breach() -> None:
    w = World()
    await w.routed()
    w.clear_outbox()
    firing = await w.fire(SIGN_FOR_DUE + hours(1))
    assert firing.by_kind == {"superseded": 3, "breach": 1}
    assert _fired(w) == [("warning", 0.5, "superseded"), ("warning", 0.75, "superseded"),
                         ("warning", 0.9, "superseded"), ("breach", 1.0, "event")]
    assert [e.event_type for e in w.events()] == ["sla.breached"]
    assert w.events()[0].lateness_seconds == 3600.0
    assert w.clock("sign_for")["warned_fractions"] == []


async def test_timers_of_a_clock_stopped_paused_or_moved_since_fire_silently_as_stale() -> None:
    w = World()
    for pid in ("p-stopped", "p-paused", "p-moved"):
        await w.routed(pid)
    w.clock("sign_for", "p-stopped")["state"] = "stopped"
    w.clock("sign_for", "p-paused")["state"] = "paused"
    w.clock("sign_for", "p-moved")["due_at"] = SIGN_FOR_DUE + hours(1)
    w.clear_outbox()
    firing = await w.fire(T0 + hours(1))
    assert firing.by_kind == {"stale": 3} and firing.events == ()
    assert {t["outcome"] for t in w.db.timers.values() if t["state"] == "fired"} == {"stale"}
    assert w.db.outbox == []
    assert [w.clock("sign_for", p)["state"] for p in ("p-stopped", "p-paused", "p-moved")] == \
        ["stopped", "paused", "running"]


async def test_at_the_open_supervision_cap_a_ladder_step_opens_none_and_the_ladder_goes_on() -> None:
    w = World(ladder=dataclasses.replace(LADDER, max_open_supervisions_per_petition=2))
    await w.routed()
    await w.act("contact")  # first_contact stopped; resolution's timers out of the way: sign_for alone climbs
    for t in w.pending("resolution"):
        t["state"] = "cancelled"
    await w.fire_until(SIGN_FOR_DUE)  # step 1
    await w.fire(w.pending("sign_for")[0]["fire_at"])  # step 2
    assert len(w.db.supervisions) == 2
    w.clear_outbox()
    step3 = w.pending("sign_for")[0]
    firing = await w.fire(step3["fire_at"])
    assert [(c.petition_id, c.held, c.step, c.level, c.target_unit) for c in firing.capped] == [
        ("p-1", 2, 3, "city", "A-12345")]
    assert w.db.timers[step3["id"]]["outcome"] == "capped" and firing.by_kind == {"escalate": 1}
    assert len(w.db.supervisions) == 2 and w.db.outbox == []
    assert [t["step"] for t in w.pending("sign_for")] == [4]
    # one closed: the next step opens one again
    next(iter(w.db.supervisions.values()))["state"] = "closed"
    firing = await w.fire(w.pending("sign_for")[0]["fire_at"])
    assert firing.capped == () and len(w.db.supervisions) == 3
    assert [(e.step, e.level, e.repeat) for e in w.events()] == [(4, "city", True)]


async def test_a_ladder_found_due_weeks_late_fires_the_step_reached_once_and_plans_the_next_after_now() -> None:
    w = World()
    received = T0 - timedelta(days=60)
    await w.routed(received_at=received)
    w.clear_outbox()
    firing = await w.fire(T0)  # resolution and first_contact: due long ago
    assert firing.by_kind == {"superseded": 6, "breach": 2}
    firing = await w.fire(T0)  # their ladder timers, planned at the old deadlines
    assert firing.by_kind == {"escalate": 2} and len(firing.supervisions) == 2
    steps = {e.clock: e for e in w.events(event_type="sla.escalated")}
    resolution_due = w.clock("resolution")["due_at"]
    step = steps["resolution"]
    assert step.missed_steps > 3 and step.level == "city" and step.repeat
    assert (step.missed_from_step, step.missed_since, step.step) == (1, resolution_due, 1 + step.missed_steps)
    timer = next(t for t in w.db.timers.values() if t["clock"] == "resolution" and t["kind"] == "escalate"
                 and t["state"] == "fired")
    assert timer["missed_steps"] == step.missed_steps == w.db.supervisions[step.supervision_id]["missed_steps"]
    assert firing.missed_steps == sum(e.missed_steps for e in steps.values())
    [following] = w.pending("resolution")
    assert following["step"] == step.step + 1 and T0 < following["fire_at"] < T0 + timedelta(days=7)


async def test_a_firing_claims_at_most_its_limit_in_due_order_and_a_timer_of_an_unknown_kind_fires_silently() -> None:
    w = World()
    await w.routed()
    first_two = [t["id"] for t in w.db.pending()[:2]]
    firing = await w.fire(RESOLUTION_DUE, limit=2)
    assert [f.id for f in firing.fired] == first_two
    odd = World()
    await odd.routed()
    [breach] = [t for t in odd.pending("sign_for") if t["kind"] == "breach"]
    breach["kind"] = "reminder"
    odd.clear_outbox()
    await odd.fire(SIGN_FOR_DUE - hours(0.01))
    firing = await odd.fire(SIGN_FOR_DUE)
    assert odd.db.timers[breach["id"]]["outcome"] == "unknown" and firing.by_kind == {"unknown": 1}
    assert [e.event_type for e in odd.events()] == ["sla.warning"] * 3
    assert odd.clock("sign_for")["state"] == "warned"
