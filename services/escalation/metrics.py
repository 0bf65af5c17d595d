"""The escalation service's metrics (Prometheus naming: base units, _total counters, no
per-petition labels), and how what a handler did is counted (the ``count_*`` functions, called
once its transaction has committed)."""

from __future__ import annotations

import contextlib
from collections import Counter as Tally

from prometheus_client import Counter, Gauge, Histogram

from services.escalation.domain.ladder import LEVELS, OVERDUE_LEVEL
from services.escalation.domain.zero_report import ZERO_REPORT_LEVEL
from services.escalation.planning import Firing, OverduePlan, PetitionPlan, ReportVerdict

CLOCKS_ARMED = Counter("petition_sla_clocks_armed_total", "Clocks armed, by clock.", ["clock"])
CLOCKS_STOPPED = Counter(
    "petition_sla_clocks_stopped_total", "Clocks stopped, by clock and reason.", ["clock", "reason"]
)
WARNINGS = Counter("petition_sla_warnings_total", "Deadline warnings issued, by clock.", ["clock"])
BREACHES = Counter("petition_sla_breaches_total", "Deadlines missed, by clock.", ["clock"])
ESCALATIONS = Counter(
    "petition_escalations_total",
    "Ladder steps taken after a breach (each opens a 督办), by ladder level.",
    ["level"],
)
SUPERVISION_ORDERS = Counter(
    "petition_supervision_orders_total",
    "督办 (supervision orders) opened, by level: the ladder levels, zero_report (a missing zero"
    " report), overdue (an earlier 督办 lapsed).",
    ["level"],
)
SUPERVISIONS_OVERDUE = Counter(
    "petition_supervisions_overdue_total",
    "督办 whose own deadline passed while open, by the lapsed order's level.",
    ["level"],
)
SUPERVISIONS_CLOSED = Counter(
    "petition_supervisions_closed_total", "督办 (supervision orders) closed by a supervisor, by level.", ["level"]
)
OPEN_SUPERVISIONS = Gauge(
    "petition_supervisions_open", "Open 督办 by ladder level (refreshed from the database).", ["level"]
)
TIMERS_FIRED = Counter(
    "petition_timers_fired_total",
    "Durable timers fired, by kind (warning, breach, escalate; stale = its clock had moved on;"
    " superseded = a warning found due after its deadline had passed, published as no warning).",
    ["kind"],
)
ESCALATION_STEPS_MISSED = Counter(
    "petition_escalation_steps_missed_total",
    "Ladder steps that fell due while no timer fired them (downtime, a petition received long"
    " ago) and were folded into the one step fired when the timer was found due; never replayed.",
)
SUPERVISION_CAP_REACHED = Counter(
    "petition_supervision_cap_reached_total",
    "Ladder steps that opened no 督办 because the petition already held"
    " max_open_supervisions_per_petition open ones (the ladder still planned its next step).",
)
TIMER_LATENESS = Histogram(
    "petition_timer_lateness_seconds",
    "How late a timer fired after it fell due (downtime shows here).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
CALENDAR_MISSING = Counter(
    "petition_calendar_missing_total",
    "Deadlines computed into a year the holiday calendar does not know (Mon-Fri fallback used).",
)
OPEN_CLOCKS = Gauge(
    "petition_sla_open_clocks",
    "Open clocks by department, clock and state (running, warned, breached, paused; refreshed from the database).",
    ["department", "clock", "state"],
)
DEPARTMENT_RATE = Gauge(
    "petition_department_rate_ratio",
    "三率 per department over the clocks started in the rate window: response (签收 in time),"
    " resolution (办结 in time). Only departments with a decided clock in the window.",
    ["department", "rate"],
)
CALENDAR_KNOWN_UNTIL = Gauge(
    "petition_calendar_known_until_timestamp_seconds",
    "End of the last year the statutory holiday calendar knows without a gap from this year on.",
)
ZERO_REPORTS = Counter(
    "petition_zero_reports_total",
    "Zero-report verdicts per unit period, by status (on_time, late, missing, unscheduled).",
    ["status"],
)
ZERO_REPORTS_RECEIVED = Counter(
    "petition_zero_reports_received_total",
    "Zero reports received for a scheduled period, by timeliness (on_time, late).",
    ["timeliness"],
)
ZERO_REPORTS_MISSING_UNITS = Gauge(
    "petition_zero_reports_missing_units",
    "Reporting units whose latest due period has no report (漏报; refreshed from the database).",
)
ZERO_REPORT_ESCALATIONS = Counter(
    "petition_zero_report_escalations_total", "Missing zero reports escalated to the supervising unit."
)

# Known label values start at 0, so rates and ratios have a series before the first event.
for _t in ("on_time", "late"):
    ZERO_REPORTS_RECEIVED.labels(_t)

for _level in LEVELS:
    ESCALATIONS.labels(_level)
for _level in (*LEVELS, ZERO_REPORT_LEVEL, OVERDUE_LEVEL):
    SUPERVISION_ORDERS.labels(_level)
    SUPERVISIONS_OVERDUE.labels(_level)


class GaugeFamily:
    """Replace all label sets of a labelled gauge at once: new values set, vanished ones removed.

    Unlike ``clear()`` followed by ``set()``, a scrape in between never sees the family empty.
    """

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge
        self._current: set[tuple[str, ...]] = set()

    def replace(self, values: dict[tuple[str, ...], float]) -> None:
        for labels, value in values.items():
            self.gauge.labels(*labels).set(value)
        for labels in self._current - set(values):
            with contextlib.suppress(KeyError):
                self.gauge.remove(*labels)
        self._current = set(values)


def count_petition_plan(plan: PetitionPlan) -> None:
    """Clocks armed and stopped, 督办 closed, deadlines computed past the calendar."""
    for clock in plan.armed:
        CLOCKS_ARMED.labels(clock).inc()
    for clock, reason in plan.stopped:
        CLOCKS_STOPPED.labels(clock, reason).inc()
    for level in plan.closed_levels:
        SUPERVISIONS_CLOSED.labels(level).inc()
    for opened in plan.opened:
        SUPERVISION_ORDERS.labels(opened.order.level).inc()
    if plan.calendar_gaps:
        CALENDAR_MISSING.inc(len(plan.calendar_gaps))


def count_report(verdict: ReportVerdict | None) -> None:
    """A report recorded (None: a copy of one recorded before, not counted)."""
    if verdict is None:
        return
    ZERO_REPORTS.labels(verdict.status).inc()
    if verdict.status in ("on_time", "late"):
        ZERO_REPORTS_RECEIVED.labels(verdict.status).inc()


def count_firing(firing: Firing) -> None:
    """Timers fired by kind, their lateness, warnings, breaches, ladder steps and their 督办,
    steps missed, steps at the open-督办 cap."""
    for kind, n in firing.by_kind.items():
        TIMERS_FIRED.labels(kind).inc(n)
    for fired in firing.fired:
        TIMER_LATENESS.observe(fired.lateness_seconds)
    for clock, n in firing.warnings_by_clock().items():
        WARNINGS.labels(clock).inc(n)
    for clock, n in firing.breaches_by_clock().items():
        BREACHES.labels(clock).inc(n)
    for level, n in firing.escalations_by_level().items():
        ESCALATIONS.labels(level).inc(n)
        SUPERVISION_ORDERS.labels(level).inc(n)
    if firing.missed_steps:
        ESCALATION_STEPS_MISSED.inc(firing.missed_steps)
    if firing.capped:
        SUPERVISION_CAP_REACHED.inc(len(firing.capped))


def count_missing_reports(missing: int, opened: int) -> None:
    """Periods found missing (each escalated to its supervising unit) and the 督办 opened."""
    if missing:
        ZERO_REPORTS.labels("missing").inc(missing)
        ZERO_REPORT_ESCALATIONS.inc(missing)
        SUPERVISION_ORDERS.labels(ZERO_REPORT_LEVEL).inc(opened)


def count_overdue(plan: OverduePlan) -> None:
    """Lapsed 督办 by their level, and the 督办 opened above them."""
    for level, n in Tally(plan.lapsed_levels).items():
        SUPERVISIONS_OVERDUE.labels(level).inc(n)
    if plan.opened:
        SUPERVISION_ORDERS.labels(OVERDUE_LEVEL).inc(len(plan.opened))
