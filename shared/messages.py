"""What a service publishes: one message for the outbox, written in the transaction that
caused it and published by the relay after the commit. Pure: the service layers build
messages without touching the database code that stores them (:mod:`shared.db`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OutboxMessage"]


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message to publish after the transaction that wrote it commits."""

    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, str] | None = None
