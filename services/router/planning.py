"""The router's decisions and their encoded events, worked out without the database.

Pure CPU. A new petition is planned before its transaction, in the router's event loop or
in its worker process alike: the worker plans each petition of a batch (jurisdiction,
accused units, the rule that fires) and encodes its two events, and hands back only codes
and bytes (:class:`WorkerPlan`), which the router turns into the same :class:`Routing` it
would have computed itself (:class:`Planned`). The one check left for the transaction is
whether the petition repeats an earlier one (:func:`repeat_routing`). A department's return
or the triage desk's choice is planned over the assignment in force (:func:`plan_action`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.router.domain.assignment import Assignment, is_in_force, triage_choice
from services.router.domain.keywords import Prediction
from services.router.domain.repeats import RepeatMatch
from services.router.domain.routing import Decision, RoutingTable
from shared import topics
from shared.events import (
    ActionType,
    Channel,
    DepartmentAssignment,
    IncidentLinked,
    Jurisdiction,
    Kind,
    Location,
    PetitionActionTaken,
    PetitionRouted,
    PetitionSubmitted,
    Priority,
    encode_event,
    key_for,
)
from shared.ids import derived_event_id
from shared.messages import OutboxMessage
from shared.reference.directory import in_accused_government
from shared.reference.places import Area

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
    #: the classifier version that chose `category` (None: a person or a return decided it)
    model_version: str | None = None


@dataclass(frozen=True, slots=True)
class Encoded:
    """A decision's outbox messages (routed event, department assignment) and its log row."""

    messages: tuple[OutboxMessage, ...]
    log_row: tuple[Any, ...]


#: What the worker process returns for a planned petition: the decision as codes (looked up
#: again in the router's own table of the same version) and the two encoded events.
#: (department code, rule, jurisdiction code or None, jurisdiction source, accused codes,
#:  routed event bytes, assignment event bytes)
WorkerPlan = tuple[str, str, str | None, str, tuple[str, ...], bytes, bytes, str | None]


@dataclass(frozen=True, slots=True)
class Planned:
    """A new petition's routing worked out before its transaction, as if it repeated nothing
    (the one check that needs the database), with the table it used and its events encoded."""

    table: RoutingTable
    routing: Routing
    area: Area | None
    accused: tuple[str, ...]
    packed: bytes | None  # the repeat signature, for a known petitioner
    encoded: Encoded


def triage_threshold(table: RoutingTable, default: float) -> float:
    """The confidence below which a new petition goes to the triage desk: the table's own,
    else the configured `default`."""
    return table.triage_threshold if table.triage_threshold is not None else default


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


def initial_routing(event: PetitionSubmitted, prediction: Prediction, decision: Decision, source: str,
                    model_version: str | None = None) -> Routing:
    group = event.persons >= GROUP_PETITION_PERSONS
    return Routing(
        decision=decision, assignment_no=1, category=prediction.category, confidence=prediction.confidence,
        reason="initial", excluded=(), priority=Priority.HIGH if group else Priority.NORMAL,
        kind=event.kind, channel=event.channel, tracking_code=event.tracking_code,
        title=event.title, content=event.content, location=event.location,
        received_at=event.received_at, persons=event.persons, jurisdiction_source=source,
        repeat_of=None, group_petition=group, model_version=model_version,
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
        model_version=r.model_version,
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
    event: PetitionSubmitted, prediction: Prediction, table: RoutingTable, threshold: float, now: Any,
    model_version: str | None = None,
) -> WorkerPlan:
    """The worker's side: decide, encode, and reduce the decision to codes."""
    decision, source = initial_decision(event, prediction, table, threshold)
    routing = initial_routing(event, prediction, decision, source, model_version)
    messages = encode(event, routing, now, table).messages
    area = decision.jurisdiction
    return (decision.department.code, decision.rule, area.code if area else None, source,
            decision.accused, messages[0].value, messages[1].value, model_version)


def routing_from_worker(
    event: PetitionSubmitted, prediction: Prediction, plan: WorkerPlan, table: RoutingTable
) -> tuple[Routing, Encoded] | None:
    """The router's side: the same Routing and Encoded, with this process's table objects
    (None if a code is not in the table, which a table of the same version rules out)."""
    dept_code, rule, area_code, source, accused, routed, assignment, model_version = plan
    dept = table.triage if dept_code == table.triage.code else table.department(dept_code)
    area = table.gazetteer.by_code(area_code) if area_code is not None else None
    if dept is None or (area_code is not None and (area is None or area.code != area_code)):
        return None
    routing = initial_routing(event, prediction, Decision(dept, rule, area, tuple(accused)), source, model_version)
    return routing, outbox_of(event, routing, table.version, routed, assignment)


def plan_new(
    event: PetitionSubmitted, prediction: Prediction, packed: bytes | None, table: RoutingTable,
    threshold: float, now: datetime, model_version: str | None = None,
) -> Planned:
    """The routing of a new petition as if it repeats nothing, with its events encoded."""
    decision, source = initial_decision(event, prediction, table, threshold)
    routing = initial_routing(event, prediction, decision, source, model_version)
    return Planned(table, routing, decision.jurisdiction, decision.accused, packed, encode(event, routing, now, table))


def repeat_routing(plan: Planned, match: RepeatMatch | None, table: RoutingTable) -> Routing | None:
    """The routing of a new petition that repeats an earlier one of the same petitioner
    (`match`): to the original's department (the triage desk if the table no longer has it),
    by the rule ``repeat-of:<original>``. None when it repeats nothing, or when the
    original's department belongs to the government of a unit the petition accuses: it is
    then routed as new."""
    if match is None or in_accused_government(match.original.department_code, plan.accused):
        return None
    repeat_of = match.original.petition_id
    dept = table.department(match.original.department_code) or table.triage
    return dataclasses.replace(
        plan.routing, decision=Decision(dept, f"repeat-of:{repeat_of}", plan.area, plan.accused),
        reason="repeat", repeat_of=repeat_of,
    )


#: The actions that reassign a petition: a department's return, the triage desk's choice, and a
#: follow-up (回访) that reopens it (重办) to the department that resolved it.
REASSIGNING = frozenset({ActionType.RETURN, ActionType.ASSIGN, ActionType.FOLLOW_UP, ActionType.UNLINK})


def reopening(event: PetitionActionTaken, current: Assignment, table: RoutingTable) -> Decision | None:
    """The decision of a follow-up that reopens the petition: the same department, again
    (``reopen:<n>``); None for a follow-up that reopens nothing, or that is about an earlier
    assignment or another department than the one in force."""
    extra = event.extra
    if extra.get("outcome") != "reopened" or extra.get("resolved_by") != current.department_code:
        return None
    if event.assignment_no is not None and event.assignment_no != current.assignment_no:
        return None
    department = table.department(current.department_code)
    if department is None:
        return None  # the department left the table since: the hotline reassigns by hand
    area = table.gazetteer.by_code(current.jurisdiction_code) if current.jurisdiction_code else None
    return Decision(department, f"reopen:{extra.get('reopens', 1)}", area, current.accused)


#: the rule of a 并案 reassignment: ``merge:<incident>:from:<the department routing chose>``
MERGE_RULE = "merge:"


def merging(link: IncidentLinked, current: Assignment, table: RoutingTable) -> Decision | None:
    """并案: a petition that joined an open incident goes to the department holding it. None
    when the assignment changed since the watch saw it (a return, the triage desk, a person
    who unlinked it: the assignment number moved on), when it is there already, when the
    holder left the table, or when the petition accuses the holder's own government (an
    accusation never goes to the accused)."""
    if link.assignment_no != current.assignment_no or link.department_code == current.department_code:
        return None
    department = table.department(link.department_code)
    if department is None or in_accused_government(department.code, current.accused):
        return None
    area = table.gazetteer.by_code(current.jurisdiction_code) if current.jurisdiction_code else None
    return Decision(department, f"{MERGE_RULE}{link.incident_id}:from:{current.department_code}", area,
                    current.accused)


def unlinking(event: PetitionActionTaken, current: Assignment, table: RoutingTable) -> Decision | None:
    """A person took the petition out of its incident: back to the department its own routing
    chose before the merge. None unless the assignment in force is the merge (`event` may
    name it by number) and that department is still in the table."""
    if not current.rule.startswith(MERGE_RULE) or ":from:" not in current.rule:
        return None
    if event.assignment_no is not None and event.assignment_no != current.assignment_no:
        return None
    incident, before = current.rule[len(MERGE_RULE):].rsplit(":from:", 1)
    department = table.department(before)
    if department is None:
        return None
    area = table.gazetteer.by_code(current.jurisdiction_code) if current.jurisdiction_code else None
    return Decision(department, f"unlinked:{incident}", area, current.accused)


def merge_reassignment(decision: Decision, current: Assignment, reason: str) -> Reassignment:
    """The reassignment of a merge or an unlink: the same facts, another department."""
    return Reassignment(_routing(current, decision, current.category, reason, current.returned_by),
                        current.returned_by, None, None)


@dataclass(frozen=True, slots=True)
class TriageRecord:
    """What the triage desk decided about a petition the classifier could not place: the
    prediction beside the person's choice, kept as training data."""

    petition_id: str
    assignment_no: int  # the assignment the desk held
    title: str
    content: str
    predicted_category: str | None
    predicted_confidence: float | None
    decided_category: str | None
    department_code: str
    decided_by: str
    note: str
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class Reassignment:
    """A petition's next assignment, after a return or the triage desk's choice."""

    routing: Routing
    returned_by: tuple[str, ...]  # every department that returned it, this one included
    returner: str | None  # the department whose return this is (None: a triage choice)
    triage: TriageRecord | None  # the desk's decision (None: a return)


def plan_action(event: PetitionActionTaken, current: Assignment, table: RoutingTable) -> Reassignment | None:
    """The reassignment an action causes; None for an action that reassigns nothing, or that
    is not about the assignment in force or not from its holder (it changes nothing).

    A return goes to the next department, never one that returned it, and to the triage
    desk after the table's number of returns (:meth:`RoutingTable.decide_after_return`); the
    desk's choice goes where it says (:func:`triage_choice`), with the category it names."""
    if event.action is ActionType.UNLINK:
        back = unlinking(event, current, table)
        return None if back is None else merge_reassignment(back, current, "unlinked")
    if event.action is ActionType.FOLLOW_UP:
        again = reopening(event, current, table)
        if again is None:
            return None
        return Reassignment(_routing(current, again, current.category, "reopened", current.returned_by),
                            current.returned_by, None, None)
    if event.action not in REASSIGNING or not is_in_force(
        current, department_code=event.department_code, assignment_no=event.assignment_no
    ):
        return None
    area = table.gazetteer.by_code(current.jurisdiction_code) if current.jurisdiction_code else None
    category = current.category
    triage: TriageRecord | None = None
    if event.action is ActionType.RETURN:
        returned_by = (*current.returned_by, event.department_code)
        decision = table.decide_after_return(
            category, area, returned_by, text=f"{current.title} {current.content}", accused=current.accused
        )
        reason, returner = "returned", event.department_code
    else:
        returned_by, returner = current.returned_by, None
        category = event.extra.get("category") or current.category
        decision = triage_choice(table, current, area, event.target_department_code)
        reason = "triage"
        triage = TriageRecord(
            event.petition_id, current.assignment_no, current.title, current.content, current.category,
            current.confidence, category, decision.department.code, event.department_code, event.note,
            event.occurred_at,
        )
    return Reassignment(_routing(current, decision, category, reason, returned_by), returned_by, returner, triage)


def _routing(current: Assignment, decision: Decision, category: str | None, reason: str,
             returned_by: tuple[str, ...]) -> Routing:
    return Routing(
        decision=decision, assignment_no=current.assignment_no + 1, category=category,
        confidence=current.confidence, reason=reason, excluded=returned_by, priority=current.priority,
        kind=current.kind, channel=current.channel, tracking_code=current.tracking_code, title=current.title,
        content=current.content, location=current.location, received_at=current.received_at,
        persons=current.persons, jurisdiction_source=None, repeat_of=current.repeat_of,
        group_petition=current.group_petition,
    )
