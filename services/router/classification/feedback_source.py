"""The router's records of people's decisions, read as classifier feedback (see :mod:`.feedback`)."""

from __future__ import annotations

import asyncio

from services.router.classification.feedback import FeedbackRow, categories_by_type, feedback_rows
from services.router.config import load_routing_table
from shared.settings import Settings

__all__ = ["from_database"]

TRIAGE = """SELECT DISTINCT ON (petition_id) petition_id, title, content, decided_category, department_code
              FROM router.triage_decision ORDER BY petition_id, decided_at DESC"""
#: returned petitions and the department that holds them now
KEPT = """SELECT petition_id, title, content, department_code FROM router.assignment
           WHERE cardinality(returned_by) > 0 AND department_code <> $1"""


def from_database(dsn: str, settings: Settings) -> list[FeedbackRow]:
    import asyncpg

    table = load_routing_table(settings.routing_table_path, settings.gazetteer_path)

    async def run() -> list[FeedbackRow]:
        conn = await asyncpg.connect(dsn)
        try:
            triage = await conn.fetch(TRIAGE)
            kept = await conn.fetch(KEPT, table.triage.code)
        finally:
            await conn.close()
        return feedback_rows(triage, kept, categories_by_type(table.rules))

    return asyncio.run(run())
