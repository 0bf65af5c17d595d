"""The envelope every event carries, and the vocabulary the events share (channels, kinds,
priorities, actions, places). Depends on pydantic alone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})


class Channel(StrEnum):
    HOTLINE = "hotline"
    ONLINE = "online"
    LETTER = "letter"
    VISIT = "visit"
    APP = "app"
    FAX = "fax"


class Kind(StrEnum):
    SUGGESTION = "suggestion"
    ACCUSATION = "accusation"
    CLAIM = "claim"


class Priority(StrEnum):
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class ActionType(StrEnum):
    ACCEPT = "accept"
    RETURN = "return"
    RESOLVE = "resolve"
    ASSIGN = "assign"
    REQUEST_EXTENSION = "request_extension"
    APPROVE_EXTENSION = "approve_extension"
    REJECT_EXTENSION = "reject_extension"
    PAUSE = "pause"
    RESUME = "resume"
    CONTACT = "contact"
    CLOSE_SUPERVISION = "close_supervision"
    OPEN_SUPERVISION = "open_supervision"
    #: 回访: the hotline called the petitioner back (extra: reached, resolved, satisfaction, outcome)
    FOLLOW_UP = "follow_up"
    #: a person took the petition out of the incident the watch linked it to (并案 undone):
    #: the router gives it back to the department its own routing chose
    UNLINK = "unlink"


class ClockState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    WARNED = "warned"
    BREACHED = "breached"
    STOPPED = "stopped"


class Frozen(BaseModel):
    """A value object of the wire vocabulary: immutable, unknown fields ignored (additive changes)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Location(Frozen):
    admin_code: str | None = None
    address: str | None = None


class Jurisdiction(Frozen):
    code: str
    name: str
    level: str


class Actor(Frozen):
    """Who took an action or submitted: a staff id and its role (never a petitioner)."""

    subject: str = Field(min_length=1, max_length=200)
    role: str


class BaseEnvelope(Frozen):
    """Fields every event has, whatever it is about."""

    event_id: uuid.UUID
    schema_version: int = SCHEMA_VERSION
    occurred_at: datetime
    causation_id: uuid.UUID | None = None

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        return value.astimezone(UTC)

    @field_validator("schema_version")
    @classmethod
    def _supported(cls, value: int) -> int:
        if value not in SUPPORTED_SCHEMA_VERSIONS:
            raise ValueError(f"unsupported schema_version {value}")
        return value


class Envelope(BaseEnvelope):
    """The envelope of events about a petition: keyed and partitioned by `petition_id`."""

    petition_id: str = Field(min_length=1, max_length=64)



def key_for(petition_id: str) -> bytes:
    """The Kafka key: the petition id as raw UTF-8 bytes, identical from every producer."""
    return petition_id.encode()


def utcnow() -> datetime:
    """The current time; call only in adapters, never in domain code."""
    return datetime.now(UTC)
