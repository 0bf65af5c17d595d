"""Read-model handlers for the escalation ladder, 督办, clock moves and zero reports.

Merged into intake's projector (:func:`services.intake.projector.handlers`), which consumes
``petition.routed``, ``petition.sla`` and ``zero_report.status``. Every handler is
idempotent (upserts guarded by the event's time; timeline rows keyed by event id; 督办 rows
keyed by their id). 督办 have a subject: a petition's clock, or a unit's missing zero report
(no petition; closed when the unit reports for the period). A lapsed 督办 gets ``overdue_at``
and the one escalated above it a ``parent_id``.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from services.intake.projector import add_timeline, require_petition
from shared.consumer import BatchResult, RawMessage
from shared.events.escalation import (
    SlaClockPaused,
    SlaClockResumed,
    SlaDeadlineExtended,
    SlaEscalated,
    SupervisionClosed,
    SupervisionOverdue,
    ZeroReportStatus,
    ZeroReportSupervisionOverdue,
)


async def _move_deadline(conn: asyncpg.Connection, e: Any, state: str) -> None:
    await conn.execute(
        """UPDATE intake.deadline SET due_at = $3, state = $4, updated_at = $5
           WHERE petition_id = $1 AND clock = $2 AND updated_at <= $5""",
        e.petition_id, e.clock, e.due_at, state, e.occurred_at,
    )


async def on_escalated(conn: asyncpg.Connection, e: SlaEscalated, raw: RawMessage, r: BatchResult) -> None:
    await require_petition(conn, e.petition_id)
    await conn.execute(
        """INSERT INTO intake.supervision (id, petition_id, clock, step, level, target_unit,
             supervised_unit, rule, opened_at, due_at)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (id) DO NOTHING""",
        e.supervision_id, e.petition_id, e.clock, e.step, e.level, e.target_unit,
        e.department_code, e.rule, e.occurred_at, e.supervision_due_at,
    )
    await add_timeline(conn, e, "escalated", {
        "clock": e.clock, "step": e.step, "level": e.level, "target_unit": e.target_unit,
        "rule": e.rule, "supervision_id": str(e.supervision_id),
        "supervision_due_at": e.supervision_due_at.isoformat(),
    })


async def on_supervision_closed(
    conn: asyncpg.Connection, e: SupervisionClosed, raw: RawMessage, r: BatchResult
) -> None:
    await require_petition(conn, e.petition_id)
    await conn.execute(
        """UPDATE intake.supervision SET state = 'closed', closed_by = $2, closed_at = $3, close_note = $4
           WHERE id = $1""",
        e.supervision_id, e.closed_by, e.occurred_at, e.note,
    )
    await add_timeline(conn, e, "supervision_closed", {
        "supervision_id": str(e.supervision_id), "closed_by": e.closed_by, "target_unit": e.target_unit,
    })


async def _open_escalated(conn: asyncpg.Connection, e: Any, parent: Any) -> None:
    """Mark the lapsed 督办 and open the one escalated above it (same subject)."""
    await conn.execute("UPDATE intake.supervision SET overdue_at = $2 WHERE id = $1 AND overdue_at IS NULL",
                       e.supervision_id, e.occurred_at)
    if e.escalated_supervision_id is None or e.escalated_to is None or parent is None:
        return
    await conn.execute(
        """INSERT INTO intake.supervision (id, petition_id, clock, step, level, target_unit, supervised_unit,
             rule, opened_at, due_at, subject, report_unit, report_period, parent_id)
           VALUES ($1,$2,$3,$4,'overdue',$5,$6,$7,$8,$9,$10,$11,$12,$13) ON CONFLICT (id) DO NOTHING""",
        e.escalated_supervision_id, parent["petition_id"], parent["clock"], parent["step"], e.escalated_to,
        e.target_unit, e.rule, e.occurred_at, e.escalated_due_at, parent["subject"], parent["report_unit"],
        parent["report_period"], e.supervision_id,
    )


async def _parent(conn: asyncpg.Connection, supervision_id: Any) -> Any:
    return await conn.fetchrow(
        "SELECT petition_id, clock, step, subject, report_unit, report_period FROM intake.supervision WHERE id = $1",
        supervision_id,
    )


async def on_supervision_overdue(
    conn: asyncpg.Connection, e: SupervisionOverdue, raw: RawMessage, r: BatchResult
) -> None:
    await require_petition(conn, e.petition_id)
    parent = await _parent(conn, e.supervision_id)
    if parent is None:  # the 督办 itself was never projected: rebuild what the event says
        parent = {"petition_id": e.petition_id, "clock": e.clock, "step": 1, "subject": "petition",
                  "report_unit": None, "report_period": None}
    await _open_escalated(conn, e, parent)
    await add_timeline(conn, e, "supervision_overdue", {
        "supervision_id": str(e.supervision_id), "clock": e.clock, "level": e.level,
        "target_unit": e.target_unit, "escalated_to": e.escalated_to, "rule": e.rule,
        "escalated_supervision_id": str(e.escalated_supervision_id) if e.escalated_supervision_id else None,
    })


async def on_zero_report_supervision_overdue(
    conn: asyncpg.Connection, e: ZeroReportSupervisionOverdue, raw: RawMessage, r: BatchResult
) -> None:
    parent = await _parent(conn, e.supervision_id)
    if parent is None:
        parent = {"petition_id": None, "clock": None, "step": 1, "subject": "zero_report",
                  "report_unit": e.unit, "report_period": e.period}
    await _open_escalated(conn, e, parent)


async def on_paused(conn: asyncpg.Connection, e: SlaClockPaused, raw: RawMessage, r: BatchResult) -> None:
    await require_petition(conn, e.petition_id)
    await _move_deadline(conn, e, "paused")
    await add_timeline(conn, e, "clock_paused", {"clock": e.clock, "remaining_seconds": e.remaining_seconds})


async def on_resumed(conn: asyncpg.Connection, e: SlaClockResumed, raw: RawMessage, r: BatchResult) -> None:
    await require_petition(conn, e.petition_id)
    await _move_deadline(conn, e, "running")
    await add_timeline(conn, e, "clock_resumed", {"clock": e.clock, "due_at": e.due_at.isoformat(),
                                                "paused_seconds": e.paused_seconds})


async def on_extended(conn: asyncpg.Connection, e: SlaDeadlineExtended, raw: RawMessage, r: BatchResult) -> None:
    await require_petition(conn, e.petition_id)
    await conn.execute(
        """UPDATE intake.deadline SET due_at = $3,
             state = CASE WHEN state = 'breached' AND $3 > $4 THEN 'running' ELSE state END,
             updated_at = $4
           WHERE petition_id = $1 AND clock = $2 AND updated_at <= $4""",
        e.petition_id, e.clock, e.due_at, e.occurred_at,
    )
    await add_timeline(conn, e, "deadline_extended", {
        "clock": e.clock, "days": e.days, "approved_by": e.approved_by,
        "previous_due_at": e.previous_due_at.isoformat(), "due_at": e.due_at.isoformat(), "rule": e.rule,
    })


async def on_zero_report_status(
    conn: asyncpg.Connection, e: ZeroReportStatus, raw: RawMessage, r: BatchResult
) -> None:
    await conn.execute(
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
        e.unit, e.period, e.status, e.rule, e.due_at, e.submitted_at, e.incidents, e.escalated_to,
        e.occurred_at,
    )
    if e.supervision_id is not None and e.escalated_to and e.supervision_due_at is not None:
        # a missing report opened a 督办 for the supervising unit
        await conn.execute(
            """INSERT INTO intake.supervision (id, petition_id, clock, step, level, target_unit,
                 supervised_unit, rule, opened_at, due_at, subject, report_unit, report_period)
               VALUES ($1, NULL, NULL, 1, 'zero_report', $2, $3, $4, $5, $6, 'zero_report', $3, $7)
               ON CONFLICT (id) DO NOTHING""",
            e.supervision_id, e.escalated_to, e.unit, f"zero_report:{e.rule}", e.occurred_at,
            e.supervision_due_at, e.period,
        )
    if e.status in ("on_time", "late") and e.submitted_at is not None:
        # the report is in: every 督办 about the period closes (escalation closed them too)
        await conn.execute(
            """UPDATE intake.supervision SET state = 'closed', closed_by = $1, closed_at = $3,
                 close_note = 'report received'
               WHERE subject = 'zero_report' AND report_unit = $1 AND report_period = $2 AND state = 'open'""",
            e.unit, e.period, e.submitted_at,
        )


HANDLERS: dict[str, Any] = {
    "sla.escalated": on_escalated,
    "sla.supervision_closed": on_supervision_closed,
    "sla.supervision_overdue": on_supervision_overdue,
    "sla.clock_paused": on_paused,
    "sla.clock_resumed": on_resumed,
    "sla.deadline_extended": on_extended,
    "zero_report.status": on_zero_report_status,
    "zero_report.supervision_overdue": on_zero_report_supervision_overdue,
}
