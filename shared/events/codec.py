"""The wire format: every event type in one discriminated union, decoded and encoded by
pydantic's public API.

:data:`Event` is the union of every contract, discriminated by ``event_type``;
:func:`parse_event` validates JSON bytes into the right model in one pass (an unknown
``event_type`` fails as ``union_tag_invalid``, which the consumer core dead-letters as
``unexpected_event_type``). :func:`encode_event` writes compact JSON bytes, what
``model_dump_json`` gives, without decoding to a ``str`` and encoding back.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter

from shared.events.escalation import (
    SlaClockPaused,
    SlaClockResumed,
    SlaDeadlineExtended,
    SlaEscalated,
    SupervisionClosed,
    SupervisionOpened,
    SupervisionOverdue,
    ZeroReportStatus,
    ZeroReportSubmitted,
    ZeroReportSupervisionOverdue,
)
from shared.events.petition import (
    DepartmentAssignment,
    PetitionActionTaken,
    PetitionRouted,
    PetitionSubmitted,
    SlaBreached,
    SlaClockArmed,
    SlaClockStopped,
    SlaWarning,
)
from shared.events.watch import IncidentLinked, WatchAlert

__all__ = ["EVENT_MODELS", "Event", "encode_event", "parse_event"]

#: every event contract of the platform
EVENT_MODELS: tuple[type[BaseModel], ...] = (
    PetitionSubmitted,
    PetitionRouted,
    DepartmentAssignment,
    PetitionActionTaken,
    SlaClockArmed,
    SlaWarning,
    SlaBreached,
    SlaClockStopped,
    SlaEscalated,
    SupervisionClosed,
    SupervisionOpened,
    SupervisionOverdue,
    SlaClockPaused,
    SlaClockResumed,
    SlaDeadlineExtended,
    ZeroReportSubmitted,
    ZeroReportStatus,
    ZeroReportSupervisionOverdue,
    WatchAlert,
    IncidentLinked,
)

Event = Annotated[
    PetitionSubmitted
    | PetitionRouted
    | DepartmentAssignment
    | PetitionActionTaken
    | SlaClockArmed
    | SlaWarning
    | SlaBreached
    | SlaClockStopped
    | SlaEscalated
    | SupervisionClosed
    | SupervisionOpened
    | SupervisionOverdue
    | SlaClockPaused
    | SlaClockResumed
    | SlaDeadlineExtended
    | ZeroReportSubmitted
    | ZeroReportStatus
    | ZeroReportSupervisionOverdue
    | WatchAlert
    | IncidentLinked,
    Field(discriminator="event_type"),
]

_EVENT: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(raw: bytes | str) -> Any:
    """Decode one event from JSON; raises ``pydantic.ValidationError`` on bad input (not
    JSON, an unknown or missing ``event_type``, a field that breaks its contract)."""
    return _EVENT.validate_json(raw)


@cache
def _adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    return TypeAdapter(model)


def encode_event(event: BaseModel) -> bytes:
    """Encode an event as compact JSON bytes (the wire format)."""
    return _adapter(type(event)).dump_json(event)
