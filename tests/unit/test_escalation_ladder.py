"""The escalation ladder: which unit each level targets, and when each step fires."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

from services.escalation.app import load_ladder
from services.escalation.domain.deadlines import SHANGHAI
from services.escalation.domain.ladder import (
    WALK_LIMIT,
    CatchUp,
    Ladder,
    catch_up,
    opens_supervision,
    plan_step,
    resolve_targets,
)
from shared.reference.calendar_source import load_calendar

CAL = load_calendar()
LADDER = load_ladder()
A3 = {"code": "430103", "name": "A3区", "level": "district"}


def _units(code: str, jurisdiction: dict | None) -> list[tuple[str, str | None, str]]:
    return [(t.level, t.unit, t.rule) for t in resolve_targets(LADDER, code, jurisdiction)]


@pytest.mark.parametrize(
    ("handling", "jurisdiction", "expected"),
    [
        # a city bureau handling a district matter: bureau -> city gov -> district gov -> city 12345
        ("A-HOUSING", A3, [("handling_unit", "A-HOUSING"), ("superior_unit", "A-GOV"),
                           ("district", "A3-GOV"), ("city", "A-12345")]),
        # a district bureau: its superior is the district government, so the district level is skipped
        ("A3-HOUSING", A3, [("handling_unit", "A3-HOUSING"), ("superior_unit", "A3-GOV"), ("city", "A-12345")]),
        # a district government: its superior is the city government; district level = itself, skipped
        ("A3-GOV", A3, [("handling_unit", "A3-GOV"), ("superior_unit", "A-GOV"), ("city", "A-12345")]),
        # a city bureau on a city-level matter: no district known -> skipped
        ("K-EDUCATION", {"code": "431100", "name": "K市", "level": "city"},
         [("handling_unit", "K-EDUCATION"), ("superior_unit", "K-GOV"), ("city", "K-12345")]),
        # a province department on a district matter: district and city come from the jurisdiction
        ("P-HRSS", {"code": "430203", "name": "B3区", "level": "district"},
         [("handling_unit", "P-HRSS"), ("superior_unit", "P-GOV"), ("district", "B3-GOV"), ("city", "B-12345")]),
        # the triage desk has no area in its code: superior unknown; no jurisdiction -> province office
        ("TRIAGE", None, [("handling_unit", "TRIAGE"), ("city", "P-12345")]),
        # without a jurisdiction the district comes from the handling unit's own area
        ("A5-GOV", None, [("handling_unit", "A5-GOV"), ("superior_unit", "A-GOV"), ("city", "A-12345")]),
    ],
)
def test_each_level_maps_to_a_unit_by_a_named_rule(handling: str, jurisdiction: dict | None,
                                                   expected: list[tuple[str, str]]) -> None:
    got = _units(handling, jurisdiction)
    assert [(level, unit) for level, unit, _ in got] == expected
    assert all(rule.startswith(level + ":") for level, _, rule in got)


def test_an_accusation_never_climbs_to_the_accused_units_own_government() -> None:
    # an accusation of A3-HOUSING, handled by the city government (the router sent it there)
    targets = resolve_targets(LADDER, "A-GOV", A3, accused=("A3-HOUSING",))
    assert [t.unit for t in targets] == ["A-GOV", "P-GOV", "A-12345"]  # not A3-GOV (the district level)
    step = plan_step(LADDER, 3, previous_at=datetime(2026, 12, 1, tzinfo=SHANGHAI), handling_unit="A-GOV",
                     jurisdiction=A3, calendar=CAL, accused=("A3-HOUSING",))
    assert step.target_unit == "A-12345"
    # a case routed before the rule, held inside the accused government: the city office is told
    assert [t.unit for t in resolve_targets(LADDER, "A3-URBAN", A3, accused=("A3-HOUSING",))] == ["A-12345"]
    # the city government accused as well: every level is inside it, the province office takes it
    assert [t.unit for t in resolve_targets(LADDER, "A3-URBAN", A3, accused=("A3-HOUSING", "A-GOV"))] == [
        "P-12345"]


def test_steps_follow_the_delays_and_repeat_at_the_top() -> None:
    breach = datetime(2026, 3, 2, 0, 0, tzinfo=SHANGHAI)  # a Monday: the deadline was 24:00 Sunday
    steps = []
    previous = breach
    for n in range(1, 7):
        step = plan_step(LADDER, n, previous_at=previous, handling_unit="A-HOUSING", jurisdiction=A3, calendar=CAL)
        steps.append(step)
        previous = step.fire_at
    assert [(s.level, s.target_unit, s.repeat) for s in steps] == [
        ("handling_unit", "A-HOUSING", False),
        ("superior_unit", "A-GOV", False),
        ("district", "A3-GOV", False),
        ("city", "A-12345", False),
        ("city", "A-12345", True),
        ("city", "A-12345", True),
    ]
    local = [s.fire_at.astimezone(SHANGHAI) for s in steps]
    assert local[0] == breach  # handling unit at once
    # the starting day is not counted: 1 workday after Monday 00:00 ends at 24:00 Tuesday
    assert local[1] == datetime(2026, 3, 4, tzinfo=SHANGHAI)
    assert local[2] == datetime(2026, 3, 6, tzinfo=SHANGHAI)  # Wed not counted -> end of Thursday
    assert local[3] == datetime(2026, 3, 11, tzinfo=SHANGHAI)  # Fri not counted; Mon, Tue (weekend skipped)
    assert local[4] == datetime(2026, 3, 17, tzinfo=SHANGHAI)  # Thu, Fri, Mon
    assert steps[4].rule.endswith(":repeat")
    # every step opens a 督办 due three working days later
    assert steps[0].supervision_due_at.astimezone(SHANGHAI) == datetime(2026, 3, 6, tzinfo=SHANGHAI)


def test_ladder_steps_skip_holidays() -> None:
    # breach on 30 Sep 2026 24:00: the National Day holiday (1-7 Oct) does not count
    breach = datetime(2026, 10, 1, tzinfo=SHANGHAI)
    step2 = plan_step(LADDER, 2, previous_at=breach, handling_unit="A-HOUSING", jurisdiction=A3, calendar=CAL)
    assert step2.fire_at.astimezone(SHANGHAI).date() > datetime(2026, 10, 8).date()


def test_malformed_ladders_are_rejected() -> None:
    good = {"levels": [{"level": "city", "delay": {"amount": 0, "unit": "minute"}}],
            "repeat_every": {"amount": 1, "unit": "day"}, "supervision_due": {"amount": 1, "unit": "day"}}
    assert Ladder.from_data(good).levels[0].level == "city"
    with pytest.raises(ValueError, match="unknown level"):
        Ladder.from_data({**good, "levels": [{"level": "mayor", "delay": {"amount": 0, "unit": "minute"}}]})
    with pytest.raises(ValueError, match="repeat_every"):
        Ladder.from_data({**good, "repeat_every": {"amount": 0, "unit": "day"}})
    with pytest.raises(ValueError, match="unit"):
        Ladder.from_data({**good, "supervision_due": {"amount": 1, "unit": "week"}})
    with pytest.raises(ValueError, match="at least one"):
        Ladder.from_data({**good, "levels": []})
    with pytest.raises(ValueError, match="count from 1"):
        plan_step(LADDER, 0, previous_at=datetime(2026, 1, 1, tzinfo=SHANGHAI), handling_unit="A-GOV",
                  jurisdiction=None, calendar=CAL)


# --- catching up: a ladder found due late fires once -------------------------------------

def _plan_chain(first_at: datetime, steps: int, ladder: Ladder = LADDER) -> list[datetime]:
    """Planned fire times of steps 1..`steps` (step 1 at `first_at`), one by one."""
    times = [first_at]
    for n in range(2, steps + 1):
        times.append(plan_step(ladder, n, previous_at=times[-1], handling_unit="A-HOUSING", jurisdiction=A3,
                               calendar=CAL).fire_at)
    return times


def _catch_up(step: int, planned_at: datetime, now: datetime, ladder: Ladder = LADDER,
             walk_limit: int = WALK_LIMIT) -> CatchUp:
    return catch_up(ladder, step, planned_at=planned_at, now=now, handling_unit="A-HOUSING", jurisdiction=A3,
                    calendar=CAL, walk_limit=walk_limit)


@pytest.mark.parametrize("step", range(1, 7))
def test_a_step_on_time_fires_itself_and_plans_the_next_as_before(step: int) -> None:
    planned = _plan_chain(datetime(2026, 3, 2, tzinfo=SHANGHAI), 7)
    got = _catch_up(step, planned[step - 1], planned[step - 1] + timedelta(seconds=3))
    expected_next = plan_step(LADDER, step + 1, previous_at=planned[step - 1], handling_unit="A-HOUSING",
                              jurisdiction=A3, calendar=CAL)
    assert (got.fire.step, got.fire.fire_at, got.missed, got.first_missed, got.missed_since) == (
        step, planned[step - 1], 0, None, None)
    assert got.following == expected_next
    assert not got.estimated


def test_a_short_downtime_collapses_the_missed_steps_into_the_one_reached() -> None:
    planned = _plan_chain(datetime(2026, 3, 2, tzinfo=SHANGHAI), 6)
    # step 2 (superior) was due on 4 March; the service comes back on 12 March, after step 4 (city)
    now = datetime(2026, 3, 12, 9, 0, tzinfo=SHANGHAI)
    got = _catch_up(2, planned[1], now)
    assert (got.fire.step, got.fire.level, got.fire.target_unit, got.fire.repeat) == (4, "city", "A-12345", False)
    assert got.fire.fire_at == planned[3]  # the plan is kept: no drift
    assert (got.missed, got.first_missed, got.missed_since) == (2, 2, planned[1])
    assert got.following.step == 5 and got.following.fire_at == planned[4] > now


def test_forty_days_late_walks_the_plan_exactly() -> None:
    breach = datetime(2026, 3, 2, tzinfo=SHANGHAI)
    planned = _plan_chain(breach, 40)
    now = breach + timedelta(days=40)
    reached = max(n for n, at in enumerate(planned, 1) if at <= now)
    got = _catch_up(1, breach, now)
    assert got.fire.step == reached and got.fire.fire_at == planned[reached - 1]
    assert got.missed == reached - 1 and got.fire.repeat and got.fire.level == "city"
    assert got.following.fire_at == planned[reached] > now
    assert not got.estimated


def test_a_clock_breached_years_ago_escalates_once_to_the_level_reached_now() -> None:
    breach = datetime(2001, 1, 9, tzinfo=SHANGHAI)  # received 2001-01-01, 7 days, never handled
    now = datetime(2026, 12, 5, 3, 24, tzinfo=SHANGHAI)
    started = time.perf_counter()
    got = _catch_up(1, breach, now)
    assert time.perf_counter() - started < 0.5  # a jump, not thousands of steps
    assert (got.fire.level, got.fire.target_unit, got.fire.repeat) == ("city", "A-12345", True)
    assert got.fire.fire_at <= now < got.following.fire_at
    assert got.following.fire_at - now <= timedelta(days=15)  # the next repeat, not years away
    assert got.following.step == got.fire.step + 1
    # the steps a one-by-one replay would have fired: counted, about right (estimated by their mean)
    exact = len([t for t in _plan_chain(breach, 2000) if t <= now])
    assert got.missed == got.fire.step - 1 and got.first_missed == 1 and got.missed_since == breach
    assert got.estimated and abs(got.fire.step - exact) <= exact * 0.1


def test_a_repeat_in_minutes_is_jumped_exactly() -> None:
    ladder = Ladder.from_data({
        "levels": [{"level": "handling_unit", "delay": {"amount": 0, "unit": "minute"}},
                   {"level": "city", "delay": {"amount": 10, "unit": "minute"}}],
        "repeat_every": {"amount": 5, "unit": "minute"}, "supervision_due": {"amount": 1, "unit": "day"}})
    breach = datetime(2016, 1, 1, tzinfo=SHANGHAI)
    now = breach + timedelta(days=3650, seconds=7)
    got = _catch_up(1, breach, now, ladder)
    repeats = (now - breach - timedelta(minutes=10)) // timedelta(minutes=5)
    assert got.fire.step == 2 + repeats and not got.estimated
    assert got.fire.fire_at == breach + timedelta(minutes=10 + 5 * repeats)
    assert got.following.fire_at == got.fire.fire_at + timedelta(minutes=5) > now


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_the_walk_is_bounded_whatever_the_limit(limit: int) -> None:
    now = datetime(2026, 12, 5, tzinfo=SHANGHAI)
    for breach in (datetime(1, 1, 2, tzinfo=SHANGHAI), datetime(1970, 1, 1, tzinfo=SHANGHAI), now - timedelta(days=9)):
        got = _catch_up(1, breach, now, walk_limit=limit)
        assert got.fire.fire_at <= now < got.following.fire_at
        assert got.missed == got.fire.step - 1


def test_open_supervisions_per_petition_are_capped() -> None:
    assert LADDER.max_open_supervisions_per_petition == 8
    assert opens_supervision(LADDER, 0) and opens_supervision(LADDER, 7)
    assert not opens_supervision(LADDER, 8) and not opens_supervision(LADDER, 30)
    good = {"levels": [{"level": "city", "delay": {"amount": 0, "unit": "minute"}}],
            "repeat_every": {"amount": 1, "unit": "day"}, "supervision_due": {"amount": 1, "unit": "day"}}
    assert Ladder.from_data({**good, "max_open_supervisions_per_petition": 2}).max_open_supervisions_per_petition == 2
    for bad in (0, -1, "4", True):
        with pytest.raises(ValueError, match="max_open_supervisions_per_petition"):
            Ladder.from_data({**good, "max_open_supervisions_per_petition": bad})
