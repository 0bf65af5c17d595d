"""Intake's metrics."""

from prometheus_client import Counter, Gauge

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
OPEN311 = Counter(
    "petition_open311_requests_total",
    "Open311 POST requests, by outcome (accepted; refused: api_key, rate, invalid).",
    ["outcome"],
)
MAIL = Counter(
    "petition_mail_messages_total",
    "Messages to the centre's mailbox, by outcome (petition, duplicate; not a petition: empty, auto_reply, bounce, "
    "oversized, unreadable; failed: the database was down, the relay asked to retry).",
    ["outcome"],
)
MAIL_REPLIES = Counter(
    "petition_mail_replies_total", "Automatic replies to petitions by mail, by outcome (sent, failed).", ["outcome"]
)
KPI_RATE = Gauge(
    "petition_kpi_rate",
    "The 三率 of each department this month (rate: response 响应率, resolution 解决率, satisfaction 满意率), 0-1; "
    "absent while a rate has nothing to measure.",
    ["department", "rate"],
)
KPI_SCORE = Gauge("petition_kpi_score", "Each department's weighted 三率 score this month, 0-100.", ["department"])
