"""Intake's composition root: the HTTP API, the outbox relay and the read-model projector."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.intake import api_escalation
from services.intake.api import build_router, install_error_handlers
from services.intake.deadline import RequestDeadline
from services.intake.openapi import install_openapi
from services.intake.projector import make_processor, run_projector
from services.intake.reference import ReferenceHolder
from shared.consumer import group_instance_id
from shared.db import create_pool, ensure_common_tables, migrate
from shared.lag import run_lag_collector
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.supervise import Supervisor
from shared.worker import consumer_healthy, pg_and_kafka_ready

log = logging.getLogger(__name__)

SCHEMA = "intake"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class BodyLimit:
    """Answers 413 to a body larger than `limit` bytes, declared or streamed, readably.

    A client that sends the whole body before it reads (most do) would see its connection
    reset if the server answered and closed while the body was still arriving. So the 413
    goes out first, then the rest of the body is read and dropped, at most `drain_bytes`
    and `drain_seconds`, and the connection is closed (``Connection: close``) after it.
    """

    def __init__(self, app: ASGIApp, limit: int, *, drain_bytes: int = 64 * 1024 * 1024,
                 drain_seconds: float = 30.0) -> None:
        self.app, self.limit = app, limit
        self.drain_bytes, self.drain_seconds = drain_bytes, drain_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            # with `Expect: 100-continue` the client waits for a go-ahead that never comes
            expecting = headers.get(b"expect", b"").lower() == b"100-continue"
            await self._too_large(receive, send, more=not expecting)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.limit:
                await self._too_large(receive, send, more=more)
                return
            chunks.append(chunk)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, receive: Receive, send: Send, *, more: bool) -> None:
        body = b'{"error":"body_too_large","message":"the request body exceeds the limit"}'
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        # the answer is complete for the client, but not yet for the server: it goes on
        # reading (the server would stop delivering the body once the response ended)
        await send({"type": "http.response.body", "body": body, "more_body": True})
        if more:
            drained = 0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.drain_seconds):
                    while drained <= self.drain_bytes:
                        message = await receive()
                        if message["type"] != "http.request":
                            break
                        drained += len(message.get("body", b""))
                        if not message.get("more_body", False):
                            break
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class IntakeState:
    """What the routes need, built in the lifespan.

    Two pools: ``pool`` serves the HTTP routes, with tight statement and connect timeouts
    (a client is waiting: ``PETITION_DB_TIMEOUT_SECONDS``); ``work_pool`` serves the
    background loops (outbox relay, read model), whose batches may take longer, so that
    neither starves the other of connections.
    """

    reference: ReferenceHolder  # set by create_app, before any route runs

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: asyncpg.Pool | None = None
        self.work_pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | None = None
        self.loops = Supervisor("intake")
        self.projector: Any = None
        self.hmac_key = settings.hmac_key.get_secret_value().encode()

    def kick(self) -> None:
        if self.relay is not None:
            self.relay.kick()

    async def readiness(self) -> dict[str, bool]:
        projector = self.projector
        parts = {"read-model-consumer": lambda: consumer_healthy(projector)} if projector is not None else None
        return await pg_and_kafka_ready(self.pool, self.relay, loops=self.loops, parts=parts,
                                        timeout=min(3.0, max(self.settings.db_timeout_seconds, 0.5)))


def create_app(settings: Settings) -> FastAPI:
    state = IntakeState(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not state.hmac_key:
            raise RuntimeError("PETITION_HMAC_KEY must be set (make up generates one)")
        bound = settings.db_timeout_seconds
        work_pool = await create_pool(settings.pg_dsn, max_size=4, command_timeout=60, connect_timeout=10)
        async with work_pool.acquire() as conn:
            await migrate(conn, SCHEMA, MIGRATIONS)
            await ensure_common_tables(conn, SCHEMA)
        pool = await create_pool(settings.pg_dsn, max_size=10, command_timeout=bound, connect_timeout=bound)
        state.pool, state.work_pool = pool, work_pool
        state.relay = OutboxRelay(pool=work_pool, schema=SCHEMA, bootstrap=settings.kafka_bootstrap, service="intake")
        relay = state.relay
        state.projector = make_processor(work_pool, lambda _r: relay.kick(), max_record_bytes=settings.max_record_bytes)
        loops = state.loops
        loops.start("outbox-relay", relay.run, healthy=relay.healthy)
        loops.start("read-model", lambda: run_projector(
            bootstrap=settings.kafka_bootstrap, processor=state.projector,
            group_instance_id=group_instance_id("intake", settings.http_port, settings.instance_id),
            session_timeout_seconds=settings.consumer_session_timeout_seconds,
        ))
        # consumer lag of every platform group, exported by intake (one collector suffices)
        loops.start("consumer-lag", lambda: run_lag_collector(bootstrap=settings.kafka_bootstrap))
        try:
            yield
        finally:
            await loops.stop()
            await pool.close()
            await work_pool.close()

    app = FastAPI(
        title="Petition intake API",
        version="1",
        description="12345 hotline / 信访 petitions: submit, act, look up.",
        lifespan=lifespan,
    )
    state.reference = ReferenceHolder(settings)  # units, places, zero-report duties (reloaded on change)
    install_error_handlers(app)
    install_openapi(app, state.reference, settings)
    app.include_router(build_router(state))
    app.include_router(api_escalation.build_router(state))
    app.add_middleware(RequestDeadline, seconds=settings.request_timeout_seconds)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.state.intake = state
    return app
