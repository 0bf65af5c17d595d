"""Events of a petition's life: submitted, routed, assigned, acted on, and its clocks."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from shared.events.envelope import (
    ActionType,
    Actor,
    Channel,
    Envelope,
    Jurisdiction,
    Kind,
    Location,
    Priority,
)


class PetitionSubmitted(Envelope):
    """Intake made a petition durable (topic ``petition.submitted``)."""

    event_type: Literal["petition.submitted"] = "petition.submitted"
    tracking_code: str
    title: str
    content: str
    channel: Channel
    kind: Kind | None = None
    petitioner_key: str | None = None
    location: Location = Location()
    persons: int = 1
    received_at: datetime
    #: the operator (or client) who took it in (additive, schema 1)
    actor: Actor | None = None


class PetitionRouted(Envelope):
    """The router assigned a petition to one department (topic ``petition.routed``).

    `assignment_no` counts assignments of this petition from 1; a reassignment after a
    return has a higher number, and readers keep the highest.

    `triage` says whether `department_code` is the routing table's triage desk (whose code
    the table configures). Added within schema version 1: an event written before it has
    ``None`` (not ``False``, which would be a claim the event never made), and a reader then
    has to decide from the code itself.
    """

    event_type: Literal["petition.routed"] = "petition.routed"
    assignment_no: int = Field(ge=1)
    category: str | None
    confidence: float | None = None
    department_code: str
    department_name: str
    jurisdiction: Jurisdiction | None = None
    rule: str
    reason: str = "initial"
    excluded_departments: tuple[str, ...] = ()
    priority: Priority = Priority.NORMAL
    kind: Kind | None = None
    channel: Channel
    received_at: datetime
    jurisdiction_source: str | None = None
    repeat_of: str | None = None
    group_petition: bool = False
    accused_departments: tuple[str, ...] = ()
    table_version: str | None = None
    triage: bool | None = None
    #: the classifier version that chose the category (additive, schema 1; None: a person, a
    #: return or a reopening decided this assignment, or an event written before)
    model_version: str | None = None


class DepartmentAssignment(Envelope):
    """What a department's own queue (``dept.<code>.assignments``) receives: no PII."""

    event_type: Literal["department.assignment"] = "department.assignment"
    tracking_code: str
    assignment_no: int
    department_code: str
    category: str | None
    title: str
    content: str
    location: Location = Location()
    priority: Priority = Priority.NORMAL
    kind: Kind | None = None
    rule: str
    received_at: datetime
    repeat_of: str | None = None
    group_petition: bool = False
    persons: int = 1


class PetitionActionTaken(Envelope):
    """A department or supervisor acted on a petition (topic ``petition.actions``)."""

    event_type: Literal["petition.action_taken"] = "petition.action_taken"
    action: ActionType
    department_code: str
    note: str = ""
    target_department_code: str | None = None
    assignment_no: int | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    #: who took the action (additive, schema 1)
    actor: Actor | None = None


class SlaClockArmed(Envelope):
    event_type: Literal["sla.clock_armed"] = "sla.clock_armed"
    clock: str
    policy: str
    department_code: str
    started_at: datetime
    due_at: datetime
    calendar_missing: bool = False


class SlaWarning(Envelope):
    event_type: Literal["sla.warning"] = "sla.warning"
    clock: str
    department_code: str
    fraction: float
    due_at: datetime
    lateness_seconds: float = 0.0


class SlaBreached(Envelope):
    event_type: Literal["sla.breached"] = "sla.breached"
    clock: str
    department_code: str
    due_at: datetime
    lateness_seconds: float = 0.0


class SlaClockStopped(Envelope):
    event_type: Literal["sla.clock_stopped"] = "sla.clock_stopped"
    clock: str
    department_code: str
    reason: str
    due_at: datetime
