"""Intake's service layer: the commands (a petition, an action, a 督办 closing, a zero report).

Each command checks its input against the reference data, decides with the rules of
:mod:`services.intake.domain.actions`, and writes the change, its timeline entry and its
event to the outbox in one unit of work: a command that returns has been committed, one that
raises (a :mod:`shared.errors` family with a stable code) changed nothing. Time is passed in.
No SQL (that is :mod:`services.intake.store`), no HTTP (that is :mod:`services.intake.api`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from services.intake.commands import (
    ActionAccepted,
    ActionIn,
    CloseSupervisionIn,
    FollowUpAction,
    OpenSupervisionIn,
    Origin,
    PetitionAccepted,
    PetitionIn,
    Resolution,
    SupervisionClosing,
    ZeroReportAccepted,
    ZeroReportIn,
)
from services.intake.domain import access, actions
from services.intake.domain.loop import FollowUp, LoopPolicy, decide_follow_up, follow_up_due
from services.intake.domain.masking import mask_personal_numbers as masked
from services.intake.pii import petitioner_key
from services.intake.reference import Reference
from services.intake.store import CallerPetition, IntakeStore, NewPetitionRow, PetitionRow
from shared import topics
from shared.errors import BadInput, Conflict, Forbidden, NotFound
from shared.events import (
    ActionType,
    Actor,
    Location,
    PetitionActionTaken,
    PetitionSubmitted,
    ZeroReportSubmitted,
    encode_event,
    key_for,
    key_for_unit,
)
from shared.identity import Principal, Role
from shared.ids import EVENT_NAMESPACE, new_petition_id, new_tracking_code
from shared.messages import OutboxMessage
from shared.store import UnitOfWork

#: the local time of dates (the follow-up deadline's day, the 三率's days)
LOCAL = ZoneInfo("Asia/Shanghai")
#: the statuses a follow-up is recorded in
FOLLOW_UP_FROM = frozenset({"resolved"})

__all__ = [
    "Intake",
    "act",
    "caller_has_open_petitions",
    "close_supervision",
    "facts_of",
    "find_by_phone",
    "follow_up",
    "open_supervision",
    "request_hash",
    "reveal_contacts",
    "scope_of",
    "submit_petition",
    "submit_zero_report",
]


class References(Protocol):
    """The reference data in force (reloaded when its files change)."""

    @property
    def current(self) -> Reference: ...


@dataclass(frozen=True)
class Intake:
    """What the commands need besides the store: reference data, the pseudonym key, the
    accepted window of ``received_at``, and a way to wake the outbox relay."""

    reference: References
    hmac_key: bytes
    received_at_earliest: datetime
    received_at_max_future_seconds: float
    kick: Callable[[], None] = lambda: None
    #: follow-ups, reopenings and the 三率 (services/intake/data/loop.yaml)
    loop: LoopPolicy = dataclasses.field(default_factory=LoopPolicy)


def request_hash(body: PetitionIn) -> str:
    """The digest an Idempotency-Key is bound to: the same key with another body is refused."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_unit(reference: Reference, code: str, field: str) -> None:
    if code not in reference.units:
        raise BadInput(f"no unit {code} exists", code="unknown_unit", field=field)


def check_received_at(ctx: Intake, value: datetime, now: datetime) -> None:
    """`value` within [received_at_earliest, now + max future]; calendar-edge values included."""
    latest = now + timedelta(seconds=ctx.received_at_max_future_seconds)
    try:
        inside = ctx.received_at_earliest <= value <= latest
    except OverflowError:  # year 1 or 9999 with an offset: not representable in UTC, far outside
        inside = False
    if not inside:
        raise BadInput(
            f"received_at must lie between {ctx.received_at_earliest.isoformat()} and "
            f"{ctx.received_at_max_future_seconds:g} s after now",
            code="received_at_out_of_range", field="received_at",
        )


def scope_of(ctx: Intake, principal: Principal) -> access.AreaScope | None:
    """A supervisor's area subtree (None for the other roles)."""
    if principal.role is Role.SUPERVISOR and principal.area:
        return ctx.reference.current.scope_of(principal.area)
    return None


def facts_of(row: PetitionRow) -> access.PetitionFacts:
    """What the access rules read of a petition."""
    jurisdiction = (row.jurisdiction or {}).get("code")
    return access.PetitionFacts(row.id, row.department_code, row.assigned | ({row.department_code} if
                                row.department_code else set()), jurisdiction, row.accused_departments,
                                row.submitted_by)


def _actor(principal: Principal) -> Actor:
    return Actor(subject=principal.subject, role=principal.role.value)


class _Replay(Exception):
    """The Idempotency-Key was taken meanwhile: undo, and answer the petition it made."""


async def _replayed(uow: UnitOfWork[IntakeStore], key: str, digest: str) -> PetitionAccepted | None:
    async with uow.begin() as store:
        found = await store.idempotent_petition(key)
    if found is None:
        return None
    if found.request_hash != digest:
        raise Conflict("this Idempotency-Key was used for a different petition", code="idempotency_key_reused")
    return PetitionAccepted(id=found.id, tracking_code=found.tracking_code, status=found.status)


async def submit_petition(
    uow: UnitOfWork[IntakeStore], ctx: Intake, principal: Principal, body: PetitionIn, *,
    idempotency_key: str | None, now: datetime, answered: str | None = None, origin: Origin | None = None,
) -> tuple[PetitionAccepted, bool]:
    """Record a petition and its ``petition.submitted``; returns it and whether it is new
    (False: the Idempotency-Key's earlier petition, unchanged). An operator takes petitions
    in; the text leaves intake with personal numbers masked. An Idempotency-Key is the
    caller's own: another caller's equal key is another key.

    `answered`: a consultation the operator answered on the spot, with that answer. It is
    recorded resolved at once, the answer as its reply, and goes to no department: no
    ``petition.submitted`` is published, so nothing routes it or runs its clocks.

    `origin`: the Open311 client or the mailbox that brought it (recorded on the petition and
    its timeline), with what Open311 adds (service, coordinates, a picture's URL)."""
    if principal.role is not Role.OPERATOR:
        raise Forbidden(f"a {principal.role.value} principal does not take petitions in", code="role_cannot_submit")
    if idempotency_key is not None:
        idempotency_key = f"{principal.subject}\x1f{idempotency_key}"
    if body.received_at is not None:
        check_received_at(ctx, body.received_at, now)
    if (body.location is not None and body.location.admin_code is not None
            and not ctx.reference.current.admin_code_known(body.location.admin_code)):
        raise BadInput(f"{body.location.admin_code} is no area of the province's gazetteer",
                       code="unknown_admin_code", field="location.admin_code")
    digest = request_hash(body)
    if idempotency_key is not None:
        replay = await _replayed(uow, idempotency_key, digest)
        if replay is not None:
            return replay, False
    petition_id, tracking = new_petition_id(), new_tracking_code()
    person = body.petitioner
    pkey = petitioner_key(ctx.hmac_key, id_number=person.id_number if person else None,
                          phone=person.phone if person else None, email=person.email if person else None)
    location = Location(**(body.location.model_dump() if body.location else {}))
    event = PetitionSubmitted(
        event_id=uuid.uuid4(), occurred_at=now, petition_id=petition_id, tracking_code=tracking,
        title=masked(body.title), content=masked(body.content), channel=body.channel, kind=body.kind,
        petitioner_key=pkey, location=location.model_copy(update={"address": masked(location.address or "") or None}),
        persons=body.persons, received_at=body.received_at or now, actor=_actor(principal),
    )
    try:
        async with uow.begin() as store:
            await store.insert_petition(NewPetitionRow(
                petition_id, tracking, body.title, body.content, body.channel.value,
                body.kind.value if body.kind else None, location.model_dump(), body.persons, pkey,
                event.received_at, now, principal.subject, principal.role.value,
                *((origin.client, origin.service_code, origin.lat, origin.long, origin.media_url) if origin else ()),
            ))
            if person is not None:
                await store.insert_contact(petition_id, person.name, person.phone, person.id_number, person.email)
            submitted: dict[str, Any] = {"channel": body.channel.value}
            if origin is not None:
                submitted["client"] = origin.client
            await store.add_timeline(petition_id, now, "submitted", submitted, event.event_id)
            if answered:
                await store.set_status(petition_id, "resolved", None)
                await store.add_timeline(petition_id, now, "resolve", {
                    "note": masked(answered), "actor": principal.subject, "answered_on_the_spot": True,
                }, uuid.uuid5(EVENT_NAMESPACE, f"answered:{event.event_id}"))
            else:
                await store.add_to_outbox([OutboxMessage(topics.PETITION_SUBMITTED, key_for(petition_id),
                                                         encode_event(event))])
            if idempotency_key is not None and not await store.store_idempotency_key(
                idempotency_key, digest, petition_id
            ):
                raise _Replay
    except _Replay:
        replay = await _replayed(uow, idempotency_key or "", digest)
        if replay is None:  # the key's holder vanished: cannot happen, keys are never deleted
            raise Conflict("the Idempotency-Key is in use; retry", code="idempotency_key_busy") from None
        return replay, False
    if answered:
        return PetitionAccepted(id=petition_id, tracking_code=tracking, status="resolved"), True
    ctx.kick()
    return PetitionAccepted(id=petition_id, tracking_code=tracking, status="submitted"), True


async def act(
    uow: UnitOfWork[IntakeStore], ctx: Intake, principal: Principal, ref: str, body: ActionIn, *, now: datetime
) -> ActionAccepted:
    """A department (or the triage desk, or a supervisor deciding an extension or unlinking a
    petition from its incident) acts on a petition it sees, in the name of one of its units;
    the hotline records a follow-up."""
    if isinstance(body, FollowUpAction):
        return await follow_up(uow, ctx, principal, ref, body, now=now)
    reference = ctx.reference.current
    scope = scope_of(ctx, principal)
    access.check_action(principal, body.action)
    check_unit(reference, body.department, "department")
    access.check_acting_unit(principal, body.department, scope)
    target_department = getattr(body, "target_department", None)
    if target_department is not None and (
        target_department not in reference.departments or target_department == reference.triage
    ):
        raise BadInput(f"no department {target_department} in the routing table",
                       code="unknown_department", field="target_department")
    extra: dict[str, Any] = {}
    if (days := getattr(body, "extension_days", None)) is not None:
        extra["extension_days"] = days
    if (category := getattr(body, "category", None)) is not None:
        extra["category"] = category
    async with uow.begin() as store:
        row = await store.petition(ref, for_update=True)
        if row is None:
            raise NotFound(f"no petition {ref}")
        access.check_visible(principal, facts_of(row), scope, ref=ref)
        transition = actions.decide(
            actions.PetitionState(row.id, row.status, row.department_code, row.extension_state,
                                  row.status_before_pause),
            body.action, acting=body.department,
        )
        if body.action == "unlink":
            extra |= await _unlink(store, principal, row.id, body.department, now)
        event = PetitionActionTaken(
            event_id=uuid.uuid4(), occurred_at=now, petition_id=row.id, action=ActionType(body.action),
            department_code=body.department, note=masked(body.note), target_department_code=target_department,
            assignment_no=row.assignment_no, extra=extra, actor=_actor(principal),
        )
        await store.set_status(row.id, transition.status, transition.extension_state)
        detail: dict[str, Any] = {"department": body.department, "note": event.note, "actor": principal.subject}
        if target_department:
            detail["target_department"] = target_department
        if isinstance(body, Resolution):
            basis = masked(body.basis)
            detail["basis"] = basis
            event.extra["basis"] = basis
            due = follow_up_due(now, ctx.loop.follow_up_workdays, reference.calendar.is_workday, LOCAL)
            office = reference.office_for((row.jurisdiction or {}).get("code"))
            await store.record_resolution(row.id, now, body.department, basis, body.public, due, office)
        await store.add_timeline(row.id, now, body.action, {**detail, **extra}, event.event_id)
        await store.add_to_outbox([OutboxMessage(topics.PETITION_ACTIONS, key_for(row.id), encode_event(event))])
    ctx.kick()
    return ActionAccepted(id=row.id, action=body.action, status=transition.status)


async def _unlink(store: IntakeStore, principal: Principal, petition_id: str, unit: str,
                  now: datetime) -> dict[str, Any]:
    """Undo the petition's incident link (refused when none is in force): what the action's
    event says of it (the incident, its alert, the department holding the incident)."""
    links = [link for link in await store.incident_links(petition_id) if link.unlinked_at is None]
    if not links:
        raise Conflict(f"petition {petition_id} is linked to no incident (or was unlinked already)",
                       code="not_linked")
    link = links[-1]
    await store.unlink(petition_id, now, principal.subject, unit)
    return {"incident_id": link.incident_id, "alert_id": link.alert_id, "incident_department": link.department_code}


async def close_supervision(
    uow: UnitOfWork[IntakeStore], ctx: Intake, principal: Principal, supervision_id: uuid.UUID,
    body: CloseSupervisionIn, *, now: datetime,
) -> SupervisionClosing:
    """A supervisor of the 督办's area, or a clerk of the unit it is addressed to, asks to close
    it; the escalation service, which owns it, closes it (a ``close_supervision`` action)."""
    if principal.role not in (Role.SUPERVISOR, Role.DEPARTMENT):
        raise Forbidden(f"a {principal.role.value} principal does not close 督办", code="role_cannot_act")
    scope = scope_of(ctx, principal)
    check_unit(ctx.reference.current, body.department, "department")
    access.check_acting_unit(principal, body.department, scope)
    async with uow.begin() as store:
        row = await store.supervision(supervision_id, for_update=True)
        if row is None or not access.can_see_supervision(principal, row.target_unit, row.accused, scope):
            raise NotFound(f"no 督办 {supervision_id}")
        actions.close_supervision(
            actions.SupervisionState(str(row.id), row.state, row.subject, row.supervised_unit,
                                     row.close_requested_by, row.report_unit, row.report_period),
            acting=body.department,
        )
        if row.petition_id is None:  # only a zero-report 督办 has none, and it closes on the report
            raise Conflict(f"督办 {supervision_id} is about no petition", code="closes_on_report")
        event = PetitionActionTaken(
            event_id=uuid.uuid4(), occurred_at=now, petition_id=row.petition_id, action=ActionType.CLOSE_SUPERVISION,
            department_code=body.department, note=masked(body.note), extra={"supervision_id": str(supervision_id)},
            actor=_actor(principal),
        )
        await store.request_close(supervision_id, body.department, now)
        await store.add_timeline(row.petition_id, now, "close_supervision", {
            "department": body.department, "note": event.note, "supervision_id": str(supervision_id),
            "actor": principal.subject,
        }, event.event_id)
        await store.add_to_outbox([OutboxMessage(topics.PETITION_ACTIONS, key_for(row.petition_id),
                                                 encode_event(event))])
    ctx.kick()
    return SupervisionClosing(id=str(supervision_id), status="closing")


async def follow_up(
    uow: UnitOfWork[IntakeStore], ctx: Intake, principal: Principal, ref: str, body: FollowUpAction, *,
    now: datetime, citizen: bool = False,
) -> ActionAccepted:
    """回访: the hotline's call back after a resolution (or the citizen's own rating from the
    public tracking page, `citizen`). Closed when resolved and satisfied; otherwise reopened to
    the department that resolved it (the router reassigns it, the escalation service arms its
    new clocks), with a 督办 to the area's supervisor past the policy's reopenings; after the
    policy's calls that reached nobody, unreachable. Counted in the 三率 projection, in the
    same transaction, once."""
    if not citizen and principal.role is not Role.OPERATOR:
        raise Forbidden(f"a {principal.role.value} principal does not make follow-up calls", code="role_cannot_act")
    reference = ctx.reference.current
    if body.department is not None and (body.department not in reference.units or
                                        not body.department.endswith("-12345")):
        # the hotline calls in the name of one of its offices, never another unit's
        raise Forbidden(f"{body.department} is no hotline office: the hotline does not call in its name",
                        code="not_your_unit")
    async with uow.begin() as store:
        row = await store.petition(ref, for_update=True)
        if row is None:
            raise NotFound(f"no petition {ref}")
        if row.status not in FOLLOW_UP_FROM:
            raise Conflict(f"petition {row.id} is {row.status}, not awaiting a follow-up", code="invalid_state")
        if row.department_code is None:
            raise Conflict(f"petition {row.id} was answered on the spot, by the hotline itself: there is no "
                           "department's work to follow up", code="not_routed")
        if citizen and not body.reached:
            raise BadInput("a citizen's rating reached the citizen", code="invalid_rating", field="reached")
        outcome = decide_follow_up(FollowUp(body.reached, body.resolved, body.satisfaction),
                                   attempts=row.follow_up_attempts, reopens=row.reopen_count, policy=ctx.loop)
        office = body.department or reference.office_for((row.jurisdiction or {}).get("code"))
        resolved_by = row.resolved_by or row.department_code or office
        extra: dict[str, Any] = {
            "reached": body.reached, "outcome": outcome.status, "resolved_by": resolved_by,
            "attempts": outcome.attempts, "reopens": outcome.reopens, "by": "citizen" if citizen else "hotline",
        }
        if body.reached:
            extra |= {"resolved": body.resolved, "satisfaction": body.satisfaction}
        event = PetitionActionTaken(
            event_id=uuid.uuid4(), occurred_at=now, petition_id=row.id, action=ActionType.FOLLOW_UP,
            department_code=office, note=masked(body.note), assignment_no=row.assignment_no, extra=extra,
            actor=_actor(principal),
        )
        await store.record_follow_up(row.id, outcome.status, outcome.attempts, outcome.reopens, now,
                                     stop_clock=outcome.status != "resolved")
        await store.add_timeline(row.id, now, "follow_up", {"department": office, "note": event.note,
                                                             "actor": principal.subject, **extra}, event.event_id)
        messages = [OutboxMessage(topics.PETITION_ACTIONS, key_for(row.id), encode_event(event))]
        if outcome.supervise:
            supervising = reference.government_over(resolved_by, (row.jurisdiction or {}).get("code")) or office
            order_id = uuid.uuid5(EVENT_NAMESPACE, f"reopen_supervision:{event.event_id}")
            order = PetitionActionTaken(
                event_id=uuid.uuid5(EVENT_NAMESPACE, f"reopen_supervision_event:{event.event_id}"), occurred_at=now,
                petition_id=row.id, action=ActionType.OPEN_SUPERVISION, department_code=supervising,
                note=f"第{outcome.reopens}次重办：回访不满意或未解决", assignment_no=row.assignment_no,
                extra={"supervision_id": str(order_id), "target_unit": resolved_by}, actor=_actor(principal),
            )
            await store.add_timeline(row.id, now, "open_supervision", {
                "department": supervising, "note": order.note, "supervision_id": str(order_id),
                "target_unit": resolved_by, "actor": principal.subject,
            }, order.event_id)
            messages.append(OutboxMessage(topics.PETITION_ACTIONS, key_for(row.id), encode_event(order)))
        await store.add_to_outbox(messages)
        day = now.astimezone(LOCAL).date()
        if outcome.counted:
            fields = ["follow_ups", body.satisfaction or "unsatisfied"]
            if body.resolved:
                fields.append("rated_resolved")
            if outcome.status == "reopened":
                fields.append("reopened")
            await store.count_kpi(event.event_id, resolved_by, day, fields)
        elif outcome.status == "unreachable":
            await store.count_kpi(event.event_id, resolved_by, day, ["unreachable"])
    ctx.kick()
    return ActionAccepted(id=row.id, action="follow_up", status=outcome.status)


#: statuses in which a petition is being handled (a 督办 makes sense)
HANDLING = frozenset({"assigned", "accepted", "paused", "returned", "triage"})


async def open_supervision(
    uow: UnitOfWork[IntakeStore], ctx: Intake, principal: Principal, ref: str, body: OpenSupervisionIn, *,
    now: datetime,
) -> SupervisionClosing:
    """A supervisor opens a 督办 on a petition of its area, addressed to the department holding
    it, which must be a unit of the area too (an ``open_supervision`` action; the escalation
    service opens and owns it)."""
    if principal.role is not Role.SUPERVISOR:
        raise Forbidden(f"a {principal.role.value} principal does not open 督办", code="role_cannot_act")
    scope = scope_of(ctx, principal)
    check_unit(ctx.reference.current, body.department, "department")
    access.check_acting_unit(principal, body.department, scope)
    async with uow.begin() as store:
        row = await store.petition(ref, for_update=True)
        if row is None:
            raise NotFound(f"no petition {ref}")
        access.check_visible(principal, facts_of(row), scope, ref=ref)
        if row.department_code is None or row.status not in HANDLING:
            raise Conflict(f"petition {row.id} is not being handled (status {row.status!r})", code="invalid_state")
        if not access.can_see_supervision(principal, row.department_code, scope=scope):
            # a district's supervisor does not 督办 a city bureau: it could neither follow nor close the order
            raise Forbidden(f"petition {row.id} is held by {row.department_code}, a unit outside the area of "
                            f"{principal.subject}", code="holder_outside_area")
        event_id = uuid.uuid4()
        supervision_id = uuid.uuid5(EVENT_NAMESPACE, f"manual_supervision:{event_id}")
        event = PetitionActionTaken(
            event_id=event_id, occurred_at=now, petition_id=row.id, action=ActionType.OPEN_SUPERVISION,
            department_code=body.department, note=masked(body.note), assignment_no=row.assignment_no,
            extra={"supervision_id": str(supervision_id), "target_unit": row.department_code},
            actor=_actor(principal),
        )
        await store.add_timeline(row.id, now, "open_supervision", {
            "department": body.department, "note": event.note, "supervision_id": str(supervision_id),
            "target_unit": row.department_code, "actor": principal.subject,
        }, event.event_id)
        await store.add_to_outbox([OutboxMessage(topics.PETITION_ACTIONS, key_for(row.id), encode_event(event))])
    ctx.kick()
    return SupervisionClosing(id=str(supervision_id), status="opening")


async def submit_zero_report(
    uow: UnitOfWork[IntakeStore], ctx: Intake, principal: Principal, body: ZeroReportIn, *, now: datetime,
    today: date,
) -> ZeroReportAccepted:
    """A unit's clerk reports for a period the unit owes (one report per period: the same
    report again is answered as the first, a different one refused)."""
    if principal.role is not Role.DEPARTMENT:
        raise Forbidden(f"a {principal.role.value} principal does not file zero reports", code="role_cannot_act")
    access.check_acting_unit(principal, body.unit)
    reference = ctx.reference.current
    if body.unit not in reference.obligations:
        raise BadInput(f"{body.unit} owes no zero reports", code="no_obligation", field="unit")
    problem = reference.period_problem(body.unit, body.period, today)
    if problem is not None:
        raise BadInput(problem, code="period_not_owed", field="period")
    digest = hashlib.sha256(json.dumps({"incidents": body.incidents}, ensure_ascii=False, sort_keys=True).encode()
                            ).hexdigest()
    submission_id = uuid.uuid4()
    async with uow.begin() as store:
        if not await store.insert_zero_report(body.unit, body.period, submission_id, body.incidents, digest, now):
            existing = await store.zero_report_submission(body.unit, body.period)
            if existing is None or existing.request_hash != digest:
                raise Conflict(f"{body.unit} already reported for {body.period}; one report per period",
                               code="already_submitted")
            return ZeroReportAccepted(id=str(existing.submission_id), unit=body.unit, period=body.period,
                                      status="submitted")
        event = ZeroReportSubmitted(
            event_id=uuid.uuid4(), occurred_at=now, unit=body.unit, period=body.period,
            incidents=tuple(masked(i) for i in body.incidents), submitted_at=now, submission_id=submission_id,
            actor=_actor(principal),
        )
        await store.add_to_outbox([OutboxMessage(topics.ZERO_REPORT_SUBMITTED, key_for_unit(body.unit),
                                                 encode_event(event))])
    ctx.kick()
    return ZeroReportAccepted(id=str(submission_id), unit=body.unit, period=body.period, status="submitted")


async def reveal_contacts(
    uow: UnitOfWork[IntakeStore], ctx: Intake, principal: Principal, ref: str, reason: str, *, now: datetime
) -> dict[str, Any]:
    """The petitioner's contacts, for the holding department, the operator who took the
    petition in, or a supervisor in scope, with a reason; each reveal is one row of the
    append-only audit log, written in the same transaction as the answer is read."""
    if principal.role not in (Role.OPERATOR, Role.DEPARTMENT, Role.SUPERVISOR):
        raise Forbidden(f"a {principal.role.value} principal never sees petitioners' contacts",
                        code="not_allowed_to_reveal")
    scope = scope_of(ctx, principal)
    async with uow.begin() as store:
        row = await store.petition(ref)
        if row is None:
            raise NotFound(f"no petition {ref}")
        facts = facts_of(row)
        access.check_visible(principal, facts, scope, ref=ref)
        if not access.may_reveal_contacts(principal, facts, scope):
            raise Forbidden(f"{principal.subject} may not see the contacts of petition {row.id}",
                            code="not_allowed_to_reveal")
        contact = await store.contact(row.id)
        audit_id = await store.add_audit(now, principal.subject, principal.role.value, "reveal_contacts", row.id,
                                         reason)
    return {
        "petition_id": row.id,
        "name": contact.name if contact else None,
        "phone": contact.phone if contact else None,
        "id_number": contact.id_number if contact else None,
        "email": contact.email if contact else None,
        "audit_id": audit_id,
    }


async def find_by_phone(
    uow: UnitOfWork[IntakeStore], ctx: Intake, principal: Principal, phone: str, reason: str, *, now: datetime,
    limit: int = 50,
) -> list[CallerPetition]:
    """An operator looks up a caller's petitions by the number the caller gives (found by its
    pseudonym, as the router finds repeats; petitions taken in with an ID number are keyed by
    that instead). Like every access through a petitioner's contacts it is audited: one row
    per petition found, with the operator's reason."""
    if principal.role is not Role.OPERATOR:
        raise Forbidden(f"a {principal.role.value} principal does not look callers up", code="role_cannot_read")
    key = petitioner_key(ctx.hmac_key, id_number=None, phone=phone)
    if key is None:
        raise BadInput("a phone number has digits", code="invalid_phone", field="phone")
    async with uow.begin() as store:
        found = await store.petitions_of_petitioner(key, limit)
        for petition in found:
            await store.add_audit(now, principal.subject, principal.role.value, "search_by_phone", petition.id,
                                  reason)
    return [dataclasses.replace(p, title=masked(p.title)) for p in found]


async def caller_has_open_petitions(uow: UnitOfWork[IntakeStore], ctx: Intake, principal: Principal,
                                    phone: str) -> int:
    """How many petitions of this caller are still being handled (the desk's warning while a
    call is typed in; the petitions themselves come only from the audited search)."""
    if principal.role is not Role.OPERATOR:
        raise Forbidden(f"a {principal.role.value} principal does not look callers up", code="role_cannot_read")
    key = petitioner_key(ctx.hmac_key, id_number=None, phone=phone)
    if key is None:
        return 0
    async with uow.begin(snapshot=True) as store:
        found = await store.petitions_of_petitioner(key, 200)
    return sum(1 for p in found if p.status not in ("resolved", "closed"))
