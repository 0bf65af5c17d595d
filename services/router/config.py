"""Loading the router's data files (gazetteer, routing table, keywords, model) into domain objects."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from services.router.domain.keywords import KeywordClassifier
from services.router.domain.routing import RoutingTable
from shared.reference.files import GAZETTEER, ROUTING, load_directory

__all__ = ["DATA", "GAZETTEER", "ROUTING", "load_classifier", "load_keyword_classifier", "load_routing_table"]

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent / "data"


def load_routing_table(routing_path: Path | None = None, gazetteer_path: Path | None = None) -> RoutingTable:
    """Parse and validate both files; raises on any inconsistency (the caller keeps the old table)."""
    files = load_directory(routing_path, gazetteer_path)
    return RoutingTable.from_data(files.routing_data, files.gazetteer, files.version, directory=files.directory)


def load_keyword_classifier(path: Path = DATA / "keywords.yaml") -> KeywordClassifier:
    data = yaml.safe_load(path.read_bytes())
    return KeywordClassifier(data["categories"])


def load_classifier(kind: str = "model", model_dir: Path | None = None) -> Any:
    """The trained model (the default: the promoted one in `model_dir` when it holds one, else
    the artefact shipped in the package), or the keyword classifier when asked or when absent."""
    if kind == "model":
        try:
            from services.router.classification.model import META_FILE, CategoryClassifier

            if model_dir is not None and (model_dir / META_FILE).is_file():
                return CategoryClassifier.load(model_dir)
            return CategoryClassifier.load()
        except (ImportError, FileNotFoundError) as exc:
            log.warning("trained classifier unavailable (%s); using the keyword classifier", exc)
    return load_keyword_classifier()
