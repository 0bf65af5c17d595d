"""Deadline counting around the 2025 and 2026 statutory holidays.

Every expected value was worked out by hand from the State Council notices
(国办发明电〔2024〕12号 for 2025, 国办发明电〔2025〕7号 for 2026), listed in NOTICES below, and
the rules in `services.escalation.domain.deadlines`: the start day is not counted; a ``day``
period whose last day is a rest day ends on the next working day; a ``workday`` period ends on
the N-th working day after the start date; both end at 24:00 (= next day 00:00 +08:00).
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.escalation.domain.deadlines import (
    MAX_DAYS,
    SHANGHAI,
    Deadline,
    Unit,
    compute_due,
    fraction_point,
)
from shared.reference.calendar import WorkCalendar
from shared.reference.calendar_source import load_calendar

CALENDAR = load_calendar()


def _span(first: str, last: str) -> list[date]:
    day, end = date.fromisoformat(first), date.fromisoformat(last)
    days = []
    while day <= end:
        days.append(day)
        day += timedelta(days=1)
    return days


# year -> (rest days of every holiday block, weekend make-up workdays), from the notices.
NOTICES: dict[int, tuple[list[date], list[date]]] = {
    2025: (
        _span("2025-01-01", "2025-01-01")  # 元旦, 1 day, no make-up
        + _span("2025-01-28", "2025-02-04")  # 春节 除夕-初七, 8 days
        + _span("2025-04-04", "2025-04-06")  # 清明
        + _span("2025-05-01", "2025-05-05")  # 劳动节
        + _span("2025-05-31", "2025-06-02")  # 端午
        + _span("2025-10-01", "2025-10-08"),  # 国庆 + 中秋, 8 days
        [
            date(2025, 1, 26),  # Sun, 春节
            date(2025, 2, 8),  # Sat, 春节
            date(2025, 4, 27),  # Sun, 劳动节
            date(2025, 9, 28),  # Sun, 国庆
            date(2025, 10, 11),  # Sat, 国庆
        ],
    ),
    2026: (
        _span("2026-01-01", "2026-01-03")  # 元旦
        + _span("2026-02-15", "2026-02-23")  # 春节 腊月二十八-正月初七, 9 days
        + _span("2026-04-04", "2026-04-06")  # 清明
        + _span("2026-05-01", "2026-05-05")  # 劳动节
        + _span("2026-06-19", "2026-06-21")  # 端午
        + _span("2026-09-25", "2026-09-27")  # 中秋
        + _span("2026-10-01", "2026-10-07"),  # 国庆
        [
            date(2026, 1, 4),  # Sun, 元旦
            date(2026, 2, 14),  # Sat, 春节
            date(2026, 2, 28),  # Sat, 春节
            date(2026, 5, 9),  # Sat, 劳动节
            date(2026, 9, 20),  # Sun, 国庆
            date(2026, 10, 10),  # Sat, 国庆
        ],
    ),
}


@pytest.mark.parametrize("year", sorted(NOTICES))
def test_calendar_matches_the_notice_for_every_day_of_the_year(year: int) -> None:
    rest_days, makeup_days = NOTICES[year]
    assert all(d.weekday() >= 5 for d in makeup_days)
    expected_rest = set(rest_days)
    expected_work = set(makeup_days)
    wrong = [
        d
        for d in _span(f"{year}-01-01", f"{year}-12-31")
        if CALENDAR.is_workday(d) != (d in expected_work or (d.weekday() < 5 and d not in expected_rest))
    ]
    assert wrong == []
    assert CALENDAR.is_known(date(year, 6, 1))


def _due(text: str) -> datetime:
    return datetime.fromisoformat(text)


# (id, start, amount, unit, expected due)
CASES: list[tuple[str, str, int, str, str]] = [
    # 2025 春节: Jan 28-Feb 4 off, Jan 26 (Sun) and Feb 8 (Sat) worked.
    ("2025-spring-day-into-holiday", "2025-01-27T10:00:00+08:00", 1, "day", "2025-02-06T00:00:00+08:00"),
    ("2025-spring-day-on-makeup-sunday", "2025-01-24T10:00:00+08:00", 2, "day", "2025-01-27T00:00:00+08:00"),
    ("2025-spring-day15-ends-on-holiday", "2025-01-20T09:00:00+08:00", 15, "day", "2025-02-06T00:00:00+08:00"),
    ("2025-spring-workday-counts-makeup", "2025-01-24T10:00:00+08:00", 3, "workday", "2025-02-06T00:00:00+08:00"),
    ("2025-spring-workday-ends-makeup-sat", "2025-02-04T10:00:00+08:00", 4, "workday", "2025-02-09T00:00:00+08:00"),
    # 2025 清明: Apr 4-6.
    ("2025-qingming-day", "2025-04-01T10:00:00+08:00", 3, "day", "2025-04-08T00:00:00+08:00"),
    ("2025-qingming-workday", "2025-04-03T10:00:00+08:00", 1, "workday", "2025-04-08T00:00:00+08:00"),
    # 2025 劳动节: May 1-5, Apr 27 (Sun) worked.
    ("2025-labour-workday-makeup-sunday", "2025-04-25T10:00:00+08:00", 2, "workday", "2025-04-29T00:00:00+08:00"),
    ("2025-labour-day", "2025-04-28T10:00:00+08:00", 3, "day", "2025-05-07T00:00:00+08:00"),
    ("2025-labour-workday-across", "2025-04-30T10:00:00+08:00", 5, "workday", "2025-05-13T00:00:00+08:00"),
    # 2025 端午: May 31-Jun 2.
    ("2025-duanwu-day", "2025-05-30T10:00:00+08:00", 1, "day", "2025-06-04T00:00:00+08:00"),
    ("2025-duanwu-workday", "2025-05-29T10:00:00+08:00", 2, "workday", "2025-06-04T00:00:00+08:00"),
    # 2025 国庆 + 中秋: Oct 1-8 off, Sep 28 (Sun) and Oct 11 (Sat) worked.
    ("2025-national-day1", "2025-09-30T10:00:00+08:00", 1, "day", "2025-10-10T00:00:00+08:00"),
    ("2025-national-day7-on-holiday", "2025-09-30T10:00:00+08:00", 7, "day", "2025-10-10T00:00:00+08:00"),
    ("2025-national-day11-makeup-sat", "2025-09-30T10:00:00+08:00", 11, "day", "2025-10-12T00:00:00+08:00"),
    ("2025-national-day-makeup-sunday", "2025-09-26T10:00:00+08:00", 2, "day", "2025-09-29T00:00:00+08:00"),
    ("2025-national-workday-before", "2025-09-26T10:00:00+08:00", 3, "workday", "2025-10-01T00:00:00+08:00"),
    ("2025-national-workday-makeup-sat", "2025-09-30T10:00:00+08:00", 3, "workday", "2025-10-12T00:00:00+08:00"),
    ("2025-national-workday15", "2025-09-22T10:00:00+08:00", 15, "workday", "2025-10-18T00:00:00+08:00"),
    # 2026 元旦: Jan 1-3 off, Jan 4 (Sun) worked; also a year end.
    ("2026-newyear-day-year-end", "2025-12-31T10:00:00+08:00", 1, "day", "2026-01-05T00:00:00+08:00"),
    ("2026-newyear-workday", "2025-12-31T10:00:00+08:00", 1, "workday", "2026-01-05T00:00:00+08:00"),
    ("2026-newyear-workday-across", "2025-12-26T10:00:00+08:00", 4, "workday", "2026-01-05T00:00:00+08:00"),
    ("2025-year-end-due-at-midnight", "2025-12-27T10:00:00+08:00", 4, "day", "2026-01-01T00:00:00+08:00"),
    ("2025-newyear-day", "2024-12-31T10:00:00+08:00", 1, "day", "2025-01-03T00:00:00+08:00"),
    # 2026 春节: Feb 15-23 off, Feb 14 (Sat) and Feb 28 (Sat) worked.
    ("2026-spring-day-makeup-sat", "2026-02-13T10:00:00+08:00", 1, "day", "2026-02-15T00:00:00+08:00"),
    ("2026-spring-day-into-holiday", "2026-02-13T10:00:00+08:00", 2, "day", "2026-02-25T00:00:00+08:00"),
    ("2026-spring-day-from-holiday", "2026-02-16T10:00:00+08:00", 7, "day", "2026-02-25T00:00:00+08:00"),
    ("2026-spring-day15", "2026-02-10T10:00:00+08:00", 15, "day", "2026-02-26T00:00:00+08:00"),
    ("2026-spring-workday-across", "2026-02-12T10:00:00+08:00", 3, "workday", "2026-02-25T00:00:00+08:00"),
    ("2026-spring-workday-month-end", "2026-02-23T10:00:00+08:00", 5, "workday", "2026-03-01T00:00:00+08:00"),
    ("2026-spring-workday15", "2026-02-10T10:00:00+08:00", 15, "workday", "2026-03-10T00:00:00+08:00"),
    # 2026 清明: Apr 4-6.
    ("2026-qingming-day", "2026-04-02T10:00:00+08:00", 2, "day", "2026-04-08T00:00:00+08:00"),
    ("2026-qingming-workday", "2026-04-03T10:00:00+08:00", 1, "workday", "2026-04-08T00:00:00+08:00"),
    # 2026 劳动节: May 1-5 off, May 9 (Sat) worked.
    ("2026-labour-day-month-end", "2026-04-30T10:00:00+08:00", 1, "day", "2026-05-07T00:00:00+08:00"),
    ("2026-labour-workday-makeup-sat", "2026-04-30T10:00:00+08:00", 4, "workday", "2026-05-10T00:00:00+08:00"),
    ("2026-labour-day-on-makeup-sat", "2026-05-02T10:00:00+08:00", 7, "day", "2026-05-10T00:00:00+08:00"),
    # 2026 端午: Jun 19-21.
    ("2026-duanwu-day", "2026-06-18T10:00:00+08:00", 1, "day", "2026-06-23T00:00:00+08:00"),
    ("2026-duanwu-workday", "2026-06-17T10:00:00+08:00", 2, "workday", "2026-06-23T00:00:00+08:00"),
    # 2026 中秋 Sep 25-27; 国庆 Oct 1-7, Sep 20 (Sun) and Oct 10 (Sat) worked.
    ("2026-midautumn-day", "2026-09-24T10:00:00+08:00", 1, "day", "2026-09-29T00:00:00+08:00"),
    ("2026-national-day-makeup-sunday", "2026-09-18T10:00:00+08:00", 2, "day", "2026-09-21T00:00:00+08:00"),
    ("2026-national-workday-makeup-sunday", "2026-09-18T10:00:00+08:00", 1, "workday", "2026-09-21T00:00:00+08:00"),
    ("2026-both-holidays-workday5", "2026-09-24T10:00:00+08:00", 5, "workday", "2026-10-10T00:00:00+08:00"),
    ("2026-both-holidays-workday6", "2026-09-24T10:00:00+08:00", 6, "workday", "2026-10-11T00:00:00+08:00"),
    # Ordinary weekends and month ends.
    ("weekend-moves-day-period", "2025-03-06T10:00:00+08:00", 2, "day", "2025-03-11T00:00:00+08:00"),
    ("month-end-february", "2025-01-31T10:00:00+08:00", 28, "day", "2025-03-01T00:00:00+08:00"),
    ("month-end-makeup-sat", "2026-01-31T10:00:00+08:00", 28, "day", "2026-03-01T00:00:00+08:00"),
    ("month-end-june", "2025-05-31T10:00:00+08:00", 30, "day", "2025-07-01T00:00:00+08:00"),
    # Inputs in UTC or other offsets count from the Asia/Shanghai date.
    ("utc-already-oct-1", "2026-09-30T17:00:00Z", 1, "day", "2026-10-09T00:00:00+08:00"),
    ("utc-last-second-sep-29", "2026-09-29T15:59:59Z", 1, "day", "2026-10-01T00:00:00+08:00"),
    ("utc-first-second-sep-30", "2026-09-29T16:00:00Z", 1, "day", "2026-10-09T00:00:00+08:00"),
    ("utc-workday-oct-1", "2026-09-30T17:00:00Z", 1, "workday", "2026-10-09T00:00:00+08:00"),
    ("minus5-is-makeup-sat-local", "2026-02-13T23:30:00-05:00", 1, "workday", "2026-02-25T00:00:00+08:00"),
    # Amount 0: by the end of the current working day.
    ("day0-on-holiday", "2025-10-08T10:00:00+08:00", 0, "day", "2025-10-10T00:00:00+08:00"),
    ("day0-on-workday", "2025-10-09T10:00:00+08:00", 0, "day", "2025-10-10T00:00:00+08:00"),
    ("workday0-on-makeup-sat", "2025-10-11T10:00:00+08:00", 0, "workday", "2025-10-12T00:00:00+08:00"),
    ("workday0-on-sunday", "2025-10-12T10:00:00+08:00", 0, "workday", "2025-10-14T00:00:00+08:00"),
    # Natural time ignores nights, weekends and holidays.
    ("hour-across-midnight-into-holiday", "2025-09-30T23:00:00+08:00", 2, "hour", "2025-10-01T01:00:00+08:00"),
    ("hour24-inside-spring-festival", "2026-02-16T09:00:00+08:00", 24, "hour", "2026-02-17T09:00:00+08:00"),
    ("minute-across-year-end", "2025-12-31T23:00:00+08:00", 90, "minute", "2026-01-01T00:30:00+08:00"),
    ("hour-from-utc", "2026-09-30T17:00:00Z", 24, "hour", "2026-10-02T01:00:00+08:00"),
    ("emergency-2h", "2026-02-14T23:15:00+08:00", 2, "hour", "2026-02-15T01:15:00+08:00"),
    ("minute0-is-start", "2026-05-01T06:00:00Z", 0, "minute", "2026-05-01T14:00:00+08:00"),
]


@pytest.mark.parametrize(
    ("start", "amount", "unit", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_compute_due(start: str, amount: int, unit: str, expected: str) -> None:
    deadline = compute_due(datetime.fromisoformat(start), amount, unit, CALENDAR)

    assert deadline.due.isoformat() == expected
    assert deadline.due.tzinfo == SHANGHAI
    assert deadline.calendar_missing is False
    assert deadline.unknown_years == frozenset()


def test_unit_enum_and_string_agree() -> None:
    start = datetime.fromisoformat("2025-09-30T10:00:00+08:00")
    assert compute_due(start, 3, Unit.WORKDAY, CALENDAR) == compute_due(start, 3, "workday", CALENDAR)


def test_natural_hours_count_elapsed_time_across_a_dst_change() -> None:
    # New York springs forward on 2026-03-08: 24 h later is 13:00 local there, not 12:00.
    start = datetime(2026, 3, 7, 12, 0, tzinfo=ZoneInfo("America/New_York"))
    assert compute_due(start, 24, "hour", CALENDAR).due.isoformat() == "2026-03-09T01:00:00+08:00"


# A calendar that knows nothing after 2026, whatever the installed package version knows.
CALENDAR_TO_2026 = WorkCalendar(
    holidays=frozenset(d for d in CALENDAR.holidays if d.year <= 2026),
    workdays=frozenset(d for d in CALENDAR.workdays if d.year <= 2026),
    known_years=frozenset(y for y in CALENDAR.known_years if y <= 2026),
)

# (id, calendar, start, amount, unit, expected due, unknown years)
UNKNOWN_CASES: list[tuple[str, WorkCalendar, str, int, str, str, frozenset[int]]] = [
    # 2099-01-03/04 are Sat/Sun: Monday to Friday stand in for the unknown arrangement.
    (
        "2099-day-over-weekend",
        CALENDAR,
        "2099-01-02T10:00:00+08:00",
        1,
        "day",
        "2099-01-06T00:00:00+08:00",
        frozenset({2099}),
    ),
    (
        "2099-workday",
        CALENDAR,
        "2099-01-01T10:00:00+08:00",
        5,
        "workday",
        "2099-01-09T00:00:00+08:00",
        frozenset({2099}),
    ),
    (
        "2098-into-2099",
        CALENDAR,
        "2098-12-30T10:00:00+08:00",
        3,
        "workday",
        "2099-01-03T00:00:00+08:00",
        frozenset({2098, 2099}),
    ),
    # 2027-01-01 is a Friday, taken as a working day for want of the 2027 notice.
    (
        "2026-workday-into-unknown-2027",
        CALENDAR_TO_2026,
        "2026-12-20T10:00:00+08:00",
        15,
        "workday",
        "2027-01-09T00:00:00+08:00",
        frozenset({2027}),
    ),
    (
        "2026-day-into-unknown-2027",
        CALENDAR_TO_2026,
        "2026-12-31T10:00:00+08:00",
        1,
        "day",
        "2027-01-02T00:00:00+08:00",
        frozenset({2027}),
    ),
    (
        "day60-only-last-day-matters",
        CALENDAR_TO_2026,
        "2026-11-20T10:00:00+08:00",
        60,
        "day",
        "2027-01-20T00:00:00+08:00",
        frozenset({2027}),
    ),
]


@pytest.mark.parametrize(
    ("calendar", "start", "amount", "unit", "expected", "years"),
    [case[1:] for case in UNKNOWN_CASES],
    ids=[case[0] for case in UNKNOWN_CASES],
)
def test_unknown_year_falls_back_to_monday_to_friday_and_says_so(
    calendar: WorkCalendar, start: str, amount: int, unit: str, expected: str, years: frozenset[int]
) -> None:
    deadline = compute_due(datetime.fromisoformat(start), amount, unit, calendar)

    assert deadline.due.isoformat() == expected
    assert deadline.calendar_missing is True
    assert deadline.unknown_years == years


def test_due_at_midnight_into_unknown_year_is_not_flagged() -> None:
    # The last day is 2026-12-31; 2027 is never looked at.
    deadline = compute_due(_due("2026-12-30T10:00:00+08:00"), 1, "workday", CALENDAR_TO_2026)
    assert deadline == Deadline(due=_due("2027-01-01T00:00:00+08:00"))


def test_natural_time_never_needs_the_calendar() -> None:
    deadline = compute_due(_due("2099-01-01T10:00:00+08:00"), 48, "hour", CALENDAR)
    assert deadline == Deadline(due=_due("2099-01-03T10:00:00+08:00"))


def test_known_year_from_overrides_clears_the_flag() -> None:
    calendar = dataclasses.replace(
        CALENDAR,
        holidays=CALENDAR.holidays | {date(2099, 1, 5)},
        known_years=CALENDAR.known_years | {2099},
    )
    deadline = compute_due(_due("2099-01-02T10:00:00+08:00"), 1, "day", calendar)
    assert deadline == Deadline(due=_due("2099-01-07T00:00:00+08:00"))


@pytest.mark.parametrize(
    ("start", "amount", "unit", "message"),
    [
        (datetime(2026, 10, 1, 8, 0), 1, "day", "timezone-aware"),
        (_due("2026-10-01T08:00:00+08:00"), -1, "day", "negative"),
        (_due("2026-10-01T08:00:00+08:00"), -5, "hour", "negative"),
        (_due("2026-10-01T08:00:00+08:00"), 1, "days", "unit must be one of"),
        (_due("2026-10-01T08:00:00+08:00"), MAX_DAYS + 1, "workday", "at most"),
        (_due("9999-12-30T08:00:00+08:00"), 5, "day", "beyond the year 9999"),
        (_due("9999-12-30T08:00:00+08:00"), 10**6, "hour", "beyond the year 9999"),
    ],
)
def test_compute_due_rejects_bad_input(start: datetime, amount: int, unit: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_due(start, amount, unit, CALENDAR)


@pytest.mark.parametrize("amount", [True, 1.5, "3"])
def test_compute_due_rejects_non_int_amount(amount: object) -> None:
    with pytest.raises(TypeError, match="amount must be an int"):
        compute_due(_due("2026-10-01T08:00:00+08:00"), amount, "day", CALENDAR)  # type: ignore[arg-type]  # a wrong type on purpose


def test_deadline_flag_and_years_must_agree() -> None:
    with pytest.raises(ValueError, match="calendar_missing"):
        Deadline(due=_due("2099-01-06T00:00:00+08:00"), calendar_missing=True)


# 2026-02-10 10:00 → 2026-02-26 00:00 is 374 hours.
@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (0.0, "2026-02-10T10:00:00+08:00"),
        (0.5, "2026-02-18T05:00:00+08:00"),
        (0.75, "2026-02-22T02:30:00+08:00"),
        (0.9, "2026-02-24T10:36:00+08:00"),
        (1.0, "2026-02-26T00:00:00+08:00"),
    ],
)
def test_fraction_point_is_natural_time(fraction: float, expected: str) -> None:
    start = _due("2026-02-10T02:00:00Z")
    due = compute_due(start, 15, "day", CALENDAR).due
    assert due.isoformat() == "2026-02-26T00:00:00+08:00"

    point = fraction_point(start, due, fraction)

    assert point.isoformat() == expected


@pytest.mark.parametrize(
    ("start", "due", "fraction", "message"),
    [
        (_due("2026-02-10T10:00:00+08:00"), _due("2026-02-26T00:00:00+08:00"), 75, "between 0 and 1"),
        (_due("2026-02-10T10:00:00+08:00"), _due("2026-02-26T00:00:00+08:00"), -0.1, "between 0 and 1"),
        (_due("2026-02-10T10:00:00+08:00"), _due("2026-02-26T00:00:00+08:00"), float("nan"), "between 0 and 1"),
        (_due("2026-02-26T00:00:00+08:00"), _due("2026-02-10T10:00:00+08:00"), 0.5, "before start"),
        (datetime(2026, 2, 10, 10, 0), _due("2026-02-26T00:00:00+08:00"), 0.5, "timezone-aware"),
        (_due("2026-02-10T10:00:00+08:00"), datetime(2026, 2, 26), 0.5, "timezone-aware"),
    ],
)
def test_fraction_point_rejects_bad_input(start: datetime, due: datetime, fraction: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fraction_point(start, due, fraction)
