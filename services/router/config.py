"""Loading the router's data files (gazetteer, routing table, keywords, model) into domain objects."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import yaml

from services.router.domain.keywords import KeywordClassifier
from services.router.domain.places import Gazetteer
from services.router.domain.routing import RoutingTable

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent / "data"
ROUTING = DATA / "routing.yaml"
GAZETTEER = DATA / "gazetteer.yaml"


def load_routing_table(routing_path: Path | None = None, gazetteer_path: Path | None = None) -> RoutingTable:
    """Parse and validate both files; raises on any inconsistency (the caller keeps the old table)."""
    routing_bytes = (routing_path or ROUTING).read_bytes()
    gazetteer_bytes = (gazetteer_path or GAZETTEER).read_bytes()
    version = hashlib.sha256(routing_bytes + b"\0" + gazetteer_bytes).hexdigest()[:12]
    gazetteer = Gazetteer.from_data(yaml.safe_load(gazetteer_bytes))
    return RoutingTable.from_data(yaml.safe_load(routing_bytes), gazetteer, version)


def load_keyword_classifier(path: Path = DATA / "keywords.yaml") -> KeywordClassifier:
    data = yaml.safe_load(path.read_bytes())
    return KeywordClassifier(data["categories"])


def load_classifier(kind: str = "model") -> Any:
    """The trained model (the default), or the keyword classifier when asked or when absent."""
    if kind == "model":
        try:
            from services.router.classification.model import CategoryClassifier

            return CategoryClassifier.load()
        except (ImportError, FileNotFoundError) as exc:
            log.warning("trained classifier unavailable (%s); using the keyword classifier", exc)
    return load_keyword_classifier()
