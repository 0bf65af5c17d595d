"""The router's metrics (declared once; the domain never imports them)."""

from prometheus_client import Counter, Gauge, Histogram

ROUTED = Counter(
    "petition_routed_total", "Routing decisions, by category and department.",
    ["category", "department"],
)
TRIAGED = Counter("petition_triaged_total", "Petitions sent to the triage desk, by reason.", ["reason"])
RETURNS = Counter("petition_returns_total", "Returns (退单) handled, by returning department.", ["department"])
REPEATS = Counter("petition_repeats_total", "Petitions recognised as repeats (重复信访) of an earlier one.")
GROUP_PETITIONS = Counter("petition_group_petitions_total", "Group petitions (集体访, five or more persons).")
ACCUSATIONS_RAISED = Counter(
    "petition_accusations_raised_total",
    "Accusations sent one level above the unit they accuse.",
)
SUBMIT_TO_ROUTED = Histogram(
    "petition_submit_to_routed_seconds",
    "Time from intake's receipt of a petition to the router's decision.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
CLASSIFY_SECONDS = Histogram(
    "petition_classify_batch_duration_seconds",
    "Time to classify one batch of petitions.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
ROUTING_TABLE_INFO = Gauge(
    "petition_routing_table_info", "The routing table in force (value 1 for its version).", ["version"]
)
ROUTING_TABLE_RELOADS = Counter(
    "petition_routing_table_reloads_total", "Routing table reload attempts, by outcome.", ["outcome"]
)
