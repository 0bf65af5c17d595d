"""The 三率 as Prometheus gauges (``petition_kpi_rate``, ``petition_kpi_score``), for this month.

Refreshed when Prometheus scrapes ``/metrics``, at most every ``EVERY`` seconds and for at most
``BOUND`` seconds: the sums of the projection (one row per department and day) are a short
query, and while the database does not answer the scrape serves the last figures. Nothing
runs between scrapes, so a slow or frozen database costs no request anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from services.intake import handlers, kpis, metrics
from services.intake.reference import local_today
from services.intake.store import IntakeStore
from shared.store import UnitOfWork

__all__ = ["KpiGauges"]

log = logging.getLogger(__name__)

EVERY = 30.0
BOUND = 1.0


class KpiGauges:
    def __init__(self, uow: Callable[[], UnitOfWork[IntakeStore]], ctx: handlers.Intake) -> None:
        self._uow, self._ctx = uow, ctx
        self._next = 0.0

    async def refresh(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + EVERY
        try:
            found = await asyncio.wait_for(kpis.month_rates(self._uow(), self._ctx, local_today()), BOUND)
        except Exception as exc:  # noqa: BLE001 - an outage: the last figures stay, the scrape goes on
            log.debug("三率 gauges not refreshed: %r", exc)
            return
        for department, r in found.items():
            for name, value in (("response", r.response), ("resolution", r.resolution),
                                ("satisfaction", r.satisfaction)):
                if value is not None:
                    metrics.KPI_RATE.labels(department, name).set(value)
            if r.score is not None:
                metrics.KPI_SCORE.labels(department).set(r.score)
