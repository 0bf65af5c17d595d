"""Intake's metrics."""

from prometheus_client import Counter

SUBMITTED = Counter(
    "petition_submitted_total", "Petitions accepted (202), by channel and kind.", ["channel", "kind"]
)
REJECTED = Counter(
    "petition_http_rejected_total", "Requests rejected with a 4xx, by reason.", ["reason"]
)
ACTIONS = Counter("petition_actions_total", "Department actions accepted, by action.", ["action"])
