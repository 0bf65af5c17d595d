"""In-memory stores for unit tests of the service layer (cosmicpython's FakeUnitOfWork).

:class:`FakeDatabase` holds every table as plain Python data; :class:`FakeUnitOfWork` opens
transactions on it that commit when the block ends normally and are rolled back (the tables
restored from a snapshot) when it raises; :class:`FakeTransaction` is the consumer core's
part of a store (processed-event ledger, outbox, savepoints). A service's fake store
subclasses :class:`FakeTransaction` and keeps its tables on ``self.db``.

Faults are injected on the database (:attr:`Faults.outages`: the next N operations fail as
if PostgreSQL were down; :attr:`Faults.outbox_broken`: writing the outbox fails with a
defect), and are never rolled back.
"""

from __future__ import annotations

import contextlib
import copy
import json
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from shared.messages import OutboxMessage


@dataclass
class Faults:
    outages: int = 0
    outbox_broken: bool = False


class FakeDatabase:
    """Tables as attributes; a service's fake adds its own (``db.clocks = {}``)."""

    def __init__(self) -> None:
        self.faults = Faults()
        self.outbox: list[OutboxMessage] = []
        self.ledger: set[tuple[str, uuid.UUID]] = set()
        self.commits = 0

    def maybe_fail(self) -> None:
        if self.faults.outages > 0:
            self.faults.outages -= 1
            raise ConnectionRefusedError("database down")

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy({k: v for k, v in vars(self).items() if k not in ("faults", "commits")})

    def restore(self, snapshot: dict[str, Any]) -> None:
        for name, value in snapshot.items():
            setattr(self, name, value)

    def messages(self, topic: str | None = None) -> list[OutboxMessage]:
        return [m for m in self.outbox if topic is None or m.topic == topic]

    def dead_letters(self, topic: str | None = None) -> list[dict[str, Any]]:
        return [json.loads(m.value) for m in self.outbox
                if m.topic.startswith("deadletter.") and (topic is None or m.topic == topic)]


class FakeTransaction:
    """The consumer core's part of a store, in memory."""

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db

    async def claim_events(self, consumer: str, event_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        self.db.maybe_fail()
        fresh = {i for i in event_ids if (consumer, i) not in self.db.ledger}
        self.db.ledger.update((consumer, i) for i in fresh)
        return fresh

    async def add_to_outbox(self, messages: Sequence[OutboxMessage]) -> None:
        self.db.maybe_fail()
        if messages and self.db.faults.outbox_broken:
            raise RuntimeError("outbox table broken")
        self.db.outbox.extend(messages)

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        snapshot = self.db.snapshot()
        try:
            yield
        except BaseException:
            self.db.restore(snapshot)
            raise


StoreT = TypeVar("StoreT", bound=FakeTransaction)


@dataclass
class FakeUnitOfWork(Generic[StoreT]):
    """Transactions on `db`, each yielding ``store(db)``."""

    db: FakeDatabase
    store: Callable[[FakeDatabase], StoreT]
    begun: int = field(default=0)

    @contextlib.asynccontextmanager
    async def begin(self, *, snapshot: bool = False) -> AsyncIterator[StoreT]:  # one thread: always one snapshot
        self.db.maybe_fail()
        self.begun += 1
        before = self.db.snapshot()
        try:
            yield self.store(self.db)
        except BaseException:
            self.db.restore(before)
            raise
        self.db.commits += 1
