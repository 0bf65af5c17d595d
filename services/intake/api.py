"""The public HTTP API (FastAPI): petitions in, department actions, lookups.

Commands answer ``202`` only after the change and its outbox row are committed together;
a database outage answers ``503``, never a ``202``. Bad input answers a 4xx with
field-level errors and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import APIRouter, Header, Path
from fastapi.responses import JSONResponse, Response
from prometheus_client import generate_latest
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

from services.intake import metrics
from services.intake.errors import (
    COMMAND_RESPONSES,
    CREATE_RESPONSES,
    LOOKUP_RESPONSES,
    UNION_TAGS,
    Problem,
    install_error_handlers,
)
from services.intake.pii import petitioner_key
from services.intake.reference import Reference
from services.intake.text import TEXT_PATTERN, NonBlankText, Text
from shared import codes, topics
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
from shared.settings import Settings

log = logging.getLogger(__name__)

#: Times in answers are local (Asia/Shanghai), as operators and departments read them.
LOCAL = ZoneInfo("Asia/Shanghai")

__all__ = ["LOCAL", "DepartmentCode", "Problem", "UnitCode", "build_router", "install_error_handlers"]

#: a unit that exists (a department, a 12345 office, a reporting unit): the code rule
#: (shared.codes), checked against the reference data; the published spec lists them
#: (`x-reference`, see services.intake.openapi)
UnitCode = Annotated[codes.DepartmentCode, Field(json_schema_extra={"x-reference": "unit"})]
#: a department of the routing table (one that can hold a petition)
DepartmentCode = Annotated[codes.DepartmentCode, Field(json_schema_extra={"x-reference": "department"})]
#: a petition id or tracking code in a path
Ref = Annotated[str, Path(max_length=64, pattern=TEXT_PATTERN, description="petition id or tracking code")]

#: RFC 3339 with a numeric offset or Z (what the published pattern describes, years aside)
_RFC3339 = re.compile(
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)


def _rfc3339_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "received_at must be an RFC 3339 string with an offset")
    if _RFC3339.fullmatch(value) is None:
        raise PydanticCustomError(
            "datetime_format", "received_at must look like 2026-11-22T09:30:00+08:00 (RFC 3339, with an offset)"
        )
    return value


def _json_integer(value: Any) -> Any:
    """An integer as JSON Schema counts them: 3 or 3.0, never "3" or true."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("int_type", "Input should be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise PydanticCustomError("int_from_float", "Input should be an integer, without a fractional part")
        return int(value)
    return value


#: a JSON integer (JSON Schema's: 3.0 is one); strings and booleans are refused
JsonInt = Annotated[int, BeforeValidator(_json_integer)]
#: one extension of at most 30 days (信访工作条例)
# Field first: its bounds reach the spec
ExtensionDays = Annotated[int, Field(ge=1, le=30), BeforeValidator(_json_integer)]


ReceivedAt = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339_text),
    Field(json_schema_extra={"x-reference": "received_at"},
          description="when the petition was received (RFC 3339 with an offset); defaults to now. "
                      "It must lie between `PETITION_RECEIVED_AT_EARLIEST` (default 2000-01-01T00:00:00+08:00) "
                      "and `PETITION_RECEIVED_AT_MAX_FUTURE_SECONDS` (default 300) seconds after the server's "
                      "clock. The published pattern lists the days safely inside that window, up to two days "
                      "ago (JSON Schema cannot say \"not after now\"); the server accepts the whole window."),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PetitionerIn(_In):
    name: NonBlankText(50) | None = None  # type: ignore[valid-type]  # a call to a type factory (services/intake/text.py)
    phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 -]{4,19}$")] | None = None
    id_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{17}[0-9Xx]$")] | None = None


class LocationIn(_In):
    admin_code: Annotated[
        str, StringConstraints(pattern=r"^[0-9]{6}([0-9]{3}){0,2}$"),
        Field(json_schema_extra={"x-reference": "admin_code"},
              description="a gazetteer code of the province (6 digits), or of a street / community below one (9 / 12)"),
    ] | None = None
    address: Text(300) | None = None  # type: ignore[valid-type]  # a call to a type factory (services/intake/text.py)


class PetitionIn(_In):
    """A petition as an operator posts it."""

    title: NonBlankText(200)  # type: ignore[valid-type]  # a call to a type factory (services/intake/text.py)
    content: NonBlankText(20000)  # type: ignore[valid-type]  # a call to a type factory (services/intake/text.py)
    channel: Channel
    kind: Kind | None = None
    petitioner: PetitionerIn | None = None
    location: LocationIn | None = None
    persons: JsonInt = Field(default=1, ge=1, le=100000)
    received_at: ReceivedAt | None = None


class PetitionAccepted(BaseModel):
    id: str
    tracking_code: str
    status: str


class _Action(_In):
    department: UnitCode
    note: Text(2000) = ""  # type: ignore[valid-type]  # a call to a type factory (services/intake/text.py)


class PlainAction(_Action):
    """Actions that need nothing more than the acting department (a note is optional)."""

    action: Literal["accept", "resolve", "contact", "resume"]


class ReasonedAction(_Action):
    """Actions that need a reason in `note`."""

    action: Literal["return", "pause", "reject_extension"]
    note: NonBlankText(2000)  # type: ignore[valid-type]  # a call to a type factory (services/intake/text.py)


class ExtensionRequest(_Action):
    action: Literal["request_extension"]
    note: NonBlankText(2000)  # type: ignore[valid-type]  # a call to a type factory (services/intake/text.py)
    extension_days: ExtensionDays | None = None


class ExtensionApproval(_Action):
    action: Literal["approve_extension"]
    extension_days: ExtensionDays | None = None


class Assignment(_Action):
    """The triage desk assigns a petition to a department (and may correct its category)."""

    action: Literal["assign"]
    target_department: DepartmentCode
    category: NonBlankText(20) | None = None  # type: ignore[valid-type]  # a call to a type factory (services/intake/text.py)


ActionIn = Annotated[
    PlainAction | ReasonedAction | ExtensionRequest | ExtensionApproval | Assignment,
    Field(discriminator="action"),
]
UNION_TAGS.update(
    {"accept", "resolve", "contact", "resume", "return", "pause", "reject_extension", "request_extension",
     "approve_extension", "assign"}
)


class ActionAccepted(BaseModel):
    id: str
    action: str
    status: str


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


def request_hash(body: PetitionIn) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class _Replay(Exception):
    pass


def check_unit(reference: Reference, code: str, field: str) -> None:
    if code not in reference.units:
        raise Problem(422, "unknown_unit", f"no unit {code} exists", field=field)


def check_received_at(value: datetime, settings: Settings, now: datetime) -> None:
    """`value` within [received_at_earliest, now + max future]; calendar-edge values included."""
    latest = now + timedelta(seconds=settings.received_at_max_future_seconds)
    try:
        inside = settings.received_at_earliest <= value <= latest
    except OverflowError:  # year 1 or 9999 with an offset: not representable in UTC, far outside
        inside = False
    if not inside:
        raise Problem(
            422, "received_at_out_of_range",
            f"received_at must lie between {settings.received_at_earliest.isoformat()} and "
            f"{settings.received_at_max_future_seconds:g} s after now",
            field="received_at",
        )


def build_router(state: Any) -> APIRouter:
    """Routes; `state` gives ``pool``, ``hmac_key``, ``kick()``, ``reference`` and readiness checks."""
    api = APIRouter()

    @api.post("/v1/petitions", status_code=202, response_model=PetitionAccepted, responses=CREATE_RESPONSES)
    async def submit_petition(
        body: PetitionIn,
        response: Response,
        # `str`, not `str | None`: a header is absent or a string, the spec says no "null"
        idempotency_key: Annotated[str, Header(max_length=200, pattern=TEXT_PATTERN)] = None,  # type: ignore[assignment]  # noqa: RUF013
    ) -> PetitionAccepted:
        pool: asyncpg.Pool = state.pool
        if body.received_at is not None:
            check_received_at(body.received_at, state.settings, utcnow())
        if (body.location is not None and body.location.admin_code is not None
                and not state.reference.current.admin_code_known(body.location.admin_code)):
                raise Problem(422, "unknown_admin_code",
                              f"{body.location.admin_code} is no area of the province's gazetteer",
                              field="location.admin_code")
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
            assert replay is not None  # noqa: S101 - narrows the type: never None here
            response.headers["Location"] = f"/v1/petitions/{replay.id}"
            return replay
        state.kick()
        metrics.SUBMITTED.labels(body.channel.value, body.kind.value if body.kind else "unspecified").inc()
        response.headers["Location"] = f"/v1/petitions/{petition_id}"
        return PetitionAccepted(id=petition_id, tracking_code=tracking, status="submitted")

    @api.post("/v1/petitions/{ref}/actions", status_code=202, response_model=ActionAccepted,
              responses=COMMAND_RESPONSES)
    async def act(ref: Ref, body: ActionIn) -> ActionAccepted:
        """A department (or the triage desk, or a supervisor) acts on a petition."""
        pool: asyncpg.Pool = state.pool
        rule = ACTION_RULES[body.action]
        reference = state.reference.current
        check_unit(reference, body.department, "department")
        target_department = getattr(body, "target_department", None)
        if target_department is not None and (
            target_department not in reference.departments or target_department == reference.triage
        ):
            raise Problem(422, "unknown_department",
                          f"no department {target_department} in the routing table", field="target_department")
        extension_days = getattr(body, "extension_days", None)
        category = getattr(body, "category", None)
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
            if extension_days is not None:
                extra["extension_days"] = extension_days
            if category is not None:
                extra["category"] = category
            event = PetitionActionTaken(
                event_id=uuid.uuid4(),
                occurred_at=now,
                petition_id=row["id"],
                action=ActionType(body.action),
                department_code=body.department,
                note=body.note,
                target_department_code=target_department,
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
            if target_department:
                detail["target_department"] = target_department
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

    @api.get("/v1/petitions/{ref}", responses=LOOKUP_RESPONSES)
    async def get_petition(ref: Ref) -> dict[str, Any]:
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
                {"at": t["at"].astimezone(LOCAL).isoformat(), "event": t["event"], **(t["detail"] or {})}
                for t in timeline
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
