"""The end-to-end benchmark's bare baseline: a minimal FastAPI + asyncpg intake.

``POST /v1/petitions`` validates the body with a pydantic model (as FastAPI does), then in one
transaction inserts the row intake's ``insert_petition`` inserts (the same 18 columns of
``intake.petition``) and one ``intake.outbox`` row (topic ``petition.submitted``, the petition
id as key, the event as JSON), and answers 202 with the id and a tracking code. Its schema is
intake's own, built by intake's migrations in a database of its own, so the tables, indexes
and constraints are the same; the pool is opened by the same helper with the same size (10).

What it leaves out, and intake does: verifying the operator's token and the rate limit, the
petitioner's contact row, the timeline row, the Idempotency-Key's look-up and row, masking
personal numbers, the pseudonym (HMAC), the event's pydantic model, the relay that publishes
and deletes the outbox row, the read model and the metrics.

Run as intake is: ``python -m bench.e2e_baseline`` under uvicorn on ``PETITION_HTTP_PORT``,
against ``PETITION_PG_DSN``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from shared.db import open_schema

SCHEMA = "intake"
MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "intake" / "migrations"

_INSERT_PETITION = """INSERT INTO intake.petition (id, tracking_code, title, content, channel, kind,
     location, persons, petitioner_key, received_at, submitted_at, submitted_by, submitted_by_role,
     client, service_code, lat, long, media_url)
   VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)"""
_INSERT_OUTBOX = "INSERT INTO intake.outbox (topic, key, value, headers) VALUES ($1, $2, $3, $4)"


class Petitioner(BaseModel):
    name: str | None = None
    phone: str | None = None


class PetitionBody(BaseModel):
    title: str
    content: str
    channel: str
    kind: str | None = None
    petitioner: Petitioner | None = None
    location: dict[str, Any] | None = None
    persons: int = 1


def create_app(dsn: str) -> FastAPI:
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await open_schema(dsn, SCHEMA, MIGRATIONS, max_size=10, command_timeout=10)
        state["pool"] = pool
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(title="e2e baseline", lifespan=lifespan)

    @app.post("/v1/petitions", status_code=202)
    async def submit(body: PetitionBody) -> dict[str, str]:
        petition_id = str(uuid.uuid4())
        tracking = f"XF-{secrets.token_hex(5).upper()}"
        now = datetime.now(UTC)
        location = body.location or {}
        event = json.dumps({
            "event_type": "petition.submitted", "event_id": str(uuid.uuid4()), "occurred_at": now.isoformat(),
            "petition_id": petition_id, "tracking_code": tracking, "title": body.title, "content": body.content,
            "channel": body.channel, "kind": body.kind, "location": location, "persons": body.persons,
            "received_at": now.isoformat(),
        }, ensure_ascii=False).encode()
        async with state["pool"].acquire() as conn, conn.transaction():
            await conn.execute(_INSERT_PETITION, petition_id, tracking, body.title, body.content, body.channel,
                               body.kind, location, body.persons, None, now, now, "baseline", "operator",
                               None, None, None, None, None)
            await conn.execute(_INSERT_OUTBOX, "petition.submitted", petition_id.encode(), event, {})
        return {"id": petition_id, "tracking_code": tracking, "status": "submitted"}

    @app.get("/readyz")
    async def readyz() -> dict[str, bool]:
        return {"ready": "pool" in state}

    return app


def main() -> None:
    uvicorn.run(create_app(os.environ["PETITION_PG_DSN"]), host="127.0.0.1", port=int(os.environ["PETITION_HTTP_PORT"]),
                log_level="warning", access_log=False, timeout_graceful_shutdown=10)


if __name__ == "__main__":
    main()
