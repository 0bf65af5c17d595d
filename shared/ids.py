"""Identifiers: petition ids, tracking codes and deterministic ids for derived events."""

from __future__ import annotations

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


def derived_event_id(causation_id: uuid.UUID, what: str) -> uuid.UUID:
    """The id of an event derived from `causation_id`: the same inputs give the same id.

    Consumers drop repeats by id, so a replayed input must re-derive identical ids.
    """
    return uuid.uuid5(EVENT_NAMESPACE, f"{causation_id}:{what}")
