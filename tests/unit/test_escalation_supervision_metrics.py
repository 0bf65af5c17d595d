"""Pure logic behind lapsed 督办, the calendar horizon, the 三率 and the gauge families."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from prometheus_client import CollectorRegistry, Gauge

from services.escalation.app import load_ladder
from services.escalation.domain.deadlines import SHANGHAI
from services.escalation.domain.ladder import OVERDUE_LEVEL, plan_overdue, superior_of
from services.escalation.domain.rates import RATE_CLOCKS, ClockTally, department_rates
from services.escalation.metrics import GaugeFamily
from shared import events
from shared.events import escalation as esc
from shared.reference.calendar import WorkCalendar, known_until
from shared.reference.calendar_source import load_calendar, package_calendar

CAL = load_calendar()
LADDER = load_ladder()
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)  # a Friday


# --- lapsed 督办 ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("unit", "above", "rule"),
    [
        ("A3-HOUSING", "A3-GOV", "overdue:superior_unit:bureau->government_of_area"),
        ("A3-GOV", "A-GOV", "overdue:superior_unit:government->government_above"),
        ("A-12345", "A-GOV", "overdue:superior_unit:bureau->government_of_area"),
        ("A-GOV", "P-GOV", "overdue:superior_unit:government->government_above"),
    ],
)
def test_a_lapsed_supervision_goes_one_level_above_the_unit_that_let_it_lapse(
    unit: str, above: str, rule: str
) -> None:
    step = plan_overdue(LADDER, unit, now=NOW, calendar=CAL)
    assert (step.overdue_unit, step.target_unit, step.rule) == (unit, above, rule)
    # the ladder's supervision_due, 3 working days counted from Friday: ends at 24:00 on Wednesday
    assert step.due_at == datetime(2026, 11, 26, 0, 0, tzinfo=SHANGHAI)


@pytest.mark.parametrize("unit", ["P-GOV", "TRIAGE"])
def test_at_the_top_or_without_an_area_a_lapse_is_only_reported(unit: str) -> None:
    step = plan_overdue(LADDER, unit, now=NOW, calendar=CAL)
    assert step.target_unit is None and step.due_at is None
    assert step.rule.startswith("overdue:superior_unit:") and step.rule.endswith(":no_unit_above")


def test_a_chain_of_lapses_ends_at_the_province() -> None:
    unit, chain = "A3-HOUSING", []
    for _ in range(10):
        step = plan_overdue(LADDER, unit, now=NOW, calendar=CAL)
        if step.target_unit is None:
            break
        chain.append(step.target_unit)
        unit = step.target_unit
    assert chain == ["A3-GOV", "A-GOV", "P-GOV"]
    assert superior_of("P-GOV", LADDER.units)[0] is None
    assert OVERDUE_LEVEL == "overdue"


def test_overdue_events_round_trip() -> None:
    sid, new = uuid.uuid4(), uuid.uuid4()
    petition_event = esc.SupervisionOverdue(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), petition_id="p1", supervision_id=sid,
        clock="resolution", level="city", target_unit="A-12345", due_at=NOW, rule="overdue:x",
        escalated_to="A-GOV", escalated_supervision_id=new, escalated_due_at=NOW,
    )
    assert events.parse_event(events.encode_event(petition_event)) == petition_event
    unit_event = esc.ZeroReportSupervisionOverdue(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), unit="A3-S01", period="2026-11-20",
        supervision_id=sid, level="zero_report", target_unit="A3-GOV", due_at=NOW, rule="overdue:x",
    )
    assert events.parse_event(events.encode_event(unit_event)) == unit_event
    # the missing-report verdict names its 督办; older verdicts without one still parse
    status = esc.ZeroReportStatus(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), unit="A3-S01", period="2026-11-20",
        status="missing", rule="missing:regular", escalated_to="A3-GOV", supervision_id=sid,
        supervision_due_at=NOW,
    )
    assert events.parse_event(events.encode_event(status)) == status
    old = esc.ZeroReportStatus(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), unit="A3-S01",
                               period="2026-11-20", status="missing", rule="missing:regular")
    assert events.parse_event(events.encode_event(old)).supervision_id is None


# --- the holiday calendar's horizon ------------------------------------------------------

def test_known_until_is_the_end_of_the_last_year_known_without_a_gap() -> None:
    cal = WorkCalendar(known_years=frozenset({2025, 2026, 2028}))
    assert known_until(cal, date(2026, 11, 22)) == date(2027, 1, 1)  # 2027 missing: 2028 does not help
    assert known_until(cal, date(2025, 3, 1)) == date(2027, 1, 1)
    assert known_until(cal, date(2027, 1, 5)) == date(2027, 1, 1)  # this year unknown: already past
    assert known_until(WorkCalendar(), date(2026, 6, 1)) == date(2026, 1, 1)


def test_the_installed_package_knows_at_least_the_current_year() -> None:
    years = package_calendar().known_years
    assert known_until(CAL, date(max(years), 6, 1)) >= date(max(years) + 1, 1, 1)


# --- 三率 -----------------------------------------------------------------------------------

def test_rates_are_met_over_decided_per_department_and_rate() -> None:
    rates = department_rates([
        ClockTally("A-HOUSING", "sign_for", met=9, decided=10),
        ClockTally("A-HOUSING", "resolution", met=3, decided=4),
        ClockTally("A-HOUSING", "first_contact", met=1, decided=1),  # no rate of its own
        ClockTally("B-GOV", "sign_for", met=0, decided=5),
        ClockTally("C-GOV", "resolution", met=0, decided=0),  # nothing decided yet: no series
    ])
    assert rates == {("A-HOUSING", "response"): 0.9, ("A-HOUSING", "resolution"): 0.75,
                     ("B-GOV", "response"): 0.0}
    assert set(RATE_CLOCKS) == {"response", "resolution"}  # 满意率 needs feedback nobody collects


def test_impossible_tallies_are_refused() -> None:
    with pytest.raises(ValueError, match="impossible"):
        department_rates([ClockTally("A-GOV", "sign_for", met=3, decided=2)])


# --- gauge families ------------------------------------------------------------------------

def test_a_gauge_family_drops_label_sets_that_vanished() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("petition_test_open", "test", ["department", "state"], registry=registry)
    family = GaugeFamily(gauge)
    family.replace({("A-GOV", "running"): 3, ("B-GOV", "breached"): 1})
    family.replace({("A-GOV", "running"): 2})
    assert registry.get_sample_value("petition_test_open", {"department": "A-GOV", "state": "running"}) == 2
    assert registry.get_sample_value("petition_test_open", {"department": "B-GOV", "state": "breached"}) is None
    family.replace({})
    assert registry.get_sample_value("petition_test_open", {"department": "A-GOV", "state": "running"}) is None
