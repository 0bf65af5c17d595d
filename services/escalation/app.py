"""The escalation service's composition root: clocks, durable timers, the ladder, zero reports.

Consumes ``petition.routed`` (arm or re-arm clocks), ``petition.actions`` (stop, pause,
resume, extend clocks; close 督办) and ``zero_report.submitted``, applied by the consumer
core through :class:`~services.escalation.store.PgEscalationStore` with the functions of
:mod:`services.escalation.handlers`. Due timers live in PostgreSQL and are fired with
``FOR UPDATE SKIP LOCKED`` by any number of instances; firing a timer and writing its event
to the outbox commit together. A second loop evaluates the zero-report periods that have
closed since the last evaluation stored in PostgreSQL (so periods missed while the service
was down are caught up), escalates lapsed 督办 and refreshes the gauges.

Timer kinds: ``warning`` (a fraction of the period), ``breach`` (the deadline), ``escalate``
(ladder step `step`, planned when the breach or the previous step fires).

督办 are durable deadlines too: an open 督办 past its ``due_at`` is claimed from the
``supervision_due`` partial index with ``SKIP LOCKED``, marked ``overdue_at`` and escalated
one level above the unit that let it lapse (a new 督办, level ``overdue``), with its event,
in one transaction. A missing zero report opens a 督办 (level ``zero_report``) for the
supervising unit; every 督办 about that period closes when the unit reports for it.

Here: settings, data files, the pool and migrations, the outbox relay, the consumer and the
loops, and the metrics of what the handlers did (counted once their transaction committed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import yaml
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.escalation import handlers, metrics
from services.escalation.domain.deadlines import SHANGHAI
from services.escalation.domain.ladder import Ladder
from services.escalation.domain.policy import PolicyBook
from services.escalation.store import EscalationStore, PgEscalationStore
from shared import retry, topics
from shared.consumer import BatchProcessor, BatchResult
from shared.db import open_schema
from shared.events import utcnow
from shared.kafka_client import KafkaAccess
from shared.outbox import OutboxRelay
from shared.records import RawMessage
from shared.reference.calendar import known_until
from shared.reference.calendar_source import load_calendar
from shared.reference.obligations import Obligation, parse_obligations
from shared.settings import Settings
from shared.store import PgUnitOfWork, UnitOfWork
from shared.supervise import Supervisor
from shared.worker import (
    add_ops_pages,
    batch_agent,
    consumer_parts,
    make_app,
    pg_and_kafka_ready,
    start_when_reachable,
)

log = logging.getLogger(__name__)

SCHEMA = "escalation"
SERVICE = "escalation"
HERE = Path(__file__).resolve().parent
MIGRATIONS = HERE / "migrations"
POLICIES = HERE / "data" / "policies.yaml"
LADDER = HERE / "data" / "ladder.yaml"
OBLIGATIONS = HERE / "data" / "zero-report-obligations.yaml"

EventT = TypeVar("EventT")
OutcomeT = TypeVar("OutcomeT")


class EscalationSettings(BaseSettings):
    """Escalation-only knobs (prefix ``PETITION_ESCALATION_``); data files default to data/."""

    model_config = SettingsConfigDict(env_prefix="PETITION_ESCALATION_", extra="ignore", frozen=True)

    policies_path: Path = POLICIES
    ladder_path: Path = LADDER
    obligations_path: Path = OBLIGATIONS
    instance_id: str = ""
    zero_report_poll_seconds: float = 5.0
    gauge_refresh_seconds: float = 15.0
    #: 三率 are computed over the clocks started in the last `rate_window_days` days
    rate_window_days: int = 30
    #: concurrent timer claimers per instance: one builds events while another waits on
    #: PostgreSQL (SKIP LOCKED keeps them apart, as it keeps instances apart)
    timer_concurrency: int = 2


def load_policies(path: Path = POLICIES) -> PolicyBook:
    return PolicyBook.from_data(yaml.safe_load(path.read_bytes()))


def load_ladder(path: Path = LADDER) -> Ladder:
    return Ladder.from_data(yaml.safe_load(path.read_bytes()))


def load_obligations(path: Path = OBLIGATIONS) -> dict[str, Obligation]:
    return parse_obligations(yaml.safe_load(path.read_bytes()))


def consumed(
    handle: Callable[[EscalationStore, handlers.Context, EventT], Awaitable[OutcomeT]],
    context: handlers.Context,
    count: Callable[[OutcomeT], None],
) -> Callable[[EscalationStore, EventT, RawMessage, BatchResult], Awaitable[None]]:
    """A consumer-core handler: apply the event, count what it did once the batch commits."""

    async def apply(store: EscalationStore, event: EventT, raw: RawMessage, result: BatchResult) -> None:
        outcome = await handle(store, context, event)
        result.after_commit.append(lambda: count(outcome))

    return apply


class Escalation:
    def __init__(self, *, settings: Settings, config: EscalationSettings | None = None) -> None:
        self.settings = settings
        self.kafka = KafkaAccess.from_settings(settings)
        self.config = config or EscalationSettings()
        self.policies = load_policies(self.config.policies_path)
        self.ladder = load_ladder(self.config.ladder_path)
        self.obligations = load_obligations(self.config.obligations_path)
        self.calendar = load_calendar()
        self.instance_id = self.config.instance_id or f"{socket.gethostname()}:{os.getpid()}"
        self.context = handlers.Context(
            policies=self.policies, ladder=self.ladder, calendar=self.calendar, obligations=self.obligations,
            instance_id=self.instance_id, clock=utcnow,
        )
        self.pool: asyncpg.Pool | None = None
        self.uow: UnitOfWork[EscalationStore] | None = None
        self.relay: OutboxRelay | None = None
        self._processor: BatchProcessor | None = None
        self._start_lock = asyncio.Lock()
        self.loops = Supervisor(SERVICE)
        self.agent_health: Any = None  # the faust agent's own health (set by build_app)
        self._open_clocks = metrics.GaugeFamily(metrics.OPEN_CLOCKS)
        self._open_supervisions = metrics.GaugeFamily(metrics.OPEN_SUPERVISIONS)
        self._rates = metrics.GaugeFamily(metrics.DEPARTMENT_RATE)
        self._refreshed = float("-inf")  # when the gauges were last refreshed (event-loop time)
        self.set_calendar_gauge(utcnow())

    def set_calendar_gauge(self, now: datetime) -> None:
        """petition_calendar_known_until_timestamp_seconds from the loaded calendar."""
        until = known_until(self.calendar, now.astimezone(SHANGHAI).date())
        metrics.CALENDAR_KNOWN_UNTIL.set(datetime.combine(until, time(0), tzinfo=SHANGHAI).timestamp())

    async def start(self, *, run_loops: bool = True) -> None:
        async with self._start_lock:
            if self.pool is not None:
                return
            pool = await open_schema(self.settings.pg_dsn, SCHEMA, MIGRATIONS, max_size=6)
            self.relay = OutboxRelay(
                pool=pool, schema=SCHEMA, kafka=self.kafka, service=SERVICE
            )
            uow = self.uow = PgUnitOfWork(pool, SCHEMA, PgEscalationStore)
            ctx = self.context
            self._processor = BatchProcessor(
                uow=uow,
                service=SERVICE,
                consumer="escalation",
                dead_letter_topic=topics.DEAD_LETTER_ESCALATION,
                handlers={
                    "petition.routed": consumed(handlers.on_routed, ctx, metrics.count_petition_plan),
                    "petition.action_taken": consumed(handlers.on_action, ctx, metrics.count_petition_plan),
                    "zero_report.submitted": consumed(handlers.on_zero_report, ctx, metrics.count_report),
                },
                on_committed=lambda _r: self.relay.kick() if self.relay else None,
                max_record_bytes=self.settings.max_record_bytes,
            )
            self.pool = pool
            if run_loops:
                relay = self.relay
                self.loops.start("outbox-relay", relay.run, healthy=relay.healthy)
                self.loops.start("timers", self.run_timers)

    def processor(self) -> BatchProcessor:
        assert self._processor is not None  # noqa: S101 - narrows the type: never None here
        return self._processor

    def unit_of_work(self) -> UnitOfWork[EscalationStore]:
        assert self.uow is not None  # noqa: S101 - narrows the type: set by start()
        return self.uow

    async def readiness(self) -> dict[str, bool]:
        return await pg_and_kafka_ready(self.pool, self.relay, loops=self.loops,
                                        parts=consumer_parts(self._processor, self.agent_health))

    def _kick(self) -> None:
        if self.relay is not None:
            self.relay.kick()

    # --- timer jobs: run the handlers, count what they did --------------------------------

    async def fire_due(self, now: datetime, limit: int) -> int:
        """Fire up to `limit` timers due at `now` (:func:`handlers.fire_due`); how many were claimed."""
        firing = await handlers.fire_due(self.unit_of_work(), self.context, now, limit)
        metrics.count_firing(firing)
        if firing.events:
            self._kick()
        return len(firing.fired)

    async def evaluate_zero_reports(self, now: datetime) -> int:
        """Mark every period closed by `now` without a report as missing; returns how many."""
        found = await handlers.evaluate_zero_reports(self.unit_of_work(), self.context, now)
        metrics.count_missing_reports(found.missing, found.opened)
        if found.missing:
            self._kick()
        return found.missing

    async def fire_overdue_supervisions(self, now: datetime, limit: int = handlers.OVERDUE_BATCH) -> int:
        """Escalate up to `limit` open 督办 whose own deadline passed by `now`; how many."""
        plan = await handlers.fire_overdue_supervisions(self.unit_of_work(), self.context, now, limit)
        metrics.count_overdue(plan)
        if plan.lapsed:
            self._kick()
        return len(plan.lapsed)

    async def refresh_gauges(self, now: datetime | None = None) -> None:
        """Open clocks by department, open 督办, 三率, units missing a report, the calendar."""
        now = now or utcnow()
        gauges = await handlers.read_gauges(self.unit_of_work(), self.context, now,
                                            rate_window=timedelta(days=self.config.rate_window_days))
        self._open_clocks.replace(gauges.open_clocks)
        self._open_supervisions.replace(gauges.open_supervisions)
        self._rates.replace(gauges.rates)
        metrics.ZERO_REPORTS_MISSING_UNITS.set(gauges.missing_units)
        self.set_calendar_gauge(now)

    # --- loops ----------------------------------------------------------------------------

    async def _next_due_in(self, cap: float) -> float:
        """Seconds until the earliest pending timer (at most `cap`): sleep exactly that long."""
        nxt = await handlers.next_timer_at(self.unit_of_work())
        if nxt is None:
            return cap
        return min(max((nxt - utcnow()).total_seconds(), 0.005), cap)

    async def _fire_loop(self, limit: int) -> None:
        """Fire due timers forever. A failure of any kind (an outage, a connection left
        broken by a database restart, a defect) is logged and retried after a capped
        back-off (:func:`shared.retry.forever`); each round is bounded in time, so a frozen
        database cannot hang it."""

        async def round_() -> None:
            fired = await asyncio.wait_for(self.fire_due(utcnow(), limit), 120)
            if fired < limit:
                await asyncio.sleep(await asyncio.wait_for(self._next_due_in(self.settings.timer_poll_seconds), 30))

        while True:
            await retry.forever(round_, what="timer loop", min_backoff=0.5, max_backoff=10.0, logger=log)

    async def _upkeep(self) -> None:
        """One round of the slower jobs: zero reports, lapsed 督办, the gauges when due."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(300):
            await self.evaluate_zero_reports(utcnow())
            while await self.fire_overdue_supervisions(utcnow()) >= handlers.OVERDUE_BATCH:
                pass
            if loop.time() - self._refreshed >= self.config.gauge_refresh_seconds:
                await self.refresh_gauges()
                self._refreshed = loop.time()

    async def run_timers(self) -> None:
        """Fire due timers forever (several claimers); evaluate zero reports, escalate lapsed 督办,
        refresh the gauges every `gauge_refresh_seconds`. Failures are retried with capped
        back-off (:func:`shared.retry.forever`)."""
        limit = self.settings.timer_batch_size
        loops = [asyncio.create_task(self._fire_loop(limit)) for _ in range(max(1, self.config.timer_concurrency))]
        self._refreshed = float("-inf")
        try:
            while True:
                for task in loops:
                    if task.done():  # cannot happen (the loop retries everything): fail loudly
                        raise RuntimeError("a timer loop ended") from task.exception()
                await retry.forever(self._upkeep, what="zero-report / 督办 / gauge loop", min_backoff=0.5,
                                    max_backoff=10.0, logger=log)
                await asyncio.sleep(min(self.config.zero_report_poll_seconds, self.config.gauge_refresh_seconds))
        finally:
            for task in loops:
                task.cancel()


def build_app(settings: Settings) -> Any:
    esc = Escalation(settings=settings)
    app = make_app(SERVICE, settings, kafka=esc.kafka, web_port=settings.escalation_port)

    async def readiness() -> dict[str, bool]:
        return await esc.readiness()

    add_ops_pages(app, readiness)

    class _Lazy:
        async def process(self, messages: list[RawMessage]) -> BatchResult:
            await esc.start()
            return await esc.processor().process(messages)

    lazy = _Lazy()
    esc.agent_health = batch_agent(
        app,
        [topics.PETITION_ROUTED, topics.PETITION_ACTIONS, topics.ZERO_REPORT_SUBMITTED],
        name="clocks",
        processor=lambda: lazy,  # type: ignore[arg-type,return-value]  # the service is its own processor (duck-typed)
        batch_size=settings.batch_size,
        within=settings.batch_within_seconds,
    )

    @app.task
    async def _startup() -> None:
        await start_when_reachable(esc.start, service=SERVICE)

    app.escalation_service = esc  # type: ignore[attr-defined]  # kept on the faust app for tests and ops
    return app
