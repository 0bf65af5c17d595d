"""One incident, many reports: near-duplicate petitions in a recent window grouped into an
incident. Pure (datasketch's MinHash and LSH are arithmetic on the text).

Only petitions about the same place join one incident (the lowest area the router placed them
in; petitions placed nowhere join only each other): the same complaint written in two districts
is two incidents. Each text (title and content, personal numbers already masked upstream) becomes the set of its
character shingles (``shingle`` characters, after dropping punctuation, whitespace and digits,
which differ between paraphrases of one complaint: dates, house numbers, phone numbers); its
MinHash (``perm`` permutations) goes into an LSH index tuned for Jaccard ``threshold``. A new
petition joins the incident of the most similar petition the index returns whose estimated
Jaccard similarity reaches the threshold, else it starts its own. Petitions older than the
window (``window_seconds``) leave the index; an incident is open while it has a petition in the
window. A petition like the petitions of two incidents joins them into one (the largest keeps
its id): paraphrases of one complaint need not all be alike pairwise to be one incident. The
thresholds are data (``services/watch/data/watch.yaml``), chosen by the benchmark.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from datasketch import MinHash, MinHashLSH

__all__ = ["SCHEME", "ClusterPolicy", "Clusters", "Placed", "from_hashvalues", "shingles", "signature"]

#: datasketch's permutation scheme; a signature kept as numbers is read back with the same one
SCHEME = "affine32"

_NOISE = re.compile(r"[\s0-9０-９\*\-—_.,，。、；;：:！!？?（）()\[\]【】《》\"'“”‘’…·~～/\\|]+")


@dataclass(frozen=True, slots=True)
class ClusterPolicy:
    threshold: float = 0.4
    shingle: int = 2
    perm: int = 64
    window_seconds: int = 3 * 86400
    min_chars: int = 12  # shorter texts say too little to be matched
    alert_size: int = 3  # an incident with this many petitions is an alert


def shingles(text: str, k: int) -> set[str]:
    clean = _NOISE.sub("", text)
    return {clean[i:i + k] for i in range(max(len(clean) - k + 1, 0))}


def signature(text: str, policy: ClusterPolicy) -> MinHash | None:
    grams = shingles(text, policy.shingle)
    if sum(len(g) for g in grams) < policy.min_chars:
        return None
    m = MinHash(num_perm=policy.perm, seed=1, scheme=SCHEME)
    m.update_batch([g.encode("utf-8") for g in grams])
    return m


def from_hashvalues(values: list[int], policy: ClusterPolicy) -> MinHash:
    """A signature from the numbers :func:`signature`'s ``hashvalues`` held."""
    return MinHash(num_perm=policy.perm, seed=1, scheme=SCHEME, hashvalues=np.array(values, dtype=np.uint32))


@dataclass(frozen=True, slots=True)
class Placed:
    petition_id: str
    incident: str  # the incident's id: its first petition's id
    similarity: float  # to the petition it joined (1.0 for a new incident's first)
    new: bool
    merged: tuple[str, ...] = ()  # incidents this petition joined to `incident` (now part of it)
    moved: tuple[str, ...] = ()  # their petitions, now of `incident`


@dataclass
class Clusters:
    """The recent window's petitions, their incidents, and an LSH index over them."""

    policy: ClusterPolicy = field(default_factory=ClusterPolicy)

    def __post_init__(self) -> None:
        self._lsh = MinHashLSH(threshold=self.policy.threshold, num_perm=self.policy.perm)
        self._hashes: dict[str, MinHash] = {}
        self._incident: dict[str, str] = {}
        self._area: dict[str, str | None] = {}
        self._arrived: OrderedDict[str, float] = OrderedDict()  # petition -> when, oldest first
        self.members: dict[str, set[str]] = {}
        self.dropped: list[str] = []  # petitions expire() took out, for the caller to forget too

    def __len__(self) -> int:
        return len(self._hashes)

    def expire(self, now: float) -> list[str]:
        """Drop the petitions older than the window; the incidents left without one."""
        closed = []
        while self._arrived:
            pid, at = next(iter(self._arrived.items()))
            if now - at <= self.policy.window_seconds:
                break
            self._arrived.popitem(last=False)
            self.dropped.append(pid)
            self._lsh.remove(pid)
            del self._hashes[pid]
            self._area.pop(pid, None)
            incident = self._incident.pop(pid)
            left = self.members.get(incident)
            if left is not None:
                left.discard(pid)
                if not left:
                    del self.members[incident]
                    closed.append(incident)
        return closed

    def place(self, petition_id: str, text: str, at: float, area: str | None = None) -> Placed | None:
        """Put a petition about `area` into its incident (None: too short to match, or seen
        already)."""
        if petition_id in self._hashes:
            return None
        m = signature(text, self.policy)
        if m is None:
            return None
        return self.place_signature(petition_id, m, at, area)

    def restore(self, petition_id: str, hashvalues: list[int], at: float, area: str | None, incident: str) -> None:
        """Put back a petition placed before (the service's state, read back after a restart)."""
        if petition_id in self._hashes:
            return
        m = from_hashvalues(hashvalues, self.policy)
        self._add(petition_id, m, at, area, incident)

    def _add(self, petition_id: str, m: MinHash, at: float, area: str | None, incident: str) -> None:
        self._lsh.insert(petition_id, m)
        self._hashes[petition_id] = m
        self._incident[petition_id] = incident
        self._area[petition_id] = area
        self._arrived[petition_id] = at
        self._arrived.move_to_end(petition_id)
        self.members.setdefault(incident, set()).add(petition_id)

    def place_signature(self, petition_id: str, m: MinHash, at: float, area: str | None = None) -> Placed | None:
        """:meth:`place` for a text's signature (:func:`signature`)."""
        if petition_id in self._hashes:
            return None
        self.expire(at)
        best: dict[str, float] = {}  # incident -> the best similarity of its petitions to this one
        for other in self._lsh.query(m):
            if self._area.get(other) != area:
                continue
            sim = float(np.mean(self._hashes[other].hashvalues == m.hashvalues))
            if sim >= self.policy.threshold:
                incident = self._incident[other]
                best[incident] = max(best.get(incident, 0.0), sim)
        if not best:
            self._add(petition_id, m, at, area, petition_id)
            return Placed(petition_id, petition_id, 1.0, True)
        # a petition like those of two incidents joins them: the largest takes the others in
        ranked = sorted(best, key=lambda i: (-len(self.members.get(i, ())), -best[i], i))
        incident, merged = ranked[0], tuple(ranked[1:])
        moved: list[str] = []
        for other_incident in merged:
            for pid in self.members.pop(other_incident, set()):
                self._incident[pid] = incident
                self.members.setdefault(incident, set()).add(pid)
                moved.append(pid)
        self._add(petition_id, m, at, area, incident)
        return Placed(petition_id, incident, best[incident], False, merged, tuple(sorted(moved)))
