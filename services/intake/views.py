"""Intake's queries: a petition, the 督办 addressed to a unit, a unit's zero-report compliance,
the early-warning alerts (预警) of a supervisor's area.

Read from the read model (what the lifecycle events recorded) through the store, and shaped
as the API answers them: times local (Asia/Shanghai), as operators and departments read them.
"""

from __future__ import annotations

import dataclasses
import math
import re
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.intake.domain import access
from services.intake.domain.alerts import alert_in_scope, listed_petitions
from services.intake.domain.masking import mask_personal_numbers as masked
from services.intake.domain.scrub import scrub
from services.intake.handlers import Intake, facts_of, scope_of
from services.intake.store import AlertRow, AreaOverview, IntakeStore, PetitionLabel, QueueRow, SupervisionRow
from shared.errors import Forbidden, NotFound
from shared.identity import Principal, Role
from shared.store import UnitOfWork

__all__ = [
    "LOCAL", "PUBLIC_STATUS", "alerts", "audit_log", "department_queue", "petition", "public_status",
    "reference_in_force", "supervision_for", "supervisor_overview", "zero_report_compliance",
]

#: Times in answers are local (Asia/Shanghai), as operators and departments read them.
LOCAL = ZoneInfo("Asia/Shanghai")


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(LOCAL).isoformat() if value is not None else None


async def petition(uow: UnitOfWork[IntakeStore], ctx: Intake, principal: Principal, ref: str) -> dict[str, Any]:
    """A petition by id or tracking code, if the caller sees it: its text (personal numbers
    masked), routing, deadlines and timeline; never the petitioner's contacts."""
    if principal.role in (Role.AUDITOR, Role.ADMIN):
        raise Forbidden(f"a {principal.role.value} principal does not read petitions", code="role_cannot_read")
    async with uow.begin(snapshot=True) as store:
        row = await store.petition(ref)
        if row is None:
            raise NotFound(f"no petition {ref}")
        access.check_visible(principal, facts_of(row), scope_of(ctx, principal), ref=ref)
        deadlines = await store.deadlines(row.id)
        timeline = await store.timeline(row.id)
        links = await store.incident_links(row.id)
    return {
        "id": row.id,
        "tracking_code": row.tracking_code,
        "status": row.status,
        "title": masked(row.title),
        "content": masked(row.content),
        "location": {**(row.location or {}), "address": masked((row.location or {}).get("address") or "") or None},
        "category": row.category,
        "department": {"code": row.department_code, "name": row.department_name} if row.department_code else None,
        "jurisdiction": row.jurisdiction,
        "priority": row.priority,
        "rule": row.rule,
        "repeat_of": row.repeat_of,
        "group_petition": row.group_petition,
        "accused_departments": list(row.accused_departments),
        "persons": row.persons,
        "channel": row.channel,
        "kind": row.kind,
        "received_at": _iso(row.received_at),
        "deadlines": [{"clock": d.clock, "due_at": _iso(d.due_at), "state": d.state} for d in deadlines],
        "timeline": [{"at": _iso(t.at), "event": t.event, **_masked_detail(t.detail)} for t in timeline],
        # the incidents the watch linked it to (并案); `unlinked_at`: a person took it out again
        "incidents": [{"incident_id": k.incident_id, "alert_id": k.alert_id, "department_code": k.department_code,
                       "linked_at": _iso(k.linked_at), "unlinked_at": _iso(k.unlinked_at),
                       "unlinked_by": k.unlinked_by} for k in links],
    }


def _masked_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """A timeline entry's detail with its free text masked (entries written before masking)."""
    return {k: masked(v) if k == "note" and isinstance(v, str) else v for k, v in detail.items()}


def supervision_answer(row: SupervisionRow, now: datetime) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "petition_id": row.petition_id,
        "tracking_code": row.tracking_code,
        "clock": row.clock,
        "step": row.step,
        "level": row.level,
        "target_unit": row.target_unit,
        "supervised_unit": row.supervised_unit,
        "rule": row.rule,
        "opened_at": _iso(row.opened_at),
        "due_at": _iso(row.due_at),
        "overdue": row.state == "open" and (row.due_at <= now or row.overdue_at is not None),
        "overdue_at": _iso(row.overdue_at),
        "subject": row.subject,
        "report_unit": row.report_unit,
        "report_period": row.report_period,
        "parent_id": str(row.parent_id) if row.parent_id else None,
        "state": row.state,
        "close_requested_by": row.close_requested_by,
        "closed_by": row.closed_by,
        "closed_at": _iso(row.closed_at),
    }


def _check_unit_scope(ctx: Intake, principal: Principal, unit: str) -> access.AreaScope | None:
    """The caller may read `unit`'s 督办 and reports: its own unit, or one of its area."""
    if principal.role not in (Role.DEPARTMENT, Role.SUPERVISOR):
        raise Forbidden(f"a {principal.role.value} principal does not read units' 督办 or reports",
                        code="role_cannot_read")
    scope = scope_of(ctx, principal)
    access.check_acting_unit(principal, unit, scope)
    return scope


async def supervision_for(
    uow: UnitOfWork[IntakeStore], ctx: Intake, principal: Principal, unit: str, state: str, limit: int, *,
    now: datetime,
) -> dict[str, Any]:
    """The 督办 addressed to `unit` (open by default), oldest first: for the unit's own clerks
    and its area's supervisors (none about an accusation of the caller's government)."""
    scope = _check_unit_scope(ctx, principal, unit)
    async with uow.begin(snapshot=True) as store:
        rows = await store.supervisions_for(unit, state, limit)
    items = [supervision_answer(r, now) for r in rows
             if access.can_see_supervision(principal, r.target_unit, r.accused, scope)]
    return {"unit": unit, "state": state, "items": items}


async def zero_report_compliance(
    uow: UnitOfWork[IntakeStore], ctx: Intake, principal: Principal, unit: str, period: str | None
) -> dict[str, Any]:
    """A unit's verdicts per period and its compliance: 报送率 (reported / judged periods) and
    及时率 (on time / judged periods); for the unit's clerks and its area's supervisors."""
    _check_unit_scope(ctx, principal, unit)
    async with uow.begin(snapshot=True) as store:
        rows = await store.zero_reports(unit, period)
    items = [
        {
            "period": r.period,
            "status": r.status or "submitted",  # submitted, verdict not in yet
            "rule": r.rule,
            "due_at": _iso(r.due_at),
            "submitted_at": _iso(r.submitted_at),
            "incidents": r.incidents,
            "escalated_to": r.escalated_to,
            "submission_id": str(r.submission_id) if isinstance(r.submission_id, uuid.UUID) else None,
        }
        for r in rows
    ]
    judged = [i for i in items if i["status"] in ("on_time", "late", "missing")]
    counts = {s: sum(1 for i in judged if i["status"] == s) for s in ("on_time", "late", "missing")}
    total = len(judged)
    return {
        "unit": unit,
        "period": period,
        "periods": items,
        "compliance": {
            "periods": total,
            **counts,
            "reporting_rate": round((counts["on_time"] + counts["late"]) / total, 4) if total else None,
            "timeliness_rate": round(counts["on_time"] / total, 4) if total else None,
        },
    }


async def audit_log(uow: UnitOfWork[IntakeStore], principal: Principal, petition_id: str | None,
                    limit: int) -> dict[str, Any]:
    """Who saw whose contacts, when and why (newest first): for auditors."""
    if principal.role is not Role.AUDITOR:
        raise Forbidden("only an auditor reads the audit log", code="role_cannot_read")
    async with uow.begin(snapshot=True) as store:
        entries = await store.audit(petition_id, limit)
    return {"petition": petition_id, "items": [
        {"id": e.id, "at": _iso(e.at), "subject": e.subject, "role": e.role, "action": e.action,
         "petition_id": e.petition_id, "reason": e.reason}
        for e in entries
    ]}


def reference_in_force(ctx: Intake, principal: Principal) -> dict[str, Any]:
    """The reference data intake checks input against, as loaded now (admins): its version
    (the routing table's and the escalation files'), and how many units, departments, areas
    and zero-report duties it holds."""
    if principal.role is not Role.ADMIN:
        raise Forbidden("only an admin reads the reference data in force", code="role_cannot_read")
    ref = ctx.reference.current
    return {
        "version": ref.version,
        "triage_desk": ref.triage,
        "departments": len(ref.departments),
        "units": len(ref.units),
        "areas": len(ref.area_codes),
        "zero_report_obligations": len(ref.obligations),
    }


#: the statuses a department works on: its queue
QUEUE_STATUSES = ("assigned", "accepted", "paused", "returned")


async def department_queue(
    uow: UnitOfWork[IntakeStore], principal: Principal, department: str, limit: int
) -> list[QueueRow]:
    """The petitions `department` holds (for one of its own clerks; the triage desk's for its
    desk), the most urgent first: the earliest deadline still running, warned or breached,
    then the newest."""
    if principal.role not in (Role.DEPARTMENT, Role.TRIAGE):
        raise Forbidden(f"a {principal.role.value} principal has no department queue", code="role_cannot_read")
    access.check_acting_unit(principal, department)
    statuses = ("triage",) if principal.role is Role.TRIAGE else QUEUE_STATUSES
    async with uow.begin(snapshot=True) as store:
        rows = await store.queue([department], statuses, limit)
    # an accusation never reaches a unit of the accused government; should one hold it, it does not see it
    return [dataclasses.replace(r, title=masked(r.title), content=masked(r.content))
            for r in rows if not access.shielded(
        principal, access.PetitionFacts(r.id, r.department_code, frozenset({r.department_code}), None,
                                        r.accused_departments))]


#: what a citizen reads of a petition's status
PUBLIC_STATUS = {
    "submitted": "已受理", "triage": "已受理",
    "assigned": "办理中", "accepted": "办理中", "returned": "办理中", "paused": "办理中",
    "resolved": "已办结", "closed": "已办结", "unreachable": "已办结", "reopened": "重新办理中",
}
TRACKING_CODE = re.compile(r"XF-[0-9A-Z]{10}")


async def public_status(uow: UnitOfWork[IntakeStore], code: str) -> dict[str, Any] | None:
    """What anyone with a petition's tracking code may read (None: no such code, or not a code at
    all — the same answer): its status in words, the unit handling it, the deadline of its
    answer and the reply published to the citizen. Never the petitioner, the text, the notes
    between units or anything about an accused unit."""
    code = code.strip().upper()
    if TRACKING_CODE.fullmatch(code) is None:
        return None
    async with uow.begin(snapshot=True) as store:
        row = await store.petition(code)
        if row is None or row.tracking_code != code:
            return None
        deadlines = await store.deadlines(row.id)
        timeline = await store.timeline(row.id)
        contact = await store.contact(row.id)
    resolution = next((d for d in deadlines if d.clock == "resolution"), None)
    known = (contact.name,) if contact is not None else ()
    replies = [t for t in timeline if t.event == "resolve"]
    reply = replies[-1].detail.get("note") if replies else None  # a resolution's note is its reply to the citizen
    basis = replies[-1].detail.get("basis") if replies else None
    answered = row.status in ("resolved", "closed", "unreachable")
    return {
        "tracking_code": row.tracking_code,
        "status": PUBLIC_STATUS.get(row.status, "办理中"),
        "received_at": _iso(row.received_at),
        "unit": row.department_name if row.status not in ("submitted", "triage") else None,
        "due_at": _iso(resolution.due_at) if resolution is not None and row.status not in ("resolved", "closed")
        else None,
        # anyone with the code reads it: anonymised as the public board is (the petitioner's own
        # name too, which a department may have written into its reply)
        "reply": scrub(reply, known) if isinstance(reply, str) and reply and answered else None,
        "basis": scrub(basis, known) if isinstance(basis, str) and basis and answered else None,
        # the citizen may rate a resolution the hotline has not followed up yet
        "may_rate": row.status == "resolved" and row.department_code is not None,
    }


async def supervisor_overview(
    uow: UnitOfWork[IntakeStore], ctx: Intake, principal: Principal, limit: int, *, now: datetime,
    figures: bool = True,
) -> tuple[AreaOverview, list[dict[str, Any]]]:
    """What a supervisor watches in its area: clocks about to breach or breached (by the
    petitions' jurisdiction), the departments' figures, the units' zero reports, and the open
    督办 addressed to its units — nothing about an accusation of its own government. Without
    `figures` the departments' figures and zero reports are left out (the caller has them)."""
    if principal.role is not Role.SUPERVISOR:
        raise Forbidden(f"a {principal.role.value} principal has no area to oversee", code="role_cannot_read")
    scope = scope_of(ctx, principal)
    if scope is None:
        raise Forbidden("a supervisor without an area", code="role_cannot_read")
    codes = None if scope.is_root else sorted(scope.codes)
    tokens = None if scope.is_root else sorted(scope.tokens)
    async with uow.begin(snapshot=True) as store:
        overview = await store.area_overview(codes, tokens, limit, figures=figures)
        orders = await store.open_supervision_in(tokens, limit)
    at_risk = tuple(
        dataclasses.replace(r, title=masked(r.title)) for r in overview.at_risk
        if not access.shielded(principal, access.PetitionFacts(r.petition_id, r.department_code, frozenset(), None,
                                                               r.accused_departments), scope)
    )
    seen = [supervision_answer(o, now) for o in orders
            if access.can_see_supervision(principal, o.target_unit, o.accused, scope)]
    return dataclasses.replace(overview, at_risk=at_risk), seen


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def alert_answer(row: AlertRow, labels: dict[str, PetitionLabel], principal: Principal,
                 scope: access.AreaScope | None) -> dict[str, Any]:
    """An alert as the API answers it: its petitions without those unlinked from its incident,
    and without an accusation the caller's own government is accused in (it does not exist for
    the caller)."""

    def shown(pid: str) -> bool:
        label = labels.get(pid)
        return label is None or not access.shielded(
            principal, access.PetitionFacts(pid, None, frozenset(), None, label.accused_departments), scope)

    listed = [p for p in listed_petitions(row.petition_ids, set(row.unlinked)) if shown(p)]
    return {
        "alert_id": row.alert_id, "version": row.version, "state": row.state, "kind": row.kind,
        "area": row.area, "area_name": row.area_name, "area_level": row.area_level, "category": row.category,
        "window": row.time_window, "window_start": _iso(row.window_start), "count": row.count,
        "expected": _finite(row.expected), "z": _finite(row.z),
        "petition_ids": listed,
        "petitions": [{"id": p, "tracking_code": labels[p].tracking_code if p in labels else None} for p in listed],
        "unlinked_petition_ids": [p for p in row.unlinked if shown(p)],
        "opened_at": _iso(row.opened_at), "closed_at": _iso(row.closed_at), "level": row.level,
        "risk_reasons": list(row.risk_reasons), "department_code": row.department_code,
        "updated_at": _iso(row.updated_at),
    }


async def alerts(
    uow: UnitOfWork[IntakeStore], ctx: Intake, principal: Principal, *, state: str = "active",
    kind: str | None = None, area: str | None = None, limit: int = 100,
) -> dict[str, Any]:
    """The early-warning alerts (预警) of a supervisor's area (active by default), the active
    first, then the riskiest, then the newest; `area` narrows them to an area of its own and
    what lies below it (an area outside its own is refused, ``not_your_unit``). Alerts about no
    known area are the province's supervisor's. The other roles read no alerts."""
    if principal.role is not Role.SUPERVISOR:
        raise Forbidden(f"a {principal.role.value} principal does not read early-warning alerts",
                        code="role_cannot_read")
    scope = scope_of(ctx, principal)
    if scope is None:
        raise Forbidden("a supervisor without an area", code="role_cannot_read")
    if area is not None:
        if not alert_in_scope(area, scope):
            raise Forbidden(f"{area} is outside the area of {principal.subject}", code="not_your_unit")
        below = ctx.reference.current.scope_of(area).codes
        codes: list[str] | None = sorted(below) if below else [area]
    else:
        codes = None if scope.is_root else sorted(scope.codes)
    async with uow.begin(snapshot=True) as store:
        rows = [r for r in await store.alerts(state, kind, codes, limit) if alert_in_scope(r.area, scope)]
        labels = await store.petition_labels(sorted({p for r in rows for p in (*r.petition_ids, *r.unlinked)}))
    return {"state": state, "items": [alert_answer(r, labels, principal, scope) for r in rows]}
