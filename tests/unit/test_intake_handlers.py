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
from services.intake.commands import ActionIn, CloseSupervisionIn, OpenSupervisionIn, PetitionIn, ZeroReportIn
from services.intake.reference import Reference, load_reference
from shared.errors import BadInput, Conflict, Forbidden, NotFound
from shared.events import PetitionActionTaken, PetitionSubmitted, ZeroReportSubmitted, parse_event
from shared.identity import Principal, Role
from shared.settings import Settings
from tests.fakes import FakeUnitOfWork
from tests.fakes.intake import FakeIntakeStore, IntakeDb

NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai, a Thursday
ACTION = TypeAdapter(ActionIn)
OPERATOR = Principal("op-1", Role.OPERATOR)
DESK = Principal("desk-1", Role.TRIAGE, frozenset({"TRIAGE"}))
SUPERVISOR_A3 = Principal("sup-a3", Role.SUPERVISOR, area="430103")


def clerk(*departments: str) -> Principal:
    return Principal(f"clerk-{departments[0]}", Role.DEPARTMENT, frozenset(departments))


def acting(unit: str) -> Principal:
    """Who acts in the name of `unit`: its clerk, the desk, or the A3 district's supervisor."""
    if unit == "TRIAGE":
        return DESK
    if unit.endswith("-GOV"):
        return SUPERVISOR_A3
    return clerk(unit)


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
    accepted, _ = await handlers.submit_petition(uow(db), ctx, OPERATOR, petition_in(), idempotency_key=None, now=NOW)
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
    accepted, new = await handlers.submit_petition(uow(db), ctx, OPERATOR, petition_in(), idempotency_key=None, now=NOW)
    assert new and accepted.status == "submitted" and accepted.tracking_code.startswith("XF-")
    assert db.petitions[accepted.id]["status"] == "submitted"
    assert db.contacts[accepted.id] == ("王女士", "13800000000", None, None)
    assert db.timeline_of(accepted.id) == ["submitted"]
    (event,) = events(db)
    assert isinstance(event, PetitionSubmitted) and event.petition_id == accepted.id
    assert event.petitioner_key and event.received_at == NOW
    assert "王女士".encode() not in db.outbox[0].value
    assert kicks == [1]


async def test_the_same_idempotency_key_answers_the_first_petition_and_refuses_another_body(
    db: IntakeDb, ctx: handlers.Intake
) -> None:
    first, new = await handlers.submit_petition(uow(db), ctx, OPERATOR, petition_in(), idempotency_key="call-1",
                                                now=NOW)
    again, new_again = await handlers.submit_petition(uow(db), ctx, OPERATOR, petition_in(),
                                                      idempotency_key="call-1", now=NOW)
    assert new and not new_again and again.id == first.id and len(db.petitions) == 1 and len(db.outbox) == 1
    with pytest.raises(Conflict) as refused:
        await handlers.submit_petition(uow(db), ctx, OPERATOR, petition_in(title="另一件事"),
                                       idempotency_key="call-1", now=NOW)
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
        await handlers.submit_petition(uow(db), ctx, OPERATOR, petition_in(**changes), idempotency_key=None, now=NOW)
    assert (refused.value.code, refused.value.field) == (code, field)
    assert not db.petitions and not db.outbox


async def test_an_outage_records_nothing(db: IntakeDb, ctx: handlers.Intake) -> None:
    db.faults.outages = 1
    with pytest.raises(ConnectionRefusedError):
        await handlers.submit_petition(uow(db), ctx, OPERATOR, petition_in(), idempotency_key=None, now=NOW)
    assert not db.petitions and not db.outbox and not db.contacts


# --- actions ------------------------------------------------------------------------------


def action(name: str, department: str = "A3-HOUSING", **extra: Any) -> Any:
    return ACTION.validate_python({"action": name, "department": department, **extra})


async def do(db: IntakeDb, ctx: handlers.Intake, ref: str, name: str, unit: str = "A3-HOUSING", *,
             who: Principal | None = None, **extra: Any) -> Any:
    """`name` taken on `ref` in the name of `unit` by `who` (by default whoever acts for it)."""
    return await handlers.act(uow(db), ctx, who or acting(unit), ref, action(name, unit, **extra), now=NOW)


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
    accepted = await do(db, ctx, pid, name, acting, **extra)
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
    await do(db, ctx, pid, "request_extension", note="需现场勘查")
    with pytest.raises(Forbidden) as clerk_decides:  # a department's clerk never decides extensions
        await do(db, ctx, pid, "approve_extension")
    assert clerk_decides.value.code == "role_cannot_act"
    with pytest.raises(Conflict) as own:  # nor may a supervisor in the holder's name
        await do(db, ctx, pid, "approve_extension", who=SUPERVISOR_A3)
    assert own.value.code == "not_supervisor"
    await do(db, ctx, pid, "approve_extension", "A3-GOV", extension_days=15)
    assert db.petitions[pid]["extension_state"] == "approved"
    for name, extra in (("request_extension", {"note": "再延一次"}), ("reject_extension", {"note": "不同意"})):
        with pytest.raises(Conflict) as again:
            await do(db, ctx, pid, name, "A3-GOV" if name != "request_extension" else "A3-HOUSING",
                     note=extra["note"])
        assert again.value.code in ("extension_already_requested", "no_pending_extension")


async def test_a_rejected_extension_and_a_pause_resumed_to_where_it_was(db: IntakeDb, ctx: handlers.Intake) -> None:
    pid = await submitted(db, ctx, status="accepted")
    await do(db, ctx, pid, "request_extension", note="需现场勘查")
    await do(db, ctx, pid, "reject_extension", "A3-GOV", note="理由不足")
    assert db.petitions[pid]["extension_state"] == "rejected"
    await do(db, ctx, pid, "pause", note="等待材料")
    resumed = await do(db, ctx, pid, "resume")
    assert resumed.status == "accepted" == db.petitions[pid]["status"]


async def test_the_triage_desk_assigns_with_a_corrected_category(db: IntakeDb, ctx: handlers.Intake) -> None:
    pid = await submitted(db, ctx, holder="TRIAGE", status="triage")
    done = await do(db, ctx, pid, "assign", "TRIAGE", target_department="A3-URBAN", category="城乡建设")
    assert done.status == "triage"
    (event,) = events(db)
    assert event.target_department_code == "A3-URBAN" and event.extra == {"category": "城乡建设"}


@pytest.mark.parametrize(
    ("start", "name", "acting", "extra", "error", "code"),
    [
        ("assigned", "accept", "A5-HOUSING", {}, NotFound, "not_found"),  # never assigned to it: it does not exist
        ("accepted", "accept", "A3-HOUSING", {}, Conflict, "invalid_state"),
        ("resolved", "resolve", "A3-HOUSING", {"note": "已办结"}, Conflict, "invalid_state"),
        ("assigned", "pause", "A3-HOUSING", {"note": "x"}, Conflict, "invalid_state"),
        ("accepted", "resume", "A3-HOUSING", {}, Conflict, "invalid_state"),
        ("accepted", "approve_extension", "A3-GOV", {}, Conflict, "no_pending_extension"),
        ("assigned", "assign", "A3-HOUSING", {"target_department": "A3-URBAN"}, Forbidden, "role_cannot_act"),
        ("triage", "assign", "TRIAGE", {"target_department": "A3-URBAN"}, None, None),  # the desk may
        ("assigned", "accept", "X9-NOWHERE", {}, BadInput, "unknown_unit"),
        ("triage", "assign", "TRIAGE", {"target_department": "Z9-HOUSING"}, BadInput, "unknown_department"),
        ("triage", "assign", "TRIAGE", {"target_department": "TRIAGE"}, BadInput, "unknown_department"),
    ],
)
async def test_every_refusal_changes_nothing(
    db: IntakeDb, ctx: handlers.Intake, start: str, name: str, acting: str, extra: dict[str, Any],
    error: type[Exception] | None, code: str | None,
) -> None:
    pid = await submitted(db, ctx, holder="TRIAGE" if start == "triage" else "A3-HOUSING", status=start)
    before = dict(db.petitions[pid]), list(db.timeline)
    if error is None:  # the control case: the same set-up, a permitted action
        await do(db, ctx, pid, name, acting, **extra)
        assert db.outbox
        return
    with pytest.raises(error) as refused:
        await do(db, ctx, pid, name, acting, **extra)
    assert refused.value.code == code  # type: ignore[attr-defined]  # a PetitionError
    assert (db.petitions[pid], db.timeline) == before and not db.outbox


async def test_an_action_on_an_unknown_petition_is_not_found(db: IntakeDb, ctx: handlers.Intake) -> None:
    with pytest.raises(NotFound):
        await do(db, ctx, "XF-NOPE", "accept")


async def test_a_former_holder_sees_the_petition_but_no_longer_acts_on_it(db: IntakeDb, ctx: handlers.Intake) -> None:
    pid = await submitted(db, ctx)  # assigned to A3-HOUSING, which returned it …
    db.routed(pid, "A3-URBAN", assignment_no=2)  # … and A3-URBAN holds it now
    shown = await views.petition(uow(db), ctx, clerk("A3-HOUSING"), pid)
    assert shown["department"]["code"] == "A3-URBAN"
    with pytest.raises(Conflict) as refused:
        await do(db, ctx, pid, "accept")
    assert refused.value.code == "not_holder"


@pytest.mark.parametrize(
    ("who", "unit", "error", "code"),
    [
        (Principal("clerk-x", Role.DEPARTMENT, frozenset({"A3-URBAN"})), "A3-HOUSING", Forbidden, "not_your_unit"),
        (OPERATOR, "A3-HOUSING", Forbidden, "role_cannot_act"),
        (Principal("adm-1", Role.ADMIN), "A3-HOUSING", Forbidden, "role_cannot_act"),
        (Principal("sup-b", Role.SUPERVISOR, area="430200"), "A3-GOV", Forbidden, "not_your_unit"),
    ],
)
async def test_a_caller_acts_only_in_the_name_of_its_own_units(
    db: IntakeDb, ctx: handlers.Intake, who: Principal, unit: str, error: type[Exception], code: str
) -> None:
    pid = await submitted(db, ctx, status="accepted")
    name = "approve_extension" if who.role is Role.SUPERVISOR else "accept"
    with pytest.raises(error) as refused:
        await do(db, ctx, pid, name, unit, who=who)
    assert refused.value.code == code  # type: ignore[attr-defined]  # a PetitionError
    assert not db.outbox


async def test_a_petition_is_found_by_tracking_code_and_shows_no_contact(db: IntakeDb, ctx: handlers.Intake) -> None:
    pid = await submitted(db, ctx)
    shown = await views.petition(uow(db), ctx, OPERATOR, db.petitions[pid]["tracking_code"])
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
    done = await handlers.close_supervision(uow(db), ctx, SUPERVISOR_A3, sid,
                                            CloseSupervisionIn(department="A3-GOV", note="已督促"), now=NOW)
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
        await handlers.close_supervision(uow(db), ctx, SUPERVISOR_A3, sid, CloseSupervisionIn(department=acting),
                                         now=NOW)
    assert refused.value.code == code and db.supervisions[sid] == before and not db.outbox


async def test_closing_an_unknown_supervision_order_is_not_found(db: IntakeDb, ctx: handlers.Intake) -> None:
    with pytest.raises(NotFound):
        await handlers.close_supervision(uow(db), ctx, SUPERVISOR_A3, uuid.uuid4(),
                                         CloseSupervisionIn(department="A3-GOV"), now=NOW)


# --- zero reports -------------------------------------------------------------------------


async def test_a_zero_report_is_taken_once_per_period(db: IntakeDb, ctx: handlers.Intake) -> None:
    report = ZeroReportIn(unit="A3-S01", period="2026-12-02", incidents=[])
    first = await handlers.submit_zero_report(uow(db), ctx, clerk("A3-S01"), report, now=NOW, today=date(2026, 12, 3))
    again = await handlers.submit_zero_report(uow(db), ctx, clerk("A3-S01"), report, now=NOW, today=date(2026, 12, 3))
    assert first.id == again.id and len(db.outbox) == 1
    (event,) = events(db)
    assert isinstance(event, ZeroReportSubmitted) and event.incidents == () and str(event.submission_id) == first.id
    with pytest.raises(Conflict) as other:
        await handlers.submit_zero_report(uow(db), ctx, clerk("A3-S01"), ZeroReportIn(
            unit="A3-S01", period="2026-12-02", incidents=["某小区发生纠纷"]),
                                          now=NOW, today=date(2026, 12, 3))
    assert other.value.code == "already_submitted"
    compliance = await views.zero_report_compliance(uow(db), ctx, clerk("A3-S01"), "A3-S01", None)
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
        await handlers.submit_zero_report(uow(db), ctx, clerk(unit), ZeroReportIn(unit=unit, period=period,
                                                                                  incidents=[]),
                                          now=NOW, today=date(2026, 12, 3))
    assert refused.value.code == code and not db.zero_submissions and not db.outbox


# --- identity: who may do what, what leaves intake ------------------------------------------


@pytest.mark.parametrize("who", [clerk("A3-HOUSING"), DESK, SUPERVISOR_A3, Principal("aud-1", Role.AUDITOR),
                                 Principal("adm-1", Role.ADMIN)])
async def test_only_an_operator_takes_petitions_in(db: IntakeDb, ctx: handlers.Intake, who: Principal) -> None:
    with pytest.raises(Forbidden):
        await handlers.submit_petition(uow(db), ctx, who, petition_in(), idempotency_key=None, now=NOW)
    assert not db.petitions and not db.outbox


async def test_the_operator_is_recorded_and_personal_numbers_leave_intake_masked(
    db: IntakeDb, ctx: handlers.Intake
) -> None:
    body = petition_in(content="请回电13912345678，身份证430103199001011234。",
                       location={"address": "A3区某路8号 0731-84561234"})
    accepted, _ = await handlers.submit_petition(uow(db), ctx, OPERATOR, body, idempotency_key=None, now=NOW)
    stored = db.petitions[accepted.id]
    assert stored["submitted_by"] == "op-1" and "13912345678" in stored["content"]  # intake keeps the original
    (event,) = events(db)
    assert event.actor.subject == "op-1" and event.actor.role == "operator"
    wire = db.outbox[0].value.decode()
    for number in ("13912345678", "430103199001011234", "84561234", "13800000000"):
        assert number not in wire
    assert "139****5678" in event.content and "0731-******34" in (event.location.address or "")
    shown = await views.petition(uow(db), ctx, OPERATOR, accepted.id)
    assert "13912345678" not in repr(shown) and "139****5678" in shown["content"]


async def test_an_idempotency_key_is_the_callers_own(db: IntakeDb, ctx: handlers.Intake) -> None:
    first, _ = await handlers.submit_petition(uow(db), ctx, OPERATOR, petition_in(), idempotency_key="k1", now=NOW)
    other, new = await handlers.submit_petition(uow(db), ctx, Principal("op-2", Role.OPERATOR), petition_in(),
                                                idempotency_key="k1", now=NOW)
    assert new and other.id != first.id


async def test_an_action_names_its_actor_and_masks_its_note(db: IntakeDb, ctx: handlers.Intake) -> None:
    pid = await submitted(db, ctx, status="accepted")
    await do(db, ctx, pid, "resolve", note="已电话13912345678联系信访人")
    (event,) = events(db)
    assert event.actor.subject == "clerk-A3-HOUSING" and event.actor.role == "department"
    assert event.note == "已电话139****5678联系信访人"
    assert db.timeline[-1]["detail"]["note"] == event.note and db.timeline[-1]["detail"]["actor"] == "clerk-A3-HOUSING"


@pytest.mark.parametrize(
    ("who", "outcome"),
    [
        (clerk("A3-URBAN"), "shown"),  # the holding department
        (OPERATOR, "shown"),  # the operator who took it in
        (SUPERVISOR_A3, "shown"),  # a supervisor of its area
        (clerk("A3-HOUSING"), Forbidden),  # held it before: sees it, not its petitioner
        (Principal("op-2", Role.OPERATOR), Forbidden),  # another operator
        (Principal("sup-b", Role.SUPERVISOR, area="430200"), NotFound),  # another area: no such petition
        (clerk("A5-URBAN"), NotFound),
        (Principal("aud-1", Role.AUDITOR), Forbidden),  # never sees contacts
    ],
)
async def test_contacts_are_revealed_with_a_reason_to_those_entitled_and_each_reveal_is_audited(
    db: IntakeDb, ctx: handlers.Intake, who: Principal, outcome: Any
) -> None:
    pid = await submitted(db, ctx)  # held by A3-HOUSING, which returned it …
    db.routed(pid, "A3-URBAN", assignment_no=2)  # … to A3-URBAN
    if outcome == "shown":
        found = await handlers.reveal_contacts(uow(db), ctx, who, pid, "回访信访人", now=NOW)
        assert (found["name"], found["phone"]) == ("王女士", "13800000000")
        (entry,) = db.audit_log
        assert (entry["subject"], entry["role"], entry["petition_id"], entry["reason"]) == (
            who.subject, who.role.value, pid, "回访信访人")
        log = await views.audit_log(uow(db), Principal("aud-1", Role.AUDITOR), pid, 10)
        assert [e["id"] for e in log["items"]] == [found["audit_id"]]
        return
    with pytest.raises(outcome):
        await handlers.reveal_contacts(uow(db), ctx, who, pid, "想看看", now=NOW)
    assert not db.audit_log


@pytest.mark.parametrize("who", [OPERATOR, clerk("A3-HOUSING"), SUPERVISOR_A3, Principal("adm-1", Role.ADMIN)])
async def test_only_auditors_read_the_audit_log(db: IntakeDb, ctx: handlers.Intake, who: Principal) -> None:
    with pytest.raises(Forbidden):
        await views.audit_log(uow(db), who, None, 10)


@pytest.mark.parametrize(
    ("who", "sees"),
    [
        (clerk("A-HOUSING"), True),  # the city bureau that handles it
        (Principal("sup-a", Role.SUPERVISOR, area="430100"), True),  # the city's supervisor
        (OPERATOR, True),
        (clerk("A3-HOUSING"), False),  # the accused bureau
        (clerk("A3-GOV"), False),  # its own government
        (clerk("A-HOUSING", "A3-URBAN"), False),  # whatever else the token holds
        (SUPERVISOR_A3, False),  # the accused government's supervisor
    ],
)
async def test_an_accusation_does_not_exist_for_the_accused_government(
    db: IntakeDb, ctx: handlers.Intake, who: Principal, sees: bool
) -> None:
    accepted, _ = await handlers.submit_petition(uow(db), ctx, OPERATOR, petition_in(kind="accusation"),
                                                 idempotency_key=None, now=NOW)
    db.routed(accepted.id, "A-HOUSING", accused=("A3-HOUSING",))
    db.assignments[(accepted.id, "A3-HOUSING")] = NOW  # even had it passed through the accused unit
    if sees:
        assert (await views.petition(uow(db), ctx, who, accepted.id))["id"] == accepted.id
        return
    with pytest.raises(NotFound):
        await views.petition(uow(db), ctx, who, accepted.id)
    with pytest.raises((NotFound, Forbidden)):
        await handlers.reveal_contacts(uow(db), ctx, who, accepted.id, "核实", now=NOW)


async def test_the_supervision_orders_of_a_unit_are_for_its_clerks_and_its_area(
    db: IntakeDb, ctx: handlers.Intake
) -> None:
    pid = await submitted(db, ctx)
    order(db, pid)  # addressed to A3-GOV
    taken, _ = await handlers.submit_petition(uow(db), ctx, OPERATOR, petition_in(kind="accusation"),
                                              idempotency_key=None, now=NOW)
    accusation = taken.id
    db.routed(accusation, "A-HOUSING", accused=("A3-URBAN",))
    order(db, accusation)  # a 督办 about an accusation of an A3 unit, wrongly addressed to A3-GOV
    for who in (clerk("A3-GOV"), SUPERVISOR_A3, Principal("sup-a", Role.SUPERVISOR, area="430100")):
        listed = await views.supervision_for(uow(db), ctx, who, "A3-GOV", "open", 50, now=NOW)
        pids = {i["petition_id"] for i in listed["items"]}
        assert pid in pids
        assert (accusation in pids) is (who.area == "430100")  # never to the accused's own government
    for who in (clerk("A3-HOUSING"), Principal("sup-b", Role.SUPERVISOR, area="430200"), OPERATOR):
        with pytest.raises(Forbidden):
            await views.supervision_for(uow(db), ctx, who, "A3-GOV", "open", 50, now=NOW)


async def test_a_supervisor_of_the_area_opens_a_supervision_order_addressed_to_the_holder(
    db: IntakeDb, ctx: handlers.Intake
) -> None:
    pid = await submitted(db, ctx, status="accepted")
    opening = await handlers.open_supervision(uow(db), ctx, SUPERVISOR_A3, pid,
                                              OpenSupervisionIn(department="A3-GOV", note="群众反映强烈，请加快办理"),
                                              now=NOW)
    assert opening.status == "opening"
    (event,) = events(db)
    assert (event.action.value, event.department_code, event.actor.subject) == ("open_supervision", "A3-GOV",
                                                                                 "sup-a3")
    assert event.extra == {"supervision_id": opening.id, "target_unit": "A3-HOUSING"}
    assert db.timeline_of(pid)[-1] == "open_supervision"


@pytest.mark.parametrize(
    ("who", "unit", "status", "error", "code"),
    [
        (clerk("A3-HOUSING"), "A3-HOUSING", "accepted", Forbidden, "role_cannot_act"),
        (OPERATOR, "A3-GOV", "accepted", Forbidden, "role_cannot_act"),
        (Principal("sup-b", Role.SUPERVISOR, area="430200"), "B-GOV", "accepted", NotFound, "not_found"),
        (Principal("sup-b", Role.SUPERVISOR, area="430200"), "A3-GOV", "accepted", Forbidden, "not_your_unit"),
        (SUPERVISOR_A3, "A3-GOV", "resolved", Conflict, "invalid_state"),
        # the petition is the A3 district's, but a city bureau holds it now
        (SUPERVISOR_A3, "A3-GOV", "accepted@A-HOUSING", Forbidden, "holder_outside_area"),
    ],
)
async def test_a_supervision_order_is_opened_only_by_a_supervisor_of_the_area_on_a_petition_being_handled(
    db: IntakeDb, ctx: handlers.Intake, who: Principal, unit: str, status: str, error: type[Exception], code: str
) -> None:
    status, _, holder = status.partition("@")
    pid = await submitted(db, ctx, holder=holder or "A3-HOUSING", status=status)
    with pytest.raises(error) as refused:
        await handlers.open_supervision(uow(db), ctx, who, pid, OpenSupervisionIn(department=unit, note="督促"),
                                        now=NOW)
    assert refused.value.code == code  # type: ignore[attr-defined]  # a PetitionError
    assert not db.outbox


async def test_a_consultation_answered_on_the_spot_is_resolved_at_once_and_goes_nowhere(
    db: IntakeDb, ctx: handlers.Intake
) -> None:
    answer = "公积金提取请携带身份证到服务大厅办理，电话13800001234。"
    accepted, new = await handlers.submit_petition(uow(db), ctx, OPERATOR, petition_in(), idempotency_key=None,
                                                   now=NOW, answered=answer)
    assert new and accepted.status == "resolved"
    assert db.petitions[accepted.id]["status"] == "resolved"
    assert not db.outbox  # nothing to route, no clocks to run
    assert db.timeline_of(accepted.id) == ["submitted", "resolve"]
    reply = next(t for t in db.timeline if t["event"] == "resolve")["detail"]
    masked_answer = "公积金提取请携带身份证到服务大厅办理，电话138****1234。"
    assert reply["note"] == masked_answer and reply["actor"] == OPERATOR.subject
    found = await views.public_status(uow(db), db.petitions[accepted.id]["tracking_code"])
    assert found is not None and (found["status"], found["reply"], found["unit"]) == (
        "已办结", masked_answer, None)
