"""Inference for the 一级 category classifier: numpy/scipy only, no pickled objects.

The artefact is two files in one directory:

* ``model.json``: metadata (format, categories, feature spec, provenance).
* ``model.npz``: plain numeric arrays, loaded with ``allow_pickle=False``.

Features (see ``train.py`` for how they are fitted): for each field (title, content) the text
is lower-cased and runs of whitespace collapsed, then every character and every pair of
adjacent characters is looked up in that field's vocabulary. A term is encoded as an integer
key: a single character is its code point ``c``; a pair ``ab`` is ``((a + 1) << 21) | b``
(code points are < 2**21, so the two ranges never collide). Each field's vector is
``(1 + log tf) * idf``, L2-normalised; the title vector is scaled by ``title_weight``, the two
are concatenated and L2-normalised again. A linear model gives one decision score per class
and a small multinomial logistic layer over those scores gives calibrated probabilities.

Vocabulary keys are stored sorted, so a term's column is its position in the key array and
lookup is one ``np.searchsorted`` over the whole batch.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ARTEFACT_DIR = Path(__file__).resolve().parent / "artefacts"
META_FILE = "model.json"
ARRAYS_FILE = "model.npz"
FORMAT = "petition-category-linear/1"
FIELDS = ("title", "content")

_WHITESPACE = re.compile(r"\s\s+")
_PAIR_SHIFT = 21


def normalise_text(text: str | None) -> str:
    """The preprocessing applied before n-grams, shared by training and inference."""
    if not text:
        return ""
    return _WHITESPACE.sub(" ", text.lower())


def term_key(term: str) -> int:
    """Integer key of a 1- or 2-character term (see module docstring)."""
    if len(term) == 1:
        return ord(term)
    if len(term) == 2:
        return ((ord(term[0]) + 1) << _PAIR_SHIFT) | ord(term[1])
    raise ValueError(f"only 1- and 2-character terms are supported, got {term!r}")


@dataclass(frozen=True)
class Prediction:
    category: str
    confidence: float
    scores: dict[str, float] = field(default_factory=dict, compare=False)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: Fibonacci hashing
_SMALL = 1 << 21  # keys below are code points


class KeyIndex:
    """Position of each term key in a sorted key array, by open addressing.

    ``np.searchsorted`` over a vocabulary of ~10**5 keys costs a cache miss per halving for
    each of the ~10**5 terms of a batch; a table at most a quarter full answers most lookups
    with one probe. Built at load time from the artefact's sorted keys (nothing new is stored).
    """

    def __init__(self, keys: np.ndarray) -> None:
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        # Single characters (keys below 2**21) are looked up directly by code point.
        small = keys[keys < _SMALL]
        self._direct = np.full(int(small.max()) + 1 if small.size else 1, -1, dtype=np.int64)
        self._direct[small] = np.flatnonzero(keys < _SMALL)
        bits = max(4, int(np.ceil(np.log2(max(len(keys), 1) * 4))))
        self._mask = (1 << bits) - 1
        self._shift = np.uint64(64 - bits)
        self._keys = np.full(1 << bits, -1, dtype=np.int64)  # keys are >= 0; -1 marks empty
        self._pos = np.zeros(1 << bits, dtype=np.int64)
        pending = np.arange(len(keys))
        slot = self._home(keys)
        while pending.size:
            s = slot[pending]
            free = self._keys[s] == -1
            taken, first = np.unique(s[free], return_index=True)
            winners = pending[free][first]
            self._keys[taken] = keys[winners]
            self._pos[taken] = winners
            placed = np.zeros(len(keys), dtype=bool)
            placed[winners] = True
            pending = pending[~placed[pending]]
            slot[pending] = (slot[pending] + 1) & self._mask

    def _home(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * _GOLDEN) >> self._shift).astype(np.int64)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Positions of `keys` in the sorted array, -1 for keys not in it."""
        keys = np.asarray(keys, dtype=np.int64)
        pos = np.full(len(keys), -1, dtype=np.int64)
        small = keys < len(self._direct)
        pos[small] = self._direct[keys[small]]
        active = np.flatnonzero(keys >= _SMALL)
        slot = self._home(keys)
        while active.size:
            s = slot[active]
            found = self._keys[s]
            hit = found == keys[active]
            pos[active[hit]] = self._pos[s[hit]]
            go_on = ~hit & (found != -1)
            active = active[go_on]
            slot[active] = (s[go_on] + 1) & self._mask
        return pos


@dataclass(frozen=True)
class _Field:
    keys: np.ndarray  # int64, sorted, unique
    idf: np.ndarray  # float64, one per key
    coef: np.ndarray  # float64, (n_keys, n_classes)
    weight: float
    index: KeyIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", KeyIndex(self.keys))

    def tfidf(self, texts: Sequence[str]) -> sp.csr_matrix:
        """L2-normalised sublinear tf-idf rows over this field's vocabulary."""
        n_docs = len(texts)
        n_feat = len(self.keys)
        lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=n_docs)
        joined = "".join(texts)
        if not joined:
            return sp.csr_matrix((n_docs, n_feat), dtype=np.float64)
        cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        doc = np.repeat(np.arange(n_docs, dtype=np.int64), lens)
        same = doc[:-1] == doc[1:]
        pairs = ((cps[:-1][same] + 1) << _PAIR_SHIFT) | cps[1:][same]
        keys = np.concatenate([cps, pairs])
        owner = np.concatenate([doc, doc[:-1][same]])
        pos = self.index.lookup(keys)
        hit = pos >= 0
        code = owner[hit] * n_feat + pos[hit]
        code, counts = np.unique(code, return_counts=True)
        rows = code // n_feat
        cols = code - rows * n_feat
        vals = (1.0 + np.log(counts)) * self.idf[cols]
        norms = np.sqrt(np.bincount(rows, weights=vals * vals, minlength=n_docs))
        vals /= norms[rows]
        indptr = np.searchsorted(rows, np.arange(n_docs + 1, dtype=np.int64))
        return sp.csr_matrix((vals, cols, indptr), shape=(n_docs, n_feat))


class CategoryClassifier:
    """Predicts the 一级 category of a petition from its title and content."""

    def __init__(
        self,
        categories: Sequence[str],
        fields: Sequence[_Field],
        intercept: np.ndarray,
        calib_coef: np.ndarray,
        calib_intercept: np.ndarray,
        version: str,
        meta: dict | None = None,
    ) -> None:
        self.categories: tuple[str, ...] = tuple(categories)
        self._fields = tuple(fields)
        self._intercept = np.asarray(intercept, dtype=np.float64)
        self._calib_coef = np.asarray(calib_coef, dtype=np.float64)
        self._calib_intercept = np.asarray(calib_intercept, dtype=np.float64)
        self.version = version
        self.meta = dict(meta or {})

    # ----------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: Path | str | None = None) -> CategoryClassifier:
        base = Path(path) if path is not None else ARTEFACT_DIR
        meta_bytes = (base / META_FILE).read_bytes()
        arrays_bytes = (base / ARRAYS_FILE).read_bytes()
        meta = json.loads(meta_bytes)
        if meta.get("format") != FORMAT:
            raise ValueError(f"unsupported artefact format {meta.get('format')!r} in {base}")
        digest = hashlib.sha256(meta_bytes + b"\0" + arrays_bytes).hexdigest()[:16]
        with np.load(base / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        return cls.from_arrays(meta, arrays, version=digest)

    @classmethod
    def from_arrays(cls, meta: dict, arrays: dict[str, np.ndarray], version: str = "unsaved") -> CategoryClassifier:
        categories = list(meta["categories"])
        weights = meta["features"]["field_weights"]
        fields = []
        for name in FIELDS:
            f = _Field(
                keys=np.ascontiguousarray(arrays[f"{name}_keys"], dtype=np.int64),
                idf=np.ascontiguousarray(arrays[f"{name}_idf"], dtype=np.float64),
                coef=np.ascontiguousarray(arrays[f"{name}_coef"], dtype=np.float64),
                weight=float(weights[name]),
            )
            if f.coef.shape != (len(f.keys), len(categories)) or f.idf.shape != f.keys.shape:
                raise ValueError(f"inconsistent array shapes for field {name}")
            fields.append(f)
        return cls(
            categories,
            fields,
            arrays["intercept"],
            arrays["calib_coef"],
            arrays["calib_intercept"],
            version,
            meta,
        )

    # --------------------------------------------------------------- inference
    def decision_function(self, items: Sequence[tuple[str, str]]) -> np.ndarray:
        """Raw linear scores, shape (n, n_classes): the same as the trained linear SVM."""
        n = len(items)
        k = len(self.categories)
        if n == 0:
            return np.zeros((0, k))
        columns = list(zip(*items, strict=True))
        scores = np.zeros((n, k))
        sq_norm = np.zeros(n)
        for f, texts in zip(self._fields, columns, strict=True):
            x = f.tfidf([normalise_text(t) for t in texts])
            scores += f.weight * (x @ f.coef)
            present = np.diff(x.indptr) > 0
            sq_norm += present * (f.weight * f.weight)
        norm = np.sqrt(sq_norm)
        norm[norm == 0] = 1.0
        return scores / norm[:, None] + self._intercept

    def predict_proba(self, items: Sequence[tuple[str, str]]) -> np.ndarray:
        d = self.decision_function(items)
        z = d @ self._calib_coef.T + self._calib_intercept
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def predict(self, items: Sequence[tuple[str, str]], *, with_scores: bool = True) -> list[Prediction]:
        proba = self.predict_proba(items)
        cats = self.categories
        best = proba.argmax(axis=1) if len(proba) else np.zeros(0, dtype=np.int64)
        out = []
        for row, b in zip(proba.tolist(), best.tolist(), strict=True):
            scores = dict(zip(cats, row, strict=True)) if with_scores else {}
            out.append(Prediction(category=cats[b], confidence=row[b], scores=scores))
        return out

    def predict_one(self, title: str, content: str) -> Prediction:
        return self.predict([(title, content)])[0]

    def __repr__(self) -> str:
        n = sum(len(f.keys) for f in self._fields)
        return f"CategoryClassifier(version={self.version!r}, categories={len(self.categories)}, features={n})"
