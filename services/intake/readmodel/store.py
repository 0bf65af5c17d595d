"""The read model's store: every statement that records a lifecycle event, by name.

:class:`ReadModelStore` is what :mod:`services.intake.readmodel.handlers` uses;
:class:`PgReadModelStore` the PostgreSQL one (schema ``intake``), ``tests/fakes/intake.py``
an in-memory one. Every write is idempotent: upserts guarded by the event's time (an alert's by
its version), timeline rows, 督办 and incident links keyed by their ids, so a redelivered event
changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from services.intake.store.postgres import count_kpi
from services.intake.store.rows import AlertRow, IncidentLinkRow
from shared.events import SupervisionOrder
from shared.store import PgTransaction, Transaction

__all__ = ["PgReadModelStore", "ReadModelStore", "Routing", "ZeroReportVerdict"]


@dataclass(frozen=True, slots=True)
class Routing:
    """What a routed event says of the petition (its latest assignment)."""

    petition_id: str
    status: str
    category: str | None
    department_code: str
    department_name: str
    assignment_no: int
    jurisdiction: dict[str, Any] | None
    priority: str
    rule: str
    repeat_of: str | None
    group_petition: bool
    accused_departments: tuple[str, ...]
    #: the classifier's confidence in `category` (None: not classified, or an older event)
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class ZeroReportVerdict:
    unit: str
    period: str
    status: str
    rule: str
    due_at: datetime | None
    submitted_at: datetime | None
    incidents: int
    escalated_to: str | None
    at: datetime


class ReadModelStore(Transaction, Protocol):
    async def count_kpi(self, event_id: uuid.UUID, department: str, day: date, fields: Sequence[str]) -> None:
        """Add one to each of the 三率 counters `fields` of the department's day, once per event."""
        ...

    async def assigned_on(self, petition_id: str, department: str, day: date) -> None:
        """Remember the (latest) day `department` was given the petition."""
        ...

    async def assignment_day(self, petition_id: str, department: str) -> date | None: ...

    """Named writes of the read model (one transaction)."""

    async def petition_exists(self, petition_id: str) -> bool: ...

    async def add_timeline(self, petition_id: str, at: datetime, event: str, detail: dict[str, Any],
                           event_id: uuid.UUID) -> None:
        """Record an entry once (a redelivery adds nothing)."""
        ...

    async def record_routing(self, routing: Routing, at: datetime) -> None:
        """Take a newer assignment (a higher number); resolved and closed petitions stay. The
        department joins those the petition was ever assigned to (who may see it)."""
        ...

    async def arm_deadline(self, petition_id: str, clock: str, due_at: datetime, department_code: str,
                           at: datetime) -> None: ...

    async def set_deadline_state(self, petition_id: str, clock: str, due_at: datetime, state: str,
                                 at: datetime) -> None:
        """The state of the clock with that deadline (a moved clock's old deadline changes nothing)."""
        ...

    async def stop_deadline(self, petition_id: str, clock: str, due_at: datetime, at: datetime) -> None:
        """Stopped; a breached clock stays visibly breached (``breached_stopped``)."""
        ...

    async def move_deadline(self, petition_id: str, clock: str, due_at: datetime, state: str | None,
                            at: datetime) -> None:
        """A new deadline (pause, resume, extension); `state` None: running again if the new
        deadline lifts a breach, else unchanged."""
        ...

    async def open_supervision(self, order: SupervisionOrder) -> None: ...

    async def close_supervisions(self, ids: list[uuid.UUID], closed_by: str, at: datetime, note: str) -> None: ...

    async def close_report_supervisions(self, unit: str, period: str, at: datetime) -> None:
        """Every open 督办 about the unit's period (for an event from before it named them)."""
        ...

    async def mark_overdue(self, supervision_id: uuid.UUID, at: datetime) -> None: ...

    async def record_zero_report(self, verdict: ZeroReportVerdict) -> None: ...

    async def record_alert(self, alert: AlertRow) -> None:
        """Keep the alert's highest version: an equal or older one changes nothing."""
        ...

    async def link_incident(self, link: IncidentLinkRow) -> None:
        """Record the petition's link to the incident once (a link a person undid stays undone)."""
        ...


class PgReadModelStore(PgTransaction):
    """:class:`ReadModelStore` on PostgreSQL (schema ``intake``)."""

    __slots__ = ()

    async def count_kpi(self, event_id: uuid.UUID, department: str, day: date, fields: Sequence[str]) -> None:
        await count_kpi(self.conn, event_id, department, day, fields)

    async def assigned_on(self, petition_id: str, department: str, day: date) -> None:
        await self.conn.execute(
            "INSERT INTO intake.kpi_assignment (petition_id, department_code, day) VALUES ($1, $2, $3)"
            " ON CONFLICT (petition_id, department_code) DO UPDATE SET day = EXCLUDED.day",
            petition_id, department, day)

    async def assignment_day(self, petition_id: str, department: str) -> date | None:
        found: date | None = await self.conn.fetchval(
            "SELECT day FROM intake.kpi_assignment WHERE petition_id = $1 AND department_code = $2",
            petition_id, department)
        return found

    async def petition_exists(self, petition_id: str) -> bool:
        return bool(await self.conn.fetchval("SELECT 1 FROM intake.petition WHERE id = $1", petition_id))

    async def add_timeline(self, petition_id: str, at: datetime, event: str, detail: dict[str, Any],
                           event_id: uuid.UUID) -> None:
        await self.conn.execute(
            "INSERT INTO intake.timeline (petition_id, at, event, detail, event_id)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
            petition_id, at, event, detail, event_id,
        )

    async def record_routing(self, routing: Routing, at: datetime) -> None:
        r = routing
        await self.conn.execute(
            "INSERT INTO intake.petition_assignment (petition_id, department_code, first_assigned_at)"
            " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            r.petition_id, r.department_code, at,
        )
        await self.conn.execute(
            """UPDATE intake.petition SET status = $2, category = $3, department_code = $4,
                 department_name = $5, assignment_no = $6, jurisdiction = $7, priority = $8,
                 rule = $9, repeat_of = $10, group_petition = $11, accused_departments = $12,
                 confidence = $13, updated_at = now()
               WHERE id = $1 AND assignment_no < $6 AND status NOT IN ('resolved', 'closed', 'unreachable')""",
            r.petition_id, r.status, r.category, r.department_code, r.department_name, r.assignment_no,
            r.jurisdiction, r.priority, r.rule, r.repeat_of, r.group_petition, list(r.accused_departments),
            r.confidence,
        )

    async def arm_deadline(self, petition_id: str, clock: str, due_at: datetime, department_code: str,
                           at: datetime) -> None:
        await self.conn.execute(
            """INSERT INTO intake.deadline (petition_id, clock, due_at, state, department_code, updated_at)
               VALUES ($1, $2, $3, 'running', $4, $5)
               ON CONFLICT (petition_id, clock) DO UPDATE SET due_at = EXCLUDED.due_at,
                 state = 'running', department_code = EXCLUDED.department_code,
                 updated_at = EXCLUDED.updated_at
               WHERE intake.deadline.updated_at <= EXCLUDED.updated_at""",
            petition_id, clock, due_at, department_code, at,
        )

    async def set_deadline_state(self, petition_id: str, clock: str, due_at: datetime, state: str,
                                 at: datetime) -> None:
        await self.conn.execute(
            """UPDATE intake.deadline SET state = $4, updated_at = greatest(updated_at, $5)
               WHERE petition_id = $1 AND clock = $2 AND due_at = $3""",
            petition_id, clock, due_at, state, at,
        )

    async def stop_deadline(self, petition_id: str, clock: str, due_at: datetime, at: datetime) -> None:
        await self.conn.execute(
            """UPDATE intake.deadline SET state = CASE WHEN state = 'breached' THEN 'breached_stopped'
                 ELSE 'stopped' END, updated_at = greatest(updated_at, $4)
               WHERE petition_id = $1 AND clock = $2 AND due_at = $3""",
            petition_id, clock, due_at, at,
        )

    async def move_deadline(self, petition_id: str, clock: str, due_at: datetime, state: str | None,
                            at: datetime) -> None:
        await self.conn.execute(
            """UPDATE intake.deadline SET due_at = $3,
                 state = coalesce($4, CASE WHEN state = 'breached' AND $3 > $5 THEN 'running' ELSE state END),
                 updated_at = $5
               WHERE petition_id = $1 AND clock = $2 AND updated_at <= $5""",
            petition_id, clock, due_at, state, at,
        )

    async def open_supervision(self, order: SupervisionOrder) -> None:
        o = order
        await self.conn.execute(
            """INSERT INTO intake.supervision (id, petition_id, clock, step, level, target_unit, supervised_unit,
                 rule, opened_at, due_at, subject, report_unit, report_period, parent_id)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) ON CONFLICT (id) DO NOTHING""",
            o.id, o.petition_id, o.clock, o.step, o.level, o.target_unit, o.supervised_unit, o.rule, o.opened_at,
            o.due_at, o.subject, o.report_unit, o.report_period, o.parent_id,
        )

    async def close_supervisions(self, ids: list[uuid.UUID], closed_by: str, at: datetime, note: str) -> None:
        await self.conn.execute(
            """UPDATE intake.supervision SET state = 'closed', closed_by = $2, closed_at = $3, close_note = $4
               WHERE id = ANY($1::uuid[]) AND state = 'open'""",
            ids, closed_by, at, note,
        )

    async def close_report_supervisions(self, unit: str, period: str, at: datetime) -> None:
        await self.conn.execute(
            """UPDATE intake.supervision SET state = 'closed', closed_by = $1, closed_at = $3,
                 close_note = 'report received'
               WHERE subject = 'zero_report' AND report_unit = $1 AND report_period = $2 AND state = 'open'""",
            unit, period, at,
        )

    async def mark_overdue(self, supervision_id: uuid.UUID, at: datetime) -> None:
        await self.conn.execute("UPDATE intake.supervision SET overdue_at = $2 WHERE id = $1 AND overdue_at IS NULL",
                                supervision_id, at)

    async def record_zero_report(self, verdict: ZeroReportVerdict) -> None:
        v = verdict
        await self.conn.execute(
            """INSERT INTO intake.zero_report_status (unit, period, status, rule, due_at, submitted_at,
                 incidents, escalated_to, updated_at)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
               ON CONFLICT (unit, period) DO UPDATE SET status = EXCLUDED.status, rule = EXCLUDED.rule,
                 due_at = coalesce(EXCLUDED.due_at, zero_report_status.due_at),
                 submitted_at = coalesce(EXCLUDED.submitted_at, zero_report_status.submitted_at),
                 incidents = EXCLUDED.incidents,
                 escalated_to = coalesce(EXCLUDED.escalated_to, zero_report_status.escalated_to),
                 updated_at = EXCLUDED.updated_at
               WHERE zero_report_status.updated_at <= EXCLUDED.updated_at""",
            v.unit, v.period, v.status, v.rule, v.due_at, v.submitted_at, v.incidents, v.escalated_to, v.at,
        )

    async def record_alert(self, alert: AlertRow) -> None:
        a = alert
        await self.conn.execute(
            """INSERT INTO intake.alert (alert_id, version, state, kind, area, area_name, area_level, category,
                 time_window, window_start, count, expected, z, petition_ids, opened_at, closed_at, level,
                 risk_reasons, department_code, updated_at)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)
               ON CONFLICT (alert_id) DO UPDATE SET version = EXCLUDED.version, state = EXCLUDED.state,
                 kind = EXCLUDED.kind, area = EXCLUDED.area, area_name = EXCLUDED.area_name,
                 area_level = EXCLUDED.area_level, category = EXCLUDED.category,
                 time_window = EXCLUDED.time_window, window_start = EXCLUDED.window_start,
                 count = EXCLUDED.count, expected = EXCLUDED.expected, z = EXCLUDED.z,
                 petition_ids = EXCLUDED.petition_ids, opened_at = EXCLUDED.opened_at,
                 closed_at = EXCLUDED.closed_at, level = EXCLUDED.level, risk_reasons = EXCLUDED.risk_reasons,
                 department_code = EXCLUDED.department_code, updated_at = EXCLUDED.updated_at
               WHERE intake.alert.version < EXCLUDED.version""",
            a.alert_id, a.version, a.state, a.kind, a.area, a.area_name, a.area_level, a.category, a.time_window,
            a.window_start, a.count, a.expected, a.z, list(a.petition_ids), a.opened_at, a.closed_at, a.level,
            list(a.risk_reasons), a.department_code, a.updated_at,
        )

    async def link_incident(self, link: IncidentLinkRow) -> None:
        k = link
        await self.conn.execute(
            """INSERT INTO intake.incident_link (petition_id, incident_id, alert_id, department_code, assignment_no,
                 similarity, linked_at) VALUES ($1,$2,$3,$4,$5,$6,$7)
               ON CONFLICT (petition_id, incident_id) DO NOTHING""",
            k.petition_id, k.incident_id, k.alert_id, k.department_code, k.assignment_no, k.similarity, k.linked_at,
        )
