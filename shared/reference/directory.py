"""The unit directory: which departments, desks and offices exist, and their codes.

Shared reference data: the router routes to these departments, intake refuses an action by
a unit that does not exist, the escalation ladder addresses these units. Built from plain
data (the ``department_types``, ``departments`` and ``triage_department`` of the routing
table file, and the ``units`` rules of the ladder file) and a :class:`Gazetteer`; pure.

Codes are ``<area token>-<TYPE>``: ``A-HOUSING`` (A市住房和城乡建设局), ``A3-GOV``
(A3区人民政府), ``P-HRSS`` (the province's 人力资源和社会保障厅), generated for every area of
the gazetteer at the levels each type exists on, plus fixed ones; the triage desk's code is
configured (``TRIAGE`` in the demo table); the 12345 / 信访 offices are ``<city token>-12345``
and the province's ``P-12345`` (:class:`UnitRules`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.reference.places import CITY, DISTRICT, PROVINCE, Gazetteer

__all__ = ["LEVELS", "Department", "Directory", "UnitRules", "area_token", "in_accused_government", "offices"]

#: the levels a department type may exist on
LEVELS = (PROVINCE, CITY, DISTRICT)
#: the type of the triage desk (a department like any other, where a person decides)
TRIAGE_TYPE = "TRIAGE"


@dataclass(frozen=True, slots=True)
class Department:
    code: str
    name: str
    type: str
    area_code: str | None


@dataclass(frozen=True, slots=True)
class Directory:
    """The departments of the routing table file (the triage desk included) and how citizens
    name each type (`aliases`, used to recognise the unit an accusation is about)."""

    departments: tuple[Department, ...]
    triage: Department
    aliases: Mapping[str, tuple[str, ...]]
    #: below this classifier confidence a petition goes to the triage desk (None: the
    #: service's configured default)
    triage_threshold: float | None = None

    @classmethod
    def from_data(cls, data: Mapping[str, Any], gazetteer: Gazetteer) -> Directory:
        """Build from the parsed routing table file; raises ValueError when it is inconsistent."""
        if not isinstance(data, Mapping) or "department_types" not in data:
            raise ValueError("the routing table needs `department_types`")
        departments: list[Department] = []
        aliases: dict[str, tuple[str, ...]] = {}
        for type_code, spec in data["department_types"].items():
            levels = spec.get("levels", [])
            if not levels or set(levels) - set(LEVELS):
                raise ValueError(f"department type {type_code}: levels must be among {LEVELS}")
            aliases[type_code] = tuple(spec.get("aliases", []))
            for area in gazetteer.areas():
                if area.level not in levels:
                    continue
                suffix = spec.get("province_suffix", spec["suffix"]) if area.level == PROVINCE else spec["suffix"]
                departments.append(
                    Department(f"{area.token}-{type_code}", f"{area.name}{suffix}", type_code, area.code)
                )
        for extra in data.get("departments", []) or []:
            departments.append(
                Department(extra["code"], extra["name"], extra.get("type", "OTHER"), extra.get("area_code"))
            )
        if len({d.code for d in departments}) != len(departments):
            raise ValueError("duplicate department code")
        try:
            t = data["triage_department"]
            triage = Department(t["code"], t["name"], TRIAGE_TYPE, None)
        except (KeyError, TypeError):
            raise ValueError("the routing table needs `triage_department` with a code and a name") from None
        threshold = t.get("below_confidence")
        if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
            raise ValueError("triage_department.below_confidence must lie between 0 and 1")
        return cls(tuple(departments), triage, aliases, float(threshold) if threshold is not None else None)

    def codes(self) -> frozenset[str]:
        """Every department code, the triage desk's included."""
        return frozenset(d.code for d in self.departments) | {self.triage.code}


@dataclass(frozen=True, slots=True)
class UnitRules:
    """How unit codes are formed beyond the departments (the ladder file's ``units``)."""

    government_type: str = "GOV"
    city_office_type: str = "12345"
    province_token: str = "P"  # noqa: S105 - the province's unit-code prefix, not a secret

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> UnitRules:
        try:
            return cls(**(data or {}))
        except TypeError as exc:
            raise ValueError(f"ladder units: {exc}") from None


def offices(rules: UnitRules, gazetteer: Gazetteer) -> frozenset[str]:
    """The 12345 / 信访 offices: one per city of the gazetteer, and the province's."""
    found = {f"{a.token}-{rules.city_office_type}" for a in gazetteer.areas() if a.level == CITY}
    found.add(f"{rules.province_token}-{rules.city_office_type}")
    return frozenset(found)


def area_token(unit: str) -> str:
    """The area token of a unit code: the government it belongs to (``A3-HOUSING`` → ``A3``,
    ``A3-S01`` → ``A3``, ``P-12345`` → ``P``)."""
    return unit.split("-", 1)[0]


def in_accused_government(unit: str, accused: Iterable[str]) -> bool:
    """Whether `unit` belongs to the own government of a unit an accusation (检举控告) names:
    the same area (``A3-GOV`` and every ``A3-…`` when ``A3-HOUSING`` is accused). Such a unit
    never handles the accusation, never sees it, and is never told of it (信访工作条例: an
    accusation must not reach the accused)."""
    tokens = {area_token(a) for a in accused}
    return bool(tokens) and area_token(unit) in tokens
