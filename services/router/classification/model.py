"""Inference for the 一级 category classifier: numpy/scipy and a compiled kernel, no pickled objects.

The artefact is two files in one directory:

* ``model.json``: metadata (format, categories, views, provenance).
* ``model.npz``: plain numeric arrays, loaded with ``allow_pickle=False``.

The model has *views* of the text, each a linear model over n-gram tf-idf features:

* ``char``: character 1-2-grams of the normalised text (lower-cased, whitespace runs
  collapsed, digit runs to ``0``);
* ``lexicon``: the 2-4-character substrings of the text that are dictionary words (the word
  list is applied at training time, when the vocabulary is chosen; at inference a substring
  counts when it is in the vocabulary, which is a subset of the word list).

For each view and field (title, content) every n-gram in the view's range is looked up in
the field's vocabulary; the row is ``(1 + log tf) * idf``, L2-normalised; the title row is
scaled by its weight, the two are concatenated and L2-normalised again, and the view's
linear model gives one score per class. A multinomial logistic layer over all views' scores
(fitted on out-of-fold scores) gives calibrated probabilities.

A term is encoded as an integer key: its characters' positions in the view's character table
(1-based, 15 bits each, at most 4 characters) packed behind its length (``len << 60``); a text
character missing from the table can be in no vocabulary term. Vocabulary keys are stored
sorted; lookup goes through :class:`KeyIndex`.

The per-text work of a view-field (ids, n-gram lookups, counts, the normalised row's product
with the coefficients) runs in a compiled kernel (:mod:`native`: the ``_scores`` extension
module, built from ``_scores.c`` when the package is installed), text by text, from the same
arrays; it gives the numpy path's scores to rounding (tested to 1e-12) at about a fifth of its
CPU. The numpy path (:meth:`_View.terms`, :class:`KeyIndex`, :meth:`_Field.tfidf`) is the
reference and the fallback: it scores every view when the kernel is not importable or
``PETITION_NATIVE=0``, and a view with 4-grams (the kernel looks up 1-3-grams).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from services.router.classification import native

if TYPE_CHECKING:
    from services.router.classification._scores import FieldScorer

ARTEFACT_DIR = Path(__file__).resolve().parent / "artefacts"
META_FILE = "model.json"
ARRAYS_FILE = "model.npz"
FORMAT = "petition-category-linear/2"
FIELDS = ("title", "content")
MAX_TERM = 4
_ID_BITS = 15
MAX_CHARS = (1 << _ID_BITS) - 1

_WHITESPACE = re.compile(r"\s\s+")
_DIGITS = re.compile(r"\d+")


def normalise_plain(text: str | None) -> str:
    """Lower-case and collapse runs of whitespace (the lexicon view's preprocessing)."""
    if not text:
        return ""
    return _WHITESPACE.sub(" ", text.lower())


def normalise_text(text: str | None) -> str:
    """The char view's preprocessing: :func:`normalise_plain`, then every run of digits to
    ``0`` (a date, an amount or a house number says nothing about the category)."""
    return _DIGITS.sub("0", normalise_plain(text))


NORMALISERS: dict[str, Callable[[str | None], str]] = {"char": normalise_text, "plain": normalise_plain}

def _unchanged(text: str) -> str:
    return text


#: The same preprocessing, applied to text that already went through :func:`normalise_plain`
#: (inference does that once per text for all views).
def _fold_digits(text: str) -> str:
    return _DIGITS.sub("0", text)


_AFTER_PLAIN: dict[str, Callable[[str], str]] = {"char": _fold_digits, "plain": _unchanged}


def term_key(term: str, char_ids: dict[str, int]) -> int:
    """Integer key of a 1-4-character term (see module docstring); KeyError if a character
    is not in the table."""
    if not 1 <= len(term) <= MAX_TERM:
        raise ValueError(f"terms have 1 to {MAX_TERM} characters, got {term!r}")
    key = len(term) << 60
    for i, ch in enumerate(term):
        key |= char_ids[ch] << (_ID_BITS * (MAX_TERM - 1 - i))
    return key


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: Fibonacci hashing


class KeyIndex:
    """Position of each term key in a sorted key array, by open addressing.

    ``np.searchsorted`` over a vocabulary of ~10**5 keys costs a cache miss per halving for
    each of the ~10**5 terms of a batch; a table at most a quarter full answers most lookups
    with one probe. Built at load time from the artefact's sorted keys (nothing new is stored).
    """

    def __init__(self, keys: np.ndarray) -> None:
        keys = np.ascontiguousarray(keys, dtype=np.int64)
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
        active = np.arange(len(keys))
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


#: Below this many codes a comparison sort is as quick as two radix passes.
_RADIX_FROM = 4096


def _sorted_codes(code: np.ndarray, bound: int) -> np.ndarray:
    """`code` (non-negative, below `bound`) sorted ascending.

    For the tens of thousands of codes of a batch, two stable passes over 16-bit digits
    (numpy's radix sort for 16-bit keys, linear in the size) take half the time of
    ``ndarray.sort`` on 32-bit keys. The result is the same sorted array either way.
    """
    if code.size < _RADIX_FROM or bound > 1 << 32:
        code.sort()
        return code
    order = np.argsort((code & 0xFFFF).astype(np.uint16), kind="stable")
    order = order[np.argsort((code >> 16).astype(np.uint16)[order], kind="stable")]
    return code[order]


@dataclass(frozen=True)
class _Field:
    keys: np.ndarray  # int64, sorted, unique
    idf: np.ndarray  # float64, one per key
    coef: np.ndarray  # float64, (n_keys, n_classes)
    weight: float
    index: KeyIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", KeyIndex(self.keys))

    def tfidf(self, keys: np.ndarray, owner: np.ndarray, n_docs: int) -> sp.csr_matrix:
        """L2-normalised sublinear tf-idf rows from the term keys of a batch (``owner``: the
        document of each key, in any order)."""
        pos = self.index.lookup(keys)
        hit = pos >= 0
        return self.rows(pos[hit], owner[hit], n_docs)

    def rows(self, cols: np.ndarray, owner: np.ndarray, n_docs: int) -> sp.csr_matrix:
        """The same rows from the vocabulary positions of a batch's terms (all known)."""
        n_feat = len(self.keys)
        # one code per (document, term); sorting them groups each document's repeats
        dtype = np.int64 if n_docs * n_feat >= 1 << 31 else np.int32
        code = _sorted_codes(owner.astype(dtype) * n_feat + cols.astype(dtype, copy=False), n_docs * n_feat)
        if code.size:
            first = np.empty(code.size, dtype=bool)
            first[0] = True
            np.not_equal(code[1:], code[:-1], out=first[1:])
            starts = np.flatnonzero(first)
            counts = np.diff(starts, append=code.size)
            code = code[starts].astype(np.int64)
        else:
            counts = np.zeros(0, dtype=np.int64)
            code = code.astype(np.int64)
        rows = code // n_feat
        cols = code - rows * n_feat
        vals = (1.0 + np.log(counts)) * self.idf[cols]
        norms = np.sqrt(np.bincount(rows, weights=vals * vals, minlength=n_docs))
        vals /= norms[rows]
        indptr = np.searchsorted(rows, np.arange(n_docs + 1, dtype=np.int64))
        return sp.csr_matrix((vals, cols, indptr), shape=(n_docs, n_feat))


@dataclass(frozen=True)
class _View:
    name: str
    ngram: tuple[int, int]
    normalise: Callable[[str], str]  # applied after normalise_plain
    chars: np.ndarray  # int64 code points of the character table, position + 1 = id
    fields: tuple[_Field, ...]
    intercept: np.ndarray
    char_id: np.ndarray = field(init=False, repr=False, compare=False)
    kernels: tuple[FieldScorer, ...] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        table = np.zeros(int(self.chars.max()) + 1 if self.chars.size else 1, dtype=np.int32)
        table[self.chars] = np.arange(1, len(self.chars) + 1)
        object.__setattr__(self, "char_id", table)
        object.__setattr__(self, "kernels", self._kernels())

    def _kernels(self) -> tuple[FieldScorer, ...] | None:
        """The compiled kernel's scorer of each field, built from the field's own arrays; None
        when the kernel is not there or switched off, or cannot score this view (4-grams)."""
        scorer = native.field_scorer()
        if scorer is None or self.ngram[1] > 3 or self.normalise not in (_fold_digits, _unchanged):
            return None
        fold = self.normalise is _fold_digits
        return tuple(
            scorer(chars=self.chars, keys=f.keys, idf=f.idf, coef=f.coef, weight=f.weight, fold_digits=fold)
            for f in self.fields
        )

    def _ids(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The character id of every position of the joined texts (0: not in the table) and
        the document of each."""
        n_docs = len(texts)
        lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=n_docs)
        joined = "".join(texts)
        cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
        doc = np.repeat(np.arange(n_docs, dtype=np.int32), lens)
        ids = np.zeros(len(cps), dtype=np.int32)
        known = cps < len(self.char_id)
        ids[known] = self.char_id[cps[known]]
        return ids, doc

    def terms(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Keys of every n-gram of the (already normalised) texts made of known characters,
        and the document each belongs to."""
        ids32, doc = self._ids(texts)
        if not ids32.size:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        ids = ids32.astype(np.int64)
        keys, owners = [], []
        lo, hi = self.ngram
        for n in range(lo, hi + 1):
            m = len(ids) - n + 1
            if m <= 0:
                break
            ok = doc[:m] == doc[n - 1 :]
            key = np.full(m, n << 60, dtype=np.int64)
            for j in range(n):
                part = ids[j : j + m]
                ok &= part > 0
                key |= part << (_ID_BITS * (MAX_TERM - 1 - j))
            keys.append(key[ok])
            owners.append(doc[:m][ok])
        if not keys:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(keys), np.concatenate(owners)

    def scores(self, columns: Sequence[list[str]]) -> np.ndarray:
        """Scores of texts already through :func:`normalise_plain`, one column per field: by
        the compiled kernel when the view has it, else by numpy (the reference)."""
        n = len(columns[0])
        k = len(self.intercept)
        scores = np.zeros((n, k))
        sq_norm = np.zeros(n)
        for i, (f, texts) in enumerate(zip(self.fields, columns, strict=True)):
            if self.kernels is not None:
                self.kernels[i].add_scores(texts, scores, sq_norm)
                continue
            ready = texts if self.normalise is _unchanged else [self.normalise(t) for t in texts]
            x = f.tfidf(*self.terms(ready), n)
            scores += f.weight * (x @ f.coef)
            present = np.diff(x.indptr) > 0
            sq_norm += present * (f.weight * f.weight)
        norm = np.sqrt(sq_norm)
        norm[norm == 0] = 1.0
        return scores / norm[:, None] + self.intercept


@dataclass(frozen=True)
class Prediction:
    category: str
    confidence: float
    scores: dict[str, float] = field(default_factory=dict, compare=False)


class CategoryClassifier:
    """Predicts the 一级 category of a petition from its title and content."""

    def __init__(
        self,
        categories: Sequence[str],
        views: Sequence[_View],
        calib_coef: np.ndarray,
        calib_intercept: np.ndarray,
        version: str,
        meta: dict | None = None,
    ) -> None:
        self.categories: tuple[str, ...] = tuple(categories)
        self._views = tuple(views)
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
        k = len(categories)
        views = []
        for spec in meta["views"]:
            name = spec["name"]
            fields = []
            for fname in FIELDS:
                f = _Field(
                    keys=np.ascontiguousarray(arrays[f"{name}.{fname}.keys"], dtype=np.int64),
                    idf=np.ascontiguousarray(arrays[f"{name}.{fname}.idf"], dtype=np.float64),
                    coef=np.ascontiguousarray(arrays[f"{name}.{fname}.coef"], dtype=np.float64),
                    weight=float(spec["field_weights"][fname]),
                )
                if f.coef.shape != (len(f.keys), k) or f.idf.shape != f.keys.shape:
                    raise ValueError(f"inconsistent array shapes for {name}.{fname}")
                fields.append(f)
            lo, hi = spec["ngram_range"]
            if not 1 <= lo <= hi <= MAX_TERM:
                raise ValueError(f"view {name}: n-gram range {lo}-{hi} outside 1-{MAX_TERM}")
            views.append(
                _View(
                    name=name,
                    ngram=(int(lo), int(hi)),
                    normalise=_AFTER_PLAIN[spec["normalise"]],
                    chars=np.ascontiguousarray(arrays[f"{name}.chars"], dtype=np.int64),
                    fields=tuple(fields),
                    intercept=np.asarray(arrays[f"{name}.intercept"], dtype=np.float64),
                )
            )
        calib_coef = arrays["calib_coef"]
        if calib_coef.shape != (k, k * len(views)):
            raise ValueError("calibration layer does not match the views")
        return cls(categories, views, calib_coef, arrays["calib_intercept"], version, meta)

    # --------------------------------------------------------------- inference
    def view_scores(self, items: Sequence[tuple[str, str]]) -> np.ndarray:
        """Every view's raw linear scores side by side, shape (n, n_views * n_classes)."""
        n = len(items)
        if n == 0:
            return np.zeros((0, len(self.categories) * len(self._views)))
        columns = [[normalise_plain(t) for t in column] for column in zip(*items, strict=True)]
        return np.hstack([v.scores(columns) for v in self._views])

    def predict_proba(self, items: Sequence[tuple[str, str]]) -> np.ndarray:
        d = self.view_scores(items)
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
        n = sum(len(f.keys) for v in self._views for f in v.fields)
        names = "+".join(v.name for v in self._views)
        return (f"CategoryClassifier(version={self.version!r}, views={names},"
                f" categories={len(self.categories)}, features={n})")
