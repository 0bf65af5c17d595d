"""The watch service's metrics (declared once; the domain never imports them).

Each instance reports the alerts of the partitions it owns: sum them across instances.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

OBSERVED = Counter("petition_watch_observed_total", "Routed petitions the watch service has taken in.")
ALERTS_ACTIVE = Gauge(
    "petition_watch_alerts_active",
    "Early-warning alerts now active (预警), by kind (surge, cluster) and risk level (1-3).",
    ["kind", "level"],
)
ALERTS_OPENED = Counter(
    "petition_watch_alerts_opened_total", "Early-warning alerts opened, by kind.", ["kind"]
)
ALERTS_CLOSED = Counter(
    "petition_watch_alerts_closed_total", "Early-warning alerts closed (the surge subsided, the incident went quiet).",
    ["kind"],
)
LINKED = Counter(
    "petition_watch_linked_total", "Petitions linked to an open incident held by another department (并案)."
)

# every series exists from the start (at zero), so dashboards and rules see them before the first alert
for _kind in ("surge", "cluster"):
    ALERTS_OPENED.labels(_kind)
    ALERTS_CLOSED.labels(_kind)
    for _level in ("1", "2", "3"):
        ALERTS_ACTIVE.labels(_kind, _level)
