"""The end-to-end benchmark's rules, pure (no I/O): percentiles, the open-loop schedule, what
counts as a sustained rate, and the search for the highest one. Unit-tested in
tests/unit/test_e2e_rules.py; used by bench/e2e_bench.py and bench/e2e_load.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: a request not sent within this many seconds of its scheduled time is not sent at all and
#: counts as "late" (open loop: the schedule never waits for answers)
LATE_AFTER_SECONDS = 1.0
#: the sustained-rate rule's bounds (see :func:`sustained`)
P99_LIMIT_SECONDS = 1.0
DRAIN_LIMIT_SECONDS = 10.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by the nearest-rank method: the smallest value with at
    least q % of the values at or below it (p100 is the max); None for no values."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    """p50, p99 and max of a set of latencies (seconds), and how many there were."""

    count: int
    p50: float | None
    p99: float | None
    max: float | None

    def cell(self) -> str:
        """``p50/p99/max`` in milliseconds, ``-`` when nothing was measured."""
        if not self.count:
            return "-"
        return "/".join(_ms(v) for v in (self.p50, self.p99, self.max))


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    return f"{ms:.0f}" if ms >= 10 else f"{ms:.1f}"


def summarize(values: Sequence[float]) -> Summary:
    return Summary(len(values), percentile(values, 50), percentile(values, 99), max(values) if values else None)


def schedule(i: int, rate: float) -> float:
    """Seconds after the step's start at which request `i` is sent (open loop: whatever the
    answers to earlier requests, request i leaves at i / rate)."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    return i / rate


def due(now: float, sent: int, total: int, rate: float) -> int:
    """How many requests are due at `now` seconds after the start (at least `sent`, at most
    `total`): the scheduler sends every request from `sent` up to this index at once."""
    if now < 0:
        return sent
    return min(total, max(sent, math.floor(now * rate) + 1))


def is_late(scheduled: float, now: float, late_after: float = LATE_AFTER_SECONDS) -> bool:
    """A request that could not leave within `late_after` seconds of its time is dropped."""
    return now - scheduled > late_after


@dataclass(frozen=True)
class StepOutcome:
    """What the rule needs to know of one step at a fixed rate."""

    scheduled: int
    accepted: int  # answered 202
    late: int  # never sent: not on time (generator behind, or every in-flight slot taken)
    errors: int  # any other answer, a timeout or a broken connection
    p99_accepted: float | None  # submit -> 202, seconds
    #: seconds from the end of the step until the last accepted petition was routed; None
    #: when some accepted petition was not routed at all while the bench waited (or, for the
    #: baseline, when there is no routing: pass ``routing=False``)
    drained_after: float | None
    routed: int = 0


def sustained(o: StepOutcome, *, routing: bool = True, p99_limit: float = P99_LIMIT_SECONDS,
              drain_limit: float = DRAIN_LIMIT_SECONDS) -> tuple[bool, str]:
    """The rate is sustained when every scheduled request was sent on time and answered 202,
    the p99 of submit -> 202 is under `p99_limit`, and (with `routing`) every accepted
    petition was routed, the last of them within `drain_limit` seconds of the step's end
    (the router's backlog drains). Returns the verdict and, when it fails, why."""
    why = []
    if o.late:
        why.append(f"{o.late} not sent on time")
    if o.errors:
        why.append(f"{o.errors} errors")
    if o.accepted + o.late + o.errors < o.scheduled:
        why.append(f"{o.scheduled - o.accepted - o.late - o.errors} unanswered")
    if o.accepted == 0:
        why.append("nothing accepted")
    if o.p99_accepted is None or o.p99_accepted >= p99_limit:
        why.append(f"p99 {_ms(o.p99_accepted)} ms >= {p99_limit * 1000:.0f} ms")
    if routing:
        if o.routed < o.accepted:
            why.append(f"{o.accepted - o.routed} accepted but not routed")
        elif o.drained_after is None or o.drained_after > drain_limit:
            why.append(f"routing backlog drained after {o.drained_after or float('nan'):.1f}s > {drain_limit:.0f}s")
    return not why, "; ".join(why)


def highest_sustained(passed: Sequence[float], failed: Sequence[float]) -> tuple[float, bool]:
    """The highest rate that passed below every failed one (0 when none did), and whether it is
    bounded above (some rate above it failed). A pass above a failure (noise on a shared
    machine) does not count: the figure is what held up to the first failure."""
    first_failure = min(failed, default=math.inf)
    below = [p for p in passed if p < first_failure]
    return max(below, default=0.0), first_failure < math.inf


def next_rate(passed: Sequence[float], failed: Sequence[float], precision: float = 0.1) -> float | None:
    """The next rate of the search for the highest sustained one: the midpoint between
    :func:`highest_sustained` and the lowest rate that failed, rounded to a round number (a
    twentieth of the failed rate's power of ten: 5 under 100, 50 under 1,000); None when the two
    are within `precision` of the failed rate (or 1/s) of each other, or when nothing failed
    (the highest rate tried is then only a lower bound)."""
    lo, bounded = highest_sustained(passed, failed)
    if not bounded:
        return None
    hi = min(failed)
    if hi - lo <= max(1.0, precision * hi):
        return None
    grain = max(1.0, 10 ** math.floor(math.log10(hi)) / 20)
    mid = round((lo + hi) / 2 / grain) * grain
    if mid <= lo or mid >= hi:
        return None
    return mid


def parse_rates(text: str) -> list[float]:
    """``"100,500,1000"`` -> [100.0, 500.0, 1000.0] (sorted, positive, duplicates dropped)."""
    rates = sorted({float(t) for t in text.replace(" ", "").split(",") if t})
    if not rates or rates[0] <= 0:
        raise ValueError(f"rates must be positive numbers, comma-separated: {text!r}")
    return rates


def parse_brokers(text: str) -> list[int]:
    """``"1,3"`` -> [1, 3]."""
    counts = [int(t) for t in text.replace(" ", "").split(",") if t]
    if not counts or min(counts) < 1:
        raise ValueError(f"broker counts must be positive integers, comma-separated: {text!r}")
    return list(dict.fromkeys(counts))
