"""The router's service layer: what a new petition and a department's action do.

Each handler runs in the consumer's unit of work: it loads the facts through the store,
decides with :mod:`services.router.planning` and the domain, and writes the changes and the
outgoing events through the same store, so they commit together (the outbox). No SQL, no
Kafka and no HTTP here; the collaborators are passed in: the store, the routing table in
force, the plans the classification hook prepared (:class:`Plans`), the department queues
(:class:`DepartmentQueues`: a queue exists before its first assignment is committed) and
the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar, cast

from services.router.domain.keywords import Prediction
from services.router.domain.repeats import Earlier, find_original, pack, signature
from services.router.domain.routing import RoutingTable
from services.router.planning import (
    REASSIGNING,
    Encoded,
    Planned,
    Reassignment,
    Routing,
    encode,
    initial_decision,
    merge_reassignment,
    merging,
    plan_action,
    repeat_routing,
)
from services.router.store import IndexEntry, RouterStore
from shared.errors import BadInput
from shared.events import ActionType, IncidentLinked, PetitionActionTaken, PetitionSubmitted

__all__ = [
    "Clock", "DepartmentQueues", "NewPetitionsRouted", "Plans", "Suggestion", "act_on_assignment",
    "route_new_petitions", "suggest",
]

M = TypeVar("M")
Clock = Callable[[], datetime]


class Plans(Protocol):
    """The classification hook's plans of new petitions."""

    def plan(self, event: PetitionSubmitted, table: RoutingTable) -> Planned:
        """The petition's plan on `table` (worked out now if it was not prepared on it)."""
        ...


class DepartmentQueues(Protocol):
    """The departments' queues (one topic each), created on a department's first work."""

    async def ensure(self, codes: set[str]) -> None:
        """Return once the queue of each department of `codes` exists."""
        ...


@dataclass(frozen=True, slots=True)
class NewPetitionsRouted(Generic[M]):
    """What :func:`route_new_petitions` did with a run of new petitions."""

    #: the messages of petitions routed before (redelivered, or under another event id):
    #: nothing was written for them
    repeated: list[M]
    #: the petitions routed now, with their routing, in order
    routed: list[tuple[PetitionSubmitted, Routing]]
    #: when the decisions were written (None: nothing was)
    decided_at: datetime | None


async def route_new_petitions(
    store: RouterStore,
    items: Sequence[tuple[PetitionSubmitted, M]],
    *,
    table: RoutingTable,
    plans: Plans,
    queues: DepartmentQueues,
    clock: Clock,
    partitions: Collection[str],
) -> NewPetitionsRouted[M]:
    """Route a run of new petitions (each with its message, read from `partitions`,
    ``<topic>:<n>``) with a handful of round trips for the whole run: each once, by its
    plan, or to its original's department when it repeats a petition of the same petitioner
    routed before (in the store or earlier in the run).

    A petition is routed once: its assignment is its ledger entry, so a petition already
    routed is only reported (:attr:`NewPetitionsRouted.repeated`)."""
    keyed = [e for e, _ in items if e.petitioner_key]
    keys = cast("set[str]", {e.petitioner_key for e in keyed})  # keyed: none is None
    # Locked before anything is read. Per partition: an instance still routing a partition a
    # rebalance took from it (stalled past its session) holds up the new owner, which then
    # sees those petitions routed. Per petitioner: two instances (each its own partitions)
    # never both take two petitions of one person as originals.
    await store.lock_routing(partitions, keys)
    existing = await store.routed_already([e.petition_id for e, _ in items])
    earlier: dict[str, list[Earlier]] = {}
    if keyed:
        earlier = await store.earlier_originals(
            keys, min(e.received_at for e in keyed), max(e.received_at for e in keyed),
        )
    repeated: list[M] = []
    routed: list[tuple[PetitionSubmitted, Routing]] = []
    decided: list[tuple[Routing, Encoded]] = []
    index: list[IndexEntry] = []
    for event, message in items:
        if event.petition_id in existing:
            repeated.append(message)  # redelivered, or under another event id: routed once
            continue
        existing.add(event.petition_id)
        plan = plans.plan(event, table)
        routing, encoded = plan.routing, plan.encoded
        key = event.petitioner_key
        if key:  # only a known person can repeat; anonymous ones skip the cost
            packed = plan.packed if plan.packed is not None else pack(signature(event.title, event.content))
            repeat = repeat_routing(plan, find_original(packed, event.received_at, earlier.get(key, [])), table)
            if repeat is not None:
                routing, encoded = repeat, encode(event, repeat, clock(), table)
            else:  # an original (as the store will say): later petitions of the run may repeat it
                earlier.setdefault(key, []).append(
                    Earlier(event.petition_id, event.received_at, packed, routing.decision.department.code)
                )
            index.append((event.petition_id, key, event.received_at, packed))
        routed.append((event, routing))
        decided.append((routing, encoded))
    if not routed:
        return NewPetitionsRouted(repeated, routed, None)
    await store.add_assignments(routed)
    if index:
        await store.add_to_index(index)
    await _write_decisions(store, queues, decided)
    return NewPetitionsRouted(repeated, routed, clock())


async def act_on_assignment(
    store: RouterStore, event: PetitionActionTaken, *, table: RoutingTable, queues: DepartmentQueues, clock: Clock
) -> Reassignment | None:
    """Reassign a petition after a department's return or the triage desk's choice
    (:func:`services.router.planning.plan_action`); the desk's decision is kept as training
    data. None when nothing changed: another action, or one no longer about the assignment
    in force. Raises :class:`BadInput` (``unknown_petition``) for a petition never routed."""
    if event.action not in REASSIGNING:
        return None
    if event.action is ActionType.FOLLOW_UP and event.extra.get("outcome") != "reopened":
        return None  # a follow-up that closes the petition (or reached nobody) reassigns nothing
    current = await store.lock_assignment(event.petition_id)
    if current is None:
        raise BadInput(f"{event.action.value} for unknown petition {event.petition_id}", code="unknown_petition")
    change = plan_action(event, current, table)
    if change is None:
        return None
    if change.triage is not None:
        await store.record_triage_decision(change.triage)
    return await _reassign(store, event, change, table=table, queues=queues, clock=clock)


async def _reassign(
    store: RouterStore, event: PetitionActionTaken | IncidentLinked, change: Reassignment, *,
    table: RoutingTable, queues: DepartmentQueues, clock: Clock,
) -> Reassignment:
    """Write a petition's next assignment, its events and its department's queue record."""
    routing = change.routing
    await store.reassign(
        event.petition_id, assignment_no=routing.assignment_no, department_code=routing.decision.department.code,
        rule=routing.decision.rule, returned_by=change.returned_by, category=routing.category,
    )
    await _write_decisions(store, queues, [(routing, encode(event, routing, clock(), table))])
    return change


async def merge_into_incident(
    store: RouterStore, event: IncidentLinked, *, table: RoutingTable, queues: DepartmentQueues, clock: Clock
) -> Reassignment | None:
    """并案: send a petition the watch linked to an open incident to the incident's department
    (:func:`services.router.planning.merging`); None when nothing changed. The watch links
    only petitions it saw routed (the router committed their assignment before publishing it),
    so an unknown petition is a link about something else: it is dead-lettered."""
    current = await store.lock_assignment(event.petition_id)
    if current is None:
        raise BadInput(f"incident link for unknown petition {event.petition_id}", code="unknown_petition")
    decision = merging(event, current, table)
    if decision is None:
        return None
    change = merge_reassignment(decision, current, "merged")
    return await _reassign(store, event, change, table=table, queues=queues, clock=clock)


async def _write_decisions(
    store: RouterStore, queues: DepartmentQueues, decided: Sequence[tuple[Routing, Encoded]]
) -> None:
    """The decisions' events and log rows, once each department's queue exists."""
    await queues.ensure({r.decision.department.code for r, _ in decided})
    await store.write_decisions([enc for _, enc in decided])


@dataclass(frozen=True, slots=True)
class Suggestion:
    """Where a petition would go if it were submitted now, and why: what the operator desk
    shows while a call is being typed in."""

    category: str | None
    confidence: float | None
    department_code: str
    department_name: str
    rule: str
    triage: bool
    #: the earlier petition of the same petitioner this one would repeat (routed to its department)
    repeat_of: str | None
    #: the petitioner's earlier petitions within the repeat window (originals, newest first)
    earlier: tuple[str, ...]
    #: the classifier's best categories with where each would go: (category, confidence,
    #: department code, department name, rule), the likeliest first
    candidates: tuple[tuple[str, float, str, str, str], ...] = ()


#: how many of the classifier's categories a suggestion lists
CANDIDATES = 3


async def suggest(store: RouterStore, event: PetitionSubmitted, *, table: RoutingTable, plans: Plans,
                  scores: Mapping[str, float] | None = None) -> Suggestion:
    """The router's decision for a petition not yet submitted: the plan it would make
    (classifier, jurisdiction, routing table) and, for a known petitioner, the repeat check
    against its earlier petitions — the code :func:`route_new_petitions` runs, writing nothing.
    With the classifier's `scores` (category -> probability), its best categories too, each
    with the department the table gives it (what the triage desk chooses among)."""
    plan = plans.plan(event, table)
    routing = plan.routing
    earlier: list[Earlier] = []
    key = event.petitioner_key
    if key:
        earlier = (await store.earlier_originals({key}, event.received_at, event.received_at)).get(key, [])
        packed = plan.packed if plan.packed is not None else pack(signature(event.title, event.content))
        repeat = repeat_routing(plan, find_original(packed, event.received_at, earlier), table)
        if repeat is not None:
            routing = repeat
    department = routing.decision.department
    candidates = []
    for category, confidence in sorted((scores or {}).items(), key=lambda kv: -kv[1])[:CANDIDATES]:
        decision, _source = initial_decision(event, Prediction(category, confidence), table, 0.0)
        candidates.append((category, round(confidence, 4), decision.department.code, decision.department.name,
                           decision.rule))
    return Suggestion(
        routing.category, routing.confidence, department.code, department.name, routing.decision.rule,
        department.code == table.triage.code, routing.repeat_of,
        tuple(e.petition_id for e in sorted(earlier, key=lambda e: e.received_at, reverse=True)),
        tuple(candidates),
    )
