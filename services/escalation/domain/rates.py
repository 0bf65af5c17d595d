"""三率 per department from the clocks: 响应率 (response) and 解决率 (resolution).

* response rate: of the sign-for (签收) clocks whose outcome is known, the share stopped by
  an ``accept`` (or a ``resolve``, which implies it) no later than their deadline;
* resolution rate: of the resolution (办结) clocks whose outcome is known, the share stopped
  by ``resolve`` no later than their deadline.

A clock's outcome is known once it is stopped or its deadline has passed; clocks still
running inside their time count nowhere (neither met nor missed yet). 满意率 (satisfaction)
needs petitioner feedback (回访), which nothing collects: it is not computed here.

Pure: the caller aggregates ``escalation.clock`` over its window (see :data:`RATE_CLOCKS`)
and passes one :class:`ClockTally` per department and clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["RATE_CLOCKS", "ClockTally", "department_rates"]

#: rate label → (clock name, stop reasons that count as meeting it)
RATE_CLOCKS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "response": ("sign_for", ("accept", "resolve")),
    "resolution": ("resolution", ("resolve",)),
}


@dataclass(frozen=True, slots=True)
class ClockTally:
    department: str
    clock: str
    met: int  # stopped by a counting reason no later than the deadline
    decided: int  # stopped, or past the deadline


def department_rates(tallies: Iterable[ClockTally]) -> dict[tuple[str, str], float]:
    """(department, rate) → ratio in [0, 1]; departments with nothing decided are left out."""
    by_clock = {clock: rate for rate, (clock, _) in RATE_CLOCKS.items()}
    met: dict[tuple[str, str], int] = {}
    decided: dict[tuple[str, str], int] = {}
    for t in tallies:
        rate = by_clock.get(t.clock)
        if rate is None:
            continue
        if t.met < 0 or t.decided < 0 or t.met > t.decided:
            raise ValueError(f"impossible tally {t}")
        key = (t.department, rate)
        met[key] = met.get(key, 0) + t.met
        decided[key] = decided.get(key, 0) + t.decided
    return {key: met[key] / n for key, n in decided.items() if n > 0}
