"""The router's decision without the stream: classification, jurisdiction and routing rule.

Used by ``petitionctl classify``; the same classifier, gazetteer, routing table and triage
threshold the router runs, and the router's own decision code
(:func:`services.router.planning.initial_decision`), so an operator can ask "where would
this go, and why?" and get the router's answer. Each input line becomes the
:class:`PetitionSubmitted` the router would receive (:func:`petition_of`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from services.router.config import GAZETTEER, ROUTING, load_classifier, load_routing_table
from services.router.domain.keywords import Prediction
from services.router.domain.routing import RoutingTable
from services.router.planning import initial_decision, triage_threshold
from shared.events import Channel, Location, PetitionSubmitted
from shared.settings import Settings

#: The envelope facts a petition from the command line has none of (they play no part in
#: the decision).
_EVENT_ID = uuid.UUID(int=0)
_PETITION_ID = "petitionctl-classify"


def petition_of(item: Mapping[str, Any], *, now: datetime | None = None) -> PetitionSubmitted:
    """The petition an input line describes, as the router would receive it.

    ``title`` and ``content`` (strings, default empty); optional ``location``
    (``{"admin_code", "address"}``; a top-level ``admin_code`` is still read when
    ``location`` has none), ``kind`` (``suggestion`` / ``accusation`` / ``claim``, default
    none), ``channel`` (default ``hotline``) and ``persons`` (default 1). Raises ValueError
    (pydantic's ValidationError is one) for a line the router could never receive.
    """
    location = item.get("location")
    if location is None:
        location = {}
    if not isinstance(location, Mapping):
        raise ValueError("location must be an object with admin_code and/or address")
    location = dict(location)
    if location.get("admin_code") is None and item.get("admin_code") is not None:
        location["admin_code"] = item["admin_code"]
    persons = item.get("persons", 1)
    if isinstance(persons, bool) or not isinstance(persons, int) or not 1 <= persons <= 100000:
        raise ValueError("persons must be an integer from 1 to 100000")
    at = now or datetime.now(UTC)
    try:
        place = Location.model_validate(location)
    except ValidationError as exc:
        raise ValueError(_one_line(exc, "location.")) from None
    try:
        return PetitionSubmitted(
            event_id=_EVENT_ID,
            occurred_at=at,
            petition_id=_PETITION_ID,
            tracking_code=_PETITION_ID,
            title=str(item.get("title") or ""),
            content=str(item.get("content") or ""),
            channel=item.get("channel") or Channel.HOTLINE,
            kind=item.get("kind"),
            location=place,
            persons=persons,
            received_at=at,
        )
    except ValidationError as exc:
        raise ValueError(_one_line(exc)) from None


def _one_line(exc: ValidationError, prefix: str = "") -> str:
    """pydantic's errors on one line (field: message; …), for the command's error lines."""
    return "; ".join(f"{prefix}{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


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

    @property
    def table(self) -> RoutingTable:
        return self._table

    @property
    def threshold(self) -> float:
        """The triage threshold the router uses with this table (the table's own wins)."""
        return triage_threshold(self._table, self._threshold)

    def predict(self, petitions: Sequence[PetitionSubmitted]) -> list[Prediction]:
        """The classifier's predictions, as the router reads them (title and content only)."""
        if not petitions:
            return []
        return [
            Prediction(p.category, float(p.confidence))
            for p in self._classifier.predict([(e.title, e.content) for e in petitions])
        ]

    def classify(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One result per item, in order: id, category, confidence, department, rule."""
        return self.classify_petitions([(i.get("id"), petition_of(i)) for i in items])

    def classify_petitions(self, items: Sequence[tuple[Any, PetitionSubmitted]]) -> list[dict[str, Any]]:
        """The router's initial decision for each (id, petition), in order."""
        predictions = self.predict([e for _, e in items])
        out = []
        for (ident, event), prediction in zip(items, predictions, strict=True):
            decision, _source = initial_decision(event, prediction, self._table, self.threshold)
            out.append(
                {
                    "id": ident,
                    "category": prediction.category,
                    "confidence": round(prediction.confidence, 4),
                    "department": decision.department.code,
                    "rule": decision.rule,
                }
            )
        return out
