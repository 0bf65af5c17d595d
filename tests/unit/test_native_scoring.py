"""The compiled scoring kernel (``_scores.c``, the ``_scores`` extension module built when the
package is installed): it scores exactly as the numpy path (its reference, and the fallback
when the module is not importable or ``PETITION_NATIVE=0``), and a wrong call raises
TypeError or ValueError instead of crashing the process."""

from __future__ import annotations

import csv
import importlib.machinery
import json
import logging
import os
import re
import sys
from typing import Any

import numpy as np
import pytest

from services.router.classification import ARTEFACT_DIR, CategoryClassifier, native
from services.router.classification._scores import FieldScorer
from services.router.classification.model import ARRAYS_FILE, META_FILE, term_key

EDGES = [
    ("", ""), ("）", "短"), ("a", ""), ("A3区", "K8县 2019年 ＡＢ ab"), ("电梯", "电梯电梯电梯坏了"),
    ("12", "3"), ("2019年12月", "收费300元，电话１２３４５，٣٤ 号楼9"), ("0", "00 0a0"),
    # decimal digits outside the BMP (U+1D7D8...) fold like any other; superscripts, circled
    # and Chinese numerals are no decimal digits (the reference's \d matches none of them)
    ("𝟘𝟙𝟚 号楼", "收费𝟛𝟘𝟘元 电梯坏了 😀 12"), ("²³ ① 〇", "Ⅻ 零 ٣٤ ４0𝟝 号"),
    ("小区电梯长期故障无人维修", "我们小区的电梯坏了三个月，物业一直推诿不修，老人上下楼非常困难。" * 40),
]

KERNEL_OFF = os.environ.get(native.SWITCH) == "0"


@pytest.fixture(scope="module")
def clf() -> CategoryClassifier:
    return CategoryClassifier.load()


@pytest.fixture(scope="module")
def numpy_clf() -> CategoryClassifier:
    """The same artefact with the kernel switched off in every view."""
    c = CategoryClassifier.load()
    for view in c._views:
        object.__setattr__(view, "kernels", None)
    return c


def _real_items(n: int) -> list[tuple[str, str]]:
    from services.router.classification.dataset import default_data_dir

    out: list[tuple[str, str]] = []
    for name in ("petitions-labeled.csv", "petitions-unlabeled.csv"):
        path = default_data_dir() / name
        if path.exists():
            with path.open(encoding="utf-8") as f:
                out.extend((r["title"] or "", r["content"] or "") for r in csv.DictReader(f))
    return out[:: max(1, len(out) // n)][:n]


@pytest.mark.skipif(KERNEL_OFF, reason="PETITION_NATIVE=0: the kernel is switched off")
def test_the_kernel_is_an_installed_extension_and_used(clf: CategoryClassifier) -> None:
    from services.router.classification import _scores

    assert _scores.__file__ is not None
    assert _scores.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert native.field_scorer() is FieldScorer
    for view in clf._views:
        assert view.kernels is not None and len(view.kernels) == len(view.fields)
        for kernel, f in zip(view.kernels, view.fields, strict=True):
            assert (kernel.n_terms, kernel.n_classes, kernel.weight) == (len(f.keys), len(clf.categories), f.weight)


@pytest.mark.skipif(KERNEL_OFF, reason="PETITION_NATIVE=0: the kernel is switched off")
@pytest.mark.parametrize("batch", [1, 7, 500])
def test_kernel_scores_equal_numpy_scores(clf: CategoryClassifier, numpy_clf: CategoryClassifier, batch: int) -> None:
    items = (_real_items(1500) or EDGES * 20) + EDGES
    for start in range(0, len(items), batch * 37 if batch < 500 else batch):  # a spread of batches
        chunk = items[start : start + batch]
        ours, reference = clf.predict_proba(chunk), numpy_clf.predict_proba(chunk)
        np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-12)
        assert (ours.argmax(1) == reference.argmax(1)).all()
        raw, raw_ref = clf.view_scores(chunk), numpy_clf.view_scores(chunk)
        np.testing.assert_allclose(raw, raw_ref, rtol=0, atol=1e-10)


@pytest.mark.skipif(KERNEL_OFF, reason="PETITION_NATIVE=0: the kernel is switched off")
def test_digit_runs_fold_as_the_reference_folds_them(clf: CategoryClassifier, numpy_clf: CategoryClassifier) -> None:
    items = EDGES[-3:-1] + [("第𝟙𝟚𝟛号", "")] * 3
    np.testing.assert_allclose(clf.view_scores(items), numpy_clf.view_scores(items), rtol=0, atol=1e-10)
    # "第𝟙𝟚𝟛号" is "第0号" to the char view: one fold, the same scores as the plain digit
    folded, plain = clf.view_scores([("第𝟙𝟚𝟛号", "")]), clf.view_scores([("第0号", "")])
    k = len(clf.categories)
    np.testing.assert_allclose(folded[:, :k], plain[:, :k], rtol=0, atol=1e-12)


# --------------------------------------------------------------------- fallback


def test_without_the_module_numpy_scores_the_same(
    clf: CategoryClassifier, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "services.router.classification._scores", None)  # import fails
    monkeypatch.setattr(native, "_warned", False)
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        assert native.field_scorer() is None
        fallback = CategoryClassifier.load()
    assert all(v.kernels is None for v in fallback._views)
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1  # said once
    assert "numpy" in caplog.records[0].message
    items = _real_items(200) + EDGES
    np.testing.assert_allclose(fallback.predict_proba(items), clf.predict_proba(items), rtol=0, atol=1e-12)


def test_switched_off_numpy_scores_the_same(clf: CategoryClassifier, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(native.SWITCH, "0")
    assert native.field_scorer() is None
    off = CategoryClassifier.load()
    assert all(v.kernels is None for v in off._views)
    assert [p.category for p in off.predict(EDGES)] == [p.category for p in clf.predict(EDGES)]
    np.testing.assert_allclose(off.predict_proba(EDGES), clf.predict_proba(EDGES), rtol=0, atol=1e-12)


def test_a_view_with_4_grams_is_scored_by_numpy(clf: CategoryClassifier) -> None:
    meta = json.loads((ARTEFACT_DIR / META_FILE).read_text(encoding="utf-8"))
    meta["views"][1]["ngram_range"] = [2, 4]  # 4-grams would count; the kernel looks up 1-3-grams
    with np.load(ARTEFACT_DIR / ARRAYS_FILE, allow_pickle=False) as npz:
        wider = CategoryClassifier.from_arrays(meta, {k: npz[k] for k in npz.files})
    views = wider._views
    assert views[0].kernels is not None or KERNEL_OFF
    assert views[1].kernels is None
    # its vocabulary has no 4-gram, so the scores are the same
    np.testing.assert_allclose(wider.predict_proba(EDGES), clf.predict_proba(EDGES), rtol=0, atol=1e-12)


# --------------------------------------------------------------------- wrong calls

CHARS = "ab0电梯坏"
IDS = {c: i + 1 for i, c in enumerate(CHARS)}
TERMS = ["a", "b", "ab", "0a", "电梯", "梯坏", "电梯坏"]


def _args(**changes: Any) -> dict[str, Any]:
    keys = np.sort(np.array([term_key(t, IDS) for t in TERMS], dtype=np.int64))
    args: dict[str, Any] = {
        "chars": np.array([ord(c) for c in CHARS], dtype=np.int64),
        "keys": keys,
        "idf": np.linspace(1.0, 2.0, len(keys)),
        "coef": np.arange(len(keys) * 3, dtype=np.float64).reshape(len(keys), 3) / 10,
        "weight": 0.7,
        "fold_digits": True,
    }
    args.update(changes)
    return args


def _key(term: str) -> int:
    return term_key(term, IDS)


TEXTS = ["ab ab 12a", "电梯坏了", "", "x"]


def _reference_scores(texts: list[str]) -> np.ndarray:
    """The small model's scores by hand: counts, sublinear tf-idf, L2 norm, product, weight."""
    a = _args()
    terms = [t for _, t in sorted((_key(t), t) for t in TERMS)]
    out = np.zeros((len(texts), 3))
    for d, text in enumerate(texts):
        folded = re.sub(r"\d+", "0", text)
        grams = [folded[i : i + n] for n in (1, 2, 3) for i in range(len(folded) - n + 1)]
        row = np.array([(1 + np.log(grams.count(t))) if t in grams else 0.0 for t in terms]) * a["idf"]
        if row.any():
            out[d] = a["weight"] * (row / np.sqrt(row @ row)) @ a["coef"]
    return out


def test_the_small_models_scores_are_worked_out_by_hand() -> None:
    scorer = FieldScorer(**_args())
    scores, sq_norm = np.zeros((len(TEXTS), 3)), np.zeros(len(TEXTS))
    scorer.add_scores(TEXTS, scores, sq_norm)
    np.testing.assert_allclose(scores, _reference_scores(TEXTS), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(sq_norm, [0.7 * 0.7, 0.7 * 0.7, 0.0, 0.0])  # "" and "x" have no term
    scorer.add_scores(tuple(TEXTS), scores, sq_norm)  # a tuple does too; the scores add up
    np.testing.assert_allclose(scores, 2 * _reference_scores(TEXTS), rtol=0, atol=1e-12)


def _big_endian(a: np.ndarray) -> np.ndarray:
    return a.astype(a.dtype.newbyteorder(">"))


BAD_MODELS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("chars int32", _args(chars=np.array([ord(c) for c in CHARS], dtype=np.int32)), TypeError, "chars must be a int64"),
    ("keys float64", _args(keys=_args()["keys"].astype(np.float64)), TypeError, "keys must be a int64"),
    ("keys big-endian", _args(keys=_big_endian(_args()["keys"])), TypeError, "format '>q'"),
    ("keys unsigned", _args(keys=_args()["keys"].astype(np.uint64)), TypeError, "keys must be a int64"),
    ("idf a list", _args(idf=[1.0] * len(TERMS)), TypeError, "idf must be a float64 array, not list"),
    ("coef float32", _args(coef=_args()["coef"].astype(np.float32)), TypeError, "coef must be a float64"),
    ("coef 1-D", _args(coef=_args()["coef"].ravel()), ValueError, "coef must have 2 dimension"),
    ("coef Fortran order", _args(coef=np.asfortranarray(_args()["coef"])), ValueError, "C-contiguous"),
    ("idf one short", _args(idf=_args()["idf"][1:]), ValueError, "one row per term"),
    ("coef one row short", _args(coef=_args()["coef"][1:]), ValueError, "one row per term"),
    ("no classes", _args(coef=np.zeros((len(TERMS), 0))), ValueError, "1 or more classes"),
    ("keys unsorted", _args(keys=_args()["keys"][::-1].copy()), ValueError, "sorted and unique"),
    ("keys repeated", _args(keys=np.repeat(_args()["keys"], 2), idf=np.ones(14), coef=np.ones((14, 3))),
     ValueError, "sorted and unique"),
    ("a key beyond the table", _args(keys=np.array([_key("a"), (1 << 60) | (7 << 45)], dtype=np.int64),
                                     idf=np.ones(2), coef=np.ones((2, 3))), ValueError, "1-3-gram"),
    ("a 4-gram", _args(keys=np.array([_key("ab"), _key("ab0a")], dtype=np.int64),
                       idf=np.ones(2), coef=np.ones((2, 3))), ValueError, "1-3-gram"),
    ("a key with stray bits", _args(keys=np.array([_key("a") | 5], dtype=np.int64), idf=np.ones(1),
                                    coef=np.ones((1, 3))), ValueError, "1-3-gram"),
    ("a negative key", _args(keys=np.array([-1], dtype=np.int64), idf=np.ones(1), coef=np.ones((1, 3))),
     ValueError, "1-3-gram"),
    ("a code point beyond Unicode", _args(chars=np.array([0x110000], dtype=np.int64)), ValueError, "code point"),
    ("a negative code point", _args(chars=np.array([-5], dtype=np.int64)), ValueError, "code point"),
    ("a character twice", _args(chars=np.array([97, 98, 97], dtype=np.int64)), ValueError, "repeats"),
    ("too many characters", _args(chars=np.arange(1 << 15, dtype=np.int64)), ValueError, "at most 32767"),
    ("weight a str", _args(weight="0.7"), TypeError, "weight must be a number"),
    ("weight NaN", _args(weight=float("nan")), ValueError, "finite"),
    ("fold_digits an int", _args(fold_digits=1), TypeError, "fold_digits must be a bool"),
    ("an extra keyword", _args(stop_words=None), TypeError, "at most 6 keyword arguments"),
    ("a misspelt keyword", {**{k: v for k, v in _args().items() if k != "coef"}, "coefs": _args()["coef"]},
     TypeError, "'coefs' is an invalid keyword argument"),
]


@pytest.mark.parametrize(("model", "error", "message"), [b[1:] for b in BAD_MODELS], ids=[b[0] for b in BAD_MODELS])
def test_a_wrong_model_is_refused(model: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        FieldScorer(**model)


def test_the_model_is_given_by_keyword_and_whole() -> None:
    args = _args()
    positional: Any = FieldScorer
    with pytest.raises(TypeError):
        positional(*args.values())
    missing = dict(args)
    del missing["coef"]
    with pytest.raises(TypeError, match="missing required keyword argument 'coef'"):
        FieldScorer(**missing)


@pytest.fixture
def scorer() -> FieldScorer:
    return FieldScorer(**_args())


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


N = len(TEXTS)
BAD_CALLS: list[tuple[str, tuple[Any, ...], type[Exception], str]] = [
    ("texts a str", ("ab", np.zeros((2, 3)), np.zeros(2)), TypeError, "list or tuple of str, not str"),
    ("texts a generator", ((t for t in TEXTS), np.zeros((N, 3)), np.zeros(N)), TypeError, "list or tuple"),
    ("a text of bytes", ([*TEXTS[:-1], b"x"], np.zeros((N, 3)), np.zeros(N)), TypeError, r"texts\[3\] must be str"),
    ("a text None", ([None, *TEXTS[1:]], np.zeros((N, 3)), np.zeros(N)), TypeError, r"texts\[0\] must be str"),
    ("scores float32", (TEXTS, np.zeros((N, 3), dtype=np.float32), np.zeros(N)), TypeError, "scores must be a float64"),
    ("scores int64", (TEXTS, np.zeros((N, 3), dtype=np.int64), np.zeros(N)), TypeError, "scores must be a float64"),
    ("scores bytes", (TEXTS, bytes(N * 24), np.zeros(N)), TypeError, "scores must be a float64"),
    ("scores a list", (TEXTS, [[0.0] * 3] * N, np.zeros(N)), TypeError, "not list"),
    ("sq_norm float32", (TEXTS, np.zeros((N, 3)), np.zeros(N, dtype=np.float32)), TypeError, "sq_norm"),
    ("scores one class short", (TEXTS, np.zeros((N, 2)), np.zeros(N)), ValueError, "one row per text"),
    ("scores one row short", (TEXTS, np.zeros((N - 1, 3)), np.zeros(N)), ValueError, "one row per text"),
    ("scores one row long", (TEXTS, np.zeros((N + 1, 3)), np.zeros(N)), ValueError, "one row per text"),
    ("sq_norm one short", (TEXTS, np.zeros((N, 3)), np.zeros(N - 1)), ValueError, "one row per text"),
    ("scores flat", (TEXTS, np.zeros(N * 3), np.zeros(N)), ValueError, "2 dimension"),
    ("sq_norm 2-D", (TEXTS, np.zeros((N, 3)), np.zeros((N, 1))), ValueError, "1 dimension"),
    ("scores strided", (TEXTS, np.zeros((N, 6))[:, ::2], np.zeros(N)), ValueError, "C-contiguous"),
    ("scores read-only", (TEXTS, _read_only(np.zeros((N, 3))), np.zeros(N)), ValueError, "writable"),
    ("sq_norm read-only", (TEXTS, np.zeros((N, 3)), memoryview(bytes(N * 8)).cast("d")), ValueError, "writable"),
    ("too few arguments", (TEXTS, np.zeros((N, 3))), TypeError, "add_scores"),
    ("too many arguments", (TEXTS, np.zeros((N, 3)), np.zeros(N), None), TypeError, "add_scores"),
]


@pytest.mark.parametrize(("args", "error", "message"), [b[1:] for b in BAD_CALLS], ids=[b[0] for b in BAD_CALLS])
def test_a_wrong_call_raises_writes_nothing_and_leaves_the_scorer_whole(
    scorer: FieldScorer, args: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    call: Any = scorer.add_scores
    outputs = [a for a in args if isinstance(a, np.ndarray) and a.flags.writeable]
    with pytest.raises(error, match=message):
        call(*args)
    assert all(not a.any() for a in outputs)  # checked before anything is written
    scores, sq_norm = np.zeros((N, 3)), np.zeros(N)
    scorer.add_scores(TEXTS, scores, sq_norm)  # and the next call scores as ever
    np.testing.assert_allclose(scores, _reference_scores(TEXTS), rtol=0, atol=1e-12)


def test_other_buffers_of_the_right_layout_are_accepted(scorer: FieldScorer) -> None:
    scores = bytearray(N * 3 * 8)
    sq_norm = np.zeros(N)
    scorer.add_scores(TEXTS, memoryview(scores).cast("d", (N, 3)), sq_norm)
    np.testing.assert_allclose(np.frombuffer(scores).reshape(N, 3), _reference_scores(TEXTS), rtol=0, atol=1e-12)
    empty = np.zeros((0, 3))
    scorer.add_scores([], empty, np.zeros(0))  # no texts: nothing to do
