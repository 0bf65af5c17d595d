"""The router's metrics (declared once; the domain never imports them), and what the
composition root counts into them once a batch has committed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from services.router.planning import Routing
    from shared.events import PetitionSubmitted

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


def observe_decisions(decided: Iterable[Routing], triage_code: str) -> None:
    """Count routing decisions by category and department, and those that went to the triage
    desk by the reason their rule names (``triage:<reason>:…``)."""
    counts: dict[tuple[str, str], int] = {}
    triaged: dict[str, int] = {}
    for r in decided:
        k = (r.category or "unclassified", r.decision.department.code)
        counts[k] = counts.get(k, 0) + 1
        if r.decision.department.code == triage_code:
            rule = r.decision.rule
            why = rule.split(":")[1] if ":" in rule else rule
            triaged[why] = triaged.get(why, 0) + 1
    for (cat, code), n in counts.items():
        ROUTED.labels(cat, code).inc(n)
    for why, n in triaged.items():
        TRIAGED.labels(why).inc(n)


def observe_new_petitions(routed: Sequence[tuple[PetitionSubmitted, Routing]], decided_at: datetime) -> None:
    """Time from intake's commit to the decision, and the repeats, group petitions and
    accusations among new petitions routed."""
    for e, _ in routed:
        SUBMIT_TO_ROUTED.observe(max((decided_at - e.occurred_at).total_seconds(), 0.0))
    REPEATS.inc(sum(1 for _, r in routed if r.repeat_of))
    GROUP_PETITIONS.inc(sum(1 for _, r in routed if r.group_petition))
    ACCUSATIONS_RAISED.inc(sum(1 for _, r in routed if r.decision.rule.startswith("accusation:")))
