"""Zero-report obligations (零报告): who owes a report for which period, and its cut-off.

Every reporting unit owes one report per period of its cadence; an empty incident list is
a zero report, silence is non-compliance. Periods and their ids (local Asia/Shanghai dates):

* ``daily``         ``2026-11-22``       that day
* ``weekly``        ``2026-W47``         ISO week, Monday to Sunday
* ``half_monthly``  ``2026-11-H1`` / ``2026-11-H2``   days 1-15 / 16 to month end
* ``monthly``       ``2026-11``          the calendar month

A period's report is due at the obligation's cut-off time (``HH:MM`` local) on its cut-off
day: the period's last day, or with ``calendar: workday`` the last working day within the
period (for a daily cadence on the working-day calendar, rest days owe no report). The
period *closes* ``grace`` after the cut-off. Special periods (holidays, sensitive dates) add
a tighter cadence between two dates with their own cut-off; where a special period and a
regular one share an id the earlier cut-off applies. Every scheduled period names its rule.

Shared reference data: intake refuses a report for a period the unit does not owe
(:func:`scheduled`, :func:`owed_periods`) and the escalation service judges the periods
(``services.escalation.domain.zero_report``) by the same schedule. Pure: only the standard
library and the shared calendar.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from shared.reference.calendar import SHANGHAI, WorkCalendar

__all__ = [
    "Cadence",
    "Obligation",
    "Period",
    "ScheduledPeriod",
    "SpecialPeriod",
    "owed_periods",
    "parse_obligations",
    "parse_period",
    "period_of",
    "periods_owed",
    "scheduled",
]

_ONE_DAY = timedelta(days=1)
# ASCII digits only (\d would take other scripts' digits), matched whole (no trailing newline)
_DAILY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_WEEKLY = re.compile(r"([0-9]{4})-W([0-9]{2})")
_HALF = re.compile(r"([0-9]{4})-([0-9]{2})-H([12])")
_MONTHLY = re.compile(r"([0-9]{4})-([0-9]{2})")

class Cadence(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    HALF_MONTHLY = "half_monthly"
    MONTHLY = "monthly"


@dataclass(frozen=True, slots=True, order=True)
class Period:
    first_day: date
    last_day: date
    cadence: Cadence
    id: str


def _month_end(year: int, month: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return nxt - _ONE_DAY


def period_of(cadence: Cadence | str, day: date) -> Period:
    """The period of `cadence` that contains local date `day`."""
    cadence = Cadence(cadence)
    if cadence is Cadence.DAILY:
        return Period(day, day, cadence, day.isoformat())
    if cadence is Cadence.WEEKLY:
        year, week, weekday = day.isocalendar()
        first = day - timedelta(days=weekday - 1)
        return Period(first, first + timedelta(days=6), cadence, f"{year}-W{week:02d}")
    if cadence is Cadence.HALF_MONTHLY:
        if day.day <= 15:
            return Period(day.replace(day=1), day.replace(day=15), cadence, f"{day:%Y-%m}-H1")
        return Period(day.replace(day=16), _month_end(day.year, day.month), cadence, f"{day:%Y-%m}-H2")
    return Period(day.replace(day=1), _month_end(day.year, day.month), cadence, f"{day:%Y-%m}")


def parse_period(period_id: str) -> Period:
    """The period an id names; raises ValueError for an id of no cadence."""
    try:
        if m := _DAILY.fullmatch(period_id):
            return period_of(Cadence.DAILY, date(int(m[1]), int(m[2]), int(m[3])))
        if m := _WEEKLY.fullmatch(period_id):
            monday = date.fromisocalendar(int(m[1]), int(m[2]), 1)
            return period_of(Cadence.WEEKLY, monday)
        if m := _HALF.fullmatch(period_id):
            return period_of(Cadence.HALF_MONTHLY, date(int(m[1]), int(m[2]), 1 if m[3] == "1" else 16))
        if m := _MONTHLY.fullmatch(period_id):
            return period_of(Cadence.MONTHLY, date(int(m[1]), int(m[2]), 1))
    except ValueError:
        pass
    raise ValueError(f"not a period id: {period_id!r} (e.g. 2026-11-22, 2026-W47, 2026-11-H2, 2026-11)")


def _periods_from(cadence: Cadence, first: date, last: date) -> Iterator[Period]:
    period = period_of(cadence, first)
    while period.first_day <= last:
        yield period
        period = period_of(cadence, period.last_day + _ONE_DAY)


@dataclass(frozen=True, slots=True)
class SpecialPeriod:
    name: str
    first_day: date
    last_day: date
    cadence: Cadence
    cutoff: time


@dataclass(frozen=True, slots=True)
class Obligation:
    unit: str
    supervising_unit: str
    cadence: Cadence
    cutoff: time
    calendar: str  # "natural" | "workday"
    grace: timedelta
    since: date
    special: tuple[SpecialPeriod, ...] = ()


@dataclass(frozen=True, slots=True)
class ScheduledPeriod:
    """A period a unit owes a report for, with its cut-off and close."""

    period: Period
    due_at: datetime
    closes_at: datetime
    rule: str  # "regular:<cadence>" or "special:<name>"


def _parse_time(value: Any, where: str) -> time:
    text = str(value)
    m = re.match(r"^(\d{1,2}):(\d{2})$", text)
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        raise ValueError(f"{where}: cut-off must be HH:MM, got {text!r}")
    return time(int(m[1]), int(m[2]))


def _parse_duration(data: Mapping[str, Any] | None, where: str) -> timedelta:
    if not data:
        return timedelta(0)
    factors = {"minute": 60, "hour": 3600, "day": 86400}
    unit = data.get("unit")
    if unit not in factors:
        raise ValueError(f"{where}: grace unit must be minute, hour or day")
    amount = int(data.get("amount", 0))
    if amount < 0:
        raise ValueError(f"{where}: grace must not be negative")
    return timedelta(seconds=amount * factors[unit])


def _as_date(value: Any, where: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{where}: not a date: {value!r}") from None


def parse_obligations(data: Mapping[str, Any]) -> dict[str, Obligation]:
    """Parse ``zero-report-obligations.yaml``: unit -> obligation; ValueError when malformed."""
    defaults = data.get("defaults") or {}
    specials_by_name: dict[str, SpecialPeriod] = {}
    for s in data.get("special_periods") or []:
        where = f"special period {s.get('name')!r}"
        first, last = _as_date(s.get("from"), where), _as_date(s.get("to"), where)
        if last < first:
            raise ValueError(f"{where}: `to` is before `from`")
        specials_by_name[s["name"]] = SpecialPeriod(
            s["name"], first, last, Cadence(s.get("cadence", "daily")), _parse_time(s.get("cutoff", "10:00"), where)
        )
    out: dict[str, Obligation] = {}
    for item in data.get("obligations") or []:
        merged = {**defaults, **item}
        unit = merged.get("unit")
        where = f"obligation {unit!r}"
        if not unit or not merged.get("supervising_unit"):
            raise ValueError(f"{where}: unit and supervising_unit are required")
        if unit in out:
            raise ValueError(f"{where}: listed twice")
        try:
            cadence = Cadence(merged.get("cadence", ""))
        except ValueError:
            raise ValueError(f"{where}: cadence must be one of {[c.value for c in Cadence]}") from None
        calendar = merged.get("calendar", "natural")
        if calendar not in ("natural", "workday"):
            raise ValueError(f"{where}: calendar must be natural or workday")
        names = merged.get("special_periods") or []
        unknown = [n for n in names if n not in specials_by_name]
        if unknown:
            raise ValueError(f"{where}: unknown special periods {unknown}")
        out[unit] = Obligation(
            unit=unit,
            supervising_unit=merged["supervising_unit"],
            cadence=cadence,
            cutoff=_parse_time(merged.get("cutoff", "17:00"), where),
            calendar=calendar,
            grace=_parse_duration(merged.get("grace"), where),
            since=_as_date(merged.get("since"), where),
            special=tuple(specials_by_name[n] for n in names),
        )
    return out


def _cutoff_day(period: Period, calendar_kind: str, calendar: WorkCalendar) -> date | None:
    if calendar_kind != "workday":
        return period.last_day
    day = period.last_day
    while day >= period.first_day:
        if calendar.is_workday(day):
            return day
        day -= _ONE_DAY
    return None  # no working day in the period: nothing owed


def _schedule(
    period: Period, cutoff: time, calendar_kind: str, grace: timedelta, calendar: WorkCalendar, rule: str
) -> ScheduledPeriod | None:
    day = _cutoff_day(period, calendar_kind, calendar)
    if day is None:
        return None
    due = datetime.combine(day, cutoff, tzinfo=SHANGHAI)
    return ScheduledPeriod(period, due, due + grace, rule)


def periods_owed(ob: Obligation, first: date, last: date, calendar: WorkCalendar) -> dict[str, ScheduledPeriod]:
    """Every period of `ob` overlapping [first, last], keyed by id (earliest cut-off wins)."""
    owed: dict[str, ScheduledPeriod] = {}

    def add(s: ScheduledPeriod | None) -> None:
        if s is None or s.period.last_day < ob.since:
            return
        current = owed.get(s.period.id)
        if current is None or s.due_at < current.due_at:
            owed[s.period.id] = s

    for p in _periods_from(ob.cadence, first, last):
        add(_schedule(p, ob.cutoff, ob.calendar, ob.grace, calendar, f"regular:{ob.cadence.value}"))
    for sp in ob.special:
        lo, hi = max(first, sp.first_day), min(last, sp.last_day)
        if lo > hi:
            continue
        for p in _periods_from(sp.cadence, lo, hi):
            if p.first_day < sp.first_day or p.last_day > sp.last_day:
                continue  # only periods wholly inside the special period
            add(_schedule(p, sp.cutoff, "natural", ob.grace, calendar, f"special:{sp.name}"))
    return owed


def scheduled(ob: Obligation, period_id: str, calendar: WorkCalendar) -> ScheduledPeriod | None:
    """The period `period_id` if `ob`'s unit owes a report for it, else None."""
    period = parse_period(period_id)
    return periods_owed(ob, period.first_day, period.last_day, calendar).get(period_id)


def owed_periods(ob: Obligation, today: date, calendar: WorkCalendar) -> tuple[str, ...]:
    """Every period id `ob`'s unit owes that has opened by local date `today`, oldest first."""
    ids: dict[str, date] = {}
    for cadence in {ob.cadence, *(sp.cadence for sp in ob.special)}:
        for period in _periods_from(cadence, ob.since, today):
            if period.id not in ids and scheduled(ob, period.id, calendar) is not None:
                ids[period.id] = period.first_day
    return tuple(sorted(ids, key=lambda i: (ids[i], i)))
