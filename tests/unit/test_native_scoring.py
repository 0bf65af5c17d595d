"""The compiled scoring loop (``_scores.c`` through ``native.py``): built from source with the
machine's C compiler, cached by the source's hash, and scoring exactly as the numpy path
(which it replaces only when it loads, and which stays the fallback)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from services.router.classification import CategoryClassifier, native
from services.router.classification.model import _Joined

HAVE_CC = bool(shutil.which("cc") or shutil.which("gcc"))

EDGES = [
    ("", ""), ("）", "短"), ("a", ""), ("A3区", "K8县 2019年 ＡＢ ab"), ("电梯", "电梯电梯电梯坏了"),
    ("12", "3"), ("2019年12月", "收费300元，电话１２３４５，٣٤ 号楼9"), ("0", "00 0a0"),
    ("小区电梯长期故障无人维修", "我们小区的电梯坏了三个月，物业一直推诿不修，老人上下楼非常困难。" * 40),
]


@pytest.fixture(scope="module")
def clf() -> CategoryClassifier:
    return CategoryClassifier.load()


@pytest.fixture(scope="module")
def numpy_clf() -> CategoryClassifier:
    """The same artefact with the compiled loop switched off in every view."""
    c = CategoryClassifier.load()
    for view in c._views:
        object.__setattr__(view, "_native_args", None)
    return c


def _real_items(n: int) -> list[tuple[str, str]]:
    import csv

    from services.router.classification.train import default_data_dir

    out: list[tuple[str, str]] = []
    for name in ("petitions-labeled.csv", "petitions-unlabeled.csv"):
        path = default_data_dir() / name
        if path.exists():
            with path.open(encoding="utf-8") as f:
                out.extend((r["title"] or "", r["content"] or "") for r in csv.DictReader(f))
    return out[:: max(1, len(out) // n)][:n]


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler on this machine")
def test_the_loop_is_built_and_used_where_a_compiler_exists(clf: CategoryClassifier) -> None:
    assert native.load() is not None
    assert all(v._native_args is not None and len(v._native_args) == len(v.fields) for v in clf._views)


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler on this machine")
@pytest.mark.parametrize("batch", [1, 7, 500])
def test_compiled_scores_equal_numpy_scores(clf: CategoryClassifier, numpy_clf: CategoryClassifier, batch: int) -> None:
    items = (_real_items(1500) or EDGES * 20) + EDGES
    for start in range(0, len(items), batch * 37 if batch < 500 else batch):  # a spread of batches
        chunk = items[start : start + batch]
        ours, reference = clf.predict_proba(chunk), numpy_clf.predict_proba(chunk)
        np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-12)
        assert (ours.argmax(1) == reference.argmax(1)).all()
        raw, raw_ref = clf.view_scores(chunk), numpy_clf.view_scores(chunk)
        np.testing.assert_allclose(raw, raw_ref, rtol=0, atol=1e-10)


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler on this machine")
def test_digits_beyond_the_plane_go_by_numpy(clf: CategoryClassifier, numpy_clf: CategoryClassifier) -> None:
    # mathematical digits (U+1D7D8...) are decimal outside the BMP: the folding fields fall
    # back to numpy for such a batch, the others stay compiled; same scores either way
    items = [("𝟘𝟙𝟚 号楼", "收费𝟛𝟘𝟘元 电梯坏了"), ("电梯", "坏了 😀 12")]
    assert _Joined.of([t for t, _ in items]).beyond_bmp
    np.testing.assert_allclose(clf.predict_proba(items), numpy_clf.predict_proba(items), rtol=0, atol=1e-12)
    assert clf.predict(items)[1].category == numpy_clf.predict(items)[1].category


def test_joined_columns() -> None:
    j = _Joined.of(["ab", "", "电梯"])
    assert j.offsets.tolist() == [0, 2, 2, 4] and not j.beyond_bmp
    assert [chr(c) for c in j.cps] == list("ab电梯")
    empty = _Joined.of([])
    assert empty.offsets.tolist() == [0] and empty.cps.size == 0 and not empty.beyond_bmp


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler on this machine")
def test_build_is_cached_by_source_and_rebuilt_when_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = native.build(tmp_path)
    stamp = first.stat().st_mtime_ns
    assert native.build(tmp_path) == first and first.stat().st_mtime_ns == stamp  # not rebuilt
    assert first.stat().st_mode & 0o777 == 0o755
    changed = tmp_path / "src" / "_scores.c"
    changed.parent.mkdir()
    changed.write_bytes(native.SOURCE.read_bytes() + b"\n/* changed */\n")
    monkeypatch.setattr(native, "SOURCE", changed)
    second = native.build(tmp_path)
    assert second != first and second.exists()
    assert not list(tmp_path.glob("*.partial"))


def test_a_failing_compiler_or_switch_leaves_numpy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "false")  # exits 1: a failed build
    monkeypatch.setenv("PETITION_NATIVE_DIR", str(tmp_path))
    with pytest.raises(RuntimeError, match="failed"):
        native.build()
    assert not list(tmp_path.glob("*.so*"))
    monkeypatch.setattr(native, "_tried", False)
    monkeypatch.setattr(native, "_loaded", None)
    assert native.load() is None  # logged, not raised
    c = CategoryClassifier.load()  # loads and classifies on numpy
    assert all(v._native_args is None for v in c._views)
    assert c.predict(EDGES)[-1].category in c.categories
    monkeypatch.delenv("CC")
    monkeypatch.setenv("PETITION_NATIVE", "0")
    monkeypatch.setattr(native, "_tried", False)
    assert native.load() is None
