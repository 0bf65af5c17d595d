"""A new petition's routing and its encoded events, worked out without the database.

Pure CPU, and the same code in the router's event loop and in its worker process: the
worker plans each petition of a batch (jurisdiction, accused units, the rule that fires) and
encodes its two events, and hands back only codes and bytes (:class:`WorkerPlan`), which
the router turns into the same :class:`Routing` it would have computed itself. The one
check left for the transaction is whether the petition repeats an earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.router.domain.keywords import Prediction
from services.router.domain.routing import Decision, RoutingTable
from shared import topics
from shared.db import OutboxMessage
from shared.events import (
    Channel,
    DepartmentAssignment,
    Jurisdiction,
    Kind,
    Location,
    PetitionRouted,
    PetitionSubmitted,
    Priority,
    encode_event,
    key_for,
)
from shared.ids import derived_event_id

GROUP_PETITION_PERSONS = 5


@dataclass(frozen=True, slots=True)
class Routing:
    """Everything the router publishes about one assignment."""

    decision: Decision
    assignment_no: int
    category: str | None
    confidence: float | None
    reason: str
    excluded: tuple[str, ...]
    priority: Priority
    kind: Kind | None
    channel: Channel
    tracking_code: str
    title: str
    content: str
    location: Location
    received_at: Any
    persons: int
    jurisdiction_source: str | None
    repeat_of: str | None
    group_petition: bool


@dataclass(frozen=True, slots=True)
class Encoded:
    """A decision's outbox messages (routed event, department assignment) and its log row."""

    messages: tuple[OutboxMessage, ...]
    log_row: tuple[Any, ...]


#: What the worker process returns for a planned petition: the decision as codes (looked up
#: again in the router's own table of the same version) and the two encoded events.
#: (department code, rule, jurisdiction code or None, jurisdiction source, accused codes,
#:  routed event bytes, assignment event bytes)
WorkerPlan = tuple[str, str, str | None, str, tuple[str, ...], bytes, bytes]


def text_of(event: PetitionSubmitted) -> str:
    return " ".join(filter(None, [event.title, event.content, event.location.address]))


def initial_decision(
    event: PetitionSubmitted, prediction: Prediction, table: RoutingTable, threshold: float
) -> tuple[Decision, str]:
    """The department of a new petition as if it repeats nothing, and where its jurisdiction
    came from (the operator's code or the text)."""
    text = text_of(event)
    area, source = table.gazetteer.resolve(event.location.admin_code, text)
    accused = table.accused_units(text, area) if event.kind is Kind.ACCUSATION else ()
    category, confidence = prediction.category, prediction.confidence
    if category is None or confidence < threshold:
        return Decision(table.triage, f"triage:low-confidence:{confidence:.2f}<{threshold:.2f}", area, accused), source
    return table.decide(category, area, text=text, accused=accused), source


def initial_routing(event: PetitionSubmitted, prediction: Prediction, decision: Decision, source: str) -> Routing:
    group = event.persons >= GROUP_PETITION_PERSONS
    return Routing(
        decision=decision, assignment_no=1, category=prediction.category, confidence=prediction.confidence,
        reason="initial", excluded=(), priority=Priority.HIGH if group else Priority.NORMAL,
        kind=event.kind, channel=event.channel, tracking_code=event.tracking_code,
        title=event.title, content=event.content, location=event.location,
        received_at=event.received_at, persons=event.persons, jurisdiction_source=source,
        repeat_of=None, group_petition=group,
    )


def log_row(cause: Any, r: Routing, version: str) -> tuple[Any, ...]:
    area = r.decision.jurisdiction
    return (cause.petition_id, r.assignment_no, r.decision.department.code, r.decision.rule, r.category,
            r.confidence, area.code if area else None, version)


def encode(cause: Any, r: Routing, now: Any, table: RoutingTable) -> Encoded:
    """The routed event and the department's assignment of one decision, encoded.

    `table` is the routing table the decision was made on: the routed event names its
    version and says whether the department is its triage desk.
    """
    version = table.version
    dept = r.decision.department
    area = r.decision.jurisdiction
    # what both events say alike: the envelope and the decision's common facts
    common: dict[str, Any] = {
        "occurred_at": now, "petition_id": cause.petition_id, "causation_id": cause.event_id,
        "assignment_no": r.assignment_no, "category": r.category, "department_code": dept.code,
        "rule": r.decision.rule, "priority": r.priority, "kind": r.kind, "received_at": r.received_at,
        "repeat_of": r.repeat_of, "group_petition": r.group_petition,
    }
    routed = PetitionRouted(
        event_id=derived_event_id(cause.event_id, f"routed:{r.assignment_no}"),
        **common,
        confidence=r.confidence,
        department_name=dept.name,
        jurisdiction=Jurisdiction(code=area.code, name=area.name, level=area.level) if area else None,
        reason=r.reason,
        excluded_departments=r.excluded,
        channel=r.channel,
        jurisdiction_source=r.jurisdiction_source,
        accused_departments=r.decision.accused,
        table_version=version,
        triage=dept.code == table.triage.code,
    )
    assignment = DepartmentAssignment(
        event_id=derived_event_id(cause.event_id, f"assignment:{r.assignment_no}"),
        **common,
        tracking_code=r.tracking_code,
        title=r.title,
        content=r.content,
        location=r.location,
        persons=r.persons,
    )
    return outbox_of(cause, r, version, encode_event(routed), encode_event(assignment))


def outbox_of(cause: Any, r: Routing, version: str, routed: bytes, assignment: bytes) -> Encoded:
    key = key_for(cause.petition_id)
    return Encoded(
        (
            OutboxMessage(topics.PETITION_ROUTED, key, routed),
            OutboxMessage(topics.department_topic(r.decision.department.code), key, assignment),
        ),
        log_row(cause, r, version),
    )


def plan_for_worker(
    event: PetitionSubmitted, prediction: Prediction, table: RoutingTable, threshold: float, now: Any
) -> WorkerPlan:
    """The worker's side: decide, encode, and reduce the decision to codes."""
    decision, source = initial_decision(event, prediction, table, threshold)
    routing = initial_routing(event, prediction, decision, source)
    messages = encode(event, routing, now, table).messages
    area = decision.jurisdiction
    return (decision.department.code, decision.rule, area.code if area else None, source,
            decision.accused, messages[0].value, messages[1].value)


def routing_from_worker(
    event: PetitionSubmitted, prediction: Prediction, plan: WorkerPlan, table: RoutingTable
) -> tuple[Routing, Encoded] | None:
    """The router's side: the same Routing and Encoded, with this process's table objects
    (None if a code is not in the table, which a table of the same version rules out)."""
    dept_code, rule, area_code, source, accused, routed, assignment = plan
    dept = table.triage if dept_code == table.triage.code else table.department(dept_code)
    area = table.gazetteer.by_code(area_code) if area_code is not None else None
    if dept is None or (area_code is not None and (area is None or area.code != area_code)):
        return None
    routing = initial_routing(event, prediction, Decision(dept, rule, area, tuple(accused)), source)
    return routing, outbox_of(event, routing, table.version, routed, assignment)
