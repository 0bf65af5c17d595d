"""Repeat petitions (重复信访): the same person about the same matter within a window.

Pure. Similarity is the overlap coefficient (|A∩B| / min(|A|, |B|)) of the character
bigrams of the normalised title and opening of the content: robust to rewording and to a
short follow-up ("上次反映的问题还没解决…"), cheap, and explainable. Measured on 20,000 random
pairs of different citizens' messages from the data: median 0.03, 99.9th percentile 0.24; a
reworded follow-up of the same matter scores about 0.45. Only one person's own petitions
are ever compared, so the threshold of 0.4 leaves a wide margin.
"""

from __future__ import annotations

import re
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import repeat
from operator import lshift, or_

import numpy as np

WINDOW = timedelta(days=90)
THRESHOLD = 0.4
_NOISE = re.compile(r"[\s\W_0-9a-zA-Z]+", re.UNICODE)


def signature(title: str, content: str, limit: int = 400) -> frozenset[int]:
    """The bigram set of a petition's text (title plus the first `limit` characters).

    A bigram ``ab`` is the integer ``ord(a) << 21 | ord(b)`` (code points are below 2**21),
    so a signature packs into a compact byte string for the index (:func:`pack`)."""
    codes = array("I", _NOISE.sub("", f"{title}{content[:limit]}").encode("utf-32-le"))
    if sys.byteorder != "little":
        codes.byteswap()
    return frozenset(map(or_, map(lshift, codes, repeat(21, len(codes) - 1)), codes[1:]))


def pack(sig: frozenset[int]) -> bytes:
    """The signature as sorted little-endian 64-bit integers (what the index stores)."""
    values = array("q", sorted(sig))
    if sys.byteorder != "little":
        values.byteswap()
    return values.tobytes()


def packed_signatures(items: Iterable[tuple[str, str]], limit: int = 400) -> list[bytes]:
    """``pack(signature(title, content))`` of many texts at once: the same bytes, from one
    sort of the whole batch's bigrams (each tagged with its text's number above bit 42)
    instead of a set per text."""
    texts = [_NOISE.sub("", f"{title}{content[:limit]}") for title, content in items]
    if not texts:
        return []
    lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype="<u4").astype(np.int64)
    doc = np.repeat(np.arange(len(texts), dtype=np.int64), lens)
    same = doc[:-1] == doc[1:]  # a bigram never spans two texts
    tagged = (doc[:-1][same] << 42) | (codes[:-1][same] << 21) | codes[1:][same]
    tagged.sort()
    if tagged.size:
        first = np.empty(tagged.size, dtype=bool)
        first[0] = True
        np.not_equal(tagged[1:], tagged[:-1], out=first[1:])
        tagged = tagged[first]
    values = (tagged & ((1 << 42) - 1)).astype("<i8")
    bounds = np.searchsorted(tagged >> 42, np.arange(len(texts) + 1))
    return [values[bounds[i] : bounds[i + 1]].tobytes() for i in range(len(texts))]


def unpack(data: bytes) -> frozenset[int]:
    """Inverse of :func:`pack`; raises ValueError on bytes that are not whole integers."""
    if len(data) % 8:
        raise ValueError(f"a packed signature is a multiple of 8 bytes, got {len(data)}")
    values = array("q")
    values.frombytes(data)
    if sys.byteorder != "little":
        values.byteswap()
    return frozenset(values)


def from_bigrams(bigrams: Iterable[str]) -> frozenset[int]:
    """A signature from the bigram strings older index rows hold (migration 003)."""
    return frozenset(ord(b[0]) << 21 | ord(b[1]) for b in bigrams if len(b) == 2)


#: A signature as a set, or packed (:func:`pack`: what the index stores, compared as is).
Signature = frozenset[int] | bytes


def similarity(a: Signature, b: Signature) -> float:
    """Overlap coefficient of two signatures. Two packed ones are compared without unpacking
    (sorted integers: a binary search of the shorter in the longer, about a tenth of the cost
    of building the sets); the value is the same."""
    if isinstance(a, bytes) and isinstance(b, bytes):
        if len(a) % 8 or len(b) % 8:
            raise ValueError("a packed signature is a multiple of 8 bytes")
        if not a or not b:
            return 0.0
        short, long_ = np.frombuffer(a, dtype="<i8"), np.frombuffer(b, dtype="<i8")
        if len(short) > len(long_):
            short, long_ = long_, short
        at = np.minimum(np.searchsorted(long_, short), len(long_) - 1)
        return int(np.count_nonzero(long_[at] == short)) / len(short)
    a = unpack(a) if isinstance(a, bytes) else a
    b = unpack(b) if isinstance(b, bytes) else b
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


@dataclass(frozen=True, slots=True)
class Earlier:
    petition_id: str
    received_at: datetime
    signature: Signature
    department_code: str


@dataclass(frozen=True, slots=True)
class RepeatMatch:
    original: Earlier
    similarity: float


def find_original(
    sig: Signature, received_at: datetime, earlier: Iterable[Earlier], *, threshold: float = THRESHOLD
) -> RepeatMatch | None:
    """The earliest-received of the person's petitions routed before this one (`earlier`,
    originals) with similar text, received within the window on either side of it.

    Either side: petitions reach the router out of the order they were received in (each
    person's petitions are spread over partitions, so over router instances, and a
    partition may lag), so the petition routed first is the original and every similar one
    of the same person routed after it repeats it, even one received a little before it.
    Judging by receipt order alone would let each of the two stand as an original."""
    best: RepeatMatch | None = None
    for e in sorted(earlier, key=lambda e: e.received_at):
        if abs(received_at - e.received_at) > WINDOW:
            continue
        score = similarity(sig, e.signature)
        if score >= threshold:
            best = RepeatMatch(e, score)
            break
    return best
