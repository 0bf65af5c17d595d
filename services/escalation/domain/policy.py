"""SLA policies: which clocks a petition gets, when each starts and stops, and its timers.

Pure: built from the parsed ``policies.yaml``; time is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

UNITS = frozenset({"minute", "hour", "day", "workday"})


@dataclass(frozen=True, slots=True)
class ClockSpec:
    name: str
    amount: int
    unit: str
    starts: str  # "received" | "assigned"
    stops_on: frozenset[str]
    on_reassign: str  # "restart" | "keep"
    pausable: bool = False
    extension_max_days: int = 0  # 0: no extension (延期) allowed on this clock


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    match: Mapping[str, Any]
    clocks: tuple[ClockSpec, ...]

    def matches(self, facts: Mapping[str, str | None]) -> bool:
        """True when every key of `match` fits `facts`.

        A scalar must equal the fact; a list matches any of its values; ``category_prefix``
        (a list) matches a category path (``一级/二级/三级``) that starts with one of them.
        """
        for key, wanted in self.match.items():
            if key == "category_prefix":
                category = facts.get("category") or ""
                if not any(category == p or category.startswith(p + "/") for p in wanted):
                    return False
            elif isinstance(wanted, (list, tuple)):
                if facts.get(key) not in wanted:
                    return False
            elif facts.get(key) != wanted:
                return False
        return True


@dataclass(frozen=True, slots=True)
class PolicyBook:
    policies: tuple[Policy, ...]
    warning_fractions: tuple[float, ...]
    #: the clocks a reopened petition (重办) gets again, whatever its policy (`reopen:` in the
    #: book; their clocks' policy is recorded as ``reopen``)
    reopen: tuple[ClockSpec, ...] = ()

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PolicyBook:
        """Parse and validate; raises ValueError on a malformed book."""
        fractions = tuple(sorted(float(f) for f in data.get("warning_fractions", [0.5, 0.75, 0.9])))
        if any(not 0 < f < 1 for f in fractions):
            raise ValueError("warning fractions must lie strictly between 0 and 1")
        policies = [Policy(p["id"], dict(p.get("match") or {}), _clocks(p["id"], p["clocks"]))
                    for p in data["policies"]]
        if not policies or policies[-1].match:
            raise ValueError("the last policy must match everything (an empty `match`)")
        return cls(tuple(policies), fractions, _clocks(REOPEN, data.get("reopen") or {}))

    def select(
        self, *, channel: str | None, kind: str | None, priority: str | None,
        category: str | None = None,
    ) -> Policy:
        """The first policy whose `match` fits the petition (its id names the rule)."""
        facts = {"channel": channel, "kind": kind, "priority": priority, "category": category}
        for policy in self.policies:
            if policy.matches(facts):
                return policy
        raise AssertionError("unreachable: the last policy matches everything")


#: the policy id of the clocks armed by a reopening
REOPEN = "reopen"


def _clocks(policy_id: str, specs: Mapping[str, Any]) -> tuple[ClockSpec, ...]:
    clocks = []
    for name, spec in specs.items():
        if spec["unit"] not in UNITS:
            raise ValueError(f"policy {policy_id} clock {name}: unknown unit {spec['unit']!r}")
        if int((spec.get("extension") or {}).get("max_days", 0)) < 0:
            raise ValueError(f"policy {policy_id} clock {name}: extension max_days must be >= 0")
        if int(spec["amount"]) <= 0:
            raise ValueError(f"policy {policy_id} clock {name}: amount must be positive")
        if spec.get("starts", "received") not in ("received", "assigned"):
            raise ValueError(f"policy {policy_id} clock {name}: starts must be received|assigned")
        if spec.get("on_reassign", "keep") not in ("restart", "keep"):
            raise ValueError(f"policy {policy_id} clock {name}: on_reassign must be restart|keep")
        clocks.append(ClockSpec(
            name=name, amount=int(spec["amount"]), unit=spec["unit"], starts=spec.get("starts", "received"),
            stops_on=frozenset(spec.get("stops_on", ["resolve"])), on_reassign=spec.get("on_reassign", "keep"),
            pausable=bool(spec.get("pausable", False)),
            extension_max_days=int((spec.get("extension") or {}).get("max_days", 0)),
        ))
    return tuple(clocks)


def find_clock(book: PolicyBook, policy_id: str, clock: str) -> ClockSpec | None:
    """The spec of `clock` in policy `policy_id` (None when the book no longer has it)."""
    if policy_id == REOPEN:
        return next((c for c in book.reopen if c.name == clock), None)
    for policy in book.policies:
        if policy.id == policy_id:
            return next((c for c in policy.clocks if c.name == clock), None)
    return None


@dataclass(frozen=True, slots=True)
class PlannedTimer:
    kind: str  # "warning" | "breach"
    fraction: float
    fire_at: datetime


def plan_timers(started_at: datetime, due_at: datetime, fractions: tuple[float, ...]) -> list[PlannedTimer]:
    """Warnings at each fraction of the natural time between start and due, then the breach."""
    span = due_at - started_at
    timers = [PlannedTimer("warning", f, started_at + span * f) for f in fractions]
    timers.append(PlannedTimer("breach", 1.0, due_at))
    return timers
