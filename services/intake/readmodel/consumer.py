"""Intake's read model consumer: the lifecycle topics into the read model, forever.

Runs as a background task with a plain aiokafka consumer (not faust), so intake keeps taking
petitions while Kafka is down; offsets are committed only after the batch's transaction.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

from services.intake.readmodel.handlers import handlers
from services.intake.readmodel.store import ReadModelStore
from shared import retry, topics
from shared.consumer import BatchProcessor
from shared.kafka_client import KafkaAccess
from shared.records import raw_message
from shared.store import UnitOfWork

__all__ = ["READ_MODEL_TOPICS", "make_processor", "run_projector"]

log = logging.getLogger(__name__)

#: Topics the read model is built from.
READ_MODEL_TOPICS: tuple[str, ...] = (
    topics.PETITION_ROUTED, topics.PETITION_SLA, topics.ZERO_REPORT_STATUS, topics.PETITION_ALERTS,
)


def make_processor(
    uow: UnitOfWork[ReadModelStore], on_committed: Any, *, triage_code: Callable[[], str],
    max_record_bytes: int | None = None,
) -> BatchProcessor:
    """The read model's consumer core: its handlers through `uow`'s store."""
    limit: dict[str, Any] = {"max_record_bytes": max_record_bytes} if max_record_bytes else {}
    return BatchProcessor(
        uow=uow,
        service="intake",
        consumer="intake-read-model",
        dead_letter_topic=topics.DEAD_LETTER_INTAKE,
        handlers=handlers(triage_code=triage_code),
        on_committed=on_committed,
        **limit,
    )


async def run_projector(
    *,
    kafka: KafkaAccess,
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
            **kafka.options(),
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
