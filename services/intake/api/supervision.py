"""督办 (supervision orders) and zero-report (零报告) routes.

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
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from services.intake import handlers, views
from services.intake.api.auth import Caller
from services.intake.api.errors import COMMAND_RESPONSES, CREATE_RESPONSES, LIST_RESPONSES
from services.intake.commands import (
    PERIOD_PATTERN,
    CloseSupervisionIn,
    SupervisionClosing,
    ZeroReportAccepted,
    ZeroReportIn,
)
from services.intake.reference import local_today
from services.intake.store import IntakeStore
from services.intake.text import TEXT_PATTERN
from shared import codes
from shared.events import utcnow
from shared.store import UnitOfWork


def router(uow: Callable[[], UnitOfWork[IntakeStore]], ctx: handlers.Intake) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/supervision", responses=LIST_RESPONSES)
    async def list_supervision(
        principal: Caller,
        unit: Annotated[codes.DepartmentCode, Query()],
        state_: Annotated[Literal["open", "closed", "all"], Query(alias="state")] = "open",
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        return await views.supervision_for(uow(), ctx, principal, unit, state_, limit, now=utcnow())

    @api.post("/v1/supervision/{supervision_id}/close", status_code=202, response_model=SupervisionClosing,
              responses=COMMAND_RESPONSES)
    async def close_supervision(principal: Caller, supervision_id: uuid.UUID,
                                body: CloseSupervisionIn) -> SupervisionClosing:
        return await handlers.close_supervision(uow(), ctx, principal, supervision_id, body, now=utcnow())

    @api.post("/v1/zero-reports", status_code=202, response_model=ZeroReportAccepted, responses=CREATE_RESPONSES)
    async def submit_zero_report(principal: Caller, body: ZeroReportIn) -> ZeroReportAccepted:
        now = utcnow()
        return await handlers.submit_zero_report(uow(), ctx, principal, body, now=now, today=local_today(now))

    @api.get("/v1/zero-reports", responses=LIST_RESPONSES)
    async def zero_report_compliance(
        principal: Caller,
        unit: Annotated[codes.DepartmentCode, Query()],
        period: Annotated[str, Query(pattern=PERIOD_PATTERN,  # noqa: RUF013 - absent or a string: no "null" in the spec
                                     description="a period id; one that names no real date has no rows")] = None,  # type: ignore[assignment]  # absent means None; the spec says no "null"
    ) -> dict[str, Any]:
        return await views.zero_report_compliance(uow(), ctx, principal, unit, period)

    @api.get("/v1/audit", responses=LIST_RESPONSES)
    async def audit_log(
        principal: Caller,
        petition: Annotated[str, Query(max_length=64, pattern=TEXT_PATTERN,  # noqa: RUF013 - absent or a string: no "null" in the spec
                                       description="a petition id; all petitions when absent")] = None,  # type: ignore[assignment]  # absent means None; the spec says no "null"
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        """The audit log of contact reveals, newest first (auditors)."""
        return await views.audit_log(uow(), principal, petition, limit)

    @api.get("/v1/admin/reference", responses=LIST_RESPONSES)
    async def reference_in_force(principal: Caller) -> dict[str, Any]:
        """The reference data in force (admins): its version and sizes, to confirm a reload."""
        return views.reference_in_force(ctx, principal)

    return api
