"""Zero reports (零报告): judging each unit's periods on time, late or missing.

The schedule (which periods a unit owes, their cut-offs and closes) is shared reference data
(:mod:`shared.reference.obligations`). Here: a report is ``on_time`` when submitted by the
cut-off, ``late`` (迟报) after it; a period closed without a report is ``missing`` (漏报) and
is escalated to the supervising unit. A report arriving after the close still counts, as
late. Every decision names its rule. Pure: only the standard library and shared data.

An obligation is judged from the later of its ``since`` date and the moment the evaluator
first meets the unit (:func:`evaluation_start`): a fresh install, or a unit newly put under
obligation, never finds reports "missed" before it existed. From then on the instant
evaluated up to persists, so periods closing while the service is down are caught up.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Literal

from shared.reference.calendar import SHANGHAI, WorkCalendar
from shared.reference.obligations import Obligation, ScheduledPeriod, periods_owed

__all__ = ["ZERO_REPORT_LEVEL", "ReportStatus", "classify", "closing_between", "evaluation_start"]

#: What became of a unit's report for a period (the ``status`` of ``zero_report.status``).
ReportStatus = Literal["on_time", "late", "missing", "unscheduled"]

#: the level of the 督办 a missing report opens for the supervising unit
ZERO_REPORT_LEVEL = "zero_report"


def closing_between(
    ob: Obligation, after: datetime, until: datetime, calendar: WorkCalendar
) -> list[ScheduledPeriod]:
    """The periods of `ob` that close in (`after`, `until`], oldest first.

    The job that marks missing reports calls this with the instant it last evaluated up to,
    so periods that closed while the service was down are caught up.
    """
    if until <= after:
        return []
    # a period closes at most ~a month plus grace after its first day: look back that far
    lookback = timedelta(days=32) + ob.grace
    first = max((after - lookback).astimezone(SHANGHAI).date(), ob.since)
    last = until.astimezone(SHANGHAI).date()
    owed = periods_owed(ob, first, last, calendar)
    return sorted((s for s in owed.values() if after < s.closes_at <= until), key=lambda s: (s.closes_at, s.period.id))


def evaluation_start(ob: Obligation, first_seen: datetime) -> datetime:
    """The instant a unit's evaluation starts when the evaluator first meets it at `first_seen`.

    The later of the obligation's ``since`` (00:00 local) and `first_seen`, never in the past:
    only periods closing after it are judged (:func:`closing_between`). A period already
    closed at the install is not "missing"; one closing after it is, even if it began before.
    """
    since = datetime.combine(ob.since, time(0), tzinfo=SHANGHAI)
    return max(since, first_seen)


def classify(submitted_at: datetime, s: ScheduledPeriod) -> tuple[ReportStatus, str]:
    """(status, rule) of a report submitted at `submitted_at` for scheduled period `s`."""
    if submitted_at <= s.due_at:
        return "on_time", "on_time:by_cutoff"
    if submitted_at <= s.closes_at:
        return "late", "late:within_grace"
    return "late", "late:after_close"
