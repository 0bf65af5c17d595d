"""SLA deadline arithmetic: natural time, natural days and working days.

The counting rules follow the Civil Code (民法典 art. 200-204) as the SLA model applies them:

- ``minute`` / ``hour``: natural time. The deadline is the start plus that much elapsed time;
  nights, weekends and holidays all count.
- ``day`` (natural days, 日): the starting day is not counted. The last day is the local start
  date plus N days; when that last day is not a working day, the next working day becomes the
  last day. The period ends at 24:00 of the last day.
- ``workday`` (working days, 工作日): the starting day is not counted. The last day is the N-th
  working day after the local start date. The period ends at 24:00 of the last day.

"24:00 of a day" is written as 00:00 of the following day, +08:00: a reply at 23:59:59 on the
last day is in time, one at 00:00 the next day is late. Dates are local to Asia/Shanghai, so
``2026-09-30T17:00:00Z`` starts on 1 October.

Amount 0 of ``day`` or ``workday`` means "by the end of the current working day": the last day is
the start date when it is a working day, otherwise the next working day. Both units agree on it,
and it is what the general rules give for ``day`` with N = 0. Amount 0 of ``minute`` / ``hour``
is the start itself.

Working days come from a `WorkCalendar`. When the counting looks at a date in a year the calendar
does not know, Monday to Friday stand in for working days and the returned `Deadline` says the
calendar was missing, with the years concerned, so that the caller can raise a metric and log.

Only the standard library is imported; the current time is never read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from shared.reference.calendar import SHANGHAI, WorkCalendar

__all__ = [
    "MAX_DAYS",
    "SHANGHAI",
    "Deadline",
    "Unit",
    "compute_due",
    "fraction_point",
]


MAX_DAYS = 36_600
"""Upper bound for a ``day`` / ``workday`` amount (about a century): anything longer is an
input error, and the bound keeps working-day counting cheap."""

_ONE_DAY = timedelta(days=1)


class Unit(StrEnum):
    """How a period's amount is counted."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WORKDAY = "workday"


@dataclass(frozen=True, slots=True)
class Deadline:
    """When a period ends, and whether a guessed calendar went into it.

    Attributes:
        due: the first instant that is late, in Asia/Shanghai (for day units, 00:00 of the day
            after the last day).
        calendar_missing: True when a date in a year the calendar does not know decided the
            result (Monday to Friday were taken as the working days there).
        unknown_years: those years; empty exactly when `calendar_missing` is False.
    """

    due: datetime
    calendar_missing: bool = False
    unknown_years: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if self.calendar_missing != bool(self.unknown_years):
            raise ValueError("calendar_missing must be True exactly when unknown_years is set")


def compute_due(
    start: datetime,
    amount: int,
    unit: Unit | str,
    calendar: WorkCalendar,
) -> Deadline:
    """Return the deadline of a period of `amount` `unit`s that starts at `start`.

    Raises:
        ValueError: `start` is naive, `unit` is not a known unit, `amount` is negative, a day
            amount exceeds `MAX_DAYS`, or the deadline would fall beyond the year 9999.
        TypeError: `amount` is not an int (bool included).
    """
    _require_aware(start, "start")
    unit = _parse_unit(unit)
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"amount must be an int, got {type(amount).__name__}")
    if amount < 0:
        raise ValueError(f"amount must not be negative, got {amount}")

    if unit is Unit.MINUTE or unit is Unit.HOUR:
        minutes = amount if unit is Unit.MINUTE else amount * 60
        try:
            due = start.astimezone(UTC) + timedelta(minutes=minutes)
        except OverflowError:
            raise ValueError(f"{amount} {unit} from {start.isoformat()} is beyond the year 9999") from None
        return Deadline(due=due.astimezone(SHANGHAI))

    if amount > MAX_DAYS:
        raise ValueError(f"amount of {unit} must be at most {MAX_DAYS}, got {amount}")
    first_day = start.astimezone(SHANGHAI).date()
    unknown: set[int] = set()
    try:
        if unit is Unit.DAY or amount == 0:
            last_day = _roll_to_workday(first_day + timedelta(days=amount), calendar, unknown)
        else:
            last_day = _nth_workday_after(first_day, amount, calendar, unknown)
        due = datetime.combine(last_day + _ONE_DAY, time(), tzinfo=SHANGHAI)
    except OverflowError:
        raise ValueError(f"{amount} {unit} from {start.isoformat()} is beyond the year 9999") from None
    return Deadline(due=due, calendar_missing=bool(unknown), unknown_years=frozenset(unknown))


def fraction_point(start: datetime, due: datetime, fraction: float) -> datetime:
    """Return the instant at `fraction` of the period from `start` to `due`, in Asia/Shanghai.

    The period is measured in natural (elapsed) time whatever unit produced `due`: 50 % of a
    15-working-day period that spans a holiday lies halfway between the two instants. Used for
    the warnings before a breach (e.g. 0.5, 0.75, 0.9); 1.0 is `due` itself.

    Raises:
        ValueError: an argument is naive, `due` is before `start`, or `fraction` is not
            within [0, 1] (a percentage such as 75 passed by mistake is refused).
    """
    _require_aware(start, "start")
    _require_aware(due, "due")
    if not (math.isfinite(fraction) and 0 <= fraction <= 1):
        raise ValueError(f"fraction must be between 0 and 1, got {fraction!r}")
    start_utc = start.astimezone(UTC)
    period = due.astimezone(UTC) - start_utc
    if period < timedelta(0):
        raise ValueError(f"due {due.isoformat()} is before start {start.isoformat()}")
    return (start_utc + period * fraction).astimezone(SHANGHAI)


def _require_aware(moment: datetime, name: str) -> None:
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")


def _parse_unit(unit: Unit | str) -> Unit:
    try:
        return Unit(unit)
    except ValueError:
        allowed = ", ".join(u.value for u in Unit)
        raise ValueError(f"unit must be one of {allowed}; got {unit!r}") from None


def _roll_to_workday(day: date, calendar: WorkCalendar, unknown: set[int]) -> date:
    """Return `day`, or the first working day after it when it is a rest day."""
    while True:
        if not calendar.is_known(day):
            unknown.add(day.year)
        if calendar.is_workday(day):
            return day
        day += _ONE_DAY


def _nth_workday_after(day: date, count: int, calendar: WorkCalendar, unknown: set[int]) -> date:
    """Return the `count`-th working day after `day` (`day` itself is not counted)."""
    while count:
        day += _ONE_DAY
        if not calendar.is_known(day):
            unknown.add(day.year)
        if calendar.is_workday(day):
            count -= 1
    return day
