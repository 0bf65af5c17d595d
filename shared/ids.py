"""Identifiers: petition ids, tracking codes and deterministic ids for derived events."""

from __future__ import annotations

import hashlib
import secrets
import uuid

#: Namespace for uuid5 ids of derived events; never change it, or replays produce new ids.
EVENT_NAMESPACE = uuid.UUID("6f1c2a9e-3b7d-5e21-9a4c-0d8e7f6b5a43")

_TRACKING_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O/1/I: read out on the phone


def new_petition_id() -> str:
    """A new petition id (UUID4 text): opaque, unguessable, the Kafka key of all its events."""
    return str(uuid.uuid4())


def new_tracking_code() -> str:
    """A short code a petitioner can read out on the phone (``XF-`` + 10 characters)."""
    return "XF-" + "".join(secrets.choice(_TRACKING_ALPHABET) for _ in range(10))


_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes
_VERSION_5 = 5 << 76
_VARIANT_RFC = 0x8000 << 48
_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)


def derived_event_id(causation_id: uuid.UUID, what: str) -> uuid.UUID:
    """The id of an event derived from `causation_id`: the same inputs give the same id.

    Consumers drop repeats by id, so a replayed input must re-derive identical ids.
    Exactly ``uuid.uuid5(EVENT_NAMESPACE, f"{causation_id}:{what}")``, computed without
    the generic constructor's argument checks (a third of the cost of encoding an event).
    """
    digest = hashlib.sha1(_NAMESPACE_BYTES + f"{causation_id}:{what}".encode(), usedforsecurity=False).digest()
    value = (int.from_bytes(digest[:16], "big") & _KEEP) | _VERSION_5 | _VARIANT_RFC
    out = object.__new__(uuid.UUID)
    object.__setattr__(out, "int", value)
    object.__setattr__(out, "is_safe", uuid.SafeUUID.unknown)
    return out
