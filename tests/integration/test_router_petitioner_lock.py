"""Repeat detection serialised per petitioner on the real database.

Two router instances consume different partitions, and two petitions of one person can land on
both. Each instance's transaction takes the petitioners' advisory locks before it reads their
earlier originals (:meth:`services.router.store.PgRouterStore.lock_routing`), so the
second waits for the first to commit and then sees its petition as the original, whichever
of the two was received first (:func:`services.router.domain.repeats.find_original`). The
same transaction locks the partitions its petitions were read from: an instance still
routing a partition a rebalance took from it holds up the new owner the same way.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.router.domain.repeats import pack, signature
from services.router.store import PgRouterStore
from shared.db import create_pool
from shared.store import PgUnitOfWork
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def test_a_petitioners_and_a_partitions_locks_hold_the_next_transaction_until_the_first_commits(
    stack: Stack,
) -> None:
    async def scenario() -> list[tuple[str, float]]:
        pool = await create_pool(stack.infra.dsn, max_size=5)
        uow = PgUnitOfWork(pool, "router", PgRouterStore)
        events: list[tuple[str, float]] = []
        started = time.monotonic()

        def note(what: str) -> None:
            events.append((what, round(time.monotonic() - started, 2)))

        async def first() -> None:
            async with uow.begin() as store:
                await store.lock_routing({"petition.submitted:1", "petition.submitted:0"}, {"pk-b", "pk-a"})
                note("first holds a and b")
                await asyncio.sleep(1.0)
                note("first commits")

        async def later(what: str, partitions: set[str], keys: set[str]) -> None:
            await asyncio.sleep(0.2)
            async with uow.begin() as store:
                await store.lock_routing(partitions, keys)
                note(what)

        try:
            await asyncio.gather(
                first(),
                later("same person holds", {"petition.submitted:2"}, {"pk-b"}),
                later("same partition holds", {"petition.submitted:1"}, set()),
                later("someone else holds", {"petition.submitted:3"}, {"pk-c"}),
            )
        finally:
            await pool.close()
        return events

    events = asyncio.run(scenario())
    order = [what for what, _ in events]
    assert order.index("same person holds") > order.index("first commits"), events
    assert order.index("same partition holds") > order.index("first commits"), events
    # another person's petitions on another partition are not held up
    assert order.index("someone else holds") < order.index("first commits"), events


def test_an_original_received_after_the_petition_being_routed_is_found(stack: Stack) -> None:
    """A petition reaches the router after a later-received one of the same person was routed
    as the original: the store gives that original (within the window, on either side), and
    not one past the window or already a repeat. Written in a transaction rolled back."""
    at = datetime(2026, 3, 1, tzinfo=UTC)
    key = f"pk-{uuid.uuid4().hex}"
    text = pack(signature("小区电梯坏了", "小区电梯坏了三个月，物业公司一直不维修"))

    async def scenario() -> dict[str, list[str]]:
        conn = await asyncpg.connect(stack.infra.dsn)
        rolled_back = conn.transaction()
        await rolled_back.start()
        try:
            rows = [("later", at + timedelta(days=1), None), ("past-window", at + timedelta(days=91), None),
                    ("a-repeat", at + timedelta(days=2), "later")]
            for pid, received_at, repeat_of in rows:
                await conn.execute(
                    """INSERT INTO router.assignment (petition_id, tracking_code, assignment_no,
                           department_code, rule, channel, priority, title, content, received_at, repeat_of)
                       VALUES ($1, $1, 1, 'A4-HOUSING', 'test', 'hotline', 'normal', 't', 'c', $2, $3)""",
                    f"{key}-{pid}", received_at, repeat_of and f"{key}-{repeat_of}",
                )
            await conn.copy_records_to_table(
                "petition_index", schema_name="router",
                columns=("petition_id", "petitioner_key", "received_at", "bigrams"),
                records=[(f"{key}-{pid}", key, received_at, text) for pid, received_at, _ in rows],
            )
            found = await PgRouterStore(conn, "router").earlier_originals({key}, at, at)
            return {k: sorted(e.petition_id.removeprefix(f"{key}-") for e in v) for k, v in found.items()}
        finally:
            await rolled_back.rollback()
            await conn.close()

    assert asyncio.run(scenario()) == {key: ["later"]}
