"""What may be done to a petition, by whom, from which status, and where it leads.

The department workflow of a 12345 / 信访 centre: the holding department signs for a
petition (签收 ``accept``), returns it (退单 ``return``, with a reason), resolves it (办结
``resolve``), records a contact with the petitioner, asks for one extension (延期
``request_extension``, with a reason), pauses the clock while waiting for the petitioner
(``pause``, with a reason) and resumes it; a unit other than the holder decides the
extension (``approve_extension`` / ``reject_extension``); the triage desk assigns a petition
it holds (``assign``). A supervisor closes a 督办 addressed to it (:func:`close_supervision`),
and takes a petition still being handled out of the incident the watch linked it to
(``unlink``, with a reason; the router gives it back to the department its own routing chose;
that it is linked at all the caller checks: ``not_linked``).

Pure: the caller loads the petition's state, asks here, and writes what comes back.
Refusals are :mod:`shared.errors` with stable codes (``not_holder``, ``invalid_state``,
``extension_already_requested``, ``no_pending_extension``, ``not_supervisor``,
``already_closed``, ``closes_on_report``, ``already_closing``).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import Conflict

__all__ = [
    "ACTION_RULES",
    "ActionRule",
    "PetitionState",
    "SupervisionState",
    "Transition",
    "close_supervision",
    "decide",
]


@dataclass(frozen=True, slots=True)
class ActionRule:
    """Who may take an action, from which statuses, and where it leads (None: stays)."""

    allowed_from: frozenset[str]
    leads_to: str | None
    by_holder: bool = True
    note_required: bool = False


ACTION_RULES: dict[str, ActionRule] = {
    "accept": ActionRule(frozenset({"assigned"}), "accepted"),
    "return": ActionRule(frozenset({"assigned", "accepted"}), "returned", note_required=True),
    "resolve": ActionRule(frozenset({"assigned", "accepted"}), "resolved"),
    "assign": ActionRule(frozenset({"triage"}), "triage"),
    "contact": ActionRule(frozenset({"assigned", "accepted"}), None),
    "request_extension": ActionRule(frozenset({"accepted", "paused"}), None, note_required=True),
    "approve_extension": ActionRule(frozenset({"accepted", "paused"}), None, by_holder=False),
    "reject_extension": ActionRule(frozenset({"accepted", "paused"}), None, by_holder=False, note_required=True),
    "pause": ActionRule(frozenset({"accepted"}), "paused", note_required=True),
    "resume": ActionRule(frozenset({"paused"}), None),
    # the status stays: the router's reassignment (a routed event) moves the petition
    "unlink": ActionRule(frozenset({"submitted", "triage", "assigned", "accepted", "paused", "returned"}), None,
                         by_holder=False, note_required=True),
}


@dataclass(frozen=True, slots=True)
class PetitionState:
    """What the rules read of a petition."""

    id: str
    status: str
    holder: str | None  # the department holding it (None: not routed yet)
    extension_state: str | None = None  # None, "requested", "approved", "rejected"
    status_before_pause: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """Where an action leaves the petition."""

    status: str
    extension_state: str | None


def decide(petition: PetitionState, action: str, *, acting: str) -> Transition:
    """The petition's status and extension state after `acting` takes `action`; raises
    :class:`Conflict` when the action is not allowed now (KeyError for an unknown action:
    the caller validated it)."""
    rule = ACTION_RULES[action]
    if rule.by_holder and petition.holder != acting:
        raise Conflict(
            f"department {acting} does not hold petition {petition.id}"
            f" (held by {petition.holder or 'nobody yet'})",
            code="not_holder",
        )
    if petition.status not in rule.allowed_from:
        raise Conflict(f"cannot {action} a petition in status {petition.status!r}", code="invalid_state")
    status = rule.leads_to or petition.status
    extension = petition.extension_state
    if action == "request_extension":
        if extension is not None:
            raise Conflict(f"an extension was already {extension}; only one is allowed",
                           code="extension_already_requested")
        extension = "requested"
    elif action in ("approve_extension", "reject_extension"):
        if extension != "requested":
            raise Conflict("there is no pending extension request", code="no_pending_extension")
        if acting == petition.holder:
            raise Conflict("the handling department cannot decide its own extension", code="not_supervisor")
        extension = "approved" if action == "approve_extension" else "rejected"
    elif action == "resume":
        status = petition.status_before_pause or "accepted"
    return Transition(status, extension)


@dataclass(frozen=True, slots=True)
class SupervisionState:
    """What the closing rule reads of a 督办."""

    id: str
    state: str  # "open" or "closed"
    subject: str  # "petition" or "zero_report"
    supervised_unit: str
    close_requested_by: str | None = None
    report_unit: str | None = None
    report_period: str | None = None


def close_supervision(order: SupervisionState, *, acting: str) -> None:
    """Raise :class:`Conflict` unless `acting` may close the 督办 now: it is open, no close is
    under way, it is about a petition (a zero-report 督办 closes when the unit reports), and
    `acting` is not the unit it supervises."""
    if order.state == "closed":
        raise Conflict(f"督办 {order.id} is closed", code="already_closed")
    if order.subject == "zero_report":
        raise Conflict(f"督办 {order.id} closes when {order.report_unit} reports for {order.report_period}",
                       code="closes_on_report")
    if order.close_requested_by is not None:
        raise Conflict(f"督办 {order.id} is being closed by {order.close_requested_by}", code="already_closing")
    if acting == order.supervised_unit:
        raise Conflict("the supervised unit cannot close its own 督办", code="not_supervisor")
