"""Intake's composition root: the HTTP API, the outbox relay and the read model, wired.

Two pools: the HTTP routes' (tight statement and connect timeouts: a client is waiting,
``PETITION_DB_TIMEOUT_SECONDS``) and the background loops' (outbox relay, read model, whose
batches may take longer), so neither starves the other of connections.

``app.state.verifier`` proves who calls (:mod:`shared.auth.verify`, built from
``PETITION_JWT_*`` / ``PETITION_OIDC_*``; the embedded issuer's key ring is created at the
first start). Middleware, outermost first: the rate limit (before the body is read), the
body limit, the request deadline.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
from fastapi import FastAPI

from services.intake import console
from services.intake.accounts_store import AccountStore, PgAccountStore
from services.intake.api import build_router, open311
from services.intake.api.errors import install_error_handlers
from services.intake.api.limits import BodyLimit, RequestDeadline
from services.intake.api.openapi import install_openapi
from services.intake.api.ratelimit import Buckets, RateLimit
from services.intake.console import public
from services.intake.console.suggest import RouterSuggestions
from services.intake.domain.accounts import LockoutPolicy
from services.intake.handlers import Intake
from services.intake.mail import MailIntake, MailSettings, start_listener
from services.intake.readmodel.consumer import make_processor, run_projector
from services.intake.readmodel.store import PgReadModelStore
from services.intake.reference import ReferenceHolder, load_loop_policy
from services.intake.store import IntakeStore, PgIntakeStore
from services.intake.workers import consumer_instance_id, runs_lag_collector
from shared import retry
from shared.auth.settings import AuthSettings
from shared.auth.verify import build_verifier
from shared.consumer import BatchProcessor
from shared.db import create_pool, open_schema
from shared.errors import Unavailable
from shared.kafka_client import KafkaAccess
from shared.lag import run_lag_collector
from shared.outbox import OutboxRelay
from shared.settings import Settings
from shared.store import PgUnitOfWork, UnitOfWork
from shared.supervise import Supervisor
from shared.worker import consumer_healthy, pg_and_kafka_ready

log = logging.getLogger(__name__)

SCHEMA = "intake"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class IntakeState:
    """What runs while the app is up: pools, relay, read model, loops (set by the lifespan)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: asyncpg.Pool | None = None
        self.work_pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | None = None
        self.loops = Supervisor("intake")
        self.projector: BatchProcessor | None = None
        self.reference = ReferenceHolder(settings)  # units, places, zero-report duties (reloaded on change)
        self._uow: PgUnitOfWork[PgIntakeStore] | None = None
        self._accounts: PgUnitOfWork[PgAccountStore] | None = None
        self.ctx = Intake(
            reference=self.reference,
            hmac_key=settings.hmac_key.get_secret_value().encode(),
            received_at_earliest=settings.received_at_earliest,
            received_at_max_future_seconds=settings.received_at_max_future_seconds,
            kick=self.kick,
            loop=load_loop_policy(settings.loop_policy_path),
        )

    def uow(self) -> UnitOfWork[IntakeStore]:
        if self._uow is None:
            raise Unavailable("intake is starting; retry")
        return self._uow

    def accounts(self) -> UnitOfWork[AccountStore]:
        if self._accounts is None:
            raise Unavailable("intake is starting; retry")
        return self._accounts

    def kick(self) -> None:
        if self.relay is not None:
            self.relay.kick()

    async def readiness(self) -> dict[str, bool]:
        projector = self.projector
        parts = {"read-model-consumer": lambda: consumer_healthy(projector)} if projector is not None else None
        return await pg_and_kafka_ready(self.pool, self.relay, loops=self.loops, parts=parts,
                                        timeout=min(3.0, max(self.settings.db_timeout_seconds, 0.5)))


def create_app(settings: Settings, auth: AuthSettings | None = None) -> FastAPI:
    state = IntakeState(settings)
    auth = auth or AuthSettings()
    verifier = build_verifier(auth, settings.run_dir)
    # the operator desk asks the router where a petition being typed in would go
    suggestions = RouterSuggestions(settings.router_url or f"http://127.0.0.1:{settings.router_port}", auth,
                                    settings.run_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not state.ctx.hmac_key:
            raise RuntimeError("PETITION_HMAC_KEY must be set (make up generates one)")
        verifier.start()  # the key ring, created on the first start
        bound = settings.db_timeout_seconds
        kafka = KafkaAccess.from_settings(settings)

        async def connect() -> tuple[asyncpg.Pool, asyncpg.Pool]:
            work = await open_schema(settings.pg_dsn, SCHEMA, MIGRATIONS, max_size=4, command_timeout=60,
                                     connect_timeout=10)
            try:
                return work, await create_pool(settings.pg_dsn, max_size=10, command_timeout=bound,
                                               connect_timeout=bound)
            except BaseException:
                await work.close()
                raise

        # started while PostgreSQL is down (restarted in an outage, or before the database on a
        # host's boot): wait for it rather than exit; the port opens once it answers
        work_pool, pool = await retry.forever(connect, what="intake: connecting to PostgreSQL",
                                              min_backoff=0.5, max_backoff=5.0, logger=log)
        state.pool, state.work_pool = pool, work_pool
        state._uow = PgUnitOfWork(pool, SCHEMA, PgIntakeStore)
        state._accounts = PgUnitOfWork(pool, SCHEMA, PgAccountStore)
        relay = state.relay = OutboxRelay(pool=work_pool, schema=SCHEMA, kafka=kafka, service="intake")
        state.projector = make_processor(
            PgUnitOfWork(work_pool, SCHEMA, PgReadModelStore), lambda _r: relay.kick(),
            triage_code=lambda: state.reference.current.triage, max_record_bytes=settings.max_record_bytes,
        )
        projector = state.projector
        loops = state.loops
        loops.start("outbox-relay", relay.run, healthy=relay.healthy)
        loops.start("read-model", lambda: run_projector(
            kafka=kafka, processor=projector,
            group_instance_id=consumer_instance_id(settings),
            session_timeout_seconds=settings.consumer_session_timeout_seconds,
        ))
        # consumer lag of every platform group, exported by intake (one collector suffices:
        # intake alone, or worker 1 of several)
        if runs_lag_collector(settings):
            loops.start("consumer-lag", lambda: run_lag_collector(kafka=kafka))
        mail: MailIntake | None = None
        listener = None
        if settings.mail_port:
            mail = MailIntake(state.uow, state.ctx, MailSettings(
                settings.mail_address, settings.mail_channel, settings.mail_max_bytes, settings.mail_relay,
                settings.mail_outbox or settings.run_dir / "mail" / "outbox",
            ))
            # every worker listens, on the one port (SO_REUSEPORT): mail keeps arriving while one dies
            listener = await start_listener(mail, settings.mail_host, settings.mail_port,
                                            reuse_port=bool(settings.intake_worker))
            log.info("mail: listening on %s:%d for %s", settings.mail_host, settings.mail_port, settings.mail_address)
        try:
            yield
        finally:
            if listener is not None:
                listener.close()
            if mail is not None:
                await mail.drain()
            await loops.stop()
            await pool.close()
            await work_pool.close()
            await verifier.aclose()
            await suggestions.aclose()

    app = FastAPI(
        title="Petition intake API",
        version="1",
        description="12345 hotline / 信访 petitions: submit, act, look up.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_openapi(app, state.reference, settings)
    app.include_router(build_router(state.uow, state.ctx, state.readiness))
    app.include_router(public.routes(state.uow, state.ctx))
    app.include_router(open311.router(
        state.uow, state.accounts, state.ctx, open311.load_catalogue(settings.open311_services_path),
        Buckets(settings.open311_rate_per_second, settings.open311_burst, 10_000)
        if settings.open311_rate_per_second > 0 else None,
    ))
    app.include_router(console.build(
        state.uow, state.accounts, state.ctx, secure_cookies=settings.console_secure_cookies,
        suggestions=suggestions,
        policy=LockoutPolicy(max_failures=settings.console_max_failed_logins,
                             lock_for=timedelta(minutes=settings.console_lockout_minutes),
                             session_for=timedelta(hours=settings.console_session_hours)),
    ))
    app.add_middleware(RequestDeadline, seconds=settings.request_timeout_seconds)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if settings.rate_limit_per_second > 0:
        buckets = Buckets(settings.rate_limit_per_second, settings.rate_limit_burst, settings.rate_limit_max_callers)
        app.add_middleware(RateLimit, buckets=buckets, verifier=verifier)
    app.state.intake = state
    app.state.verifier = verifier
    return app
