"""`petitionctl sla due` (run_due): JSON lines in, one JSON line out per request, in order."""

from __future__ import annotations

import io
import json
from datetime import date

import pytest

from services.escalation.sla_cli import run_due
from shared.reference.calendar import WorkCalendar
from shared.reference.calendar_source import load_calendar


def _run(text: str, calendar: WorkCalendar | None = None) -> tuple[int, list[dict[str, object]], str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = run_due(io.StringIO(text), stdout, stderr, calendar=calendar)
    return code, [json.loads(line) for line in stdout.getvalue().splitlines()], stderr.getvalue()


def test_answers_each_line_in_order() -> None:
    code, out, err = _run(
        '{"start": "2026-09-30T17:00:00Z", "amount": 1, "unit": "day"}\n'
        '{"start": "2025-09-30T10:00:00+08:00", "amount": 3, "unit": "workday"}\n'
        '{"start": "2025-09-30T23:00:00+08:00", "amount": 2, "unit": "hour"}\n'
        '{"start": "2025-12-31T23:00:00+08:00", "amount": 90, "unit": "minute"}\n'
    )

    assert code == 0
    assert out == [
        {"due": "2026-10-09T00:00:00+08:00"},
        {"due": "2025-10-12T00:00:00+08:00"},
        {"due": "2025-10-01T01:00:00+08:00"},
        {"due": "2026-01-01T00:30:00+08:00"},
    ]
    assert err == ""


def test_blank_lines_are_skipped() -> None:
    code, out, _ = _run(
        '\n{"start": "2026-02-13T10:00:00+08:00", "amount": 1, "unit": "day"}\n   \n\n'
        '{"start": "2026-02-13T10:00:00+08:00", "amount": 2, "unit": "day"}'
    )
    assert code == 0
    assert out == [{"due": "2026-02-15T00:00:00+08:00"}, {"due": "2026-02-25T00:00:00+08:00"}]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 2: not valid JSON"),
        ("[1, 2]", "line 2: expected a JSON object"),
        ('{"start": "2026-10-01T08:00:00+08:00", "unit": "day"}', "line 2: missing amount"),
        (
            '{"start": "2026-10-01T08:00:00+08:00", "amount": 1, "unit": "day", "ammount": 2}',
            "unexpected field(s) ammount",
        ),
        ('{"start": "2026-10-01T08:00:00", "amount": 1, "unit": "day"}', "must include a UTC offset"),
        ('{"start": "1 Oct 2026", "amount": 1, "unit": "day"}', "not an ISO 8601 date-time"),
        ('{"start": 1790000000, "amount": 1, "unit": "day"}', "start must be an ISO 8601 string"),
        ('{"start": "2026-10-01T08:00:00+08:00", "amount": -3, "unit": "day"}', "must not be negative"),
        ('{"start": "2026-10-01T08:00:00+08:00", "amount": 1.5, "unit": "day"}', "whole number, got 1.5"),
        ('{"start": "2026-10-01T08:00:00+08:00", "amount": "7", "unit": "day"}', 'whole number, got "7"'),
        ('{"start": "2026-10-01T08:00:00+08:00", "amount": true, "unit": "day"}', "whole number, got true"),
        (
            '{"start": "2026-10-01T08:00:00+08:00", "amount": 1, "unit": "days"}',
            'unit must be one of minute, hour, day, workday, got "days"',
        ),
        ('{"start": "2026-10-01T08:00:00+08:00", "amount": 999999, "unit": "workday"}', "at most 36600"),
        ('{"start": "9999-12-31T08:00:00+08:00", "amount": 1, "unit": "day"}', "beyond the year 9999"),
    ],
)
def test_bad_line_gets_an_error_in_its_place_and_a_failing_exit(line: str, message: str) -> None:
    good = '{"start": "2025-09-30T10:00:00+08:00", "amount": 1, "unit": "day"}'

    code, out, _ = _run(f"{good}\n{line}\n{good}\n")

    assert code == 1
    assert out[0] == out[2] == {"due": "2025-10-10T00:00:00+08:00"}
    assert list(out[1]) == ["error"]
    assert message in str(out[1]["error"])


def test_missing_calendar_is_answered_flagged_and_warned() -> None:
    code, out, err = _run(
        '{"start": "2025-09-30T10:00:00+08:00", "amount": 1, "unit": "day"}\n'
        '{"start": "2099-01-02T10:00:00+08:00", "amount": 1, "unit": "day"}\n'
    )

    assert code == 0
    assert out == [
        {"due": "2025-10-10T00:00:00+08:00"},
        {"due": "2099-01-06T00:00:00+08:00", "calendar_missing": True},
    ]
    assert err.startswith("warning: line 2:")
    assert "2099" in err
    assert len(err.splitlines()) == 1


def test_uses_the_calendar_it_is_given() -> None:
    shipped = load_calendar()
    calendar = WorkCalendar(
        holidays=shipped.holidays | {date(2099, 1, 5)},
        workdays=shipped.workdays,
        known_years=shipped.known_years | {2099},
    )
    code, out, err = _run('{"start": "2099-01-02T10:00:00+08:00", "amount": 1, "unit": "day"}\n', calendar)

    assert (code, out, err) == (0, [{"due": "2099-01-07T00:00:00+08:00"}], "")


def test_empty_input_writes_nothing() -> None:
    assert _run("") == (0, [], "")
