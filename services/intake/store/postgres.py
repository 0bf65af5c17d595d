"""Intake's store on PostgreSQL (schema ``intake``): every statement of its commands and
queries, by name (:class:`PgIntakeStore`, a :class:`~services.intake.store.IntakeStore`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

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
from shared.store import PgTransaction

__all__ = ["PgIntakeStore"]


_PETITION = """SELECT id, tracking_code, status, category, department_code, department_name, assignment_no,
    jurisdiction, priority, rule, repeat_of, group_petition, accused_departments, persons, channel, kind,
    received_at, extension_state, status_before_pause, title, content, location, submitted_by,
    follow_up_attempts, reopen_count, resolved_by,
    ARRAY(SELECT department_code FROM intake.petition_assignment a WHERE a.petition_id = p.id) AS assigned
  FROM intake.petition p WHERE id = $1 OR tracking_code = $1"""
_PETITION_LOCKED = """SELECT id, tracking_code, status, category, department_code, department_name, assignment_no,
    jurisdiction, priority, rule, repeat_of, group_petition, accused_departments, persons, channel, kind,
    received_at, extension_state, status_before_pause, title, content, location, submitted_by,
    follow_up_attempts, reopen_count, resolved_by,
    ARRAY(SELECT department_code FROM intake.petition_assignment a WHERE a.petition_id = p.id) AS assigned
  FROM intake.petition p WHERE id = $1 OR tracking_code = $1 FOR UPDATE"""
_SUPERVISION = """SELECT s.*, p.tracking_code, p.accused_departments FROM intake.supervision s
  LEFT JOIN intake.petition p ON p.id = s.petition_id WHERE s.id = $1"""
_SUPERVISION_LOCKED = """SELECT s.*, p.tracking_code, p.accused_departments FROM intake.supervision s
  LEFT JOIN intake.petition p ON p.id = s.petition_id WHERE s.id = $1 FOR UPDATE OF s"""


def _at_risk(r: Any) -> AtRisk:
    return AtRisk(r["id"], r["tracking_code"], r["title"], r["department_code"], r["department_name"],
                  tuple(r["accused_departments"] or ()), r["clock"], r["due_at"], r["state"])


def _supervision(r: Any) -> SupervisionRow:
    return SupervisionRow(
        r["id"], r["petition_id"], r["tracking_code"], r["clock"], r["step"], r["level"], r["target_unit"],
        r["supervised_unit"], r["rule"], r["opened_at"], r["due_at"], r["overdue_at"], r["subject"],
        r["report_unit"], r["report_period"], r["parent_id"], r["state"], r["close_requested_by"],
        r["closed_by"], r["closed_at"], tuple(r["accused_departments"] or ()),
    )


class PgIntakeStore(PgTransaction):
    """:class:`IntakeStore` on PostgreSQL (schema ``intake``)."""

    __slots__ = ()

    async def insert_petition(self, row: NewPetitionRow) -> None:
        await self.conn.execute(
            """INSERT INTO intake.petition (id, tracking_code, title, content, channel, kind,
                 location, persons, petitioner_key, received_at, submitted_at, submitted_by, submitted_by_role,
                 client, service_code, lat, long, media_url)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)""",
            row.id, row.tracking_code, row.title, row.content, row.channel, row.kind, row.location,
            row.persons, row.petitioner_key, row.received_at, row.submitted_at, row.submitted_by,
            row.submitted_by_role, row.client, row.service_code, row.lat, row.long, row.media_url,
        )

    async def insert_contact(self, petition_id: str, name: str | None, phone: str | None,
                             id_number: str | None, email: str | None = None) -> None:
        await self.conn.execute(
            "INSERT INTO intake.petitioner_contact (petition_id, name, phone, id_number, email)"
            " VALUES ($1, $2, $3, $4, $5)", petition_id, name, phone, id_number, email)

    async def add_timeline(self, petition_id: str, at: datetime, event: str, detail: dict[str, Any],
                           event_id: uuid.UUID) -> None:
        await self.conn.execute(
            "INSERT INTO intake.timeline (petition_id, at, event, detail, event_id)"
            " SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM intake.petition WHERE id = $1)",
            petition_id, at, event, detail, event_id,
        )

    async def store_idempotency_key(self, key: str, request_hash: str, petition_id: str) -> bool:
        stored = await self.conn.fetchval(
            "INSERT INTO intake.idempotency_key (key, request_hash, petition_id)"
            " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1",
            key, request_hash, petition_id,
        )
        return stored is not None

    async def idempotent_petition(self, key: str) -> IdempotentPetition | None:
        row = await self.conn.fetchrow(
            """SELECT k.request_hash, p.id, p.tracking_code, p.status FROM intake.idempotency_key k
               JOIN intake.petition p ON p.id = k.petition_id WHERE k.key = $1""",
            key,
        )
        return IdempotentPetition(row["request_hash"], row["id"], row["tracking_code"], row["status"]) if row else None

    async def petition(self, ref: str, *, for_update: bool = False) -> PetitionRow | None:
        r = await self.conn.fetchrow(_PETITION_LOCKED if for_update else _PETITION, ref)
        if r is None:
            return None
        return PetitionRow(
            r["id"], r["tracking_code"], r["status"], r["category"], r["department_code"], r["department_name"],
            r["assignment_no"], r["jurisdiction"], r["priority"], r["rule"], r["repeat_of"], r["group_petition"],
            tuple(r["accused_departments"] or ()), r["persons"], r["channel"], r["kind"], r["received_at"],
            r["extension_state"], r["status_before_pause"], r["title"], r["content"], r["location"],
            r["submitted_by"], frozenset(r["assigned"] or ()), r["follow_up_attempts"], r["reopen_count"],
            r["resolved_by"],
        )

    async def record_resolution(self, petition_id: str, at: datetime, department: str, basis: str, public: bool,
                                follow_up_due: datetime, office: str) -> None:
        await self.conn.execute(
            """UPDATE intake.petition SET resolved_at = $2, resolved_by = $3, basis = $4, public = $5,
                 follow_up_attempts = 0, updated_at = now() WHERE id = $1""",
            petition_id, at, department, basis, public)
        await self.conn.execute(
            """INSERT INTO intake.deadline (petition_id, clock, due_at, state, department_code, updated_at)
               VALUES ($1, 'follow_up', $2, 'running', $3, $4)
               ON CONFLICT (petition_id, clock) DO UPDATE SET due_at = EXCLUDED.due_at, state = 'running',
                 department_code = EXCLUDED.department_code, updated_at = EXCLUDED.updated_at""",
            petition_id, follow_up_due, office, at)

    async def record_follow_up(self, petition_id: str, status: str, attempts: int, reopens: int, at: datetime, *,
                               stop_clock: bool) -> None:
        await self.conn.execute(
            """UPDATE intake.petition SET status = $2, follow_up_attempts = $3, reopen_count = $4, updated_at = now()
               WHERE id = $1""", petition_id, status, attempts, reopens)
        if stop_clock:
            await self.conn.execute(
                "UPDATE intake.deadline SET state = 'stopped', updated_at = $2 WHERE petition_id = $1"
                " AND clock = 'follow_up'", petition_id, at)

    async def public_cases(self, *, limit: int, before: datetime | None, start: datetime | None,
                           end: datetime | None, hidden: Sequence[str]) -> list[PublicCase]:
        rows = await self.conn.fetch(
            """SELECT p.id, p.category, p.jurisdiction->>'name' AS area, p.department_name, p.status, p.received_at,
                      p.resolved_at, p.title, p.content, p.basis, c.name AS petitioner_name,
                      (SELECT d.due_at FROM intake.deadline d
                        WHERE d.petition_id = p.id AND d.clock = 'resolution') AS due_at,
                      (SELECT t.detail->>'note' FROM intake.timeline t WHERE t.petition_id = p.id
                          AND t.event = 'resolve' ORDER BY t.at DESC, t.id DESC LIMIT 1) AS reply,
                      (SELECT t.detail->>'satisfaction' FROM intake.timeline t WHERE t.petition_id = p.id
                          AND t.event = 'follow_up' AND t.detail->>'reached' = 'true'
                        ORDER BY t.at DESC, t.id DESC LIMIT 1) AS satisfaction
                 FROM intake.petition p LEFT JOIN intake.petitioner_contact c ON c.petition_id = p.id
                WHERE p.resolved_at IS NOT NULL AND p.status IN ('resolved', 'closed', 'unreachable')
                  AND p.public AND p.kind IS DISTINCT FROM 'accusation' AND cardinality(p.accused_departments) = 0
                  AND NOT (coalesce(p.category, '') = ANY($2::text[]))
                  AND ($3::timestamptz IS NULL OR p.resolved_at < $3)
                  AND ($4::timestamptz IS NULL OR p.resolved_at >= $4)
                  AND ($5::timestamptz IS NULL OR p.resolved_at < $5)
                ORDER BY p.resolved_at DESC, p.id
                LIMIT $1""",
            limit, list(hidden), before, start, end)
        steps: dict[str, list[tuple[str, datetime]]] = {}
        for t in await self.conn.fetch(
            """SELECT petition_id, event, at FROM intake.timeline WHERE petition_id = ANY($1::text[])
                 AND event = ANY($2::text[]) ORDER BY at, id""",
            [r["id"] for r in rows], list(CASE_STEPS),
        ):
            steps.setdefault(t["petition_id"], []).append((t["event"], t["at"]))
        return [PublicCase(r["id"], r["category"], r["area"], r["department_name"], r["status"], r["received_at"],
                           r["resolved_at"], r["due_at"], r["title"], r["content"], r["reply"], r["basis"],
                           r["petitioner_name"], r["satisfaction"], tuple(steps.get(r["id"], ())))
                for r in rows]

    async def kpi_counts(self, start: date, end: date, tokens: Sequence[str] | None) -> dict[str, dict[str, int]]:
        rows = await self.conn.fetch(
            f"""SELECT department_code, {", ".join(f"sum({n})::int AS {n}" for n in sorted(KPI_FIELDS))}
                  FROM intake.kpi_daily
                 WHERE day BETWEEN $1 AND $2
                   AND ($3::text[] IS NULL OR split_part(department_code, '-', 1) = ANY($3::text[]))
                 GROUP BY department_code""",  # noqa: S608 - the column names are KPI_FIELDS
            start, end, list(tokens) if tokens is not None else None)
        return {r["department_code"]: {n: r[n] for n in KPI_FIELDS} for r in rows}

    async def count_kpi(self, event_id: uuid.UUID, department: str, day: date, fields: Sequence[str]) -> None:
        await count_kpi(self.conn, event_id, department, day, fields)

    async def set_status(self, petition_id: str, status: str, extension_state: str | None) -> None:
        await self.conn.execute(
            "UPDATE intake.petition SET status = $2, extension_state = $3,"
            " status_before_pause = CASE WHEN $2 = 'paused' THEN status ELSE status_before_pause END,"
            " updated_at = now() WHERE id = $1",
            petition_id, status, extension_state,
        )

    async def deadlines(self, petition_id: str) -> list[Deadline]:
        rows = await self.conn.fetch(
            "SELECT clock, due_at, state FROM intake.deadline WHERE petition_id = $1 ORDER BY due_at",
            petition_id,
        )
        return [Deadline(r["clock"], r["due_at"], r["state"]) for r in rows]

    async def timeline(self, petition_id: str) -> list[TimelineEntry]:
        rows = await self.conn.fetch(
            "SELECT at, event, detail FROM intake.timeline WHERE petition_id = $1 ORDER BY at, id", petition_id
        )
        return [TimelineEntry(r["at"], r["event"], r["detail"] or {}) for r in rows]

    async def supervision(self, supervision_id: uuid.UUID, *, for_update: bool = False) -> SupervisionRow | None:
        row = await self.conn.fetchrow(_SUPERVISION_LOCKED if for_update else _SUPERVISION, supervision_id)
        return _supervision(row) if row else None

    async def supervisions_for(self, unit: str, state: str, limit: int) -> list[SupervisionRow]:
        rows = await self.conn.fetch(
            """SELECT s.*, p.tracking_code, p.accused_departments FROM intake.supervision s
               LEFT JOIN intake.petition p ON p.id = s.petition_id
               WHERE s.target_unit = $1 AND ($2 = 'all' OR s.state = $2)
               ORDER BY s.opened_at, s.id LIMIT $3""",
            unit, state, limit,
        )
        return [_supervision(r) for r in rows]

    async def request_close(self, supervision_id: uuid.UUID, unit: str, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE intake.supervision SET close_requested_by = $2, close_requested_at = $3 WHERE id = $1",
            supervision_id, unit, at,
        )

    async def insert_zero_report(self, unit: str, period: str, submission_id: uuid.UUID, incidents: list[str],
                                 request_hash: str, at: datetime) -> bool:
        stored = await self.conn.fetchval(
            """INSERT INTO intake.zero_report_submission (unit, period, submission_id, incidents,
                 request_hash, submitted_at) VALUES ($1,$2,$3,$4,$5,$6)
               ON CONFLICT (unit, period) DO NOTHING RETURNING 1""",
            unit, period, submission_id, incidents, request_hash, at,
        )
        return stored is not None

    async def zero_report_submission(self, unit: str, period: str) -> ZeroReportSubmission | None:
        row = await self.conn.fetchrow(
            "SELECT submission_id, request_hash FROM intake.zero_report_submission WHERE unit = $1 AND period = $2",
            unit, period,
        )
        return ZeroReportSubmission(row["submission_id"], row["request_hash"]) if row else None

    async def zero_reports(self, unit: str, period: str | None) -> list[ZeroReportRow]:
        rows = await self.conn.fetch(
            """SELECT coalesce(s.period, z.period) AS period, s.status, s.rule, s.due_at,
                      coalesce(s.submitted_at, z.submitted_at) AS submitted_at,
                      coalesce(s.incidents, jsonb_array_length(z.incidents)) AS incidents,
                      s.escalated_to, z.submission_id
               FROM (SELECT * FROM intake.zero_report_status WHERE unit = $1) s
               FULL JOIN (SELECT * FROM intake.zero_report_submission WHERE unit = $1) z
                 ON z.period = s.period
               WHERE $2::text IS NULL OR coalesce(s.period, z.period) = $2
               ORDER BY 1""",
            unit, period,
        )
        return [ZeroReportRow(r["period"], r["status"], r["rule"], r["due_at"], r["submitted_at"], r["incidents"],
                              r["escalated_to"], r["submission_id"]) for r in rows]

    async def contact(self, petition_id: str) -> Contact | None:
        row = await self.conn.fetchrow(
            "SELECT name, phone, id_number, email FROM intake.petitioner_contact WHERE petition_id = $1", petition_id
        )
        return Contact(row["name"], row["phone"], row["id_number"], row["email"]) if row else None

    async def add_audit(self, at: datetime, subject: str, role: str, action: str, petition_id: str,
                        reason: str) -> int:
        return int(await self.conn.fetchval(
            "INSERT INTO intake.audit_log (at, subject, role, action, petition_id, reason)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            at, subject, role, action, petition_id, reason,
        ))

    async def audit(self, petition_id: str | None, limit: int) -> list[AuditEntry]:
        rows = await self.conn.fetch(
            "SELECT id, at, subject, role, action, petition_id, reason FROM intake.audit_log"
            " WHERE $1::text IS NULL OR petition_id = $1 ORDER BY id DESC LIMIT $2",
            petition_id, limit,
        )
        return [AuditEntry(r["id"], r["at"], r["subject"], r["role"], r["action"], r["petition_id"], r["reason"])
                for r in rows]

    async def public_requests(self, *, ids: Sequence[str] | None, categories: Sequence[str] | None,
                              codes: Sequence[str] | None, start: datetime | None, end: datetime | None,
                              closed: Sequence[str] | None, open_: bool | None, hidden: Sequence[str],
                              hidden_codes: Sequence[str], limit: int) -> list[PublicRequest]:
        rows = await self.conn.fetch(
            """SELECT p.id, p.tracking_code, p.status, p.category, p.service_code, p.department_name,
                      p.received_at, p.updated_at, p.jurisdiction, p.location->>'admin_code' AS admin_code,
                      p.lat, p.long, p.media_url,
                      (SELECT d.due_at FROM intake.deadline d
                        WHERE d.petition_id = p.id AND d.clock = 'resolution') AS expected_at,
                      (SELECT t.detail->>'note' FROM intake.timeline t
                        WHERE t.petition_id = p.id AND t.event = 'resolve' ORDER BY t.at DESC, t.id DESC
                        LIMIT 1) AS reply,
                      (SELECT c.name FROM intake.petitioner_contact c WHERE c.petition_id = p.id) AS petitioner_name
                 FROM intake.petition p
                WHERE p.kind IS DISTINCT FROM 'accusation' AND cardinality(p.accused_departments) = 0
                  AND NOT (coalesce(p.category, '') = ANY($8::text[]))
                  AND NOT (p.category IS NULL AND coalesce(p.service_code, '') = ANY($10::text[]))
                  AND ($1::text[] IS NULL OR p.id = ANY($1::text[]))
                  AND ($2::text[] IS NULL OR p.category = ANY($2::text[])
                       OR (p.category IS NULL AND p.service_code = ANY($3::text[])))
                  AND ($4::timestamptz IS NULL OR p.received_at >= $4)
                  AND ($5::timestamptz IS NULL OR p.received_at <= $5)
                  AND ($7::boolean IS NULL OR (p.status = ANY($6::text[])) <> $7)
                ORDER BY p.received_at DESC, p.id
                LIMIT $9""",
            list(ids) if ids is not None else None, list(categories) if categories is not None else None,
            list(codes or ()), start, end, list(closed or ()), open_, list(hidden), limit,
            list(hidden_codes),
        )
        return [PublicRequest(r["id"], r["tracking_code"], r["status"], r["category"], r["service_code"],
                              r["department_name"], r["received_at"], r["updated_at"], r["jurisdiction"],
                              r["admin_code"], r["lat"], r["long"], r["media_url"], r["expected_at"], r["reply"],
                              r["petitioner_name"])
                for r in rows]

    async def queue(self, departments: Sequence[str], statuses: Sequence[str], limit: int) -> list[QueueRow]:
        # the order first (each held petition's earliest open clock, by the clocks' key), then
        # the clocks of only the petitions shown
        rows = await self.conn.fetch(
            """SELECT p.id, p.tracking_code, p.status, p.title, p.category, p.department_code, p.received_at,
                      p.priority, p.accused_departments, p.confidence, p.content,
                      (SELECT min(d.due_at) FROM intake.deadline d WHERE d.petition_id = p.id
                          AND d.state IN ('running', 'warned', 'breached')) AS next_due
                 FROM intake.petition p
                WHERE p.department_code = ANY($1::text[]) AND p.status = ANY($2::text[])
                ORDER BY next_due NULLS LAST, p.received_at DESC
                LIMIT $3""",
            list(departments), list(statuses), limit,
        )
        clocks: dict[str, list[Deadline]] = {}
        for d in await self.conn.fetch(
            "SELECT petition_id, clock, due_at, state FROM intake.deadline WHERE petition_id = ANY($1::text[])"
            " ORDER BY due_at",
            [r["id"] for r in rows],
        ):
            clocks.setdefault(d["petition_id"], []).append(Deadline(d["clock"], d["due_at"], d["state"]))
        return [QueueRow(r["id"], r["tracking_code"], r["status"], r["title"], r["category"], r["department_code"],
                         r["received_at"], r["priority"], tuple(r["accused_departments"] or ()),
                         tuple(clocks.get(r["id"], ())), r["confidence"], r["content"])
                for r in rows]

    async def area_overview(self, codes: Sequence[str] | None, tokens: Sequence[str] | None,
                            limit: int, *, figures: bool = True) -> AreaOverview:
        risky = await self.conn.fetch(
            """SELECT p.id, p.tracking_code, p.title, p.department_code, p.department_name, p.accused_departments,
                      d.clock, d.due_at, d.state
                 FROM intake.deadline d JOIN intake.petition p ON p.id = d.petition_id
                WHERE d.state IN ('warned', 'breached')
                  AND ($1::text[] IS NULL OR p.jurisdiction->>'code' = ANY($1::text[]))
                ORDER BY d.due_at LIMIT $2""",
            None if codes is None else list(codes), limit,
        )
        if not figures:
            return AreaOverview(tuple(_at_risk(r) for r in risky), (), ())
        departments = await self.conn.fetch(
            """SELECT p.department_code, min(p.department_name) AS department_name,
                      count(*) FILTER (WHERE p.status NOT IN ('resolved', 'closed')) AS open,
                      count(*) FILTER (WHERE p.status IN ('resolved', 'closed')) AS resolved,
                      count(*) FILTER (WHERE s.state = 'stopped') AS signed_on_time,
                      count(*) FILTER (WHERE s.state IN ('breached', 'breached_stopped')) AS signed_late,
                      count(*) FILTER (WHERE r.state = 'stopped') AS resolved_on_time,
                      count(*) FILTER (WHERE r.state IN ('breached', 'breached_stopped')) AS resolved_late
                 FROM intake.petition p
                 LEFT JOIN intake.deadline s ON s.petition_id = p.id AND s.clock = 'sign_for'
                 LEFT JOIN intake.deadline r ON r.petition_id = p.id AND r.clock = 'resolution'
                WHERE p.department_code IS NOT NULL
                  AND ($1::text[] IS NULL OR split_part(p.department_code, '-', 1) = ANY($1::text[]))
                GROUP BY p.department_code ORDER BY p.department_code""",
            None if tokens is None else list(tokens),
        )
        reports = await self.conn.fetch(
            """SELECT unit, count(*) FILTER (WHERE status = 'on_time') AS on_time,
                      count(*) FILTER (WHERE status = 'late') AS late,
                      count(*) FILTER (WHERE status = 'missing') AS missing,
                      max(period) AS latest_period,
                      (array_agg(status ORDER BY period DESC))[1] AS latest_status
                 FROM intake.zero_report_status
                WHERE $1::text[] IS NULL OR split_part(unit, '-', 1) = ANY($1::text[])
                GROUP BY unit ORDER BY unit""",
            None if tokens is None else list(tokens),
        )
        return AreaOverview(
            tuple(_at_risk(r) for r in risky),
            tuple(DepartmentFigures(r["department_code"], r["department_name"], r["open"], r["resolved"],
                                    r["signed_on_time"], r["signed_late"], r["resolved_on_time"], r["resolved_late"])
                  for r in departments),
            tuple(UnitReports(r["unit"], r["on_time"], r["late"], r["missing"], r["latest_period"],
                              r["latest_status"]) for r in reports),
        )

    async def open_supervision_in(self, tokens: Sequence[str] | None, limit: int) -> list[SupervisionRow]:
        rows = await self.conn.fetch(
            """SELECT s.*, p.tracking_code, p.accused_departments FROM intake.supervision s
                 LEFT JOIN intake.petition p ON p.id = s.petition_id
                WHERE s.state = 'open' AND ($1::text[] IS NULL OR split_part(s.target_unit, '-', 1) = ANY($1::text[]))
                ORDER BY s.due_at LIMIT $2""",
            None if tokens is None else list(tokens), limit,
        )
        return [_supervision(r) for r in rows]

    async def petitions_of_petitioner(self, petitioner_key: str, limit: int) -> list[CallerPetition]:
        rows = await self.conn.fetch(
            """SELECT id, tracking_code, status, title, received_at, department_name FROM intake.petition
                WHERE petitioner_key = $1 ORDER BY received_at DESC LIMIT $2""",
            petitioner_key, limit,
        )
        return [CallerPetition(r["id"], r["tracking_code"], r["status"], r["title"], r["received_at"],
                               r["department_name"]) for r in rows]

    async def incident_links(self, petition_id: str) -> list[IncidentLinkRow]:
        rows = await self.conn.fetch(
            """SELECT petition_id, incident_id, alert_id, department_code, assignment_no, similarity, linked_at,
                      unlinked_at, unlinked_by, unlinked_unit
                 FROM intake.incident_link WHERE petition_id = $1 ORDER BY linked_at, incident_id""",
            petition_id,
        )
        return [IncidentLinkRow(r["petition_id"], r["incident_id"], r["alert_id"], r["department_code"],
                                r["assignment_no"], r["similarity"], r["linked_at"], r["unlinked_at"],
                                r["unlinked_by"], r["unlinked_unit"]) for r in rows]

    async def unlink(self, petition_id: str, at: datetime, by: str, unit: str) -> None:
        await self.conn.execute(
            """UPDATE intake.incident_link SET unlinked_at = $2, unlinked_by = $3, unlinked_unit = $4
                WHERE petition_id = $1 AND unlinked_at IS NULL""",
            petition_id, at, by, unit,
        )

    async def alerts(self, state: str, kind: str | None, codes: Sequence[str] | None, limit: int) -> list[AlertRow]:
        rows = await self.conn.fetch(
            """SELECT a.*, ARRAY(SELECT l.petition_id FROM intake.incident_link l
                                  WHERE l.alert_id = a.alert_id AND l.unlinked_at IS NOT NULL) AS unlinked
                 FROM intake.alert a
                WHERE ($1 = 'all' OR a.state = $1) AND ($2::text IS NULL OR a.kind = $2)
                  AND ($3::text[] IS NULL OR a.area = ANY($3::text[]) OR left(a.area, 6) = ANY($3::text[]))
                ORDER BY a.state = 'active' DESC, a.level DESC, a.opened_at DESC, a.alert_id
                LIMIT $4""",
            state, kind, None if codes is None else list(codes), limit,
        )
        return [AlertRow(r["alert_id"], r["version"], r["state"], r["kind"], r["area"], r["area_name"],
                         r["area_level"], r["category"], r["time_window"], r["window_start"], r["count"],
                         r["expected"], r["z"], tuple(r["petition_ids"] or ()), r["opened_at"], r["closed_at"],
                         r["level"], tuple(r["risk_reasons"] or ()), r["department_code"], r["updated_at"],
                         tuple(r["unlinked"] or ()))
                for r in rows]

    async def petition_labels(self, ids: Sequence[str]) -> dict[str, PetitionLabel]:
        rows = await self.conn.fetch(
            "SELECT id, tracking_code, accused_departments FROM intake.petition WHERE id = ANY($1::text[])",
            list(ids),
        )
        return {r["id"]: PetitionLabel(r["id"], r["tracking_code"], tuple(r["accused_departments"] or ()))
                for r in rows}


#: the timeline entries a public case shows as its process (never their notes)
CASE_STEPS = ("submitted", "routed", "reassigned", "reopened", "accept", "return", "request_extension",
              "approve_extension", "resolve", "follow_up", "supervision_opened", "escalated")

#: the counters of the 三率 projection (columns of intake.kpi_daily)
KPI_FIELDS = frozenset({"assignments", "signed_in_time", "follow_ups", "rated_resolved", "satisfied",
                        "basically_satisfied", "unsatisfied", "unreachable", "reopened", "resolutions",
                        "resolved_in_time"})


async def count_kpi(conn: Any, event_id: uuid.UUID, department: str, day: date, fields: Sequence[str]) -> None:
    """Add one to each of `fields` of the department's day, unless this event counted them
    already (the projection is idempotent: a redelivered event changes nothing)."""
    for name in fields:
        if name not in KPI_FIELDS:
            raise ValueError(f"no KPI counter {name}")
        await conn.execute(
            f"""WITH fresh AS (INSERT INTO intake.kpi_fact (event_id, field) VALUES ($1, $4)
                               ON CONFLICT DO NOTHING RETURNING 1)
                INSERT INTO intake.kpi_daily (department_code, day, {name}) SELECT $2, $3, 1 FROM fresh
                ON CONFLICT (department_code, day) DO UPDATE SET {name} = intake.kpi_daily.{name} + 1""",  # noqa: S608 - a KPI_FIELDS name
            event_id, department, day, name)
