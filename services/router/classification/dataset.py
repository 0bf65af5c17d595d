"""The data the classifier learns from: the labelled petitions, the unlabelled ones (idf
only) and the board's taxonomy, read from ``$PETITION_DATA_DIR`` (never copied into the repo).

The training rows and the taxonomy's pseudo-documents are described in
:mod:`services.router.classification.train`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LABELED_FILE", "TAXONOMY_FILE", "UNLABELED_FILES", "Dataset", "default_data_dir", "load_data",
    "taxonomy_documents",
]

REPO_ROOT = Path(__file__).resolve().parents[3]
LABELED_FILE = "petitions-labeled.csv"
UNLABELED_FILES = ("petitions-unlabeled.csv", "petitions-with-replies.csv")
TAXONOMY_FILE = "category-taxonomy.csv"


def default_data_dir() -> Path:
    env = os.environ.get("PETITION_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


# --------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Dataset:
    titles: list[str]
    contents: list[str]
    labels: list[str]
    unlabeled_titles: list[str]
    unlabeled_contents: list[str]
    taxonomy: list[tuple[str, str]]  # (pseudo-document, 一级 category)
    sha256: dict[str, str]


def _read_csv(path: Path) -> tuple[list[dict[str, str]], str]:
    raw = path.read_bytes()
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    return rows, hashlib.sha256(raw).hexdigest()


def taxonomy_documents(rows: Sequence[dict[str, str]], categories: set[str]) -> list[tuple[str, str]]:
    """Pseudo-documents from taxonomy rows (一级分类, 二级分类, 三级分类) of `categories`."""

    def clean(name: str) -> str:
        return "" if name.strip() == "其他" else name.strip()

    mine = [r for r in rows if r["一级分类"].strip() in categories]
    docs = [(clean(r["二级分类"]) + clean(r["三级分类"]), r["一级分类"].strip()) for r in mine]
    docs += [(clean(r["三级分类"]), r["一级分类"].strip()) for r in mine]
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in mine:
        groups[(r["一级分类"].strip(), r["二级分类"].strip())].append(clean(r["三级分类"]))
    docs += [(clean(second) + "，" + "，".join(thirds), first) for (first, second), thirds in groups.items()]
    return [(text, category) for text, category in docs if text]


def load_data(data_dir: Path | None = None) -> Dataset:
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    labeled_path = data_dir / LABELED_FILE
    if not labeled_path.exists():
        raise FileNotFoundError(f"{labeled_path} not found (set PETITION_DATA_DIR or pass --data-dir)")
    labeled, lsha = _read_csv(labeled_path)
    sha = {LABELED_FILE: lsha}
    labeled = [r for r in labeled if (r.get("category") or "").strip()]
    seen_titles = {(r["title"] or "").strip() for r in labeled}
    seen_openings = {(r["content"] or "").strip()[:50] for r in labeled}
    unlabeled: list[dict[str, str]] = []
    for name in UNLABELED_FILES:
        path = data_dir / name
        if path.exists():
            rows, usha = _read_csv(path)
            sha[name] = usha
            # a row repeating a labelled message would let a test fold's text into training
            unlabeled += [
                r for r in rows
                if (r["title"] or "").strip() not in seen_titles
                and (r["content"] or "").strip()[:50] not in seen_openings
            ]
    taxonomy: list[tuple[str, str]] = []
    taxonomy_path = data_dir / TAXONOMY_FILE
    if taxonomy_path.exists():
        rows, tsha = _read_csv(taxonomy_path)
        sha[TAXONOMY_FILE] = tsha
        taxonomy = taxonomy_documents(rows, {r["category"].strip() for r in labeled})
    return Dataset(
        titles=[r["title"] or "" for r in labeled],
        contents=[r["content"] or "" for r in labeled],
        labels=[r["category"].strip() for r in labeled],
        unlabeled_titles=[r["title"] or "" for r in unlabeled],
        unlabeled_contents=[r["content"] or "" for r in unlabeled],
        taxonomy=taxonomy,
        sha256=sha,
    )


