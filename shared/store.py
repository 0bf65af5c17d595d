"""Units of work: one transaction, the interface the service layer and the consumer core use.

Every state change and the events it causes commit together (the outbox), and a consumer's
record of the events it applied commits with them (the processed-event ledger). So the
service layer never sees a connection: it opens a unit of work (:meth:`UnitOfWork.begin`)
and gets a *store*, an object with named operations on the service's state, that is also a
:class:`Transaction` (ledger, outbox, savepoints).

Each service has two stores with the same interface: the PostgreSQL one (a subclass of
:class:`PgTransaction` holding the service's SQL, in ``services/<service>/store.py``) and an
in-memory fake (``tests/fakes``) on which its handlers are unit-tested, as in
cosmicpython's ``FakeUnitOfWork``. What must hold for both:

* everything done through one store commits when ``begin()``'s block ends normally and is
  undone when it raises (the fake restores its snapshot);
* a :meth:`Transaction.savepoint` block that raises undoes its own work only;
* :meth:`Transaction.claim_events` returns the ids not yet claimed by that consumer and
  claims them, so a repeat is recognised in any later transaction.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Generic, Protocol, TypeVar

import asyncpg

from shared.db import add_to_outbox
from shared.messages import OutboxMessage

__all__ = ["PgTransaction", "PgUnitOfWork", "Transaction", "UnitOfWork"]


class Transaction(Protocol):
    """What the consumer core needs of one transaction."""

    async def claim_events(self, consumer: str, event_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """Record that `consumer` applied `event_ids`; returns those it had not before."""
        ...

    async def add_to_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        """Publish `messages` once the transaction commits (never if it does not)."""
        ...

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """A block whose work is undone, alone, if it raises."""
        ...


StoreT_co = TypeVar("StoreT_co", bound=Transaction, covariant=True)
StoreT = TypeVar("StoreT", bound="PgTransaction")


class UnitOfWork(Protocol[StoreT_co]):
    """Opens transactions; each yields the service's store."""

    def begin(self, *, snapshot: bool = False) -> AbstractAsyncContextManager[StoreT_co]:
        """One transaction: committed when the block ends normally, rolled back if it raises.
        `snapshot`: a read-only transaction whose statements all see one snapshot (a query
        reading several tables must not see a half-applied change between two statements)."""
        ...


class PgTransaction:
    """A transaction on one asyncpg connection, in the service's own schema.

    The services' stores subclass it and add their named SQL; they reach the connection as
    ``self.conn`` and the schema as ``self.schema``."""

    __slots__ = ("conn", "schema")

    def __init__(self, conn: asyncpg.Connection, schema: str) -> None:
        self.conn = conn
        self.schema = schema

    async def claim_events(self, consumer: str, event_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        if not event_ids:
            return set()
        rows = await self.conn.fetch(
            f'INSERT INTO "{self.schema}".processed_event (consumer, event_id)'
            " SELECT $1, e FROM unnest($2::uuid[]) AS e ON CONFLICT DO NOTHING RETURNING event_id",
            consumer,
            list(set(event_ids)),
        )
        return {r["event_id"] for r in rows}

    async def add_to_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        await add_to_outbox(self.conn, self.schema, messages)

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        async with self.conn.transaction():  # nested in the open transaction: a savepoint
            yield


class PgUnitOfWork(Generic[StoreT]):
    """Transactions on a pool's connections, each wrapped in the service's store class
    (a :class:`UnitOfWork` of that store)."""

    def __init__(self, pool: asyncpg.Pool, schema: str, store: Callable[[asyncpg.Connection, str], StoreT]) -> None:
        self.pool = pool
        self.schema = schema
        self._store = store

    @contextlib.asynccontextmanager
    async def begin(self, *, snapshot: bool = False) -> AsyncIterator[StoreT]:
        isolation = "repeatable_read" if snapshot else None
        async with self.pool.acquire() as conn, conn.transaction(isolation=isolation, readonly=snapshot):
            yield self._store(conn, self.schema)
