"""The calendar adapter: package data merged with the overrides file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
import yaml

from services.escalation.domain.deadlines import compute_due
from shared.reference.calendar import WorkCalendar
from shared.reference.calendar_source import (
    DEFAULT_OVERRIDES_PATH,
    CalendarOverrides,
    CalendarOverridesError,
    build_calendar,
    clear_calendar_cache,
    load_calendar,
    package_calendar,
    parse_overrides,
)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_calendar_cache()
    yield
    clear_calendar_cache()


def test_package_knows_2025_and_2026_as_a_contiguous_range() -> None:
    calendar = package_calendar()
    assert {2025, 2026} <= calendar.known_years
    assert calendar.known_years == frozenset(range(min(calendar.known_years), max(calendar.known_years) + 1))
    # Spot checks: 2025 国庆+中秋 8 days, its Saturday make-up day, and 2026 春节 eve.
    assert not calendar.is_workday(date(2025, 10, 8))
    assert calendar.is_workday(date(2025, 10, 11))
    assert not calendar.is_workday(date(2026, 2, 16))


def test_shipped_overrides_file_is_valid() -> None:
    data = yaml.safe_load(DEFAULT_OVERRIDES_PATH.read_text(encoding="utf-8"))
    parse_overrides(data)  # must not raise
    assert load_calendar().known_years >= package_calendar().known_years


def test_overrides_win_over_the_package() -> None:
    overrides = parse_overrides(
        {
            "known_years": [2099],
            "dates": {
                date(2025, 10, 9): "holiday",  # a Thursday the package has as a workday
                "2025-10-08": "workday",  # a holiday in the package
                date(2099, 1, 5): "holiday",
            },
        }
    )
    calendar = build_calendar(package_calendar(), overrides)

    assert not calendar.is_workday(date(2025, 10, 9))
    assert calendar.is_workday(date(2025, 10, 8))
    assert not calendar.is_workday(date(2099, 1, 5))
    assert calendar.is_known(date(2099, 1, 5))
    # Everything else is left as the package has it.
    assert not calendar.is_workday(date(2025, 10, 7))
    assert calendar.is_workday(date(2025, 9, 28))


def test_load_calendar_reads_the_given_file_and_caches_it(tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_text("known_years: [2099]\ndates:\n  2099-01-05: holiday\n", encoding="utf-8")

    calendar = load_calendar(path)

    assert load_calendar(str(path)) is calendar
    deadline = compute_due(datetime.fromisoformat("2099-01-02T10:00:00+08:00"), 1, "day", calendar)
    assert deadline.due.isoformat() == "2099-01-07T00:00:00+08:00"
    assert deadline.calendar_missing is False


def test_dates_in_an_undeclared_year_apply_but_stay_unknown() -> None:
    calendar = build_calendar(WorkCalendar(), parse_overrides({"dates": {"2099-01-05": "holiday"}}))
    assert not calendar.is_workday(date(2099, 1, 5))
    assert not calendar.is_known(date(2099, 1, 5))


def test_empty_file_means_no_overrides() -> None:
    assert parse_overrides(None) == CalendarOverrides()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- 2027-01-01\n", "expected a mapping"),
        ("years: [2027]\n", "unknown keys"),
        ("known_years: 2027\n", "known_years must be a list"),
        ("known_years: [twenty]\n", "known_years must be a list"),
        ("dates:\n  2027-01-01: rest\n", "expected holiday or workday"),
        ("dates:\n  2027-13-01: holiday\n", "month must be in 1..12"),
        ("dates:\n  '2027-02-30': holiday\n", "is not a date"),
        ("dates:\n  2027-01-01 09:00:00: holiday\n", "is not a date"),
        ("dates: [2027-01-01]\n", "dates must map"),
        ("known_years: [\n", "not valid YAML"),
    ],
)
def test_malformed_overrides_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CalendarOverridesError, match=message):
        load_calendar(path)


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CalendarOverridesError, match="not found"):
        load_calendar(tmp_path / "absent.yaml")


def test_a_date_cannot_be_both_holiday_and_workday() -> None:
    with pytest.raises(ValueError, match="both holiday and workday"):
        WorkCalendar(holidays=frozenset({date(2099, 1, 3)}), workdays=frozenset({date(2099, 1, 3)}))


def test_unknown_year_is_monday_to_friday() -> None:
    calendar = WorkCalendar()
    week = [date(2099, 1, day) for day in range(5, 12)]  # Monday 5 … Sunday 11
    assert [calendar.is_workday(d) for d in week] == [True] * 5 + [False] * 2
    assert not any(calendar.is_known(d) for d in week)
