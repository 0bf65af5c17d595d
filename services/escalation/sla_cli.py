"""``petitionctl sla due``: compute SLA deadlines for JSON lines on stdin.

Input, one JSON object per line (blank lines are skipped)::

    {"start": "2026-09-30T17:00:00Z", "amount": 1, "unit": "day"}

Output, one JSON object per non-blank input line, in the same order::

    {"due": "2026-10-09T00:00:00+08:00"}
    {"due": "2099-01-05T00:00:00+08:00", "calendar_missing": true}
    {"error": "line 3: start must include a UTC offset, got '2026-10-01T08:00:00'"}

A line whose period runs into a year the holiday calendar does not know still gets a deadline
(Monday to Friday counted as working days), marked ``calendar_missing`` and warned about on
stderr. The exit code is 0 when every line was answered, 1 when some line was refused, and 2
when the calendar itself could not be loaded (nothing is read then).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from services.escalation.domain.deadlines import Unit, compute_due
from shared.reference.calendar import WorkCalendar
from shared.reference.calendar_source import CalendarOverridesError, load_calendar

__all__ = ["main", "run_due"]

EXIT_OK = 0
EXIT_BAD_LINES = 1
EXIT_NO_CALENDAR = 2

_FIELDS = frozenset({"start", "amount", "unit"})
_UNIT_VALUES = frozenset(u.value for u in Unit)
_UNITS = ", ".join(u.value for u in Unit)


class _LineError(ValueError):
    """A line that cannot be answered; the message is shown to the user as is."""


def run_due(
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
    *,
    calendar: WorkCalendar | None = None,
) -> int:
    """Answer every request line on `stdin` with a deadline or an error line on `stdout`.

    `calendar` defaults to the package calendar merged with the shipped overrides file.
    Returns the exit code (see the module docstring).
    """
    if calendar is None:
        try:
            calendar = load_calendar()
        except CalendarOverridesError as exc:
            stderr.write(f"error: cannot load the holiday calendar: {exc}\n")
            return EXIT_NO_CALENDAR

    exit_code = EXIT_OK
    write = stdout.write
    for number, line in enumerate(stdin, start=1):
        if not line.strip():
            continue
        try:
            start, amount, unit = _parse_request(line)
            deadline = compute_due(start, amount, unit, calendar)
        except (_LineError, ValueError, TypeError) as exc:
            write(json.dumps({"error": f"line {number}: {exc}"}, ensure_ascii=False) + "\n")
            exit_code = EXIT_BAD_LINES
            continue
        due = deadline.due.isoformat()
        if deadline.calendar_missing:
            years = ", ".join(str(y) for y in sorted(deadline.unknown_years))
            stderr.write(
                f"warning: line {number}: the holiday calendar has no data for {years}; "
                "counted Monday to Friday as working days there\n"
            )
            write(f'{{"due": "{due}", "calendar_missing": true}}\n')
        else:
            write(f'{{"due": "{due}"}}\n')
    return exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m services.escalation.sla_cli`` (no arguments)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        sys.stderr.write("usage: sla_cli < requests.jsonl  (no arguments)\n")
        return 2
    return run_due(sys.stdin, sys.stdout, sys.stderr)


def _parse_request(line: str) -> tuple[datetime, int, str]:
    try:
        request: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _LineError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(request, dict):
        raise _LineError("expected a JSON object with start, amount and unit")
    missing = _FIELDS - request.keys()
    if missing:
        raise _LineError(f"missing {', '.join(sorted(missing))}")
    extra = request.keys() - _FIELDS
    if extra:
        raise _LineError(f"unexpected field(s) {', '.join(sorted(extra))}; expected start, amount, unit")

    raw_start, amount, unit = request["start"], request["amount"], request["unit"]
    if not isinstance(raw_start, str):
        raise _LineError("start must be an ISO 8601 string with a UTC offset")
    try:
        start = datetime.fromisoformat(raw_start)
    except ValueError:
        raise _LineError(f"start is not an ISO 8601 date-time: {raw_start!r}") from None
    if start.tzinfo is None:
        raise _LineError(f"start must include a UTC offset (e.g. +08:00 or Z), got {raw_start!r}")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise _LineError(f"amount must be a whole number, got {json.dumps(amount, ensure_ascii=False)}")
    if amount < 0:
        raise _LineError(f"amount must not be negative, got {amount}")
    if not isinstance(unit, str) or unit not in _UNIT_VALUES:
        raise _LineError(f"unit must be one of {_UNITS}, got {json.dumps(unit, ensure_ascii=False)}")
    return start, amount, unit


if __name__ == "__main__":
    raise SystemExit(main())
