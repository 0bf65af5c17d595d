"""The escalation service's metrics (Prometheus naming: base units, _total counters, no
per-petition labels)."""

from prometheus_client import Counter, Gauge, Histogram

CLOCKS_ARMED = Counter("petition_sla_clocks_armed_total", "Clocks armed, by clock.", ["clock"])
CLOCKS_STOPPED = Counter("petition_sla_clocks_stopped_total", "Clocks stopped, by clock and reason.", ["clock", "reason"])
WARNINGS = Counter("petition_sla_warnings_total", "Deadline warnings issued, by clock.", ["clock"])
BREACHES = Counter("petition_sla_breaches_total", "Deadlines missed, by clock.", ["clock"])
ESCALATIONS = Counter(
    "petition_sla_escalations_total",
    "Ladder steps taken after a breach (each opens a 督办), by ladder level.",
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
    "Durable timers fired, by kind (warning, breach, escalate; stale = its clock had moved on).",
    ["kind"],
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
    "petition_sla_open_clocks", "Open clocks by clock and state (refreshed from the database).", ["clock", "state"]
)
ZERO_REPORTS = Counter(
    "petition_zero_reports_total",
    "Zero-report verdicts per unit period, by status (on_time, late, missing, unscheduled).",
    ["status"],
)
ZERO_REPORT_ESCALATIONS = Counter(
    "petition_zero_report_escalations_total", "Missing zero reports escalated to the supervising unit."
)
