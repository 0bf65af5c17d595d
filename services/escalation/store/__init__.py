"""The escalation service's store: the named operations its handlers use, in one transaction.

:class:`EscalationStore` is the interface (a :class:`shared.store.Transaction`, so the
consumer core's ledger, outbox and savepoints come with it); :class:`PgEscalationStore`
(:mod:`.postgres`) holds every statement of the service against PostgreSQL, and
``tests.fakes.escalation.FakeEscalationStore`` the same operations in memory. Rows come back
as the frozen dataclasses of :mod:`services.escalation.rows`, never as driver records.

What each implementation must keep:

* the claims skip what another transaction holds (``FOR UPDATE … SKIP LOCKED``): two
  instances never fire one timer, judge one unit's periods or escalate one 督办 twice;
* a clock read by :meth:`EscalationStore.lock_clocks` / :meth:`~EscalationStore.lock_open_clocks`
  stays locked to the transaction;
* an insert keyed by what it is about does nothing the second time (a 督办 by id, a
  period's verdict by unit and period, the first copy of a report).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from services.escalation.domain.policy import PlannedTimer
from services.escalation.domain.rates import ClockTally
from services.escalation.rows import (
    ArmClock,
    ClockHead,
    ClockKey,
    ClockRow,
    ClosedSupervision,
    DueTimer,
    ExtendClock,
    FiredTimer,
    MissingPeriod,
    NextStep,
    OpenClockCount,
    OpenedSupervision,
    PauseClock,
    ReassignClock,
    ReceivedReport,
    RecordedReport,
    RequestExtension,
    ResumeClock,
    StopClock,
    SupervisionRow,
    Warned,
)
from services.escalation.store.postgres import PgEscalationStore
from shared.messages import OutboxMessage
from shared.store import Transaction

__all__ = ["EscalationStore", "PgEscalationStore"]


class EscalationStore(Transaction, Protocol):
    """Clocks, timers, 督办 and zero-report periods, as the handlers change them."""

    # --- a petition's clocks (consumed events) ---------------------------------------------

    async def lock_clocks(self, petition_id: str) -> dict[str, ClockHead]:
        """The petition's clocks by name, locked."""
        ...

    async def lock_open_clocks(self, petition_id: str) -> list[ClockRow]:
        """The petition's clocks that are not stopped, locked, by clock name."""
        ...

    async def arm_clock(self, change: ArmClock) -> None:
        """Insert the clock, or start it again from scratch (running, nothing paused,
        extended or warned)."""
        ...

    async def reassign_clock(self, change: ReassignClock) -> None: ...

    async def stop_clock(self, change: StopClock) -> None: ...

    async def pause_clock(self, change: PauseClock) -> None: ...

    async def resume_clock(self, change: ResumeClock) -> None: ...

    async def request_extension(self, change: RequestExtension) -> None: ...

    async def extend_clock(self, change: ExtendClock) -> None: ...

    async def cancel_timers(self, petition_id: str, clock: str) -> None:
        """Cancel the clock's pending timers."""
        ...

    async def add_timers(
        self, petition_id: str, clock: str, clock_due_at: datetime, timers: Sequence[PlannedTimer]
    ) -> None:
        """Plan warning and breach timers for the clock due at `clock_due_at`."""
        ...

    async def close_supervision(
        self, supervision_id: uuid.UUID, petition_id: str, *, closed_at: datetime, closed_by: str, note: str
    ) -> ClosedSupervision | None:
        """Close the petition's open 督办 unless `closed_by` is the unit it supervises; None
        when there is no such open 督办 (unknown, another petition's, closed, or that unit)."""
        ...

    # --- zero reports ----------------------------------------------------------------------

    async def record_report(self, report: ReceivedReport) -> RecordedReport | None:
        """Record a report for its period (over a missing verdict); None when one was
        recorded already."""
        ...

    async def close_report_supervisions(self, unit: str, period: str, closed_at: datetime) -> list[uuid.UUID]:
        """Close every open 督办 about the unit's period (its report is in); their ids."""
        ...

    async def claim_report_cursor(self, unit: str, start: datetime) -> datetime | None:
        """The instant the unit's periods were judged up to (`start` the first time), locked;
        None while another transaction holds it."""
        ...

    async def mark_period_missing(self, period: MissingPeriod) -> bool:
        """Record the period as missing; False when it has a verdict already (reported)."""
        ...

    async def advance_report_cursor(self, unit: str, until: datetime) -> None: ...

    # --- timers ----------------------------------------------------------------------------

    async def claim_due_timers(self, now: datetime, limit: int) -> list[DueTimer]:
        """Up to `limit` pending timers due by `now`, earliest first, claimed with their clocks."""
        ...

    async def count_open_supervisions(self, petition_ids: Sequence[str]) -> dict[str, int]:
        """Open 督办 per petition (petitions with none left out)."""
        ...

    async def mark_timers_fired(self, fired: Sequence[FiredTimer], *, at: datetime, fired_by: str) -> None: ...

    async def mark_warned(self, warned: Sequence[Warned]) -> None:
        """Append the fractions to each clock's warned ones; a running clock becomes warned."""
        ...

    async def mark_breached(self, clocks: Sequence[ClockKey]) -> None:
        """Running or warned clocks become breached."""
        ...

    async def add_ladder_timers(self, steps: Sequence[NextStep]) -> None: ...

    async def open_supervisions(self, supervisions: Sequence[OpenedSupervision]) -> None: ...

    async def add_fired_events(self, messages: Sequence[OutboxMessage]) -> None:
        """The outbox rows of a firing (one set-based insert)."""
        ...

    async def next_timer_at(self) -> datetime | None:
        """When the earliest pending timer falls due."""
        ...

    # --- lapsed 督办 ------------------------------------------------------------------------

    async def claim_overdue_supervisions(self, now: datetime, limit: int) -> list[SupervisionRow]:
        """Up to `limit` open 督办 past their deadline by `now`, not yet found overdue."""
        ...

    async def mark_supervisions_overdue(self, ids: Sequence[uuid.UUID], at: datetime) -> None: ...

    # --- gauges ----------------------------------------------------------------------------

    async def open_clock_counts(self) -> list[OpenClockCount]:
        """Clocks not stopped, by department, clock and state."""
        ...

    async def open_supervision_counts(self) -> dict[str, int]:
        """Open 督办 by level."""
        ...

    async def rate_tallies(
        self, *, now: datetime, since: datetime, clock: str, reasons: Sequence[str]
    ) -> list[ClockTally]:
        """Per department, of the `clock` clocks started since `since`: those stopped by one
        of `reasons` by their deadline, and those stopped or past their deadline at `now`."""
        ...

    async def units_missing_report(self, units: Sequence[str], now: datetime) -> int:
        """Of `units`, those whose latest period due by `now` is missing."""
        ...

