"""Event contracts: the only vocabulary services share.

JSON on the wire, one frozen pydantic model per event type, discriminated by ``event_type``.
Rules that must hold:

* every event carries the envelope (`event_id`, `event_type`, `schema_version`,
  `occurred_at` in UTC, `petition_id`, `causation_id`);
* derived events get deterministic ids (:func:`shared.ids.derived_event_id`);
* the Kafka key is the petition id as raw UTF-8 bytes (:func:`key_for`);
* no raw personal data: petitioners appear only as a pseudonymous `petitioner_key`;
* within a `schema_version` only additive changes; consumers accept the current and the
  previous version (:data:`SUPPORTED_SCHEMA_VERSIONS`).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

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


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Location(_Frozen):
    admin_code: str | None = None
    address: str | None = None


class Jurisdiction(_Frozen):
    code: str
    name: str
    level: str


class BaseEnvelope(_Frozen):
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


class PetitionSubmitted(Envelope):
    """Intake made a petition durable (topic ``petition.submitted``)."""

    event_type: Literal["petition.submitted"] = "petition.submitted"
    tracking_code: str
    title: str
    content: str
    channel: Channel
    kind: Kind | None = None
    petitioner_key: str | None = None
    location: Location = Location()
    persons: int = 1
    received_at: datetime


class PetitionRouted(Envelope):
    """The router assigned a petition to one department (topic ``petition.routed``).

    `assignment_no` counts assignments of this petition from 1; a reassignment after a
    return has a higher number, and readers keep the highest.

    `triage` says whether `department_code` is the routing table's triage desk (whose code
    the table configures). Added within schema version 1: an event written before it has
    ``None`` (not ``False``, which would be a claim the event never made), and a reader then
    has to decide from the code itself.
    """

    event_type: Literal["petition.routed"] = "petition.routed"
    assignment_no: int = Field(ge=1)
    category: str | None
    confidence: float | None = None
    department_code: str
    department_name: str
    jurisdiction: Jurisdiction | None = None
    rule: str
    reason: str = "initial"
    excluded_departments: tuple[str, ...] = ()
    priority: Priority = Priority.NORMAL
    kind: Kind | None = None
    channel: Channel
    received_at: datetime
    jurisdiction_source: str | None = None
    repeat_of: str | None = None
    group_petition: bool = False
    accused_departments: tuple[str, ...] = ()
    table_version: str | None = None
    triage: bool | None = None


class DepartmentAssignment(Envelope):
    """What a department's own queue (``dept.<code>.assignments``) receives: no PII."""

    event_type: Literal["department.assignment"] = "department.assignment"
    tracking_code: str
    assignment_no: int
    department_code: str
    category: str | None
    title: str
    content: str
    location: Location = Location()
    priority: Priority = Priority.NORMAL
    kind: Kind | None = None
    rule: str
    received_at: datetime
    repeat_of: str | None = None
    group_petition: bool = False
    persons: int = 1


class PetitionActionTaken(Envelope):
    """A department or supervisor acted on a petition (topic ``petition.actions``)."""

    event_type: Literal["petition.action_taken"] = "petition.action_taken"
    action: ActionType
    department_code: str
    note: str = ""
    target_department_code: str | None = None
    assignment_no: int | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class ClockState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    WARNED = "warned"
    BREACHED = "breached"
    STOPPED = "stopped"


class SlaClockArmed(Envelope):
    event_type: Literal["sla.clock_armed"] = "sla.clock_armed"
    clock: str
    policy: str
    department_code: str
    started_at: datetime
    due_at: datetime
    calendar_missing: bool = False


class SlaWarning(Envelope):
    event_type: Literal["sla.warning"] = "sla.warning"
    clock: str
    department_code: str
    fraction: float
    due_at: datetime
    lateness_seconds: float = 0.0


class SlaBreached(Envelope):
    event_type: Literal["sla.breached"] = "sla.breached"
    clock: str
    department_code: str
    due_at: datetime
    lateness_seconds: float = 0.0


class SlaClockStopped(Envelope):
    event_type: Literal["sla.clock_stopped"] = "sla.clock_stopped"
    clock: str
    department_code: str
    reason: str
    due_at: datetime


#: event_type -> model; each event module registers its models here (see :func:`register`).
EVENT_TYPES: dict[str, type[BaseEnvelope]] = {}


def register(*models: type[BaseEnvelope]) -> None:
    """Make `models` decodable by :func:`parse_event` (called once per event module)."""
    for model in models:
        name = model.model_fields["event_type"].default
        if name in EVENT_TYPES and EVENT_TYPES[name] is not model:
            raise ValueError(f"event type {name!r} registered twice")
        EVENT_TYPES[name] = model


register(
    PetitionSubmitted,
    PetitionRouted,
    DepartmentAssignment,
    PetitionActionTaken,
    SlaClockArmed,
    SlaWarning,
    SlaBreached,
    SlaClockStopped,
)

_HEAD = TypeAdapter(dict[str, Any])
_EVENT_TYPE = re.compile(rb'"event_type"\s*:\s*"([a-z_.]+)"')


def parse_event(raw: bytes | str) -> Any:
    """Decode one event from JSON bytes; raises ``pydantic.ValidationError`` on bad input.

    Importing :mod:`shared.events.all` first makes every event module's types decodable.
    The type is found with a cheap scan so the common case is a single validating parse;
    anything unusual (no or several ``event_type`` keys) takes the careful two-step path.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    found = _EVENT_TYPE.findall(data)
    if len(found) == 1:
        model = EVENT_TYPES.get(found[0].decode())
        if model is not None:
            return model.model_validate_json(data)
    head = _HEAD.validate_json(data)
    model = EVENT_TYPES.get(str(head.get("event_type")))
    if model is None:
        return Unknown.model_validate(head)
    return model.model_validate(head)


class Unknown(Envelope):
    """An event type this service does not know (dead-lettered as unexpected)."""

    event_type: str = "unknown"


def encode_event(event: BaseModel) -> bytes:
    """Encode an event as compact JSON bytes (the wire format): what ``model_dump_json``
    gives, as the serializer's own bytes (not decoded to a str and encoded back, a quarter
    of the cost for an event with a long Chinese text)."""
    return event.__pydantic_serializer__.to_json(event)


def key_for(petition_id: str) -> bytes:
    """The Kafka key: the petition id as raw UTF-8 bytes, identical from every producer."""
    return petition_id.encode()


def utcnow() -> datetime:
    """The current time; call only in adapters, never in domain code."""
    return datetime.now(UTC)
