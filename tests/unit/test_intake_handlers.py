"""Intake's commands on the in-memory store: every action and every refusal, petitions with
and without an Idempotency-Key, 督办 closing, zero reports. Checked by end state: the store's
tables and the events in the outbox."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter

from services.intake import handlers, views
from services.intake.commands import ActionIn, CloseSupervisionIn, PetitionIn, ZeroReportIn
from services.intake.reference import Reference, load_reference
from shared.errors import BadInput, Conflict, NotFound
from shared.events import PetitionActionTaken, PetitionSubmitted, ZeroReportSubmitted, parse_event
from shared.settings import Settings
from tests.fakes import FakeUnitOfWork
from tests.fakes.intake import FakeIntakeStore, IntakeDb

NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai, a Thursday
ACTION = TypeAdapter(ActionIn)


class Fixed:
    def __init__(self, reference: Reference) -> None:
        self.current = reference


@pytest.fixture(scope="module")
def reference() -> Reference:
    return load_reference(Settings())


@pytest.fixture
def db() -> IntakeDb:
    return IntakeDb()


@pytest.fixture
def kicks() -> list[int]:
    return []


@pytest.fixture
def ctx(reference: Reference, kicks: list[int]) -> handlers.Intake:
    settings = Settings()
    return handlers.Intake(
        reference=Fixed(reference), hmac_key=b"k" * 32, received_at_earliest=settings.received_at_earliest,
        received_at_max_future_seconds=settings.received_at_max_future_seconds, kick=lambda: kicks.append(1),
    )


def uow(db: IntakeDb) -> FakeUnitOfWork[FakeIntakeStore]:
    return FakeUnitOfWork(db, FakeIntakeStore)


def petition_in(**changes: Any) -> PetitionIn:
    body: dict[str, Any] = {
        "title": "A3区某小区拆迁安置房迟迟不能交房",
        "content": "安置房承诺两年前交房，至今仍未建成。联系电话13800000000。",
        "channel": "hotline",
        "petitioner": {"name": "王女士", "phone": "13800000000"},
    }
    body.update(changes)
    return PetitionIn.model_validate(body)


async def submitted(db: IntakeDb, ctx: handlers.Intake, holder: str | None = "A3-HOUSING",
                    status: str = "assigned") -> str:
    accepted, _ = await handlers.submit_petition(uow(db), ctx, petition_in(), idempotency_key=None, now=NOW)
    if holder is not None:
        db.routed(accepted.id, holder, status=status)
    db.outbox.clear()
    return accepted.id


def events(db: IntakeDb) -> list[Any]:
    return [parse_event(m.value) for m in db.outbox]


# --- petitions ----------------------------------------------------------------------------


async def test_a_petition_is_recorded_with_its_event_and_no_personal_data_on_it(
    db: IntakeDb, ctx: handlers.Intake, kicks: list[int]
) -> None:
    accepted, new = await handlers.submit_petition(uow(db), ctx, petition_in(), idempotency_key=None, now=NOW)
    assert new and accepted.status == "submitted" and accepted.tracking_code.startswith("XF-")
    assert db.petitions[accepted.id]["status"] == "submitted"
    assert db.contacts[accepted.id] == ("王女士", "13800000000", None)
    assert db.timeline_of(accepted.id) == ["submitted"]
    (event,) = events(db)
    assert isinstance(event, PetitionSubmitted) and event.petition_id == accepted.id
    assert event.petitioner_key and event.received_at == NOW
    assert "王女士".encode() not in db.outbox[0].value
    assert kicks == [1]


async def test_the_same_idempotency_key_answers_the_first_petition_and_refuses_another_body(
    db: IntakeDb, ctx: handlers.Intake
) -> None:
    first, new = await handlers.submit_petition(uow(db), ctx, petition_in(), idempotency_key="call-1", now=NOW)
    again, new_again = await handlers.submit_petition(uow(db), ctx, petition_in(), idempotency_key="call-1", now=NOW)
    assert new and not new_again and again.id == first.id and len(db.petitions) == 1 and len(db.outbox) == 1
    with pytest.raises(Conflict) as refused:
        await handlers.submit_petition(uow(db), ctx, petition_in(title="另一件事"), idempotency_key="call-1", now=NOW)
    assert refused.value.code == "idempotency_key_reused" and len(db.petitions) == 1


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"location": {"admin_code": "999999"}}, "unknown_admin_code", "location.admin_code"),
        ({"received_at": "1999-12-31T23:00:00+08:00"}, "received_at_out_of_range", "received_at"),
        ({"received_at": (NOW + timedelta(minutes=10)).isoformat()}, "received_at_out_of_range", "received_at"),
    ],
)
async def test_a_petition_refused_at_the_door_changes_nothing(
    db: IntakeDb, ctx: handlers.Intake, changes: dict[str, Any], code: str, field: str
) -> None:
    with pytest.raises(BadInput) as refused:
        await handlers.submit_petition(uow(db), ctx, petition_in(**changes), idempotency_key=None, now=NOW)
    assert (refused.value.code, refused.value.field) == (code, field)
    assert not db.petitions and not db.outbox


async def test_an_outage_records_nothing(db: IntakeDb, ctx: handlers.Intake) -> None:
    db.faults.outages = 1
    with pytest.raises(ConnectionRefusedError):
        await handlers.submit_petition(uow(db), ctx, petition_in(), idempotency_key=None, now=NOW)
    assert not db.petitions and not db.outbox and not db.contacts


# --- actions ------------------------------------------------------------------------------


def action(name: str, department: str = "A3-HOUSING", **extra: Any) -> Any:
    return ACTION.validate_python({"action": name, "department": department, **extra})


@pytest.mark.parametrize(
    ("start", "name", "extra", "acting", "status", "extension"),
    [
        ("assigned", "accept", {}, "A3-HOUSING", "accepted", None),
        ("accepted", "return", {"note": "不属本局职责"}, "A3-HOUSING", "returned", None),
        ("assigned", "return", {"note": "不属本局职责"}, "A3-HOUSING", "returned", None),
        ("accepted", "resolve", {"note": "已办结"}, "A3-HOUSING", "resolved", None),
        ("assigned", "contact", {}, "A3-HOUSING", "assigned", None),
        ("accepted", "request_extension", {"note": "需现场勘查", "extension_days": 20}, "A3-HOUSING",
         "accepted", "requested"),
        ("accepted", "pause", {"note": "等待信访人补充材料"}, "A3-HOUSING", "paused", None),
    ],
)
async def test_every_action_of_the_holder_leads_where_its_rule_says(
    db: IntakeDb, ctx: handlers.Intake, start: str, name: str, extra: dict[str, Any], acting: str, status: str,
    extension: str | None,
) -> None:
    pid = await submitted(db, ctx, status=start)
    accepted = await handlers.act(uow(db), ctx, pid, action(name, acting, **extra), now=NOW)
    assert accepted.status == status == db.petitions[pid]["status"]
    assert db.petitions[pid]["extension_state"] == extension
    (event,) = events(db)
    assert isinstance(event, PetitionActionTaken)
    assert (event.action.value, event.department_code, event.assignment_no) == (name, acting, 1)
    if "extension_days" in extra:
        assert event.extra == {"extension_days": extra["extension_days"]}
    assert db.timeline_of(pid)[-1] == name


async def test_an_extension_is_decided_by_another_unit_once(db: IntakeDb, ctx: handlers.Intake) -> None:
    pid = await submitted(db, ctx, status="accepted")
    await handlers.act(uow(db), ctx, pid, action("request_extension", note="需现场勘查"), now=NOW)
    with pytest.raises(Conflict) as own:
        await handlers.act(uow(db), ctx, pid, action("approve_extension"), now=NOW)
    assert own.value.code == "not_supervisor"
    await handlers.act(uow(db), ctx, pid, action("approve_extension", "A3-GOV", extension_days=15), now=NOW)
    assert db.petitions[pid]["extension_state"] == "approved"
    for name, extra in (("request_extension", {"note": "再延一次"}), ("reject_extension", {"note": "不同意"})):
        with pytest.raises(Conflict) as again:
            await handlers.act(uow(db), ctx, pid, action(name, "A3-GOV" if name != "request_extension"
                                                         else "A3-HOUSING", **extra), now=NOW)
        assert again.value.code in ("extension_already_requested", "no_pending_extension")


async def test_a_rejected_extension_and_a_pause_resumed_to_where_it_was(db: IntakeDb, ctx: handlers.Intake) -> None:
    pid = await submitted(db, ctx, status="accepted")
    await handlers.act(uow(db), ctx, pid, action("request_extension", note="需现场勘查"), now=NOW)
    await handlers.act(uow(db), ctx, pid, action("reject_extension", "A3-GOV", note="理由不足"), now=NOW)
    assert db.petitions[pid]["extension_state"] == "rejected"
    await handlers.act(uow(db), ctx, pid, action("pause", note="等待材料"), now=NOW)
    resumed = await handlers.act(uow(db), ctx, pid, action("resume"), now=NOW)
    assert resumed.status == "accepted" == db.petitions[pid]["status"]


async def test_the_triage_desk_assigns_with_a_corrected_category(db: IntakeDb, ctx: handlers.Intake) -> None:
    pid = await submitted(db, ctx, holder="TRIAGE", status="triage")
    done = await handlers.act(uow(db), ctx, pid, action("assign", "TRIAGE", target_department="A3-URBAN",
                                                        category="城乡建设"), now=NOW)
    assert done.status == "triage"
    (event,) = events(db)
    assert event.target_department_code == "A3-URBAN" and event.extra == {"category": "城乡建设"}


@pytest.mark.parametrize(
    ("start", "name", "acting", "extra", "error", "code"),
    [
        ("assigned", "accept", "A5-HOUSING", {}, Conflict, "not_holder"),
        ("accepted", "accept", "A3-HOUSING", {}, Conflict, "invalid_state"),
        ("resolved", "resolve", "A3-HOUSING", {}, Conflict, "invalid_state"),
        ("assigned", "pause", "A3-HOUSING", {"note": "x"}, Conflict, "invalid_state"),
        ("accepted", "resume", "A3-HOUSING", {}, Conflict, "invalid_state"),
        ("accepted", "approve_extension", "A3-GOV", {}, Conflict, "no_pending_extension"),
        ("assigned", "assign", "A3-HOUSING", {"target_department": "A3-URBAN"}, Conflict, "invalid_state"),
        ("assigned", "accept", "X9-NOWHERE", {}, BadInput, "unknown_unit"),
        ("triage", "assign", "TRIAGE", {"target_department": "Z9-HOUSING"}, BadInput, "unknown_department"),
        ("triage", "assign", "TRIAGE", {"target_department": "TRIAGE"}, BadInput, "unknown_department"),
    ],
)
async def test_every_refusal_changes_nothing(
    db: IntakeDb, ctx: handlers.Intake, start: str, name: str, acting: str, extra: dict[str, Any],
    error: type[Exception], code: str,
) -> None:
    pid = await submitted(db, ctx, holder="TRIAGE" if start == "triage" else "A3-HOUSING", status=start)
    before = dict(db.petitions[pid]), list(db.timeline)
    with pytest.raises(error) as refused:
        await handlers.act(uow(db), ctx, pid, action(name, acting, **extra), now=NOW)
    assert refused.value.code == code  # type: ignore[attr-defined]  # a PetitionError
    assert (db.petitions[pid], db.timeline) == before and not db.outbox


async def test_an_action_on_an_unknown_petition_is_not_found(db: IntakeDb, ctx: handlers.Intake) -> None:
    with pytest.raises(NotFound):
        await handlers.act(uow(db), ctx, "XF-NOPE", action("accept"), now=NOW)


async def test_a_petition_is_found_by_tracking_code_and_shows_no_contact(db: IntakeDb, ctx: handlers.Intake) -> None:
    pid = await submitted(db, ctx)
    shown = await views.petition(uow(db), db.petitions[pid]["tracking_code"])
    assert shown["id"] == pid and shown["department"] == {"code": "A3-HOUSING", "name": "A3-HOUSING"}
    assert "13800000000" not in repr(shown) and "王女士" not in repr(shown)


# --- 督办 ----------------------------------------------------------------------------------


def order(db: IntakeDb, pid: str | None, **changes: Any) -> uuid.UUID:
    sid = uuid.uuid4()
    db.supervisions[sid] = {
        "id": sid, "petition_id": pid, "clock": "resolution", "step": 1, "level": "superior_unit",
        "target_unit": "A3-GOV", "supervised_unit": "A3-HOUSING", "rule": "ladder:test", "opened_at": NOW,
        "due_at": NOW + timedelta(days=3), "overdue_at": None, "subject": "petition", "report_unit": None,
        "report_period": None, "parent_id": None, "state": "open", "close_requested_by": None,
        "closed_by": None, "closed_at": None, **changes,
    }
    return sid


async def test_a_supervisor_closes_a_supervision_order_through_the_escalation_service(
    db: IntakeDb, ctx: handlers.Intake
) -> None:
    pid = await submitted(db, ctx)
    sid = order(db, pid)
    done = await handlers.close_supervision(uow(db), ctx, sid, CloseSupervisionIn(department="A3-GOV", note="已督促"),
                                            now=NOW)
    assert done.status == "closing" and db.supervisions[sid]["close_requested_by"] == "A3-GOV"
    (event,) = events(db)
    assert event.action.value == "close_supervision" and event.extra == {"supervision_id": str(sid)}
    assert db.timeline_of(pid)[-1] == "close_supervision"


@pytest.mark.parametrize(
    ("changes", "acting", "code"),
    [
        ({"state": "closed"}, "A3-GOV", "already_closed"),
        ({"subject": "zero_report", "report_unit": "A3-S01", "report_period": "2026-12-02"}, "A3-GOV",
         "closes_on_report"),
        ({"close_requested_by": "A-GOV"}, "A3-GOV", "already_closing"),
        ({}, "A3-HOUSING", "not_supervisor"),
    ],
)
async def test_a_supervision_order_that_cannot_be_closed_now_stays(
    db: IntakeDb, ctx: handlers.Intake, changes: dict[str, Any], acting: str, code: str
) -> None:
    pid = await submitted(db, ctx)
    sid = order(db, pid, **changes)
    before = dict(db.supervisions[sid])
    with pytest.raises(Conflict) as refused:
        await handlers.close_supervision(uow(db), ctx, sid, CloseSupervisionIn(department=acting), now=NOW)
    assert refused.value.code == code and db.supervisions[sid] == before and not db.outbox


async def test_closing_an_unknown_supervision_order_is_not_found(db: IntakeDb, ctx: handlers.Intake) -> None:
    with pytest.raises(NotFound):
        await handlers.close_supervision(uow(db), ctx, uuid.uuid4(), CloseSupervisionIn(department="A3-GOV"), now=NOW)


# --- zero reports -------------------------------------------------------------------------


async def test_a_zero_report_is_taken_once_per_period(db: IntakeDb, ctx: handlers.Intake) -> None:
    report = ZeroReportIn(unit="A3-S01", period="2026-12-02", incidents=[])
    first = await handlers.submit_zero_report(uow(db), ctx, report, now=NOW, today=date(2026, 12, 3))
    again = await handlers.submit_zero_report(uow(db), ctx, report, now=NOW, today=date(2026, 12, 3))
    assert first.id == again.id and len(db.outbox) == 1
    (event,) = events(db)
    assert isinstance(event, ZeroReportSubmitted) and event.incidents == () and str(event.submission_id) == first.id
    with pytest.raises(Conflict) as other:
        await handlers.submit_zero_report(uow(db), ctx, ZeroReportIn(unit="A3-S01", period="2026-12-02",
                                                                     incidents=["某小区发生纠纷"]),
                                          now=NOW, today=date(2026, 12, 3))
    assert other.value.code == "already_submitted"
    compliance = await views.zero_report_compliance(uow(db), "A3-S01", None)
    assert [p["status"] for p in compliance["periods"]] == ["submitted"]


@pytest.mark.parametrize(
    ("unit", "period", "code"),
    [
        ("A3-HOUSING", "2026-12-02", "no_obligation"),
        ("A3-S01", "2026-12-05", "period_not_owed"),  # a Saturday: a workday cadence owes nothing
        ("A3-S01", "2026-12-04", "period_not_owed"),  # not opened yet on 2026-12-03
        ("A3-S01", "2026-10-15", "period_not_owed"),  # before the obligation's `since`
        ("A3-GOV", "2026-12", "period_not_owed"),  # monthly: not the unit's weekly cadence
    ],
)
async def test_a_report_for_a_period_not_owed_is_refused(db: IntakeDb, ctx: handlers.Intake, unit: str,
                                                         period: str, code: str) -> None:
    with pytest.raises(BadInput) as refused:
        await handlers.submit_zero_report(uow(db), ctx, ZeroReportIn(unit=unit, period=period, incidents=[]),
                                          now=NOW, today=date(2026, 12, 3))
    assert refused.value.code == code and not db.zero_submissions and not db.outbox
