"""Pause / resume / extension arithmetic of a running deadline."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.escalation.domain.clockmath import decide_extension, pause_remaining, replan_warnings, resume
from services.escalation.domain.deadlines import SHANGHAI
from shared.reference.calendar_source import load_calendar

CAL = load_calendar()


def _t(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=SHANGHAI)


def test_pause_then_resume_continues_with_the_remaining_time() -> None:
    due = _t(2026, 3, 10)
    paused_at = _t(2026, 3, 7, 12)
    remaining = pause_remaining(due, paused_at)
    assert remaining == timedelta(days=2, hours=12)
    resumed = resume(paused_at=paused_at, remaining=remaining, resumed_at=_t(2026, 3, 9, 12))
    assert resumed.due_at == _t(2026, 3, 12, 0)
    assert resumed.paused_for == timedelta(days=2)
    assert resumed.rule == "resume:remaining_time"


def test_pausing_an_overdue_clock_leaves_nothing_and_a_resume_before_the_pause_counts_from_it() -> None:
    assert pause_remaining(_t(2026, 3, 1), _t(2026, 3, 2)) == timedelta(0)
    resumed = resume(paused_at=_t(2026, 3, 2), remaining=timedelta(hours=1), resumed_at=_t(2026, 3, 1))
    assert resumed.due_at == _t(2026, 3, 2, 1) and resumed.paused_for == timedelta(0)


@pytest.mark.parametrize(
    ("due", "unit", "requested", "expected_due", "days", "rule"),
    [
        # 60-day 信访 resolution ending 24:00 Fri 10 Apr 2026: +30 days -> Sun 10 May -> Mon 11 May
        (_t(2026, 4, 11), "day", 30, _t(2026, 5, 12), 30, "extension:requested_days"),
        # nothing requested: the policy's maximum
        (_t(2026, 4, 11), "day", None, _t(2026, 5, 12), 30, "extension:max_days"),
        # more than allowed: capped at the maximum
        (_t(2026, 4, 11), "day", 45, _t(2026, 5, 12), 30, "extension:capped_at_max_days"),
        # last day 15 Sep 2026 + 16 days = 1 Oct, inside National Day: next working day is 8 Oct
        (_t(2026, 9, 16), "day", 16, _t(2026, 10, 9), 16, "extension:requested_days"),
        # an hour-counted clock moves by natural days
        (_t(2026, 4, 11, 15, 30), "hour", 2, _t(2026, 4, 13, 15, 30), 2, "extension:requested_days"),
    ],
)
def test_extension_moves_the_deadline_once(due: datetime, unit: str, requested: int | None,
                                           expected_due: datetime, days: int, rule: str) -> None:
    ext = decide_extension(due_at=due, unit=unit, max_days=30, already_extended=False,
                           requested_days=requested, calendar=CAL)
    assert ext is not None
    assert (ext.due_at, ext.granted_days, ext.rule) == (expected_due, days, rule)


def test_no_second_extension_and_none_where_the_policy_allows_none() -> None:
    due = _t(2026, 4, 11)
    assert decide_extension(due_at=due, unit="day", max_days=30, already_extended=True,
                            requested_days=10, calendar=CAL) is None
    assert decide_extension(due_at=due, unit="day", max_days=0, already_extended=False,
                            requested_days=10, calendar=CAL) is None


def test_extension_into_an_unknown_year_is_flagged() -> None:
    ext = decide_extension(due_at=_t(2026, 12, 20), unit="day", max_days=30, already_extended=False,
                           requested_days=30, calendar=CAL)
    assert ext is not None and ext.calendar_missing


def test_warnings_after_a_pause_keep_their_share_of_the_active_time() -> None:
    start = _t(2026, 3, 1)
    # 10 days of clock, paused 2 days: due moved from 11 Mar to 13 Mar
    planned = replan_warnings(started_at=start, due_at=_t(2026, 3, 13), paused_total=timedelta(days=2),
                              fractions=(0.5, 0.75, 0.9), already_fired=frozenset({0.5}))
    assert planned == [(0.75, _t(2026, 3, 13) - timedelta(days=2.5)), (0.9, _t(2026, 3, 13) - timedelta(days=1))]
