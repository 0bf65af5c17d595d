"""Event contracts: the only vocabulary services share.

JSON on the wire, one frozen pydantic model per event type, discriminated by ``event_type``
(:mod:`shared.events.codec`). The envelope and the shared vocabulary are in
:mod:`~shared.events.envelope`, a petition's lifecycle events in :mod:`~shared.events.petition`,
the ladder's, 督办's and zero reports' in :mod:`~shared.events.escalation`; this package
re-exports them all. Depends on pydantic alone. Rules that must hold:

* every event carries the envelope (`event_id`, `event_type`, `schema_version`,
  `occurred_at` in UTC, `petition_id`, `causation_id`);
* derived events get deterministic ids (:func:`shared.ids.derived_event_id`);
* the Kafka key is the petition id as raw UTF-8 bytes (:func:`key_for`);
* no raw personal data: petitioners appear only as a pseudonymous `petitioner_key`;
* within a `schema_version` only additive changes; consumers accept the current and the
  previous version (:data:`SUPPORTED_SCHEMA_VERSIONS`).
"""

from __future__ import annotations

from shared.events.codec import (
    EVENT_MODELS,
    Event,
    encode_event,
    parse_event,
)
from shared.events.envelope import (
    SCHEMA_VERSION,
    SUPPORTED_SCHEMA_VERSIONS,
    ActionType,
    Actor,
    BaseEnvelope,
    Channel,
    ClockState,
    Envelope,
    Frozen,
    Jurisdiction,
    Kind,
    Location,
    Priority,
    key_for,
    utcnow,
)
from shared.events.escalation import (
    SlaClockPaused,
    SlaClockResumed,
    SlaDeadlineExtended,
    SlaEscalated,
    SupervisionClosed,
    SupervisionOpened,
    SupervisionOrder,
    SupervisionOverdue,
    UnitEnvelope,
    ZeroReportStatus,
    ZeroReportSubmitted,
    ZeroReportSupervisionOverdue,
    key_for_unit,
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
from shared.events.watch import IncidentLinked, WatchAlert, key_for_alert

__all__ = [
    "EVENT_MODELS",
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "ActionType",
    "Actor",
    "BaseEnvelope",
    "Channel",
    "ClockState",
    "DepartmentAssignment",
    "Envelope",
    "Event",
    "Frozen",
    "IncidentLinked",
    "Jurisdiction",
    "Kind",
    "Location",
    "PetitionActionTaken",
    "PetitionRouted",
    "PetitionSubmitted",
    "Priority",
    "SlaBreached",
    "SlaClockArmed",
    "SlaClockPaused",
    "SlaClockResumed",
    "SlaClockStopped",
    "SlaDeadlineExtended",
    "SlaEscalated",
    "SlaWarning",
    "SupervisionClosed",
    "SupervisionOpened",
    "SupervisionOrder",
    "SupervisionOverdue",
    "UnitEnvelope",
    "WatchAlert",
    "ZeroReportStatus",
    "ZeroReportSubmitted",
    "ZeroReportSupervisionOverdue",
    "encode_event",
    "key_for",
    "key_for_alert",
    "key_for_unit",
    "parse_event",
    "utcnow",
]
