"""Zero reports and lapsed 督办, decided without the database.

* A received report is judged on time, late or unscheduled (:func:`judge_report`); once
  recorded, every 督办 about its period closes and the verdict names them
  (:func:`report_status`).
* A period closed without a report is missing (:func:`plan_missing_reports`): it opens a 督办
  for the supervising unit, and the ``missing`` verdict carries that 督办 whole.
* A 督办 past its own deadline (:func:`plan_overdue_supervisions`) is marked overdue and, when
  the unit it was addressed to has one above it, escalated: a new 督办 (level ``overdue``)
  for that unit, supervising the one that let it lapse, carried whole by the event.

Ids are derived from what they are about (the unit and period, the lapsed 督办), so a second
instance or a replay writes the same ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.escalation.domain.ladder import OVERDUE_LEVEL, Ladder, plan_overdue
from services.escalation.domain.zero_report import (
    ZERO_REPORT_LEVEL,
    ReportStatus,
    classify,
    closing_between,
)
from services.escalation.rows import MissingPeriod, OpenedSupervision, ReceivedReport, SupervisionRow
from shared.events import BaseEnvelope
from shared.events.escalation import (
    SupervisionOrder,
    SupervisionOverdue,
    ZeroReportStatus,
    ZeroReportSubmitted,
    ZeroReportSupervisionOverdue,
)
from shared.ids import EVENT_NAMESPACE, derived_event_id
from shared.reference.calendar import WorkCalendar
from shared.reference.obligations import Obligation, scheduled

__all__ = [
    "MissingReport",
    "OverduePlan",
    "ReportVerdict",
    "judge_report",
    "plan_missing_reports",
    "plan_overdue_supervisions",
    "received_report",
    "report_status",
]


@dataclass(frozen=True, slots=True)
class ReportVerdict:
    status: ReportStatus
    rule: str
    due_at: datetime | None = None
    closes_at: datetime | None = None


def judge_report(e: ZeroReportSubmitted, ob: Obligation | None, calendar: WorkCalendar) -> ReportVerdict:
    """On time, late, or unscheduled (a unit that owes none, a period it does not have).

    Raises ValueError for a period its unit's cadence cannot have."""
    if ob is None:
        return ReportVerdict("unscheduled", "unscheduled:no_obligation")
    sched = scheduled(ob, e.period, calendar)
    if sched is None:
        return ReportVerdict("unscheduled", "unscheduled:not_a_period_of_unit")
    status, rule = classify(e.submitted_at, sched)
    return ReportVerdict(status, rule, sched.due_at, sched.closes_at)


def received_report(e: ZeroReportSubmitted, verdict: ReportVerdict) -> ReceivedReport:
    return ReceivedReport(
        unit=e.unit, period=e.period, status=verdict.status, rule=verdict.rule, due_at=verdict.due_at,
        closes_at=verdict.closes_at, submitted_at=e.submitted_at, incidents=len(e.incidents),
        submission_id=e.submission_id,
    )


def report_status(
    e: ZeroReportSubmitted, verdict: ReportVerdict, *, escalated_to: str | None,
    closed: Sequence[uuid.UUID], now: datetime,
) -> ZeroReportStatus:
    """The verdict on a received report, naming the 督办 it closed (sorted by id)."""
    return ZeroReportStatus(
        event_id=derived_event_id(e.event_id, "zero_report_status"), occurred_at=now, causation_id=e.event_id,
        unit=e.unit, period=e.period, status=verdict.status, rule=verdict.rule, due_at=verdict.due_at,
        submitted_at=e.submitted_at, incidents=len(e.incidents), escalated_to=escalated_to,
        closed_supervision_ids=tuple(sorted(closed, key=str)),
    )


@dataclass(frozen=True, slots=True)
class MissingReport:
    """A period found missing: the verdict to record, the 督办 it opens (none without a
    supervising unit) and its event. Nothing of it happens if a report was recorded first."""

    period: MissingPeriod
    supervision: OpenedSupervision | None
    event: ZeroReportStatus


def plan_missing_reports(
    ob: Obligation, *, after: datetime, now: datetime, ladder: Ladder, calendar: WorkCalendar
) -> tuple[MissingReport, ...]:
    """The periods of `ob` that closed in (`after`, `now`], each found missing (oldest first)."""
    unit = ob.unit
    out: list[MissingReport] = []
    for s in closing_between(ob, after, now, calendar):
        rule = f"missing:{s.rule}"
        order = None
        if ob.supervising_unit:
            order = SupervisionOrder(
                id=uuid.uuid5(EVENT_NAMESPACE, f"zero_report_supervision:{unit}:{s.period.id}"),
                subject="zero_report", step=1, level=ZERO_REPORT_LEVEL, target_unit=ob.supervising_unit,
                supervised_unit=unit, rule=f"zero_report:{rule}", opened_at=now,
                due_at=ladder.supervision_due.after(now, calendar), report_unit=unit, report_period=s.period.id,
            )
        event = ZeroReportStatus(
            event_id=uuid.uuid5(EVENT_NAMESPACE, f"zero_report:{unit}:{s.period.id}:missing"),
            occurred_at=now, unit=unit, period=s.period.id, status="missing", rule=rule, due_at=s.due_at,
            escalated_to=ob.supervising_unit, supervision_id=order.id if order else None,
            supervision_due_at=order.due_at if order else None, supervision=order,
        )
        out.append(MissingReport(
            MissingPeriod(unit, s.period.id, rule, s.due_at, s.closes_at, ob.supervising_unit),
            OpenedSupervision(order) if order else None,
            event,
        ))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class OverduePlan:
    """Lapsed 督办 (`lapsed`, their levels in `lapsed_levels`), the ones opened above them,
    and one event per lapsed 督办."""

    lapsed: tuple[uuid.UUID, ...] = ()
    lapsed_levels: tuple[str, ...] = ()
    opened: tuple[OpenedSupervision, ...] = ()
    events: tuple[BaseEnvelope, ...] = ()


def _subject(row: SupervisionRow) -> Literal["petition", "zero_report"]:
    return "zero_report" if row.subject == "zero_report" else "petition"


def plan_overdue_supervisions(
    rows: Sequence[SupervisionRow], *, now: datetime, ladder: Ladder, calendar: WorkCalendar
) -> OverduePlan:
    """Escalate each of `rows` (open 督办 past their deadline at `now`) one level up."""
    opened: list[OpenedSupervision] = []
    events: list[BaseEnvelope] = []
    for r in rows:
        step = plan_overdue(ladder, r.target_unit, now=now, calendar=calendar)
        order = None
        if step.target_unit is not None and step.due_at is not None:
            order = SupervisionOrder(
                id=uuid.uuid5(EVENT_NAMESPACE, f"supervision_overdue:{r.id}"), subject=_subject(r),
                petition_id=r.petition_id, clock=r.clock, step=r.step, level=OVERDUE_LEVEL,
                target_unit=step.target_unit, supervised_unit=r.target_unit, rule=step.rule, opened_at=now,
                due_at=step.due_at, report_unit=r.report_unit, report_period=r.report_period, parent_id=r.id,
            )
            opened.append(OpenedSupervision(order))
        # what either event says of the lapse (a missing field fails validation, as a defect)
        lapse: dict[str, object] = {
            "event_id": uuid.uuid5(EVENT_NAMESPACE, f"supervision_overdue_event:{r.id}"), "occurred_at": now,
            "supervision_id": r.id, "level": r.level, "target_unit": r.target_unit, "due_at": r.due_at,
            "rule": step.rule, "escalated_to": step.target_unit, "escalated_due_at": step.due_at,
            "escalated_supervision_id": order.id if order else None, "escalated_supervision": order,
        }
        if r.subject == "zero_report":
            events.append(ZeroReportSupervisionOverdue.model_validate(
                {**lapse, "unit": r.report_unit, "period": r.report_period}))
        else:
            events.append(SupervisionOverdue.model_validate({**lapse, "petition_id": r.petition_id, "clock": r.clock}))
    return OverduePlan(
        lapsed=tuple(r.id for r in rows), lapsed_levels=tuple(r.level for r in rows), opened=tuple(opened),
        events=tuple(events),
    )
