"""The router's composition root: classify, find the jurisdiction, assign one department.

Consumes ``petition.submitted`` (route) and ``petition.actions`` (returns); writes its
decision, ``petition.routed`` and the department's ``dept.<code>.assignments`` record in one
transaction (the outbox), so a crash at any point neither loses nor duplicates a decision.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from services.router import metrics
from services.router.config import load_keyword_classifier, load_routing_table
from services.router.domain.routing import Decision, RoutingTable
from shared import topics
from shared.consumer import BadInput, BatchProcessor, BatchResult, RawMessage
from shared.db import OutboxMessage, add_to_outbox, create_pool, ensure_common_tables, migrate
from shared.events import (
    ActionType,
    DepartmentAssignment,
    Jurisdiction,
    Location,
    PetitionActionTaken,
    PetitionRouted,
    PetitionSubmitted,
    Priority,
    encode_event,
    key_for,
    utcnow,
)
from shared.ids import derived_event_id
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.worker import add_ops_pages, batch_agent, gather_checks, make_app

log = logging.getLogger(__name__)

SCHEMA = "router"
SERVICE = "router"
MIGRATIONS = __import__("pathlib").Path(__file__).resolve().parent / "migrations"
GROUP_PETITION_PERSONS = 5


class Router:
    """Holds the collaborators and the handlers; one per process."""

    def __init__(self, *, settings: Settings) -> None:
        self.settings = settings
        self.table: RoutingTable = load_routing_table()
        self.classifier: Any = load_keyword_classifier()
        self.pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | None = None
        self._known_topics: set[str] = set()
        self._start_lock = asyncio.Lock()
        self._processor: BatchProcessor | None = None
        metrics.ROUTING_TABLE_VERSION.labels(self.table.version).set(1)

    async def start(self) -> None:
        """Connect, migrate and start the outbox relay (idempotent)."""
        async with self._start_lock:
            if self.pool is not None:
                return
            pool = await create_pool(self.settings.pg_dsn, max_size=4)
            async with pool.acquire() as conn:
                await migrate(conn, SCHEMA, MIGRATIONS)
                await ensure_common_tables(conn, SCHEMA)
            self.relay = OutboxRelay(
                pool=pool, schema=SCHEMA, bootstrap=self.settings.kafka_bootstrap, service=SERVICE
            )
            asyncio.get_running_loop().create_task(self.relay.run())
            self._processor = BatchProcessor(
                pool=pool,
                schema=SCHEMA,
                service=SERVICE,
                consumer="router",
                dead_letter_topic=topics.DEAD_LETTER_ROUTER,
                handlers={
                    "petition.submitted": self.on_submitted,
                    "petition.action_taken": self.on_action,
                },
                on_committed=lambda _r: self.relay.kick() if self.relay else None,
            )
            self.pool = pool

    def processor(self) -> BatchProcessor:
        assert self._processor is not None
        return self._processor

    async def readiness(self) -> dict[str, bool]:
        async def pg() -> bool:
            if self.pool is None:
                return False
            async with self.pool.acquire() as conn:
                return bool(await conn.fetchval("SELECT 1"))

        async def kafka() -> bool:
            return self.relay is not None and await self.relay.kafka_reachable()

        return await gather_checks(postgres=pg(), kafka=kafka())

    async def ensure_department_topic(self, code: str) -> str:
        """Create the department's queue the first time it gets work (topics are explicit)."""
        name = topics.department_topic(code)
        if name in self._known_topics:
            return name
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            if name not in existing:
                try:
                    await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
                except TopicAlreadyExistsError:
                    pass
            self._known_topics.update(existing | {name})
        finally:
            await admin.close()
        return name

    # --- handlers -------------------------------------------------------------------------

    async def on_submitted(
        self, conn: asyncpg.Connection, event: PetitionSubmitted, raw: RawMessage, result: BatchResult
    ) -> None:
        existing = await conn.fetchval(
            "SELECT 1 FROM router.assignment WHERE petition_id = $1", event.petition_id
        )
        if existing:
            return  # the same petition under another event id: already routed once
        prediction = self.classifier.predict([(event.title, event.content)])[0]
        text = " ".join(filter(None, [event.title, event.content, event.location.address]))
        area, _source = self.table.gazetteer.resolve(event.location.admin_code, text)
        decision = self.table.decide(prediction.category, area)
        priority = Priority.HIGH if event.persons >= GROUP_PETITION_PERSONS else Priority.NORMAL
        await conn.execute(
            """INSERT INTO router.assignment (petition_id, tracking_code, assignment_no,
                 department_code, category, confidence, jurisdiction_code, rule, kind, channel,
                 priority, petitioner_key, persons, title, content, location, received_at)
               VALUES ($1,$2,1,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)""",
            event.petition_id, event.tracking_code, decision.department.code,
            prediction.category, prediction.confidence,
            area.code if area else None, decision.rule,
            event.kind.value if event.kind else None, event.channel.value, priority.value,
            event.petitioner_key, event.persons, event.title, event.content,
            event.location.model_dump(), event.received_at,
        )
        await self._publish(
            conn, event, decision,
            assignment_no=1, category=prediction.category, confidence=prediction.confidence,
            reason="initial", excluded=(), priority=priority, kind=event.kind,
            channel=event.channel, tracking_code=event.tracking_code, title=event.title,
            content=event.content, location=event.location, received_at=event.received_at,
            result=result,
        )
        lag = (utcnow() - event.occurred_at).total_seconds()
        result.after_commit.append(lambda: metrics.SUBMIT_TO_ROUTED.observe(max(lag, 0.0)))

    async def on_action(
        self, conn: asyncpg.Connection, event: PetitionActionTaken, raw: RawMessage, result: BatchResult
    ) -> None:
        if event.action is not ActionType.RETURN:
            return
        row = await conn.fetchrow(
            "SELECT * FROM router.assignment WHERE petition_id = $1 FOR UPDATE", event.petition_id
        )
        if row is None:
            raise BadInput(f"return for unknown petition {event.petition_id}", code="unknown_petition")
        if event.assignment_no is not None and event.assignment_no != row["assignment_no"]:
            return  # a return of an earlier assignment: already superseded
        if event.department_code != row["department_code"]:
            return
        returned_by = [*row["returned_by"], event.department_code]
        area = self.table.gazetteer.by_code(row["jurisdiction_code"]) if row["jurisdiction_code"] else None
        decision = self.table.decide_after_return(row["category"], area, returned_by)
        assignment_no = row["assignment_no"] + 1
        await conn.execute(
            """UPDATE router.assignment SET assignment_no = $2, department_code = $3, rule = $4,
                 returned_by = $5, updated_at = now() WHERE petition_id = $1""",
            event.petition_id, assignment_no, decision.department.code, decision.rule, returned_by,
        )
        from shared.events import Channel, Kind  # local: enum parsing of stored text

        metrics_return = event.department_code
        await self._publish(
            conn, event, decision,
            assignment_no=assignment_no, category=row["category"], confidence=row["confidence"],
            reason="returned", excluded=tuple(returned_by), priority=Priority(row["priority"]),
            kind=Kind(row["kind"]) if row["kind"] else None, channel=Channel(row["channel"]),
            tracking_code=row["tracking_code"], title=row["title"], content=row["content"],
            location=Location(**(row["location"] or {})), received_at=row["received_at"],
            result=result,
        )
        result.after_commit.append(lambda: metrics.RETURNS.labels(metrics_return).inc())

    async def _publish(
        self,
        conn: asyncpg.Connection,
        cause: Any,
        decision: Decision,
        *,
        assignment_no: int,
        category: str | None,
        confidence: float | None,
        reason: str,
        excluded: tuple[str, ...],
        priority: Priority,
        kind: Any,
        channel: Any,
        tracking_code: str,
        title: str,
        content: str,
        location: Location,
        received_at: Any,
        result: BatchResult,
    ) -> None:
        dept = decision.department
        area = decision.jurisdiction
        now = utcnow()
        jurisdiction = Jurisdiction(code=area.code, name=area.name, level=area.level) if area else None
        routed = PetitionRouted(
            event_id=derived_event_id(cause.event_id, f"routed:{assignment_no}"),
            occurred_at=now,
            petition_id=cause.petition_id,
            causation_id=cause.event_id,
            assignment_no=assignment_no,
            category=category,
            confidence=confidence,
            department_code=dept.code,
            department_name=dept.name,
            jurisdiction=jurisdiction,
            rule=decision.rule,
            reason=reason,
            excluded_departments=excluded,
            priority=priority,
            kind=kind,
            channel=channel,
            received_at=received_at,
        )
        assignment = DepartmentAssignment(
            event_id=derived_event_id(cause.event_id, f"assignment:{assignment_no}"),
            occurred_at=now,
            petition_id=cause.petition_id,
            causation_id=cause.event_id,
            tracking_code=tracking_code,
            assignment_no=assignment_no,
            department_code=dept.code,
            category=category,
            title=title,
            content=content,
            location=location,
            priority=priority,
            kind=kind,
            rule=decision.rule,
            received_at=received_at,
        )
        dept_topic = await self.ensure_department_topic(dept.code)
        key = key_for(cause.petition_id)
        await add_to_outbox(
            conn,
            SCHEMA,
            [
                OutboxMessage(topics.PETITION_ROUTED, key, encode_event(routed)),
                OutboxMessage(dept_topic, key, encode_event(assignment)),
            ],
        )
        await conn.execute(
            """INSERT INTO router.decision_log (petition_id, assignment_no, department_code, rule,
                 category, confidence, jurisdiction_code, table_version)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT DO NOTHING""",
            cause.petition_id, assignment_no, dept.code, decision.rule, category, confidence,
            area.code if area else None, self.table.version,
        )
        cat = category or "unclassified"
        result.after_commit.append(lambda: metrics.ROUTED.labels(cat, dept.code).inc())
        if dept.code == self.table.triage.code:
            result.after_commit.append(lambda: metrics.TRIAGED.labels(decision.rule).inc())


def build_app(settings: Settings) -> Any:
    """Wire the faust app: agents on the router's input topics, ops pages, start-up task."""
    router = Router(settings=settings)
    app = make_app(SERVICE, settings, web_port=settings.router_port)

    async def readiness() -> dict[str, bool]:
        return await router.readiness()

    add_ops_pages(app, readiness)

    class _Lazy:
        async def process(self, messages: list[RawMessage]) -> BatchResult:
            await router.start()
            return await router.processor().process(messages)

    lazy = _Lazy()
    batch_agent(
        app,
        [topics.PETITION_SUBMITTED, topics.PETITION_ACTIONS],
        name="route",
        processor=lambda: lazy,  # type: ignore[arg-type,return-value]
        batch_size=settings.batch_size,
        within=settings.batch_within_seconds,
    )

    @app.task
    async def _startup() -> None:
        await router.start()

    app.router_service = router  # type: ignore[attr-defined]
    return app
