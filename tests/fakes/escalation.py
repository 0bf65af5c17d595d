"""The escalation store in memory: :class:`FakeEscalationStore` implements
:class:`services.escalation.store.EscalationStore` on the tables of :class:`EscalationDb`.

Tables are dicts of rows (dicts keyed by column name, as the SQL names them), so a test
reads the end state the way it would query PostgreSQL. What the SQL does is done here by
hand: claims in due order, inserts that do nothing the second time, the upsert of a report
over a missing verdict. Locks are not modelled (one transaction at a time).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

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
from services.escalation.store import EscalationStore
from shared.messages import OutboxMessage
from tests.fakes import FakeDatabase, FakeTransaction

Row = dict[str, Any]


class EscalationDb(FakeDatabase):
    """The ``escalation`` schema's tables."""

    def __init__(self) -> None:
        super().__init__()
        self.clocks: dict[tuple[str, str], Row] = {}
        self.timers: dict[int, Row] = {}
        self.supervisions: dict[uuid.UUID, Row] = {}
        self.report_periods: dict[tuple[str, str], Row] = {}
        self.report_cursors: dict[str, datetime] = {}
        self.last_timer_id = 0

    def pending(self, petition_id: str | None = None) -> list[Row]:
        """Pending timers (of one petition), in due order."""
        return sorted((t for t in self.timers.values() if t["state"] == "pending"
                       and petition_id in (None, t["petition_id"])), key=lambda t: (t["fire_at"], t["id"]))


class FakeEscalationStore(FakeTransaction):
    db: EscalationDb

    def _clock(self, petition_id: str, clock: str) -> Row:
        return self.db.clocks[(petition_id, clock)]

    # --- a petition's clocks ---------------------------------------------------------------

    async def lock_clocks(self, petition_id: str) -> dict[str, ClockHead]:
        self.db.maybe_fail()
        return {c["clock"]: ClockHead(c["clock"], c["assignment_no"], c["state"])
                for (p, _), c in self.db.clocks.items() if p == petition_id}

    async def lock_open_clocks(self, petition_id: str) -> list[ClockRow]:
        self.db.maybe_fail()
        return [ClockRow(
            petition_id=c["petition_id"], clock=c["clock"], policy=c["policy"], department_code=c["department_code"],
            started_at=c["started_at"], due_at=c["due_at"], state=c["state"], paused_at=c["paused_at"],
            remaining_seconds=c["remaining_seconds"], paused_seconds=c["paused_seconds"],
            extended_days=c["extended_days"], extension_requested_days=c["extension_requested_days"],
            warned_fractions=tuple(c["warned_fractions"]),
        ) for (p, name), c in sorted(self.db.clocks.items()) if p == petition_id and c["state"] != "stopped"]

    async def arm_clock(self, change: ArmClock) -> None:
        c = change
        self.db.clocks[(c.petition_id, c.clock)] = {
            "petition_id": c.petition_id, "clock": c.clock, "policy": c.policy, "department_code": c.department_code,
            "assignment_no": c.assignment_no, "started_at": c.started_at, "due_at": c.due_at, "state": "running",
            "calendar_missing": c.calendar_missing, "stopped_at": None, "stop_reason": None, "paused_at": None,
            "remaining_seconds": None, "paused_seconds": 0.0, "extended_days": None,
            "extension_requested_days": None, "warned_fractions": [],
            "jurisdiction": dict(c.jurisdiction) if c.jurisdiction is not None else None,
            "accused": tuple(c.accused),
        }

    async def reassign_clock(self, change: ReassignClock) -> None:
        row = self._clock(change.petition_id, change.clock)
        row.update(department_code=change.department_code, assignment_no=change.assignment_no)
        if change.jurisdiction is not None:
            row["jurisdiction"] = dict(change.jurisdiction)

    async def stop_clock(self, change: StopClock) -> None:
        self._clock(change.petition_id, change.clock).update(
            state="stopped", stopped_at=change.stopped_at, stop_reason=change.reason)

    async def pause_clock(self, change: PauseClock) -> None:
        self._clock(change.petition_id, change.clock).update(
            state="paused", paused_at=change.paused_at, remaining_seconds=change.remaining_seconds)

    async def resume_clock(self, change: ResumeClock) -> None:
        self._clock(change.petition_id, change.clock).update(
            state=change.state, due_at=change.due_at, paused_at=None, remaining_seconds=None,
            paused_seconds=change.paused_seconds)

    async def request_extension(self, change: RequestExtension) -> None:
        self._clock(change.petition_id, change.clock)["extension_requested_days"] = change.days

    async def extend_clock(self, change: ExtendClock) -> None:
        row = self._clock(change.petition_id, change.clock)
        row.update(due_at=change.due_at, extended_days=change.extended_days, state=change.state)
        if change.remaining_seconds is not None:
            row["remaining_seconds"] = change.remaining_seconds

    async def cancel_timers(self, petition_id: str, clock: str) -> None:
        for t in self.db.timers.values():
            if t["petition_id"] == petition_id and t["clock"] == clock and t["state"] == "pending":
                t["state"] = "cancelled"

    def _add_timer(self, petition_id: str, clock: str, kind: str, fraction: float, step: int | None,
                   clock_due_at: datetime, fire_at: datetime) -> None:
        tid = self.db.last_timer_id = self.db.last_timer_id + 1
        self.db.timers[tid] = {
            "id": tid, "petition_id": petition_id, "clock": clock, "kind": kind, "fraction": fraction, "step": step,
            "clock_due_at": clock_due_at, "fire_at": fire_at, "state": "pending", "fired_at": None,
            "lateness_seconds": None, "fired_by": None, "outcome": None, "missed_steps": 0,
        }

    async def add_timers(
        self, petition_id: str, clock: str, clock_due_at: datetime, timers: Sequence[PlannedTimer]
    ) -> None:
        for t in timers:
            self._add_timer(petition_id, clock, t.kind, t.fraction, None, clock_due_at, t.fire_at)

    async def close_supervision(
        self, supervision_id: uuid.UUID, petition_id: str, *, closed_at: datetime, closed_by: str, note: str
    ) -> ClosedSupervision | None:
        s = self.db.supervisions.get(supervision_id)
        if (s is None or s["petition_id"] != petition_id or s["state"] != "open"
                or s["supervised_unit"] == closed_by):
            return None
        s.update(state="closed", closed_at=closed_at, closed_by=closed_by, close_note=note)
        return ClosedSupervision(s["target_unit"], s["level"])

    # --- zero reports ----------------------------------------------------------------------

    async def record_report(self, report: ReceivedReport) -> RecordedReport | None:
        r = report
        key = (r.unit, r.period)
        row = self.db.report_periods.get(key)
        if row is not None and row["submitted_at"] is not None:
            return None
        if row is None:
            row = self.db.report_periods[key] = {
                "unit": r.unit, "period": r.period, "due_at": r.due_at, "closes_at": r.closes_at,
                "escalated_to": None,
            }
        row.update(status=r.status, rule=r.rule, submitted_at=r.submitted_at, incidents=r.incidents,
                   submission_id=r.submission_id)
        return RecordedReport(row["escalated_to"])

    async def close_report_supervisions(self, unit: str, period: str, closed_at: datetime) -> list[uuid.UUID]:
        closed = []
        for s in self.db.supervisions.values():
            if (s["subject"] == "zero_report" and s["report_unit"] == unit and s["report_period"] == period
                    and s["state"] == "open"):
                s.update(state="closed", closed_at=closed_at, closed_by=unit, close_note="report received")
                closed.append(s["id"])
        return closed

    async def claim_report_cursor(self, unit: str, start: datetime) -> datetime | None:
        self.db.maybe_fail()
        return self.db.report_cursors.setdefault(unit, start)

    async def mark_period_missing(self, period: MissingPeriod) -> bool:
        p = period
        if (p.unit, p.period) in self.db.report_periods:
            return False
        self.db.report_periods[(p.unit, p.period)] = {
            "unit": p.unit, "period": p.period, "status": "missing", "rule": p.rule, "due_at": p.due_at,
            "closes_at": p.closes_at, "submitted_at": None, "incidents": 0, "escalated_to": p.escalated_to,
            "submission_id": None,
        }
        return True

    async def advance_report_cursor(self, unit: str, until: datetime) -> None:
        self.db.report_cursors[unit] = until

    # --- timers ----------------------------------------------------------------------------

    async def claim_due_timers(self, now: datetime, limit: int) -> list[DueTimer]:
        self.db.maybe_fail()
        due = [t for t in self.db.pending() if t["fire_at"] <= now
               and (t["petition_id"], t["clock"]) in self.db.clocks][:limit]
        out = []
        for t in due:
            c = self._clock(t["petition_id"], t["clock"])
            out.append(DueTimer(
                id=t["id"], petition_id=t["petition_id"], clock=t["clock"], kind=t["kind"], fraction=t["fraction"],
                step=t["step"], clock_due_at=t["clock_due_at"], fire_at=t["fire_at"],
                department_code=c["department_code"], current_due=c["due_at"], clock_state=c["state"],
                jurisdiction=c["jurisdiction"] if t["kind"] != "warning" else None,
                accused=tuple(c.get("accused") or ()) if t["kind"] != "warning" else (),
            ))
        return out

    async def count_open_supervisions(self, petition_ids: Sequence[str]) -> dict[str, int]:
        return dict(Counter(s["petition_id"] for s in self.db.supervisions.values()
                            if s["petition_id"] in petition_ids and s["state"] == "open"))

    async def mark_timers_fired(self, fired: Sequence[FiredTimer], *, at: datetime, fired_by: str) -> None:
        for f in fired:
            self.db.timers[f.id].update(state="fired", fired_at=at, lateness_seconds=f.lateness_seconds,
                                        fired_by=fired_by, outcome=f.outcome, missed_steps=f.missed_steps)

    async def mark_warned(self, warned: Sequence[Warned]) -> None:
        for w in warned:
            row = self._clock(w.petition_id, w.clock)
            if row["state"] == "running":
                row["state"] = "warned"
            row["warned_fractions"] = [*row["warned_fractions"], *w.fractions]

    async def mark_breached(self, clocks: Sequence[ClockKey]) -> None:
        for k in clocks:
            row = self._clock(k.petition_id, k.clock)
            if row["state"] in ("running", "warned"):
                row["state"] = "breached"

    async def add_ladder_timers(self, steps: Sequence[NextStep]) -> None:
        for s in steps:
            self._add_timer(s.petition_id, s.clock, "escalate", 1.0, s.step, s.clock_due_at, s.fire_at)

    async def open_supervisions(self, supervisions: Sequence[OpenedSupervision]) -> None:
        for s in supervisions:
            if s.order.id not in self.db.supervisions:
                self.db.supervisions[s.order.id] = {
                    **s.order.model_dump(), "missed_steps": s.missed_steps, "state": "open", "closed_at": None,
                    "closed_by": None, "close_note": None, "overdue_at": None,
                }

    async def add_fired_events(self, messages: Sequence[OutboxMessage]) -> None:
        await self.add_to_outbox(messages)

    async def next_timer_at(self) -> datetime | None:
        return min((t["fire_at"] for t in self.db.pending()), default=None)

    # --- lapsed 督办 ------------------------------------------------------------------------

    async def claim_overdue_supervisions(self, now: datetime, limit: int) -> list[SupervisionRow]:
        self.db.maybe_fail()
        due = sorted((s for s in self.db.supervisions.values()
                      if s["state"] == "open" and s["overdue_at"] is None and s["due_at"] <= now),
                     key=lambda s: s["due_at"])[:limit]
        return [SupervisionRow(
            id=s["id"], subject=s["subject"], petition_id=s["petition_id"], clock=s["clock"], step=s["step"],
            level=s["level"], target_unit=s["target_unit"], due_at=s["due_at"], report_unit=s["report_unit"],
            report_period=s["report_period"],
        ) for s in due]

    async def mark_supervisions_overdue(self, ids: Sequence[uuid.UUID], at: datetime) -> None:
        for i in ids:
            self.db.supervisions[i]["overdue_at"] = at

    # --- gauges ----------------------------------------------------------------------------

    async def open_clock_counts(self) -> list[OpenClockCount]:
        n = Counter((c["department_code"], c["clock"], c["state"]) for c in self.db.clocks.values()
                    if c["state"] != "stopped")
        return [OpenClockCount(d, k, s, count) for (d, k, s), count in n.items()]

    async def open_supervision_counts(self) -> dict[str, int]:
        return dict(Counter(s["level"] for s in self.db.supervisions.values() if s["state"] == "open"))

    async def rate_tallies(
        self, *, now: datetime, since: datetime, clock: str, reasons: Sequence[str]
    ) -> list[ClockTally]:
        met: Counter[str] = Counter()
        decided: Counter[str] = Counter()
        for c in self.db.clocks.values():
            if c["clock"] != clock or c["started_at"] < since:
                continue
            stopped = c["state"] == "stopped"
            met[c["department_code"]] += stopped and c["stop_reason"] in reasons and c["stopped_at"] <= c["due_at"]
            decided[c["department_code"]] += stopped or c["due_at"] <= now
        return [ClockTally(d, clock, met[d], decided[d]) for d in decided]

    async def units_missing_report(self, units: Sequence[str], now: datetime) -> int:
        latest: dict[str, Row] = {}
        for p in self.db.report_periods.values():
            if p["unit"] in units and p["due_at"] is not None and p["due_at"] <= now and (
                    p["unit"] not in latest or p["due_at"] > latest[p["unit"]]["due_at"]):
                latest[p["unit"]] = p
        return sum(p["status"] == "missing" for p in latest.values())


def fake_store(db: EscalationDb) -> EscalationStore:
    """The fake as the protocol (mypy checks it implements every operation)."""
    return FakeEscalationStore(db)
