"""The escalation ladder (四级联动): who is told, and when, after a deadline is missed.

A breach starts the ladder. Step 1 fires `levels[0].delay` after the breach, each further
step that level's delay after the previous step; after the last level the ladder repeats
at the last level every `repeat_every` until the clock is stopped. Every step names its
level, the unit it targets, and the rule that chose that unit; every step opens a 督办
(supervision order) whose reply is due `supervision_due` after the step.

Units are department codes ``<area token>-<TYPE>`` (``A-HOUSING`` = A市住房和城乡建设局,
``A3-GOV`` = A3区人民政府, ``P-…`` = the province). The mapping, all data-driven through
:class:`UnitRules`:

* ``handling_unit``: the department holding the petition.
* ``superior_unit``: for a functional bureau ``X-TYPE`` the people's government of the same
  area ``X-GOV``; for a government ``X-GOV`` the government of the area above (district
  ``A3`` → city ``A`` → province ``P``).
* ``district``: the people's government of the district / county of the petition's
  jurisdiction (``A3区`` → ``A3-GOV``); when the jurisdiction is not at district level, the
  district of the handling unit's own area.
* ``city``: the city's 12345 / 信访 office ``<city letter>-12345`` (from the jurisdiction,
  else from the handling unit's area); the province office when no city is known.

A level whose unit cannot be determined, or names a unit an earlier level already targets,
is skipped (the skip names its rule), so the ladder never tells the same unit twice in a
row. Pure: only the standard library; time is passed in.

Bounded by design (:func:`catch_up`): a ladder timer found due late (a service that was
down, a petition keyed in weeks after it was received, a clock that started years ago) does
not replay the steps it missed one by one. It fires the step reached *now*, once, names the
steps it stands for (``missed``), and plans the following step strictly after now. And a
petition holds at most ``max_open_supervisions_per_petition`` open 督办: a step beyond that
opens none (:func:`opens_supervision`), while the ladder still plans its next step.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.escalation.domain.deadlines import Unit, compute_due
from shared.reference.calendar import WorkCalendar
from shared.reference.directory import UnitRules, in_accused_government

__all__ = [
    "DEFAULT_MAX_OPEN_SUPERVISIONS",
    "LEVELS",
    "OVERDUE_LEVEL",
    "WALK_LIMIT",
    "CatchUp",
    "Delay",
    "Ladder",
    "LadderStep",
    "OverdueStep",
    "UnitRules",
    "catch_up",
    "opens_supervision",
    "plan_overdue",
    "plan_step",
    "resolve_targets",
    "superior_of",
]

#: the level of a 督办 opened because an earlier 督办's own deadline passed while open
OVERDUE_LEVEL = "overdue"

LEVELS = ("handling_unit", "superior_unit", "district", "city")

#: open 督办 a petition may hold before a ladder step opens no further one (see ladder.yaml)
DEFAULT_MAX_OPEN_SUPERVISIONS = 8

#: ladder steps :func:`catch_up` walks one by one before it jumps over whole repeats
WALK_LIMIT = 64

_CODE = re.compile(r"^(?P<area>[A-Z][0-9]*)-(?P<type>[A-Z0-9]+)$")
_DISTRICT_TOKEN = re.compile(r"^(?P<city>[A-Z])[0-9]+$")
_CITY_TOKEN = re.compile(r"^[A-Z]$")
_JURISDICTION_TOKEN = re.compile(r"^(?P<token>[A-Z][0-9]*)")


@dataclass(frozen=True, slots=True)
class Delay:
    amount: int
    unit: Unit

    @classmethod
    def parse(cls, data: Mapping[str, Any], where: str) -> Delay:
        try:
            unit = Unit(data["unit"])
        except (KeyError, ValueError):
            raise ValueError(f"{where}: unit must be one of {[u.value for u in Unit]}") from None
        amount = data.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ValueError(f"{where}: amount must be a non-negative int")
        return cls(amount, unit)

    def after(self, moment: datetime, calendar: WorkCalendar) -> datetime:
        return compute_due(moment, self.amount, self.unit, calendar).due


@dataclass(frozen=True, slots=True)
class LevelSpec:
    level: str
    delay: Delay


@dataclass(frozen=True, slots=True)
class Ladder:
    levels: tuple[LevelSpec, ...]
    repeat_every: Delay
    supervision_due: Delay
    units: UnitRules
    max_open_supervisions_per_petition: int = DEFAULT_MAX_OPEN_SUPERVISIONS

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Ladder:
        """Parse ``ladder.yaml``; raises ValueError on a malformed ladder."""
        levels = []
        for i, item in enumerate(data.get("levels") or []):
            level = item.get("level")
            if level not in LEVELS:
                raise ValueError(f"ladder level {i}: unknown level {level!r}; known: {LEVELS}")
            levels.append(LevelSpec(level, Delay.parse(item.get("delay") or {}, f"ladder level {level}")))
        if not levels:
            raise ValueError("the ladder needs at least one level")
        repeat = Delay.parse(data.get("repeat_every") or {}, "repeat_every")
        if repeat.amount == 0:
            raise ValueError("repeat_every must be positive (the ladder would spin)")
        units = UnitRules.from_data(data.get("units"))
        cap = data.get("max_open_supervisions_per_petition", DEFAULT_MAX_OPEN_SUPERVISIONS)
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ValueError("max_open_supervisions_per_petition must be a positive int")
        return cls(tuple(levels), repeat, Delay.parse(data.get("supervision_due") or {}, "supervision_due"),
                   units, cap)


@dataclass(frozen=True, slots=True)
class Target:
    level: str
    unit: str | None
    rule: str


@dataclass(frozen=True, slots=True)
class LadderStep:
    """One escalation step: fire it at `fire_at`, tell `target_unit`, open a 督办."""

    step: int  # 1-based; steps past the last level repeat the last level
    level: str
    target_unit: str
    rule: str
    fire_at: datetime
    supervision_due_at: datetime
    repeat: bool


def _area(code: str) -> tuple[str, str] | None:
    m = _CODE.match(code)
    return (m["area"], m["type"]) if m else None


def _parent_area(area: str, rules: UnitRules) -> str | None:
    if m := _DISTRICT_TOKEN.match(area):
        return m["city"] if m["city"] != rules.province_token else None
    if _CITY_TOKEN.match(area) and area != rules.province_token:
        return rules.province_token
    return None


def _jurisdiction_token(jurisdiction: Mapping[str, Any] | None) -> str | None:
    if not jurisdiction:
        return None
    m = _JURISDICTION_TOKEN.match(str(jurisdiction.get("name") or ""))
    return m["token"] if m else None


def _target(level: str, handling: str, jurisdiction: Mapping[str, Any] | None, rules: UnitRules) -> Target:
    gov = rules.government_type
    own = _area(handling)
    j_token = _jurisdiction_token(jurisdiction)
    j_level = (jurisdiction or {}).get("level")
    if level == "handling_unit":
        return Target(level, handling, "handling_unit:holder")
    if level == "superior_unit":
        if own is None:
            return Target(level, None, "superior_unit:no_area_in_code")
        area, typ = own
        if typ != gov:
            return Target(level, f"{area}-{gov}", "superior_unit:bureau->government_of_area")
        parent = _parent_area(area, rules)
        if parent is None:
            return Target(level, None, "superior_unit:no_area_above")
        return Target(level, f"{parent}-{gov}", "superior_unit:government->government_above")
    if level == "district":
        if j_token and j_level == "district" and _DISTRICT_TOKEN.match(j_token):
            return Target(level, f"{j_token}-{gov}", "district:jurisdiction")
        if own is not None and _DISTRICT_TOKEN.match(own[0]):
            return Target(level, f"{own[0]}-{gov}", "district:handling_unit_area")
        return Target(level, None, "district:unknown")
    # city
    for token, rule in ((j_token, "city:jurisdiction"), (own[0] if own else None, "city:handling_unit_area")):
        if token and token != rules.province_token:
            city = token[0]
            return Target(level, f"{city}-{rules.city_office_type}", rule)
    return Target(level, f"{rules.province_token}-{rules.city_office_type}", "city:province_office")


def resolve_targets(
    ladder: Ladder, handling_unit: str, jurisdiction: Mapping[str, Any] | None,
    accused: Collection[str] = (),
) -> list[Target]:
    """The ladder's levels with their units; skipped levels are dropped.

    A level is skipped when its unit is unknown, an earlier level already targets it, or it
    belongs to the own government of a unit an accusation names (`accused`): an accusation
    must not reach the accused (``A3-GOV`` is never told of an accusation of ``A3-HOUSING``).
    """
    seen: set[str] = set()
    targets: list[Target] = []
    for spec in ladder.levels:
        target = _target(spec.level, handling_unit, jurisdiction, ladder.units)
        if target.unit is None or target.unit in seen or in_accused_government(target.unit, accused):
            continue
        seen.add(target.unit)
        targets.append(target)
    if not targets:  # every level inside an accused government (a case routed before the rule)
        rules = ladder.units
        targets.append(Target(ladder.levels[-1].level, f"{rules.province_token}-{rules.city_office_type}",
                              "accusation:province_office"))
    return targets


def _delay_before(ladder: Ladder, targets: list[Target], step: int) -> tuple[Target, Delay, bool]:
    """Step `step`'s target, the delay that precedes it, and whether it repeats the last level."""
    if step <= len(targets):
        target = targets[step - 1]
        return target, next(spec.delay for spec in ladder.levels if spec.level == target.level), False
    return targets[-1], ladder.repeat_every, True


def _step(ladder: Ladder, targets: list[Target], step: int, fire_at: datetime, calendar: WorkCalendar) -> LadderStep:
    target, _, repeat = _delay_before(ladder, targets, step)
    assert target.unit is not None  # noqa: S101 - narrows the type: never None here
    return LadderStep(
        step=step,
        level=target.level,
        target_unit=target.unit,
        rule=f"ladder:{target.rule}" + (":repeat" if repeat else ""),
        fire_at=fire_at,
        supervision_due_at=ladder.supervision_due.after(fire_at, calendar),
        repeat=repeat,
    )


def plan_step(
    ladder: Ladder,
    step: int,
    *,
    previous_at: datetime,
    handling_unit: str,
    jurisdiction: Mapping[str, Any] | None,
    calendar: WorkCalendar,
    accused: Collection[str] = (),
) -> LadderStep:
    """Plan ladder step `step` (1-based), which follows the breach (step 1) or step-1.

    `previous_at` is when the breach fell due (for step 1) or when the previous step was
    planned to fire; basing each step on the plan, not on when it actually fired, keeps the
    schedule from drifting (a short downtime shifts nothing). Levels skipped by
    :func:`resolve_targets` take no time: their delay is not added.
    """
    if step < 1:
        raise ValueError(f"ladder steps count from 1, got {step}")
    targets = resolve_targets(ladder, handling_unit, jurisdiction, accused)
    _, delay, _ = _delay_before(ladder, targets, step)
    return _step(ladder, targets, step, delay.after(previous_at, calendar), calendar)


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What a due ladder timer does at `now` (:func:`catch_up`).

    `fire` is the step reached by now, fired once (its `fire_at` is when it fell due);
    `missed` counts the steps before it, from `first_missed` (the step the timer was
    planned for) on, that fell due without firing and are not fired on their own (0 when
    the timer is on time); `missed_since` is when the first of them fell due. `following`
    is the next step, its `fire_at` strictly after now. `estimated` is True when part of a
    very long run of repeats was counted by their mean length rather than walked.
    """

    fire: LadderStep
    following: LadderStep
    missed: int
    first_missed: int | None
    missed_since: datetime | None
    estimated: bool = False


def catch_up(
    ladder: Ladder,
    step: int,
    *,
    planned_at: datetime,
    now: datetime,
    handling_unit: str,
    jurisdiction: Mapping[str, Any] | None,
    calendar: WorkCalendar,
    accused: Collection[str] = (),
    walk_limit: int = WALK_LIMIT,
) -> CatchUp:
    """The step a ladder timer planned for step `step` at `planned_at` fires at `now`.

    Walks the plan (each step its delay after the previous step's *planned* time, as
    :func:`plan_step`) from `planned_at` to the last step due by `now`: that one fires, the
    ones before it are only counted. A timer on time fires its own step and plans the next
    exactly as :func:`plan_step` does. The walk is bounded: the levels are few, and in the
    repeat phase, after `walk_limit` steps, it jumps over the whole repeats that fit before
    `now` (their count taken from the mean length of the repeats walked; exact for minute
    and hour delays), then walks the last few. However old the clock, the work is a few
    hundred calendar computations and the result is one step.
    """
    if step < 1:
        raise ValueError(f"ladder steps count from 1, got {step}")
    if walk_limit < 1:
        raise ValueError("walk_limit must be positive")
    targets = resolve_targets(ladder, handling_unit, jurisdiction, accused)
    current, current_at = step, planned_at
    walked = jumps = 0
    estimated = False
    repeats_from: tuple[int, datetime] | None = None  # the first repeat walked: (step, time)
    while True:
        _, delay, repeat = _delay_before(ladder, targets, current + 1)
        next_at = delay.after(current_at, calendar)
        if next_at > now:
            break
        current, current_at = current + 1, next_at
        walked += 1
        if repeat and repeats_from is None:
            repeats_from = (current, current_at)
        if walked < walk_limit or repeats_from is None or current == repeats_from[0]:
            continue
        if jumps == 3:  # the calendar defeats the estimate: the step fires now, the plan restarts
            current_at, estimated = now, True
            break
        # jump over the whole repeats that fit before now, by their mean length so far
        span = (current_at - repeats_from[1]) / (current - repeats_from[0])
        whole = int((now - current_at) / span) - 1 if span > timedelta(0) else 0
        if whole >= 1:
            current, current_at = current + whole, current_at + span * whole
            estimated = estimated or delay.unit not in (Unit.MINUTE, Unit.HOUR)
        walked, jumps = 0, jumps + 1
    _, delay, _ = _delay_before(ladder, targets, current + 1)
    following = _step(ladder, targets, current + 1, delay.after(current_at, calendar), calendar)
    missed = current - step
    return CatchUp(
        fire=_step(ladder, targets, current, current_at, calendar),
        following=following,
        missed=missed,
        first_missed=step if missed else None,
        missed_since=planned_at if missed else None,
        estimated=estimated,
    )


def opens_supervision(ladder: Ladder, open_supervisions: int) -> bool:
    """Whether a ladder step of a petition that holds `open_supervisions` open 督办 opens one.

    No, once it holds ``max_open_supervisions_per_petition``: more orders about the same
    petition reach units that were already told; the step is counted and the ladder goes on.
    """
    return open_supervisions < ladder.max_open_supervisions_per_petition


def superior_of(unit: str, rules: UnitRules) -> tuple[str | None, str]:
    """The unit above `unit` (the ``superior_unit`` rule) and the rule that found it."""
    target = _target("superior_unit", unit, None, rules)
    return target.unit, target.rule


@dataclass(frozen=True, slots=True)
class OverdueStep:
    """What to do when a 督办 addressed to `overdue_unit` passed its due time still open.

    `target_unit` is the unit above the one that let it lapse, which receives a new 督办 (due
    `due_at`) supervising `overdue_unit`; None when there is no unit above (the province), in
    which case the lapse is only published and counted.
    """

    overdue_unit: str
    target_unit: str | None
    rule: str
    due_at: datetime | None


def plan_overdue(ladder: Ladder, overdue_unit: str, *, now: datetime, calendar: WorkCalendar) -> OverdueStep:
    """Escalate a lapsed 督办 one level above the unit it was addressed to.

    The chain is bounded: each lapse moves one government level up, and the province has none
    above it. The new 督办 gets the ladder's usual `supervision_due`, counted from `now`.
    """
    unit, rule = superior_of(overdue_unit, ladder.units)
    if unit is None or unit == overdue_unit:
        return OverdueStep(overdue_unit, None, f"overdue:{rule}:no_unit_above", None)
    return OverdueStep(overdue_unit, unit, f"overdue:{rule}", ladder.supervision_due.after(now, calendar))
