"""A petition's assignment in force, and what a department's action may do to it.

Pure. The router holds one assignment per petition; a return (退单) or the triage desk's
choice replaces it with the next one (``assignment_no`` + 1). An action changes it only when
it is about the assignment in force and comes from the department holding it: an action on
an earlier assignment, or from a department that no longer holds the petition, arrived
after the petition moved on and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.router.domain.routing import Decision, RoutingTable
from shared.events import Channel, Kind, Location, Priority
from shared.reference.directory import in_accused_government
from shared.reference.places import Area


@dataclass(frozen=True, slots=True)
class Assignment:
    """A petition as the router assigned it last: the facts a reassignment is decided on."""

    petition_id: str
    tracking_code: str
    assignment_no: int
    department_code: str
    category: str | None
    confidence: float | None
    jurisdiction_code: str | None
    rule: str
    returned_by: tuple[str, ...]
    kind: Kind | None
    channel: Channel
    priority: Priority
    petitioner_key: str | None
    persons: int
    title: str
    content: str
    location: Location
    received_at: datetime
    accused: tuple[str, ...]
    repeat_of: str | None
    group_petition: bool


def is_in_force(assignment: Assignment, *, department_code: str, assignment_no: int | None) -> bool:
    """Whether an action by `department_code` about assignment `assignment_no` (None: the
    one in force, whichever it is) acts on `assignment`."""
    if assignment_no is not None and assignment_no != assignment.assignment_no:
        return False  # about an earlier assignment: already superseded
    return department_code == assignment.department_code


def triage_choice(
    table: RoutingTable, assignment: Assignment, jurisdiction: Area | None, target_code: str | None
) -> Decision:
    """The department the triage desk assigns a petition to.

    A target the table does not know, or a unit of the accused unit's own government (an
    accusation), keeps it at the desk, visibly: the rule names the refused target
    (``triage:unknown-target:<code>``, ``triage:target-is-accused:<code>``)."""
    target = table.department(target_code or "")
    if target is None:
        return Decision(table.triage, f"triage:unknown-target:{target_code}", jurisdiction)
    if in_accused_government(target.code, assignment.accused):
        return Decision(table.triage, f"triage:target-is-accused:{target.code}", jurisdiction)
    return Decision(target, "triage:manual", jurisdiction, assignment.accused)
