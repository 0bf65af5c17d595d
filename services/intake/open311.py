"""The Open311 GeoReport v2 facade's service layer: a posted request goes through the same
intake as the JSON API, and ``GET requests`` reads the public side of petitions.

* **Submitting**: the form is read by :func:`services.intake.domain.open311.read_request`, then
  validated as a :class:`~services.intake.commands.PetitionIn` (the same limits and patterns as
  the JSON API) and recorded by :func:`services.intake.handlers.submit_petition` (durable, with
  its outbox row, before the answer), in the name of the client's key, by the client's channel,
  with the client recorded on the petition and its timeline.
* **Reading**: what anyone may read of a petition (:class:`~services.intake.store.PublicRequest`)
  in the standard's fields. Never the petitioner, never the text (``description`` is left
  empty: a citizen's words name people), the reply anonymised (services.intake.domain.scrub), the address
  as the area that holds it. Accusations, petitions about a unit and unlisted services are not
  public at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from services.intake import handlers
from services.intake.accounts_store import ApiClient
from services.intake.clients import principal_of
from services.intake.commands import Origin, PetitionAccepted, PetitionIn
from services.intake.domain.open311 import (
    CLOSED_STATUSES,
    Catalogue,
    Open311Error,
    RequestQuery,
    public_status,
    read_request,
)
from services.intake.domain.scrub import scrub
from services.intake.store import IntakeStore, PublicRequest
from services.intake.views import TRACKING_CODE
from shared.errors import BadInput, Conflict
from shared.store import UnitOfWork

__all__ = ["NOTICE", "fields_of", "request", "requests", "submit", "token"]

LOCAL = ZoneInfo("Asia/Shanghai")
#: the notice of a request not yet routed
NOTICE = "已受理，正在分派承办单位；可凭查询码在 /track 查询办理进度。"
UNROUTED = frozenset({"submitted", "triage"})
#: the form's names for the fields PetitionIn reports errors on
_FIELD_NAMES = {"location.admin_code": "address_id", "location.address": "address_string", "content": "description",
                "petitioner.name": "first_name/last_name", "petitioner.phone": "phone",
                "petitioner.email": "email", "persons": "attribute[persons]", "kind": "attribute[kind]"}


def _field(loc: Sequence[Any]) -> str:
    dotted = ".".join(str(p) for p in loc)
    return _FIELD_NAMES.get(dotted, dotted)


async def submit(
    uow: UnitOfWork[IntakeStore], ctx: handlers.Intake, client: ApiClient, catalogue: Catalogue,
    form: Mapping[str, Sequence[str]], *, now: datetime,
) -> tuple[PetitionAccepted, PetitionIn]:
    """A ``POST requests`` form, recorded as a petition; Open311Error (400) when refused."""
    submission = read_request(form, catalogue)
    try:
        body = PetitionIn.model_validate({**submission.petition, "channel": client.channel})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise Open311Error(400, f"{_field(first['loc'])}: {first['msg']}") from None
    origin = Origin(client.name, submission.service.code, submission.lat, submission.long, submission.media_url)
    try:
        accepted, _ = await handlers.submit_petition(uow, ctx, principal_of(client), body, idempotency_key=None,
                                                     now=now, origin=origin)
    except (BadInput, Conflict) as exc:
        field = _FIELD_NAMES.get(exc.field or "", exc.field) if isinstance(exc, BadInput) else None
        raise Open311Error(400, f"{field}: {exc.message}" if field else exc.message) from None
    return accepted, body


def _hidden(catalogue: Catalogue) -> tuple[list[str], list[str]]:
    return list(catalogue.unlisted), [s.code for s in catalogue.services if not s.listed]


async def requests(uow: UnitOfWork[IntakeStore], catalogue: Catalogue, query: RequestQuery) -> list[PublicRequest]:
    hidden, hidden_codes = _hidden(catalogue)
    open_ = None if query.statuses is None or len(query.statuses) == 2 else query.statuses[0] == "open"
    async with uow.begin(snapshot=True) as store:
        return await store.public_requests(
            ids=query.ids, categories=query.categories, codes=query.codes, start=query.start, end=query.end,
            closed=sorted(CLOSED_STATUSES), open_=open_, hidden=hidden, hidden_codes=hidden_codes,
            limit=query.limit,
        )


async def request(uow: UnitOfWork[IntakeStore], catalogue: Catalogue, request_id: str) -> PublicRequest:
    found = await requests(uow, catalogue, RequestQuery((request_id,), None, None, None, None, None, 1))
    if not found:
        raise Open311Error(404, f"no service request {request_id}")
    return found[0]


async def token(uow: UnitOfWork[IntakeStore], value: str) -> str:
    """The service_request_id of a token (a petition's tracking code)."""
    code = value.strip().upper()
    if TRACKING_CODE.fullmatch(code) is None:
        raise Open311Error(404, f"no token {value}")
    async with uow.begin(snapshot=True) as store:
        row = await store.petition(code)
    if row is None or row.tracking_code != code:
        raise Open311Error(404, f"no token {value}")
    return row.id


def w3c(value: datetime | None) -> str | None:
    return value.astimezone(LOCAL).replace(microsecond=0).isoformat() if value is not None else None


def fields_of(r: PublicRequest, catalogue: Catalogue) -> dict[str, Any]:
    """A petition in the fields of ``GET requests``, in the standard's order."""
    service = catalogue.of_category(r.category) or catalogue.service(r.service_code or "")
    status = public_status(r.status)
    unrouted = r.status in UNROUTED
    jurisdiction = r.jurisdiction or {}
    return {
        "service_request_id": r.id,
        "status": status,
        "status_notes": scrub(r.reply, (r.petitioner_name,)) if status == "closed" and r.reply else None,
        "service_name": service.name if service else None,
        "service_code": service.code if service else None,
        "description": None,
        "agency_responsible": None if unrouted else r.department_name,
        "service_notice": NOTICE if unrouted else None,
        "requested_datetime": w3c(r.received_at),
        "updated_datetime": w3c(r.updated_at),
        "expected_datetime": w3c(r.expected_at),
        "address": jurisdiction.get("name"),
        "address_id": jurisdiction.get("code") or r.admin_code,
        "zipcode": None,
        "lat": r.lat,
        "long": r.long,
        "media_url": r.media_url,
    }
