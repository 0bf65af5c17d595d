"""The router's metrics (declared once; the domain never imports them)."""

from prometheus_client import Counter, Gauge, Histogram

ROUTED = Counter(
    "petition_routed_total", "Routing decisions, by category and department.",
    ["category", "department"],
)
TRIAGED = Counter("petition_triaged_total", "Petitions sent to the triage desk, by reason.", ["reason"])
RETURNS = Counter("petition_returns_total", "Returns (退单) handled, by returning department.", ["department"])
SUBMIT_TO_ROUTED = Histogram(
    "petition_submit_to_routed_seconds",
    "Time from intake's receipt of a petition to the router's decision.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
ROUTING_TABLE_VERSION = Gauge(
    "petition_routing_table_info", "The routing table in force (value 1).", ["version"]
)
