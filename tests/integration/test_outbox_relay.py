"""The outbox relay against the real broker and database: a row committed late is not lost.

The relay reads on from the last id it published and only now and then from the start of the
table (see ``shared.outbox``). A transaction that took a lower id but commits after higher
ids were published is exactly the case that shortcut could miss; the sweep must publish it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deploy.stack.testinfra import Infra
from shared.db import add_to_outbox, create_pool, ensure_common_tables
from shared.kafka_client import KafkaAccess
from shared.messages import OutboxMessage
from shared.outbox import OutboxRelay
from tests.integration.conftest import consume_all


async def _scenario(dsn: str, kafka: KafkaAccess, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(**kafka.options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    pool = await create_pool(dsn, max_size=4)
    async with pool.acquire() as conn:
        await ensure_common_tables(conn, "relaytest")
    relay = OutboxRelay(pool=pool, schema="relaytest", kafka=kafka, service="relaytest",
                        idle_poll_seconds=0.05, sweep_seconds=0.5)
    task = asyncio.get_running_loop().create_task(relay.run())
    try:
        late = await pool.acquire()
        held = late.transaction()
        await held.start()
        # takes id 1 and stays uncommitted while id 2 commits and is published
        await add_to_outbox(late, "relaytest", [OutboxMessage(topic, b"k", b"late")])
        async with pool.acquire() as conn:
            await add_to_outbox(conn, "relaytest", [OutboxMessage(topic, b"k", b"early")])
        for _ in range(200):
            if relay.published_total >= 1:
                break
            await asyncio.sleep(0.05)
        assert relay.published_total == 1
        await held.commit()
        await pool.release(late)
        for _ in range(200):
            if relay.published_total >= 2:
                break
            await asyncio.sleep(0.05)
        async with pool.acquire() as conn:
            left = await conn.fetchval("SELECT count(*) FROM relaytest.outbox")
        return [relay.published_total, left]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pool.close()


def test_a_row_committed_after_later_ids_were_published_is_published_once(infra: Infra) -> None:
    topic = f"relaytest.{uuid.uuid4().hex[:8]}"
    dsn = infra.fresh_database("relaytest")
    published, left = asyncio.run(_scenario(dsn, infra.admin, topic))
    assert (published, left) == (2, 0)
    values = sorted(r.value for r in consume_all(infra.admin, topic))
    assert values == [b"early", b"late"]


async def _ensure_at_once(dsn: str, schemas: int, sessions: int) -> None:
    conns = [await asyncpg.connect(dsn) for _ in range(sessions)]
    try:
        for n in range(schemas):
            await asyncio.gather(*(ensure_common_tables(conn, f"atonce{n}") for conn in conns))
    finally:
        for conn in conns:
            await conn.close()


def test_the_common_tables_are_made_by_several_processes_at_once(infra: Infra) -> None:
    """Several instances (intake's workers) starting together on a database without the tables."""
    asyncio.run(_ensure_at_once(infra.fresh_database("atonce"), schemas=5, sessions=4))
