"""Closing the loop (回访, 重办) and the 三率, as rules. Pure.

**Follow-up (回访).** Once a department resolves a petition, the hotline calls the petitioner
back by the follow-up deadline (``follow_up_workdays`` working days after the resolution). A
call that reaches nobody is an attempt; after ``max_attempts`` of them the petition is
``unreachable`` and left out of the rates. A call that reaches the petitioner records whether
the matter was resolved and how satisfied they are:

* resolved and ``satisfied`` or ``basically_satisfied`` → ``closed``;
* otherwise → ``reopened`` (重办): back to the department that resolved it, with a new
  resolution clock, counted against it; the reopening past ``max_reopens`` also goes to the
  supervisor of its area as a 督办.

**The 三率** (working definitions of DOMAIN.md; no official formula is published):

* 响应率 = assignments signed for within the sign-for limit / assignments;
* 解决率 = follow-ups rated resolved / follow-ups;
* 满意率 = (satisfied + w × basically satisfied) / follow-ups, w = ``basically_satisfied_weight``;
* 综合得分 = the weighted sum of the three (``score_weights``), ×100;

a follow-up is one that reached the petitioner (unreachable petitions are left out), counted
against the department that resolved the petition, in the month it was recorded. A rate with
no denominator is ``None`` (no data), never 0 or 100 %. Departments are ranked within their
area by the score (highest first; departments without a score come last, unranked).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

__all__ = [
    "SATISFACTIONS", "FollowUp", "KpiCounts", "LoopPolicy", "Outcome", "Rates", "decide_follow_up", "follow_up_due",
    "rank", "rates",
]

SATISFACTIONS = ("satisfied", "basically_satisfied", "unsatisfied")
#: statuses a follow-up may be recorded in (a reached call, or another attempt)
FOLLOW_UP_FROM = frozenset({"resolved"})


@dataclass(frozen=True, slots=True)
class LoopPolicy:
    follow_up_workdays: int = 1
    max_attempts: int = 3
    max_reopens: int = 2
    basically_satisfied_weight: float = 0.8
    score_weights: tuple[float, float, float] = (0.3, 0.3, 0.4)  # 响应率, 解决率, 满意率
    #: categories never shown on the public board
    hidden_categories: tuple[str, ...] = ("纪检监察",)

    def __post_init__(self) -> None:
        if self.follow_up_workdays < 1 or self.max_attempts < 1 or self.max_reopens < 0:
            raise ValueError("follow_up_workdays and max_attempts must be at least 1, max_reopens at least 0")
        if not 0 <= self.basically_satisfied_weight <= 1:
            raise ValueError("basically_satisfied_weight lies between 0 and 1")
        if any(w < 0 for w in self.score_weights) or abs(sum(self.score_weights) - 1) > 1e-9:
            raise ValueError("score_weights are three non-negative weights that add up to 1")

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> LoopPolicy:
        follow_up = data.get("follow_up") or {}
        kpis = data.get("kpis") or {}
        weights = kpis.get("score_weights") or {}
        return cls(
            follow_up_workdays=int(follow_up.get("workdays", 1)),
            max_attempts=int(follow_up.get("max_attempts", 3)),
            max_reopens=int((data.get("reopen") or {}).get("max_reopens", 2)),
            basically_satisfied_weight=float(kpis.get("basically_satisfied_weight", 0.8)),
            score_weights=(float(weights.get("response", 0.3)), float(weights.get("resolution", 0.3)),
                           float(weights.get("satisfaction", 0.4))),
            hidden_categories=tuple((data.get("board") or {}).get("hidden_categories", ("纪检监察",))),
        )


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A follow-up call as recorded: reached or not; if reached, the petitioner's verdict."""

    reached: bool
    resolved: bool | None = None
    satisfaction: str | None = None

    def __post_init__(self) -> None:
        if self.reached and (self.resolved is None or self.satisfaction not in SATISFACTIONS):
            raise ValueError("a follow-up that reached the petitioner records `resolved` and `satisfaction`")


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # closed, reopened, unreachable, or resolved (an attempt that reached nobody)
    attempts: int  # unanswered calls so far
    reopens: int  # reopenings so far, this one included
    supervise: bool  # this reopening goes to the area's supervisor as a 督办 too

    @property
    def counted(self) -> bool:
        """Whether this follow-up enters the rates (it reached the petitioner)."""
        return self.status in ("closed", "reopened")


def decide_follow_up(follow_up: FollowUp, *, attempts: int, reopens: int, policy: LoopPolicy) -> Outcome:
    """What a follow-up does to a resolved petition (`attempts`: calls that reached nobody
    before; `reopens`: its reopenings before)."""
    if not follow_up.reached:
        attempts += 1
        return Outcome("unreachable" if attempts >= policy.max_attempts else "resolved", attempts, reopens, False)
    if follow_up.resolved and follow_up.satisfaction in ("satisfied", "basically_satisfied"):
        return Outcome("closed", attempts, reopens, False)
    return Outcome("reopened", attempts, reopens + 1, reopens + 1 > policy.max_reopens)


@dataclass(frozen=True, slots=True)
class KpiCounts:
    """What the rates are computed from (the projection's counters, summed over a range)."""

    assignments: int = 0
    signed_in_time: int = 0
    follow_ups: int = 0
    rated_resolved: int = 0
    satisfied: int = 0
    basically_satisfied: int = 0
    unsatisfied: int = 0
    unreachable: int = 0
    reopened: int = 0
    resolutions: int = 0
    resolved_in_time: int = 0

    def __add__(self, other: KpiCounts) -> KpiCounts:
        return KpiCounts(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, ...]:
        return (self.assignments, self.signed_in_time, self.follow_ups, self.rated_resolved, self.satisfied,
                self.basically_satisfied, self.unsatisfied, self.unreachable, self.reopened, self.resolutions,
                self.resolved_in_time)


@dataclass(frozen=True, slots=True)
class Rates:
    response: float | None
    resolution: float | None
    satisfaction: float | None
    score: float | None


def _ratio(part: float, whole: int) -> float | None:
    return part / whole if whole else None


def rates(counts: KpiCounts, policy: LoopPolicy) -> Rates:
    """The three rates and the weighted score (None where there is nothing to measure; the
    score needs all three)."""
    response = _ratio(counts.signed_in_time, counts.assignments)
    resolution = _ratio(counts.rated_resolved, counts.follow_ups)
    satisfaction = _ratio(counts.satisfied + policy.basically_satisfied_weight * counts.basically_satisfied,
                          counts.follow_ups)
    parts = (response, resolution, satisfaction)
    score = None
    if all(p is not None for p in parts):
        score = 100 * sum(w * p for w, p in zip(policy.score_weights, parts, strict=True) if p is not None)
    return Rates(response, resolution, satisfaction, score)


def rank(scores: Mapping[str, float | None]) -> dict[str, int | None]:
    """Competition ranking (1, 2, 2, 4) by score, highest first; no score, no rank."""
    scored: Sequence[tuple[str, float]] = sorted(((k, v) for k, v in scores.items() if v is not None),
                                                 key=lambda kv: -kv[1])
    ranks: dict[str, int | None] = dict.fromkeys(scores)
    for i, (key, value) in enumerate(scored):
        ranks[key] = next(j for j, (_, v) in enumerate(scored) if v == value) + 1 if i else 1
    return ranks


def follow_up_due(resolved_at: datetime, workdays: int, is_workday: Callable[[date], bool], zone: tzinfo) -> datetime:
    """The end (23:59:59 local) of the `workdays`-th working day after the resolution's day."""
    day = resolved_at.astimezone(zone).date()
    counted = 0
    for _ in range(400):  # a year of rest days at most
        day += timedelta(days=1)
        if is_workday(day):
            counted += 1
            if counted == workdays:
                break
    return datetime.combine(day, time(23, 59, 59), tzinfo=zone)
