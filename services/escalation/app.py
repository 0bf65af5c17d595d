"""The escalation service's composition root: clocks, durable timers, warnings, breaches.

Consumes ``petition.routed`` (arm or re-arm clocks) and ``petition.actions`` (stop them).
Due timers live in PostgreSQL and are fired with ``FOR UPDATE SKIP LOCKED`` by any number
of instances; firing a timer and writing its event to the outbox commit together.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import yaml

from services.escalation import metrics
from services.escalation.calendar_source import load_calendar
from services.escalation.domain.deadlines import compute_due
from services.escalation.domain.policy import ClockSpec, PolicyBook, plan_timers
from shared import topics
from shared.consumer import BatchProcessor, BatchResult, RawMessage
from shared.db import OutboxMessage, add_to_outbox, create_pool, ensure_common_tables, migrate
from shared.events import (
    PetitionActionTaken,
    PetitionRouted,
    SlaBreached,
    SlaClockArmed,
    SlaClockStopped,
    SlaWarning,
    encode_event,
    key_for,
    utcnow,
)
from shared.ids import EVENT_NAMESPACE, derived_event_id
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.worker import add_ops_pages, batch_agent, gather_checks, make_app

log = logging.getLogger(__name__)

SCHEMA = "escalation"
SERVICE = "escalation"
HERE = Path(__file__).resolve().parent
MIGRATIONS = HERE / "migrations"
POLICIES = HERE / "data" / "policies.yaml"


def load_policies(path: Path = POLICIES) -> PolicyBook:
    return PolicyBook.from_data(yaml.safe_load(path.read_bytes()))


class Escalation:
    def __init__(self, *, settings: Settings) -> None:
        self.settings = settings
        self.policies = load_policies()
        self.calendar = load_calendar()
        self.pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | None = None
        self._processor: BatchProcessor | None = None
        self._start_lock = asyncio.Lock()

    async def start(self) -> None:
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
            loop = asyncio.get_running_loop()
            loop.create_task(self.relay.run())
            self._processor = BatchProcessor(
                pool=pool,
                schema=SCHEMA,
                service=SERVICE,
                consumer="escalation",
                dead_letter_topic=topics.DEAD_LETTER_ESCALATION,
                handlers={
                    "petition.routed": self.on_routed,
                    "petition.action_taken": self.on_action,
                },
                on_committed=lambda _r: self.relay.kick() if self.relay else None,
            )
            self.pool = pool
            loop.create_task(self.run_timers())

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

    # --- clocks ---------------------------------------------------------------------------

    async def _arm(
        self, conn: asyncpg.Connection, e: PetitionRouted, spec: ClockSpec, policy_id: str,
        out: list[OutboxMessage], result: BatchResult,
    ) -> None:
        started_at = e.received_at if spec.starts == "received" else e.occurred_at
        deadline = compute_due(started_at, spec.amount, spec.unit, self.calendar)
        if deadline.calendar_missing:
            metrics.CALENDAR_MISSING.inc()
            log.warning(
                "holiday calendar missing for %s: %s deadline of %s computed Mon-Fri",
                sorted(deadline.unknown_years), spec.name, e.petition_id,
            )
        due_at = deadline.due
        await conn.execute(
            """INSERT INTO escalation.clock (petition_id, clock, policy, department_code,
                 assignment_no, started_at, due_at, state, calendar_missing)
               VALUES ($1,$2,$3,$4,$5,$6,$7,'running',$8)
               ON CONFLICT (petition_id, clock) DO UPDATE SET policy = EXCLUDED.policy,
                 department_code = EXCLUDED.department_code, assignment_no = EXCLUDED.assignment_no,
                 started_at = EXCLUDED.started_at, due_at = EXCLUDED.due_at, state = 'running',
                 calendar_missing = EXCLUDED.calendar_missing, stopped_at = NULL,
                 stop_reason = NULL, updated_at = now()""",
            e.petition_id, spec.name, policy_id, e.department_code, e.assignment_no,
            started_at, due_at, deadline.calendar_missing,
        )
        await conn.execute(
            "UPDATE escalation.timer SET state = 'cancelled' WHERE petition_id = $1 AND clock = $2"
            " AND state = 'pending'",
            e.petition_id, spec.name,
        )
        planned = plan_timers(started_at, due_at, self.policies.warning_fractions)
        await conn.executemany(
            """INSERT INTO escalation.timer (petition_id, clock, kind, fraction, clock_due_at, fire_at)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            [(e.petition_id, spec.name, t.kind, t.fraction, due_at, t.fire_at) for t in planned],
        )
        armed = SlaClockArmed(
            event_id=derived_event_id(e.event_id, f"armed:{spec.name}"),
            occurred_at=utcnow(),
            petition_id=e.petition_id,
            causation_id=e.event_id,
            clock=spec.name,
            policy=policy_id,
            department_code=e.department_code,
            started_at=started_at,
            due_at=due_at,
            calendar_missing=deadline.calendar_missing,
        )
        out.append(OutboxMessage(topics.PETITION_SLA, key_for(e.petition_id), encode_event(armed)))
        name = spec.name
        result.after_commit.append(lambda: metrics.CLOCKS_ARMED.labels(name).inc())

    async def on_routed(
        self, conn: asyncpg.Connection, e: PetitionRouted, raw: RawMessage, result: BatchResult
    ) -> None:
        policy = self.policies.select(
            channel=e.channel.value, kind=e.kind.value if e.kind else None, priority=e.priority.value
        )
        existing = {
            r["clock"]: r
            for r in await conn.fetch(
                "SELECT clock, assignment_no, state FROM escalation.clock WHERE petition_id = $1 FOR UPDATE",
                e.petition_id,
            )
        }
        out: list[OutboxMessage] = []
        for spec in policy.clocks:
            row = existing.get(spec.name)
            if row is None:
                await self._arm(conn, e, spec, policy.id, out, result)
            elif row["assignment_no"] >= e.assignment_no:
                continue  # an older or repeated assignment
            elif row["state"] == "stopped":
                continue
            elif spec.on_reassign == "restart":
                await self._arm(conn, e, spec, policy.id, out, result)
            else:
                await conn.execute(
                    "UPDATE escalation.clock SET department_code = $3, assignment_no = $4,"
                    " updated_at = now() WHERE petition_id = $1 AND clock = $2",
                    e.petition_id, spec.name, e.department_code, e.assignment_no,
                )
        await add_to_outbox(conn, SCHEMA, out)

    async def on_action(
        self, conn: asyncpg.Connection, e: PetitionActionTaken, raw: RawMessage, result: BatchResult
    ) -> None:
        rows = await conn.fetch(
            """SELECT c.clock, c.policy, c.due_at, c.department_code FROM escalation.clock c
               WHERE c.petition_id = $1 AND c.state <> 'stopped' FOR UPDATE""",
            e.petition_id,
        )
        out: list[OutboxMessage] = []
        for row in rows:
            policy = next((p for p in self.policies.policies if p.id == row["policy"]), None)
            spec = next((c for c in policy.clocks if c.name == row["clock"]), None) if policy else None
            if spec is None or e.action.value not in spec.stops_on:
                continue
            if row["department_code"] != e.department_code:
                continue
            await conn.execute(
                "UPDATE escalation.clock SET state = 'stopped', stopped_at = $3, stop_reason = $4,"
                " updated_at = now() WHERE petition_id = $1 AND clock = $2",
                e.petition_id, row["clock"], e.occurred_at, e.action.value,
            )
            await conn.execute(
                "UPDATE escalation.timer SET state = 'cancelled' WHERE petition_id = $1 AND clock = $2"
                " AND state = 'pending'",
                e.petition_id, row["clock"],
            )
            stopped = SlaClockStopped(
                event_id=derived_event_id(e.event_id, f"stopped:{row['clock']}"),
                occurred_at=utcnow(),
                petition_id=e.petition_id,
                causation_id=e.event_id,
                clock=row["clock"],
                department_code=row["department_code"],
                reason=e.action.value,
                due_at=row["due_at"],
            )
            out.append(OutboxMessage(topics.PETITION_SLA, key_for(e.petition_id), encode_event(stopped)))
            clock, reason = row["clock"], e.action.value
            result.after_commit.append(lambda c=clock, r=reason: metrics.CLOCKS_STOPPED.labels(c, r).inc())
        await add_to_outbox(conn, SCHEMA, out)

    # --- timers ---------------------------------------------------------------------------

    async def fire_due(self, now: datetime, limit: int) -> int:
        """Fire up to `limit` timers due at `now`; returns how many fired."""
        assert self.pool is not None
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT t.id, t.petition_id, t.clock, t.kind, t.fraction, t.clock_due_at, t.fire_at,
                          c.department_code, c.due_at AS current_due, c.state AS clock_state
                   FROM escalation.timer t
                   JOIN escalation.clock c ON c.petition_id = t.petition_id AND c.clock = t.clock
                   WHERE t.state = 'pending' AND t.fire_at <= $1
                   ORDER BY t.fire_at LIMIT $2 FOR UPDATE OF t SKIP LOCKED""",
                now, limit,
            )
            if not rows:
                return 0
            out: list[OutboxMessage] = []
            fired: list[tuple[int, float]] = []
            breached: list[tuple[str, str]] = []
            warned: list[tuple[str, str]] = []
            for r in rows:
                lateness = max((now - r["fire_at"]).total_seconds(), 0.0)
                fired.append((r["id"], lateness))
                if r["clock_state"] == "stopped" or r["current_due"] != r["clock_due_at"]:
                    continue  # a stale timer of a stopped or re-armed clock
                event_id = uuid.uuid5(EVENT_NAMESPACE, f"timer:{r['id']}")
                event: Any
                if r["kind"] == "breach":
                    event = SlaBreached(
                        event_id=event_id, occurred_at=now, petition_id=r["petition_id"],
                        clock=r["clock"], department_code=r["department_code"],
                        due_at=r["clock_due_at"], lateness_seconds=lateness,
                    )
                    breached.append((r["petition_id"], r["clock"]))
                else:
                    event = SlaWarning(
                        event_id=event_id, occurred_at=now, petition_id=r["petition_id"],
                        clock=r["clock"], department_code=r["department_code"],
                        fraction=r["fraction"], due_at=r["clock_due_at"], lateness_seconds=lateness,
                    )
                    warned.append((r["petition_id"], r["clock"]))
                out.append(OutboxMessage(topics.PETITION_SLA, key_for(r["petition_id"]), encode_event(event)))
            await conn.executemany(
                "UPDATE escalation.timer SET state = 'fired', fired_at = $2, lateness_seconds = $3 WHERE id = $1",
                [(i, now, lat) for i, lat in fired],
            )
            if warned:
                await conn.executemany(
                    "UPDATE escalation.clock SET state = 'warned', updated_at = now()"
                    " WHERE petition_id = $1 AND clock = $2 AND state = 'running'",
                    warned,
                )
            if breached:
                await conn.executemany(
                    "UPDATE escalation.clock SET state = 'breached', updated_at = now()"
                    " WHERE petition_id = $1 AND clock = $2 AND state IN ('running', 'warned')",
                    breached,
                )
            await add_to_outbox(conn, SCHEMA, out)
        for r in rows:
            metrics.TIMERS_FIRED.labels(r["kind"]).inc()
        for _, lat in fired:
            metrics.TIMER_LATENESS.observe(lat)
        for _, clock in warned:
            metrics.WARNINGS.labels(clock).inc()
        for _, clock in breached:
            metrics.BREACHES.labels(clock).inc()
        if self.relay is not None:
            self.relay.kick()
        return len(rows)

    async def run_timers(self) -> None:
        """Poll for due timers forever; back off while the database is unavailable."""
        limit = self.settings.timer_batch_size
        while True:
            try:
                fired = await self.fire_due(utcnow(), limit)
            except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
                log.warning("timer loop: %r", exc)
                await asyncio.sleep(1.0)
                continue
            if fired < limit:
                await asyncio.sleep(self.settings.timer_poll_seconds)


def build_app(settings: Settings) -> Any:
    esc = Escalation(settings=settings)
    app = make_app(SERVICE, settings, web_port=settings.escalation_port)

    async def readiness() -> dict[str, bool]:
        return await esc.readiness()

    add_ops_pages(app, readiness)

    class _Lazy:
        async def process(self, messages: list[RawMessage]) -> BatchResult:
            await esc.start()
            return await esc.processor().process(messages)

    lazy = _Lazy()
    batch_agent(
        app,
        [topics.PETITION_ROUTED, topics.PETITION_ACTIONS],
        name="clocks",
        processor=lambda: lazy,  # type: ignore[arg-type,return-value]
        batch_size=settings.batch_size,
        within=settings.batch_within_seconds,
    )

    @app.task
    async def _startup() -> None:
        await esc.start()

    app.escalation_service = esc  # type: ignore[attr-defined]
    return app
