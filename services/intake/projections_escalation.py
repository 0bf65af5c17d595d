"""Read-model handlers for the escalation ladder, 督办, clock moves and zero reports.

Merged into intake's projector (:func:`services.intake.projector.handlers`), which consumes
``petition.routed``, ``petition.sla`` and ``zero_report.status``. Every handler is
idempotent (upserts guarded by the event's time; timeline rows keyed by event id).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.consumer import BadInput, BatchResult, RawMessage
from shared.events.escalation import (
    SlaClockPaused,
    SlaClockResumed,
    SlaDeadlineExtended,
    SlaEscalated,
    SupervisionClosed,
    ZeroReportStatus,
)


async def _timeline(conn: asyncpg.Connection, e: Any, name: str, detail: dict[str, Any]) -> None:
    await conn.execute(
        "INSERT INTO intake.timeline (petition_id, at, event, detail, event_id)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
        e.petition_id, e.occurred_at, name, detail, e.event_id,
    )


async def _known(conn: asyncpg.Connection, petition_id: str) -> None:
    if not await conn.fetchval("SELECT 1 FROM intake.petition WHERE id = $1", petition_id):
        raise BadInput(f"event for unknown petition {petition_id}", code="unknown_petition")


async def _move_deadline(conn: asyncpg.Connection, e: Any, state: str) -> None:
    await conn.execute(
        """UPDATE intake.deadline SET due_at = $3, state = $4, updated_at = $5
           WHERE petition_id = $1 AND clock = $2 AND updated_at <= $5""",
        e.petition_id, e.clock, e.due_at, state, e.occurred_at,
    )


async def on_escalated(conn: asyncpg.Connection, e: SlaEscalated, raw: RawMessage, r: BatchResult) -> None:
    await _known(conn, e.petition_id)
    await conn.execute(
        """INSERT INTO intake.supervision (id, petition_id, clock, step, level, target_unit,
             supervised_unit, rule, opened_at, due_at)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (id) DO NOTHING""",
        e.supervision_id, e.petition_id, e.clock, e.step, e.level, e.target_unit,
        e.department_code, e.rule, e.occurred_at, e.supervision_due_at,
    )
    await _timeline(conn, e, "escalated", {
        "clock": e.clock, "step": e.step, "level": e.level, "target_unit": e.target_unit,
        "rule": e.rule, "supervision_id": str(e.supervision_id),
        "supervision_due_at": e.supervision_due_at.isoformat(),
    })


async def on_supervision_closed(
    conn: asyncpg.Connection, e: SupervisionClosed, raw: RawMessage, r: BatchResult
) -> None:
    await _known(conn, e.petition_id)
    await conn.execute(
        """UPDATE intake.supervision SET state = 'closed', closed_by = $2, closed_at = $3, close_note = $4
           WHERE id = $1""",
        e.supervision_id, e.closed_by, e.occurred_at, e.note,
    )
    await _timeline(conn, e, "supervision_closed", {
        "supervision_id": str(e.supervision_id), "closed_by": e.closed_by, "target_unit": e.target_unit,
    })


async def on_paused(conn: asyncpg.Connection, e: SlaClockPaused, raw: RawMessage, r: BatchResult) -> None:
    await _known(conn, e.petition_id)
    await _move_deadline(conn, e, "paused")
    await _timeline(conn, e, "clock_paused", {"clock": e.clock, "remaining_seconds": e.remaining_seconds})


async def on_resumed(conn: asyncpg.Connection, e: SlaClockResumed, raw: RawMessage, r: BatchResult) -> None:
    await _known(conn, e.petition_id)
    await _move_deadline(conn, e, "running")
    await _timeline(conn, e, "clock_resumed", {"clock": e.clock, "due_at": e.due_at.isoformat(),
                                                "paused_seconds": e.paused_seconds})


async def on_extended(conn: asyncpg.Connection, e: SlaDeadlineExtended, raw: RawMessage, r: BatchResult) -> None:
    await _known(conn, e.petition_id)
    await conn.execute(
        """UPDATE intake.deadline SET due_at = $3,
             state = CASE WHEN state = 'breached' AND $3 > $4 THEN 'running' ELSE state END,
             updated_at = $4
           WHERE petition_id = $1 AND clock = $2 AND updated_at <= $4""",
        e.petition_id, e.clock, e.due_at, e.occurred_at,
    )
    await _timeline(conn, e, "deadline_extended", {
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


HANDLERS: dict[str, Any] = {
    "sla.escalated": on_escalated,
    "sla.supervision_closed": on_supervision_closed,
    "sla.clock_paused": on_paused,
    "sla.clock_resumed": on_resumed,
    "sla.deadline_extended": on_extended,
    "zero_report.status": on_zero_report_status,
}
