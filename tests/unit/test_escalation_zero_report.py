"""Zero-report periods, cut-offs, grace, special periods and on-time / late / missing."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from services.escalation.app import load_obligations
from services.escalation.domain.deadlines import SHANGHAI
from services.escalation.domain.zero_report import classify, closing_between, evaluation_start
from shared.reference.calendar_source import load_calendar
from shared.reference.obligations import parse_obligations, parse_period, period_of, scheduled

CAL = load_calendar()


def _t(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("cadence", "day", "period_id", "first", "last"),
    [
        ("daily", date(2026, 11, 22), "2026-11-22", date(2026, 11, 22), date(2026, 11, 22)),
        ("weekly", date(2026, 11, 22), "2026-W47", date(2026, 11, 16), date(2026, 11, 22)),
        ("weekly", date(2027, 1, 1), "2026-W53", date(2026, 12, 28), date(2027, 1, 3)),  # ISO year
        ("half_monthly", date(2026, 11, 15), "2026-11-H1", date(2026, 11, 1), date(2026, 11, 15)),
        ("half_monthly", date(2026, 2, 16), "2026-02-H2", date(2026, 2, 16), date(2026, 2, 28)),
        ("monthly", date(2026, 12, 31), "2026-12", date(2026, 12, 1), date(2026, 12, 31)),
    ],
)
def test_period_ids_round_trip(cadence: str, day: date, period_id: str, first: date, last: date) -> None:
    p = period_of(cadence, day)
    assert (p.id, p.first_day, p.last_day) == (period_id, first, last)
    assert parse_period(period_id) == p


@pytest.mark.parametrize("bad", ["2026-13", "2026-02-30", "2026-W60", "2026-11-H3", "yesterday", ""])
def test_bad_period_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_period(bad)


OBLIGATIONS = parse_obligations({
    "defaults": {"cutoff": "17:00", "grace": {"amount": 2, "unit": "hour"}, "since": "2026-01-01"},
    "special_periods": [{"name": "nd", "from": "2026-10-01", "to": "2026-10-07", "cadence": "daily",
                         "cutoff": "10:00"}],
    "obligations": [
        {"unit": "S1", "supervising_unit": "GOV", "cadence": "daily", "calendar": "workday", "cutoff": "16:00",
         "special_periods": ["nd"]},
        {"unit": "W1", "supervising_unit": "GOV", "cadence": "weekly", "calendar": "workday"},
        {"unit": "M1", "supervising_unit": "GOV", "cadence": "monthly", "grace": {"amount": 1, "unit": "day"}},
    ],
})


def test_cutoff_is_on_the_last_working_day_of_the_period() -> None:
    # week 2026-W40 (28 Sep - 4 Oct): the last working day is Wed 30 Sep (National Day from 1 Oct)
    s = scheduled(OBLIGATIONS["W1"], "2026-W40", CAL)
    assert s is not None and s.due_at == _t(2026, 9, 30, 17) and s.closes_at == _t(2026, 9, 30, 19)
    # a daily workday cadence owes nothing on a Sunday ...
    assert scheduled(OBLIGATIONS["S1"], "2026-11-22", CAL) is None
    # ... but on a 调休 make-up Saturday it does (2026-09-20 is one)
    assert scheduled(OBLIGATIONS["S1"], "2026-09-20", CAL) is not None or not CAL.is_workday(date(2026, 9, 20))
    # monthly: last day of the month, natural calendar
    s = scheduled(OBLIGATIONS["M1"], "2026-02", CAL)
    assert s is not None and s.due_at == _t(2026, 2, 28, 17) and s.closes_at == _t(2026, 3, 1, 17)


def test_special_period_adds_a_tighter_cadence_with_its_own_cutoff() -> None:
    s = scheduled(OBLIGATIONS["S1"], "2026-10-03", CAL)  # a holiday, yet owed during the special period
    assert s is not None and s.rule == "special:nd" and s.due_at == _t(2026, 10, 3, 10)
    # a regular working day keeps its regular cut-off
    regular = scheduled(OBLIGATIONS["S1"], "2026-10-09", CAL)
    assert regular is not None and regular.rule == "regular:daily" and regular.due_at == _t(2026, 10, 9, 16)


def test_on_time_late_within_grace_and_after_close() -> None:
    s = scheduled(OBLIGATIONS["S1"], "2026-11-23", CAL)
    assert s is not None
    assert classify(_t(2026, 11, 23, 15, 59), s) == ("on_time", "on_time:by_cutoff")
    assert classify(_t(2026, 11, 23, 16, 0), s) == ("on_time", "on_time:by_cutoff")
    assert classify(_t(2026, 11, 23, 17, 0), s) == ("late", "late:within_grace")
    assert classify(_t(2026, 11, 24, 9, 0), s) == ("late", "late:after_close")


def test_periods_closing_while_down_are_caught_up_once() -> None:
    ob = OBLIGATIONS["S1"]
    # down from Friday 20 Nov 12:00 to Tuesday 24 Nov 08:00: Fri 20 and Mon 23 closed meanwhile
    closed = closing_between(ob, _t(2026, 11, 20, 12), _t(2026, 11, 24, 8), CAL)
    assert [s.period.id for s in closed] == ["2026-11-20", "2026-11-23"]
    # the next evaluation starts where this one ended: nothing twice
    assert [s.period.id for s in closing_between(ob, _t(2026, 11, 24, 8), _t(2026, 11, 24, 17, 59), CAL)] == []
    # cut-off 16:00 + 2 h grace: the period closes at 18:00
    closing = closing_between(ob, _t(2026, 11, 24, 17, 59), _t(2026, 11, 24, 18), CAL)
    assert [s.period.id for s in closing] == ["2026-11-24"]


def test_nothing_before_since_is_owed() -> None:
    ob = OBLIGATIONS["M1"]
    closed = closing_between(ob, _t(2025, 6, 1), _t(2026, 3, 5), CAL)
    assert [s.period.id for s in closed] == ["2026-01", "2026-02"]


def test_the_shipped_obligations_file_parses() -> None:
    obligations = load_obligations()
    assert obligations["A3-S01"].supervising_unit == "A3-GOV"
    assert obligations["A-12345"].grace == timedelta(days=1)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"cadence": "hourly"}, "cadence"),
        ({"cutoff": "25:00"}, "cut-off"),
        ({"calendar": "lunar"}, "calendar"),
        ({"special_periods": ["nope"]}, "unknown special"),
        ({"supervising_unit": None}, "supervising_unit"),
        ({"grace": {"amount": 1, "unit": "week"}}, "grace"),
    ],
)
def test_malformed_obligations_are_rejected(patch: dict, message: str) -> None:
    base = {"unit": "X", "supervising_unit": "Y", "cadence": "daily", "since": "2026-01-01"}
    with pytest.raises(ValueError, match=message):
        parse_obligations({"obligations": [{**base, **patch}]})


def test_a_unit_first_met_is_judged_from_then_on_never_from_the_past() -> None:
    ob = load_obligations()["A3-S01"]  # daily, since 2026-11-01
    installed = _t(2026, 12, 4, 10, 30)
    start = evaluation_start(ob, installed)
    assert start == installed  # since lies in the past: the install wins
    assert closing_between(ob, start, installed, CAL) == []  # nothing "missed" at the install
    # periods closing after it are judged, and every one of them closes after the install
    later = closing_between(ob, start, _t(2026, 12, 9, 0, 0), CAL)
    assert [s.period.id for s in later] == ["2026-12-04", "2026-12-07", "2026-12-08"]
    # an obligation that starts ahead of the install starts on its own day
    ahead = parse_obligations({"obligations": [{"unit": "Z9-S01", "supervising_unit": "Z9-GOV",
                                                "cadence": "daily", "since": "2027-01-04"}]})["Z9-S01"]
    assert evaluation_start(ahead, installed) == _t(2027, 1, 4, 0, 0)
