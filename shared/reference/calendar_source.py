"""Build the `WorkCalendar` from the `chinese-calendar` package and the overrides file.

`chinese-calendar` carries the State Council's holiday arrangements as two dicts,
`chinese_calendar.constants.holidays` and `.workdays` (date → holiday name); it knows every
year from its first to its last holiday entry and refuses others. A new release follows each
November notice, but a deployment may lag behind, so `data/calendar-overrides.yaml` adds or
corrects dates and declares the years it makes known. Overrides win over the package.

Overrides file format::

    known_years: [2027]          # years whose arrangement is now complete
    dates:                       # date: holiday | workday
      2027-01-01: holiday
      2027-02-06: workday        # a 调休 make-up Saturday

`dates` entries are honoured in any year, but only `known_years` (and the package's years)
count as known; a deadline that looks at any other year is flagged `calendar_missing`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import chinese_calendar.constants
import yaml

from shared.reference.calendar import WorkCalendar

__all__ = [
    "DEFAULT_OVERRIDES_PATH",
    "CalendarOverrides",
    "CalendarOverridesError",
    "build_calendar",
    "clear_calendar_cache",
    "load_calendar",
    "package_calendar",
    "parse_overrides",
]

DEFAULT_OVERRIDES_PATH = Path(__file__).resolve().parent / "data" / "calendar-overrides.yaml"

_HOLIDAY = "holiday"
_WORKDAY = "workday"


class CalendarOverridesError(ValueError):
    """The overrides file cannot be read or does not follow the format."""


@dataclass(frozen=True, slots=True)
class CalendarOverrides:
    """The overrides file's content: dates forced to rest or work, and newly known years."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    known_years: frozenset[int] = frozenset()


def package_calendar() -> WorkCalendar:
    """The calendar exactly as the installed `chinese-calendar` package knows it."""
    holidays = frozenset(chinese_calendar.constants.holidays)
    workdays = frozenset(chinese_calendar.constants.workdays)
    years = [d.year for d in holidays]
    known = frozenset(range(min(years), max(years) + 1)) if years else frozenset()
    return WorkCalendar(holidays=holidays, workdays=workdays, known_years=known)


def parse_overrides(data: Any, *, source: str = "overrides") -> CalendarOverrides:
    """Validate the loaded YAML document (None for an empty file) into `CalendarOverrides`."""
    if data is None:
        return CalendarOverrides()
    if not isinstance(data, Mapping):
        raise CalendarOverridesError(f"{source}: expected a mapping with known_years and dates")
    unexpected = set(data) - {"known_years", "dates"}
    if unexpected:
        raise CalendarOverridesError(f"{source}: unknown keys {sorted(map(str, unexpected))}")

    raw_years = data.get("known_years") or []
    if not isinstance(raw_years, list) or not all(_is_year(y) for y in raw_years):
        raise CalendarOverridesError(f"{source}: known_years must be a list of years, got {raw_years!r}")

    raw_dates = data.get("dates") or {}
    if not isinstance(raw_dates, Mapping):
        raise CalendarOverridesError(f"{source}: dates must map a date to holiday or workday")
    holidays: set[date] = set()
    workdays: set[date] = set()
    for key, kind in raw_dates.items():
        day = _parse_date(key, source)
        if kind == _HOLIDAY:
            holidays.add(day)
        elif kind == _WORKDAY:
            workdays.add(day)
        else:
            raise CalendarOverridesError(f"{source}: {day}: expected holiday or workday, got {kind!r}")
    return CalendarOverrides(
        holidays=frozenset(holidays),
        workdays=frozenset(workdays),
        known_years=frozenset(raw_years),
    )


def build_calendar(base: WorkCalendar, overrides: CalendarOverrides) -> WorkCalendar:
    """Merge `overrides` into `base`; an override replaces whatever `base` says of that date."""
    return WorkCalendar(
        holidays=(base.holidays - overrides.workdays) | overrides.holidays,
        workdays=(base.workdays - overrides.holidays) | overrides.workdays,
        known_years=base.known_years | overrides.known_years,
    )


def load_calendar(overrides_path: str | Path | None = None) -> WorkCalendar:
    """The package calendar merged with the overrides file, loaded once per path.

    A missing file at the default path means "no overrides"; a missing file given explicitly,
    or a malformed one, raises `CalendarOverridesError` so that a typo fails at start-up.
    """
    if overrides_path is None:
        return _load(DEFAULT_OVERRIDES_PATH, required=False)
    return _load(Path(overrides_path).resolve(), required=True)


def clear_calendar_cache() -> None:
    """Forget loaded calendars (after the overrides file changed, or between tests)."""
    _load.cache_clear()


@functools.lru_cache(maxsize=8)
def _load(path: Path, *, required: bool) -> WorkCalendar:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise CalendarOverridesError(f"{path}: calendar overrides file not found") from None
        text = ""
    except OSError as exc:
        raise CalendarOverridesError(f"{path}: cannot read calendar overrides: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:
        # PyYAML raises a bare ValueError for an impossible date such as 2027-13-01.
        raise CalendarOverridesError(f"{path}: not valid YAML: {exc}") from exc
    return build_calendar(package_calendar(), parse_overrides(data, source=str(path)))


def _is_year(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 9999


def _parse_date(key: object, source: str) -> date:
    # YAML turns an unquoted 2027-01-01 into a date; a quoted one stays a string.
    if isinstance(key, date) and not isinstance(key, datetime):
        return key
    if isinstance(key, str):
        try:
            return date.fromisoformat(key)
        except ValueError:
            pass
    raise CalendarOverridesError(f"{source}: {key!r} is not a date (YYYY-MM-DD)")
