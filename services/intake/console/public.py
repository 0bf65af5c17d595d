"""The public board (晒单) and its open data, no login (services/intake/board.py):

* ``/public/cases`` (HTML), ``/public/cases.json``, ``/public/cases.csv``: resolved cases,
  anonymised, the latest first; ``?month=YYYY-MM`` for one month's, ``?before=<ISO time>`` for
  the next page, ``?limit=`` (at most 500; 50 by default, the open data 500);
* ``/public/stats`` (HTML), ``/public/stats.json``, ``/public/stats.csv``: each department's
  monthly figures (``?month=YYYY-MM``, the current month by default).

Rate-limited like every page (by address).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from services.intake import board, handlers
from services.intake.console import web
from services.intake.reference import local_today
from services.intake.store import IntakeStore
from shared.errors import BadInput
from shared.store import UnitOfWork

__all__ = ["routes"]


def _params(request: Request, default_limit: int) -> tuple[int, datetime | None, str | None]:
    q = request.query_params
    try:
        limit = min(max(int(q.get("limit") or default_limit), 1), 500)
        before = datetime.fromisoformat(q["before"]) if q.get("before") else None
    except ValueError:
        raise BadInput("limit is a number and before an ISO 8601 time with its offset", code="bad_query") from None
    if before is not None and before.tzinfo is None:
        raise BadInput("before needs its offset (e.g. +08:00)", code="bad_query")
    month = q.get("month") or None
    if month is not None:
        board.month_range_checked(month)
    return limit, before, month


def routes(uow: Callable[[], UnitOfWork[IntakeStore]], ctx: handlers.Intake) -> APIRouter:
    api = APIRouter(include_in_schema=False)

    async def _cases(request: Request, default_limit: int) -> list[dict[str, Any]] | Response:
        try:
            limit, before, month = _params(request, default_limit)
        except BadInput as exc:
            return JSONResponse({"error": exc.code, "message": exc.message}, status_code=400)
        return await board.cases(uow(), ctx, limit=limit, before=before, month=month)

    @api.get("/public/cases")
    async def cases_page(request: Request) -> Response:
        found = await _cases(request, 50)
        if isinstance(found, Response):
            return found
        return web.page("board.html", {"cases": found, "month": request.query_params.get("month") or ""})

    @api.get("/public/cases.json")
    async def cases_json(request: Request) -> Response:
        found = await _cases(request, 500)
        if isinstance(found, Response):
            return found
        return JSONResponse({"cases": found, "count": len(found)})

    @api.get("/public/cases.csv")
    async def cases_csv(request: Request) -> Response:
        found = await _cases(request, 500)
        if isinstance(found, Response):
            return found
        return Response(board.csv_of(found, board.CASE_FIELDS), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="cases.csv"'})

    async def _stats(request: Request) -> dict[str, Any] | Response:
        month = request.query_params.get("month") or board.this_month(local_today())
        try:
            board.month_range_checked(month)
        except BadInput as exc:
            return JSONResponse({"error": exc.code, "message": exc.message}, status_code=400)
        return await board.stats(uow(), ctx, month)

    @api.get("/public/stats")
    async def stats_page(request: Request) -> Response:
        found = await _stats(request)
        if isinstance(found, Response):
            return found
        return web.page("stats.html", {"stats": found})

    @api.get("/public/stats.json")
    async def stats_json(request: Request) -> Response:
        found = await _stats(request)
        return found if isinstance(found, Response) else JSONResponse(found)

    @api.get("/public/stats.csv")
    async def stats_csv(request: Request) -> Response:
        found = await _stats(request)
        if isinstance(found, Response):
            return found
        return Response(board.csv_of(found["departments"], board.STAT_FIELDS), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="stats-{found["period"]}.csv"'})

    return api
