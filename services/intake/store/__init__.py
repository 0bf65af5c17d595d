"""Intake's store: every SQL statement of its commands and queries, by name.

:class:`IntakeStore` (here) is what :mod:`services.intake.handlers` and
:mod:`services.intake.views` use; :class:`PgIntakeStore` (:mod:`.postgres`) is the PostgreSQL
one (schema ``intake``), and ``tests/fakes/intake.py`` an in-memory one with the same
behaviour. Rows come back as the frozen dataclasses of :mod:`.rows`, never as driver records.
The read model's statements are in :mod:`services.intake.readmodel.store`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Protocol

from services.intake.store.postgres import PgIntakeStore
from services.intake.store.rows import (
    AlertRow,
    AreaOverview,
    AtRisk,
    AuditEntry,
    CallerPetition,
    Contact,
    Deadline,
    DepartmentFigures,
    IdempotentPetition,
    IncidentLinkRow,
    NewPetitionRow,
    PetitionLabel,
    PetitionRow,
    PublicCase,
    PublicRequest,
    QueueRow,
    SupervisionRow,
    TimelineEntry,
    UnitReports,
    ZeroReportRow,
    ZeroReportSubmission,
)
from shared.store import Transaction

__all__ = [
    "AlertRow",
    "AreaOverview",
    "AtRisk",
    "AuditEntry",
    "CallerPetition",
    "Contact",
    "Deadline",
    "DepartmentFigures",
    "IdempotentPetition",
    "IncidentLinkRow",
    "IntakeStore",
    "NewPetitionRow",
    "PetitionLabel",
    "PetitionRow",
    "PgIntakeStore",
    "PublicCase",
    "PublicRequest",
    "QueueRow",
    "SupervisionRow",
    "TimelineEntry",
    "UnitReports",
    "ZeroReportRow",
    "ZeroReportSubmission",
]


class IntakeStore(Transaction, Protocol):
    """Named operations on intake's state (one transaction)."""

    async def insert_petition(self, row: NewPetitionRow) -> None: ...

    async def insert_contact(self, petition_id: str, name: str | None, phone: str | None,
                             id_number: str | None, email: str | None = None) -> None: ...

    async def add_timeline(self, petition_id: str, at: datetime, event: str, detail: dict[str, Any],
                           event_id: uuid.UUID) -> None:
        """Record an entry on the petition's timeline (nothing when the petition is unknown)."""
        ...

    async def store_idempotency_key(self, key: str, request_hash: str, petition_id: str) -> bool:
        """Record `key` for `petition_id`; False when the key is taken already."""
        ...

    async def idempotent_petition(self, key: str) -> IdempotentPetition | None: ...

    async def petition(self, ref: str, *, for_update: bool = False) -> PetitionRow | None:
        """The petition with id or tracking code `ref` (locked until the end of the transaction)."""
        ...

    async def record_resolution(self, petition_id: str, at: datetime, department: str, basis: str, public: bool,
                                follow_up_due: datetime, office: str) -> None:
        """The resolution's facts, and the hotline's follow-up clock (running until the call)."""
        ...

    async def record_follow_up(self, petition_id: str, status: str, attempts: int, reopens: int, at: datetime, *,
                               stop_clock: bool) -> None: ...

    async def public_cases(self, *, limit: int, before: datetime | None, start: datetime | None,
                           end: datetime | None, hidden: Sequence[str]) -> list[PublicCase]:
        """Resolved cases the public may see, the latest resolution first (`before`: older than
        that resolution; `start`/`end`: resolved in that range): not withheld, no accusation, none
        about a unit, none of a `hidden` category."""
        ...

    async def kpi_counts(self, start: date, end: date, tokens: Sequence[str] | None) -> dict[str, dict[str, int]]:
        """The 三率 counters of every department (of the areas `tokens`; None: all), summed over
        the local days [start, end]."""
        ...

    async def count_kpi(self, event_id: uuid.UUID, department: str, day: date, fields: Sequence[str]) -> None:
        """Add one to each of the 三率 counters `fields` of the department's day, once per event."""
        ...

    async def set_status(self, petition_id: str, status: str, extension_state: str | None) -> None:
        """Set status and extension state; moving to ``paused`` remembers the status left."""
        ...

    async def deadlines(self, petition_id: str) -> list[Deadline]: ...

    async def timeline(self, petition_id: str) -> list[TimelineEntry]: ...

    async def supervision(self, supervision_id: uuid.UUID, *, for_update: bool = False) -> SupervisionRow | None: ...

    async def supervisions_for(self, unit: str, state: str, limit: int) -> list[SupervisionRow]:
        """The 督办 addressed to `unit` (``open``, ``closed`` or ``all``), oldest first."""
        ...

    async def request_close(self, supervision_id: uuid.UUID, unit: str, at: datetime) -> None: ...

    async def insert_zero_report(self, unit: str, period: str, submission_id: uuid.UUID, incidents: list[str],
                                 request_hash: str, at: datetime) -> bool:
        """Record a unit's report for a period; False when one is recorded already."""
        ...

    async def zero_report_submission(self, unit: str, period: str) -> ZeroReportSubmission | None: ...

    async def zero_reports(self, unit: str, period: str | None) -> list[ZeroReportRow]:
        """Every period of `unit` (or just `period`) with a verdict or a report, in order."""
        ...

    async def contact(self, petition_id: str) -> Contact | None: ...

    async def add_audit(self, at: datetime, subject: str, role: str, action: str, petition_id: str,
                        reason: str) -> int:
        """Append one row to the audit log; its id."""
        ...

    async def audit(self, petition_id: str | None, limit: int) -> list[AuditEntry]:
        """The audit log (of one petition, or all), newest first."""
        ...

    async def area_overview(self, codes: Sequence[str] | None, tokens: Sequence[str] | None,
                            limit: int, *, figures: bool = True) -> AreaOverview:
        """What a supervisor watches in an area (None: the whole province): the running clocks
        warned or breached of petitions whose jurisdiction is one of `codes` (earliest first),
        and, with `figures`, the figures of departments whose unit token is one of `tokens` and
        those units' zero-report verdicts (aggregates over the area: the costly part)."""
        ...

    async def petitions_of_petitioner(self, petitioner_key: str, limit: int) -> list[CallerPetition]:
        """A petitioner's petitions (by its pseudonym), the newest first."""
        ...

    async def open_supervision_in(self, tokens: Sequence[str] | None, limit: int) -> list[SupervisionRow]:
        """Open 督办 addressed to units whose token is one of `tokens` (None: all), earliest due first."""
        ...

    async def public_requests(self, *, ids: Sequence[str] | None, categories: Sequence[str] | None,
                              codes: Sequence[str] | None, start: datetime | None, end: datetime | None,
                              closed: Sequence[str] | None, open_: bool | None, hidden: Sequence[str],
                              hidden_codes: Sequence[str], limit: int) -> list[PublicRequest]:
        """Petitions anyone may see, newest first: by id, or received in [start, end] and of
        these categories (or filed under these Open311 service codes while not yet classified);
        `closed` lists the statuses that count as closed, `open_` keeps only open (True) or only
        closed (False) ones. Never an accusation, one about a unit, or one of a `hidden`
        category (or, not yet classified, filed under one of the `hidden_codes`)."""
        ...

    async def queue(self, departments: Sequence[str], statuses: Sequence[str], limit: int) -> list[QueueRow]:
        """The petitions the departments hold in these statuses: the most urgent first (the
        earliest deadline still running, warned or breached), then the newest."""
        ...

    async def incident_links(self, petition_id: str) -> list[IncidentLinkRow]:
        """The incidents the watch linked the petition to (并案), the earliest first, unlinked
        ones included."""
        ...

    async def unlink(self, petition_id: str, at: datetime, by: str, unit: str) -> None:
        """Mark every link of the petition still in force as undone, by `by` for `unit`."""
        ...

    async def alerts(self, state: str, kind: str | None, codes: Sequence[str] | None, limit: int) -> list[AlertRow]:
        """Alerts (``active``, ``closed`` or ``all``; of one `kind` or both) about one of the areas
        `codes` or a street below one (None: every alert, those about no known area too), the
        active first, then the riskiest, then the newest; each with the petitions a person
        unlinked from its incident."""
        ...

    async def petition_labels(self, ids: Sequence[str]) -> dict[str, PetitionLabel]:
        """The tracking code and the accused units of each petition of `ids` intake knows."""
        ...
