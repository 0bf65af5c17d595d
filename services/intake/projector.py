"""Intake's read model: built by consuming the lifecycle topics (routed, SLA).

Runs as a background task with a plain aiokafka consumer (not faust), so intake keeps taking
petitions while Kafka is down; offsets are committed only after the batch's transaction.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from shared import retry, topics
from shared.consumer import BatchProcessor, BatchResult, RawMessage, raw_message
from shared.errors import BadInput
from shared.events import (
    PetitionRouted,
    SlaBreached,
    SlaClockArmed,
    SlaClockStopped,
    SlaWarning,
)
from shared.store import PgTransaction, PgUnitOfWork

log = logging.getLogger(__name__)

SCHEMA = "intake"
#: the triage desk's code in the demo routing table: only for a routed event written before
#: the event said so itself (`triage` is None), see on_routed
TRIAGE = "TRIAGE"


async def add_timeline(conn: asyncpg.Connection, event: Any, name: str, detail: dict[str, Any]) -> None:
    """Record `event` on its petition's timeline once (a redelivery adds nothing)."""
    await conn.execute(
        "INSERT INTO intake.timeline (petition_id, at, event, detail, event_id)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
        event.petition_id, event.occurred_at, name, detail, event.event_id,
    )


async def require_petition(conn: asyncpg.Connection, petition_id: str) -> None:
    """Reject (dead-letter) an event about a petition intake never received."""
    if not await conn.fetchval("SELECT 1 FROM intake.petition WHERE id = $1", petition_id):
        raise BadInput(f"event for unknown petition {petition_id}", code="unknown_petition")


async def on_routed(conn: asyncpg.Connection, e: PetitionRouted, raw: RawMessage, r: BatchResult) -> None:
    await require_petition(conn, e.petition_id)
    # the router says whether the department is its table's triage desk (the table configures
    # the desk's code); an event from before it said so (triage None) falls back to the code
    at_triage = e.triage if e.triage is not None else e.department_code == TRIAGE
    status = "triage" if at_triage else "assigned"
    await conn.execute(
        """UPDATE intake.petition SET status = $2, category = $3, department_code = $4,
             department_name = $5, assignment_no = $6, jurisdiction = $7, priority = $8,
             rule = $9, repeat_of = $10, group_petition = $11, accused_departments = $12,
             updated_at = now()
           WHERE id = $1 AND assignment_no < $6 AND status NOT IN ('resolved', 'closed')""",
        e.petition_id, status, e.category, e.department_code, e.department_name,
        e.assignment_no, e.jurisdiction.model_dump() if e.jurisdiction else None,
        e.priority.value, e.rule, e.repeat_of, e.group_petition, list(e.accused_departments),
    )
    await add_timeline(
        conn, e, "routed" if e.assignment_no == 1 else "reassigned",
        {"department": e.department_code, "department_name": e.department_name,
         "category": e.category, "rule": e.rule, "assignment_no": e.assignment_no,
         **({"repeat_of": e.repeat_of} if e.repeat_of else {})},
    )


async def on_clock_armed(conn: asyncpg.Connection, e: SlaClockArmed, raw: RawMessage, r: BatchResult) -> None:
    await require_petition(conn, e.petition_id)
    await conn.execute(
        """INSERT INTO intake.deadline (petition_id, clock, due_at, state, department_code, updated_at)
           VALUES ($1, $2, $3, 'running', $4, $5)
           ON CONFLICT (petition_id, clock) DO UPDATE SET due_at = EXCLUDED.due_at,
             state = 'running', department_code = EXCLUDED.department_code,
             updated_at = EXCLUDED.updated_at
           WHERE intake.deadline.updated_at <= EXCLUDED.updated_at""",
        e.petition_id, e.clock, e.due_at, e.department_code, e.occurred_at,
    )
    await add_timeline(conn, e, "clock_armed", {"clock": e.clock, "due_at": e.due_at.isoformat(), "policy": e.policy})


async def _clock_state(conn: asyncpg.Connection, e: Any, state: str) -> None:
    await conn.execute(
        """UPDATE intake.deadline SET state = $4, updated_at = greatest(updated_at, $5)
           WHERE petition_id = $1 AND clock = $2 AND due_at = $3""",
        e.petition_id, e.clock, e.due_at, state, e.occurred_at,
    )


async def on_warning(conn: asyncpg.Connection, e: SlaWarning, raw: RawMessage, r: BatchResult) -> None:
    await require_petition(conn, e.petition_id)
    await _clock_state(conn, e, "warned")
    await add_timeline(conn, e, "deadline_warning", {"clock": e.clock, "fraction": e.fraction})


async def on_breached(conn: asyncpg.Connection, e: SlaBreached, raw: RawMessage, r: BatchResult) -> None:
    await require_petition(conn, e.petition_id)
    await _clock_state(conn, e, "breached")
    await add_timeline(conn, e, "deadline_breached", {"clock": e.clock, "department": e.department_code})


async def on_stopped(conn: asyncpg.Connection, e: SlaClockStopped, raw: RawMessage, r: BatchResult) -> None:
    await require_petition(conn, e.petition_id)
    await conn.execute(
        """UPDATE intake.deadline SET state = CASE WHEN state = 'breached' THEN 'breached_stopped'
             ELSE 'stopped' END, updated_at = greatest(updated_at, $4)
           WHERE petition_id = $1 AND clock = $2 AND due_at = $3""",
        e.petition_id, e.clock, e.due_at, e.occurred_at,
    )
    await add_timeline(conn, e, "clock_stopped", {"clock": e.clock, "reason": e.reason})


#: Topics the read model is built from.
READ_MODEL_TOPICS: tuple[str, ...] = (topics.PETITION_ROUTED, topics.PETITION_SLA, topics.ZERO_REPORT_STATUS)


def handlers() -> dict[str, Any]:
    """Every read-model handler, by event type (escalation projections live in their own module)."""
    from services.intake import projections_escalation

    return {
        "petition.routed": on_routed,
        "sla.clock_armed": on_clock_armed,
        "sla.warning": on_warning,
        "sla.breached": on_breached,
        "sla.clock_stopped": on_stopped,
        **projections_escalation.HANDLERS,
    }


def _on_connection(handler: Any) -> Any:
    return lambda tx, e, raw, r: handler(tx.conn, e, raw, r)


def make_processor(pool: asyncpg.Pool, on_committed: Any, *, max_record_bytes: int | None = None) -> BatchProcessor:
    limit: dict[str, Any] = {"max_record_bytes": max_record_bytes} if max_record_bytes else {}
    return BatchProcessor(
        uow=PgUnitOfWork(pool, SCHEMA, PgTransaction),
        service="intake",
        consumer="intake-read-model",
        dead_letter_topic=topics.DEAD_LETTER_INTAKE,
        handlers={name: _on_connection(h) for name, h in handlers().items()},
        on_committed=on_committed,
        **limit,
    )


async def run_projector(
    *,
    bootstrap: str,
    processor: BatchProcessor,
    group_id: str = "petition-intake",
    batch: int = 500,
    group_instance_id: str | None = None,
    session_timeout_seconds: float = 20.0,
    min_backoff: float = 0.5,
    max_backoff: float = 10.0,
) -> None:
    """Consume the lifecycle topics forever; offsets are committed after each batch applied.

    The loop cannot end but by cancellation: every record is applied or dead-lettered by the
    processor (which also retries database outages itself), and anything else (Kafka
    unreachable, a commit refused after a rebalance, a defect) closes the consumer and
    opens a new one after a capped back-off, uncommitted records being delivered again
    (repeats are harmless). Meanwhile ``processor.healthy`` is False.

    `group_instance_id` makes the membership static (see :func:`shared.consumer.group_instance_id`):
    a restarted intake gets its partitions back at once.
    """
    health = processor.health
    source = "read-model-kafka"

    async def consume() -> None:
        consumer = AIOKafkaConsumer(
            *READ_MODEL_TOPICS,
            bootstrap_servers=bootstrap,
            group_id=group_id,
            group_instance_id=group_instance_id,
            session_timeout_ms=int(session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(max(session_timeout_seconds / 10, 1.0) * 1000),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        try:
            await consumer.start()
            while True:
                records = await consumer.getmany(timeout_ms=500, max_records=batch)
                health.recovered(source)
                messages = [
                    raw_message(topic=m.topic, partition=m.partition, offset=m.offset, key=m.key,
                                value=m.value, timestamp_ms=m.timestamp, headers=m.headers)
                    for part in records.values()
                    for m in part
                ]
                if not messages:
                    continue
                await processor.process(messages)  # returns once every record is applied or dead-lettered
                await consumer.commit()
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    await retry.forever(consume, what="read-model consumer", min_backoff=min_backoff, max_backoff=max_backoff,
                        reset_after=60.0, on_failure=lambda exc, _n, _w: health.failed(source, exc), logger=log)
