"""The outbox relay against the real broker and database: a row committed late is not lost.

The relay reads on from the last id it published and only now and then from the start of the
table (see ``shared.outbox``). A transaction that took a lower id but commits after higher
ids were published is exactly the case that shortcut could miss; the sweep must publish it.
Two relays on one schema (intake's workers) publish each row once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter

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


async def _two_relays(dsn: str, kafka: KafkaAccess, topic: str, rows: int) -> tuple[list[int], int]:
    """Two relays on one schema, each with its own pool (two intake workers), while writers
    commit `rows` rows in small transactions; returns what each published and what is left."""
    admin = AIOKafkaAdminClient(**kafka.options())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    pools = [await create_pool(dsn, max_size=4) for _ in range(2)]
    async with pools[0].acquire() as conn:
        await ensure_common_tables(conn, "tworelays")
    relays = [OutboxRelay(pool=pool, schema="tworelays", kafka=kafka, service="tworelays", batch_size=20,
                          idle_poll_seconds=0.01, sweep_seconds=0.2) for pool in pools]
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(relay.run()) for relay in relays]

    async def write(first: int) -> None:
        for start in range(first, rows, 40):  # writer k writes rows k*10.., 10 a transaction
            async with pools[first // 10 % 2].acquire() as conn, conn.transaction():
                await add_to_outbox(conn, "tworelays", [
                    OutboxMessage(topic, str(i).encode(), f"row-{i}".encode()) for i in range(start, start + 10)])
            relays[first // 10 % 2].kick()
            await asyncio.sleep(0.005)

    try:
        await asyncio.gather(*(write(k * 10) for k in range(4)))
        for _ in range(600):
            if sum(r.published_total for r in relays) >= rows:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # anything published twice would be published by now
        async with pools[0].acquire() as conn:
            left = await conn.fetchval("SELECT count(*) FROM tworelays.outbox")
        return [r.published_total for r in relays], left
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for pool in pools:
            await pool.close()


def test_two_relays_on_one_schema_never_publish_a_row_twice(infra: Infra) -> None:
    """Intake's workers each run a relay on the ``intake`` schema: the advisory lock lets one
    publish at a time, and a row is deleted in the transaction that published it."""
    topic = f"tworelays.{uuid.uuid4().hex[:8]}"
    dsn = infra.fresh_database("tworelays")
    published, left = asyncio.run(_two_relays(dsn, infra.admin, topic, 800))
    assert (sum(published), left) == (800, 0), published
    assert all(published), f"one relay published everything ({published}): no contention was tested"
    values = Counter(r.value for r in consume_all(infra.admin, topic))
    assert values == Counter(f"row-{i}".encode() for i in range(800))


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
