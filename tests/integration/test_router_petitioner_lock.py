"""Repeat detection serialised per petitioner on the real database.

Two router instances consume different partitions, and two petitions of one person can land on
both. Each instance's transaction takes the petitioners' advisory locks before it reads their
earlier originals (:meth:`services.router.store.PgRouterStore.lock_petitioners`), so the
second waits for the first to commit and then sees its petition as the original.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from services.router.store import PgRouterStore
from shared.db import create_pool
from shared.store import PgUnitOfWork
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def test_a_petitioners_lock_holds_the_second_transaction_until_the_first_commits(stack: Stack) -> None:
    async def scenario() -> list[tuple[str, float]]:
        pool = await create_pool(stack.infra.dsn, max_size=3)
        uow = PgUnitOfWork(pool, "router", PgRouterStore)
        events: list[tuple[str, float]] = []
        started = time.monotonic()

        def note(what: str) -> None:
            events.append((what, round(time.monotonic() - started, 2)))

        async def first() -> None:
            async with uow.begin() as store:
                await store.lock_petitioners({"pk-b", "pk-a"})
                note("first holds a and b")
                await asyncio.sleep(1.0)
                note("first commits")

        async def same_person() -> None:
            await asyncio.sleep(0.2)
            async with uow.begin() as store:
                await store.lock_petitioners({"pk-b"})
                note("second holds b")

        async def someone_else() -> None:
            await asyncio.sleep(0.2)
            async with uow.begin() as store:
                await store.lock_petitioners({"pk-c"})
                note("third holds c")

        try:
            await asyncio.gather(first(), same_person(), someone_else())
        finally:
            await pool.close()
        return events

    events = asyncio.run(scenario())
    order = [what for what, _ in events]
    assert order.index("second holds b") > order.index("first commits"), events
    # another person's petitions are not held up
    assert order.index("third holds c") < order.index("first commits"), events
