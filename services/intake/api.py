"""The public HTTP API (FastAPI): petitions in, department actions, lookups.

Commands answer ``202`` only after the change and its outbox row are committed together;
a database outage answers ``503``, never a ``202``. Bad input answers a 4xx with
field-level errors and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import generate_latest
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from services.intake import metrics
from services.intake.pii import petitioner_key
from shared import topics
from shared.consumer import TRANSIENT_ERRORS
from shared.db import OutboxMessage, add_to_outbox
from shared.events import (
    ActionType,
    Channel,
    Kind,
    Location,
    PetitionActionTaken,
    PetitionSubmitted,
    encode_event,
    key_for,
    utcnow,
)
from shared.ids import new_petition_id, new_tracking_code

log = logging.getLogger(__name__)

#: Times in answers are local (Asia/Shanghai), as operators and departments read them.
LOCAL = ZoneInfo("Asia/Shanghai")

Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
DepartmentCode = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9-]{0,62}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PetitionerIn(_In):
    name: Annotated[str, StringConstraints(min_length=1, max_length=50)] | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 -]{4,19}$")] | None = None
    id_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{17}[0-9Xx]$")] | None = None


class LocationIn(_In):
    admin_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}([0-9]{3}){0,2}$")] | None = None
    address: Annotated[str, StringConstraints(max_length=300)] | None = None


class PetitionIn(_In):
    """A petition as an operator posts it."""

    title: Text200
    content: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]
    channel: Channel
    kind: Kind | None = None
    petitioner: PetitionerIn | None = None
    location: LocationIn | None = None
    persons: int = Field(default=1, ge=1, le=100000)
    received_at: AwareDatetime | None = None


class PetitionAccepted(BaseModel):
    id: str
    tracking_code: str
    status: str


class ActionIn(_In):
    action: Literal[
        "accept", "return", "resolve", "assign", "contact",
        "request_extension", "approve_extension", "reject_extension", "pause", "resume",
    ]
    department: DepartmentCode
    note: Annotated[str, StringConstraints(max_length=2000)] = ""
    target_department: DepartmentCode | None = None
    category: Annotated[str, StringConstraints(min_length=1, max_length=20)] | None = None
    extension_days: int | None = Field(default=None, ge=1, le=30)


class ActionAccepted(BaseModel):
    id: str
    action: str
    status: str


class Problem(Exception):
    """An error answered to the client with a stable `code`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class ActionRule:
    """Who may take an action, from which statuses, and where it leads (None: stays)."""

    allowed_from: frozenset[str]
    leads_to: str | None
    by_holder: bool = True
    note_required: bool = False


ACTION_RULES: dict[str, ActionRule] = {
    "accept": ActionRule(frozenset({"assigned"}), "accepted"),
    "return": ActionRule(frozenset({"assigned", "accepted"}), "returned", note_required=True),
    "resolve": ActionRule(frozenset({"assigned", "accepted"}), "resolved"),
    "assign": ActionRule(frozenset({"triage"}), "triage"),
    "contact": ActionRule(frozenset({"assigned", "accepted"}), None),
    "request_extension": ActionRule(frozenset({"accepted", "paused"}), None, note_required=True),
    "approve_extension": ActionRule(frozenset({"accepted", "paused"}), None, by_holder=False),
    "reject_extension": ActionRule(frozenset({"accepted", "paused"}), None, by_holder=False, note_required=True),
    "pause": ActionRule(frozenset({"accepted"}), "paused", note_required=True),
    "resume": ActionRule(frozenset({"paused"}), None),
}


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            metrics.REJECTED.labels("malformed_json").inc()
            return JSONResponse(
                {"error": "malformed_json", "message": "the body is not valid JSON"}, status_code=400
            )
        metrics.REJECTED.labels("validation").inc()
        return JSONResponse(
            {
                "error": "validation_failed",
                "errors": [
                    {"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", ""), "type": e.get("type")}
                    for e in errors
                ],
            },
            status_code=422,
        )

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        metrics.REJECTED.labels(exc.code).inc()
        return JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status)

    for error in TRANSIENT_ERRORS:

        @app.exception_handler(error)
        async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
            log.warning("database unavailable: %r", exc)
            return JSONResponse(
                {"error": "unavailable", "message": "storage unavailable, nothing was recorded; retry"},
                status_code=503,
                headers={"Retry-After": "5"},
            )


def request_hash(body: PetitionIn) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class _Replay(Exception):
    pass


def build_router(state: Any) -> APIRouter:
    """Routes; `state` gives ``pool``, ``hmac_key``, ``kick()`` and readiness checks."""
    api = APIRouter()

    @api.post("/v1/petitions", status_code=202, response_model=PetitionAccepted)
    async def submit_petition(
        body: PetitionIn,
        response: Response,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> PetitionAccepted:
        pool: asyncpg.Pool = state.pool
        digest = request_hash(body)
        if idempotency_key is not None:
            replay = await _lookup_idempotent(pool, idempotency_key, digest)
            if replay is not None:
                response.headers["Location"] = f"/v1/petitions/{replay.id}"
                return replay
        now = utcnow()
        petition_id, tracking = new_petition_id(), new_tracking_code()
        received_at: datetime = body.received_at or now
        person = body.petitioner
        pkey = petitioner_key(
            state.hmac_key,
            id_number=person.id_number if person else None,
            phone=person.phone if person else None,
        )
        location = Location(**(body.location.model_dump() if body.location else {}))
        event = PetitionSubmitted(
            event_id=uuid.uuid4(),
            occurred_at=now,
            petition_id=petition_id,
            tracking_code=tracking,
            title=body.title,
            content=body.content,
            channel=body.channel,
            kind=body.kind,
            petitioner_key=pkey,
            location=location,
            persons=body.persons,
            received_at=received_at,
        )
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    """INSERT INTO intake.petition (id, tracking_code, title, content, channel, kind,
                         location, persons, petitioner_key, received_at, submitted_at)
                       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)""",
                    petition_id, tracking, body.title, body.content, body.channel.value,
                    body.kind.value if body.kind else None, location.model_dump(), body.persons,
                    pkey, received_at, now,
                )
                if person is not None:
                    await conn.execute(
                        "INSERT INTO intake.petitioner_contact VALUES ($1, $2, $3, $4)",
                        petition_id, person.name, person.phone, person.id_number,
                    )
                await conn.execute(
                    "INSERT INTO intake.timeline (petition_id, at, event, detail, event_id)"
                    " VALUES ($1, $2, 'submitted', $3, $4)",
                    petition_id, now, {"channel": body.channel.value}, event.event_id,
                )
                await add_to_outbox(
                    conn, "intake",
                    [OutboxMessage(topics.PETITION_SUBMITTED, key_for(petition_id), encode_event(event))],
                )
                if idempotency_key is not None:
                    stored = await conn.fetchval(
                        "INSERT INTO intake.idempotency_key (key, request_hash, petition_id)"
                        " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1",
                        idempotency_key, digest, petition_id,
                    )
                    if stored is None:
                        raise _Replay
        except _Replay:
            replay = await _lookup_idempotent(pool, idempotency_key or "", digest)
            assert replay is not None
            response.headers["Location"] = f"/v1/petitions/{replay.id}"
            return replay
        state.kick()
        metrics.SUBMITTED.labels(body.channel.value, body.kind.value if body.kind else "unspecified").inc()
        response.headers["Location"] = f"/v1/petitions/{petition_id}"
        return PetitionAccepted(id=petition_id, tracking_code=tracking, status="submitted")

    @api.post("/v1/petitions/{ref}/actions", status_code=202, response_model=ActionAccepted)
    async def act(ref: str, body: ActionIn) -> ActionAccepted:
        """A department (or the triage desk, or a supervisor) acts on a petition."""
        pool: asyncpg.Pool = state.pool
        rule = ACTION_RULES[body.action]
        if rule.note_required and not body.note:
            raise Problem(422, "reason_required", f"`{body.action}` needs a reason in `note`")
        if body.action == "assign" and not body.target_department:
            raise Problem(422, "target_required", "`assign` needs `target_department`")
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT id, status, department_code, assignment_no, extension_state,"
                " status_before_pause FROM intake.petition"
                " WHERE id = $1 OR tracking_code = $1 FOR UPDATE",
                ref,
            )
            if row is None:
                raise Problem(404, "not_found", f"no petition {ref}")
            if rule.by_holder and row["department_code"] != body.department:
                raise Problem(
                    409, "not_holder",
                    f"department {body.department} does not hold petition {row['id']}"
                    f" (held by {row['department_code'] or 'nobody yet'})",
                )
            if row["status"] not in rule.allowed_from:
                raise Problem(
                    409, "invalid_state",
                    f"cannot {body.action} a petition in status {row['status']!r}",
                )
            target = rule.leads_to or row["status"]
            extension_state = row["extension_state"]
            if body.action == "request_extension":
                if extension_state is not None:
                    raise Problem(409, "extension_already_requested",
                                  f"an extension was already {extension_state}; only one is allowed")
                extension_state = "requested"
            elif body.action in ("approve_extension", "reject_extension"):
                if extension_state != "requested":
                    raise Problem(409, "no_pending_extension", "there is no pending extension request")
                if body.department == row["department_code"]:
                    raise Problem(409, "not_supervisor", "the handling department cannot decide its own extension")
                extension_state = "approved" if body.action == "approve_extension" else "rejected"
            elif body.action == "resume":
                target = row["status_before_pause"] or "accepted"
            now = utcnow()
            extra: dict[str, Any] = {}
            if body.extension_days is not None:
                extra["extension_days"] = body.extension_days
            if body.category is not None:
                extra["category"] = body.category
            event = PetitionActionTaken(
                event_id=uuid.uuid4(),
                occurred_at=now,
                petition_id=row["id"],
                action=ActionType(body.action),
                department_code=body.department,
                note=body.note,
                target_department_code=body.target_department,
                assignment_no=row["assignment_no"],
                extra=extra,
            )
            await conn.execute(
                "UPDATE intake.petition SET status = $2, extension_state = $3,"
                " status_before_pause = CASE WHEN $2 = 'paused' THEN status ELSE status_before_pause END,"
                " updated_at = now() WHERE id = $1",
                row["id"], target, extension_state,
            )
            detail: dict[str, Any] = {"department": body.department, "note": body.note}
            if body.target_department:
                detail["target_department"] = body.target_department
            await conn.execute(
                "INSERT INTO intake.timeline (petition_id, at, event, detail, event_id)"
                " VALUES ($1, $2, $3, $4, $5)",
                row["id"], now, body.action, {**detail, **extra}, event.event_id,
            )
            await add_to_outbox(
                conn, "intake",
                [OutboxMessage(topics.PETITION_ACTIONS, key_for(row["id"]), encode_event(event))],
            )
        state.kick()
        metrics.ACTIONS.labels(body.action).inc()
        return ActionAccepted(id=row["id"], action=body.action, status=target)

    @api.get("/v1/petitions/{ref}")
    async def get_petition(ref: str) -> dict[str, Any]:
        pool: asyncpg.Pool = state.pool
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM intake.petition WHERE id = $1 OR tracking_code = $1", ref
            )
            if row is None:
                raise Problem(404, "not_found", f"no petition {ref}")
            deadlines = await conn.fetch(
                "SELECT clock, due_at, state, department_code FROM intake.deadline"
                " WHERE petition_id = $1 ORDER BY due_at",
                row["id"],
            )
            timeline = await conn.fetch(
                "SELECT at, event, detail FROM intake.timeline WHERE petition_id = $1 ORDER BY at, id",
                row["id"],
            )
        return {
            "id": row["id"],
            "tracking_code": row["tracking_code"],
            "status": row["status"],
            "category": row["category"],
            "department": (
                {"code": row["department_code"], "name": row["department_name"]}
                if row["department_code"] else None
            ),
            "jurisdiction": row["jurisdiction"],
            "priority": row["priority"],
            "rule": row["rule"],
            "repeat_of": row["repeat_of"],
            "group_petition": row["group_petition"],
            "accused_departments": list(row["accused_departments"] or []),
            "persons": row["persons"],
            "channel": row["channel"],
            "kind": row["kind"],
            "received_at": row["received_at"].astimezone(LOCAL).isoformat(),
            "deadlines": [
                {"clock": d["clock"], "due_at": d["due_at"].astimezone(LOCAL).isoformat(), "state": d["state"]}
                for d in deadlines
            ],
            "timeline": [
                {"at": t["at"].astimezone(LOCAL).isoformat(), "event": t["event"], **(t["detail"] or {})} for t in timeline
            ],
        }

    @api.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks = await state.readiness()
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @api.get("/metrics", include_in_schema=False)
    async def metrics_page() -> Response:
        return Response(generate_latest(), media_type="text/plain; version=0.0.4")

    return api


async def _lookup_idempotent(pool: asyncpg.Pool, key: str, digest: str) -> PetitionAccepted | None:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT k.request_hash, p.id, p.tracking_code, p.status FROM intake.idempotency_key k
               JOIN intake.petition p ON p.id = k.petition_id WHERE k.key = $1""",
            key,
        )
    if row is None:
        return None
    if row["request_hash"] != digest:
        raise Problem(
            409, "idempotency_key_reused", "this Idempotency-Key was used for a different petition"
        )
    return PetitionAccepted(id=row["id"], tracking_code=row["tracking_code"], status=row["status"])
