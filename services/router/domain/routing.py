"""The routing table: which department takes a petition, and the rule that says so.

Pure: built from plain data (the parsed ``routing.yaml`` and a :class:`Gazetteer`).
Decisions walk the jurisdiction upwards (属地管理, 分级负责), skip departments that returned
the petition, never hand an accusation to the unit it accuses (it goes one level up), and
fall back to the territorial government (兜底). Every decision names the rule that fired.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from shared.reference.directory import Department, Directory, in_accused_government
from shared.reference.places import CITY, DISTRICT, PROVINCE, Area, Gazetteer

TRIAGE = "TRIAGE"
GOV = "GOV"
MAX_RETURNS_BEFORE_TRIAGE = 2


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    category: str
    department_type: str
    prefer: bool = False
    keywords_any: tuple[str, ...] = ()

    def matches(self, category: str | None, text: str) -> bool:
        if category != self.category:
            return False
        return not self.keywords_any or any(k in text for k in self.keywords_any)


@dataclass(frozen=True, slots=True)
class Decision:
    """A routing decision: the department, the rule that fired and the jurisdiction used."""

    department: Department
    rule: str
    jurisdiction: Area | None
    accused: tuple[str, ...] = ()


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
        aliases: Mapping[str, tuple[str, ...]] | None = None,
        triage_threshold: float | None = None,
    ) -> None:
        self.gazetteer = gazetteer
        #: Below this classifier confidence a petition goes to the triage desk (None: the
        #: service's configured default applies).
        self.triage_threshold = triage_threshold
        self.version = version
        self.triage = triage
        self._departments = {d.code: d for d in departments}
        if len(self._departments) != len(departments):
            raise ValueError("duplicate department code")
        self._departments[triage.code] = triage
        self._by_area_type = {(d.area_code, d.type): d for d in departments}
        types = {d.type for d in departments}
        for rule in rules:
            if rule.department_type not in types:
                raise ValueError(f"rule {rule.id}: no department of type {rule.department_type}")
        # preferred rules first, otherwise file order (sorted() is stable)
        self._rules = sorted(rules, key=lambda r: not r.prefer)
        #: the rules, preferred ones first (read by the classifier's feedback: type -> category)
        self.rules: tuple[Rule, ...] = tuple(self._rules)
        self._aliases = dict(aliases or {})
        alternatives = sorted(
            {a for names in self._aliases.values() for a in names}, key=len, reverse=True
        )
        self._alias_pattern = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None
        self._type_of_alias = {a: t for t, names in self._aliases.items() for a in names}

    @classmethod
    def from_data(
        cls, data: Any, gazetteer: Gazetteer, version: str, *, directory: Directory | None = None
    ) -> RoutingTable:
        """Build from the parsed ``routing.yaml`` (and its departments, `directory`, when the
        caller has them already); raises ValueError on an inconsistent table."""
        if not isinstance(data, Mapping) or "rules" not in data:
            raise ValueError("routing table needs `department_types` and `rules`")
        directory = directory or Directory.from_data(data, gazetteer)
        rules = [
            Rule(
                str(r["id"]),
                str(r["category"]),
                str(r["department_type"]),
                bool(r.get("prefer", False)),
                tuple(r.get("keywords_any", []) or []),
            )
            for r in data["rules"]
        ]
        if len({r.id for r in rules}) != len(rules):
            raise ValueError("duplicate rule id")
        if GOV not in data["department_types"]:
            raise ValueError("the GOV department type is required: it is the fallback (兜底)")
        return cls(
            gazetteer=gazetteer, departments=list(directory.departments), rules=rules, triage=directory.triage,
            version=version, aliases=directory.aliases, triage_threshold=directory.triage_threshold,
        )

    def departments(self) -> list[Department]:
        return list(self._departments.values())

    def department(self, code: str) -> Department | None:
        return self._departments.get(code)

    def superior(self, dept: Department) -> Department | None:
        """The unit one level up: a bureau's own government, a government's parent government."""
        if dept.area_code is None:
            return None
        area = self.gazetteer.by_code(dept.area_code)
        if area is None:
            return None
        if dept.type != GOV:
            return self._by_area_type.get((area.code, GOV))
        if area.parent is None:
            return None
        return self._by_area_type.get((area.parent, GOV))

    def accused_units(self, text: str, jurisdiction: Area | None) -> tuple[str, ...]:
        """Units an accusation names: "<place><unit>" precisely, a bare unit name within the
        petition's jurisdiction (the lowest level that has such a unit)."""
        if self._alias_pattern is None:
            return ()
        chain = self.gazetteer.chain(jurisdiction or self.gazetteer.root)
        found: list[str] = []
        for m in self._alias_pattern.finditer(text):
            dept_type = self._type_of_alias[m.group(0)]
            before = text[max(0, m.start() - 6) : m.start()]
            named = self.gazetteer.extract(before[-4:]) if before else None
            if named is None:
                # "区政府"/"县政府"/"市政府": the level is in the word just before the alias
                level = ({"区": DISTRICT, "县": DISTRICT, "市": CITY, "省": PROVINCE}.get(before[-1:])
                         if before else None)
                if dept_type == GOV and level is None:
                    continue  # a bare "政府" ("请政府帮忙") names no unit
                candidates = [a for a in chain if level is None or a.level == level]
            else:
                candidates = [named]
            for area in candidates:
                dept = self._by_area_type.get((area.code, dept_type))
                if dept is not None:
                    if dept.code not in found:
                        found.append(dept.code)
                    break
        return tuple(found)

    def decide(
        self,
        category: str | None,
        jurisdiction: Area | None,
        *,
        text: str = "",
        excluded: Collection[str] = (),
        accused: Collection[str] = (),
    ) -> Decision:
        """The department for `category` in `jurisdiction`.

        Order: the rules of the category that match the text (preferred first), each at the
        lowest level of the jurisdiction that has a department of its type; then the
        territorial governments from the lowest level up (兜底); then the triage desk.
        Departments in `excluded` (they returned it) are skipped; an accusation never goes to
        a unit of the accused unit's own government (:func:`in_accused_government`: the accused
        ``A3-HOUSING`` shields ``A3-GOV`` and every ``A3-…``): it goes up to the superior
        units until one lies outside that government (``A-GOV``).
        """
        base = self._decide(category, jurisdiction, text, excluded)
        if not in_accused_government(base.department.code, accused):
            return Decision(base.department, base.rule, jurisdiction, tuple(accused))
        dept: Department | None = base.department
        while dept is not None and (in_accused_government(dept.code, accused) or dept.code in excluded):
            dept = self.superior(dept)
        if dept is None:
            return Decision(self.triage, "triage:accused-unit-has-no-superior", jurisdiction, tuple(accused))
        return Decision(dept, f"accusation:above:{base.department.code}", jurisdiction, tuple(accused))

    def _decide(
        self, category: str | None, jurisdiction: Area | None, text: str, excluded: Collection[str]
    ) -> Decision:
        chain = self.gazetteer.chain(jurisdiction or self.gazetteer.root)
        # Provincial bureaus take only what has no local jurisdiction: a local matter stays local.
        local = [a for a in chain if a.level != PROVINCE] or chain
        for rule in self._rules:
            if not rule.matches(category, text):
                continue
            for area in local:
                dept = self._by_area_type.get((area.code, rule.department_type))
                if dept is not None and dept.code not in excluded:
                    return Decision(dept, f"{rule.id}@{area.level}", jurisdiction)
        for area in chain:
            dept = self._by_area_type.get((area.code, GOV))
            if dept is not None and dept.code not in excluded:
                return Decision(dept, f"fallback:territorial@{area.level}", jurisdiction)
        return Decision(self.triage, "triage:no-candidate", jurisdiction)

    def decide_after_return(
        self,
        category: str | None,
        jurisdiction: Area | None,
        returned_by: Collection[str],
        *,
        text: str = "",
        accused: Collection[str] = (),
    ) -> Decision:
        """Reassignment after a 退单: exclude every department that returned it; triage after two."""
        if len(returned_by) >= MAX_RETURNS_BEFORE_TRIAGE:
            return Decision(self.triage, f"triage:returned-{len(returned_by)}-times", jurisdiction)
        decision = self.decide(category, jurisdiction, text=text, excluded=returned_by, accused=accused)
        return Decision(decision.department, f"reassign:{decision.rule}", jurisdiction, decision.accused)
