"""``GET /v1/kpis``: the 三率, their score and the ranking (services/intake/kpis.py)."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.intake import handlers, kpis
from services.intake.api.auth import Caller
from services.intake.api.errors import LIST_RESPONSES
from services.intake.commands import DepartmentCode
from services.intake.reference import local_today
from services.intake.store import IntakeStore
from shared.store import UnitOfWork

#: a day as YYYY-MM-DD (a string, not a number JSON Schema's `date` format would refuse and
#: FastAPI would take as a timestamp); 29 February of any year (read as the 28th in a common one)
DAY_PATTERN = (r"^[1-9][0-9]{3}-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)"
               r"|(0[13578]|1[02])-31|02-29)$")


def day_of(text: str | None) -> date | None:
    if text is None:
        return None
    year, month, day = (int(x) for x in text.split("-"))
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def router(uow: Callable[[], UnitOfWork[IntakeStore]], ctx: handlers.Intake) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/kpis", responses=LIST_RESPONSES)
    async def get_kpis(
        principal: Caller,
        department: Annotated[DepartmentCode | None, Query()] = None,
        area: Annotated[str | None, Query(pattern=r"^([A-Z][A-Z0-9]{0,7}|[0-9]{6})$")] = None,
        period: Annotated[str | None, Query(pattern=r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])$")] = None,
        from_: Annotated[str | None, Query(alias="from", pattern=DAY_PATTERN, description="YYYY-MM-DD")] = None,
        to: Annotated[str | None, Query(pattern=DAY_PATTERN, description="YYYY-MM-DD")] = None,
    ) -> dict[str, Any]:
        """响应率, 解决率 and 满意率 of a department (or of every department of an `area`: a token
        like A3 or a gazetteer code; neither: every department the caller oversees), for a month
        (`period=YYYY-MM`, default the current one; it wins over `from`/`to`) or the days
        `from`..`to`; the counts behind each rate, the weighted score and the rank among the
        area's departments. `department` wins over `area`. An area without figures, or a range
        that ends before it starts, has no items."""
        days = kpis.parse_range(period, day_of(from_), day_of(to), local_today())
        return await kpis.figures(uow(), ctx, principal, department=department, area=area, days=days)

    return api
