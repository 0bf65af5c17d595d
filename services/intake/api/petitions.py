"""Petition routes: ``POST /v1/petitions``, ``POST /v1/petitions/{ref}/actions``, ``GET /v1/petitions/{ref}``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path
from fastapi.responses import Response

from services.intake import handlers, metrics, views
from services.intake.api.auth import Caller
from services.intake.api.errors import COMMAND_RESPONSES, CREATE_RESPONSES, LOOKUP_RESPONSES
from services.intake.commands import (
    ActionAccepted,
    ActionIn,
    ContactReveal,
    OpenSupervisionIn,
    PetitionAccepted,
    PetitionIn,
    SupervisionClosing,
)
from services.intake.store import IntakeStore
from services.intake.text import TEXT_PATTERN
from shared.events import utcnow
from shared.store import UnitOfWork

#: a petition id or tracking code in a path
Ref = Annotated[str, Path(max_length=64, pattern=TEXT_PATTERN, description="petition id or tracking code")]


def router(uow: Callable[[], UnitOfWork[IntakeStore]], ctx: handlers.Intake) -> APIRouter:
    api = APIRouter()

    @api.post("/v1/petitions", status_code=202, response_model=PetitionAccepted, responses=CREATE_RESPONSES)
    async def submit_petition(
        principal: Caller,
        body: PetitionIn,
        response: Response,
        # `str`, not `str | None`: a header is absent or a string, the spec says no "null"
        idempotency_key: Annotated[str, Header(max_length=200, pattern=TEXT_PATTERN)] = None,  # type: ignore[assignment]  # noqa: RUF013
    ) -> PetitionAccepted:
        accepted, new = await handlers.submit_petition(uow(), ctx, principal, body,
                                                       idempotency_key=idempotency_key, now=utcnow())
        if new:
            metrics.SUBMITTED.labels(body.channel.value, body.kind.value if body.kind else "unspecified").inc()
        response.headers["Location"] = f"/v1/petitions/{accepted.id}"
        return accepted

    @api.post("/v1/petitions/{ref}/actions", status_code=202, response_model=ActionAccepted,
              responses=COMMAND_RESPONSES)
    async def act(principal: Caller, ref: Ref, body: ActionIn) -> ActionAccepted:
        """A department (or the triage desk, or a supervisor) acts on a petition."""
        accepted = await handlers.act(uow(), ctx, principal, ref, body, now=utcnow())
        metrics.ACTIONS.labels(body.action).inc()
        return accepted

    @api.get("/v1/petitions/{ref}", responses=LOOKUP_RESPONSES)
    async def get_petition(principal: Caller, ref: Ref) -> dict[str, Any]:
        return await views.petition(uow(), ctx, principal, ref)

    @api.post("/v1/petitions/{ref}/supervision", status_code=202, response_model=SupervisionClosing,
              responses=COMMAND_RESPONSES)
    async def open_supervision(principal: Caller, ref: Ref, body: OpenSupervisionIn) -> SupervisionClosing:
        """A supervisor opens a 督办 on a petition of its area, addressed to its holder."""
        return await handlers.open_supervision(uow(), ctx, principal, ref, body, now=utcnow())

    @api.post("/v1/petitions/{ref}/contacts", responses=COMMAND_RESPONSES)
    async def reveal_contacts(principal: Caller, ref: Ref, body: ContactReveal) -> dict[str, Any]:
        """The petitioner's contacts, with a reason; every reveal is written to the audit log."""
        return await handlers.reveal_contacts(uow(), ctx, principal, ref, body.reason, now=utcnow())

    return api
