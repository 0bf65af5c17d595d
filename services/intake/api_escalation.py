"""HTTP routes for 督办 (supervision orders) and zero reports (零报告).

* ``GET /v1/supervision?unit=&state=`` lists the 督办 addressed to a unit (open by default):
  a petition's (``subject: petition``) or a unit's missing zero report (``subject:
  zero_report``, ``report_unit`` / ``report_period``, no petition); ``parent_id`` names the
  lapsed 督办 an ``overdue`` one escalates, ``overdue_at`` when this one lapsed.
* ``POST /v1/supervision/{id}/close`` a supervisor closes one: any unit but the supervised
  (handling) unit itself; published as a ``close_supervision`` action on ``petition.actions``
  for the escalation service, which owns the record. A zero-report 督办 is not closed by
  hand (``409 closes_on_report``): it closes when the unit reports for the period.
* ``POST /v1/zero-reports`` a unit reports for a period (an empty ``incidents`` list is a zero
  report) → ``zero_report.submitted``. One report per unit and period: the same report again
  answers the first one's ``202`` (idempotent), a different one ``409 already_submitted``.
* ``GET /v1/zero-reports?unit=&period=`` the unit's verdicts per period and its compliance
  rates (报送率 reporting rate, 及时率 timeliness rate).

Commands answer ``202`` only after the change and its outbox row are committed together.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import date
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.intake.api import LOCAL, UnitCode, check_unit
from services.intake.errors import COMMAND_RESPONSES, CREATE_RESPONSES, LIST_RESPONSES, Problem
from services.intake.reference import local_today
from services.intake.text import NonBlankText, Text
from shared import codes, topics
from shared.db import OutboxMessage, add_to_outbox
from shared.events import ActionType, PetitionActionTaken, encode_event, key_for, utcnow
from shared.events.escalation import ZeroReportSubmitted, key_for_unit

_PERIOD = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$|^([0-9]{4})-W([0-9]{2})$"
    r"|^([0-9]{4})-([0-9]{2})-H[12]$|^([0-9]{4})-([0-9]{2})$"
)
#: the shape of a period id, as the spec publishes it (whether it names a real date is checked after)
PERIOD_PATTERN = r"^([0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-W[0-9]{2}|[0-9]{4}-[0-9]{2}-H[12]|[0-9]{4}-[0-9]{2})$"

# 50 x 400 characters: the largest report fits the body limit even with every character
# \u-escaped (a report over it would be refused as too large although the spec allowed it)
Incident = NonBlankText(400)


def valid_period(value: str) -> str:
    """Check a period id's shape and calendar (daily, ISO weekly, half-monthly, monthly)."""
    m = _PERIOD.match(value)
    if m is None:
        raise ValueError("period must look like 2026-11-22, 2026-W47, 2026-11-H2 or 2026-11")
    try:
        if m[1]:
            date(int(m[1]), int(m[2]), int(m[3]))
        elif m[4]:
            date.fromisocalendar(int(m[4]), int(m[5]), 1)
        else:
            year, month = (m[6], m[7]) if m[6] else (m[8], m[9])
            date(int(year), int(month), 1)
    except ValueError:
        raise ValueError(f"period {value!r} names no real date") from None
    return value


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ZeroReportIn(_In):
    """A unit's report for one period; the spec lists the units and the periods each owes."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"x-reference": "zero_report"})

    unit: Annotated[codes.DepartmentCode, Field(description="a unit with a zero-report obligation")]
    period: Annotated[str, Field(description="a period the unit owes that has opened (local date, Asia/Shanghai)")]
    incidents: list[Incident] = Field(max_length=50)  # type: ignore[valid-type]  # a call to a type factory (services/intake/text.py)

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        return valid_period(value)


class ZeroReportAccepted(BaseModel):
    id: str
    unit: str
    period: str
    status: str


class CloseSupervisionIn(_In):
    department: UnitCode
    note: Text(2000) = ""  # type: ignore[valid-type]  # a call to a type factory (services/intake/text.py)


class SupervisionClosing(BaseModel):
    id: str
    status: str


def _iso(value: Any) -> str | None:
    return value.astimezone(LOCAL).isoformat() if value is not None else None


def _supervision(row: Any, now: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "petition_id": row["petition_id"],
        "tracking_code": row["tracking_code"],
        "clock": row["clock"],
        "step": row["step"],
        "level": row["level"],
        "target_unit": row["target_unit"],
        "supervised_unit": row["supervised_unit"],
        "rule": row["rule"],
        "opened_at": _iso(row["opened_at"]),
        "due_at": _iso(row["due_at"]),
        "overdue": row["state"] == "open" and (row["due_at"] <= now or row["overdue_at"] is not None),
        "overdue_at": _iso(row["overdue_at"]),
        "subject": row["subject"],
        "report_unit": row["report_unit"],
        "report_period": row["report_period"],
        "parent_id": str(row["parent_id"]) if row["parent_id"] else None,
        "state": row["state"],
        "close_requested_by": row["close_requested_by"],
        "closed_by": row["closed_by"],
        "closed_at": _iso(row["closed_at"]),
    }


def build_router(state: Any) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/supervision", responses=LIST_RESPONSES)
    async def list_supervision(
        unit: Annotated[codes.DepartmentCode, Query()],
        state_: Annotated[Literal["open", "closed", "all"], Query(alias="state")] = "open",
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        pool: asyncpg.Pool = state.pool
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT s.*, p.tracking_code FROM intake.supervision s
                   LEFT JOIN intake.petition p ON p.id = s.petition_id
                   WHERE s.target_unit = $1 AND ($2 = 'all' OR s.state = $2)
                   ORDER BY s.opened_at, s.id LIMIT $3""",
                unit, state_, limit,
            )
        now = utcnow()
        return {"unit": unit, "state": state_, "items": [_supervision(r, now) for r in rows]}

    @api.post("/v1/supervision/{supervision_id}/close", status_code=202, response_model=SupervisionClosing,
              responses=COMMAND_RESPONSES)
    async def close_supervision(supervision_id: uuid.UUID, body: CloseSupervisionIn) -> SupervisionClosing:
        pool: asyncpg.Pool = state.pool
        check_unit(state.reference.current, body.department, "department")
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM intake.supervision WHERE id = $1 FOR UPDATE", supervision_id
            )
            if row is None:
                raise Problem(404, "not_found", f"no 督办 {supervision_id}")
            if row["state"] == "closed":
                raise Problem(409, "already_closed", f"督办 {supervision_id} is closed")
            if row["subject"] == "zero_report":
                raise Problem(409, "closes_on_report",
                              f"督办 {supervision_id} closes when {row['report_unit']}"
                              f" reports for {row['report_period']}")
            if row["close_requested_by"] is not None:
                raise Problem(409, "already_closing",
                              f"督办 {supervision_id} is being closed by {row['close_requested_by']}")
            if body.department == row["supervised_unit"]:
                raise Problem(409, "not_supervisor", "the supervised unit cannot close its own 督办")
            now = utcnow()
            event = PetitionActionTaken(
                event_id=uuid.uuid4(), occurred_at=now, petition_id=row["petition_id"],
                action=ActionType.CLOSE_SUPERVISION, department_code=body.department, note=body.note,
                extra={"supervision_id": str(supervision_id)},
            )
            await conn.execute(
                "UPDATE intake.supervision SET close_requested_by = $2, close_requested_at = $3 WHERE id = $1",
                supervision_id, body.department, now,
            )
            await conn.execute(
                "INSERT INTO intake.timeline (petition_id, at, event, detail, event_id)"
                " SELECT $1, $2, 'close_supervision', $3, $4 WHERE EXISTS"
                " (SELECT 1 FROM intake.petition WHERE id = $1)",
                row["petition_id"], now,
                {"department": body.department, "note": body.note, "supervision_id": str(supervision_id)},
                event.event_id,
            )
            await add_to_outbox(conn, "intake", [
                OutboxMessage(topics.PETITION_ACTIONS, key_for(row["petition_id"]), encode_event(event))
            ])
        state.kick()
        return SupervisionClosing(id=str(supervision_id), status="closing")

    @api.post("/v1/zero-reports", status_code=202, response_model=ZeroReportAccepted, responses=CREATE_RESPONSES)
    async def submit_zero_report(body: ZeroReportIn) -> ZeroReportAccepted:
        pool: asyncpg.Pool = state.pool
        reference = state.reference.current
        if body.unit not in reference.obligations:
            raise Problem(422, "no_obligation", f"{body.unit} owes no zero reports", field="unit")
        problem = reference.period_problem(body.unit, body.period, local_today())
        if problem is not None:
            raise Problem(422, "period_not_owed", problem, field="period")
        digest = hashlib.sha256(
            json.dumps({"incidents": body.incidents}, ensure_ascii=False, sort_keys=True).encode()
        ).hexdigest()
        now = utcnow()
        submission_id = uuid.uuid4()
        async with pool.acquire() as conn, conn.transaction():
            stored = await conn.fetchrow(
                """INSERT INTO intake.zero_report_submission (unit, period, submission_id, incidents,
                     request_hash, submitted_at) VALUES ($1,$2,$3,$4,$5,$6)
                   ON CONFLICT (unit, period) DO NOTHING RETURNING submission_id""",
                body.unit, body.period, submission_id, body.incidents, digest, now,
            )
            if stored is None:
                existing = await conn.fetchrow(
                    "SELECT submission_id, request_hash FROM intake.zero_report_submission"
                    " WHERE unit = $1 AND period = $2",
                    body.unit, body.period,
                )
                if existing["request_hash"] != digest:
                    raise Problem(409, "already_submitted",
                                  f"{body.unit} already reported for {body.period}; one report per period")
                return ZeroReportAccepted(id=str(existing["submission_id"]), unit=body.unit,
                                          period=body.period, status="submitted")
            event = ZeroReportSubmitted(
                event_id=uuid.uuid4(), occurred_at=now, unit=body.unit, period=body.period,
                incidents=tuple(body.incidents), submitted_at=now, submission_id=submission_id,
            )
            await add_to_outbox(conn, "intake", [
                OutboxMessage(topics.ZERO_REPORT_SUBMITTED, key_for_unit(body.unit), encode_event(event))
            ])
        state.kick()
        return ZeroReportAccepted(id=str(submission_id), unit=body.unit, period=body.period, status="submitted")

    @api.get("/v1/zero-reports", responses=LIST_RESPONSES)
    async def zero_report_compliance(
        unit: Annotated[codes.DepartmentCode, Query()],
        period: Annotated[str, Query(pattern=PERIOD_PATTERN,  # noqa: RUF013 - absent or a string: no "null" in the spec
                                     description="a period id; one that names no real date has no rows")] = None,  # type: ignore[assignment]  # absent means None; the spec says no "null"
    ) -> dict[str, Any]:
        pool: asyncpg.Pool = state.pool
        async with pool.acquire() as conn:
            rows = await conn.fetch(
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
        items = [
            {
                "period": r["period"],
                "status": r["status"] or "submitted",  # submitted, verdict not in yet
                "rule": r["rule"],
                "due_at": _iso(r["due_at"]),
                "submitted_at": _iso(r["submitted_at"]),
                "incidents": r["incidents"],
                "escalated_to": r["escalated_to"],
                "submission_id": str(r["submission_id"]) if r["submission_id"] else None,
            }
            for r in rows
        ]
        judged = [i for i in items if i["status"] in ("on_time", "late", "missing")]
        counts = {s: sum(1 for i in judged if i["status"] == s) for s in ("on_time", "late", "missing")}
        total = len(judged)
        return {
            "unit": unit,
            "period": period,
            "periods": items,
            "compliance": {
                "periods": total,
                **counts,
                "reporting_rate": round((counts["on_time"] + counts["late"]) / total, 4) if total else None,
                "timeliness_rate": round(counts["on_time"] / total, 4) if total else None,
            },
        }

    return api
