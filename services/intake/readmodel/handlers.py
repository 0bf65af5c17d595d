"""The read model's handlers: record what each lifecycle event says, and nothing more.

Consumes ``petition.routed``, ``petition.sla``, ``zero_report.status`` and ``petition.alerts``. The rules live
with the services that own them: the router says whether a department is its triage desk
(``triage``), the escalation service names the 督办 it opened (whole) and the ones a report
closed. Here every event is recorded as it comes, idempotently (the store guards by the
event's time and keys rows by ids). An event about a petition intake never received is
refused (``unknown_petition``: dead-lettered).

Early warning (``petition.alerts``): an alert (``watch.alert``, about an area, not a petition: it
has no `petition_id`) is kept at its highest version; an incident link (``incident.linked``) is
recorded whether or not the petition is known yet (the watch may link a petition before its
routing is read here), and goes on the petition's timeline when it is.

Events written before a fact was added to their contract (additive within schema version 1)
are recorded from what they do say: a routed event without ``triage`` compares the
department with the triage desk's code of the reference data; an escalation without the
whole 督办 records the one its fields describe; a zero-report verdict without
``closed_supervision_ids`` closes the open 督办 about its period, as the escalation service did.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

from services.intake.readmodel.store import ReadModelStore, Routing, ZeroReportVerdict
from services.intake.store.rows import AlertRow, IncidentLinkRow
from shared.consumer import BatchResult
from shared.errors import BadInput
from shared.events import (
    IncidentLinked,
    PetitionRouted,
    SlaBreached,
    SlaClockArmed,
    SlaClockPaused,
    SlaClockResumed,
    SlaClockStopped,
    SlaDeadlineExtended,
    SlaEscalated,
    SlaWarning,
    SupervisionClosed,
    SupervisionOpened,
    SupervisionOrder,
    SupervisionOverdue,
    WatchAlert,
    ZeroReportStatus,
    ZeroReportSupervisionOverdue,
)
from shared.records import RawMessage

#: the 三率 count by local day
LOCAL = ZoneInfo("Asia/Shanghai")

__all__ = ["handlers"]

Handler = Callable[[ReadModelStore, Any, RawMessage, BatchResult], Awaitable[None]]


async def _require(store: ReadModelStore, petition_id: str) -> None:
    if not await store.petition_exists(petition_id):
        raise BadInput(f"event for unknown petition {petition_id}", code="unknown_petition")


async def _timeline(store: ReadModelStore, e: Any, name: str, detail: dict[str, Any]) -> None:
    await store.add_timeline(e.petition_id, e.occurred_at, name, detail, e.event_id)


def handlers(*, triage_code: Callable[[], str]) -> dict[str, Handler]:
    """Every read-model handler, by event type. `triage_code` is the routing table's triage
    desk, asked only for a routed event written before the event said so itself."""

    async def on_routed(store: ReadModelStore, e: PetitionRouted, raw: RawMessage, r: BatchResult) -> None:
        await _require(store, e.petition_id)
        at_triage = e.triage if e.triage is not None else e.department_code == triage_code()
        await store.record_routing(Routing(
            e.petition_id, "triage" if at_triage else "assigned", e.category, e.department_code, e.department_name,
            e.assignment_no, e.jurisdiction.model_dump() if e.jurisdiction else None, e.priority.value, e.rule,
            e.repeat_of, e.group_petition, tuple(e.accused_departments), e.confidence,
        ), e.occurred_at)
        if not at_triage:  # the 三率 count the departments' assignments, not the triage desk's
            day = e.occurred_at.astimezone(LOCAL).date()
            await store.count_kpi(e.event_id, e.department_code, day, ["assignments"])
            await store.assigned_on(e.petition_id, e.department_code, day)
        name = "routed" if e.assignment_no == 1 else "reopened" if e.reason == "reopened" else "reassigned"
        await _timeline(store, e, name, {
            "department": e.department_code, "department_name": e.department_name, "category": e.category,
            "rule": e.rule, "assignment_no": e.assignment_no, **({"repeat_of": e.repeat_of} if e.repeat_of else {}),
        })

    return {
        "petition.routed": on_routed,
        "sla.clock_armed": on_clock_armed,
        "sla.warning": on_warning,
        "sla.breached": on_breached,
        "sla.clock_stopped": on_stopped,
        "sla.clock_paused": on_paused,
        "sla.clock_resumed": on_resumed,
        "sla.deadline_extended": on_extended,
        "sla.escalated": on_escalated,
        "sla.supervision_closed": on_supervision_closed,
        "sla.supervision_opened": on_supervision_opened,
        "sla.supervision_overdue": on_supervision_overdue,
        "zero_report.status": on_zero_report_status,
        "zero_report.supervision_overdue": on_zero_report_supervision_overdue,
        "watch.alert": on_alert,
        "incident.linked": on_incident_linked,
    }


async def on_clock_armed(store: ReadModelStore, e: SlaClockArmed, raw: RawMessage, r: BatchResult) -> None:
    await _require(store, e.petition_id)
    await store.arm_deadline(e.petition_id, e.clock, e.due_at, e.department_code, e.occurred_at)
    await _timeline(store, e, "clock_armed", {"clock": e.clock, "due_at": e.due_at.isoformat(), "policy": e.policy})


async def on_warning(store: ReadModelStore, e: SlaWarning, raw: RawMessage, r: BatchResult) -> None:
    await _require(store, e.petition_id)
    await store.set_deadline_state(e.petition_id, e.clock, e.due_at, "warned", e.occurred_at)
    await _timeline(store, e, "deadline_warning", {"clock": e.clock, "fraction": e.fraction})


async def on_breached(store: ReadModelStore, e: SlaBreached, raw: RawMessage, r: BatchResult) -> None:
    await _require(store, e.petition_id)
    await store.set_deadline_state(e.petition_id, e.clock, e.due_at, "breached", e.occurred_at)
    await _timeline(store, e, "deadline_breached", {"clock": e.clock, "department": e.department_code})


async def on_stopped(store: ReadModelStore, e: SlaClockStopped, raw: RawMessage, r: BatchResult) -> None:
    await _require(store, e.petition_id)
    await store.stop_deadline(e.petition_id, e.clock, e.due_at, e.occurred_at)
    if e.clock == "sign_for" and e.reason in ("accept", "resolve") and e.occurred_at <= e.due_at:
        # 响应率: signed for within the limit, counted on the day of the assignment
        day = (await store.assignment_day(e.petition_id, e.department_code)
               or e.occurred_at.astimezone(LOCAL).date())
        await store.count_kpi(e.event_id, e.department_code, day, ["signed_in_time"])
    if e.clock == "resolution" and e.reason == "resolve":
        # the public board's on-time share: resolutions, and those within the limit, by their day
        fields = ["resolutions"] + (["resolved_in_time"] if e.occurred_at <= e.due_at else [])
        await store.count_kpi(e.event_id, e.department_code, e.occurred_at.astimezone(LOCAL).date(), fields)
    await _timeline(store, e, "clock_stopped", {"clock": e.clock, "reason": e.reason})


async def on_paused(store: ReadModelStore, e: SlaClockPaused, raw: RawMessage, r: BatchResult) -> None:
    await _require(store, e.petition_id)
    await store.move_deadline(e.petition_id, e.clock, e.due_at, "paused", e.occurred_at)
    await _timeline(store, e, "clock_paused", {"clock": e.clock, "remaining_seconds": e.remaining_seconds})


async def on_resumed(store: ReadModelStore, e: SlaClockResumed, raw: RawMessage, r: BatchResult) -> None:
    await _require(store, e.petition_id)
    await store.move_deadline(e.petition_id, e.clock, e.due_at, "running", e.occurred_at)
    await _timeline(store, e, "clock_resumed", {"clock": e.clock, "due_at": e.due_at.isoformat(),
                                                "paused_seconds": e.paused_seconds})


async def on_extended(store: ReadModelStore, e: SlaDeadlineExtended, raw: RawMessage, r: BatchResult) -> None:
    await _require(store, e.petition_id)
    await store.move_deadline(e.petition_id, e.clock, e.due_at, None, e.occurred_at)
    await _timeline(store, e, "deadline_extended", {
        "clock": e.clock, "days": e.days, "approved_by": e.approved_by,
        "previous_due_at": e.previous_due_at.isoformat(), "due_at": e.due_at.isoformat(), "rule": e.rule,
    })


async def on_escalated(store: ReadModelStore, e: SlaEscalated, raw: RawMessage, r: BatchResult) -> None:
    await _require(store, e.petition_id)
    await store.open_supervision(SupervisionOrder(
        id=e.supervision_id, subject="petition", petition_id=e.petition_id, clock=e.clock, step=e.step,
        level=e.level, target_unit=e.target_unit, supervised_unit=e.department_code, rule=e.rule,
        opened_at=e.occurred_at, due_at=e.supervision_due_at,
    ))
    await _timeline(store, e, "escalated", {
        "clock": e.clock, "step": e.step, "level": e.level, "target_unit": e.target_unit, "rule": e.rule,
        "supervision_id": str(e.supervision_id), "supervision_due_at": e.supervision_due_at.isoformat(),
    })


async def on_supervision_closed(store: ReadModelStore, e: SupervisionClosed, raw: RawMessage, r: BatchResult) -> None:
    await _require(store, e.petition_id)
    await store.close_supervisions([e.supervision_id], e.closed_by, e.occurred_at, e.note)
    await _timeline(store, e, "supervision_closed", {
        "supervision_id": str(e.supervision_id), "closed_by": e.closed_by, "target_unit": e.target_unit,
    })


async def on_supervision_opened(store: ReadModelStore, e: SupervisionOpened, raw: RawMessage, r: BatchResult) -> None:
    await _require(store, e.petition_id)
    await store.open_supervision(e.supervision)
    await _timeline(store, e, "supervision_opened", {
        "supervision_id": str(e.supervision.id), "target_unit": e.supervision.target_unit,
        "opened_by": e.opened_by, "due_at": e.supervision.due_at.isoformat(),
    })


def _escalated_order(e: SupervisionOverdue | ZeroReportSupervisionOverdue) -> SupervisionOrder | None:
    """The 督办 opened above a lapsed one: as the event carries it, or (an event from before
    it did) as its fields describe it."""
    if e.escalated_supervision is not None:
        return e.escalated_supervision
    if e.escalated_supervision_id is None or e.escalated_to is None or e.escalated_due_at is None:
        return None  # the top of the ladder: only the lapse is published
    petition = isinstance(e, SupervisionOverdue)
    return SupervisionOrder(
        id=e.escalated_supervision_id, subject="petition" if petition else "zero_report",
        petition_id=e.petition_id if isinstance(e, SupervisionOverdue) else None,
        clock=e.clock if isinstance(e, SupervisionOverdue) else None,
        level="overdue", target_unit=e.escalated_to, supervised_unit=e.target_unit, rule=e.rule,
        opened_at=e.occurred_at, due_at=e.escalated_due_at,
        report_unit=None if isinstance(e, SupervisionOverdue) else e.unit,
        report_period=None if isinstance(e, SupervisionOverdue) else e.period,
        parent_id=e.supervision_id,
    )


async def on_supervision_overdue(
    store: ReadModelStore, e: SupervisionOverdue, raw: RawMessage, r: BatchResult
) -> None:
    await _require(store, e.petition_id)
    await store.mark_overdue(e.supervision_id, e.occurred_at)
    order = _escalated_order(e)
    if order is not None:
        await store.open_supervision(order)
    await _timeline(store, e, "supervision_overdue", {
        "supervision_id": str(e.supervision_id), "clock": e.clock, "level": e.level,
        "target_unit": e.target_unit, "escalated_to": e.escalated_to, "rule": e.rule,
        "escalated_supervision_id": str(e.escalated_supervision_id) if e.escalated_supervision_id else None,
    })


async def on_zero_report_supervision_overdue(
    store: ReadModelStore, e: ZeroReportSupervisionOverdue, raw: RawMessage, r: BatchResult
) -> None:
    await store.mark_overdue(e.supervision_id, e.occurred_at)
    order = _escalated_order(e)
    if order is not None:
        await store.open_supervision(order)


async def on_zero_report_status(store: ReadModelStore, e: ZeroReportStatus, raw: RawMessage, r: BatchResult) -> None:
    await store.record_zero_report(ZeroReportVerdict(
        e.unit, e.period, e.status, e.rule, e.due_at, e.submitted_at, e.incidents, e.escalated_to, e.occurred_at,
    ))
    order = e.supervision
    if order is None and e.supervision_id is not None and e.escalated_to and e.supervision_due_at is not None:
        # an event from before it carried the 督办 whole: the one its fields describe
        order = SupervisionOrder(
            id=e.supervision_id, subject="zero_report", level="zero_report", target_unit=e.escalated_to,
            supervised_unit=e.unit, rule=f"zero_report:{e.rule}", opened_at=e.occurred_at,
            due_at=e.supervision_due_at, report_unit=e.unit, report_period=e.period,
        )
    if order is not None:
        await store.open_supervision(order)
    if e.closed_supervision_ids is not None:  # the 督办 the report closed, whatever its verdict
        if e.closed_supervision_ids:
            await store.close_supervisions(list(e.closed_supervision_ids), e.unit, e.submitted_at or e.occurred_at,
                                           "report received")
    elif e.status in ("on_time", "late") and e.submitted_at is not None:  # an event from before it named them
        await store.close_report_supervisions(e.unit, e.period, e.submitted_at)



async def on_alert(store: ReadModelStore, e: WatchAlert, raw: RawMessage, r: BatchResult) -> None:
    await store.record_alert(AlertRow(
        e.alert_id, e.version, e.state, e.kind, e.area, e.area_name, e.area_level, e.category, e.window,
        e.window_start, e.count, e.expected, e.z, tuple(e.petition_ids), e.opened_at, e.closed_at, e.level,
        tuple(e.risk_reasons), e.department_code, e.occurred_at,
    ))


async def on_incident_linked(store: ReadModelStore, e: IncidentLinked, raw: RawMessage, r: BatchResult) -> None:
    await store.link_incident(IncidentLinkRow(
        e.petition_id, e.incident_id, e.alert_id, e.department_code, e.assignment_no, e.similarity, e.occurred_at,
    ))
    if await store.petition_exists(e.petition_id):
        await _timeline(store, e, "incident_linked", {
            "incident_id": e.incident_id, "alert_id": e.alert_id, "department": e.department_code,
            "similarity": e.similarity, "assignment_no": e.assignment_no,
        })
