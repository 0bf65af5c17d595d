"""The platform's errors: one tree, stable codes, and which failures are outages.

**The tree.** Every error the platform raises on purpose is a :class:`PetitionError` with a
stable ``code`` (clients, dead-letter reasons, alerts and runbooks use it; never rename one).
The layers map the families, never the individual codes:

==========================  ========================================  ========================================
family                      what it says                              HTTP answer / consumer outcome
==========================  ========================================  ========================================
:class:`BadInput`           the input is wrong; no retry fixes it     ``422`` (``field`` named) / dead letter
:class:`NotFound`           no such petition, 督办, unit …              ``404`` / dead letter
:class:`Conflict`           valid, but not in the current state       ``409`` / dead letter
:class:`Unavailable`        storage or broker cannot do it now        ``503`` + ``Retry-After`` / retry
:class:`Unauthenticated`    no valid credential                       ``401`` + ``WWW-Authenticate``
:class:`Forbidden`          the caller's role may never do this       ``403``
==========================  ========================================  ========================================

A petition outside the caller's scope is :class:`NotFound`, not :class:`Forbidden`: its
existence must not leak.

A consumer dead-letters a non-transient :class:`PetitionError` with its ``code`` as the
reason; the HTTP layer answers ``{"error": code, "message": …}`` with the family's status.

Which failures are outages is :func:`shared.outages.is_transient`'s one rule. Pure: the
standard library only, so the domain may raise these.
"""

from __future__ import annotations

__all__ = ["BadInput", "Conflict", "Forbidden", "NotFound", "PetitionError", "Unauthenticated", "Unavailable"]


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


class Unauthenticated(PetitionError):
    """No credential, or one that does not prove who the caller is (malformed, expired, not
    yet valid, for another audience, of an unknown key, badly signed)."""

    code = "unauthenticated"


class Forbidden(PetitionError):
    """The caller is known, and its role may never do this (whatever the petition)."""

    code = "forbidden"
