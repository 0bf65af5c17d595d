"""``GET /v1/alerts``: the early-warning alerts (预警) of a supervisor's area.

The watch service finds surges (more petitions about one category in one area and window than
the area's history leads to expect) and clusters (one incident reported by many) and publishes
them on ``petition.alerts``; the read model keeps each alert's latest version. A supervisor
reads those of its area's subtree (:func:`services.intake.views.alerts`); the other roles get
``403``. A petition a person unlinked from a cluster's incident (the ``unlink`` action) is
listed under ``unlinked_petition_ids``, no longer under ``petition_ids``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from services.intake import handlers, views
from services.intake.api.auth import Caller
from services.intake.api.errors import LIST_RESPONSES
from services.intake.commands import AlertList
from services.intake.store import IntakeStore
from shared.store import UnitOfWork

#: a gazetteer code: a province, city or district (6 digits), or a street / community below one
AREA_PATTERN = r"^[0-9]{6}([0-9]{3}){0,2}$"


def router(uow: Callable[[], UnitOfWork[IntakeStore]], ctx: handlers.Intake) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/alerts", response_model=AlertList, responses=LIST_RESPONSES)
    async def list_alerts(
        principal: Caller,
        state_: Annotated[Literal["active", "closed", "all"], Query(alias="state")] = "active",
        kind: Annotated[Literal["surge", "cluster"], Query(  # noqa: RUF013 - absent or a string: no "null" in the spec
            description="surges or clusters only; both when absent")] = None,  # type: ignore[assignment]  # absent means None; the spec says no "null"
        area: Annotated[str, Query(pattern=AREA_PATTERN,  # noqa: RUF013 - absent or a string: no "null" in the spec
                                   description="a gazetteer code of the caller's area: its alerts and those of "
                                               "the areas below it; the caller's whole area when absent")] = None,  # type: ignore[assignment]  # absent means None; the spec says no "null"
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        """Early-warning alerts (预警) of the caller's area: active ones by default (`state`),
        the active first, then the riskiest (`level`), then the newest."""
        return await views.alerts(uow(), ctx, principal, state=state_, kind=kind, area=area, limit=limit)

    return api
