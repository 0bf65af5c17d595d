"""Intake's HTTP API (FastAPI): the routes, the error shape, the request limits, the spec.

Routes are thin: parse (the models of :mod:`services.intake.commands`), call the service
layer (:mod:`services.intake.handlers` for commands, :mod:`services.intake.views` for
queries), answer. Commands answer ``202`` only after the change and its outbox row are
committed together; a database outage answers ``503``, never a ``202``; bad input a 4xx
with field-level errors, changing nothing (:mod:`services.intake.api.errors`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import generate_latest

from services.intake.api import alerts, auth, kpis, petitions, supervision
from services.intake.api.gauges import KpiGauges
from services.intake.handlers import Intake
from services.intake.store import IntakeStore
from shared.store import UnitOfWork

__all__ = ["build_router"]


def build_router(
    uow: Callable[[], UnitOfWork[IntakeStore]], ctx: Intake, readiness: Callable[[], Awaitable[dict[str, bool]]]
) -> APIRouter:
    """Every route; `uow` gives the unit of work of the HTTP pool (once the app has started)."""
    api = APIRouter()
    api.include_router(petitions.router(uow, ctx))
    api.include_router(supervision.router(uow, ctx))
    api.include_router(kpis.router(uow, ctx))
    api.include_router(alerts.router(uow, ctx))
    api.include_router(auth.router())

    @api.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    gauges = KpiGauges(uow, ctx)

    @api.get("/metrics", include_in_schema=False)
    async def metrics_page() -> Response:
        await gauges.refresh()
        return Response(generate_latest(), media_type="text/plain; version=0.0.4")

    return api
