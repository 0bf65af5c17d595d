"""The router's composition root: classify, find the jurisdiction, assign one department.

Consumes ``petition.submitted`` (route) and ``petition.actions`` (returns, triage
assignments); writes its decision, ``petition.routed`` and the department's
``dept.<code>.assignments`` record in one transaction (the outbox), so a crash at any point
neither loses nor duplicates a decision. A batch is classified in one call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.router import metrics
from services.router.classification.offload import OffloadedClassifier
from services.router.config import GAZETTEER, ROUTING, load_classifier, load_routing_table
from services.router.domain.keywords import Prediction
from services.router.domain.repeats import Earlier, find_original, from_bigrams, pack, signature
from services.router.domain.routing import Decision, RoutingTable
from services.router.planning import (
    Encoded,
    Routing,
    encode,
    initial_decision,
    initial_routing,
    routing_from_worker,
)
from shared import topics
from shared.consumer import BatchProcessor, BatchResult, Prepared, RawMessage
from shared.db import add_to_outbox, create_pool, ensure_common_tables, migrate
from shared.errors import BadInput
from shared.events import (
    ActionType,
    Channel,
    Kind,
    Location,
    PetitionActionTaken,
    PetitionSubmitted,
    Priority,
    utcnow,
)
from shared.outbox import OutboxRelay
from shared.reference.places import Area
from shared.relay_process import RelayProcess, notify
from shared.runtime import tune_gc
from shared.settings import Settings
from shared.store import PgTransaction, PgUnitOfWork
from shared.supervise import Supervisor
from shared.worker import add_ops_pages, batch_agent, consumer_parts, make_app, pg_and_kafka_ready

log = logging.getLogger(__name__)

SCHEMA = "router"
SERVICE = "router"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@dataclass(frozen=True, slots=True)
class Planned:
    """A new petition's routing worked out before its transaction, as if it repeated nothing
    (the one check that needs the database), with the table it used and its events encoded."""

    table: RoutingTable
    routing: Routing
    area: Area | None
    accused: tuple[str, ...]
    packed: bytes | None  # the repeat signature, for a known petitioner
    encoded: Encoded


class TableSource:
    """The routing table in force, re-read when its files change; a broken file is rejected."""

    def __init__(self, routing_path: Path, gazetteer_path: Path) -> None:
        self._paths = self.paths = (routing_path, gazetteer_path)
        self._stamp = self._mtimes()
        self.table: RoutingTable = load_routing_table(*self._paths)
        metrics.ROUTING_TABLE_INFO.labels(self.table.version).set(1)

    def _mtimes(self) -> tuple[int, ...]:
        return tuple(p.stat().st_mtime_ns for p in self._paths)

    def maybe_reload(self) -> bool:
        """Reload if a file changed; True when a new table came into force."""
        try:
            stamp = self._mtimes()
        except OSError as exc:
            log.error("routing table files unreadable (%s); keeping table %s", exc, self.table.version)
            metrics.ROUTING_TABLE_RELOADS.labels("rejected").inc()
            return False
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            table = load_routing_table(*self._paths)
        except Exception as exc:  # noqa: BLE001 - any defect in the files rejects them
            log.error("routing table rejected (%s: %s); keeping table %s", type(exc).__name__, exc, self.table.version)
            metrics.ROUTING_TABLE_RELOADS.labels("rejected").inc()
            return False
        if table.version == self.table.version:
            return False
        metrics.ROUTING_TABLE_INFO.labels(self.table.version).set(0)
        self.table = table
        metrics.ROUTING_TABLE_INFO.labels(table.version).set(1)
        metrics.ROUTING_TABLE_RELOADS.labels("loaded").inc()
        log.info("routing table %s in force", table.version)
        return True


class Router:
    """Holds the collaborators and the handlers; one per process."""

    def __init__(self, *, settings: Settings) -> None:
        self.settings = settings
        self.tables = TableSource(settings.routing_table_path or ROUTING, settings.gazetteer_path or GAZETTEER)
        self.classifier: Any = load_classifier(settings.classifier)
        self.pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | RelayProcess | None = None
        self._known_topics: set[str] = set()
        self._start_lock = asyncio.Lock()
        self._processor: BatchProcessor | None = None
        self._plans: dict[Any, Planned] = {}  # event id -> plan, from prepare to apply
        self._next_reload_check = 0.0
        self._admin: AIOKafkaAdminClient | None = None
        self._offload: OffloadedClassifier | None = None
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
            pool = await create_pool(self.settings.pg_dsn, max_size=4)
            async with pool.acquire() as conn:
                await migrate(conn, SCHEMA, MIGRATIONS)
                await ensure_common_tables(conn, SCHEMA)
            # Every department's queue exists before the first petition is routed (one admin
            # call; later table reloads add theirs on first use).
            await self.ensure_department_topics({d.code for d in self.table.departments()})
            if self.settings.classify_workers > 0:
                offload = OffloadedClassifier(
                    self.settings.classifier, workers=self.settings.classify_workers, local=self.classifier,
                    tables=self.tables.paths,
                )
                await offload.warm_up()
                self._offload = offload
            if self.settings.relay_process:
                self.relay = RelayProcess(
                    dsn=self.settings.pg_dsn, schema=SCHEMA, bootstrap=self.settings.kafka_bootstrap,
                    service=SERVICE, log_level=self.settings.log_level,
                )
            else:
                self.relay = OutboxRelay(
                    pool=pool, schema=SCHEMA, bootstrap=self.settings.kafka_bootstrap, service=SERVICE
                )
            relay = self.relay
            self.loops.start("outbox-relay", relay.run, healthy=relay.healthy)
            self._processor = BatchProcessor(
                uow=PgUnitOfWork(pool, SCHEMA, PgTransaction),
                service=SERVICE,
                consumer="router",
                dead_letter_topic=topics.DEAD_LETTER_ROUTER,
                handlers={
                    "petition.submitted": lambda tx, e, raw, r: self.on_submitted(tx.conn, e, raw, r),
                    "petition.action_taken": lambda tx, e, raw, r: self.on_action(tx.conn, e, raw, r),
                },
                batch_handlers={"petition.submitted": lambda tx, items, r: self.on_submitted_batch(tx.conn, items, r)},
                # a new petition's assignment row is its ledger entry: the same petition
                # again (the same event redelivered, or under another event id) is found by
                # its id, so the processed-event ledger would be a second index to write
                deduplicated_by_handler=frozenset({"petition.submitted"}),
                prepare=self.classify_batch,
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
            for _, event, _ in prepared.decoded:
                self._plans.pop(getattr(event, "event_id", None), None)

    def maybe_reload(self) -> None:
        now = time.monotonic()
        if now >= self._next_reload_check:
            self._next_reload_check = now + self.settings.table_reload_seconds
            self.tables.maybe_reload()

    async def readiness(self) -> dict[str, bool]:
        return await pg_and_kafka_ready(self.pool, self.relay, loops=self.loops,
                                        parts=consumer_parts(self._processor, self.agent_health))

    async def ensure_department_topics(self, codes: set[str]) -> None:
        """Create the queues of departments getting their first work (topics are explicit).

        One admin round trip for all the batch's new departments; known topics cost nothing.
        """
        missing = {topics.department_topic(c) for c in codes} - self._known_topics
        if not missing:
            return
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap)
            await admin.start()
            self._admin = admin
        try:
            self._known_topics.update(await self._admin.list_topics())
            missing -= self._known_topics
            names = sorted(missing)
            for i in range(0, len(names), 500):
                try:
                    response = await self._admin.create_topics(
                        [NewTopic(n, num_partitions=1, replication_factor=1) for n in names[i : i + 500]]
                    )
                except TopicAlreadyExistsError:
                    continue
                for topic, code, *_ in getattr(response, "topic_errors", getattr(response, "topics", [])):
                    if code not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS
                        raise RuntimeError(f"cannot create topic {topic}: error code {code}")
            await self._wait_until_writable(set(names))
            self._known_topics.update(missing)
        except Exception:
            admin, self._admin = self._admin, None
            if admin is not None:
                await admin.close()
            raise

    async def _wait_until_writable(self, names: set[str], timeout: float = 120.0) -> None:
        """Wait until every new queue has a partition leader, so the relay's first writes to
        them land instead of bouncing between retries and metadata refreshes."""
        assert self._admin is not None  # noqa: S101 - narrows the type: never None here
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            described = []
            ordered = sorted(pending)
            for i in range(0, len(ordered), 500):
                described += await self._admin.describe_topics(ordered[i : i + 500])
            pending = topics.topics_not_ready(described, pending)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} new department queues have no leader after {timeout:.0f}s")
            await asyncio.sleep(0.25)

    # --- classification -------------------------------------------------------------------

    async def classify_batch(self, items: list[tuple[Any, RawMessage]]) -> None:
        """Classify every new petition of a batch, work out its routing and encode its events,
        all in the worker process (the model is vectorised; none of it needs the database),
        while the previous batch's transaction runs. Only the repeat check is left to the
        transaction."""
        submitted = [(e, m) for e, m in items if isinstance(e, PetitionSubmitted)]
        if not submitted:
            return
        started = time.perf_counter()
        table = self.table
        done: list[Any] = [None] * len(submitted)
        if self._offload is not None:
            done = await self._offload.plan(
                # decoded events: their value is never None
                [(cast(bytes, m.value), e.petitioner_key is not None) for e, m in submitted],
                table.version, self._threshold(table),
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
                self._plans[event.event_id] = self._plan(event, prediction, packed, table)
            else:
                routing, encoded = got
                decision = routing.decision
                self._plans[event.event_id] = Planned(
                    table, routing, decision.jurisdiction, decision.accused, packed, encoded
                )

    def _threshold(self, table: RoutingTable) -> float:
        return table.triage_threshold if table.triage_threshold is not None else self.settings.triage_threshold

    def _plan(self, event: PetitionSubmitted, prediction: Any, packed: bytes | None, table: RoutingTable) -> Planned:
        """The routing of a new petition as if it repeats nothing, with its events encoded."""
        decision, source = initial_decision(event, prediction, table, self._threshold(table))
        routing = initial_routing(event, prediction, decision, source)
        return Planned(table, routing, decision.jurisdiction, decision.accused, packed,
                       encode(event, routing, utcnow(), table))

    # --- handlers -------------------------------------------------------------------------

    async def on_submitted(
        self, conn: asyncpg.Connection, event: PetitionSubmitted, raw: RawMessage, result: BatchResult
    ) -> list[RawMessage]:
        return await self.on_submitted_batch(conn, [(event, raw)], result)

    async def on_submitted_batch(
        self, conn: asyncpg.Connection, items: list[tuple[PetitionSubmitted, RawMessage]], result: BatchResult
    ) -> list[RawMessage]:
        """Route a run of new petitions with a handful of round trips for the whole run;
        returns the messages of petitions already routed (repeats: nothing is written)."""
        table = self.table
        existing = {
            r["petition_id"]
            for r in await conn.fetch(
                "SELECT petition_id FROM router.assignment WHERE petition_id = ANY($1::text[])",
                [e.petition_id for e, _ in items],
            )
        }
        earlier = await self._earlier_petitions(conn, [e for e, _ in items])
        plans: list[tuple[PetitionSubmitted, Routing, Area | None, bytes | None, Encoded]] = []
        repeated: list[RawMessage] = []
        for event, raw in items:
            if event.petition_id in existing:
                repeated.append(raw)  # redelivered, or under another event id: routed once
                continue
            existing.add(event.petition_id)
            plan = self._plans.get(event.event_id)
            if plan is None or plan.table is not table:  # not prepared, or the table changed since
                if plan is None:
                    packed, prediction = None, self.classifier.predict([(event.title, event.content)])[0]
                else:
                    # a prepared plan's routing is the initial one: the classifier's own confidence
                    confidence = plan.routing.confidence
                    assert confidence is not None  # noqa: S101 - narrows the type: never None here
                    packed, prediction = plan.packed, Prediction(plan.routing.category, confidence)
                plan = self._plan(event, prediction, packed, table)
            routing, encoded, packed = plan.routing, plan.encoded, plan.packed
            match = None
            if event.petitioner_key:  # only a known person can repeat; anonymous ones skip the cost
                if packed is None:
                    packed = pack(signature(event.title, event.content))
                match = find_original(packed, event.received_at, earlier.get(event.petitioner_key, []))
            if match is not None and match.original.department_code not in plan.accused:
                repeat_of = match.original.petition_id
                dept = table.department(match.original.department_code) or table.triage
                routing = dataclasses.replace(
                    routing, decision=Decision(dept, f"repeat-of:{repeat_of}", plan.area, plan.accused),
                    reason="repeat", repeat_of=repeat_of,
                )
                encoded = encode(event, routing, utcnow(), table)
            if event.petitioner_key and match is None:
                assert packed is not None  # noqa: S101 - computed above for every known petitioner
                earlier.setdefault(event.petitioner_key, []).append(
                    Earlier(event.petition_id, event.received_at, packed, routing.decision.department.code)
                )
            plans.append((event, routing, plan.area, packed, encoded))
        if not plans:
            return repeated
        # Bulk COPY: the claim above and the existence check make these rows new. (A location
        # is flat: its field dict is what model_dump gives, at a twentieth of the cost.)
        await conn.copy_records_to_table(
            "assignment",
            schema_name=SCHEMA,
            columns=(
                "petition_id", "tracking_code", "assignment_no", "department_code", "category",
                "confidence", "jurisdiction_code", "rule", "kind", "channel", "priority",
                "petitioner_key", "persons", "title", "content", "location", "received_at",
                "accused", "repeat_of", "group_petition",
            ),
            records=[
                (
                    e.petition_id, e.tracking_code, 1, r.decision.department.code, r.category,
                    r.confidence, area.code if area else None, r.decision.rule,
                    e.kind, e.channel, r.priority,  # str enums: text as they are (.value is slow)
                    e.petitioner_key, e.persons, e.title, e.content, dict(vars(e.location)),
                    e.received_at, list(r.decision.accused), r.repeat_of, r.group_petition,
                )
                for e, r, area, _, _ in plans
            ],
        )
        index_rows = [
            (e.petition_id, e.petitioner_key, e.received_at, packed)
            for e, _, _, packed, _ in plans
            if e.petitioner_key
        ]
        if index_rows:
            await conn.copy_records_to_table(
                "petition_index", schema_name=SCHEMA,
                columns=("petition_id", "petitioner_key", "received_at", "bigrams"), records=index_rows,
            )
        await self._write_outputs(conn, [(r, enc) for _, r, _, _, enc in plans], result)
        now = utcnow()
        lags = [max((now - e.occurred_at).total_seconds(), 0.0) for e, *_ in plans]
        repeats = sum(1 for _, r, *_ in plans if r.repeat_of)
        groups = sum(1 for _, r, *_ in plans if r.group_petition)
        raised = sum(1 for _, r, *_ in plans if r.decision.rule.startswith("accusation:"))

        def observe() -> None:
            for lag in lags:
                metrics.SUBMIT_TO_ROUTED.observe(lag)
            metrics.REPEATS.inc(repeats)
            metrics.GROUP_PETITIONS.inc(groups)
            metrics.ACCUSATIONS_RAISED.inc(raised)

        result.after_commit.append(observe)
        return repeated

    async def _earlier_petitions(
        self, conn: asyncpg.Connection, events: list[PetitionSubmitted]
    ) -> dict[str, list[Earlier]]:
        """Earlier original petitions of the batch's petitioners within the repeat window."""
        keyed = [e for e in events if e.petitioner_key]
        if not keyed:
            return {}
        rows = await conn.fetch(
            """SELECT i.petitioner_key, i.petition_id, i.received_at, i.bigrams, i.signature, a.department_code
               FROM router.petition_index i JOIN router.assignment a USING (petition_id)
               WHERE i.petitioner_key = ANY($1::text[]) AND a.repeat_of IS NULL
                 AND i.received_at >= $2::timestamptz - interval '90 days'
                 AND i.received_at <= $3::timestamptz""",
            list({e.petitioner_key for e in keyed}),
            min(e.received_at for e in keyed),
            max(e.received_at for e in keyed),
        )
        out: dict[str, list[Earlier]] = {}
        for r in rows:
            out.setdefault(r["petitioner_key"], []).append(
                Earlier(
                    r["petition_id"],
                    r["received_at"],
                    r["bigrams"] if r["bigrams"] is not None else from_bigrams(r["signature"]),
                    r["department_code"],
                )
            )
        return out

    async def on_action(
        self, conn: asyncpg.Connection, event: PetitionActionTaken, raw: RawMessage, result: BatchResult
    ) -> None:
        if event.action not in (ActionType.RETURN, ActionType.ASSIGN):
            return
        row = await conn.fetchrow(
            "SELECT * FROM router.assignment WHERE petition_id = $1 FOR UPDATE", event.petition_id
        )
        if row is None:
            raise BadInput(f"{event.action.value} for unknown petition {event.petition_id}", code="unknown_petition")
        if event.assignment_no is not None and event.assignment_no != row["assignment_no"]:
            return  # about an earlier assignment: already superseded
        if event.department_code != row["department_code"]:
            return
        table = self.table
        area = table.gazetteer.by_code(row["jurisdiction_code"]) if row["jurisdiction_code"] else None
        returned_by = list(row["returned_by"])
        category = row["category"]
        if event.action is ActionType.RETURN:
            returned_by.append(event.department_code)
            text = f"{row['title']} {row['content']}"
            decision = table.decide_after_return(
                category, area, returned_by, text=text, accused=tuple(row["accused"])
            )
            reason = "returned"
            returner = event.department_code
            result.after_commit.append(lambda: metrics.RETURNS.labels(returner).inc())
        else:
            decision, category = self._triage_assignment(table, event, area, row)
            reason = "triage"
            await conn.execute(
                """INSERT INTO router.triage_decision (petition_id, assignment_no, title, content,
                     predicted_category, predicted_confidence, decided_category, department_code,
                     decided_by, note, decided_at)
                   VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT DO NOTHING""",
                event.petition_id, row["assignment_no"], row["title"], row["content"],
                row["category"], row["confidence"], category, decision.department.code,
                event.department_code, event.note, event.occurred_at,
            )
        assignment_no = row["assignment_no"] + 1
        await conn.execute(
            """UPDATE router.assignment SET assignment_no = $2, department_code = $3, rule = $4,
                 returned_by = $5, category = $6, updated_at = now() WHERE petition_id = $1""",
            event.petition_id, assignment_no, decision.department.code, decision.rule, returned_by, category,
        )
        await self._publish_many(
            conn, [(event,
            Routing(
                decision=decision, assignment_no=assignment_no, category=category,
                confidence=row["confidence"], reason=reason, excluded=tuple(returned_by),
                priority=Priority(row["priority"]), kind=Kind(row["kind"]) if row["kind"] else None,
                channel=Channel(row["channel"]), tracking_code=row["tracking_code"], title=row["title"],
                content=row["content"], location=Location(**(row["location"] or {})),
                received_at=row["received_at"], persons=row["persons"], jurisdiction_source=None,
                repeat_of=row["repeat_of"], group_petition=row["group_petition"],
            ))],
            result,
        )

    def _triage_assignment(
        self, table: RoutingTable, event: PetitionActionTaken, area: Area | None, row: Any
    ) -> tuple[Decision, str | None]:
        """The triage desk's choice; an unknown or accused target keeps it at the desk, visibly."""
        category = event.extra.get("category") or row["category"]
        target = table.department(event.target_department_code or "")
        if target is None:
            return Decision(table.triage, f"triage:unknown-target:{event.target_department_code}", area), category
        if target.code in row["accused"]:
            return Decision(table.triage, f"triage:target-is-accused:{target.code}", area), category
        return Decision(target, "triage:manual", area, tuple(row["accused"])), category

    async def _publish_many(
        self, conn: asyncpg.Connection, decided: list[tuple[Any, Routing]], result: BatchResult
    ) -> None:
        """Encode and write each decision's events (a reassignment's path)."""
        now, table = utcnow(), self.table
        await self._write_outputs(conn, [(r, encode(cause, r, now, table)) for cause, r in decided], result)

    async def _write_outputs(
        self, conn: asyncpg.Connection, decided: list[tuple[Routing, Encoded]], result: BatchResult
    ) -> None:
        """Write the decisions' events to the outbox and the decision log (bulk)."""
        await self.ensure_department_topics({r.decision.department.code for r, _ in decided})
        await add_to_outbox(conn, SCHEMA, [m for _, enc in decided for m in enc.messages])
        await notify(conn, SCHEMA)  # wakes the relay process at commit
        await conn.copy_records_to_table(
            "decision_log", schema_name=SCHEMA,
            columns=("petition_id", "assignment_no", "department_code", "rule", "category",
                     "confidence", "jurisdiction_code", "table_version"),
            records=[enc.log_row for _, enc in decided],
        )
        triage = self.table.triage.code
        counts: dict[tuple[str, str], int] = {}
        triaged: dict[str, int] = {}
        for r, _ in decided:
            k = (r.category or "unclassified", r.decision.department.code)
            counts[k] = counts.get(k, 0) + 1
            if r.decision.department.code == triage:
                rule = r.decision.rule
                why = rule.split(":")[1] if ":" in rule else rule
                triaged[why] = triaged.get(why, 0) + 1

        def observe() -> None:
            for (cat, code), n in counts.items():
                metrics.ROUTED.labels(cat, code).inc(n)
            for why, n in triaged.items():
                metrics.TRIAGED.labels(why).inc(n)

        result.after_commit.append(observe)


def build_app(settings: Settings) -> Any:
    """Wire the faust app: agents on the router's input topics, ops pages, start-up task."""
    router = Router(settings=settings)
    app = make_app(SERVICE, settings, web_port=settings.router_port)
    add_ops_pages(app, router.readiness)
    router.agent_health = batch_agent(
        app,
        [topics.PETITION_SUBMITTED, topics.PETITION_ACTIONS],
        name="route",
        processor=lambda: router,  # type: ignore[arg-type,return-value]  # the service is its own processor (duck-typed)
        batch_size=settings.batch_size,
        within=settings.batch_within_seconds,
        pipelined=True,
    )

    @app.task
    async def _startup() -> None:
        await router.start()
        tune_gc()  # the model, the table and the libraries are loaded: freeze them

    @app.timer(interval=max(settings.table_reload_seconds, 0.5))
    async def _reload() -> None:
        router.maybe_reload()  # also checked before every batch; this covers idle periods

    app.router_service = router  # type: ignore[attr-defined]  # kept on the faust app for tests and ops
    return app
