"""Who is calling: the principal every request is made by, whatever its credential.

A principal is a member of staff (or a machine acting as one) with one role and the scope
that role has: a ``department`` clerk acts for one or more department codes, a
``supervisor`` oversees one area's subtree of the gazetteer. How the principal was proven
(a token of the platform's own issuer, a city's OIDC provider, a console session) is the
adapters' business; the service layer only ever sees a :class:`Principal`. Pure: the
standard library only.

A staff identifier may travel on the bus (:meth:`Principal.actor`: who took an action); a
petitioner's identity never does.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ROLES", "Principal", "Role"]


class Role(StrEnum):
    #: hotline / reception staff: take petitions in, look them up
    OPERATOR = "operator"
    #: a clerk of one or more departments: their petitions, acting for them
    DEPARTMENT = "department"
    #: the triage desk: its queue, assigning what the classifier could not
    TRIAGE = "triage"
    #: a supervisor of one area's subtree: its petitions, 督办 and zero-report compliance
    SUPERVISOR = "supervisor"
    #: reads the audit log
    AUDITOR = "auditor"
    #: routing table, users, keys
    ADMIN = "admin"


ROLES = tuple(r.value for r in Role)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: `subject` (a staff id), its `role`, and the scope of that role
    (`departments` for a department clerk, `area` — a gazetteer area code — for a supervisor)."""

    subject: str
    role: Role
    departments: frozenset[str] = frozenset()
    area: str | None = None

    def __post_init__(self) -> None:
        if not self.subject:
            raise ValueError("a principal needs a subject")
        if self.role is Role.DEPARTMENT and not self.departments:
            raise ValueError("a department principal needs at least one department")
        if self.role is Role.SUPERVISOR and not self.area:
            raise ValueError("a supervisor principal needs an area")

    def actor(self) -> dict[str, str]:
        """Who acted, as events record it: the staff id and the role, nothing personal."""
        return {"subject": self.subject, "role": self.role.value}
