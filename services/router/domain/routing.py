"""The routing table: which department takes a petition, and the rule that says so.

Pure: built from plain data (the parsed ``routing.yaml`` and a :class:`Gazetteer`).
Decisions walk the jurisdiction upwards (属地管理, 分级负责), skip departments that returned
the petition, and fall back to the territorial government (兜底).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from services.router.domain.places import CITY, DISTRICT, PROVINCE, Area, Gazetteer

TRIAGE = "TRIAGE"
MAX_RETURNS_BEFORE_TRIAGE = 2


@dataclass(frozen=True, slots=True)
class Department:
    code: str
    name: str
    type: str
    area_code: str | None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    category: str
    department_type: str
    prefer: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """A routing decision: the department, the rule that fired and the jurisdiction used."""

    department: Department
    rule: str
    jurisdiction: Area | None


class RoutingTable:
    """Departments and rules; immutable, so a reload swaps the whole table at once."""

    def __init__(
        self,
        *,
        gazetteer: Gazetteer,
        departments: list[Department],
        rules: list[Rule],
        triage: Department,
        version: str,
    ) -> None:
        self.gazetteer = gazetteer
        self.version = version
        self.triage = triage
        self._departments = {d.code: d for d in departments}
        self._departments[triage.code] = triage
        self._by_area_type = {(d.area_code, d.type): d for d in departments}
        self._rules: dict[str, list[Rule]] = {}
        for rule in sorted(rules, key=lambda r: not r.prefer):
            self._rules.setdefault(rule.category, []).append(rule)
        for rule in rules:
            if not any(t == rule.department_type for (_, t) in self._by_area_type):
                raise ValueError(f"rule {rule.id}: no department of type {rule.department_type}")

    @classmethod
    def from_data(cls, data: Mapping[str, Any], gazetteer: Gazetteer, version: str) -> RoutingTable:
        """Build from the parsed ``routing.yaml``; raises ValueError on an inconsistent table."""
        levels_of = {PROVINCE: PROVINCE, CITY: CITY, DISTRICT: DISTRICT}
        departments: list[Department] = []
        for type_code, spec in data["department_types"].items():
            for area in gazetteer.areas():
                if levels_of[area.level] not in spec["levels"]:
                    continue
                suffix = spec.get("province_suffix", spec["suffix"]) if area.level == PROVINCE else spec["suffix"]
                departments.append(
                    Department(f"{area.token}-{type_code}", f"{area.name}{suffix}", type_code, area.code)
                )
        for extra in data.get("departments", []) or []:
            departments.append(
                Department(extra["code"], extra["name"], extra.get("type", "OTHER"), extra.get("area_code"))
            )
        rules = [
            Rule(r["id"], r["category"], r["department_type"], bool(r.get("prefer", False)))
            for r in data["rules"]
        ]
        if len({r.id for r in rules}) != len(rules):
            raise ValueError("duplicate rule id")
        t = data["triage_department"]
        triage = Department(t["code"], t["name"], "TRIAGE", None)
        return cls(gazetteer=gazetteer, departments=departments, rules=rules, triage=triage, version=version)

    def departments(self) -> list[Department]:
        return list(self._departments.values())

    def department(self, code: str) -> Department | None:
        return self._departments.get(code)

    def decide(
        self,
        category: str | None,
        jurisdiction: Area | None,
        *,
        excluded: Collection[str] = (),
    ) -> Decision:
        """The department for `category` in `jurisdiction`, skipping `excluded` ones.

        Order: for each rule of the category (preferred first), the department of its type
        at the lowest level of the jurisdiction chain that has one; then the territorial
        governments from the lowest level up (兜底); then the triage desk.
        """
        chain = self.gazetteer.chain(jurisdiction or self.gazetteer.root)
        # Provincial bureaus take only what has no local jurisdiction: a local matter stays local.
        local = [a for a in chain if a.level != PROVINCE] or chain
        for rule in self._rules.get(category or "", []):
            for area in local:
                dept = self._by_area_type.get((area.code, rule.department_type))
                if dept is not None and dept.code not in excluded:
                    return Decision(dept, f"{rule.id}@{area.level}", jurisdiction)
        for area in chain:
            dept = self._by_area_type.get((area.code, "GOV"))
            if dept is not None and dept.code not in excluded:
                return Decision(dept, f"fallback:territorial@{area.level}", jurisdiction)
        return Decision(self.triage, "triage:no-candidate", jurisdiction)

    def decide_after_return(
        self, category: str | None, jurisdiction: Area | None, returned_by: Collection[str]
    ) -> Decision:
        """Reassignment after a 退单: exclude every department that returned it; triage after two."""
        if len(returned_by) >= MAX_RETURNS_BEFORE_TRIAGE:
            return Decision(self.triage, f"triage:returned-{len(returned_by)}-times", jurisdiction)
        decision = self.decide(category, jurisdiction, excluded=returned_by)
        return Decision(decision.department, f"reassign:{decision.rule}", jurisdiction)
