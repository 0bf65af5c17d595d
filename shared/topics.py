"""Every Kafka topic name, in one place.

All petition topics share one partition count, chosen once (`PARTITIONS`): the key is the
petition id as raw UTF-8 bytes, so a petition's events land on the same partition number in
every topic. Changing the count re-shuffles keys; do it only with a migration plan.
"""

from __future__ import annotations

import re

PARTITIONS = 6

PETITION_SUBMITTED = "petition.submitted"
PETITION_ROUTED = "petition.routed"
PETITION_ACTIONS = "petition.actions"
PETITION_SLA = "petition.sla"
ZERO_REPORT_SUBMITTED = "zero_report.submitted"
ZERO_REPORT_STATUS = "zero_report.status"

DEAD_LETTER_INTAKE = "deadletter.intake"
DEAD_LETTER_ROUTER = "deadletter.router"
DEAD_LETTER_ESCALATION = "deadletter.escalation"

CORE_TOPICS: tuple[str, ...] = (
    PETITION_SUBMITTED,
    PETITION_ROUTED,
    PETITION_ACTIONS,
    PETITION_SLA,
    ZERO_REPORT_SUBMITTED,
    ZERO_REPORT_STATUS,
    DEAD_LETTER_INTAKE,
    DEAD_LETTER_ROUTER,
    DEAD_LETTER_ESCALATION,
)

_DEPARTMENT_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,62}$")


def department_topic(code: str) -> str:
    """Name of the assignment queue of department `code` (``dept.<code>.assignments``).

    Codes are upper-case letters, digits and dashes, so the name is a valid topic name and
    never collides with another after Kafka's '.'/'_' metric-name folding.
    """
    if not _DEPARTMENT_CODE.match(code):
        raise ValueError(f"invalid department code {code!r}")
    return f"dept.{code}.assignments"
