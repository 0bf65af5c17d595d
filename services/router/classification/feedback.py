"""The classifier learns from the desk: labelled examples from people's decisions, a candidate
model trained with them, and its promotion only when it is measurably no worse.

**Feedback** (``petitionctl model feedback``, JSON lines ``{"title", "content", "category",
"source"}``), read from the router's own records:

* ``triage``: the triage desk's decisions (``router.triage_decision``): the category the person
  chose, or, when they chose only a department, the category the routing table gives that
  department's type (when exactly one does);
* ``kept``: a petition that was returned (退单) and then kept by a department: the category the
  routing table gives the keeping department's type (when exactly one does; a 兜底 government
  tells nothing);

each text once (the latest decision wins), personal numbers already masked (they are the texts
of ``petition.submitted``).

**Training** (``petitionctl model train --with-feedback [FILE] --out-dir DIR``): the recipe of
:mod:`.train` on the labelled petitions plus the feedback rows. The same run cross-validates
the candidate against the model without feedback, on the same folds (stratified, 5, seed 0):

* ``macro_f1``: on the original labelled petitions only (every fold's test rows are original;
  feedback rows are only ever training rows);
* ``feedback_accuracy``: on the feedback rows, out of fold (each feedback row is predicted by a
  model that did not see it; the model without feedback never sees any).

Both figures go into ``promotion.json`` beside the artefact. **Promotion** (``petitionctl model
promote --candidate DIR``) copies the candidate into the serving folder (``PETITION_MODEL_DIR``,
default ``<run dir>/model``) only when its macro-F1 is not lower than the model without
feedback and its feedback accuracy is higher; otherwise it refuses and changes nothing. The
router notices the new artefact and reloads it without a restart; every routed event names the
model version that classified it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from services.router.classification.dataset import Dataset, load_data
from services.router.classification.model import ARRAYS_FILE, META_FILE, CategoryClassifier
from services.router.classification.reports import macro_f1
from services.router.classification.train import Corpus, fit, write_artefact

__all__ = ["PROMOTION_FILE", "Comparison", "FeedbackRow", "categories_by_type", "compare", "feedback_rows",
           "from_database", "main_train", "promote", "read_feedback",
           "train_with_feedback", "write_feedback"]

PROMOTION_FILE = "promotion.json"


@dataclass(frozen=True, slots=True)
class FeedbackRow:
    title: str
    content: str
    category: str
    source: str  # triage, kept


def read_feedback(path: Path) -> list[FeedbackRow]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            found = json.loads(line)
            rows.append(FeedbackRow(str(found["title"]), str(found["content"]), str(found["category"]),
                                    str(found.get("source", "file"))))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{n}: not a feedback row ({exc})") from None
    return rows


def write_feedback(rows: Iterable[FeedbackRow]) -> str:
    return "".join(json.dumps(asdict(r), ensure_ascii=False) + "\n" for r in rows)


def _with(data: Dataset, rows: Sequence[FeedbackRow]) -> Dataset:
    return replace(data, titles=[*data.titles, *(r.title for r in rows)],
                   contents=[*data.contents, *(r.content for r in rows)],
                   labels=[*data.labels, *(r.category for r in rows)])


@dataclass(frozen=True)
class Comparison:
    """The candidate (with feedback) beside the model without it, on the same folds."""

    folds: int
    seed: int
    n_labeled: int
    n_feedback: int
    baseline_macro_f1: float
    candidate_macro_f1: float
    baseline_feedback_accuracy: float
    candidate_feedback_accuracy: float
    seconds: float

    @property
    def promotable(self) -> bool:
        return (self.candidate_macro_f1 >= self.baseline_macro_f1
                and self.candidate_feedback_accuracy > self.baseline_feedback_accuracy)

    def reasons(self) -> list[str]:
        out = []
        if self.candidate_macro_f1 < self.baseline_macro_f1:
            out.append(f"macro-F1 on the original labels would fall from {self.baseline_macro_f1:.4f} "
                       f"to {self.candidate_macro_f1:.4f}")
        if self.candidate_feedback_accuracy <= self.baseline_feedback_accuracy:
            out.append(f"accuracy on the feedback is not better ({self.candidate_feedback_accuracy:.4f} vs "
                       f"{self.baseline_feedback_accuracy:.4f} without it)")
        return out

    def format(self) -> str:
        return "\n".join([
            f"{self.folds}-fold CV, seed {self.seed}: {self.n_labeled} labelled petitions, {self.n_feedback} "
            "feedback rows",
            f"macro-F1 on the original labels: {self.baseline_macro_f1:.4f} without feedback, "
            f"{self.candidate_macro_f1:.4f} with",
            f"accuracy on the feedback (out of fold): {self.baseline_feedback_accuracy:.4f} without, "
            f"{self.candidate_feedback_accuracy:.4f} with",
            "promotable" if self.promotable else "not promotable: " + "; ".join(self.reasons()),
            f"compared in {self.seconds:.0f} s",
        ])


def compare(data: Dataset, feedback: Sequence[FeedbackRow], folds: int = 5, seed: int = 0) -> Comparison:
    """Cross-validate the recipe with and without `feedback` on the same folds (see the module)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    started = time.perf_counter()
    corpus = Corpus(_with(data, feedback))
    n, m, k = len(data.labels), len(feedback), len(corpus.categories)
    y = corpus.y
    items = list(zip(corpus.data.titles, corpus.data.contents, strict=True))
    base_pred, cand_pred = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    fb_base, fb_cand = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64)
    fb_index = np.arange(n, n + m)
    fb_folds = list(KFold(folds, shuffle=True, random_state=seed).split(fb_index)) if m >= folds else \
        [(np.arange(m), np.arange(m))] * folds  # too few to hold out: scored in sample (said so in the report)
    skf = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for (tr, te), (fb_tr, fb_te) in zip(skf.split(np.zeros(n), y[:n]), fb_folds, strict=True):
        baseline = fit(corpus, tr, seed=seed).classifier()
        candidate = fit(corpus, np.concatenate([tr, fb_index[fb_tr]]), seed=seed).classifier()
        test = [items[i] for i in te]
        base_pred[te] = baseline.predict_proba(test).argmax(axis=1)
        cand_pred[te] = candidate.predict_proba(test).argmax(axis=1)
        if m:
            held = [items[i] for i in fb_index[fb_te]]
            fb_base[fb_te] = baseline.predict_proba(held).argmax(axis=1)
            fb_cand[fb_te] = candidate.predict_proba(held).argmax(axis=1)
    fb_y = y[n:]
    return Comparison(
        folds, seed, n, m, macro_f1(y[:n], base_pred, k), macro_f1(y[:n], cand_pred, k),
        float(np.mean(fb_base == fb_y)) if m else 0.0, float(np.mean(fb_cand == fb_y)) if m else 0.0,
        time.perf_counter() - started,
    )


def usable(data: Dataset, feedback: Sequence[FeedbackRow]) -> list[FeedbackRow]:
    """The feedback rows whose category the classifier learns (others are dropped)."""
    known = set(data.labels)
    return [r for r in feedback if r.category in known and (r.title.strip() or r.content.strip())]


def train_with_feedback(feedback: Sequence[FeedbackRow], out_dir: Path, *, data_dir: Path | None = None,
                        seed: int = 0, folds: int = 5) -> tuple[Comparison, str]:
    """Train the candidate on the labelled petitions and `feedback`, write its artefact and
    ``promotion.json`` (the comparison) into `out_dir`; returns the comparison and the
    candidate's version."""
    data = load_data(data_dir)
    rows = usable(data, feedback)
    comparison = compare(data, rows, folds=folds, seed=seed)
    corpus = Corpus(_with(data, rows))
    fitted = fit(corpus, seed=seed)
    fitted.meta["training"]["data_sha256"] = data.sha256
    fitted.meta["training"]["n_feedback"] = len(rows)
    write_artefact(out_dir, fitted.meta, fitted.arrays)
    version = CategoryClassifier.load(out_dir).version
    report: dict[str, Any] = {**asdict(comparison), "promotable": comparison.promotable,
                              "reasons": comparison.reasons(), "version": version}
    (out_dir / PROMOTION_FILE).write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return comparison, version


def promote(candidate: Path, serving: Path) -> tuple[bool, str]:
    """Copy the candidate's artefact into the serving folder if its comparison allows; (done,
    what happened). The copy is atomic per file, the arrays first: a reader sees the old model
    or the new one (the router loads when ``model.json`` changes)."""
    report_path = candidate / PROMOTION_FILE
    if not report_path.is_file() or not (candidate / META_FILE).is_file() or not (candidate / ARRAYS_FILE).is_file():
        return False, f"{candidate} holds no candidate (train one with --with-feedback --out-dir {candidate})"
    report = json.loads(report_path.read_text(encoding="utf-8"))
    version = CategoryClassifier.load(candidate).version
    if report.get("version") != version:
        return False, f"the artefact in {candidate} is not the one its comparison measured"
    if not report.get("promotable"):
        return False, "refused: " + "; ".join(report.get("reasons") or ["not promotable"])
    serving.mkdir(parents=True, exist_ok=True)
    for name in (ARRAYS_FILE, META_FILE, PROMOTION_FILE):
        tmp = serving / f".{name}.tmp"
        shutil.copyfile(candidate / name, tmp)
        os.replace(tmp, serving / name)
    return True, (f"promoted {version}: macro-F1 {report['candidate_macro_f1']:.4f} (without feedback "
                  f"{report['baseline_macro_f1']:.4f}), feedback accuracy {report['candidate_feedback_accuracy']:.4f} "
                  f"(without {report['baseline_feedback_accuracy']:.4f}); the router reloads it")


def categories_by_type(rules: Iterable[Any]) -> dict[str, str]:
    """Department type → the one category the routing table gives it. Types several categories
    go to tell nothing and are left out, and so is the government (GOV), which takes whatever
    no rule matches (兜底) besides its own category."""
    from services.router.domain.routing import GOV

    seen: dict[str, set[str]] = {}
    for rule in rules:
        seen.setdefault(rule.department_type, set()).add(rule.category)
    return {t: next(iter(c)) for t, c in seen.items() if len(c) == 1 and t != GOV}


def feedback_rows(triage: Iterable[Any], kept: Iterable[Any], by_type: dict[str, str]) -> list[FeedbackRow]:
    """The labelled examples of the desk's decisions and of returned petitions kept by a
    department (rows with ``petition_id``, ``title``, ``content`` and ``decided_category`` /
    ``department_code``), one per petition, the latest decision winning."""

    def category_of(department: str | None) -> str | None:
        return by_type.get((department or "").partition("-")[2]) if department else None

    found: dict[str, FeedbackRow] = {}
    for r in kept:
        category = category_of(r["department_code"])
        if category is not None:
            found[r["petition_id"]] = FeedbackRow(r["title"], r["content"], category, "kept")
    for r in triage:  # a person's decision outranks what a department kept
        category = r["decided_category"] or category_of(r["department_code"])
        if category is not None:
            found[r["petition_id"]] = FeedbackRow(r["title"], r["content"], category, "triage")
    return list(found.values())


TRIAGE = """SELECT DISTINCT ON (petition_id) petition_id, title, content, decided_category, department_code
              FROM router.triage_decision ORDER BY petition_id, decided_at DESC"""
#: returned petitions and the department that holds them now
KEPT = """SELECT petition_id, title, content, department_code FROM router.assignment
           WHERE cardinality(returned_by) > 0 AND department_code <> $1"""


def from_database(dsn: str, routing_path: Path | None = None, gazetteer_path: Path | None = None) -> list[FeedbackRow]:
    """The feedback in the router's records (its database at `dsn`, its routing table)."""
    import asyncpg

    from services.router.config import load_routing_table

    table = load_routing_table(routing_path, gazetteer_path)

    async def run() -> list[FeedbackRow]:
        conn = await asyncpg.connect(dsn)
        try:
            triage = await conn.fetch(TRIAGE)
            kept = await conn.fetch(KEPT, table.triage.code)
        finally:
            await conn.close()
        return feedback_rows(triage, kept, categories_by_type(table.rules))

    return asyncio.run(run())


def main_train(argv: Sequence[str]) -> int:
    """``petitionctl model train --with-feedback [FILE]``: the candidate and its comparison."""
    from shared.settings import load_settings

    p = argparse.ArgumentParser(prog="petitionctl model train --with-feedback",
                                description="Train a candidate classifier with the desk's feedback and compare it.")
    p.add_argument("--with-feedback", nargs="?", const="", required=True, metavar="FILE",
                   help="a file of `petitionctl model feedback`; no FILE: read from the router's database")
    p.add_argument("--out-dir", type=Path, default=None, help="default: <run dir>/model-candidate")
    p.add_argument("--data-dir", type=Path, default=None, help="default: $PETITION_DATA_DIR or ../shared/data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dsn", help="PostgreSQL, without a FILE (default PETITION_PG_DSN)")
    args = p.parse_args(list(argv))
    settings = load_settings()
    rows = (read_feedback(Path(args.with_feedback)) if args.with_feedback else
            from_database(args.dsn or settings.pg_dsn, settings.routing_table_path, settings.gazetteer_path))
    out = Path(args.out_dir or settings.run_dir / "model-candidate")
    try:
        comparison, version = train_with_feedback(rows, out, data_dir=args.data_dir, seed=args.seed)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote the candidate {version} to {out} ({comparison.n_feedback} of {len(rows)} feedback rows usable)")
    print(comparison.format())
    return 0
