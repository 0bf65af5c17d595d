"""The classification hook: new petitions planned before their batch's transaction.

The consumer core runs :meth:`PreparedPlans.prepare` on a decoded batch while the previous
batch's transaction runs (the pipelined agent); the handler then takes each petition's plan
from :meth:`PreparedPlans.plan` (a :class:`services.router.handlers.Plans`). Classification,
jurisdiction, the rule and the encoded events all happen here, in the worker processes when
there are some (:class:`OffloadedClassifier`), in this one otherwise; only the repeat check
is left to the transaction.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, cast

from services.router import metrics
from services.router.classification.offload import OffloadedClassifier
from services.router.domain.keywords import Prediction
from services.router.domain.routing import RoutingTable
from services.router.planning import Planned, plan_new, routing_from_worker, triage_threshold
from shared.events import PetitionSubmitted, utcnow
from shared.records import RawMessage


class PreparedPlans:
    """Plans of the batches in flight, by event id, from :meth:`prepare` until :meth:`forget`.

    `classifier` is the router's classifier in this process (``load_classifier``);
    `default_threshold` the triage threshold of a table that names none; `offload`, once
    set, classifies and plans in worker processes."""

    def __init__(self, *, classifier: Any, default_threshold: float) -> None:
        self.classifier = classifier
        self.offload: OffloadedClassifier | None = None
        self._default_threshold = default_threshold
        self._plans: dict[Any, Planned] = {}  # event id -> plan, from prepare to apply

    def threshold(self, table: RoutingTable) -> float:
        return triage_threshold(table, self._default_threshold)

    async def prepare(self, items: list[tuple[Any, RawMessage]], table: RoutingTable) -> None:
        """Classify every new petition of a batch, work out its routing on `table` and encode
        its events, all in the worker process (the model is vectorised; none of it needs the
        database), while the previous batch's transaction runs."""
        submitted = [(e, m) for e, m in items if isinstance(e, PetitionSubmitted)]
        if not submitted:
            return
        started = time.perf_counter()
        done: list[Any] = [None] * len(submitted)
        if self.offload is not None:
            done = await self.offload.plan(
                # decoded events: their value is never None
                [(cast(bytes, m.value), e.petitioner_key is not None) for e, m in submitted],
                table.version, self.threshold(table),
            )
        missing = [i for i, d in enumerate(done) if d is None]
        if missing:  # no worker (or it died): classify here
            predictions = self.classifier.predict([(submitted[i][0].title, submitted[i][0].content) for i in missing])
            for i, p in zip(missing, predictions, strict=True):
                done[i] = (p, None, None)
        metrics.CLASSIFY_SECONDS.observe(time.perf_counter() - started)
        for (event, _), (prediction, packed, plan) in zip(submitted, done, strict=True):
            got = routing_from_worker(event, prediction, plan, table) if plan is not None else None
            if got is None:
                planned = plan_new(event, prediction, packed, table, self.threshold(table), utcnow(),
                                   getattr(self.classifier, "version", None))
            else:
                routing, encoded = got
                decision = routing.decision
                planned = Planned(table, routing, decision.jurisdiction, decision.accused, packed, encoded)
            self._plans[event.event_id] = planned

    def plan(self, event: PetitionSubmitted, table: RoutingTable) -> Planned:
        """The plan prepared for `event` on `table`; worked out now if none was prepared
        (the hook failed) or the table changed since (a reload)."""
        plan = self._plans.get(event.event_id)
        if plan is not None and plan.table is table:
            return plan
        if plan is None:
            packed, prediction = None, self.classifier.predict([(event.title, event.content)])[0]
        else:
            # a prepared plan's routing is the initial one: the classifier's own confidence
            confidence = plan.routing.confidence
            assert confidence is not None  # noqa: S101 - narrows the type: never None here
            packed, prediction = plan.packed, Prediction(plan.routing.category, confidence)
        return plan_new(event, prediction, packed, table, self.threshold(table), utcnow(),
                        getattr(self.classifier, "version", None))

    def forget(self, events: Iterable[Any]) -> None:
        """Drop the plans of `events` (their batch was applied)."""
        for event in events:
            self._plans.pop(getattr(event, "event_id", None), None)
