"""Intake's read model on the in-memory store: it records what the events say (routing,
deadlines, 督办, zero-report verdicts), idempotently, and refuses events about petitions it
never received. Events from before a fact was added are recorded from what they do say."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.intake.readmodel.handlers import handlers
from shared.consumer import BatchProcessor
from shared.events import (
    Channel,
    PetitionRouted,
    SlaBreached,
    SlaClockArmed,
    SlaClockPaused,
    SlaClockResumed,
    SlaClockStopped,
    SlaDeadlineExtended,
    SlaEscalated,
    SupervisionOpened,
    SupervisionOrder,
    SupervisionOverdue,
    ZeroReportStatus,
    encode_event,
)
from shared.records import raw_message
from tests.fakes import FakeUnitOfWork
from tests.fakes.intake import FakeReadModelStore, IntakeDb

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
PID = "P-1"


def db_with_petition() -> IntakeDb:
    db = IntakeDb()
    db.petitions[PID] = {"id": PID, "tracking_code": "XF-1", "status": "submitted", "assignment_no": 0,
                         "department_code": None}
    return db


def processor(db: IntakeDb) -> BatchProcessor:
    return BatchProcessor(
        uow=FakeUnitOfWork(db, FakeReadModelStore), service="intake", consumer="intake-read-model",
        dead_letter_topic="deadletter.intake", handlers=handlers(triage_code=lambda: "TRIAGE"),
        min_backoff=0.001, max_backoff=0.01,
    )


async def feed(db: IntakeDb, *events: Any) -> None:
    messages = [raw_message(topic="petition.sla", partition=0, offset=i, key=b"k", value=encode_event(e))
                for i, e in enumerate(events)]
    await processor(db).process(messages)


def routed(n: int, department: str, **changes: Any) -> PetitionRouted:
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(), "occurred_at": T0 + timedelta(minutes=n), "petition_id": PID, "assignment_no": n,
        "category": "城乡建设", "department_code": department, "department_name": department, "rule": "r",
        "channel": Channel.HOTLINE, "received_at": T0, "triage": department == "TRIAGE",
    }
    fields.update(changes)
    return PetitionRouted(**fields)


async def test_the_latest_assignment_wins_and_a_resolved_petition_stays_resolved() -> None:
    db = db_with_petition()
    await feed(db, routed(2, "A3-URBAN"), routed(1, "A3-HOUSING"))  # out of order
    assert db.petitions[PID]["department_code"] == "A3-URBAN"
    db.petitions[PID]["status"] = "resolved"
    await feed(db, routed(3, "A3-GOV"))
    assert db.petitions[PID]["status"] == "resolved" and db.petitions[PID]["department_code"] == "A3-URBAN"
    assert db.timeline_of(PID) == ["reassigned", "routed", "reassigned"]


async def test_a_redelivered_event_records_nothing_twice() -> None:
    db = db_with_petition()
    event = routed(1, "A3-HOUSING")
    await feed(db, event)
    await feed(db, event)
    assert db.timeline_of(PID) == ["routed"]


async def test_an_event_about_an_unknown_petition_is_dead_lettered() -> None:
    db = IntakeDb()
    await feed(db, routed(1, "A3-HOUSING"))
    assert [d["reason"] for d in db.dead_letters()] == ["unknown_petition"]


def clock_event(cls: type, minutes: int, due: datetime, **fields: Any) -> Any:
    base: dict[str, Any] = {"event_id": uuid.uuid4(), "occurred_at": T0 + timedelta(minutes=minutes),
                            "petition_id": PID, "clock": "resolution", "department_code": "A3-HOUSING",
                            "due_at": due}
    base.update(fields)
    return cls(**base)


async def test_deadlines_follow_their_clock_through_breach_pause_resume_and_extension() -> None:
    db = db_with_petition()
    due = T0 + timedelta(days=60)
    later = due + timedelta(days=10)
    await feed(db, clock_event(SlaClockArmed, 0, due, policy="p", started_at=T0))
    await feed(db, clock_event(SlaBreached, 1, due))
    assert db.deadlines[(PID, "resolution")]["state"] == "breached"
    # an extension past now lifts the breach
    await feed(db, clock_event(SlaDeadlineExtended, 2, later, approved_by="A3-GOV", days=10, previous_due_at=due,
                               rule="x"))
    assert db.deadlines[(PID, "resolution")]["state"] == "running"
    await feed(db, clock_event(SlaClockPaused, 3, later, remaining_seconds=100.0))
    assert db.deadlines[(PID, "resolution")]["state"] == "paused"
    resumed_due = later + timedelta(days=1)
    await feed(db, clock_event(SlaClockResumed, 4, resumed_due, previous_due_at=later, paused_seconds=86400.0))
    assert db.deadlines[(PID, "resolution")]["due_at"] == resumed_due
    # a stop about the old deadline changes nothing; about the current one it stops the clock
    await feed(db, clock_event(SlaClockStopped, 5, later, reason="resolve"))
    assert db.deadlines[(PID, "resolution")]["state"] == "running"
    await feed(db, clock_event(SlaClockStopped, 6, resumed_due, reason="resolve"))
    assert db.deadlines[(PID, "resolution")]["state"] == "stopped"


def escalated(sid: uuid.UUID) -> SlaEscalated:
    return SlaEscalated(event_id=uuid.uuid4(), occurred_at=T0, petition_id=PID, clock="resolution",
                        department_code="A3-HOUSING", step=2, level="superior_unit", target_unit="A3-GOV",
                        rule="ladder", due_at=T0, supervision_id=sid, supervision_due_at=T0 + timedelta(days=3))


async def test_an_overdue_supervision_order_records_the_one_the_event_opened_above_it() -> None:
    db = db_with_petition()
    first, above = uuid.uuid4(), uuid.uuid4()
    await feed(db, escalated(first))
    at = T0 + timedelta(days=4)
    whole = SupervisionOrder(id=above, subject="petition", petition_id=PID, clock="resolution", step=2,
                             level="overdue", target_unit="A-GOV", supervised_unit="A3-GOV", rule="overdue:x",
                             opened_at=at, due_at=at + timedelta(days=3), parent_id=first)
    await feed(db, SupervisionOverdue(
        event_id=uuid.uuid4(), occurred_at=at, petition_id=PID, supervision_id=first, clock="resolution",
        level="superior_unit", target_unit="A3-GOV", due_at=T0 + timedelta(days=3), rule="overdue:x",
        escalated_to="A-GOV", escalated_supervision_id=above, escalated_due_at=at + timedelta(days=3),
        escalated_supervision=whole,
    ))
    assert db.supervisions[first]["overdue_at"] == at
    assert db.supervisions[above]["step"] == 2 and db.supervisions[above]["parent_id"] == first
    assert db.supervisions[above]["rule"] == "overdue:x"


async def test_an_overdue_event_from_before_the_whole_supervision_order_records_what_its_fields_say() -> None:
    db = db_with_petition()
    first, above = uuid.uuid4(), uuid.uuid4()
    await feed(db, escalated(first))
    at = T0 + timedelta(days=4)
    await feed(db, SupervisionOverdue(
        event_id=uuid.uuid4(), occurred_at=at, petition_id=PID, supervision_id=first, clock="resolution",
        level="superior_unit", target_unit="A3-GOV", due_at=T0 + timedelta(days=3), rule="overdue:x",
        escalated_to="A-GOV", escalated_supervision_id=above, escalated_due_at=at + timedelta(days=3),
    ))
    row = db.supervisions[above]
    assert (row["target_unit"], row["supervised_unit"], row["level"], row["parent_id"]) == (
        "A-GOV", "A3-GOV", "overdue", first)


def verdict(status: str, **changes: Any) -> ZeroReportStatus:
    fields: dict[str, Any] = {"event_id": uuid.uuid4(), "occurred_at": T0, "unit": "A3-S01", "period": "2026-11-30",
                              "status": status, "rule": f"{status}:x"}
    fields.update(changes)
    return ZeroReportStatus(**fields)


@pytest.mark.parametrize("named", [True, False])
async def test_a_received_report_closes_the_supervision_order_about_its_period(named: bool) -> None:
    db = IntakeDb()
    opened = SupervisionOrder(id=uuid.uuid4(), subject="zero_report", level="zero_report", target_unit="A3-GOV",
                              supervised_unit="A3-S01", rule="zero_report:missing", opened_at=T0,
                              due_at=T0 + timedelta(days=1), report_unit="A3-S01", report_period="2026-11-30")
    other = uuid.uuid4()
    await feed(db, verdict("missing", escalated_to="A3-GOV", supervision=opened, supervision_id=opened.id,
                           supervision_due_at=opened.due_at))
    db.supervisions[other] = {**db.supervisions[opened.id], "id": other, "report_period": "2026-11-29"}
    assert db.supervisions[opened.id]["state"] == "open"
    submitted = T0 + timedelta(days=1)
    await feed(db, verdict("late", occurred_at=submitted, submitted_at=submitted,
                           closed_supervision_ids=(opened.id,) if named else None))
    assert db.supervisions[opened.id]["state"] == "closed" and db.supervisions[opened.id]["closed_by"] == "A3-S01"
    assert db.supervisions[other]["state"] == "open"  # another period's stays open
    assert db.zero_status[("A3-S01", "2026-11-30")]["status"] == "late"
    assert db.zero_status[("A3-S01", "2026-11-30")]["escalated_to"] == "A3-GOV"  # kept from the earlier verdict


async def test_a_verdict_names_only_the_supervision_order_it_closed() -> None:
    db = IntakeDb()
    sid = uuid.uuid4()
    db.supervisions[sid] = {"id": sid, "subject": "zero_report", "report_unit": "A3-S01",
                            "report_period": "2026-11-30", "state": "open"}
    await feed(db, verdict("on_time", submitted_at=T0, closed_supervision_ids=()))
    assert db.supervisions[sid]["state"] == "open"  # the escalation service closed none: none closes here


async def test_the_supervision_orders_a_verdict_names_close_whatever_the_verdict() -> None:
    db = IntakeDb()
    sid = uuid.uuid4()
    db.supervisions[sid] = {"id": sid, "subject": "zero_report", "report_unit": "A3-S01",
                            "report_period": "2026-11-30", "state": "open"}
    # a report the unit did not owe is still a report: the escalation service closed the order
    await feed(db, verdict("unscheduled", submitted_at=T0, closed_supervision_ids=(sid,)))
    assert db.supervisions[sid]["state"] == "closed" and db.supervisions[sid]["closed_by"] == "A3-S01"


async def test_a_supervision_order_a_supervisor_opened_is_recorded_whole() -> None:
    db = db_with_petition()
    order = SupervisionOrder(id=uuid.uuid4(), subject="petition", petition_id=PID, level="manual",
                             target_unit="A3-HOUSING", supervised_unit="A3-HOUSING", rule="manual:A3-GOV",
                             opened_at=T0, due_at=T0 + timedelta(days=3))
    await feed(db, SupervisionOpened(event_id=uuid.uuid4(), occurred_at=T0, petition_id=PID, supervision=order,
                                     opened_by="A3-GOV", note="请加快"))
    row = db.supervisions[order.id]
    assert (row["level"], row["target_unit"], row["state"]) == ("manual", "A3-HOUSING", "open")
    assert db.timeline_of(PID) == ["supervision_opened"]
