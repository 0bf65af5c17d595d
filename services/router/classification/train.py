"""Training and evaluation of the 一级 category classifier (scikit-learn at train time only).

Recipe (chosen by stratified 5-fold CV on the labelled set, seeds 0-2; see ``HYPERPARAMS``):

* **Training rows**: the labelled petitions plus pseudo-documents from the board's taxonomy
  (``category-taxonomy.csv``, only the 一级 categories being learnt): for every row its 二级
  and 三级 names together, its 三级 name alone, and per 二级 its name followed by all its 三级
  names ("其他" dropped). They teach what the categories cover (公共汽车 and 地铁 are 城乡建设,
  特种设备 is 商贸旅游) where 963 messages are too few. Each is used as title and content.
* **Unlabelled petitions** (``petitions-unlabeled.csv`` + ``petitions-with-replies.csv``,
  minus the rows that repeat a labelled one) only inform the idf.
* **Two views**, each a one-vs-rest linear SVM over NB-scaled features (NB-SVM: each class's
  features are scaled by naive-Bayes log-count ratios of term presence; the scaling folds into
  the exported weights): ``char``, character 1-2-grams of the text with digit runs folded;
  ``lexicon``, the 2-4-character substrings that are words of jieba's dictionary. Per field
  (title, content): vocabulary = terms in at least ``min_df`` training rows, sublinear tf,
  smooth idf over training + unlabelled rows, L2; title scaled by ``title_weight``.
* **Calibration and stacking**: a multinomial logistic regression over both views' scores,
  fitted on out-of-fold scores of the labelled training rows, gives the probabilities.

Everything is exported as plain arrays (see ``model.py``) and evaluation scores through the
exported numpy inference path, so the reported figures are those of the serving code.

CLI (wired as ``petitionctl model train`` / ``petitionctl model evaluate``)::

    python -m services.router.classification.train train [--data-dir D] [--out-dir O] [--seed S]
    python -m services.router.classification.train evaluate [--data-dir D] [--folds K] [--seed S] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from services.router.classification.dataset import Dataset, load_data
from services.router.classification.model import (
    ARRAYS_FILE,
    ARTEFACT_DIR,
    FIELDS,
    FORMAT,
    MAX_CHARS,
    META_FILE,
    NORMALISERS,
    CategoryClassifier,
    term_key,
)
from services.router.classification.reports import (
    EvalReport,
    TrainReport,
    expected_calibration_error,
    macro_f1,
    per_class,
)

HYPERPARAMS: dict = {
    "min_df": 2,
    "title_weight": 0.7,
    "svm_C": 5.0,
    "nb_alpha": 1.0,
    "calibration_C": 1.0,
    "calibration_folds": 5,
}

#: The views: n-gram range, preprocessing and which substrings are terms.
VIEWS: tuple[dict, ...] = (
    {"name": "char", "ngram_range": [1, 2], "normalise": "char", "terms": "all"},
    {"name": "lexicon", "ngram_range": [2, 3], "normalise": "plain", "terms": "jieba-dictionary"},
)


# --------------------------------------------------------------------------- terms
@lru_cache(maxsize=1)
def _lexicon() -> frozenset[str]:
    """jieba's dictionary words of 2-4 characters (the lexicon view's possible terms)."""
    import jieba

    jieba.setLogLevel(60)
    jieba.initialize()
    return frozenset(w for w, freq in jieba.dt.FREQ.items() if freq > 0 and 2 <= len(w) <= 4)


def analyzer(view: dict) -> Callable[[str], list[str]]:
    """The terms of one text for `view`, as strings (the training-side twin of
    ``model._View.terms``, which must find exactly these)."""
    normalise = NORMALISERS[view["normalise"]]
    lo, hi = view["ngram_range"]
    if view["terms"] == "all":
        def terms(text: str) -> list[str]:
            t = normalise(text)
            return [t[i : i + n] for n in range(lo, hi + 1) for i in range(len(t) - n + 1)]
        return terms
    lexicon = _lexicon()

    def words(text: str) -> list[str]:
        t = normalise(text)
        return [w for n in range(lo, hi + 1) for i in range(len(t) - n + 1) if (w := t[i : i + n]) in lexicon]
    return words


# --------------------------------------------------------------------------- fitting
class Corpus:
    """Term counts of every text, per view and field, computed once per process: a fit
    (or each of the CV's many fits) then only slices rows and columns."""

    def __init__(self, data: Dataset) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        self.data = data
        self.categories = sorted(set(data.labels))
        self.y = np.array([self.categories.index(c) for c in data.labels])
        self.y_taxonomy = np.array([self.categories.index(c) for _, c in data.taxonomy], dtype=np.int64)
        tax = [t for t, _ in data.taxonomy]
        texts = {"title": (data.titles, tax, data.unlabeled_titles),
                 "content": (data.contents, tax, data.unlabeled_contents)}
        self.counts: dict[tuple[str, str], tuple[list[str], sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]] = {}
        for view in VIEWS:
            terms_of = analyzer(view)
            for name in FIELDS:
                labelled, taxonomy, unlabeled = texts[name]
                vec = CountVectorizer(analyzer=terms_of, dtype=np.float64)
                every = vec.fit_transform(list(labelled) + list(taxonomy) + list(unlabeled)).tocsr()
                terms = vec.get_feature_names_out().tolist()
                a, b = len(labelled), len(labelled) + len(taxonomy)
                self.counts[(view["name"], name)] = (terms, every[:a], every[a:b], every[b:])


def _nbsvm(X: sp.csr_matrix, y: np.ndarray, k: int, hp: dict, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest linear SVMs over NB log-count-ratio scaled features; returns effective
    weights (n_features, k) for the unscaled features and intercepts (k,)."""
    from sklearn.svm import LinearSVC

    present = (X > 0).astype(np.float64).tocsr()
    coef = np.zeros((X.shape[1], k))
    intercept = np.zeros(k)
    alpha = hp["nb_alpha"]
    for c in range(k):
        inside = y == c
        p = alpha + np.asarray(present[inside].sum(axis=0)).ravel()
        q = alpha + np.asarray(present[~inside].sum(axis=0)).ravel()
        r = np.log(p / p.sum()) - np.log(q / q.sum())
        m = LinearSVC(C=hp["svm_C"], random_state=seed, max_iter=5000)
        m.fit(X @ sp.diags(r), inside.astype(np.int64))
        coef[:, c] = r * m.coef_.ravel()
        intercept[c] = m.intercept_[0]
    return coef, intercept


@dataclass
class FittedView:
    """One view's model in training-side form: vocabulary strings, idf and weights."""

    spec: dict
    terms: dict[str, list[str]]
    idf: dict[str, np.ndarray]
    coef: dict[str, np.ndarray]
    intercept: np.ndarray
    weights: dict[str, float]

    def features(self, counts: dict[str, sp.csr_matrix]) -> sp.csr_matrix:
        from sklearn.preprocessing import normalize

        parts = []
        for name in FIELDS:
            m = counts[name].copy().tocsr()
            m.data = 1.0 + np.log(m.data)
            parts.append(self.weights[name] * normalize(m @ sp.diags(self.idf[name])))
        return normalize(sp.hstack(parts).tocsr())

    def scores(self, counts: dict[str, sp.csr_matrix]) -> np.ndarray:
        X = self.features(counts)
        return np.asarray(X @ np.vstack([self.coef[n] for n in FIELDS])) + self.intercept

    def count(self, titles: Sequence[str], contents: Sequence[str]) -> dict[str, sp.csr_matrix]:
        """Counts of new texts over this view's vocabulary, by the training-side analyzer."""
        from sklearn.feature_extraction.text import CountVectorizer

        terms_of = analyzer(self.spec)
        out = {}
        for name, texts in zip(FIELDS, (titles, contents), strict=True):
            vec = CountVectorizer(analyzer=terms_of, vocabulary={t: i for i, t in enumerate(self.terms[name])},
                                  dtype=np.float64)
            out[name] = vec.transform(list(texts)).tocsr()
        return out


def _fit_view(corpus: Corpus, view: dict, rows: np.ndarray, hp: dict, seed: int) -> FittedView:
    k = len(corpus.categories)
    y = np.concatenate([corpus.y[rows], corpus.y_taxonomy])
    terms, idf, counts = {}, {}, {}
    for name in FIELDS:
        all_terms, labelled, taxonomy, unlabeled = corpus.counts[(view["name"], name)]
        train = sp.vstack([labelled[rows], taxonomy]).tocsr()
        df = np.asarray((train > 0).sum(axis=0)).ravel()
        cols = np.flatnonzero(df >= hp["min_df"])
        df_all = df[cols] + np.asarray((unlabeled[:, cols] > 0).sum(axis=0)).ravel()
        n_docs = train.shape[0] + unlabeled.shape[0]
        terms[name] = [all_terms[i] for i in cols]
        idf[name] = np.log((1.0 + n_docs) / (1.0 + df_all)) + 1.0
        counts[name] = train[:, cols]
    weights = {"title": float(hp["title_weight"]), "content": 1.0}
    fitted = FittedView(view, terms, idf, {}, np.zeros(k), weights)
    coef, intercept = _nbsvm(fitted.features(counts), y, k, hp, seed)
    offset = 0
    for name in FIELDS:
        n = len(terms[name])
        fitted.coef[name] = coef[offset : offset + n]
        offset += n
    fitted.intercept = intercept
    return fitted


def _view_counts(corpus: Corpus, fitted: FittedView, rows: np.ndarray) -> dict[str, sp.csr_matrix]:
    """Counts of labelled `rows` over a fitted view's vocabulary (from the corpus counts)."""
    out = {}
    for name in FIELDS:
        all_terms, labelled, _, _ = corpus.counts[(fitted.spec["name"], name)]
        position = {t: i for i, t in enumerate(all_terms)}
        cols = np.array([position[t] for t in fitted.terms[name]], dtype=np.int64)
        out[name] = labelled[rows][:, cols]
    return out


@dataclass
class Fitted:
    categories: list[str]
    views: list[FittedView]
    calib_coef: np.ndarray
    calib_intercept: np.ndarray
    oof_scores: np.ndarray
    meta: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def classifier(self) -> CategoryClassifier:
        return CategoryClassifier.from_arrays(self.meta, self.arrays)

    def reference_proba(self, titles: Sequence[str], contents: Sequence[str]) -> np.ndarray:
        """Probabilities by the training-side path (string analyzers + scikit-learn), for
        checking the exported numpy path against it."""
        z = np.hstack([v.scores(v.count(titles, contents)) for v in self.views])
        z = z @ self.calib_coef.T + self.calib_intercept
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)


def fit(
    corpus: Corpus, rows: Sequence[int] | np.ndarray | None = None, seed: int = 0, hyperparams: dict | None = None
) -> Fitted:
    """Fit the whole recipe on the labelled `rows` (all by default) plus the taxonomy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    hp = {**HYPERPARAMS, **(hyperparams or {})}
    picked = np.arange(len(corpus.y)) if rows is None else np.asarray(rows, dtype=np.int64)
    y = corpus.y[picked]
    categories = corpus.categories
    k = len(categories)
    if len(set(y.tolist())) != k:
        raise ValueError("every category needs training rows")
    views = [_fit_view(corpus, v, picked, hp, seed) for v in VIEWS]
    oof = np.zeros((len(picked), k * len(VIEWS)))
    skf = StratifiedKFold(hp["calibration_folds"], shuffle=True, random_state=seed)
    for tr, te in skf.split(np.zeros(len(picked)), y):
        for j, v in enumerate(VIEWS):
            inner = _fit_view(corpus, v, picked[tr], hp, seed)
            oof[te, j * k : (j + 1) * k] = inner.scores(_view_counts(corpus, inner, picked[te]))
    calibrator = LogisticRegression(C=hp["calibration_C"], max_iter=3000).fit(oof, y)
    fitted = Fitted(categories, views, calibrator.coef_, calibrator.intercept_, oof, {})
    fitted.arrays, fitted.meta = _export(fitted, hp, seed, corpus)
    return fitted


def _export(fitted: Fitted, hp: dict, seed: int, corpus: Corpus) -> tuple[dict[str, np.ndarray], dict]:
    import sklearn

    arrays: dict[str, np.ndarray] = {}
    view_meta = []
    for v in fitted.views:
        name = v.spec["name"]
        chars = sorted({ch for f in FIELDS for t in v.terms[f] for ch in t})
        if len(chars) > MAX_CHARS:
            raise ValueError(f"view {name}: {len(chars)} distinct characters, the key format holds {MAX_CHARS}")
        char_ids = {ch: i + 1 for i, ch in enumerate(chars)}
        arrays[f"{name}.chars"] = np.array([ord(ch) for ch in chars], dtype=np.int64)
        for f in FIELDS:
            keys = np.array([term_key(t, char_ids) for t in v.terms[f]], dtype=np.int64)
            order = np.argsort(keys, kind="stable")
            arrays[f"{name}.{f}.keys"] = keys[order]
            arrays[f"{name}.{f}.idf"] = np.asarray(v.idf[f][order], dtype=np.float64)
            arrays[f"{name}.{f}.coef"] = np.ascontiguousarray(v.coef[f][order], dtype=np.float64)
            if len(keys) and not np.all(np.diff(arrays[f"{name}.{f}.keys"]) > 0):
                raise AssertionError("term keys collide")
        arrays[f"{name}.intercept"] = np.asarray(v.intercept, dtype=np.float64)
        view_meta.append({
            "name": name,
            "ngram_range": list(v.spec["ngram_range"]),
            "normalise": v.spec["normalise"],
            "terms": v.spec["terms"],
            "field_weights": v.weights,
            "n_features": {f: len(v.terms[f]) for f in FIELDS},
        })
    arrays["calib_coef"] = np.asarray(fitted.calib_coef, dtype=np.float64)
    arrays["calib_intercept"] = np.asarray(fitted.calib_intercept, dtype=np.float64)
    data = corpus.data
    meta = {
        "format": FORMAT,
        "categories": fitted.categories,
        "views": view_meta,
        "features": {
            "tf": "1 + log(count)",
            "idf": "smooth: ln((1 + n) / (1 + df)) + 1, over training rows (labelled + taxonomy) and unlabelled texts",
            "min_df": hp["min_df"],
            "char normalise": "lower-case; runs of 2+ whitespace -> one space; digit runs -> 0",
            "lexicon": "substrings of 2-4 characters that are words (freq > 0) of jieba's dictionary",
        },
        "model": {
            "type": "per view: one-vs-rest linear SVM (liblinear) on NB log-count-ratio scaled features",
            "svm_C": hp["svm_C"],
            "nb_alpha": hp["nb_alpha"],
            "calibration": "multinomial logistic regression over all views' out-of-fold scores",
            "calibration_C": hp["calibration_C"],
            "calibration_folds": hp["calibration_folds"],
        },
        "training": {
            "seed": seed,
            "n_labeled": len(fitted.oof_scores),
            "n_taxonomy_documents": len(data.taxonomy),
            "n_unlabeled": len(data.unlabeled_titles),
            "class_counts": {c: int(n) for c, n in sorted(Counter(corpus.categories[i] for i in corpus.y).items())},
            "sklearn_version": sklearn.__version__,
            "numpy_version": np.__version__,
        },
    }
    return arrays, meta


# --------------------------------------------------------------------------- artefact io
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_artefact(out_dir: Path, meta: dict, arrays: dict[str, np.ndarray]) -> tuple[Path, Path]:
    """Write ``model.json`` + ``model.npz`` byte-for-byte deterministically (fixed zip times)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    meta_path = out_dir / META_FILE
    arrays_path = out_dir / ARRAYS_FILE
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            arr_buf = io.BytesIO()
            np.lib.format.write_array(arr_buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            zf.writestr(info, arr_buf.getvalue())
    tmp_arrays = arrays_path.with_suffix(".npz.tmp")
    tmp_arrays.write_bytes(buf.getvalue())
    tmp_meta = meta_path.with_suffix(".json.tmp")
    tmp_meta.write_text(json.dumps(meta, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp_arrays, arrays_path)
    os.replace(tmp_meta, meta_path)
    return meta_path, arrays_path


# --------------------------------------------------------------------------- entry points
def train(data_dir: Path | None = None, out_dir: Path | None = None, seed: int = 0) -> TrainReport:
    started = time.perf_counter()
    data = load_data(data_dir)
    out = Path(out_dir) if out_dir is not None else ARTEFACT_DIR
    corpus = Corpus(data)
    fitted = fit(corpus, seed=seed)
    fitted.meta["training"]["data_sha256"] = data.sha256
    write_artefact(out, fitted.meta, fitted.arrays)
    clf = CategoryClassifier.load(out)
    y = corpus.y
    pred = clf.predict_proba(list(zip(data.titles, data.contents, strict=True))).argmax(axis=1)
    k = len(fitted.categories)
    oof_pred = fitted.oof_scores[:, :k].argmax(axis=1)  # the char view alone, out of fold
    return TrainReport(
        out_dir=str(out),
        version=clf.version,
        n_labeled=len(y),
        n_unlabeled=len(data.unlabeled_titles),
        n_features=sum(sum(v["n_features"].values()) for v in fitted.meta["views"]),
        class_counts=fitted.meta["training"]["class_counts"],
        train_accuracy=float(np.mean(pred == y)),
        oof_macro_f1=macro_f1(y, oof_pred, k),
        artefact_bytes=(out / META_FILE).stat().st_size + (out / ARRAYS_FILE).stat().st_size,
        seconds=time.perf_counter() - started,
    )


def evaluate(data_dir: Path | None = None, folds: int = 5, seed: int = 0) -> EvalReport:
    """Stratified k-fold CV of the whole training procedure, scored through the numpy path."""
    from sklearn.model_selection import StratifiedKFold

    started = time.perf_counter()
    data = load_data(data_dir)
    corpus = Corpus(data)
    categories = corpus.categories
    k = len(categories)
    y = corpus.y
    items = list(zip(data.titles, data.contents, strict=True))
    proba = np.zeros((len(y), k))
    fold_f1 = []
    skf = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for tr, te in skf.split(np.zeros(len(y)), y):
        fitted = fit(corpus, tr, seed=seed)
        proba[te] = fitted.classifier().predict_proba([items[i] for i in te])
        fold_f1.append(macro_f1(y[te], proba[te].argmax(axis=1), k))
    pred = proba.argmax(axis=1)
    classes, confusion = per_class(y, pred, k)
    eps = 1e-15
    return EvalReport(
        folds=folds,
        seed=seed,
        macro_f1=float(np.mean([m.f1 for m in classes])),
        accuracy=float(np.mean(pred == y)),
        ece=expected_calibration_error(proba, y, 10),
        ece_bins=10,
        log_loss=float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], eps, 1.0)))),
        fold_macro_f1=fold_f1,
        per_class=dict(zip(categories, classes, strict=True)),
        categories=categories,
        confusion=confusion.tolist(),
        seconds=time.perf_counter() - started,
    )


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--data-dir", type=Path, default=None, help="default: $PETITION_DATA_DIR or ../shared/data")
    p.add_argument("--seed", type=int, default=0)
    return p


def main_train(argv: Sequence[str] | None = None) -> int:
    p = _parser("petitionctl model train", "Train the category classifier and write its artefact.")
    p.add_argument("--out-dir", type=Path, default=None, help=f"default: {ARTEFACT_DIR}")
    args = p.parse_args(list(argv) if argv is not None else None)
    try:
        report = train(args.data_dir, args.out_dir, seed=args.seed)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.format())
    return 0


def main_evaluate(argv: Sequence[str] | None = None) -> int:
    p = _parser("petitionctl model evaluate", "Cross-validate the category classifier.")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    args = p.parse_args(list(argv) if argv is not None else None)
    try:
        report = evaluate(args.data_dir, folds=args.folds, seed=args.seed)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.to_json() if args.json else report.format())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("train", "evaluate"):
        print("usage: python -m services.router.classification.train {train|evaluate} [options]", file=sys.stderr)
        return 2
    return (main_train if argv[0] == "train" else main_evaluate)(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
