"""The escalation ladder: which unit each level targets, and when each step fires."""

from __future__ import annotations

from datetime import datetime

import pytest

from services.escalation.app import load_ladder
from services.escalation.calendar_source import load_calendar
from services.escalation.domain.deadlines import SHANGHAI
from services.escalation.domain.ladder import Ladder, plan_step, resolve_targets

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
