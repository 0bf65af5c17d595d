"""What firing a batch of due timers does, decided without the database.

For each timer claimed with its clock, in order (:func:`plan_firing`):

* ``stale``: its clock was stopped, paused or moved since the timer was planned: nothing;
* ``superseded``: a warning found due after its deadline: nothing (the breach tells it);
* a warning: :class:`SlaWarning`, and its fraction recorded on the clock (which becomes
  ``warned``);
* a breach: :class:`SlaBreached`, the clock ``breached``, and ladder step 1 planned after
  the deadline;
* a ladder step: the step reached by now fires once (:func:`catch_up`), standing for the
  steps it missed, and the next is planned after now; it opens a 督办 unless the petition
  holds ``max_open_supervisions_per_petition`` open ones already (``capped``: counted,
  nothing published, the ladder goes on). The cap counts the open 督办 loaded plus those
  this firing opens;
* any other kind: ``unknown``, nothing.

Each event's id is derived from its timer's id (a replay of the same timer writes the same
event), each 督办's id from the ladder timer that opened it.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.escalation.domain.ladder import Ladder, catch_up, opens_supervision, plan_step
from services.escalation.rows import ClockKey, DueTimer, FiredTimer, NextStep, OpenedSupervision, Warned
from shared.events import Envelope, SlaBreached, SlaWarning
from shared.events.escalation import SlaEscalated, SupervisionOrder
from shared.ids import EVENT_NAMESPACE
from shared.reference.calendar import WorkCalendar

__all__ = ["CappedStep", "Firing", "plan_firing"]


@dataclass(frozen=True, slots=True)
class CappedStep:
    """A ladder step that opened no 督办: the petition held `held` open ones already."""

    petition_id: str
    clock: str
    held: int
    step: int
    level: str
    target_unit: str


@dataclass(frozen=True, slots=True)
class Firing:
    """A batch of due timers fired: one :class:`FiredTimer` per timer claimed (in order), the
    clock changes, the ladder timers and 督办 to add, and the events to publish."""

    fired: tuple[FiredTimer, ...] = ()
    warned: tuple[Warned, ...] = ()
    breached: tuple[ClockKey, ...] = ()
    next_steps: tuple[NextStep, ...] = ()
    supervisions: tuple[OpenedSupervision, ...] = ()
    events: tuple[Envelope, ...] = ()
    capped: tuple[CappedStep, ...] = ()
    #: timers fired, by kind (``warning``, ``breach``, ``escalate``; ``stale``, ``superseded``, ``unknown``)
    by_kind: Mapping[str, int] = field(default_factory=dict)

    @property
    def missed_steps(self) -> int:
        return sum(f.missed_steps for f in self.fired)

    def warnings_by_clock(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for w in self.warned:
            out[w.clock] += len(w.fractions)
        return out

    def breaches_by_clock(self) -> Counter[str]:
        return Counter(b.clock for b in self.breached)

    def escalations_by_level(self) -> Counter[str]:
        return Counter(s.order.level for s in self.supervisions)


def plan_firing(
    timers: Sequence[DueTimer], *, now: datetime, ladder: Ladder, calendar: WorkCalendar,
    open_supervisions: Mapping[str, int],
) -> Firing:
    """Fire `timers` (claimed at `now`); `open_supervisions` counts the open 督办 of the
    petitions they step (committed before this firing)."""
    held_now = dict(open_supervisions)
    fired: list[FiredTimer] = []
    warned: dict[tuple[str, str], list[float]] = defaultdict(list)
    breached: list[ClockKey] = []
    next_steps: list[NextStep] = []
    supervisions: list[OpenedSupervision] = []
    events: list[Envelope] = []
    capped: list[CappedStep] = []
    by_kind: dict[str, int] = defaultdict(int)
    for t in timers:
        late = max((now - t.fire_at).total_seconds(), 0.0)
        missed = 0
        outcome = "event"
        pid, clock, kind = t.petition_id, t.clock, t.kind
        event_id = uuid.uuid5(EVENT_NAMESPACE, f"timer:{t.id}")
        if t.clock_state in ("stopped", "paused") or t.current_due != t.clock_due_at:
            outcome = "stale"  # a stale timer of a stopped, paused or moved clock
        elif kind == "warning" and now >= t.clock_due_at:
            outcome = "superseded"  # its deadline has passed: the breach, not a warning, tells it
        elif kind == "warning":
            events.append(SlaWarning(
                event_id=event_id, occurred_at=now, petition_id=pid, clock=clock, department_code=t.department_code,
                fraction=t.fraction, due_at=t.clock_due_at, lateness_seconds=late,
            ))
            warned[(pid, clock)].append(t.fraction)
        elif kind == "breach":
            events.append(SlaBreached(
                event_id=event_id, occurred_at=now, petition_id=pid, clock=clock, department_code=t.department_code,
                due_at=t.clock_due_at, lateness_seconds=late,
            ))
            breached.append(ClockKey(pid, clock))
            step = plan_step(ladder, 1, previous_at=t.clock_due_at, handling_unit=t.department_code,
                             jurisdiction=t.jurisdiction, calendar=calendar, accused=t.accused)
            next_steps.append(NextStep(pid, clock, 1, t.clock_due_at, step.fire_at))
        elif kind == "escalate":
            if t.step is None:
                raise ValueError(f"ladder timer {t.id} has no step")
            # planned for step t.step at t.fire_at: fire the step reached by now, once
            reached = catch_up(ladder, t.step, planned_at=t.fire_at, now=now, handling_unit=t.department_code,
                               jurisdiction=t.jurisdiction, calendar=calendar, accused=t.accused)
            step = reached.fire
            next_steps.append(NextStep(pid, clock, reached.following.step, t.clock_due_at, reached.following.fire_at))
            missed = reached.missed
            held = held_now.get(pid, 0)
            if not opens_supervision(ladder, held):
                outcome = "capped"
                capped.append(CappedStep(pid, clock, held, step.step, step.level, step.target_unit))
            else:
                held_now[pid] = held + 1
                supervision_id = uuid.uuid5(EVENT_NAMESPACE, f"supervision:{t.id}")
                supervision_due = ladder.supervision_due.after(now, calendar)
                events.append(SlaEscalated(
                    event_id=event_id, occurred_at=now, petition_id=pid, clock=clock,
                    department_code=t.department_code, step=step.step, level=step.level,
                    target_unit=step.target_unit, rule=step.rule, repeat=step.repeat, due_at=t.clock_due_at,
                    supervision_id=supervision_id, supervision_due_at=supervision_due, lateness_seconds=late,
                    missed_steps=reached.missed, missed_from_step=reached.first_missed,
                    missed_since=reached.missed_since, missed_estimated=reached.estimated,
                ))
                supervisions.append(OpenedSupervision(SupervisionOrder(
                    id=supervision_id, subject="petition", petition_id=pid, clock=clock, step=step.step,
                    level=step.level, target_unit=step.target_unit, supervised_unit=t.department_code,
                    rule=step.rule, opened_at=now, due_at=supervision_due,
                ), reached.missed))
        else:
            outcome = "unknown"
        fired.append(FiredTimer(t.id, late, outcome, missed))
        by_kind[outcome if outcome in ("stale", "superseded", "unknown") else kind] += 1
    return Firing(
        fired=tuple(fired),
        warned=tuple(Warned(p, c, tuple(f)) for (p, c), f in warned.items()),
        breached=tuple(breached),
        next_steps=tuple(next_steps),
        supervisions=tuple(supervisions),
        events=tuple(events),
        capped=tuple(capped),
        by_kind=dict(by_kind),
    )
