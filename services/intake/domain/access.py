"""Who may see a petition, act on it, reveal its petitioner's contacts, and work with 督办.

The rules of the identity issue, pure (the caller loads the facts; nothing here reads a
database or a token):

* **operator** (hotline / reception staff): takes petitions in and looks any up (a caller
  asks about their case); sees the contacts of the petitions it took in itself.
* **department** (a clerk of one or more department codes): sees only the petitions ever
  assigned to one of its departments, acts only for its departments, and only the holding
  department reveals contacts.
* **triage**: the triage desk is a department like the others (its code is the routing
  table's); the desk's clerks see what the desk held and assign it.
* **supervisor** (an area of the gazetteer): sees the petitions whose jurisdiction lies in its
  area's subtree, decides extensions, opens and closes 督办 there, reveals contacts there, and
  takes a petition out of the incident the watch linked it to (``unlink``); it reads the
  early-warning alerts of its area (:mod:`services.intake.domain.alerts`).
* **auditor** reads the audit log; **admin** manages keys and reference data. Neither reads
  petitions.

**Accusations** (检举控告): the accused units, and every unit of the accused unit's own
government (the same area: ``A3-HOUSING`` accused shields ``A3-GOV`` and every ``A3-…``), never
see the petition, whatever their token says; a supervisor of that area neither.

A petition the caller may not see does not exist for it (``NotFound``, never ``Forbidden``: its
existence must not leak); an action the caller's role may never take is ``Forbidden``.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import Forbidden, NotFound
from shared.identity import Principal, Role
from shared.reference.directory import area_token, in_accused_government

__all__ = [
    "AreaScope",
    "PetitionFacts",
    "area_token",
    "can_see",
    "can_see_supervision",
    "check_acting_unit",
    "check_action",
    "check_visible",
    "may_reveal_contacts",
    "shielded",
]

#: what each role may do to a petition (the rules of services.intake.domain.actions say when)
ROLE_ACTIONS: dict[Role, frozenset[str]] = {
    Role.DEPARTMENT: frozenset({"accept", "return", "resolve", "contact", "request_extension", "pause", "resume"}),
    Role.TRIAGE: frozenset({"assign"}),
    # unlink: taking a petition out of the incident the watch merged it into (并案) overrides a
    # cross-department decision, so it is the area's supervisor's (the holder has 退单)
    Role.SUPERVISOR: frozenset({"approve_extension", "reject_extension", "unlink"}),
}


@dataclass(frozen=True, slots=True)
class PetitionFacts:
    """What the rules read of a petition."""

    id: str
    holder: str | None
    #: every department it was ever assigned to (the holder included)
    assigned: frozenset[str]
    #: the area code of its jurisdiction (None: unknown, which only the province oversees)
    jurisdiction: str | None
    accused: tuple[str, ...] = ()
    submitted_by: str | None = None


@dataclass(frozen=True, slots=True)
class AreaScope:
    """A supervisor's area: its own token (``A3``: the government it belongs to), and the
    area codes and unit-code tokens of its subtree (itself and every area below)."""

    own_token: str
    codes: frozenset[str]
    tokens: frozenset[str]
    is_root: bool = False


def shielded(principal: Principal, petition: PetitionFacts, scope: AreaScope | None = None) -> bool:
    """True when `principal` belongs to an accused unit's own government (an accusation)."""
    if not petition.accused:
        return False
    if any(in_accused_government(d, petition.accused) for d in principal.departments):
        return True
    return (principal.role is Role.SUPERVISOR and scope is not None
            and in_accused_government(f"{scope.own_token}-GOV", petition.accused))


def can_see(principal: Principal, petition: PetitionFacts, scope: AreaScope | None = None) -> bool:
    """Whether the petition exists for `principal` (see the module doc)."""
    if shielded(principal, petition, scope):
        return False
    if principal.role is Role.OPERATOR:
        return True
    if principal.role in (Role.DEPARTMENT, Role.TRIAGE):
        return bool(petition.assigned & principal.departments)
    if principal.role is Role.SUPERVISOR and scope is not None:
        if petition.jurisdiction is None:
            return scope.is_root
        return petition.jurisdiction in scope.codes
    return False


def check_visible(principal: Principal, petition: PetitionFacts, scope: AreaScope | None = None,
                  *, ref: str | None = None) -> None:
    """Raise :class:`NotFound` (as for a petition that does not exist) unless `principal` sees it."""
    if not can_see(principal, petition, scope):
        raise NotFound(f"no petition {ref or petition.id}")


def check_action(principal: Principal, action: str) -> None:
    """Raise :class:`Forbidden` when `principal`'s role never takes `action`."""
    if action not in ROLE_ACTIONS.get(principal.role, frozenset()):
        raise Forbidden(f"a {principal.role.value} principal cannot {action}", code="role_cannot_act")


def check_acting_unit(principal: Principal, unit: str, scope: AreaScope | None = None) -> None:
    """Raise :class:`Forbidden` unless `principal` may act in the name of `unit`: one of its
    departments (department, triage), or a unit of its area (supervisor)."""
    if principal.role is Role.SUPERVISOR:
        # the province oversees every unit, those of no gazetteer area (a zero-report unit) too
        if scope is not None and (scope.is_root or area_token(unit) in scope.tokens):
            return
    elif unit in principal.departments:
        return
    raise Forbidden(f"{principal.subject} does not act for {unit}", code="not_your_unit")


def can_see_supervision(principal: Principal, target_unit: str, accused: tuple[str, ...] = (),
                        scope: AreaScope | None = None) -> bool:
    """Whether a 督办 addressed to `target_unit` exists for `principal`: the unit's own
    clerks and the supervisors of its area see it (and nobody of an accused government)."""
    if accused and shielded(principal, PetitionFacts("", None, frozenset(), None, accused), scope):
        return False
    if principal.role is Role.SUPERVISOR:
        return scope is not None and (scope.is_root or area_token(target_unit) in scope.tokens)
    if principal.role is Role.DEPARTMENT:
        return target_unit in principal.departments
    return False


def may_reveal_contacts(principal: Principal, petition: PetitionFacts, scope: AreaScope | None = None) -> bool:
    """The holding department, the operator who took the petition in, a supervisor in scope."""
    if not can_see(principal, petition, scope):
        return False
    if principal.role is Role.DEPARTMENT:
        return petition.holder is not None and petition.holder in principal.departments
    if principal.role is Role.OPERATOR:
        return petition.submitted_by is not None and petition.submitted_by == principal.subject
    return principal.role is Role.SUPERVISOR
