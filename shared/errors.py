"""The platform's errors: one tree, stable codes, and which failures are outages.

**The tree.** Every error the platform raises on purpose is a :class:`PetitionError` with a
stable ``code`` (clients, dead-letter reasons, alerts and runbooks use it; never rename one).
The layers map the families, never the individual codes:

=====================  =======================================  ====================================
family                 what it says                              HTTP answer / consumer outcome
=====================  =======================================  ====================================
:class:`BadInput`      the input is wrong; no retry fixes it     ``422`` (``field`` named) / dead letter
:class:`NotFound`      no such petition, 督办, unit …             ``404`` / dead letter
:class:`Conflict`      valid, but not in the current state       ``409`` / dead letter
:class:`Unavailable`   storage or broker cannot do it now        ``503`` + ``Retry-After`` / retry
=====================  =======================================  ====================================

A consumer dead-letters a non-transient :class:`PetitionError` with its ``code`` as the
reason; the HTTP layer answers ``{"error": code, "message": …}`` with the family's status.

**Outages.** One rule for every loop and every HTTP route (:func:`is_transient`): an error
that says the database or the broker is unreachable, restarting, overloaded or too slow is
*transient*: nothing was recorded, the same work will succeed later, so a consumer retries
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

__all__ = [
    "TRANSIENT_SQLSTATE_CLASSES",
    "BadInput",
    "Conflict",
    "NotFound",
    "PetitionError",
    "Unavailable",
    "is_transient",
]


class PetitionError(Exception):
    """The root of the platform's own errors: a message for people, a stable `code` for
    programs, and the `field` at fault when one is (``location.admin_code``).

    Subclass one of the four families, never this class directly; pass ``code=`` for a
    more precise reason than the family's (``not_holder`` is a :class:`Conflict`)."""

    #: the family's default; an instance may carry a more precise one
    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class BadInput(PetitionError):
    """The input can never be applied as it is (invalid, unknown reference, malformed record)."""

    code = "bad_input"


class NotFound(PetitionError):
    """What the input names does not exist (or does not exist for this caller)."""

    code = "not_found"


class Conflict(PetitionError):
    """The input is valid but conflicts with the current state (wrong status, not the holder)."""

    code = "conflict"


class Unavailable(PetitionError):
    """Storage or broker cannot do it now; nothing was recorded, the same request may succeed later."""

    code = "unavailable"


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
