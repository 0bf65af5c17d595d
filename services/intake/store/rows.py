"""The rows intake's store returns: frozen dataclasses, never driver records."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "AlertRow",
    "AreaOverview",
    "AtRisk",
    "AuditEntry",
    "CallerPetition",
    "Contact",
    "Deadline",
    "DepartmentFigures",
    "IdempotentPetition",
    "IncidentLinkRow",
    "NewPetitionRow",
    "PetitionLabel",
    "PetitionRow",
    "PublicCase",
    "PublicRequest",
    "QueueRow",
    "SupervisionRow",
    "TimelineEntry",
    "UnitReports",
    "ZeroReportRow",
    "ZeroReportSubmission",
]


@dataclass(frozen=True, slots=True)
class NewPetitionRow:
    id: str
    tracking_code: str
    title: str
    content: str
    channel: str
    kind: str | None
    location: dict[str, Any]
    persons: int
    petitioner_key: str | None
    received_at: datetime
    submitted_at: datetime
    submitted_by: str | None = None
    submitted_by_role: str | None = None
    #: the Open311 client or the mailbox that brought it, and what Open311 adds
    client: str | None = None
    service_code: str | None = None
    lat: float | None = None
    long: float | None = None
    media_url: str | None = None


@dataclass(frozen=True, slots=True)
class PetitionRow:
    """A petition as the read model knows it."""

    id: str
    tracking_code: str
    status: str
    category: str | None
    department_code: str | None
    department_name: str | None
    assignment_no: int
    jurisdiction: dict[str, Any] | None
    priority: str | None
    rule: str | None
    repeat_of: str | None
    group_petition: bool
    accused_departments: tuple[str, ...]
    persons: int
    channel: str
    kind: str | None
    received_at: datetime
    extension_state: str | None
    status_before_pause: str | None
    title: str = ""
    content: str = ""
    location: dict[str, Any] | None = None
    submitted_by: str | None = None
    #: every department it was ever assigned to (the holder included)
    assigned: frozenset[str] = frozenset()
    #: closing the loop: calls that reached nobody, reopenings, the latest resolution's department
    follow_up_attempts: int = 0
    reopen_count: int = 0
    resolved_by: str | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    """A petitioner's contact details (only the audited reveal reads them)."""

    name: str | None
    phone: str | None
    id_number: str | None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    subject: str
    role: str
    action: str
    petition_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class IdempotentPetition:
    """What an Idempotency-Key recorded: the request's hash and the petition it made."""

    request_hash: str
    id: str
    tracking_code: str
    status: str


@dataclass(frozen=True, slots=True)
class Deadline:
    clock: str
    due_at: datetime
    state: str


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    event: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class QueueRow:
    """A petition in a department's queue, with its clocks (for the workbench)."""

    id: str
    tracking_code: str
    status: str
    title: str
    category: str | None
    department_code: str
    received_at: datetime
    priority: str | None
    accused_departments: tuple[str, ...]
    deadlines: tuple[Deadline, ...]
    #: the classifier's confidence in `category` (what the triage desk weighs)
    confidence: float | None = None
    content: str = ""


@dataclass(frozen=True, slots=True)
class CallerPetition:
    """A petition of one petitioner (found by its pseudonym), for the operator desk."""

    id: str
    tracking_code: str
    status: str
    title: str
    received_at: datetime
    department_name: str | None


@dataclass(frozen=True, slots=True)
class AtRisk:
    """A running clock of a petition that is warned (about to breach) or breached."""

    petition_id: str
    tracking_code: str
    title: str
    department_code: str | None
    department_name: str | None
    accused_departments: tuple[str, ...]
    clock: str
    due_at: datetime
    state: str


@dataclass(frozen=True, slots=True)
class DepartmentFigures:
    """A department's petitions and how its clocks ended: 签收 (sign_for) and 办结 (resolution)
    on time or late."""

    department_code: str
    department_name: str | None
    open: int
    resolved: int
    signed_on_time: int
    signed_late: int
    resolved_on_time: int
    resolved_late: int


@dataclass(frozen=True, slots=True)
class UnitReports:
    """A unit's zero-report verdicts: on time, late, missing, and its latest period's."""

    unit: str
    on_time: int
    late: int
    missing: int
    latest_period: str
    latest_status: str


@dataclass(frozen=True, slots=True)
class AreaOverview:
    at_risk: tuple[AtRisk, ...]
    departments: tuple[DepartmentFigures, ...]
    reports: tuple[UnitReports, ...]


@dataclass(frozen=True, slots=True)
class SupervisionRow:
    id: uuid.UUID
    petition_id: str | None
    tracking_code: str | None
    clock: str | None
    step: int
    level: str
    target_unit: str
    supervised_unit: str
    rule: str
    opened_at: datetime
    due_at: datetime
    overdue_at: datetime | None
    subject: str
    report_unit: str | None
    report_period: str | None
    parent_id: uuid.UUID | None
    state: str
    close_requested_by: str | None
    closed_by: str | None
    closed_at: datetime | None
    #: the units an accusation it is about accuses (its petition's)
    accused: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ZeroReportSubmission:
    submission_id: uuid.UUID
    request_hash: str


@dataclass(frozen=True, slots=True)
class ZeroReportRow:
    """A unit's period: the escalation service's verdict (None: not in yet) and/or the report."""

    period: str
    status: str | None
    rule: str | None
    due_at: datetime | None
    submitted_at: datetime | None
    incidents: int | None
    escalated_to: str | None
    submission_id: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class PublicRequest:
    """A petition as anyone may read it (Open311 ``GET requests``): where it stands and who
    holds it, never who wrote it or what they wrote."""

    id: str
    tracking_code: str
    status: str
    category: str | None
    service_code: str | None
    department_name: str | None
    received_at: datetime
    updated_at: datetime
    jurisdiction: dict[str, Any] | None
    admin_code: str | None
    lat: float | None
    long: float | None
    media_url: str | None
    expected_at: datetime | None
    reply: str | None
    #: only to take the petitioner's name out of the reply
    petitioner_name: str | None = None


@dataclass(frozen=True, slots=True)
class PublicCase:
    """A resolved case as the public board reads it, before it is anonymised."""

    id: str
    category: str | None
    area: str | None
    department_name: str | None
    status: str
    received_at: datetime
    resolved_at: datetime
    due_at: datetime | None
    title: str
    content: str
    reply: str | None
    basis: str | None
    petitioner_name: str | None
    satisfaction: str | None
    steps: tuple[tuple[str, datetime], ...]


@dataclass(frozen=True, slots=True)
class AlertRow:
    """An early-warning alert as its latest version says (the watch service's ``watch.alert``),
    with the petitions a person unlinked from its incident since (`unlinked`, read side only)."""

    alert_id: str
    version: int
    state: str
    kind: str
    area: str | None
    area_name: str | None
    area_level: str | None
    category: str | None
    #: surges: the window's length (``hour``, ``day``) and the surging window's start
    time_window: str | None
    window_start: datetime | None
    count: int
    expected: float | None
    z: float | None
    petition_ids: tuple[str, ...]
    opened_at: datetime
    closed_at: datetime | None
    level: int
    risk_reasons: tuple[str, ...]
    department_code: str | None
    updated_at: datetime
    unlinked: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IncidentLinkRow:
    """A petition the watch linked to an incident (并案), and whether a person unlinked it."""

    petition_id: str
    incident_id: str
    alert_id: str
    department_code: str
    assignment_no: int
    similarity: float | None
    linked_at: datetime
    unlinked_at: datetime | None = None
    unlinked_by: str | None = None
    unlinked_unit: str | None = None


@dataclass(frozen=True, slots=True)
class PetitionLabel:
    """What a list of petitions by id shows of each: its tracking code, and the units an
    accusation accuses (so that they are not shown it)."""

    id: str
    tracking_code: str
    accused_departments: tuple[str, ...]
