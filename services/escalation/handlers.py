"""The escalation service layer: one function per consumed event and per timer job.

Consumed events (applied by the consumer core in the batch's transaction, through the
store it opened): :func:`on_routed` arms or re-arms a petition's clocks, :func:`on_action`
stops, pauses, resumes or extends them (or closes a 督办), :func:`on_zero_report` records a
unit's report and closes the 督办 about its period. Timer jobs open their own units of
work: :func:`fire_due` fires due timers, :func:`evaluate_zero_reports` finds missing
reports, :func:`fire_overdue_supervisions` escalates lapsed 督办, :func:`read_gauges` reads
what the gauges show.

Each loads its facts through the store, decides with :mod:`services.escalation.planning`
and writes the changes and its events through the same store. No SQL, no Kafka, no HTTP,
no metrics: every function returns what it did (the plan it applied), which the
composition root counts once the transaction has committed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.escalation.domain.ladder import Ladder
from services.escalation.domain.policy import PolicyBook
from services.escalation.domain.rates import RATE_CLOCKS, ClockTally, department_rates
from services.escalation.domain.zero_report import evaluation_start
from services.escalation.planning import (
    CalendarGap,
    Firing,
    OverduePlan,
    PetitionPlan,
    ReportVerdict,
    judge_report,
    plan_action,
    plan_firing,
    plan_missing_reports,
    plan_overdue_supervisions,
    plan_routed,
    received_report,
    report_status,
    supervision_closed,
    supervision_opened,
)
from services.escalation.rows import (
    ArmClock,
    ClockChange,
    ExtendClock,
    PauseClock,
    ReassignClock,
    RequestExtension,
    ResumeClock,
    StopClock,
)
from services.escalation.store import EscalationStore
from shared import topics
from shared.errors import BadInput
from shared.events import (
    ActionType,
    BaseEnvelope,
    Envelope,
    PetitionActionTaken,
    PetitionRouted,
    encode_event,
    key_for,
    utcnow,
)
from shared.events.escalation import UnitEnvelope, ZeroReportSubmitted, key_for_unit
from shared.messages import OutboxMessage
from shared.reference.calendar import WorkCalendar
from shared.reference.obligations import Obligation
from shared.store import UnitOfWork

__all__ = [
    "Context",
    "Gauges",
    "MissingReports",
    "close_supervision",
    "evaluate_zero_reports",
    "fire_due",
    "fire_overdue_supervisions",
    "message_of",
    "next_timer_at",
    "on_action",
    "on_routed",
    "on_zero_report",
    "read_gauges",
]

log = logging.getLogger(__name__)

#: lapsed 督办 escalated per transaction
OVERDUE_BATCH = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """The handlers' collaborators: the rules as loaded, and who and when this is.

    `clock` stamps the events written at processing time (armed, stopped, a report's
    verdict); the timer jobs are given their `now`."""

    policies: PolicyBook
    ladder: Ladder
    calendar: WorkCalendar
    obligations: Mapping[str, Obligation]
    instance_id: str
    clock: Callable[[], datetime] = utcnow


def message_of(event: BaseEnvelope) -> OutboxMessage:
    """The outbox message of an event: a unit's on ``zero_report.status`` keyed by the unit,
    a petition's on ``petition.sla`` keyed by the petition."""
    if isinstance(event, UnitEnvelope):
        return OutboxMessage(topics.ZERO_REPORT_STATUS, key_for_unit(event.unit), encode_event(event))
    if isinstance(event, Envelope):
        return OutboxMessage(topics.PETITION_SLA, key_for(event.petition_id), encode_event(event))
    raise TypeError(f"{type(event).__name__} is neither a petition's nor a unit's event")


def _messages(events: Iterable[BaseEnvelope]) -> list[OutboxMessage]:
    return [message_of(e) for e in events]


def _log_gaps(gaps: Iterable[CalendarGap]) -> None:
    for gap in gaps:
        if gap.years is None:
            log.warning("holiday calendar missing: %s computed Mon-Fri", gap.what)
        else:
            log.warning("holiday calendar missing for %s: %s computed Mon-Fri", list(gap.years), gap.what)


async def _apply(store: EscalationStore, change: ClockChange) -> None:
    """Write one clock change, and replace or cancel its pending timers as it requires."""
    pid, clock = change.petition_id, change.clock
    match change:
        case ArmClock():
            await store.arm_clock(change)
            await store.cancel_timers(pid, clock)
            await store.add_timers(pid, clock, change.due_at, change.timers)
        case ReassignClock():
            await store.reassign_clock(change)
        case StopClock():
            await store.stop_clock(change)
            await store.cancel_timers(pid, clock)
        case PauseClock():
            await store.pause_clock(change)
            await store.cancel_timers(pid, clock)
        case ResumeClock():
            await store.resume_clock(change)
            await store.cancel_timers(pid, clock)
            await store.add_timers(pid, clock, change.due_at, change.timers)
        case RequestExtension():
            await store.request_extension(change)
        case ExtendClock():
            await store.extend_clock(change)
            if change.timers is not None:  # a paused clock's timers are planned when it resumes
                await store.cancel_timers(pid, clock)
                await store.add_timers(pid, clock, change.due_at, change.timers)


async def _apply_plan(store: EscalationStore, plan: PetitionPlan) -> PetitionPlan:
    for change in plan.changes:
        await _apply(store, change)
    await store.add_to_outbox(_messages(plan.events))
    _log_gaps(plan.calendar_gaps)
    return plan


# --- consumed events ------------------------------------------------------------------------


async def on_routed(store: EscalationStore, ctx: Context, e: PetitionRouted) -> PetitionPlan:
    """petition.routed: arm the clocks of the petition's policy, or re-arm them on a
    reassignment (a ``restart`` clock from scratch, a ``keep`` clock for its new holder)."""
    existing = await store.lock_clocks(e.petition_id)
    plan = plan_routed(e, existing, policies=ctx.policies, calendar=ctx.calendar, now=ctx.clock())
    return await _apply_plan(store, plan)


async def on_action(store: EscalationStore, ctx: Context, e: PetitionActionTaken) -> PetitionPlan:
    """petition.action_taken: what the action does to each open clock; ``close_supervision``
    closes a 督办 (:func:`close_supervision`)."""
    if e.action is ActionType.CLOSE_SUPERVISION:
        return await close_supervision(store, ctx, e)
    if e.action is ActionType.OPEN_SUPERVISION:
        return await open_supervision(store, ctx, e)
    clocks = await store.lock_open_clocks(e.petition_id)
    plan = plan_action(e, clocks, policies=ctx.policies, calendar=ctx.calendar, now=ctx.clock())
    return await _apply_plan(store, plan)


async def open_supervision(store: EscalationStore, ctx: Context, e: PetitionActionTaken) -> PetitionPlan:
    """A supervisor opens a 督办 on the petition, addressed to the department holding it
    (intake names it, and the id, in the action); due the ladder's ``supervision_due`` later.
    The same action again opens nothing more (the id is the action's)."""
    try:
        supervision_id = uuid.UUID(str(e.extra.get("supervision_id")))
    except ValueError:
        raise BadInput("open_supervision without a valid supervision_id", code="invalid_action") from None
    target = e.extra.get("target_unit")
    if not isinstance(target, str) or not target:
        raise BadInput("open_supervision without the unit it is addressed to", code="invalid_action")
    plan = supervision_opened(e, supervision_id, target, ctx.ladder.supervision_due.after(e.occurred_at,
                                                                                          ctx.calendar))
    await store.open_supervisions(plan.opened)
    return await _apply_plan(store, plan)


async def close_supervision(store: EscalationStore, ctx: Context, e: PetitionActionTaken) -> PetitionPlan:
    """A supervisor closes a 督办 of the petition. An unknown or closed one, or one the
    supervised unit itself tries to close (intake refuses that), changes nothing."""
    try:
        supervision_id = uuid.UUID(str(e.extra.get("supervision_id")))
    except ValueError:
        raise BadInput("close_supervision without a valid supervision_id", code="invalid_action") from None
    closed = await store.close_supervision(
        supervision_id, e.petition_id, closed_at=e.occurred_at, closed_by=e.department_code, note=e.note
    )
    if closed is None:
        return PetitionPlan()
    return await _apply_plan(store, supervision_closed(e, supervision_id, closed))


async def on_zero_report(store: EscalationStore, ctx: Context, e: ZeroReportSubmitted) -> ReportVerdict | None:
    """zero_report.submitted: judge and record the report (the first copy of a period's
    only), close every 督办 about its period, publish the verdict naming them. None for a
    copy of a report already recorded."""
    try:
        verdict = judge_report(e, ctx.obligations.get(e.unit), ctx.calendar)
    except ValueError as exc:
        raise BadInput(str(exc), code="invalid_period") from None
    recorded = await store.record_report(received_report(e, verdict))
    if recorded is None:
        return None  # this period's report was already received (a replay or a second copy)
    # the report the 督办 asked for is in: every 督办 about this period closes
    closed = await store.close_report_supervisions(e.unit, e.period, e.submitted_at)
    status = report_status(e, verdict, escalated_to=recorded.escalated_to, closed=closed, now=ctx.clock())
    await store.add_to_outbox([message_of(status)])
    return verdict


# --- timer jobs -----------------------------------------------------------------------------


async def fire_due(uow: UnitOfWork[EscalationStore], ctx: Context, now: datetime, limit: int) -> Firing:
    """Fire up to `limit` timers due at `now` in one transaction (:func:`plan_firing` says
    what each does); the firing has one entry per timer claimed."""
    async with uow.begin() as store:
        timers = await store.claim_due_timers(now, limit)
        if not timers:
            return Firing()
        stepping = sorted({t.petition_id for t in timers if t.kind == "escalate"})
        held = await store.count_open_supervisions(stepping) if stepping else {}
        firing = plan_firing(timers, now=now, ladder=ctx.ladder, calendar=ctx.calendar, open_supervisions=held)
        for c in firing.capped:
            log.warning(
                "petition %s holds %d open 督办 (max_open_supervisions_per_petition): ladder step %d"
                " of its %s clock (%s, %s) opens none", c.petition_id, c.held, c.step, c.clock, c.level,
                c.target_unit,
            )
        await store.mark_timers_fired(firing.fired, at=now, fired_by=ctx.instance_id)
        await store.mark_warned(firing.warned)
        await store.mark_breached(firing.breached)
        await store.add_ladder_timers(firing.next_steps)
        await store.open_supervisions(firing.supervisions)
        await store.add_fired_events(_messages(firing.events))
    return firing


@dataclass(frozen=True, slots=True)
class MissingReports:
    """Periods found missing, and the 督办 they opened."""

    missing: int = 0
    opened: int = 0


async def evaluate_zero_reports(uow: UnitOfWork[EscalationStore], ctx: Context, now: datetime) -> MissingReports:
    """Mark every period closed by `now` without a report as missing, one transaction per unit.

    A unit's first evaluation starts at the later of its obligation's ``since`` and `now`
    (:func:`evaluation_start`), so nothing that closed before the install is missing; from
    then on the instant evaluated up to persists, and periods that closed while the service
    was down are caught up. A unit another instance is evaluating is skipped."""
    missing = opened = 0
    for unit, ob in ctx.obligations.items():
        async with uow.begin() as store:
            after = await store.claim_report_cursor(unit, evaluation_start(ob, now))
            if after is None or after >= now:
                continue  # another instance is evaluating this unit (or nothing closed since)
            out: list[OutboxMessage] = []
            for m in plan_missing_reports(ob, after=after, now=now, ladder=ctx.ladder, calendar=ctx.calendar):
                if not await store.mark_period_missing(m.period):
                    continue  # reported (or already judged)
                if m.supervision is not None:
                    await store.open_supervisions([m.supervision])
                    opened += 1
                out.append(message_of(m.event))
            await store.advance_report_cursor(unit, now)
            await store.add_to_outbox(out)
            missing += len(out)
    return MissingReports(missing, opened)


async def fire_overdue_supervisions(
    uow: UnitOfWork[EscalationStore], ctx: Context, now: datetime, limit: int = OVERDUE_BATCH
) -> OverduePlan:
    """Escalate up to `limit` open 督办 whose own deadline passed by `now`, in one
    transaction: each is marked overdue and, below the province, followed by a 督办 for the
    unit above the one that let it lapse; its event goes to ``petition.sla`` for a
    petition's 督办, to ``zero_report.status`` for a missing report's."""
    async with uow.begin() as store:
        rows = await store.claim_overdue_supervisions(now, limit)
        if not rows:
            return OverduePlan()
        plan = plan_overdue_supervisions(rows, now=now, ladder=ctx.ladder, calendar=ctx.calendar)
        await store.mark_supervisions_overdue(plan.lapsed, now)
        await store.open_supervisions(plan.opened)
        await store.add_to_outbox(_messages(plan.events))
    return plan


async def next_timer_at(uow: UnitOfWork[EscalationStore]) -> datetime | None:
    """When the earliest pending timer falls due (None: no timer pending)."""
    async with uow.begin() as store:
        return await store.next_timer_at()


@dataclass(frozen=True, slots=True)
class Gauges:
    """What the gauges show: open clocks by (department, clock, state), open 督办 by level,
    三率 by (department, rate), and the units whose latest due report is missing."""

    open_clocks: dict[tuple[str, ...], float]
    open_supervisions: dict[tuple[str, ...], float]
    rates: dict[tuple[str, ...], float]
    missing_units: int


async def read_gauges(
    uow: UnitOfWork[EscalationStore], ctx: Context, now: datetime, *, rate_window: timedelta
) -> Gauges:
    """The gauges' values at `now`; 三率 over the clocks started in the last `rate_window`."""
    tallies: list[ClockTally] = []
    async with uow.begin() as store:
        clocks = await store.open_clock_counts()
        supervisions = await store.open_supervision_counts()
        for clock, reasons in RATE_CLOCKS.values():
            tallies += await store.rate_tallies(now=now, since=now - rate_window, clock=clock, reasons=reasons)
        missing_units = await store.units_missing_report(list(ctx.obligations), now)
    return Gauges(
        open_clocks={(c.department_code, c.clock, c.state): c.n for c in clocks},
        open_supervisions={(level,): n for level, n in supervisions.items()},
        rates={key: rate for key, rate in department_rates(tallies).items()},  # noqa: C416 - widens the key type
        missing_units=missing_units,
    )
