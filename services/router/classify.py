"""The router's decision without the stream: classification, jurisdiction and routing rule.

Used by ``petitionctl classify``; the same classifier, gazetteer, routing table and triage
threshold the router runs, so an operator can ask "where would this go, and why?".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.router.config import GAZETTEER, ROUTING, load_classifier, load_routing_table
from services.router.domain.routing import Decision, RoutingTable
from shared.settings import Settings


class Classifier:
    def __init__(self, *, classifier: Any, table: RoutingTable, triage_threshold: float) -> None:
        self._classifier = classifier
        self._table = table
        self._threshold = triage_threshold

    @classmethod
    def from_settings(cls, settings: Settings, *, classifier: str | None = None) -> Classifier:
        return cls(
            classifier=load_classifier(classifier or settings.classifier),
            table=load_routing_table(settings.routing_table_path or ROUTING, settings.gazetteer_path or GAZETTEER),
            triage_threshold=settings.triage_threshold,
        )

    def classify(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One result per item, in order: id, category, confidence, department, rule."""
        if not items:
            return []
        predictions = self._classifier.predict(
            [(str(i.get("title") or ""), str(i.get("content") or "")) for i in items]
        )
        out = []
        for item, prediction in zip(items, predictions, strict=True):
            text = f"{item.get('title') or ''} {item.get('content') or ''}"
            area, _source = self._table.gazetteer.resolve(item.get("admin_code"), text)
            accused = self._table.accused_units(text, area) if item.get("kind") == "accusation" else ()
            category, confidence = prediction.category, float(prediction.confidence)
            threshold = self._table.triage_threshold if self._table.triage_threshold is not None else self._threshold
            if category is None or confidence < threshold:
                decision = Decision(
                    self._table.triage, f"triage:low-confidence:{confidence:.2f}<{threshold:.2f}", area
                )
            else:
                decision = self._table.decide(category, area, text=text, accused=accused)
            out.append(
                {
                    "id": item.get("id"),
                    "category": category,
                    "confidence": round(confidence, 4),
                    "department": decision.department.code,
                    "rule": decision.rule,
                }
            )
        return out
