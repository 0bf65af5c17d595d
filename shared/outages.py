"""Which failures are outages: one rule for every loop and every HTTP route.

An error that says the database or the broker is unreachable, restarting, overloaded or too
slow is *transient*: nothing was recorded, the same work will succeed later, so a consumer retries
with back-off, a relay reconnects and an HTTP route answers ``503`` with ``Retry-After``.
Everything else is not: bad input is refused or dead-lettered, a defect is logged and
surfaces. Classified by type for the client-side errors and by SQLSTATE class for the
server's:

* :class:`Unavailable`, ``OSError`` (refused, reset, broken pipe), ``TimeoutError``,
  aiokafka's ``KafkaError``;
* asyncpg's client errors (``InterfaceError``: "connection is closed", "another operation
  is in progress" on a connection left half-used by a restart; ``InternalClientError``;
  ``ClientCannotConnectError``; ``ConnectionDoesNotExistError``);
* server errors of class 08 (connection exception), 53 (insufficient resources, e.g. too
  many connections), 57 (operator intervention: admin or crash shutdown, cannot connect
  now, query cancelled by a statement timeout), 58 (system error), and the two conflicts a
  retry resolves: 40001 (serialization failure) and 40P01 (deadlock);
* ``InvalidCachedStatementError``: a prepared statement outlived a schema change or a
  server restart.
"""

from __future__ import annotations

import asyncio

import asyncpg
from aiokafka.errors import KafkaError

from shared.errors import Unavailable

__all__ = ["TRANSIENT_SQLSTATE_CLASSES", "is_transient"]

#: SQLSTATE classes (first two characters) that mean "the server cannot do it now"
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58"})
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})

_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    Unavailable,
    OSError,
    asyncio.TimeoutError,
    TimeoutError,
    KafkaError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.ClientCannotConnectError,
    asyncpg.exceptions.InvalidCachedStatementError,
)


def is_transient(exc: BaseException) -> bool:
    """True when `exc` (or an error it was raised ``from``) means "unavailable now, retry".

    Only the explicit cause chain counts, not the context: an error raised while handling
    an outage (a validation error in an ``except`` block) is still what it is."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _TRANSIENT_TYPES):
            return True
        if isinstance(current, asyncpg.PostgresError):
            state = str(getattr(current, "sqlstate", "") or "")
            if state[:2] in TRANSIENT_SQLSTATE_CLASSES or state in _TRANSIENT_SQLSTATES:
                return True
        current = current.__cause__
    return False
