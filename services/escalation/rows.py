"""What the escalation store reads and writes, as plain frozen data.

The rows a handler loads (a clock, a due timer, a 督办 past its deadline, …) and the changes
it writes back (a clock armed, stopped, paused, …; timers fired; periods found missing).
Planning decides over the first and returns the second; the store (PostgreSQL or the
in-memory fake) turns each into its SQL or its table update. No I/O here: the standard
library, the domain's timer plan and the event contract of a 督办.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.escalation.domain.policy import PlannedTimer
from shared.events.escalation import SupervisionOrder

__all__ = [
    "ArmClock",
    "ClockChange",
    "ClockHead",
    "ClockKey",
    "ClockRow",
    "ClosedSupervision",
    "DueTimer",
    "ExtendClock",
    "FiredTimer",
    "MissingPeriod",
    "NextStep",
    "OpenClockCount",
    "OpenedSupervision",
    "PauseClock",
    "ReassignClock",
    "ReceivedReport",
    "RecordedReport",
    "RequestExtension",
    "ResumeClock",
    "StopClock",
    "SupervisionRow",
    "Warned",
]

# --- rows read ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClockHead:
    """What arming needs of a petition's existing clock."""

    clock: str
    assignment_no: int
    state: str


@dataclass(frozen=True, slots=True)
class ClockRow:
    """An open (not stopped) clock, as an action finds it."""

    petition_id: str
    clock: str
    policy: str
    department_code: str
    started_at: datetime
    due_at: datetime
    state: str
    paused_at: datetime | None = None
    remaining_seconds: float | None = None
    paused_seconds: float = 0.0
    extended_days: int | None = None
    extension_requested_days: int | None = None
    warned_fractions: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class DueTimer:
    """A pending timer due now, claimed with its clock (`current_due`, `clock_state`).

    `jurisdiction` is loaded for breaches and ladder steps only (warnings do not need it)."""

    id: int
    petition_id: str
    clock: str
    kind: str
    fraction: float
    step: int | None
    clock_due_at: datetime
    fire_at: datetime
    department_code: str
    current_due: datetime
    clock_state: str
    jurisdiction: Mapping[str, Any] | None = None
    #: the units the petition accuses (an accusation): no ladder step addresses their government
    accused: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SupervisionRow:
    """An open 督办 past its own deadline, as the overdue poller claims it."""

    id: uuid.UUID
    subject: str
    petition_id: str | None
    clock: str | None
    step: int
    level: str
    target_unit: str
    due_at: datetime
    report_unit: str | None = None
    report_period: str | None = None


@dataclass(frozen=True, slots=True)
class ClosedSupervision:
    """A 督办 a supervisor just closed."""

    target_unit: str
    level: str


@dataclass(frozen=True, slots=True)
class RecordedReport:
    """A unit's report recorded for its period (the first copy); `escalated_to` is the
    supervising unit a missing verdict had named, if the period was judged missing first."""

    escalated_to: str | None


@dataclass(frozen=True, slots=True)
class OpenClockCount:
    department_code: str
    clock: str
    state: str
    n: int


# --- changes written ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArmClock:
    """Start (or restart) a clock from scratch, with its timers."""

    petition_id: str
    clock: str
    policy: str
    department_code: str
    assignment_no: int
    started_at: datetime
    due_at: datetime
    calendar_missing: bool
    jurisdiction: Mapping[str, Any] | None
    timers: tuple[PlannedTimer, ...]
    accused: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReassignClock:
    """A clock that keeps counting through a reassignment: only its holder changes."""

    petition_id: str
    clock: str
    department_code: str
    assignment_no: int
    jurisdiction: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class StopClock:
    petition_id: str
    clock: str
    stopped_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class PauseClock:
    petition_id: str
    clock: str
    paused_at: datetime
    remaining_seconds: float


@dataclass(frozen=True, slots=True)
class ResumeClock:
    petition_id: str
    clock: str
    state: str
    due_at: datetime
    paused_seconds: float
    timers: tuple[PlannedTimer, ...]


@dataclass(frozen=True, slots=True)
class RequestExtension:
    petition_id: str
    clock: str
    days: int | None


@dataclass(frozen=True, slots=True)
class ExtendClock:
    """An approved extension; `timers` is None while the clock is paused (the resume plans
    them), and `remaining_seconds` None unless it is paused."""

    petition_id: str
    clock: str
    due_at: datetime
    extended_days: int
    state: str
    remaining_seconds: float | None
    timers: tuple[PlannedTimer, ...] | None


#: what a consumed event does to one clock
ClockChange = ArmClock | ReassignClock | StopClock | PauseClock | ResumeClock | RequestExtension | ExtendClock


@dataclass(frozen=True, slots=True)
class FiredTimer:
    """A claimed timer marked fired: how late, what firing it did (``event``, ``stale``,
    ``superseded``, ``capped``, ``unknown``), and the ladder steps it stood for."""

    id: int
    lateness_seconds: float
    outcome: str
    missed_steps: int = 0


@dataclass(frozen=True, slots=True)
class ClockKey:
    petition_id: str
    clock: str


@dataclass(frozen=True, slots=True)
class Warned:
    """Warning fractions fired for one clock in one firing (appended to its record)."""

    petition_id: str
    clock: str
    fractions: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class NextStep:
    """A ladder timer to plan: step `step` of the clock at `fire_at`."""

    petition_id: str
    clock: str
    step: int
    clock_due_at: datetime
    fire_at: datetime


@dataclass(frozen=True, slots=True)
class OpenedSupervision:
    """A 督办 to open, and the ladder steps it stands for (0 but for a caught-up step)."""

    order: SupervisionOrder
    missed_steps: int = 0


@dataclass(frozen=True, slots=True)
class ReceivedReport:
    """A unit's report for a period, with the verdict on it."""

    unit: str
    period: str
    status: str
    rule: str
    due_at: datetime | None
    closes_at: datetime | None
    submitted_at: datetime
    incidents: int
    submission_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class MissingPeriod:
    """A period closed without a report (recorded only if no report came first)."""

    unit: str
    period: str
    rule: str
    due_at: datetime
    closes_at: datetime
    escalated_to: str
