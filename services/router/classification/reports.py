"""What training and evaluation report: per-class metrics, calibration error, the reports
``petitionctl model train`` / ``evaluate`` print."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = [
    "ClassMetrics", "EvalReport", "TrainReport", "expected_calibration_error", "macro_f1", "per_class",
]


@dataclass(frozen=True)
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class TrainReport:
    out_dir: str
    version: str
    n_labeled: int
    n_unlabeled: int
    n_features: int
    class_counts: dict[str, int]
    train_accuracy: float
    oof_macro_f1: float  # the char view alone on the calibration folds (indicative)
    artefact_bytes: int
    seconds: float

    def format(self) -> str:
        return "\n".join(
            [
                f"wrote {self.out_dir} (version {self.version}, {self.artefact_bytes / 1024:.0f} KiB)",
                f"labelled texts: {self.n_labeled}; unlabelled texts (idf only): {self.n_unlabeled}",
                f"features: {self.n_features}",
                f"training accuracy: {self.train_accuracy:.4f}",
                f"char view alone, calibration folds: macro-F1 {self.oof_macro_f1:.4f}"
                " (indicative; `evaluate` gives the CV figure)",
                f"trained in {self.seconds:.1f}s",
            ]
        )


@dataclass(frozen=True)
class EvalReport:
    folds: int
    seed: int
    macro_f1: float
    accuracy: float
    ece: float
    ece_bins: int
    log_loss: float
    fold_macro_f1: list[float]
    per_class: dict[str, ClassMetrics]
    categories: list[str]
    confusion: list[list[int]]  # rows: true category, columns: predicted
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def format(self) -> str:
        lines = [
            f"macro-F1 ({self.folds}-fold stratified CV): {self.macro_f1:.4f}",
            f"accuracy: {self.accuracy:.4f}",
            f"per-fold macro-F1: {', '.join(f'{v:.4f}' for v in self.fold_macro_f1)}",
            f"expected calibration error (top label, {self.ece_bins} bins): {self.ece:.4f}",
            f"log loss: {self.log_loss:.4f}",
            "",
            f"{_pad('category', 14)} {'precision':>9} {'recall':>7} {'F1':>7} {'support':>8}",
        ]
        for c in self.categories:
            m = self.per_class[c]
            lines.append(f"{_pad(c, 14)} {m.precision:>9.4f} {m.recall:>7.4f} {m.f1:>7.4f} {m.support:>8d}")
        lines += ["", "confusion (rows: true, columns: predicted, same order as above):"]
        for c, row in zip(self.categories, self.confusion, strict=True):
            lines.append(f"{_pad(c, 14)} " + " ".join(f"{v:>4d}" for v in row))
        lines.append(f"\nevaluated in {self.seconds:.1f}s (seed {self.seed})")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2)


def _pad(text: str, width: int) -> str:
    """Left-align ``text`` in ``width`` terminal columns (CJK characters take two)."""
    import unicodedata

    used = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - used)


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Top-label ECE: weighted mean |accuracy - confidence| over equal-width confidence bins."""
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def per_class(y: np.ndarray, pred: np.ndarray, k: int) -> tuple[list[ClassMetrics], np.ndarray]:
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    out = []
    for c in range(k):
        tp = confusion[c, c]
        p = tp / confusion[:, c].sum() if confusion[:, c].sum() else 0.0
        r = tp / confusion[c].sum() if confusion[c].sum() else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        out.append(ClassMetrics(float(p), float(r), float(f), int(confusion[c].sum())))
    return out, confusion


def macro_f1(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    return float(np.mean([m.f1 for m in per_class(y, pred, k)[0]]))


