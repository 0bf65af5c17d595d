"""The public board (晒单) and its open data: resolved cases, anonymised, and each department's
monthly figures. No login; nothing personal.

A case shows what 信访 transparency asks for (依据、标准、流程、时限、结果): its category, the
district, when it was received and resolved, the time limit and whether it was met, the
process (the steps, dated, never the units' notes), the reply and its basis, and the
follow-up's verdict; its title and text anonymised by :func:`services.intake.domain.scrub.scrub`
(the petitioner's own name too, which only intake knows). Left out: accusations, cases about a
unit, cases a department withheld (``public: false`` on resolving), the hidden categories
(``board.hidden_categories`` of ``loop.yaml``), and every case not yet resolved.

The monthly statistics are the 三率 projection's (never a scan of petitions): per department,
the three rates, the score and the share of resolutions within their limit.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.intake.domain.loop import KpiCounts, rates
from services.intake.domain.scrub import scrub
from services.intake.handlers import Intake
from services.intake.kpis import month_range
from services.intake.store import IntakeStore, PublicCase
from shared.store import UnitOfWork

__all__ = ["CASE_FIELDS", "STAT_FIELDS", "cases", "csv_of", "month_range_checked", "stats", "this_month"]

LOCAL = ZoneInfo("Asia/Shanghai")
STEP_NAMES = {
    "submitted": "受理", "routed": "派单", "reassigned": "改派", "reopened": "重办", "accept": "签收",
    "return": "退单", "request_extension": "申请延期", "approve_extension": "批准延期", "resolve": "办结",
    "follow_up": "回访", "supervision_opened": "督办", "escalated": "升级督办",
}
SATISFACTION_NAMES = {"satisfied": "满意", "basically_satisfied": "基本满意", "unsatisfied": "不满意"}
CASE_FIELDS = ("case", "category", "district", "department", "received", "resolved", "deadline", "on_time",
               "title", "content", "reply", "basis", "follow_up", "process")
STAT_FIELDS = ("department", "name", "assignments", "response_rate", "follow_ups", "resolution_rate",
               "satisfaction_rate", "score", "resolutions", "on_time_share")


def _day(value: datetime | None) -> str | None:
    return value.astimezone(LOCAL).date().isoformat() if value is not None else None


def _case(c: PublicCase) -> dict[str, Any]:
    known = (c.petitioner_name,)
    return {
        "case": c.id,
        "category": c.category,
        "district": c.area,
        "department": c.department_name,
        "received": _day(c.received_at),
        "resolved": _day(c.resolved_at),
        "deadline": _day(c.due_at),
        "on_time": c.resolved_at <= c.due_at if c.due_at is not None else None,
        "title": scrub(c.title, known),
        "content": scrub(c.content, known),
        "reply": scrub(c.reply or "", known) or None,
        "basis": scrub(c.basis or "", known) or None,
        "follow_up": SATISFACTION_NAMES.get(c.satisfaction or ""),
        "process": [{"step": STEP_NAMES.get(event, event), "date": _day(at)} for event, at in c.steps],
    }


async def cases(uow: UnitOfWork[IntakeStore], ctx: Intake, *, limit: int = 50, before: datetime | None = None,
                month: str | None = None) -> list[dict[str, Any]]:
    """The latest resolved public cases (`before`: resolved before that; `month`: resolved then)."""
    start = end = None
    if month is not None:
        first, last = month_range(month)
        start = datetime.combine(first, time(), LOCAL)
        end = datetime.combine(last + timedelta(days=1), time(), LOCAL)
    async with uow.begin(snapshot=True) as store:
        found = await store.public_cases(limit=limit, before=before, start=start, end=end,
                                         hidden=ctx.loop.hidden_categories)
    return [_case(c) for c in found]


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


async def stats(uow: UnitOfWork[IntakeStore], ctx: Intake, month: str) -> dict[str, Any]:
    """Each department's figures for a month: the 三率, the score and the on-time share."""
    first, last = month_range(month)
    async with uow.begin(snapshot=True) as store:
        found = await store.kpi_counts(first, last, None)
    names = ctx.reference.current.names
    rows = []
    for code in sorted(found):
        counts = KpiCounts(**found[code])
        r = rates(counts, ctx.loop)
        rows.append({
            "department": code, "name": names.get(code, code), "assignments": counts.assignments,
            "response_rate": _share(counts.signed_in_time, counts.assignments),
            "follow_ups": counts.follow_ups,
            "resolution_rate": round(r.resolution, 4) if r.resolution is not None else None,
            "satisfaction_rate": round(r.satisfaction, 4) if r.satisfaction is not None else None,
            "score": round(r.score, 2) if r.score is not None else None,
            "resolutions": counts.resolutions,
            "on_time_share": _share(counts.resolved_in_time, counts.resolutions),
        })
    return {"period": month, "from": first.isoformat(), "to": last.isoformat(), "departments": rows}


def csv_of(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> str:
    """Rows as CSV (UTF-8, a header line; a case's process as "step date; …")."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        flat = dict(row)
        if isinstance(flat.get("process"), list):
            flat["process"] = "; ".join(f"{s['step']} {s['date']}" for s in flat["process"])
        writer.writerow(flat)
    return out.getvalue()


def month_range_checked(month: str) -> None:
    """BadInput unless `month` is YYYY-MM."""
    month_range(month)


def this_month(today: date) -> str:
    return today.strftime("%Y-%m")
