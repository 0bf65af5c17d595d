"""What a routed petition and an action do to its clocks, decided without the database.

* Routed: each clock of the policy the petition matches is armed (deadline from the
  calendar, warnings at the policy's fractions, the breach), unless it exists already: an
  older or repeated assignment changes nothing, a stopped clock stays stopped, a
  reassignment restarts a ``restart`` clock and only moves a ``keep`` clock to its new holder.
* Actions: a stopping action by the clock's holder stops it; ``pause`` (a pausable clock,
  running or warned) keeps the time left; ``resume`` continues with exactly that time and
  replans the warnings still to come; ``request_extension`` records the days asked for;
  ``approve_extension`` grants one extension, capped by the policy, and lifts a breach the
  new deadline is past. ``close_supervision`` is a 督办's and decided by the store's answer.

Every event gets its id derived from the action or assignment that caused it, so a replay
writes the same ids. Time is passed in (`now` stamps the events stamped at processing).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.escalation.domain import clockmath
from services.escalation.domain.deadlines import compute_due
from services.escalation.domain.policy import REOPEN, ClockSpec, PlannedTimer, PolicyBook, find_clock, plan_timers
from services.escalation.rows import (
    ArmClock,
    ClockChange,
    ClockHead,
    ClockRow,
    ClosedSupervision,
    ExtendClock,
    OpenedSupervision,
    PauseClock,
    ReassignClock,
    RequestExtension,
    ResumeClock,
    StopClock,
)
from shared.events import (
    ActionType,
    Envelope,
    PetitionActionTaken,
    PetitionRouted,
    SlaClockArmed,
    SlaClockStopped,
)
from shared.events.escalation import (
    SlaClockPaused,
    SlaClockResumed,
    SlaDeadlineExtended,
    SupervisionClosed,
    SupervisionOpened,
    SupervisionOrder,
)
from shared.ids import derived_event_id
from shared.reference.calendar import WorkCalendar

__all__ = ["CalendarGap", "PetitionPlan", "plan_action", "plan_routed", "supervision_closed", "timers_for"]


@dataclass(frozen=True, slots=True)
class CalendarGap:
    """A deadline computed into years the holiday calendar does not know (Mon-Fri taken).

    `years` is None where the computation does not say which (an extension)."""

    what: str
    years: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class PetitionPlan:
    """What one consumed petition event does: clock changes in order, the events to publish,
    the calendar gaps met, and the levels of the 督办 it closed."""

    changes: tuple[ClockChange, ...] = ()
    events: tuple[Envelope, ...] = ()
    calendar_gaps: tuple[CalendarGap, ...] = ()
    closed_levels: tuple[str, ...] = ()
    #: 督办 opened by a supervisor (the ladder's are the timers')
    opened: tuple[OpenedSupervision, ...] = ()

    @property
    def armed(self) -> tuple[str, ...]:
        return tuple(c.clock for c in self.changes if isinstance(c, ArmClock))

    @property
    def stopped(self) -> tuple[tuple[str, str], ...]:
        """(clock, reason) of each clock stopped."""
        return tuple((c.clock, c.reason) for c in self.changes if isinstance(c, StopClock))


def timers_for(
    started_at: datetime, due_at: datetime, fractions: tuple[float, ...], *,
    paused_total: timedelta = timedelta(0), warned: frozenset[float] = frozenset(),
) -> tuple[PlannedTimer, ...]:
    """A clock's warnings still to come and its breach: at their fractions of the whole span
    for a clock never paused nor warned, else over its active span, fired fractions left out."""
    if paused_total or warned:
        return (*(PlannedTimer("warning", f, at) for f, at in clockmath.replan_warnings(
            started_at=started_at, due_at=due_at, paused_total=paused_total, fractions=fractions,
            already_fired=warned,
        )), PlannedTimer("breach", 1.0, due_at))
    return tuple(plan_timers(started_at, due_at, fractions))


def _arm(
    e: PetitionRouted, spec: ClockSpec, policy_id: str, fractions: tuple[float, ...], calendar: WorkCalendar,
    now: datetime,
) -> tuple[ArmClock, SlaClockArmed, CalendarGap | None]:
    started_at = e.received_at if spec.starts == "received" else e.occurred_at
    deadline = compute_due(started_at, spec.amount, spec.unit, calendar)
    gap = None
    if deadline.calendar_missing:
        gap = CalendarGap(f"{spec.name} deadline of {e.petition_id}", tuple(sorted(deadline.unknown_years)))
    arm = ArmClock(
        petition_id=e.petition_id, clock=spec.name, policy=policy_id, department_code=e.department_code,
        assignment_no=e.assignment_no, started_at=started_at, due_at=deadline.due,
        calendar_missing=deadline.calendar_missing,
        jurisdiction=e.jurisdiction.model_dump() if e.jurisdiction else None,
        timers=timers_for(started_at, deadline.due, fractions), accused=tuple(e.accused_departments),
    )
    armed = SlaClockArmed(
        event_id=derived_event_id(e.event_id, f"armed:{spec.name}"), occurred_at=now, petition_id=e.petition_id,
        causation_id=e.event_id, clock=spec.name, policy=policy_id, department_code=e.department_code,
        started_at=started_at, due_at=deadline.due, calendar_missing=deadline.calendar_missing,
    )
    return arm, armed, gap


def plan_routed(
    e: PetitionRouted, existing: Mapping[str, ClockHead], *, policies: PolicyBook, calendar: WorkCalendar,
    now: datetime,
) -> PetitionPlan:
    """Arm or re-arm the clocks of the policy `e` matches, given the petition's clocks; a
    reopening (重办) arms the book's reopen clocks afresh, from the reopening."""
    if e.reason == "reopened":
        return _plan_reopened(e, existing, policies=policies, calendar=calendar, now=now)
    policy = policies.select(
        channel=e.channel.value, kind=e.kind.value if e.kind else None, priority=e.priority.value,
        category=e.category,
    )
    changes: list[ClockChange] = []
    events: list[Envelope] = []
    gaps: list[CalendarGap] = []
    for spec in policy.clocks:
        head = existing.get(spec.name)
        if head is not None and (head.assignment_no >= e.assignment_no or head.state == "stopped"):
            continue  # an older or repeated assignment; a stopped clock stays stopped
        if head is None or spec.on_reassign == "restart":
            arm, armed, gap = _arm(e, spec, policy.id, policies.warning_fractions, calendar, now)
            changes.append(arm)
            events.append(armed)
            if gap is not None:
                gaps.append(gap)
        else:
            changes.append(ReassignClock(
                petition_id=e.petition_id, clock=spec.name, department_code=e.department_code,
                assignment_no=e.assignment_no, jurisdiction=e.jurisdiction.model_dump() if e.jurisdiction else None,
            ))
    return PetitionPlan(tuple(changes), tuple(events), tuple(gaps))


def _plan_reopened(
    e: PetitionRouted, existing: Mapping[str, ClockHead], *, policies: PolicyBook, calendar: WorkCalendar,
    now: datetime,
) -> PetitionPlan:
    changes: list[ClockChange] = []
    events: list[Envelope] = []
    gaps: list[CalendarGap] = []
    for spec in policies.reopen:
        head = existing.get(spec.name)
        if head is not None and head.assignment_no >= e.assignment_no:
            continue  # this reopening (or a later assignment) armed it already
        arm, armed, gap = _arm(e, spec, REOPEN, policies.warning_fractions, calendar, now)
        changes.append(arm)
        events.append(armed)
        if gap is not None:
            gaps.append(gap)
    return PetitionPlan(tuple(changes), tuple(events), tuple(gaps))


def _stop(e: PetitionActionTaken, row: ClockRow, now: datetime) -> tuple[StopClock, SlaClockStopped]:
    return StopClock(e.petition_id, row.clock, e.occurred_at, e.action.value), SlaClockStopped(
        event_id=derived_event_id(e.event_id, f"stopped:{row.clock}"), occurred_at=now,
        petition_id=e.petition_id, causation_id=e.event_id, clock=row.clock, department_code=row.department_code,
        reason=e.action.value, due_at=row.due_at,
    )


def _pause(e: PetitionActionTaken, row: ClockRow) -> tuple[PauseClock, SlaClockPaused]:
    remaining = clockmath.pause_remaining(row.due_at, e.occurred_at).total_seconds()
    return PauseClock(e.petition_id, row.clock, e.occurred_at, remaining), SlaClockPaused(
        event_id=derived_event_id(e.event_id, f"paused:{row.clock}"), occurred_at=e.occurred_at,
        petition_id=e.petition_id, causation_id=e.event_id, clock=row.clock, department_code=row.department_code,
        due_at=row.due_at, remaining_seconds=remaining,
    )


def _resume(
    e: PetitionActionTaken, row: ClockRow, fractions: tuple[float, ...]
) -> tuple[ResumeClock, SlaClockResumed]:
    if row.paused_at is None:
        raise ValueError(f"clock {row.clock} of {row.petition_id} is paused without a pause time")
    resumed = clockmath.resume(
        paused_at=row.paused_at, remaining=timedelta(seconds=row.remaining_seconds or 0), resumed_at=e.occurred_at,
    )
    paused_total = timedelta(seconds=row.paused_seconds) + resumed.paused_for
    warned = frozenset(row.warned_fractions)
    change = ResumeClock(
        petition_id=e.petition_id, clock=row.clock, state="warned" if warned else "running", due_at=resumed.due_at,
        paused_seconds=paused_total.total_seconds(),
        timers=timers_for(row.started_at, resumed.due_at, fractions, paused_total=paused_total, warned=warned),
    )
    return change, SlaClockResumed(
        event_id=derived_event_id(e.event_id, f"resumed:{row.clock}"), occurred_at=e.occurred_at,
        petition_id=e.petition_id, causation_id=e.event_id, clock=row.clock, department_code=row.department_code,
        previous_due_at=row.due_at, due_at=resumed.due_at, paused_seconds=resumed.paused_for.total_seconds(),
    )


def _extend(
    e: PetitionActionTaken, row: ClockRow, spec: ClockSpec, fractions: tuple[float, ...], calendar: WorkCalendar
) -> tuple[ExtendClock, SlaDeadlineExtended, CalendarGap | None] | None:
    requested = e.extra.get("extension_days")
    if not isinstance(requested, int):
        requested = row.extension_requested_days
    ext = clockmath.decide_extension(
        due_at=row.due_at, unit=spec.unit, max_days=spec.extension_max_days,
        already_extended=row.extended_days is not None, requested_days=requested, calendar=calendar,
    )
    if ext is None:
        return None  # the policy allows none, or the one extension was granted already
    warned = frozenset(row.warned_fractions)
    remaining: float | None = None
    timers: tuple[PlannedTimer, ...] | None = None
    state = row.state
    if state == "paused":
        remaining = (row.remaining_seconds or 0) + (ext.due_at - row.due_at).total_seconds()
    else:
        if state == "breached" and ext.due_at > e.occurred_at:
            state = "warned" if warned else "running"  # the extension lifts the breach
        timers = timers_for(row.started_at, ext.due_at, fractions,
                            paused_total=timedelta(seconds=row.paused_seconds), warned=warned)
    change = ExtendClock(e.petition_id, row.clock, ext.due_at, ext.granted_days, state, remaining, timers)
    extended = SlaDeadlineExtended(
        event_id=derived_event_id(e.event_id, f"extended:{row.clock}"), occurred_at=e.occurred_at,
        petition_id=e.petition_id, causation_id=e.event_id, clock=row.clock, department_code=row.department_code,
        approved_by=e.department_code, days=ext.granted_days, previous_due_at=row.due_at, due_at=ext.due_at,
        rule=ext.rule,
    )
    gap = CalendarGap(f"extension of {e.petition_id} {row.clock}") if ext.calendar_missing else None
    return change, extended, gap


def plan_action(
    e: PetitionActionTaken, clocks: Sequence[ClockRow], *, policies: PolicyBook, calendar: WorkCalendar,
    now: datetime,
) -> PetitionPlan:
    """What action `e` does to each of the petition's open `clocks` (in their order)."""
    changes: list[ClockChange] = []
    events: list[Envelope] = []
    gaps: list[CalendarGap] = []
    fractions = policies.warning_fractions
    for row in clocks:
        spec = find_clock(policies, row.policy, row.clock)
        if spec is None:
            continue  # the policy book no longer has this clock: leave it alone
        change: ClockChange
        event: Envelope
        if e.action.value in spec.stops_on and row.department_code == e.department_code:
            change, event = _stop(e, row, now)
        elif e.action is ActionType.PAUSE and spec.pausable and row.state in ("running", "warned"):
            change, event = _pause(e, row)
        elif e.action is ActionType.RESUME and row.state == "paused":
            change, event = _resume(e, row, fractions)
        elif e.action is ActionType.REQUEST_EXTENSION and spec.extension_max_days > 0:
            days = e.extra.get("extension_days")
            changes.append(RequestExtension(e.petition_id, row.clock, int(days) if isinstance(days, int) else None))
            continue
        elif e.action is ActionType.APPROVE_EXTENSION and spec.extension_max_days > 0:
            extended = _extend(e, row, spec, fractions, calendar)
            if extended is None:
                continue
            change, event, gap = extended
            if gap is not None:
                gaps.append(gap)
        else:
            continue
        changes.append(change)
        events.append(event)
    return PetitionPlan(tuple(changes), tuple(events), tuple(gaps))


def supervision_closed(
    e: PetitionActionTaken, supervision_id: uuid.UUID, closed: ClosedSupervision
) -> PetitionPlan:
    """The event of a 督办 closed by `e` (the store closed it: open, of this petition, and
    not closed by the unit it supervises)."""
    event = SupervisionClosed(
        event_id=derived_event_id(e.event_id, f"supervision_closed:{supervision_id}"), occurred_at=e.occurred_at,
        petition_id=e.petition_id, causation_id=e.event_id, supervision_id=supervision_id,
        target_unit=closed.target_unit, closed_by=e.department_code, note=e.note,
    )
    return PetitionPlan(events=(event,), closed_levels=(closed.level,))


#: the level of a 督办 a supervisor opened by hand (the ladder's levels are its steps')
MANUAL_LEVEL = "manual"


def supervision_opened(
    e: PetitionActionTaken, supervision_id: uuid.UUID, target_unit: str, due_at: datetime
) -> PetitionPlan:
    """A 督办 a supervisor opened on a petition (`e`, an ``open_supervision`` action),
    addressed to the department holding it and supervising it, due `due_at`."""
    order = SupervisionOrder(
        id=supervision_id, subject="petition", petition_id=e.petition_id, level=MANUAL_LEVEL,
        target_unit=target_unit, supervised_unit=target_unit, rule=f"manual:{e.department_code}",
        opened_at=e.occurred_at, due_at=due_at,
    )
    event = SupervisionOpened(
        event_id=derived_event_id(e.event_id, f"supervision_opened:{supervision_id}"), occurred_at=e.occurred_at,
        petition_id=e.petition_id, causation_id=e.event_id, supervision=order, opened_by=e.department_code,
        note=e.note,
    )
    return PetitionPlan(events=(event,), opened=(OpenedSupervision(order),))
