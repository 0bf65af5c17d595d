"""The router's service layer on the in-memory store: new petitions, repeats, returns and
the triage desk, checked by what the store holds and the events in its outbox.

Predictions are fixed per title (no model), the routing table is the demo one, and the
plans come from the router's own classification hook (:class:`PreparedPlans`), in process.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.router import handlers
from services.router.config import load_routing_table
from services.router.domain.keywords import Prediction
from services.router.domain.routing import RoutingTable
from services.router.planning import Reassignment
from services.router.prepare import PreparedPlans
from shared import topics
from shared.errors import BadInput
from shared.events import (
    ActionType,
    Channel,
    DepartmentAssignment,
    IncidentLinked,
    Kind,
    Location,
    PetitionActionTaken,
    PetitionRouted,
    PetitionSubmitted,
    encode_event,
    key_for,
    parse_event,
)
from shared.ids import derived_event_id
from shared.records import RawMessage, raw_message
from tests.fakes import FakeUnitOfWork
from tests.fakes.router import FakeRouterStore, RouterDb

AT = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
NOW = AT + timedelta(seconds=3)

HOUSING_TITLE = "A3区某小区拆迁安置房迟迟不能交房"
HOUSING_TEXT = "我是A市A3区某小区的拆迁户，安置房承诺两年前交房，至今仍未建成，开发商一再拖延。"
FOLLOW_UP_TITLE = "安置房还是没有交房"
FOLLOW_UP_TEXT = "上次反映的拆迁安置房迟迟不能交房的问题，开发商还是一再拖延，至今没有交房，请尽快处理。"
ACCUSATION_TITLE = "举报A3区住建局工作人员在拆迁安置房分配中收受好处"
ACCUSATION_TEXT = "A3区住建局某工作人员在我们小区拆迁安置房分配中收受开发商好处，导致安置房迟迟不能交房，请查处。"
UNSURE_TITLE = "有个问题想反映一下"


class FixedClassifier:
    """Predictions by title: sure of 城乡建设, except for :data:`UNSURE_TITLE`."""

    def predict(self, items: Sequence[tuple[str, str]]) -> list[Prediction]:
        return [Prediction("城乡建设", 0.1 if title == UNSURE_TITLE else 0.9) for title, _ in items]


class FakeQueues:
    def __init__(self) -> None:
        self.ensured: set[str] = set()

    async def ensure(self, codes: set[str]) -> None:
        self.ensured |= codes


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    return load_routing_table()


class Router:
    """The handlers with their collaborators, as the composition root wires them."""

    def __init__(self, table: RoutingTable) -> None:
        self.table = table
        self.db = RouterDb()
        self.uow = FakeUnitOfWork(self.db, FakeRouterStore)
        self.plans = PreparedPlans(classifier=FixedClassifier(), default_threshold=0.5)
        self.queues = FakeQueues()
        self._offsets = iter(range(10**6))

    def message(self, event: PetitionSubmitted) -> RawMessage:
        return raw_message(topic=topics.PETITION_SUBMITTED, partition=0, offset=next(self._offsets),
                           key=key_for(event.petition_id), value=encode_event(event))

    async def submit(self, *events: PetitionSubmitted) -> handlers.NewPetitionsRouted[RawMessage]:
        items = [(e, self.message(e)) for e in events]
        await self.plans.prepare(list(items), self.table)
        async with self.uow.begin() as store:
            return await handlers.route_new_petitions(
                store, items, table=self.table, plans=self.plans, queues=self.queues, clock=lambda: NOW,
                partitions={f"{m.topic}:{m.partition}" for _, m in items},
            )

    async def submit_all(self, *events: PetitionSubmitted, same_batch: bool) -> None:
        """Route `events` in one batch, or each in its own."""
        if same_batch:
            await self.submit(*events)
        else:
            for event in events:
                await self.submit(event)

    async def act(self, event: PetitionActionTaken) -> Reassignment | None:
        async with self.uow.begin() as store:
            return await handlers.act_on_assignment(
                store, event, table=self.table, queues=self.queues, clock=lambda: NOW
            )

    def routed(self, petition_id: str) -> list[PetitionRouted]:
        events = [parse_event(m.value) for m in self.db.messages(topics.PETITION_ROUTED)]
        return [e for e in events if isinstance(e, PetitionRouted) and e.petition_id == petition_id]

    def assigned(self, department: str) -> list[DepartmentAssignment]:
        events = [parse_event(m.value) for m in self.db.messages(topics.department_topic(department))]
        return [e for e in events if isinstance(e, DepartmentAssignment)]

    def tables(self) -> dict[str, Any]:
        kept_aside = ("faults", "commits", "locked_petitioners", "locked_partitions", "lock_and_reads")
        return copy.deepcopy({k: v for k, v in vars(self.db).items() if k not in kept_aside})


def petition(
    pid: str, *, title: str = HOUSING_TITLE, content: str = HOUSING_TEXT, petitioner: str | None = None,
    kind: Kind | None = None, persons: int = 1, received_at: datetime = AT, admin_code: str | None = None,
) -> PetitionSubmitted:
    return PetitionSubmitted(
        event_id=uuid.uuid4(), occurred_at=received_at, petition_id=pid, tracking_code=f"XF-{pid}",
        title=title, content=content, channel=Channel.HOTLINE, kind=kind, petitioner_key=petitioner,
        location=Location(admin_code=admin_code), persons=persons, received_at=received_at,
    )


def action(
    pid: str, kind: ActionType, department: str, *, assignment_no: int | None, target: str | None = None,
    category: str | None = None,
) -> PetitionActionTaken:
    return PetitionActionTaken(
        event_id=uuid.uuid4(), occurred_at=AT + timedelta(hours=1), petition_id=pid, action=kind,
        department_code=department, assignment_no=assignment_no, target_department_code=target,
        note="人工分拨" if kind is ActionType.ASSIGN else "不属本局职责",
        extra={"category": category} if category else {},
    )


async def test_a_new_petition_is_routed_once_with_its_two_events_and_its_log_row(table: RoutingTable) -> None:
    router = Router(table)
    first = petition("P-1", petitioner="key-1")
    outcome = await router.submit(first)
    assert outcome.repeated == [] and [e.petition_id for e, _ in outcome.routed] == ["P-1"]
    assert outcome.decided_at == NOW
    held = router.db.assignments["P-1"]
    assert (held.assignment_no, held.department_code, held.rule) == (1, "A3-HOUSING", "construction@district")
    assert set(router.db.petition_index) == {"P-1"}
    assert set(router.db.decision_log) == {("P-1", 1)}
    [routed] = router.routed("P-1")
    assert routed.event_id == derived_event_id(first.event_id, "routed:1")
    assert (routed.department_code, routed.reason, routed.triage, routed.repeat_of) == (
        "A3-HOUSING", "initial", False, None)
    [assigned] = router.assigned("A3-HOUSING")
    assert assigned.event_id == derived_event_id(first.event_id, "assignment:1") and assigned.title == HOUSING_TITLE
    assert "A3-HOUSING" in router.queues.ensured
    assert router.db.notifications == 1

    # the same event again, and the same petition under another event id: nothing written
    before = router.tables()
    again = await router.submit(first, first.model_copy(update={"event_id": uuid.uuid4()}))
    assert len(again.repeated) == 2 and again.routed == [] and again.decided_at is None
    assert router.tables() == before


async def test_the_same_petition_twice_in_one_batch_is_routed_by_the_first(table: RoutingTable) -> None:
    router = Router(table)
    first = petition("P-1")
    second = first.model_copy(update={"event_id": uuid.uuid4()})
    outcome = await router.submit(first, second)
    assert [m.offset for m in outcome.repeated] == [1]
    assert [r.event_id for r in router.routed("P-1")] == [derived_event_id(first.event_id, "routed:1")]


@pytest.mark.parametrize("same_batch", [False, True])
async def test_a_repeat_goes_to_the_department_of_the_original(table: RoutingTable, same_batch: bool) -> None:
    router = Router(table)
    original = petition("P-1", petitioner="key-1", admin_code="430104")  # A4, not the A3 of the text
    follow_up = petition("P-2", petitioner="key-1", title=FOLLOW_UP_TITLE, content=FOLLOW_UP_TEXT,
                         received_at=AT + timedelta(days=30))
    stranger = petition("P-3", petitioner="key-2", title=FOLLOW_UP_TITLE, content=FOLLOW_UP_TEXT,
                        received_at=AT + timedelta(days=30))
    if same_batch:
        await router.submit(original, follow_up, stranger)
    else:
        await router.submit(original)
        await router.submit(follow_up, stranger)
    assert router.db.assignments["P-1"].department_code == "A4-HOUSING"
    repeat = router.db.assignments["P-2"]
    assert (repeat.department_code, repeat.rule, repeat.repeat_of) == ("A4-HOUSING", "repeat-of:P-1", "P-1")
    [routed] = router.routed("P-2")
    assert (routed.department_code, routed.reason, routed.repeat_of) == ("A4-HOUSING", "repeat", "P-1")
    assert [a.petition_id for a in router.assigned("A4-HOUSING")] == ["P-1", "P-2"]
    assert router.db.decision_log[("P-2", 1)][2:4] == ("A4-HOUSING", "repeat-of:P-1")
    # someone else with the same words repeats nothing: no place named, the provincial bureau
    assert (router.db.assignments["P-3"].department_code, router.db.assignments["P-3"].repeat_of) == (
        "P-HOUSING", None)
    assert set(router.db.petition_index) == {"P-1", "P-2", "P-3"}


@pytest.mark.parametrize("same_batch", [False, True])
async def test_a_person_has_one_original_whatever_order_the_petitions_reach_the_router(
    table: RoutingTable, same_batch: bool,
) -> None:
    # the later-received petition is routed first (its partition was ahead): it is the original,
    # and the one received a day before it, routed after it, repeats it
    router = Router(table)
    later = petition("P-2", petitioner="key-1", admin_code="430104", received_at=AT + timedelta(days=1))
    earlier = petition("P-1", petitioner="key-1", title=FOLLOW_UP_TITLE, content=FOLLOW_UP_TEXT)
    await router.submit_all(later, earlier, same_batch=same_batch)
    assert router.db.assignments["P-2"].repeat_of is None
    repeat = router.db.assignments["P-1"]
    assert (repeat.department_code, repeat.rule, repeat.repeat_of) == ("A4-HOUSING", "repeat-of:P-2", "P-2")
    assert (router.db.assignments["P-2"].department_code) == "A4-HOUSING"


async def test_a_petition_after_the_repeat_window_is_routed_as_new(table: RoutingTable) -> None:
    router = Router(table)
    await router.submit(petition("P-1", petitioner="key-1", admin_code="430104"))
    await router.submit(petition("P-2", petitioner="key-1", title=FOLLOW_UP_TITLE, content=FOLLOW_UP_TEXT,
                                 received_at=AT + timedelta(days=91)))
    assert (router.db.assignments["P-2"].department_code, router.db.assignments["P-2"].repeat_of) == (
        "P-HOUSING", None)


async def test_a_repeat_accusing_the_originals_department_goes_above_it(table: RoutingTable) -> None:
    router = Router(table)
    await router.submit(petition("P-1", petitioner="key-1", title=ACCUSATION_TITLE, content=ACCUSATION_TEXT))
    assert router.db.assignments["P-1"].department_code == "A3-HOUSING"
    await router.submit(petition("P-2", petitioner="key-1", title=ACCUSATION_TITLE, content=ACCUSATION_TEXT,
                                 kind=Kind.ACCUSATION, received_at=AT + timedelta(days=1)))
    accusation = router.db.assignments["P-2"]
    assert (accusation.department_code, accusation.rule, accusation.repeat_of) == (
        "A-GOV", "accusation:above:A3-HOUSING", None)
    assert [a.petition_id for a in router.assigned("A3-HOUSING")] == ["P-1"]


@pytest.mark.parametrize("same_batch", [False, True])
async def test_an_accusation_routed_as_new_counts_as_an_original_in_its_run_as_in_the_store(
    table: RoutingTable, same_batch: bool,
) -> None:
    # the accusation was received first but routed after P-1; routed as new (it accuses P-1's
    # bureau), it is an original, and the earliest-received one: P-3 repeats it however the
    # petitions were batched
    router = Router(table)
    first = petition("P-1", petitioner="key-1", title=ACCUSATION_TITLE, content=ACCUSATION_TEXT)
    accusation = petition("P-2", petitioner="key-1", title=ACCUSATION_TITLE, content=ACCUSATION_TEXT,
                          kind=Kind.ACCUSATION, received_at=AT - timedelta(days=1))
    third = petition("P-3", petitioner="key-1", title=ACCUSATION_TITLE, content=ACCUSATION_TEXT,
                     received_at=AT + timedelta(days=2))
    await router.submit(first)
    await router.submit_all(accusation, third, same_batch=same_batch)
    assert router.db.assignments["P-2"].repeat_of is None
    assert (router.db.assignments["P-3"].repeat_of, router.db.assignments["P-3"].department_code) == (
        "P-2", router.db.assignments["P-2"].department_code)


async def test_an_accusation_goes_above_the_accused_units_own_government(table: RoutingTable) -> None:
    router = Router(table)
    await router.submit(petition("P-1", title=ACCUSATION_TITLE, content=ACCUSATION_TEXT, kind=Kind.ACCUSATION))
    [routed] = router.routed("P-1")
    assert (routed.department_code, routed.rule, routed.accused_departments) == (
        "A-GOV", "accusation:above:A3-HOUSING", ("A3-HOUSING",))
    assert router.db.assignments["P-1"].accused == ("A3-HOUSING",)
    assert router.assigned("A3-HOUSING") == []


async def test_a_group_petition_gets_high_priority_in_both_events(table: RoutingTable) -> None:
    router = Router(table)
    await router.submit(petition("P-1", persons=12), petition("P-2", persons=4))
    assert (router.db.assignments["P-1"].priority, router.db.assignments["P-1"].group_petition) == ("high", True)
    assert router.db.assignments["P-2"].group_petition is False
    [routed] = router.routed("P-1")
    [assigned, _] = router.assigned("A3-HOUSING")
    assert (routed.priority, routed.group_petition, assigned.priority, assigned.group_petition) == (
        "high", True, "high", True)


async def test_returns_reassign_excluding_the_returners_then_go_to_triage(table: RoutingTable) -> None:
    router = Router(table)
    await router.submit(petition("P-1"))
    first = action("P-1", ActionType.RETURN, "A3-HOUSING", assignment_no=1)
    change = await router.act(first)
    assert change is not None and change.returner == "A3-HOUSING"
    held = router.db.assignments["P-1"]
    assert (held.assignment_no, held.department_code, held.returned_by) == (2, "A-HOUSING", ("A3-HOUSING",))
    routed = router.routed("P-1")[-1]
    assert routed.event_id == derived_event_id(first.event_id, "routed:2")
    assert (routed.assignment_no, routed.department_code, routed.rule, routed.reason) == (
        2, "A-HOUSING", "reassign:construction@city", "returned")
    assert routed.excluded_departments == ("A3-HOUSING",)
    assert [a.assignment_no for a in router.assigned("A-HOUSING")] == [2]

    await router.act(action("P-1", ActionType.RETURN, "A-HOUSING", assignment_no=2))
    held = router.db.assignments["P-1"]
    assert (held.assignment_no, held.department_code, held.rule) == (3, "TRIAGE", "triage:returned-2-times")
    routed = router.routed("P-1")[-1]
    assert (routed.department_code, routed.triage, routed.excluded_departments) == (
        "TRIAGE", True, ("A3-HOUSING", "A-HOUSING"))
    assert set(router.db.decision_log) == {("P-1", 1), ("P-1", 2), ("P-1", 3)}
    assert router.db.triage_decisions == {}


@pytest.mark.parametrize(
    "stale",
    [
        action("P-1", ActionType.RETURN, "A3-HOUSING", assignment_no=1),  # about the assignment it replaced
        action("P-1", ActionType.RETURN, "A3-HOUSING", assignment_no=None),  # from a department not holding it
        action("P-1", ActionType.ASSIGN, "TRIAGE", assignment_no=2, target="A3-URBAN"),  # not the holder
        action("P-1", ActionType.RETURN, "A-HOUSING", assignment_no=3),  # about an assignment not made
        action("P-1", ActionType.ACCEPT, "A-HOUSING", assignment_no=2),  # an action that reassigns nothing
    ],
)
async def test_a_stale_action_changes_nothing(table: RoutingTable, stale: PetitionActionTaken) -> None:
    router = Router(table)
    await router.submit(petition("P-1"))
    await router.act(action("P-1", ActionType.RETURN, "A3-HOUSING", assignment_no=1))
    before = router.tables()
    assert await router.act(stale) is None
    assert router.tables() == before


async def test_an_action_on_a_petition_never_routed_is_refused(table: RoutingTable) -> None:
    router = Router(table)
    with pytest.raises(BadInput) as refused:
        await router.act(action("P-9", ActionType.RETURN, "A3-HOUSING", assignment_no=1))
    assert refused.value.code == "unknown_petition"
    assert router.db.outbox == []


async def test_the_triage_desk_assigns_a_department_and_its_decision_is_kept(table: RoutingTable) -> None:
    router = Router(table)
    await router.submit(petition("P-1", title=UNSURE_TITLE))
    assert router.routed("P-1")[0].rule == "triage:low-confidence:0.10<0.50"
    choice = action("P-1", ActionType.ASSIGN, "TRIAGE", assignment_no=1, target="A3-URBAN", category="城市管理")
    await router.act(choice)
    held = router.db.assignments["P-1"]
    assert (held.assignment_no, held.department_code, held.rule, held.category) == (
        2, "A3-URBAN", "triage:manual", "城市管理")
    routed = router.routed("P-1")[-1]
    assert (routed.department_code, routed.reason, routed.category, routed.triage) == (
        "A3-URBAN", "triage", "城市管理", False)
    assert [a.petition_id for a in router.assigned("A3-URBAN")] == ["P-1"]
    record = router.db.triage_decisions["P-1", 1]
    assert (record.predicted_category, record.predicted_confidence, record.decided_category) == (
        "城乡建设", 0.1, "城市管理")
    assert (record.department_code, record.decided_by, record.note, record.decided_at) == (
        "A3-URBAN", "TRIAGE", "人工分拨", choice.occurred_at)
    assert record.title == UNSURE_TITLE


@pytest.mark.parametrize(
    ("target", "rule"),
    [("NO-SUCH-UNIT", "triage:unknown-target:NO-SUCH-UNIT"), ("A3-HOUSING", "triage:target-is-accused:A3-HOUSING")],
)
async def test_an_unknown_or_accused_target_stays_at_the_desk_visibly(
    table: RoutingTable, target: str, rule: str
) -> None:
    router = Router(table)
    await router.submit(petition("P-1", title=UNSURE_TITLE, content=ACCUSATION_TEXT, kind=Kind.ACCUSATION))
    assert router.db.assignments["P-1"].accused == ("A3-HOUSING",)
    await router.act(action("P-1", ActionType.ASSIGN, "TRIAGE", assignment_no=1, target=target))
    held = router.db.assignments["P-1"]
    assert (held.assignment_no, held.department_code, held.rule, held.category) == (2, "TRIAGE", rule, "城乡建设")
    routed = router.routed("P-1")[-1]
    assert (routed.assignment_no, routed.department_code, routed.rule, routed.triage) == (2, "TRIAGE", rule, True)
    assert router.assigned(target) == []
    assert router.db.triage_decisions["P-1", 1].department_code == "TRIAGE"


async def test_a_suggestion_is_the_routers_decision_with_its_repeat_check_and_writes_nothing(
    table: RoutingTable,
) -> None:
    router = Router(table)
    await router.submit(petition("P-1", petitioner="key-1", admin_code="430104"))  # A4's bureau holds it
    before = router.tables()

    async def suggest(event: PetitionSubmitted) -> handlers.Suggestion:
        async with router.uow.begin() as store:
            return await handlers.suggest(store, event, table=router.table, plans=router.plans)

    later = AT + timedelta(days=30)
    follow_up = await suggest(petition("draft", petitioner="key-1", title=FOLLOW_UP_TITLE, content=FOLLOW_UP_TEXT,
                                       received_at=later))
    assert (follow_up.department_code, follow_up.rule, follow_up.repeat_of, follow_up.earlier) == (
        "A4-HOUSING", "repeat-of:P-1", "P-1", ("P-1",))
    stranger = await suggest(petition("draft", petitioner="key-2", received_at=later))
    assert (stranger.department_code, stranger.rule, stranger.repeat_of, stranger.earlier) == (
        "A3-HOUSING", "construction@district", None, ())
    assert (stranger.category, stranger.confidence, stranger.triage) == ("城乡建设", 0.9, False)
    unsure = await suggest(petition("draft", title=UNSURE_TITLE, content="说不清楚"))
    assert unsure.triage and unsure.department_code == table.triage.code
    # with the classifier's probabilities: its best three categories, each where the table sends it
    async with router.uow.begin() as store:
        ranked = await handlers.suggest(store, petition("draft", received_at=later), table=router.table,
                                        plans=router.plans,
                                        scores={"环境保护": 0.3, "城乡建设": 0.5, "教育文体": 0.15, "卫生计生": 0.05})
    assert [(c[0], c[1], c[2]) for c in ranked.candidates] == [
        ("城乡建设", 0.5, "A3-HOUSING"), ("环境保护", 0.3, "A3-ENVIRONMENT"), ("教育文体", 0.15, "A3-EDUCATION")]
    assert router.tables() == before  # a suggestion is a question: nothing written


def link(pid: str, department: str, *, assignment_no: int = 1, incident: str = "P-0") -> IncidentLinked:
    return IncidentLinked(
        event_id=uuid.uuid4(), occurred_at=AT + timedelta(minutes=5), petition_id=pid, incident_id=incident,
        alert_id=f"cluster:{incident}", department_code=department, assignment_no=assignment_no, similarity=0.7,
    )


async def merge(router: Router, event: IncidentLinked) -> Reassignment | None:
    async with router.uow.begin() as store:
        return await handlers.merge_into_incident(store, event, table=router.table, queues=router.queues,
                                                  clock=lambda: NOW)


async def test_a_petition_linked_to_an_incident_goes_to_its_department_until_a_person_unlinks_it(
    table: RoutingTable,
) -> None:
    router = Router(table)
    await router.submit(petition("P-1"))
    assert router.db.assignments["P-1"].department_code == "A3-HOUSING"
    change = await merge(router, link("P-1", "A3-URBAN"))
    assert change is not None
    held = router.db.assignments["P-1"]
    assert (held.assignment_no, held.department_code, held.rule) == (2, "A3-URBAN", "merge:P-0:from:A3-HOUSING")
    routed = router.routed("P-1")[-1]
    assert (routed.reason, routed.department_code) == ("merged", "A3-URBAN")
    assert [a.assignment_no for a in router.assigned("A3-URBAN")] == [2]
    # the same link again (a replay) or about the first assignment: nothing moves
    assert await merge(router, link("P-1", "A3-URBAN")) is None
    # a supervisor unlinks: back where routing sent it
    back = await router.act(action("P-1", ActionType.UNLINK, "A3-GOV", assignment_no=2))
    assert back is not None
    held = router.db.assignments["P-1"]
    assert (held.assignment_no, held.department_code, held.rule) == (3, "A3-HOUSING", "unlinked:P-0")
    assert router.routed("P-1")[-1].reason == "unlinked"
    # unlinking what is not a merge changes nothing
    assert await router.act(action("P-1", ActionType.UNLINK, "A3-GOV", assignment_no=3)) is None


async def test_a_link_never_sends_an_accusation_to_the_accused_nor_moves_a_petition_already_there(
    table: RoutingTable,
) -> None:
    router = Router(table)
    await router.submit(petition("P-1"), petition("P-2", title=ACCUSATION_TITLE, content=ACCUSATION_TEXT))
    assert await merge(router, link("P-1", "A3-HOUSING")) is None  # already there
    assert await merge(router, link("P-2", "A3-HOUSING")) is None  # it accuses A3's own bureau
    assert router.db.assignments["P-2"].assignment_no == 1
    with pytest.raises(BadInput):
        await merge(router, link("P-9", "A3-HOUSING"))


async def test_routing_locks_the_batchs_partitions_and_petitioners_before_reading_anything(
    table: RoutingTable,
) -> None:
    router = Router(table)
    await router.submit(petition("P-1", petitioner="k-2"), petition("P-2", petitioner="k-1"), petition("P-3"))
    assert router.db.locked_petitioners == [("k-1", "k-2")]
    assert router.db.locked_partitions == [(f"{topics.PETITION_SUBMITTED}:0",)]
    # nothing is read before the locks: a router still routing a partition taken from it holds
    # up the new owner until it commits, and the new owner then sees those petitions routed
    assert router.db.lock_and_reads == ["lock", "routed_already", "earlier_originals"]
    await router.submit(petition("P-4"))
    assert router.db.locked_petitioners[1:] == [()]  # anonymous petitions lock nobody, their partition still
    assert router.db.locked_partitions[1:] == [(f"{topics.PETITION_SUBMITTED}:0",)]
    assert router.db.lock_and_reads[3:] == ["lock", "routed_already"]
