"""The working-day calendar used for SLA day counting, as plain data.

China's working days are not "Monday to Friday": statutory holidays (法定节假日) close
weekdays, and make-up workdays (调休上班) open some Saturdays and Sundays. The State
Council publishes each year's arrangement (国务院办公厅关于 XXXX 年部分节假日安排的通知)
only late in the previous year, so the calendar also records which years it actually knows.

For a year it does not know, the calendar still answers (Monday to Friday are working days)
so that a deadline running into that year can be computed; callers ask `is_known` to find out
that the answer was a guess and must warn about it.

This module imports only the standard library: the data comes from an adapter
(:mod:`shared.reference.calendar_source`). Day arithmetic is in local time,
:data:`SHANGHAI`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

__all__ = ["SHANGHAI", "WorkCalendar", "known_until"]

#: the zone of every local date and cut-off (Asia/Shanghai: no daylight saving)
SHANGHAI = ZoneInfo("Asia/Shanghai")

_SATURDAY = 5


@dataclass(frozen=True, slots=True)
class WorkCalendar:
    """Which local (Asia/Shanghai) dates are working days.

    Attributes:
        holidays: dates that are rest days although they may fall on Monday-Friday
            (the statutory holiday blocks, including any weekend days inside them).
        workdays: dates that are working days although they fall on a weekend
            (调休 make-up workdays).
        known_years: years whose official arrangement is in `holidays` / `workdays`.

    Must hold: no date is both a holiday and a workday.

    Explicit dates are honoured in every year, known or not; outside them a day is a working
    day when it is Monday to Friday. For a known year that rule is exact; for an unknown year
    it is the documented fallback and `is_known` says so.
    """

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    known_years: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        both = self.holidays & self.workdays
        if both:
            listed = ", ".join(d.isoformat() for d in sorted(both))
            raise ValueError(f"dates marked both holiday and workday: {listed}")

    def is_workday(self, day: date) -> bool:
        """True when `day` is a working day (for an unknown year: Monday to Friday)."""
        if day in self.workdays:
            return True
        return day.weekday() < _SATURDAY and day not in self.holidays

    def is_known(self, day: date) -> bool:
        """True when the official holiday arrangement for `day`'s year is in the calendar."""
        return day.year in self.known_years


def known_until(calendar: WorkCalendar, today: date) -> date:
    """The first day the calendar no longer knows, looking forward from `today`.

    The years known without a gap from `today`'s year on count; the answer is 1 January of
    the first year after them (the end, at 24:00, of the last known year). A calendar that
    does not know `today`'s year answers 1 January of that year, already in the past.
    """
    year = today.year
    while year in calendar.known_years:
        year += 1
    return date(year, 1, 1)
