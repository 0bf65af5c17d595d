"""The escalation service's metrics."""

from prometheus_client import Counter, Gauge, Histogram

CLOCKS_ARMED = Counter("petition_sla_clocks_armed_total", "Clocks armed, by clock.", ["clock"])
CLOCKS_STOPPED = Counter("petition_sla_clocks_stopped_total", "Clocks stopped, by clock and reason.", ["clock", "reason"])
WARNINGS = Counter("petition_sla_warnings_total", "Deadline warnings issued, by clock.", ["clock"])
BREACHES = Counter("petition_sla_breaches_total", "Deadlines missed, by clock.", ["clock"])
TIMERS_FIRED = Counter("petition_timers_fired_total", "Durable timers fired, by kind.", ["kind"])
TIMER_LATENESS = Histogram(
    "petition_timer_lateness_seconds",
    "How late a timer fired after it fell due (downtime shows here).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
)
CALENDAR_MISSING = Counter(
    "petition_calendar_missing_total",
    "Deadlines computed into a year the holiday calendar does not know (Mon-Fri fallback used).",
)
OPEN_CLOCKS = Gauge("petition_sla_open_clocks", "Open clocks by clock and state.", ["clock", "state"])
