"""Moving a running deadline: pause / resume (waiting for the petitioner) and extension (延期).

Rules (each result names the one that applied):

* ``pause``: counting stops at the pause; what is left is ``due - paused_at`` (natural
  time, never negative). Pending timers are cancelled while paused.
* ``resume``: counting continues with exactly the remaining time: ``due = resumed_at +
  remaining``. The time spent paused is added to the clock's paused total.
* ``extension``: approved once per clock, by at most the policy's ``max_days`` natural days.
  The requested days (from the approval, else from the request, else the maximum) are
  capped at the maximum. The new last day is the old last day plus that many days, moved
  off a rest day like any natural-day period (民法典 art. 203); for a clock counted in
  minutes or hours the days are added as natural time. A paused clock's remaining time
  grows by the same amount.
* Warnings after a move: each warning fraction that has not fired yet is planned at the
  same fraction of the clock's *active* span (start to due, less the time paused), so a
  pause shifts the warnings with the deadline; a fraction already warned is not repeated.

Pure: standard library only; time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from services.escalation.domain.deadlines import SHANGHAI, compute_due
from shared.reference.calendar import WorkCalendar

__all__ = ["Extension", "Resumed", "decide_extension", "pause_remaining", "replan_warnings", "resume"]

_ZERO = timedelta(0)


def pause_remaining(due_at: datetime, paused_at: datetime) -> timedelta:
    """Time left on the clock when it is paused at `paused_at` (rule ``pause``)."""
    return max(due_at - paused_at, _ZERO)


@dataclass(frozen=True, slots=True)
class Resumed:
    due_at: datetime
    paused_for: timedelta
    rule: str = "resume:remaining_time"


def resume(*, paused_at: datetime, remaining: timedelta, resumed_at: datetime) -> Resumed:
    """The new deadline when a paused clock resumes at `resumed_at` (rule ``resume``)."""
    resumed_at = max(resumed_at, paused_at)  # a resume that overtook its pause counts from the pause
    return Resumed(due_at=resumed_at + remaining, paused_for=resumed_at - paused_at)


@dataclass(frozen=True, slots=True)
class Extension:
    granted_days: int
    due_at: datetime
    rule: str
    calendar_missing: bool = False


def decide_extension(
    *,
    due_at: datetime,
    unit: str,
    max_days: int,
    already_extended: bool,
    requested_days: int | None,
    calendar: WorkCalendar,
) -> Extension | None:
    """The extended deadline, or None when the policy allows none or one was granted already."""
    if max_days <= 0:
        return None
    if already_extended:
        return None
    if requested_days is None:
        days, rule = max_days, "extension:max_days"
    elif requested_days > max_days:
        days, rule = max_days, "extension:capped_at_max_days"
    else:
        days, rule = max(int(requested_days), 1), "extension:requested_days"
    if unit in ("minute", "hour"):
        return Extension(days, due_at + timedelta(days=days), rule)
    # The last day of a day-counted period is the local date before `due` (due = 24:00 of it).
    last_day_start = datetime.combine(
        (due_at.astimezone(SHANGHAI) - timedelta(microseconds=1)).date(), datetime.min.time(), tzinfo=SHANGHAI
    )
    extended = compute_due(last_day_start, days, "day", calendar)
    return Extension(days, extended.due, rule, extended.calendar_missing)


def replan_warnings(
    *,
    started_at: datetime,
    due_at: datetime,
    paused_total: timedelta,
    fractions: tuple[float, ...],
    already_fired: frozenset[float],
) -> list[tuple[float, datetime]]:
    """(fraction, fire_at) of the warnings still to come after the deadline moved."""
    active = max(due_at - started_at - paused_total, _ZERO)
    return [(f, due_at - active * (1 - f)) for f in fractions if f not in already_fired]
