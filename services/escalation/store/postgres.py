"""Every statement of the escalation service against PostgreSQL (schema ``escalation``).

The operations of :class:`services.escalation.store.EscalationStore` on one transaction's
connection. Set-based where it was measured (``bench/timers_bench.py``, NOTES.md): the due
timers and their clocks are claimed in one statement with ``FOR UPDATE OF t, c SKIP
LOCKED`` (partial index ``timer_pending``), and a firing marks its timers, warns and
breaches its clocks, plans its ladder timers and writes its outbox rows with one ``unnest``
statement each.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from services.escalation.domain.policy import PlannedTimer
from services.escalation.domain.rates import ClockTally
from services.escalation.rows import (
    ArmClock,
    ClockHead,
    ClockKey,
    ClockRow,
    ClosedSupervision,
    DueTimer,
    ExtendClock,
    FiredTimer,
    MissingPeriod,
    NextStep,
    OpenClockCount,
    OpenedSupervision,
    PauseClock,
    ReassignClock,
    ReceivedReport,
    RecordedReport,
    RequestExtension,
    ResumeClock,
    StopClock,
    SupervisionRow,
    Warned,
)
from shared.messages import OutboxMessage
from shared.store import PgTransaction

__all__ = ["PgEscalationStore"]


class PgEscalationStore(PgTransaction):
    """:class:`~services.escalation.store.EscalationStore` on an asyncpg connection."""

    __slots__ = ()

    # --- a petition's clocks ---------------------------------------------------------------

    async def lock_clocks(self, petition_id: str) -> dict[str, ClockHead]:
        rows = await self.conn.fetch(
            "SELECT clock, assignment_no, state FROM escalation.clock WHERE petition_id = $1 FOR UPDATE",
            petition_id,
        )
        return {r["clock"]: ClockHead(r["clock"], r["assignment_no"], r["state"]) for r in rows}

    async def lock_open_clocks(self, petition_id: str) -> list[ClockRow]:
        rows = await self.conn.fetch(
            """SELECT petition_id, clock, policy, department_code, started_at, due_at, state, paused_at,
                      remaining_seconds, paused_seconds, extended_days, extension_requested_days, warned_fractions
               FROM escalation.clock WHERE petition_id = $1 AND state <> 'stopped'
               ORDER BY clock FOR UPDATE""",
            petition_id,
        )
        return [ClockRow(**{**r, "warned_fractions": tuple(r["warned_fractions"] or ())}) for r in rows]

    async def arm_clock(self, change: ArmClock) -> None:
        c = change
        await self.conn.execute(
            """INSERT INTO escalation.clock (petition_id, clock, policy, department_code,
                 assignment_no, started_at, due_at, state, calendar_missing, jurisdiction, accused)
               VALUES ($1,$2,$3,$4,$5,$6,$7,'running',$8,$9,$10)
               ON CONFLICT (petition_id, clock) DO UPDATE SET policy = EXCLUDED.policy,
                 department_code = EXCLUDED.department_code, assignment_no = EXCLUDED.assignment_no,
                 started_at = EXCLUDED.started_at, due_at = EXCLUDED.due_at, state = 'running',
                 calendar_missing = EXCLUDED.calendar_missing, stopped_at = NULL,
                 stop_reason = NULL, paused_at = NULL, remaining_seconds = NULL, paused_seconds = 0,
                 extended_days = NULL, extension_requested_days = NULL, warned_fractions = '{}',
                 jurisdiction = EXCLUDED.jurisdiction, accused = EXCLUDED.accused, updated_at = now()""",
            c.petition_id, c.clock, c.policy, c.department_code, c.assignment_no, c.started_at, c.due_at,
            c.calendar_missing, c.jurisdiction, list(c.accused),
        )

    async def reassign_clock(self, change: ReassignClock) -> None:
        c = change
        await self.conn.execute(
            "UPDATE escalation.clock SET department_code = $3, assignment_no = $4,"
            " jurisdiction = coalesce($5, jurisdiction), updated_at = now()"
            " WHERE petition_id = $1 AND clock = $2",
            c.petition_id, c.clock, c.department_code, c.assignment_no, c.jurisdiction,
        )

    async def stop_clock(self, change: StopClock) -> None:
        c = change
        await self.conn.execute(
            "UPDATE escalation.clock SET state = 'stopped', stopped_at = $3, stop_reason = $4,"
            " updated_at = now() WHERE petition_id = $1 AND clock = $2",
            c.petition_id, c.clock, c.stopped_at, c.reason,
        )

    async def pause_clock(self, change: PauseClock) -> None:
        c = change
        await self.conn.execute(
            "UPDATE escalation.clock SET state = 'paused', paused_at = $3, remaining_seconds = $4,"
            " updated_at = now() WHERE petition_id = $1 AND clock = $2",
            c.petition_id, c.clock, c.paused_at, c.remaining_seconds,
        )

    async def resume_clock(self, change: ResumeClock) -> None:
        c = change
        await self.conn.execute(
            "UPDATE escalation.clock SET state = $3, due_at = $4, paused_at = NULL, remaining_seconds = NULL,"
            " paused_seconds = $5, updated_at = now() WHERE petition_id = $1 AND clock = $2",
            c.petition_id, c.clock, c.state, c.due_at, c.paused_seconds,
        )

    async def request_extension(self, change: RequestExtension) -> None:
        await self.conn.execute(
            "UPDATE escalation.clock SET extension_requested_days = $3, updated_at = now()"
            " WHERE petition_id = $1 AND clock = $2",
            change.petition_id, change.clock, change.days,
        )

    async def extend_clock(self, change: ExtendClock) -> None:
        c = change
        await self.conn.execute(
            "UPDATE escalation.clock SET due_at = $3, extended_days = $4, state = $5,"
            " remaining_seconds = coalesce($6, remaining_seconds), updated_at = now()"
            " WHERE petition_id = $1 AND clock = $2",
            c.petition_id, c.clock, c.due_at, c.extended_days, c.state, c.remaining_seconds,
        )

    async def cancel_timers(self, petition_id: str, clock: str) -> None:
        await self.conn.execute(
            "UPDATE escalation.timer SET state = 'cancelled' WHERE petition_id = $1 AND clock = $2"
            " AND state = 'pending'",
            petition_id, clock,
        )

    async def add_timers(
        self, petition_id: str, clock: str, clock_due_at: datetime, timers: Sequence[PlannedTimer]
    ) -> None:
        await self.conn.executemany(
            """INSERT INTO escalation.timer (petition_id, clock, kind, fraction, clock_due_at, fire_at)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            [(petition_id, clock, t.kind, t.fraction, clock_due_at, t.fire_at) for t in timers],
        )

    async def close_supervision(
        self, supervision_id: uuid.UUID, petition_id: str, *, closed_at: datetime, closed_by: str, note: str
    ) -> ClosedSupervision | None:
        row = await self.conn.fetchrow(
            "UPDATE escalation.supervision SET state = 'closed', closed_at = $3, closed_by = $4, close_note = $5"
            " WHERE id = $1 AND petition_id = $2 AND state = 'open' AND supervised_unit <> $4"
            " RETURNING target_unit, level",
            supervision_id, petition_id, closed_at, closed_by, note,
        )
        return ClosedSupervision(row["target_unit"], row["level"]) if row is not None else None

    # --- zero reports ----------------------------------------------------------------------

    async def record_report(self, report: ReceivedReport) -> RecordedReport | None:
        r = report
        row = await self.conn.fetchrow(
            """INSERT INTO escalation.zero_report_period (unit, period, status, rule, due_at, closes_at,
                 submitted_at, incidents, submission_id)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
               ON CONFLICT (unit, period) DO UPDATE SET status = EXCLUDED.status, rule = EXCLUDED.rule,
                 submitted_at = EXCLUDED.submitted_at, incidents = EXCLUDED.incidents,
                 submission_id = EXCLUDED.submission_id, updated_at = now()
               WHERE zero_report_period.submitted_at IS NULL
               RETURNING escalated_to""",
            r.unit, r.period, r.status, r.rule, r.due_at, r.closes_at, r.submitted_at, r.incidents, r.submission_id,
        )
        return RecordedReport(row["escalated_to"]) if row is not None else None

    async def close_report_supervisions(self, unit: str, period: str, closed_at: datetime) -> list[uuid.UUID]:
        rows = await self.conn.fetch(
            "UPDATE escalation.supervision SET state = 'closed', closed_at = $3, closed_by = $1,"
            " close_note = 'report received' WHERE subject = 'zero_report' AND report_unit = $1"
            " AND report_period = $2 AND state = 'open' RETURNING id",
            unit, period, closed_at,
        )
        return [r["id"] for r in rows]

    async def claim_report_cursor(self, unit: str, start: datetime) -> datetime | None:
        await self.conn.execute(
            "INSERT INTO escalation.zero_report_cursor (unit, evaluated_until) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING",
            unit, start,
        )
        after: datetime | None = await self.conn.fetchval(
            "SELECT evaluated_until FROM escalation.zero_report_cursor WHERE unit = $1 FOR UPDATE SKIP LOCKED",
            unit,
        )
        return after

    async def mark_period_missing(self, period: MissingPeriod) -> bool:
        p = period
        inserted = await self.conn.fetchval(
            """INSERT INTO escalation.zero_report_period (unit, period, status, rule, due_at,
                 closes_at, escalated_to) VALUES ($1,$2,'missing',$3,$4,$5,$6)
               ON CONFLICT (unit, period) DO NOTHING RETURNING 1""",
            p.unit, p.period, p.rule, p.due_at, p.closes_at, p.escalated_to,
        )
        return inserted is not None

    async def advance_report_cursor(self, unit: str, until: datetime) -> None:
        await self.conn.execute(
            "UPDATE escalation.zero_report_cursor SET evaluated_until = $2 WHERE unit = $1", unit, until
        )

    # --- timers ----------------------------------------------------------------------------

    async def claim_due_timers(self, now: datetime, limit: int) -> list[DueTimer]:
        rows = await self.conn.fetch(
            """SELECT t.id, t.petition_id, t.clock, t.kind, t.fraction, t.step, t.clock_due_at,
                      t.fire_at, c.department_code, c.due_at AS current_due, c.state AS clock_state,
                      CASE WHEN t.kind <> 'warning' THEN c.jurisdiction END AS jurisdiction,
                      CASE WHEN t.kind <> 'warning' THEN c.accused END AS accused
               FROM escalation.timer t
               JOIN escalation.clock c ON c.petition_id = t.petition_id AND c.clock = t.clock
               WHERE t.state = 'pending' AND t.fire_at <= $1
               ORDER BY t.fire_at LIMIT $2 FOR UPDATE OF t, c SKIP LOCKED""",
            now, limit,
        )
        # the accused units as a tuple (none loaded for warnings)
        return [DueTimer(**{**r, "accused": tuple(r["accused"] or ())}) for r in rows]

    async def count_open_supervisions(self, petition_ids: Sequence[str]) -> dict[str, int]:
        rows = await self.conn.fetch(
            "SELECT petition_id, count(*) AS n FROM escalation.supervision"
            " WHERE petition_id = ANY($1::text[]) AND state = 'open' GROUP BY petition_id",
            list(petition_ids),
        )
        return {r["petition_id"]: r["n"] for r in rows}

    async def mark_timers_fired(self, fired: Sequence[FiredTimer], *, at: datetime, fired_by: str) -> None:
        await self.conn.execute(
            """UPDATE escalation.timer t SET state = 'fired', fired_at = $2, lateness_seconds = u.late,
                 fired_by = $3, outcome = u.outcome, missed_steps = u.missed
               FROM unnest($1::bigint[], $4::float8[], $5::text[], $6::int[]) AS u(id, late, outcome, missed)
               WHERE t.id = u.id""",
            [f.id for f in fired], at, fired_by, [f.lateness_seconds for f in fired], [f.outcome for f in fired],
            [f.missed_steps for f in fired],
        )

    async def mark_warned(self, warned: Sequence[Warned]) -> None:
        if not warned:
            return
        await self.conn.execute(
            """UPDATE escalation.clock c SET state = CASE WHEN c.state = 'running' THEN 'warned' ELSE c.state END,
                 warned_fractions = c.warned_fractions || string_to_array(u.f, ',')::float8[],
                 updated_at = now()
               FROM unnest($1::text[], $2::text[], $3::text[]) AS u(p, k, f)
               WHERE c.petition_id = u.p AND c.clock = u.k""",
            [w.petition_id for w in warned], [w.clock for w in warned],
            [",".join(map(str, w.fractions)) for w in warned],
        )

    async def mark_breached(self, clocks: Sequence[ClockKey]) -> None:
        if not clocks:
            return
        await self.conn.execute(
            """UPDATE escalation.clock c SET state = 'breached', updated_at = now()
               FROM unnest($1::text[], $2::text[]) AS u(p, k)
               WHERE c.petition_id = u.p AND c.clock = u.k AND c.state IN ('running', 'warned')""",
            [b.petition_id for b in clocks], [b.clock for b in clocks],
        )

    async def add_ladder_timers(self, steps: Sequence[NextStep]) -> None:
        if not steps:
            return
        await self.conn.execute(
            """INSERT INTO escalation.timer (petition_id, clock, kind, fraction, step, clock_due_at, fire_at)
               SELECT p, k, 'escalate', 1.0, s, d, f
               FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::timestamptz[])
                 AS u(p, k, s, d, f)""",
            [s.petition_id for s in steps], [s.clock for s in steps], [s.step for s in steps],
            [s.clock_due_at for s in steps], [s.fire_at for s in steps],
        )

    async def open_supervisions(self, supervisions: Sequence[OpenedSupervision]) -> None:
        if not supervisions:
            return
        await self.conn.executemany(
            """INSERT INTO escalation.supervision (id, petition_id, clock, step, level, target_unit,
                 supervised_unit, rule, opened_at, due_at, subject, report_unit, report_period, parent_id,
                 missed_steps)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) ON CONFLICT (id) DO NOTHING""",
            [(o.id, o.petition_id, o.clock, o.step, o.level, o.target_unit, o.supervised_unit, o.rule, o.opened_at,
              o.due_at, o.subject, o.report_unit, o.report_period, o.parent_id, s.missed_steps)
             for s in supervisions for o in (s.order,)],
        )

    async def add_fired_events(self, messages: Sequence[OutboxMessage]) -> None:
        if not messages:
            return
        await self.conn.execute(
            "INSERT INTO escalation.outbox (topic, key, value)"
            " SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[])",
            [m.topic for m in messages], [m.key for m in messages], [m.value for m in messages],
        )

    async def next_timer_at(self) -> datetime | None:
        at: datetime | None = await self.conn.fetchval(
            "SELECT min(fire_at) FROM escalation.timer WHERE state = 'pending'"
        )
        return at

    # --- lapsed 督办 ------------------------------------------------------------------------

    async def claim_overdue_supervisions(self, now: datetime, limit: int) -> list[SupervisionRow]:
        rows = await self.conn.fetch(
            """SELECT id, subject, petition_id, clock, step, level, target_unit, due_at, report_unit, report_period
               FROM escalation.supervision
               WHERE state = 'open' AND overdue_at IS NULL AND due_at <= $1
               ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
            now, limit,
        )
        return [SupervisionRow(**r) for r in rows]

    async def mark_supervisions_overdue(self, ids: Sequence[uuid.UUID], at: datetime) -> None:
        await self.conn.execute(
            "UPDATE escalation.supervision SET overdue_at = $2 WHERE id = ANY($1::uuid[])", list(ids), at
        )

    # --- gauges ----------------------------------------------------------------------------

    async def open_clock_counts(self) -> list[OpenClockCount]:
        rows = await self.conn.fetch(
            "SELECT department_code, clock, state, count(*) AS n FROM escalation.clock"
            " WHERE state <> 'stopped' GROUP BY department_code, clock, state"
        )
        return [OpenClockCount(r["department_code"], r["clock"], r["state"], r["n"]) for r in rows]

    async def open_supervision_counts(self) -> dict[str, int]:
        rows = await self.conn.fetch(
            "SELECT level, count(*) AS n FROM escalation.supervision WHERE state = 'open' GROUP BY level"
        )
        return {r["level"]: r["n"] for r in rows}

    async def rate_tallies(
        self, *, now: datetime, since: datetime, clock: str, reasons: Sequence[str]
    ) -> list[ClockTally]:
        rows = await self.conn.fetch(
            """SELECT department_code,
                 count(*) FILTER (WHERE state = 'stopped' AND stop_reason = ANY($4::text[])
                                    AND stopped_at <= due_at) AS met,
                 count(*) FILTER (WHERE state = 'stopped' OR due_at <= $1) AS decided
               FROM escalation.clock WHERE started_at >= $2 AND clock = $3
               GROUP BY department_code""",
            now, since, clock, list(reasons),
        )
        return [ClockTally(r["department_code"], clock, r["met"], r["decided"]) for r in rows]

    async def units_missing_report(self, units: Sequence[str], now: datetime) -> int:
        n: int | None = await self.conn.fetchval(
            """SELECT count(*) FROM (
                 SELECT DISTINCT ON (unit) unit, status FROM escalation.zero_report_period
                 WHERE unit = ANY($1::text[]) AND due_at <= $2 ORDER BY unit, due_at DESC
               ) latest WHERE status = 'missing'""",
            list(units), now,
        )
        return n or 0
