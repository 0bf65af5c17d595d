"""Surges: more petitions about one category in one area than that area's own history leads to
expect, per hourly and daily window. Pure.

**The baseline** is learnt from the stream itself, per key (area × category × window length):
an exponentially weighted moving average (EWMA) of the counts of the key's past windows and of
their squared deviation. Why EWMA rather than EARS C2 or a Poisson CUSUM:

* it needs two numbers per key, whatever the history's length (EARS C2 keeps the last seven
  to nine windows per key; hundreds of areas × categories × two window lengths add up), and
  those two numbers are what a faust table keeps and moves with its partition;
* windows with no petition (most of them, for most keys) cost nothing: a gap of g empty windows
  is applied at once (the mean decays by (1 − α)^g);
* a Poisson CUSUM detects slow drifts well, but a burst of complaints about one gas smell is a
  step, which a z-score on the window's count sees in the window it happens.

**The test**: a window's count `c` is a surge when `c ≥ min_count` and
`(c − μ) / σ ≥ z`, with σ = √max(variance, μ, floor) (at least Poisson's spread, and never
zero: an area that never wrote needs `min_count` petitions, not one). The alert closes when a
later window of the key is no longer a surge. Thresholds and minimum counts are data
(``services/watch/data/watch.yaml``), chosen from the benchmark (``python -m bench watch``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Baseline", "SurgePolicy", "Verdict", "judge_window", "update"]


@dataclass(frozen=True, slots=True)
class SurgePolicy:
    window_seconds: int
    min_count: int
    z: float
    alpha: float = 0.1  # the EWMA's weight of the newest window
    floor: float = 0.25  # the smallest variance (counts²) a key is given
    warmup_windows: int = 24  # windows a key's baseline needs before it may alert...
    warmup_min_count: int = 0  # ...unless its count reaches this (0: no exception)

    def __post_init__(self) -> None:
        if self.window_seconds <= 0 or self.min_count < 1 or self.z <= 0 or not 0 < self.alpha < 1:
            raise ValueError("a surge policy needs a positive window, min_count and z, and 0 < alpha < 1")


@dataclass(frozen=True, slots=True)
class Baseline:
    """A key's history: the EWMA of its window counts and of their squared deviation, the
    last window folded into them, and how many windows it has seen (empty ones included)."""

    mean: float = 0.0
    variance: float = 0.0
    window: int | None = None  # the index (start // window_seconds) of the last window folded in
    seen: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    surge: bool
    count: int
    expected: float
    z: float


def _decayed(base: Baseline, window: int, policy: SurgePolicy) -> Baseline:
    """`base` with the empty windows between its last one and `window` folded in."""
    if base.window is None:
        return Baseline(0.0, 0.0, window - 1, 0)
    gap = window - base.window - 1
    if gap <= 0:
        return base
    # each empty window: mean ← (1−α)·mean; var ← (1−α)·(var + α·mean²)
    mean, variance = base.mean, base.variance
    if gap > 200:  # long silence: the history has faded to nothing
        return Baseline(0.0, 0.0, window - 1, base.seen + gap)
    for _ in range(gap):
        variance = (1 - policy.alpha) * (variance + policy.alpha * mean * mean)
        mean = (1 - policy.alpha) * mean
    return Baseline(mean, variance, window - 1, base.seen + gap)


def judge_window(base: Baseline, window: int, count: int, policy: SurgePolicy) -> Verdict:
    """Whether `count` petitions in window `window` are a surge, against the key's history
    before that window."""
    prior = _decayed(base, window, policy)
    expected = prior.mean
    sigma = math.sqrt(max(prior.variance, expected, policy.floor))
    z = (count - expected) / sigma
    warm = prior.seen >= policy.warmup_windows or (policy.warmup_min_count and count >= policy.warmup_min_count)
    return Verdict(bool(warm) and count >= policy.min_count and z >= policy.z, count, expected, z)


def update(base: Baseline, window: int, count: int, policy: SurgePolicy) -> Baseline:
    """The key's history with window `window` (its final count) folded in. A surge is folded in
    only up to the threshold it crossed: one incident must not teach the baseline that such
    bursts are normal (the next one would go unseen)."""
    prior = _decayed(base, window, policy)
    sigma = math.sqrt(max(prior.variance, prior.mean, policy.floor))
    capped = min(float(count), max(prior.mean + policy.z * sigma, float(policy.min_count)))
    diff = capped - prior.mean
    mean = prior.mean + policy.alpha * diff
    variance = (1 - policy.alpha) * (prior.variance + policy.alpha * diff * diff)
    return Baseline(mean, variance, window, prior.seen + 1)
