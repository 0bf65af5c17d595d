"""Loading the router's data files (gazetteer, routing table, keywords) into domain objects."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from services.router.domain.keywords import KeywordClassifier
from services.router.domain.places import Gazetteer
from services.router.domain.routing import RoutingTable

DATA = Path(__file__).resolve().parent / "data"


def load_routing_table(
    routing_path: Path = DATA / "routing.yaml", gazetteer_path: Path = DATA / "gazetteer.yaml"
) -> RoutingTable:
    """Parse and validate both files; raises on any inconsistency (the caller keeps the old table)."""
    routing_bytes = routing_path.read_bytes()
    gazetteer_bytes = gazetteer_path.read_bytes()
    version = hashlib.sha256(routing_bytes + b"\0" + gazetteer_bytes).hexdigest()[:12]
    gazetteer = Gazetteer.from_data(yaml.safe_load(gazetteer_bytes))
    return RoutingTable.from_data(yaml.safe_load(routing_bytes), gazetteer, version)


def load_keyword_classifier(path: Path = DATA / "keywords.yaml") -> KeywordClassifier:
    data = yaml.safe_load(path.read_bytes())
    return KeywordClassifier(data["categories"])
