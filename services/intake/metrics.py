"""Intake's metrics."""

from prometheus_client import Counter

SUBMITTED = Counter(
    "petition_submitted_total", "Petitions accepted (202), by channel and kind.", ["channel", "kind"]
)
REJECTED = Counter(
    "petition_http_rejected_total", "Requests rejected with a 4xx, by reason.", ["reason"]
)
ACTIONS = Counter("petition_actions_total", "Department actions accepted, by action.", ["action"])
CONSOLE_SIGN_INS = Counter(
    "petition_console_sign_ins_total",
    "Console sign-ins, by outcome (signed_in; refused: a wrong password, an unknown user or a locked account).",
    ["outcome"],
)
