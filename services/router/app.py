"""The router's composition root: classify, find the jurisdiction, assign one department.

Consumes ``petition.submitted`` (route) and ``petition.actions`` (returns, triage
assignments); writes its decision, ``petition.routed`` and the department's
``dept.<code>.assignments`` record in one transaction (the outbox), so a crash at any point
neither loses nor duplicates a decision. A batch is classified in one call, before its
transaction (:mod:`services.router.prepare`); the handlers (:mod:`services.router.handlers`)
decide and write through the store (:mod:`services.router.store`). This module wires them:
settings, pool, migrations, department queues, the classifier workers, the relay, the
consumer core and the faust app, and counts the metrics of what committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import asyncpg

from services.router import handlers, metrics
from services.router.classification.offload import OffloadedClassifier
from services.router.config import GAZETTEER, ROUTING, load_classifier
from services.router.domain.routing import RoutingTable
from services.router.prepare import PreparedPlans
from services.router.store import PgRouterStore, RouterStore
from services.router.suggestions_page import add_suggestion_page
from services.router.tables import TableSource
from services.router.topics_admin import DepartmentQueues
from shared import topics
from shared.auth.settings import AuthSettings
from shared.auth.verify import build_verifier
from shared.consumer import BatchProcessor, BatchResult, Prepared
from shared.db import open_schema
from shared.errors import Unavailable
from shared.events import IncidentLinked, PetitionActionTaken, PetitionSubmitted, utcnow
from shared.kafka_client import KafkaAccess
from shared.outages import is_transient
from shared.outbox import OutboxRelay
from shared.records import RawMessage
from shared.relay_process import RelayProcess
from shared.runtime import tune_gc
from shared.settings import Settings
from shared.store import PgUnitOfWork
from shared.supervise import Supervisor
from shared.worker import (
    add_ops_pages,
    batch_agent,
    consumer_parts,
    make_app,
    pg_and_kafka_ready,
    start_when_reachable,
)

log = logging.getLogger(__name__)

SCHEMA = "router"
SERVICE = "router"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _model_stamp(model_dir: Path | None) -> tuple[int, ...] | None:
    """When the served model's files last changed (None: no promoted model there)."""
    if model_dir is None:
        return None
    try:
        return tuple((model_dir / name).stat().st_mtime_ns for name in ("model.json", "model.npz"))
    except OSError:
        return None


class Router:
    """Holds the collaborators and hands each batch to the handlers; one per process."""

    def __init__(self, *, settings: Settings) -> None:
        self.settings = settings
        self.tables = TableSource(settings.routing_table_path or ROUTING, settings.gazetteer_path or GAZETTEER)
        # a promoted model is served from here (petitionctl model promote), reloaded when it changes
        self.model_dir = settings.serving_model_dir if settings.classifier == "model" else None
        self._model_stamp = _model_stamp(self.model_dir)
        self.plans = PreparedPlans(
            classifier=load_classifier(settings.classifier, self.model_dir), default_threshold=settings.triage_threshold
        )
        self.kafka = KafkaAccess.from_settings(settings)
        self.queues = DepartmentQueues(self.kafka, settings.kafka_brokers)
        self.pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | RelayProcess | None = None
        self._start_lock = asyncio.Lock()
        self._processor: BatchProcessor | None = None
        self._next_reload_check = 0.0
        self.loops = Supervisor(SERVICE)
        self.agent_health: Any = None  # the faust agent's own health (set by build_app)

    @property
    def table(self) -> RoutingTable:
        return self.tables.table

    async def start(self) -> None:
        """Connect, migrate and start the outbox relay (idempotent)."""
        async with self._start_lock:
            if self.pool is not None:
                return
            # Every department's queue exists before the first petition is routed (one admin
            # call; later table reloads add theirs on first use).
            await self.queues.ensure({d.code for d in self.table.departments()})
            pool = await open_schema(self.settings.pg_dsn, SCHEMA, MIGRATIONS, max_size=4)
            if self.settings.classify_workers > 0:
                offload = OffloadedClassifier(
                    self.settings.classifier, workers=self.settings.classify_workers, local=self.plans.classifier,
                    tables=self.tables.paths, model_dir=self.model_dir,
                )
                await offload.warm_up()
                self.plans.offload = offload
            if self.settings.relay_process:
                self.relay = RelayProcess(
                    dsn=self.settings.pg_dsn, schema=SCHEMA, kafka=self.kafka,
                    service=SERVICE, log_level=self.settings.log_level,
                )
            else:
                self.relay = OutboxRelay(
                    pool=pool, schema=SCHEMA, kafka=self.kafka, service=SERVICE
                )
            relay = self.relay
            self.loops.start("outbox-relay", relay.run, healthy=relay.healthy)
            self._processor = BatchProcessor(
                uow=PgUnitOfWork(pool, SCHEMA, PgRouterStore),
                service=SERVICE,
                consumer="router",
                dead_letter_topic=topics.DEAD_LETTER_ROUTER,
                handlers={
                    "petition.submitted": lambda tx, e, raw, r: self.on_submitted_batch(tx, [(e, raw)], r),
                    "petition.action_taken": self.on_action,
                    "incident.linked": self.on_link,
                    "watch.alert": self.on_alert,
                },
                batch_handlers={"petition.submitted": self.on_submitted_batch},
                # a new petition's assignment row is its ledger entry: the same petition
                # again (the same event redelivered, or under another event id) is found by
                # its id, so the processed-event ledger would be a second index to write
                deduplicated_by_handler=frozenset({"petition.submitted"}),
                prepare=lambda items: self.plans.prepare(items, self.table),
                max_record_bytes=self.settings.max_record_bytes,
                on_committed=lambda _r: self.relay.kick() if self.relay else None,
            )
            self.pool = pool

    async def process(self, messages: list[RawMessage]) -> BatchResult:
        return await self.apply(await self.prepare(messages))

    async def prepare(self, messages: list[RawMessage]) -> Prepared:
        """Decode and classify a batch (the CPU part; the pipelined agent overlaps it with
        the previous batch's transaction)."""
        await self.start()
        assert self._processor is not None  # noqa: S101 - narrows the type: never None here
        return await self._processor.prepare(messages)

    async def apply(self, prepared: Prepared) -> BatchResult:
        """Route a prepared batch in one transaction."""
        self.maybe_reload()
        assert self._processor is not None  # noqa: S101 - narrows the type: never None here
        try:
            return await self._processor.apply(prepared)
        finally:
            self.plans.forget(event for _, event, _ in prepared.decoded)

    async def suggest(self, event: PetitionSubmitted) -> handlers.Suggestion:
        """Where `event` would go now (the operator desk's question), reading one snapshot."""
        pool = self.pool
        if pool is None:
            raise Unavailable("the router is starting; retry")
        # the classifier's probabilities of every category (the triage desk's choices)
        scores = getattr(self.plans.classifier.predict([(event.title, event.content)])[0], "scores", None)
        try:
            async with PgUnitOfWork(pool, SCHEMA, PgRouterStore).begin(snapshot=True) as store:
                return await handlers.suggest(store, event, table=self.table, plans=self.plans, scores=scores)
        except Exception as exc:
            if is_transient(exc):
                raise Unavailable("the router's database does not answer; retry") from exc
            raise

    def maybe_reload(self) -> None:
        now = time.monotonic()
        if now >= self._next_reload_check:
            self._next_reload_check = now + self.settings.table_reload_seconds
            self.tables.maybe_reload()
            self.maybe_reload_model()

    def maybe_reload_model(self) -> bool:
        """Serve a newly promoted model (its files changed); a model that does not load is
        logged and the one in force kept. True when a new one is in force."""
        stamp = _model_stamp(self.model_dir)
        if stamp == self._model_stamp:
            return False
        self._model_stamp = stamp
        try:
            new = load_classifier(self.settings.classifier, self.model_dir)
        except Exception:
            log.exception("the promoted model in %s does not load; keeping %s", self.model_dir,
                          getattr(self.plans.classifier, "version", "?"))
            return False
        old = getattr(self.plans.classifier, "version", "?")
        self.plans.classifier = new
        if self.plans.offload is not None:
            self.plans.offload.reload(new)
        log.info("classifier reloaded: %s -> %s", old, getattr(new, "version", "?"))
        return True

    async def readiness(self) -> dict[str, bool]:
        return await pg_and_kafka_ready(self.pool, self.relay, loops=self.loops,
                                        parts=consumer_parts(self._processor, self.agent_health))

    # --- the consumer core's handlers: the service layer, and the metrics of what committed

    async def on_submitted_batch(
        self, store: RouterStore, items: list[tuple[PetitionSubmitted, RawMessage]], result: BatchResult
    ) -> list[RawMessage]:
        """Route a run of new petitions; returns the messages of petitions already routed."""
        table = self.table
        outcome = await handlers.route_new_petitions(
            store, items, table=table, plans=self.plans, queues=self.queues, clock=utcnow,
            partitions={f"{raw.topic}:{raw.partition}" for _, raw in items},
        )
        decided_at = outcome.decided_at
        if decided_at is not None:
            routed, triage = outcome.routed, table.triage.code

            def observe() -> None:
                metrics.observe_decisions((r for _, r in routed), triage)
                metrics.observe_new_petitions(routed, decided_at)

            result.after_commit.append(observe)
        return outcome.repeated

    async def on_link(
        self, store: RouterStore, event: IncidentLinked, raw: RawMessage, result: BatchResult
    ) -> None:
        """并案: a petition the watch linked to an incident goes to the incident's department."""
        table = self.table
        change = await handlers.merge_into_incident(store, event, table=table, queues=self.queues, clock=utcnow)
        if change is not None:
            triage = table.triage.code
            result.after_commit.append(lambda: metrics.observe_decisions([change.routing], triage))

    async def on_alert(self, store: RouterStore, event: Any, raw: RawMessage, result: BatchResult) -> None:
        """The watch's alerts share its topic with the links; the router acts on links only."""

    async def on_action(
        self, store: RouterStore, event: PetitionActionTaken, raw: RawMessage, result: BatchResult
    ) -> None:
        """Reassign after a return or the triage desk's choice."""
        table = self.table
        change = await handlers.act_on_assignment(store, event, table=table, queues=self.queues, clock=utcnow)
        if change is not None:
            returner, triage = change.returner, table.triage.code

            def observe() -> None:
                if returner is not None:
                    metrics.RETURNS.labels(returner).inc()
                metrics.observe_decisions([change.routing], triage)

            result.after_commit.append(observe)


def build_app(settings: Settings) -> Any:
    """Wire the faust app: agents on the router's input topics, ops pages, start-up task."""
    router = Router(settings=settings)
    app = make_app(SERVICE, settings, kafka=router.kafka, web_port=settings.router_port)
    add_ops_pages(app, router.readiness)
    verifier = build_verifier(AuthSettings(), settings.run_dir)
    add_suggestion_page(app, router, verifier)
    router.agent_health = batch_agent(
        app,
        [topics.PETITION_SUBMITTED, topics.PETITION_ACTIONS, topics.PETITION_ALERTS],
        name="route",
        processor=lambda: router,  # type: ignore[arg-type,return-value]  # the service is its own processor (duck-typed)
        batch_size=settings.batch_size,
        within=settings.batch_within_seconds,
        pipelined=True,
    )

    @app.task
    async def _startup() -> None:
        verifier.start()  # the issuer's public keys (the suggestions page checks tokens)
        await start_when_reachable(router.start, service=SERVICE)
        tune_gc()  # the model, the table and the libraries are loaded: freeze them

    @app.timer(interval=max(settings.table_reload_seconds, 0.5))
    async def _reload() -> None:
        router.maybe_reload()  # also checked before every batch; this covers idle periods

    app.router_service = router  # type: ignore[attr-defined]  # kept on the faust app for tests and ops
    return app
