"""Events of the escalation ladder, 督办, clock moves and zero reports.

Kept in a module of its own so the escalation contracts can grow without touching the
petition lifecycle ones.

* Petition events (topic ``petition.sla``, keyed by petition id): :class:`SlaEscalated`
  (one ladder step, which opens a 督办), :class:`SupervisionClosed`, and the clock moves
  :class:`SlaClockPaused`, :class:`SlaClockResumed`, :class:`SlaDeadlineExtended`, and
  :class:`SupervisionOverdue` (a petition's 督办 lapsed; escalated one level up).
* Zero-report events are about a reporting unit, not a petition: they use
  :class:`UnitEnvelope` (no `petition_id`) and are keyed by the unit code as raw UTF-8
  bytes (:func:`key_for_unit`): :class:`ZeroReportSubmitted` (``zero_report.submitted``,
  written by intake) and :class:`ZeroReportStatus` (``zero_report.status``, by escalation;
  a missing report opens a 督办 for the supervising unit, named in the event), and
  :class:`ZeroReportSupervisionOverdue` (that 督办 lapsed; also on ``zero_report.status``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.codes import DepartmentCode
from shared.events.envelope import Actor, BaseEnvelope, Envelope, Frozen


class SupervisionOrder(Frozen):
    """A 督办 as the escalation service opened it: every fact a reader records, so no reader
    works out a 督办 again (additive, schema 1).

    `subject` is ``petition`` (a clock's ladder step, or an overdue 督办 above it) or
    ``zero_report`` (a unit's missing report: no petition; `report_unit` and `report_period`
    say which). `parent_id` names the lapsed 督办 an ``overdue`` one escalates."""

    id: uuid.UUID
    subject: Literal["petition", "zero_report"]
    petition_id: str | None = None
    clock: str | None = None
    step: int = Field(default=1, ge=1)
    level: str
    target_unit: str
    supervised_unit: str
    rule: str
    opened_at: datetime
    due_at: datetime
    report_unit: str | None = None
    report_period: str | None = None
    parent_id: uuid.UUID | None = None


class SlaEscalated(Envelope):
    """A breached clock went one step up the ladder; a 督办 was opened for `target_unit`.

    `step` counts from 1; steps past the last level repeat it (`repeat`). `rule` names how
    the target unit was found (e.g. ``ladder:superior_unit:bureau->government_of_area``).

    A step found due late stands for the steps it caught up on: `missed_steps` steps
    (``missed_from_step`` .. ``step - 1``, the first of them due at `missed_since`) fell due
    without firing and are not published on their own (additive, schema 1; 0 when on time).
    `missed_estimated`: part of a very long run of repeats was counted, not walked.
    """

    event_type: Literal["sla.escalated"] = "sla.escalated"
    clock: str
    department_code: str
    step: int = Field(ge=1)
    level: str
    target_unit: str
    rule: str
    repeat: bool = False
    due_at: datetime
    supervision_id: uuid.UUID
    supervision_due_at: datetime
    lateness_seconds: float = 0.0
    missed_steps: int = Field(default=0, ge=0)
    missed_from_step: int | None = Field(default=None, ge=1)
    missed_since: datetime | None = None
    missed_estimated: bool = False


class SupervisionClosed(Envelope):
    """A supervisor closed a 督办."""

    event_type: Literal["sla.supervision_closed"] = "sla.supervision_closed"
    supervision_id: uuid.UUID
    target_unit: str
    closed_by: str
    note: str = ""


class SupervisionOpened(Envelope):
    """A supervisor opened a 督办 on a petition (an ``open_supervision`` action), addressed to
    the department holding it; the escalation service owns it like a ladder's."""

    event_type: Literal["sla.supervision_opened"] = "sla.supervision_opened"
    supervision: SupervisionOrder
    opened_by: str
    note: str = ""


class SupervisionOverdue(Envelope):
    """A petition's 督办 passed its own due time while still open.

    When the addressed unit has a unit above it (:func:`ladder.superior_of`), a new 督办 is
    opened for that unit (`escalated_supervision_id`, level ``overdue``), supervising the unit
    that let the first one lapse; at the top (the province) the lapse is only published.
    """

    event_type: Literal["sla.supervision_overdue"] = "sla.supervision_overdue"
    supervision_id: uuid.UUID
    clock: str
    level: str
    target_unit: str
    due_at: datetime
    rule: str
    escalated_to: str | None = None
    escalated_supervision_id: uuid.UUID | None = None
    escalated_due_at: datetime | None = None
    #: the 督办 opened above the lapsed one, whole (None at the top; additive, schema 1)
    escalated_supervision: SupervisionOrder | None = None


class SlaClockPaused(Envelope):
    event_type: Literal["sla.clock_paused"] = "sla.clock_paused"
    clock: str
    department_code: str
    due_at: datetime
    remaining_seconds: float


class SlaClockResumed(Envelope):
    """A paused clock counts again; `due_at` is the new deadline (`previous_due_at` the old)."""

    event_type: Literal["sla.clock_resumed"] = "sla.clock_resumed"
    clock: str
    department_code: str
    previous_due_at: datetime
    due_at: datetime
    paused_seconds: float


class SlaDeadlineExtended(Envelope):
    """An approved extension (延期) moved the deadline, once."""

    event_type: Literal["sla.deadline_extended"] = "sla.deadline_extended"
    clock: str
    department_code: str
    approved_by: str
    days: int
    previous_due_at: datetime
    due_at: datetime
    rule: str


class UnitEnvelope(BaseEnvelope):
    """Envelope of events about a reporting unit rather than a petition (no `petition_id`)."""

    unit: DepartmentCode


class ZeroReportSubmitted(UnitEnvelope):
    """A unit submitted its report for `period` (``incidents`` empty: a zero report)."""

    event_type: Literal["zero_report.submitted"] = "zero_report.submitted"
    period: str
    incidents: tuple[str, ...] = ()
    submitted_at: datetime
    submission_id: uuid.UUID
    #: who filed it (additive, schema 1)
    actor: Actor | None = None


class ZeroReportStatus(UnitEnvelope):
    """Escalation's verdict on one unit's period: on_time, late, missing (or unscheduled).

    A missing report names the supervising unit it was escalated to (`escalated_to`).
    """

    event_type: Literal["zero_report.status"] = "zero_report.status"
    period: str
    status: Literal["on_time", "late", "missing", "unscheduled"]
    rule: str
    due_at: datetime | None = None
    submitted_at: datetime | None = None
    incidents: int = 0
    escalated_to: str | None = None
    #: the 督办 opened for `escalated_to` about a missing report (additive, schema 1)
    supervision_id: uuid.UUID | None = None
    supervision_due_at: datetime | None = None
    #: that 督办, whole (additive, schema 1)
    supervision: SupervisionOrder | None = None
    #: the 督办 about this period that the report closed (on_time / late; additive, schema 1:
    #: None in an event written before it, which a reader cannot tell from "none closed")
    closed_supervision_ids: tuple[uuid.UUID, ...] | None = None


class ZeroReportSupervisionOverdue(UnitEnvelope):
    """The 督办 about `unit`'s missing report for `period` lapsed while open.

    Escalated like :class:`SupervisionOverdue`: a new 督办 for the unit above `target_unit`
    when there is one. Every 督办 about the period closes when `unit` reports for it.
    """

    event_type: Literal["zero_report.supervision_overdue"] = "zero_report.supervision_overdue"
    period: str
    supervision_id: uuid.UUID
    level: str
    target_unit: str
    due_at: datetime
    rule: str
    escalated_to: str | None = None
    escalated_supervision_id: uuid.UUID | None = None
    escalated_due_at: datetime | None = None
    #: the 督办 opened above the lapsed one, whole (None at the top; additive, schema 1)
    escalated_supervision: SupervisionOrder | None = None


def key_for_unit(unit: str) -> bytes:
    """The Kafka key of a unit's zero-report events: the unit code as raw UTF-8 bytes."""
    return unit.encode()
