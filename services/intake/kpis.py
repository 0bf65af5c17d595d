"""The 三率 (响应率, 解决率, 满意率), their score and the ranking within an area: the query side.

The counters come from the projection (``intake.kpi_daily``, fed by events: assignments and
on-time sign-fors by the read model, follow-ups by the follow-up command), summed over the
days asked for; never from scanning petitions. The rules are
:mod:`services.intake.domain.loop`; ``handbook/KPIS.md`` has the definitions and a worked
example.

Who sees what: a department clerk its own departments; a supervisor the departments of its
area; an auditor and an administrator every one. A ranking is always among all the
departments of the area with figures in the range, whoever asks.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import asdict
from datetime import date
from typing import Any

from services.intake.domain.loop import KpiCounts, Rates, rank, rates
from services.intake.handlers import Intake, scope_of
from services.intake.store import IntakeStore
from shared.errors import BadInput, Forbidden
from shared.identity import Principal, Role
from shared.reference.directory import area_token
from shared.store import UnitOfWork

__all__ = ["Range", "figures", "month_range", "month_rates", "parse_range", "table"]

_MONTH = re.compile(r"^([1-9][0-9]{3})-(0[1-9]|1[0-2])$")

Range = tuple[date, date]


def month_range(period: str) -> Range:
    found = _MONTH.fullmatch(period)
    if found is None:
        raise BadInput("period is a month: YYYY-MM", code="bad_period", field="period")
    year, month = int(found.group(1)), int(found.group(2))
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def parse_range(period: str | None, start: date | None, end: date | None, today: date) -> Range:
    """A month (`period`), or a range of days (`start`..`end`, both included); the current month
    by default."""
    if period is not None:  # a month wins over from/to
        return month_range(period)
    if start is None and end is None:
        return month_range(today.strftime("%Y-%m"))
    start = start or (end or today).replace(day=1)
    return start, end or today  # a range that ends before it starts has no days, and no figures


def _rate(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def _tokens_asked(ctx: Intake, area: str) -> str:
    """An area given as a token (A3) or a gazetteer code (430103): its token (an unknown one is
    an area without departments, hence without figures)."""
    areas = ctx.reference.current.areas
    return areas[area][0] if area in areas else area


def _check_role(principal: Principal) -> None:
    if principal.role not in (Role.ADMIN, Role.AUDITOR, Role.DEPARTMENT, Role.SUPERVISOR):
        raise Forbidden(f"a {principal.role.value} principal does not read the 三率", code="role_cannot_read")


def _check(ctx: Intake, principal: Principal, department: str | None, token: str) -> None:
    if principal.role in (Role.ADMIN, Role.AUDITOR):
        return
    if principal.role is Role.DEPARTMENT:
        if department is not None and department in principal.departments:
            return
        raise Forbidden(f"{principal.subject} sees the figures of its own departments only", code="not_your_unit")
    if principal.role is Role.SUPERVISOR:
        scope = scope_of(ctx, principal)
        if scope is not None and (scope.is_root or token in scope.tokens):
            return
        raise Forbidden(f"{token} is outside the area of {principal.subject}", code="not_your_unit")
    raise Forbidden(f"a {principal.role.value} principal does not read the 三率", code="role_cannot_read")


async def figures(
    uow: UnitOfWork[IntakeStore], ctx: Intake, principal: Principal, *, department: str | None, area: str | None,
    days: Range,
) -> dict[str, Any]:
    """The 三率 of one department, or of every department of an area, over `days`, each with
    the counts behind it, the score and its rank in its area. Neither given: the caller's own
    (a clerk's first department, a supervisor's area; an auditor or an administrator is asked
    to name one)."""
    if department is None and area is None:
        if principal.role is Role.DEPARTMENT and principal.departments:
            department = sorted(principal.departments)[0]
        elif principal.role is Role.SUPERVISOR and principal.area:
            area = principal.area
        elif principal.role in (Role.ADMIN, Role.AUDITOR):
            raise BadInput("name a department or an area", code="department_or_area", field="department")
    if department is not None:
        area = None
    reference = ctx.reference.current
    if department is not None and department not in reference.departments:
        raise BadInput(f"no department {department}", code="unknown_department", field="department")
    _check_role(principal)
    token = area_token(department) if department is not None else _tokens_asked(ctx, area or "")
    _check(ctx, principal, department, token)
    found: dict[str, dict[str, int]] = {}
    if days[0] <= days[1]:
        async with uow.begin(snapshot=True) as store:
            found = await store.kpi_counts(days[0], days[1], [token])
    policy = ctx.loop
    computed: dict[str, tuple[KpiCounts, Rates]] = {}
    for code, counters in found.items():
        counts = KpiCounts(**counters)
        computed[code] = (counts, rates(counts, policy))
    if department is not None and department not in computed:
        computed[department] = (KpiCounts(), rates(KpiCounts(), policy))
    ranks = rank({code: r.score for code, (_, r) in computed.items()})
    ranked = sum(1 for v in ranks.values() if v is not None)
    shown = [department] if department is not None else sorted(computed, key=lambda c: (ranks[c] or 10**6, c))
    return {
        "from": days[0].isoformat(), "to": days[1].isoformat(), "area": token,
        "weights": {"basically_satisfied": policy.basically_satisfied_weight,
                    "score": dict(zip(("response", "resolution", "satisfaction"), policy.score_weights, strict=True))},
        "items": [{
            "department": code, "name": reference.names.get(code, code), "area": token,
            "counts": asdict(computed[code][0]),
            "rates": {"response": _rate(computed[code][1].response), "resolution": _rate(computed[code][1].resolution),
                      "satisfaction": _rate(computed[code][1].satisfaction)},
            "score": _rate(computed[code][1].score), "rank": ranks[code], "ranked": ranked,
        } for code in shown],
    }


async def month_rates(uow: UnitOfWork[IntakeStore], ctx: Intake, today: date) -> dict[str, Rates]:
    """Every department's rates for the month of `today` (the Prometheus gauges)."""
    start, end = month_range(today.strftime("%Y-%m"))
    async with uow.begin(snapshot=True) as store:
        found = await store.kpi_counts(start, end, None)
    return {code: rates(KpiCounts(**counters), ctx.loop) for code, counters in found.items()}


async def table(uow: UnitOfWork[IntakeStore], ctx: Intake, days: Range) -> list[dict[str, Any]]:
    """Every department with figures in `days`: its counts, rates, score and rank in its area
    (the export of ``petitionctl kpis export``)."""
    async with uow.begin(snapshot=True) as store:
        found = await store.kpi_counts(days[0], days[1], None)
    names = ctx.reference.current.names
    computed = {code: (KpiCounts(**c), rates(KpiCounts(**c), ctx.loop)) for code, c in found.items()}
    rows = []
    for token in sorted({area_token(code) for code in computed}):
        mine = {code: r.score for code, (_, r) in computed.items() if area_token(code) == token}
        ranks = rank(mine)
        for code in sorted(mine, key=lambda c: (ranks[c] or 10**6, c)):
            counts, r = computed[code]
            rows.append({
                "from": days[0].isoformat(), "to": days[1].isoformat(), "area": token, "department": code,
                "name": names.get(code, code), **asdict(counts),
                "response_rate": _rate(r.response), "resolution_rate": _rate(r.resolution),
                "satisfaction_rate": _rate(r.satisfaction), "score": _rate(r.score), "rank": ranks[code],
                "ranked": sum(1 for v in ranks.values() if v is not None),
            })
    return rows
