"""A small world for the escalation handlers' unit tests: the in-memory store, a unit of work
on it, the handlers' context with the real policies, ladder and calendar, a clock the test
moves, and builders of the events the service consumes. End state is read from the fake's
tables and from the outbox, decoded."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.escalation import handlers
from services.escalation.app import load_ladder, load_policies
from services.escalation.domain.ladder import Ladder
from services.escalation.planning import Firing, PetitionPlan, ReportVerdict
from shared import topics
from shared.events import ActionType, Jurisdiction, PetitionActionTaken, PetitionRouted, parse_event
from shared.events.escalation import ZeroReportSubmitted
from shared.reference.calendar_source import load_calendar
from shared.reference.obligations import parse_obligations
from tests.fakes import FakeUnitOfWork
from tests.fakes.escalation import EscalationDb, FakeEscalationStore, Row

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: a Monday morning; the week has no holiday
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)
POLICIES = load_policies()
LADDER = load_ladder()
CALENDAR = load_calendar()
A3 = Jurisdiction(code="430103", name="A3区", level="district")

#: a street office reporting daily by 17:00 (closing two hours later) to its district government
OBLIGATIONS = parse_obligations({"version": 1, "obligations": [
    {"unit": "A3-S01", "supervising_unit": "A3-GOV", "cadence": "daily", "cutoff": "17:00",
     "grace": {"amount": 2, "unit": "hour"}, "since": "2026-11-01"},
]})


class World:
    def __init__(self, *, ladder: Ladder = LADDER, now: datetime = T0) -> None:
        self.db = EscalationDb()
        self.uow = FakeUnitOfWork(self.db, FakeEscalationStore)
        self.now = now
        self.ctx = handlers.Context(policies=POLICIES, ladder=ladder, calendar=CALENDAR, obligations=OBLIGATIONS,
                                    instance_id="escalation-test", clock=lambda: self.now)

    # --- consumed events -------------------------------------------------------------------

    async def routed(
        self, pid: str = "p-1", *, assignment_no: int = 1, department: str = "A3-HOUSING", channel: str = "hotline",
        kind: str | None = None, priority: str = "normal", received_at: datetime | None = None,
        at: datetime | None = None, event_id: uuid.UUID | None = None,
    ) -> tuple[PetitionRouted, PetitionPlan]:
        e = PetitionRouted.model_validate({
            "event_id": event_id or uuid.uuid4(), "occurred_at": at or self.now, "petition_id": pid,
            "assignment_no": assignment_no, "category": "城乡建设", "department_code": department,
            "department_name": department, "jurisdiction": A3, "rule": "test", "channel": channel, "kind": kind,
            "priority": priority, "received_at": received_at or self.now,
        })
        async with self.uow.begin() as store:
            return e, await handlers.on_routed(store, self.ctx, e)

    async def act(
        self, action: str, *, pid: str = "p-1", department: str = "A3-HOUSING", at: datetime | None = None,
        note: str = "", **extra: Any,
    ) -> tuple[PetitionActionTaken, PetitionPlan]:
        e = PetitionActionTaken(event_id=uuid.uuid4(), occurred_at=at or self.now, petition_id=pid,
                                action=ActionType(action), department_code=department, note=note, extra=extra)
        async with self.uow.begin() as store:
            return e, await handlers.on_action(store, self.ctx, e)

    async def report(
        self, period: str, *, unit: str = "A3-S01", at: datetime | None = None, incidents: tuple[str, ...] = (),
    ) -> tuple[ZeroReportSubmitted, ReportVerdict | None]:
        e = ZeroReportSubmitted(event_id=uuid.uuid4(), occurred_at=at or self.now, unit=unit, period=period,
                                incidents=incidents, submitted_at=at or self.now, submission_id=uuid.uuid4())
        async with self.uow.begin() as store:
            return e, await handlers.on_zero_report(store, self.ctx, e)

    # --- timer jobs ------------------------------------------------------------------------

    async def fire(self, at: datetime, limit: int = 1000) -> Firing:
        self.now = at
        return await handlers.fire_due(self.uow, self.ctx, at, limit)

    async def evaluate(self, at: datetime) -> handlers.MissingReports:
        self.now = at
        return await handlers.evaluate_zero_reports(self.uow, self.ctx, at)

    async def fire_until(self, at: datetime) -> list[Firing]:
        """Fire every timer due by `at` in due order, one instant at a time."""
        out = []
        while (due := [t for t in self.db.pending() if t["fire_at"] <= at]):
            out.append(await self.fire(due[0]["fire_at"]))
        return out

    # --- end state -------------------------------------------------------------------------

    def clock(self, name: str, pid: str = "p-1") -> Row:
        return self.db.clocks[(pid, name)]

    def pending(self, name: str, pid: str = "p-1") -> list[Row]:
        return [t for t in self.db.pending(pid) if t["clock"] == name]

    def events(self, topic: str = topics.PETITION_SLA, event_type: str | None = None) -> list[Any]:
        """The outbox's messages on `topic`, decoded (checking each is keyed as it must be)."""
        out = []
        for m in self.db.messages(topic):
            e = parse_event(m.value)
            assert m.key == (e.unit if topic == topics.ZERO_REPORT_STATUS else e.petition_id).encode()
            if event_type in (None, e.event_type):
                out.append(e)
        return out

    def clear_outbox(self) -> None:
        self.db.outbox.clear()


def hours(n: float) -> timedelta:
    return timedelta(hours=n)
