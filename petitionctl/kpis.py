"""``petitionctl kpis export --period YYYY-MM [--output FILE]``: the 三率 of every department as
CSV (one row per department with figures: its counts, the three rates, the score and its rank
in its area), from the projection intake keeps (services/intake/kpis.py)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from pathlib import Path

from petitionctl.tokens import USAGE_ERROR
from shared.settings import load_settings


def _export(args: argparse.Namespace) -> int:
    from datetime import datetime

    from services.intake import kpis
    from services.intake.handlers import Intake
    from services.intake.reference import ReferenceHolder, load_loop_policy
    from services.intake.store import PgIntakeStore
    from shared.db import create_pool
    from shared.errors import BadInput
    from shared.store import PgUnitOfWork

    settings = load_settings()
    try:
        days = kpis.month_range(args.period)
    except BadInput as exc:
        print(f"petitionctl kpis export: error: {exc.message}", file=sys.stderr)
        return USAGE_ERROR
    ctx = Intake(reference=ReferenceHolder(settings), hmac_key=b"", received_at_earliest=datetime.min,
                 received_at_max_future_seconds=0, loop=load_loop_policy(settings.loop_policy_path))

    async def run() -> list[dict[str, object]]:
        pool = await create_pool(args.dsn or settings.pg_dsn, max_size=1)
        try:
            return await kpis.table(PgUnitOfWork(pool, "intake", PgIntakeStore), ctx, days)
        finally:
            await pool.close()

    rows = asyncio.run(run())
    fields = ["from", "to", "area", "department", "name", "assignments", "signed_in_time", "follow_ups",
              "rated_resolved", "satisfied", "basically_satisfied", "unsatisfied", "unreachable", "reopened",
              "resolutions", "resolved_in_time", "response_rate", "resolution_rate", "satisfaction_rate", "score",
              "rank", "ranked"]
    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    finally:
        if args.output:
            out.close()
    if args.output:
        print(f"wrote {len(rows)} departments to {Path(args.output)}", file=sys.stderr)
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kpis = sub.add_parser("kpis", help="the 三率 (响应率, 解决率, 满意率)")
    kpis_sub = kpis.add_subparsers(dest="kpis_command", required=True)
    export = kpis_sub.add_parser("export", help="every department's figures for a month, as CSV")
    export.add_argument("--period", required=True, help="the month, YYYY-MM")
    export.add_argument("--output", help="a file (default: standard output)")
    export.add_argument("--dsn", help="PostgreSQL (default PETITION_PG_DSN)")
    export.set_defaults(func=_export)
