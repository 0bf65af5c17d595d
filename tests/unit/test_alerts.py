"""Early warning (预警) on intake's side, on the in-memory stores: the read model keeps each
alert's highest version and records incident links; a supervisor reads its area's alerts and
nobody else does; a supervisor unlinks a petition from its incident, once, and the alert stops
listing it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter

from services.intake import handlers, views
from services.intake.commands import ActionIn
from services.intake.domain.access import AreaScope
from services.intake.domain.alerts import alert_in_scope, listed_petitions, supersedes
from services.intake.readmodel.handlers import handlers as read_model_handlers
from services.intake.reference import Reference, load_reference
from shared import topics
from shared.consumer import BatchProcessor
from shared.errors import Conflict, Forbidden
from shared.events import ActionType, IncidentLinked, PetitionActionTaken, WatchAlert, encode_event, parse_event
from shared.identity import Principal, Role
from shared.records import raw_message
from shared.settings import Settings
from tests.fakes import FakeUnitOfWork
from tests.fakes.intake import FakeIntakeStore, FakeReadModelStore, IntakeDb
from tests.unit.test_intake_handlers import OPERATOR, Fixed, petition_in

T0 = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
ACTION = TypeAdapter[Any](ActionIn)
SUPERVISOR_A3 = Principal("sup-a3", Role.SUPERVISOR, area="430103")  # a district of A city
SUPERVISOR_A = Principal("sup-a", Role.SUPERVISOR, area="430100")  # A city
SUPERVISOR_B = Principal("sup-b", Role.SUPERVISOR, area="430200")  # B city
SUPERVISOR_P = Principal("sup-p", Role.SUPERVISOR, area="430000")  # the province


# --- the pure rules -----------------------------------------------------------------------


@pytest.mark.parametrize(("stored", "incoming", "replaces"),
                         [(None, 1, True), (1, 2, True), (2, 2, False), (3, 2, False)])
def test_only_a_higher_version_replaces_the_alert_stored(stored: int | None, incoming: int, replaces: bool) -> None:
    assert supersedes(stored, incoming) is replaces


CITY = AreaScope("A", frozenset({"430100", "430102", "430103"}), frozenset({"A", "A2", "A3"}))
PROVINCE = AreaScope("P", frozenset({"430000", "430100"}), frozenset({"P", "A"}), is_root=True)


@pytest.mark.parametrize(
    ("area", "scope", "seen"),
    [
        ("430100", CITY, True),  # the city itself
        ("430103", CITY, True),  # a district below it
        ("430103001", CITY, True),  # a street of that district
        ("430200", CITY, False),  # another city
        ("430203", CITY, False),
        (None, CITY, False),  # no known area: the province's
        (None, PROVINCE, True),
        ("430200", PROVINCE, True),
        ("430100", None, False),  # no scope: not a supervisor
    ],
)
def test_a_supervisor_sees_the_alerts_of_its_subtree(area: str | None, scope: AreaScope | None, seen: bool) -> None:
    assert alert_in_scope(area, scope) is seen


def test_an_alert_lists_its_petitions_but_those_unlinked() -> None:
    assert listed_petitions(("p1", "p2", "p3"), {"p2", "p9"}) == ("p1", "p3")


# --- the read model -------------------------------------------------------------------------


def alert(alert_id: str = "surge:430103:城乡建设:day", version: int = 1, **changes: Any) -> WatchAlert:
    fields: dict[str, Any] = {
        "event_id": uuid.uuid4(), "occurred_at": T0 + timedelta(minutes=version), "alert_id": alert_id,
        "version": version, "state": "active", "kind": "surge", "area": "430103", "area_name": "A3区",
        "area_level": "district", "category": "城乡建设", "window": "day", "window_start": T0, "count": 10 + version,
        "expected": 2.5, "z": 4.2, "petition_ids": (), "opened_at": T0, "level": 1,
    }
    fields.update(changes)
    return WatchAlert(**fields)


def linked(petition_id: str, alert_id: str = "cluster:1", incident_id: str = "inc-1") -> IncidentLinked:
    return IncidentLinked(event_id=uuid.uuid4(), occurred_at=T0, petition_id=petition_id, incident_id=incident_id,
                          alert_id=alert_id, department_code="A3-URBAN", assignment_no=1, similarity=0.92)


async def feed(db: IntakeDb, *events: Any) -> None:
    processor = BatchProcessor(
        uow=FakeUnitOfWork(db, FakeReadModelStore), service="intake", consumer="intake-read-model",
        dead_letter_topic=topics.DEAD_LETTER_INTAKE, handlers=read_model_handlers(triage_code=lambda: "TRIAGE"),
        min_backoff=0.001, max_backoff=0.01,
    )
    await processor.process([raw_message(topic=topics.PETITION_ALERTS, partition=0, offset=i, key=b"k",
                                          value=encode_event(e)) for i, e in enumerate(events)])


async def test_the_read_model_keeps_the_highest_version_of_an_alert_whatever_the_order() -> None:
    db = IntakeDb()
    newest = alert(version=3, state="closed", closed_at=T0 + timedelta(hours=5))
    await feed(db, alert(version=1), newest, alert(version=2))  # the second arrives late
    stored = db.alerts[newest.alert_id]
    assert (stored.version, stored.state, stored.count, stored.time_window) == (3, "closed", 13, "day")
    await feed(db, newest)  # a redelivery
    assert db.alerts[newest.alert_id].version == 3
    assert not db.dead_letters()


async def test_an_incident_link_is_recorded_before_the_petition_is_known_and_timelined_when_it_is() -> None:
    db = IntakeDb()
    db.petitions["P-known"] = {"id": "P-known", "tracking_code": "XF-1", "status": "assigned"}
    await feed(db, linked("P-unknown"), linked("P-known"))
    assert {k[0] for k in db.incident_links} == {"P-unknown", "P-known"}
    assert db.timeline_of("P-known") == ["incident_linked"] and db.timeline_of("P-unknown") == []
    assert not db.dead_letters()


# --- reading the alerts ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> Reference:
    return load_reference(Settings())


@pytest.fixture
def ctx(reference: Reference) -> handlers.Intake:
    settings = Settings()
    return handlers.Intake(reference=Fixed(reference), hmac_key=b"k" * 32,
                           received_at_earliest=settings.received_at_earliest,
                           received_at_max_future_seconds=settings.received_at_max_future_seconds)


def uow(db: IntakeDb) -> FakeUnitOfWork[FakeIntakeStore]:
    return FakeUnitOfWork(db, FakeIntakeStore)


async def alerts_world() -> IntakeDb:
    db = IntakeDb()
    await feed(db,
               alert("a3", area="430103"), alert("a3-street", area="430103001", area_level="street"),
               alert("a-city", area="430100", area_name="A市", area_level="city"),
               alert("b1", area="430201", area_name="B1区"), alert("nowhere", area=None, area_name=None),
               alert("a3-closed", area="430103", state="closed", closed_at=T0))
    return db


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        (SUPERVISOR_A3, {"a3", "a3-street"}),
        (SUPERVISOR_A, {"a3", "a3-street", "a-city"}),
        (SUPERVISOR_B, {"b1"}),
        (SUPERVISOR_P, {"a3", "a3-street", "a-city", "b1", "nowhere"}),
    ],
)
async def test_a_supervisor_reads_the_active_alerts_of_its_area(
    ctx: handlers.Intake, who: Principal, expected: set[str]
) -> None:
    db = await alerts_world()
    found = await views.alerts(uow(db), ctx, who)
    assert {i["alert_id"] for i in found["items"]} == expected


async def test_closed_alerts_are_read_apart_and_an_area_narrows_the_list(ctx: handlers.Intake) -> None:
    db = await alerts_world()
    closed = await views.alerts(uow(db), ctx, SUPERVISOR_A3, state="closed")
    assert [i["alert_id"] for i in closed["items"]] == ["a3-closed"]
    narrowed = await views.alerts(uow(db), ctx, SUPERVISOR_A, area="430103", state="all")
    assert {i["alert_id"] for i in narrowed["items"]} == {"a3", "a3-street", "a3-closed"}
    assert (await views.alerts(uow(db), ctx, SUPERVISOR_A, kind="cluster"))["items"] == []


@pytest.mark.parametrize("who", [OPERATOR, Principal("clerk", Role.DEPARTMENT, frozenset({"A3-HOUSING"})),
                                 Principal("desk", Role.TRIAGE, frozenset({"TRIAGE"})),
                                 Principal("auditor", Role.AUDITOR), Principal("admin", Role.ADMIN)])
async def test_no_other_role_reads_alerts(ctx: handlers.Intake, who: Principal) -> None:
    with pytest.raises(Forbidden) as refused:
        await views.alerts(uow(IntakeDb()), ctx, who)
    assert refused.value.code == "role_cannot_read"


async def test_an_area_outside_the_supervisors_own_is_refused(ctx: handlers.Intake) -> None:
    with pytest.raises(Forbidden) as refused:
        await views.alerts(uow(IntakeDb()), ctx, SUPERVISOR_A3, area="430201")
    assert refused.value.code == "not_your_unit"


# --- unlinking ------------------------------------------------------------------------------


async def linked_petition(db: IntakeDb, ctx: handlers.Intake, *, status: str = "assigned") -> str:
    accepted, _ = await handlers.submit_petition(uow(db), ctx, OPERATOR, petition_in(), idempotency_key=None, now=T0)
    db.routed(accepted.id, "A3-URBAN", status=status)
    other = "P-other"
    db.petitions.setdefault(other, {"id": other, "tracking_code": "XF-OTHER", "status": "assigned"})
    await feed(db, alert("cluster:1", kind="cluster", petition_ids=(other, accepted.id), count=2, window=None,
                         expected=None, z=None, department_code="A3-URBAN"),
               linked(accepted.id))
    db.outbox.clear()
    return accepted.id


def unlink(department: str = "A3-GOV") -> Any:
    return ACTION.validate_python({"action": "unlink", "department": department, "note": "不是同一事件"})


async def test_a_supervisor_unlinks_a_petition_and_the_alert_stops_listing_it(ctx: handlers.Intake) -> None:
    db = IntakeDb()
    pid = await linked_petition(db, ctx)
    done = await handlers.act(uow(db), ctx, SUPERVISOR_A3, pid, unlink(), now=T0 + timedelta(hours=1))
    assert done.action == "unlink" and done.status == "assigned"  # the router's reassignment moves it
    (message,) = db.messages(topics.PETITION_ACTIONS)
    event = parse_event(message.value)
    assert isinstance(event, PetitionActionTaken) and event.action is ActionType.UNLINK
    assert event.extra == {"incident_id": "inc-1", "alert_id": "cluster:1", "incident_department": "A3-URBAN"}
    assert event.actor is not None and event.actor.subject == "sup-a3"
    (link,) = db.incident_links.values()
    assert link.unlinked_by == "sup-a3" and link.unlinked_unit == "A3-GOV"
    assert db.timeline_of(pid)[-1] == "unlink"
    (item,) = (await views.alerts(uow(db), ctx, SUPERVISOR_A3))["items"]
    assert item["petition_ids"] == ["P-other"] and item["unlinked_petition_ids"] == [pid]
    assert (await views.petition(uow(db), ctx, SUPERVISOR_A3, pid))["incidents"][0]["unlinked_by"] == "sup-a3"
    with pytest.raises(Conflict) as again:
        await handlers.act(uow(db), ctx, SUPERVISOR_A3, pid, unlink(), now=T0 + timedelta(hours=2))
    assert again.value.code == "not_linked" and len(db.messages(topics.PETITION_ACTIONS)) == 1


async def test_unlinking_needs_a_link_a_supervisor_and_a_petition_still_being_handled(ctx: handlers.Intake) -> None:
    db = IntakeDb()
    accepted, _ = await handlers.submit_petition(uow(db), ctx, OPERATOR, petition_in(), idempotency_key=None, now=T0)
    db.routed(accepted.id, "A3-URBAN")
    with pytest.raises(Conflict) as unlinked:
        await handlers.act(uow(db), ctx, SUPERVISOR_A3, accepted.id, unlink(), now=T0)
    assert unlinked.value.code == "not_linked"
    pid = await linked_petition(db, ctx)
    with pytest.raises(Forbidden) as holder:  # the holding department returns a petition instead (退单)
        await handlers.act(uow(db), ctx, Principal("clerk", Role.DEPARTMENT, frozenset({"A3-URBAN"})), pid,
                           unlink("A3-URBAN"), now=T0)
    assert holder.value.code == "role_cannot_act"
    with pytest.raises(Forbidden) as elsewhere:  # in the name of another area's government
        await handlers.act(uow(db), ctx, SUPERVISOR_A3, pid, unlink("B-GOV"), now=T0)
    assert elsewhere.value.code == "not_your_unit"
    db.petitions[pid]["status"] = "resolved"
    with pytest.raises(Conflict) as resolved:
        await handlers.act(uow(db), ctx, SUPERVISOR_A3, pid, unlink(), now=T0)
    assert resolved.value.code == "invalid_state"
    assert db.messages(topics.PETITION_ACTIONS) == [] and all(k.unlinked_at is None for k in db.incident_links.values())


async def test_an_accusation_in_an_alert_is_not_shown_to_the_accused_government(ctx: handlers.Intake) -> None:
    db = IntakeDb()
    db.petitions["P-acc"] = {"id": "P-acc", "tracking_code": "XF-ACC", "status": "assigned",
                             "accused_departments": ("A3-HOUSING",)}
    db.petitions["P-plain"] = {"id": "P-plain", "tracking_code": "XF-PLAIN", "status": "assigned"}
    await feed(db, alert("c", kind="cluster", petition_ids=("P-acc", "P-plain")))
    (mine,) = (await views.alerts(uow(db), ctx, SUPERVISOR_A3))["items"]
    assert mine["petition_ids"] == ["P-plain"]
    assert mine["petitions"] == [{"id": "P-plain", "tracking_code": "XF-PLAIN"}]
    (city,) = (await views.alerts(uow(db), ctx, SUPERVISOR_A))["items"]
    assert city["petition_ids"] == ["P-acc", "P-plain"]
