"""The escalation service's composition root: clocks, durable timers, the ladder, zero reports.

Consumes ``petition.routed`` (arm or re-arm clocks), ``petition.actions`` (stop, pause,
resume, extend clocks; close 督办) and ``zero_report.submitted``. Due timers live in
PostgreSQL and are fired with ``FOR UPDATE SKIP LOCKED`` by any number of instances; firing
a timer and writing its event to the outbox commit together. The same loop evaluates the
zero-report periods that have closed since the last evaluation stored in PostgreSQL, so
periods missed while the service was down are caught up, and refreshes the open-clock gauge.

Timer kinds: ``warning`` (a fraction of the period), ``breach`` (the deadline), ``escalate``
(ladder step `step`, planned when the breach or the previous step fires).

督办 are durable deadlines too: an open 督办 past its ``due_at`` is claimed from the
``supervision_due`` partial index with ``SKIP LOCKED``, marked ``overdue_at`` and escalated
one level above the unit that let it lapse (a new 督办, level ``overdue``), with its event,
in one transaction. A missing zero report opens a 督办 (level ``zero_report``) for the
supervising unit; every 督办 about that period closes when the unit reports for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import Counter, defaultdict
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.escalation import metrics
from services.escalation.domain import clockmath
from services.escalation.domain.deadlines import SHANGHAI, compute_due
from services.escalation.domain.ladder import (
    OVERDUE_LEVEL,
    Ladder,
    catch_up,
    opens_supervision,
    plan_overdue,
    plan_step,
)
from services.escalation.domain.policy import ClockSpec, PolicyBook, find_clock, plan_timers
from services.escalation.domain.rates import RATE_CLOCKS, ClockTally, department_rates
from services.escalation.domain.zero_report import ReportStatus, classify, closing_between, evaluation_start
from shared import topics
from shared.consumer import BatchProcessor, BatchResult, RawMessage
from shared.db import OutboxMessage, add_to_outbox, create_pool, ensure_common_tables, migrate
from shared.errors import BadInput
from shared.events import (
    ActionType,
    PetitionActionTaken,
    PetitionRouted,
    SlaBreached,
    SlaClockArmed,
    SlaClockStopped,
    SlaWarning,
    encode_event,
    key_for,
    utcnow,
)
from shared.events.escalation import (
    SlaClockPaused,
    SlaClockResumed,
    SlaDeadlineExtended,
    SlaEscalated,
    SupervisionClosed,
    SupervisionOverdue,
    ZeroReportStatus,
    ZeroReportSubmitted,
    ZeroReportSupervisionOverdue,
    key_for_unit,
)
from shared.ids import EVENT_NAMESPACE, derived_event_id
from shared.outages import is_transient
from shared.outbox import OutboxRelay
from shared.reference.calendar import known_until
from shared.reference.calendar_source import load_calendar
from shared.reference.obligations import Obligation, parse_obligations, scheduled
from shared.settings import Settings
from shared.store import PgTransaction, PgUnitOfWork
from shared.supervise import Supervisor
from shared.worker import add_ops_pages, batch_agent, consumer_parts, make_app, pg_and_kafka_ready

log = logging.getLogger(__name__)

SCHEMA = "escalation"
SERVICE = "escalation"
HERE = Path(__file__).resolve().parent
MIGRATIONS = HERE / "migrations"
POLICIES = HERE / "data" / "policies.yaml"
LADDER = HERE / "data" / "ladder.yaml"
OBLIGATIONS = HERE / "data" / "zero-report-obligations.yaml"

OPEN_STATES = ("running", "warned", "breached")


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


def _sla(petition_id: str, event: Any) -> OutboxMessage:
    return OutboxMessage(topics.PETITION_SLA, key_for(petition_id), encode_event(event))


class Escalation:
    def __init__(self, *, settings: Settings, config: EscalationSettings | None = None) -> None:
        self.settings = settings
        self.config = config or EscalationSettings()
        self.policies = load_policies(self.config.policies_path)
        self.ladder = load_ladder(self.config.ladder_path)
        self.obligations = load_obligations(self.config.obligations_path)
        self.calendar = load_calendar()
        self.instance_id = self.config.instance_id or f"{socket.gethostname()}:{os.getpid()}"
        self.pool: asyncpg.Pool | None = None
        self.relay: OutboxRelay | None = None
        self._processor: BatchProcessor | None = None
        self._start_lock = asyncio.Lock()
        self.loops = Supervisor(SERVICE)
        self.agent_health: Any = None  # the faust agent's own health (set by build_app)
        self._open_clocks = metrics.GaugeFamily(metrics.OPEN_CLOCKS)
        self._open_supervisions = metrics.GaugeFamily(metrics.OPEN_SUPERVISIONS)
        self._rates = metrics.GaugeFamily(metrics.DEPARTMENT_RATE)
        self.set_calendar_gauge(utcnow())

    def set_calendar_gauge(self, now: datetime) -> None:
        """petition_calendar_known_until_timestamp_seconds from the loaded calendar."""
        until = known_until(self.calendar, now.astimezone(SHANGHAI).date())
        metrics.CALENDAR_KNOWN_UNTIL.set(datetime.combine(until, time(0), tzinfo=SHANGHAI).timestamp())

    async def start(self, *, run_loops: bool = True) -> None:
        async with self._start_lock:
            if self.pool is not None:
                return
            pool = await create_pool(self.settings.pg_dsn, max_size=6)
            async with pool.acquire() as conn:
                await migrate(conn, SCHEMA, MIGRATIONS)
                await ensure_common_tables(conn, SCHEMA)
            self.relay = OutboxRelay(
                pool=pool, schema=SCHEMA, bootstrap=self.settings.kafka_bootstrap, service=SERVICE
            )
            self._processor = BatchProcessor(
                uow=PgUnitOfWork(pool, SCHEMA, PgTransaction),
                service=SERVICE,
                consumer="escalation",
                dead_letter_topic=topics.DEAD_LETTER_ESCALATION,
                handlers={
                    "petition.routed": lambda tx, e, raw, r: self.on_routed(tx.conn, e, raw, r),
                    "petition.action_taken": lambda tx, e, raw, r: self.on_action(tx.conn, e, raw, r),
                    "zero_report.submitted": lambda tx, e, raw, r: self.on_zero_report(tx.conn, e, raw, r),
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

    async def readiness(self) -> dict[str, bool]:
        return await pg_and_kafka_ready(self.pool, self.relay, loops=self.loops,
                                        parts=consumer_parts(self._processor, self.agent_health))

    # --- clocks ---------------------------------------------------------------------------

    def _due(self, start: datetime, amount: int, unit: str, what: str) -> tuple[datetime, bool]:
        deadline = compute_due(start, amount, unit, self.calendar)
        if deadline.calendar_missing:
            metrics.CALENDAR_MISSING.inc()
            log.warning(
                "holiday calendar missing for %s: %s computed Mon-Fri", sorted(deadline.unknown_years), what
            )
        return deadline.due, deadline.calendar_missing

    async def _plan(
        self, conn: asyncpg.Connection, petition_id: str, clock: str, started_at: datetime,
        due_at: datetime, *, paused_total: timedelta = timedelta(0), warned: frozenset[float] = frozenset(),
    ) -> None:
        """Cancel the clock's pending timers and plan its warnings still to come and its breach."""
        await conn.execute(
            "UPDATE escalation.timer SET state = 'cancelled' WHERE petition_id = $1 AND clock = $2"
            " AND state = 'pending'",
            petition_id, clock,
        )
        if paused_total or warned:
            planned = [("warning", f, at) for f, at in clockmath.replan_warnings(
                started_at=started_at, due_at=due_at, paused_total=paused_total,
                fractions=self.policies.warning_fractions, already_fired=warned,
            )] + [("breach", 1.0, due_at)]
        else:
            planned = [(t.kind, t.fraction, t.fire_at)
                       for t in plan_timers(started_at, due_at, self.policies.warning_fractions)]
        await conn.executemany(
            """INSERT INTO escalation.timer (petition_id, clock, kind, fraction, clock_due_at, fire_at)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            [(petition_id, clock, kind, f, due_at, at) for kind, f, at in planned],
        )

    async def _arm(
        self, conn: asyncpg.Connection, e: PetitionRouted, spec: ClockSpec, policy_id: str,
        out: list[OutboxMessage], result: BatchResult,
    ) -> None:
        started_at = e.received_at if spec.starts == "received" else e.occurred_at
        due_at, missing = self._due(started_at, spec.amount, spec.unit, f"{spec.name} deadline of {e.petition_id}")
        jurisdiction = e.jurisdiction.model_dump() if e.jurisdiction else None
        await conn.execute(
            """INSERT INTO escalation.clock (petition_id, clock, policy, department_code,
                 assignment_no, started_at, due_at, state, calendar_missing, jurisdiction)
               VALUES ($1,$2,$3,$4,$5,$6,$7,'running',$8,$9)
               ON CONFLICT (petition_id, clock) DO UPDATE SET policy = EXCLUDED.policy,
                 department_code = EXCLUDED.department_code, assignment_no = EXCLUDED.assignment_no,
                 started_at = EXCLUDED.started_at, due_at = EXCLUDED.due_at, state = 'running',
                 calendar_missing = EXCLUDED.calendar_missing, stopped_at = NULL,
                 stop_reason = NULL, paused_at = NULL, remaining_seconds = NULL, paused_seconds = 0,
                 extended_days = NULL, extension_requested_days = NULL, warned_fractions = '{}',
                 jurisdiction = EXCLUDED.jurisdiction, updated_at = now()""",
            e.petition_id, spec.name, policy_id, e.department_code, e.assignment_no,
            started_at, due_at, missing, jurisdiction,
        )
        await self._plan(conn, e.petition_id, spec.name, started_at, due_at)
        armed = SlaClockArmed(
            event_id=derived_event_id(e.event_id, f"armed:{spec.name}"),
            occurred_at=utcnow(),
            petition_id=e.petition_id,
            causation_id=e.event_id,
            clock=spec.name,
            policy=policy_id,
            department_code=e.department_code,
            started_at=started_at,
            due_at=due_at,
            calendar_missing=missing,
        )
        out.append(_sla(e.petition_id, armed))
        name = spec.name
        result.after_commit.append(lambda: metrics.CLOCKS_ARMED.labels(name).inc())

    async def on_routed(
        self, conn: asyncpg.Connection, e: PetitionRouted, raw: RawMessage, result: BatchResult
    ) -> None:
        policy = self.policies.select(
            channel=e.channel.value, kind=e.kind.value if e.kind else None,
            priority=e.priority.value, category=e.category,
        )
        existing = {
            r["clock"]: r
            for r in await conn.fetch(
                "SELECT clock, assignment_no, state FROM escalation.clock WHERE petition_id = $1 FOR UPDATE",
                e.petition_id,
            )
        }
        out: list[OutboxMessage] = []
        for spec in policy.clocks:
            row = existing.get(spec.name)
            if row is None:
                await self._arm(conn, e, spec, policy.id, out, result)
            elif row["assignment_no"] >= e.assignment_no:
                continue  # an older or repeated assignment
            elif row["state"] == "stopped":
                continue
            elif spec.on_reassign == "restart":
                await self._arm(conn, e, spec, policy.id, out, result)
            else:
                await conn.execute(
                    "UPDATE escalation.clock SET department_code = $3, assignment_no = $4,"
                    " jurisdiction = coalesce($5, jurisdiction), updated_at = now()"
                    " WHERE petition_id = $1 AND clock = $2",
                    e.petition_id, spec.name, e.department_code, e.assignment_no,
                    e.jurisdiction.model_dump() if e.jurisdiction else None,
                )
        await add_to_outbox(conn, SCHEMA, out)

    async def on_action(
        self, conn: asyncpg.Connection, e: PetitionActionTaken, raw: RawMessage, result: BatchResult
    ) -> None:
        if e.action is ActionType.CLOSE_SUPERVISION:
            await self._close_supervision(conn, e, result)
            return
        rows = await conn.fetch(
            """SELECT * FROM escalation.clock WHERE petition_id = $1 AND state <> 'stopped'
               ORDER BY clock FOR UPDATE""",
            e.petition_id,
        )
        out: list[OutboxMessage] = []
        for row in rows:
            spec = find_clock(self.policies, row["policy"], row["clock"])
            if spec is None:
                continue
            if e.action.value in spec.stops_on and row["department_code"] == e.department_code:
                await self._stop(conn, e, row, out, result)
            elif e.action is ActionType.PAUSE and spec.pausable and row["state"] in ("running", "warned"):
                await self._pause(conn, e, row, out)
            elif e.action is ActionType.RESUME and row["state"] == "paused":
                await self._resume(conn, e, row, out)
            elif e.action is ActionType.REQUEST_EXTENSION and spec.extension_max_days > 0:
                days = e.extra.get("extension_days")
                await conn.execute(
                    "UPDATE escalation.clock SET extension_requested_days = $3, updated_at = now()"
                    " WHERE petition_id = $1 AND clock = $2",
                    e.petition_id, row["clock"], int(days) if isinstance(days, int) else None,
                )
            elif e.action is ActionType.APPROVE_EXTENSION and spec.extension_max_days > 0:
                await self._extend(conn, e, row, spec, out)
        await add_to_outbox(conn, SCHEMA, out)

    async def _stop(
        self, conn: asyncpg.Connection, e: PetitionActionTaken, row: Any,
        out: list[OutboxMessage], result: BatchResult,
    ) -> None:
        await conn.execute(
            "UPDATE escalation.clock SET state = 'stopped', stopped_at = $3, stop_reason = $4,"
            " updated_at = now() WHERE petition_id = $1 AND clock = $2",
            e.petition_id, row["clock"], e.occurred_at, e.action.value,
        )
        await conn.execute(
            "UPDATE escalation.timer SET state = 'cancelled' WHERE petition_id = $1 AND clock = $2"
            " AND state = 'pending'",
            e.petition_id, row["clock"],
        )
        out.append(_sla(e.petition_id, SlaClockStopped(
            event_id=derived_event_id(e.event_id, f"stopped:{row['clock']}"),
            occurred_at=utcnow(), petition_id=e.petition_id, causation_id=e.event_id,
            clock=row["clock"], department_code=row["department_code"], reason=e.action.value,
            due_at=row["due_at"],
        )))
        clock, reason = row["clock"], e.action.value
        result.after_commit.append(lambda: metrics.CLOCKS_STOPPED.labels(clock, reason).inc())

    async def _pause(
        self, conn: asyncpg.Connection, e: PetitionActionTaken, row: Any, out: list[OutboxMessage]
    ) -> None:
        remaining = clockmath.pause_remaining(row["due_at"], e.occurred_at)
        await conn.execute(
            "UPDATE escalation.clock SET state = 'paused', paused_at = $3, remaining_seconds = $4,"
            " updated_at = now() WHERE petition_id = $1 AND clock = $2",
            e.petition_id, row["clock"], e.occurred_at, remaining.total_seconds(),
        )
        await conn.execute(
            "UPDATE escalation.timer SET state = 'cancelled' WHERE petition_id = $1 AND clock = $2"
            " AND state = 'pending'",
            e.petition_id, row["clock"],
        )
        out.append(_sla(e.petition_id, SlaClockPaused(
            event_id=derived_event_id(e.event_id, f"paused:{row['clock']}"),
            occurred_at=e.occurred_at, petition_id=e.petition_id, causation_id=e.event_id,
            clock=row["clock"], department_code=row["department_code"], due_at=row["due_at"],
            remaining_seconds=remaining.total_seconds(),
        )))

    async def _resume(
        self, conn: asyncpg.Connection, e: PetitionActionTaken, row: Any, out: list[OutboxMessage]
    ) -> None:
        resumed = clockmath.resume(
            paused_at=row["paused_at"], remaining=timedelta(seconds=row["remaining_seconds"] or 0),
            resumed_at=e.occurred_at,
        )
        paused_total = timedelta(seconds=row["paused_seconds"]) + resumed.paused_for
        warned = frozenset(row["warned_fractions"] or ())
        state = "warned" if warned else "running"
        await conn.execute(
            "UPDATE escalation.clock SET state = $3, due_at = $4, paused_at = NULL, remaining_seconds = NULL,"
            " paused_seconds = $5, updated_at = now() WHERE petition_id = $1 AND clock = $2",
            e.petition_id, row["clock"], state, resumed.due_at, paused_total.total_seconds(),
        )
        await self._plan(conn, e.petition_id, row["clock"], row["started_at"], resumed.due_at,
                         paused_total=paused_total, warned=warned)
        out.append(_sla(e.petition_id, SlaClockResumed(
            event_id=derived_event_id(e.event_id, f"resumed:{row['clock']}"),
            occurred_at=e.occurred_at, petition_id=e.petition_id, causation_id=e.event_id,
            clock=row["clock"], department_code=row["department_code"],
            previous_due_at=row["due_at"], due_at=resumed.due_at,
            paused_seconds=resumed.paused_for.total_seconds(),
        )))

    async def _extend(
        self, conn: asyncpg.Connection, e: PetitionActionTaken, row: Any, spec: ClockSpec,
        out: list[OutboxMessage],
    ) -> None:
        requested = e.extra.get("extension_days")
        if not isinstance(requested, int):
            requested = row["extension_requested_days"]
        ext = clockmath.decide_extension(
            due_at=row["due_at"], unit=spec.unit, max_days=spec.extension_max_days,
            already_extended=row["extended_days"] is not None, requested_days=requested,
            calendar=self.calendar,
        )
        if ext is None:
            return
        if ext.calendar_missing:
            metrics.CALENDAR_MISSING.inc()
            log.warning("holiday calendar missing: extension of %s %s computed Mon-Fri", e.petition_id, row["clock"])
        warned = frozenset(row["warned_fractions"] or ())
        paused_total = timedelta(seconds=row["paused_seconds"])
        if row["state"] == "paused":
            remaining = (row["remaining_seconds"] or 0) + (ext.due_at - row["due_at"]).total_seconds()
            state = "paused"
        else:
            remaining = None
            state = row["state"]
            if state == "breached" and ext.due_at > e.occurred_at:
                state = "warned" if warned else "running"  # the extension lifts the breach
        await conn.execute(
            "UPDATE escalation.clock SET due_at = $3, extended_days = $4, state = $5,"
            " remaining_seconds = coalesce($6, remaining_seconds), updated_at = now()"
            " WHERE petition_id = $1 AND clock = $2",
            e.petition_id, row["clock"], ext.due_at, ext.granted_days, state, remaining,
        )
        if state != "paused":
            await self._plan(conn, e.petition_id, row["clock"], row["started_at"], ext.due_at,
                             paused_total=paused_total, warned=warned)
        out.append(_sla(e.petition_id, SlaDeadlineExtended(
            event_id=derived_event_id(e.event_id, f"extended:{row['clock']}"),
            occurred_at=e.occurred_at, petition_id=e.petition_id, causation_id=e.event_id,
            clock=row["clock"], department_code=row["department_code"], approved_by=e.department_code,
            days=ext.granted_days, previous_due_at=row["due_at"], due_at=ext.due_at, rule=ext.rule,
        )))

    async def _close_supervision(self, conn: asyncpg.Connection, e: PetitionActionTaken, result: BatchResult) -> None:
        try:
            supervision_id = uuid.UUID(str(e.extra.get("supervision_id")))
        except ValueError:
            raise BadInput("close_supervision without a valid supervision_id", code="invalid_action") from None
        row = await conn.fetchrow(
            "UPDATE escalation.supervision SET state = 'closed', closed_at = $3, closed_by = $4, close_note = $5"
            " WHERE id = $1 AND petition_id = $2 AND state = 'open' AND supervised_unit <> $4"
            " RETURNING target_unit, level",
            supervision_id, e.petition_id, e.occurred_at, e.department_code, e.note,
        )
        if row is None:
            return  # unknown, already closed, or the supervised unit itself (intake refuses that)
        await add_to_outbox(conn, SCHEMA, [_sla(e.petition_id, SupervisionClosed(
            event_id=derived_event_id(e.event_id, f"supervision_closed:{supervision_id}"),
            occurred_at=e.occurred_at, petition_id=e.petition_id, causation_id=e.event_id,
            supervision_id=supervision_id, target_unit=row["target_unit"], closed_by=e.department_code,
            note=e.note,
        ))])
        level = row["level"]
        result.after_commit.append(lambda: metrics.SUPERVISIONS_CLOSED.labels(level).inc())

    # --- timers ---------------------------------------------------------------------------

    async def fire_due(self, now: datetime, limit: int) -> int:
        """Fire up to `limit` timers due at `now`; returns how many were claimed.

        One transaction: claim due timers and their clocks (``SKIP LOCKED`` on both, so an
        instance never waits for another or for a consumer holding a clock), mark them fired
        set-based, apply the clock changes, plan ladder steps, open 督办, write the outbox.
        A timer whose clock was stopped, paused or moved since it was planned fires silently.

        Bounded however late a timer is found due: a warning whose deadline has passed is
        superseded (no warning; the breach says it); a ladder step fires the step reached by
        `now` once, with the steps it missed counted on its event and 督办, and plans the next
        one after `now` (:func:`catch_up`); a petition at ``max_open_supervisions_per_petition``
        open 督办 gets no further one from a step (counted, logged; the ladder goes on). The
        cap counts the open 督办 committed before this transaction plus those it opens: two
        instances stepping two clocks of one petition at the same instant may pass it by one.
        """
        assert self.pool is not None  # noqa: S101 - narrows the type: never None here
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT t.id, t.petition_id, t.clock, t.kind, t.fraction, t.step, t.clock_due_at,
                          t.fire_at, c.department_code, c.due_at AS current_due, c.state AS clock_state,
                          CASE WHEN t.kind <> 'warning' THEN c.jurisdiction END AS jurisdiction
                   FROM escalation.timer t
                   JOIN escalation.clock c ON c.petition_id = t.petition_id AND c.clock = t.clock
                   WHERE t.state = 'pending' AND t.fire_at <= $1
                   ORDER BY t.fire_at LIMIT $2 FOR UPDATE OF t, c SKIP LOCKED""",
                now, limit,
            )
            if not rows:
                return 0
            stepping = sorted({r["petition_id"] for r in rows if r["kind"] == "escalate"})
            open_supervisions: dict[str, int] = {}
            if stepping:
                open_supervisions = {x["petition_id"]: x["n"] for x in await conn.fetch(
                    "SELECT petition_id, count(*) AS n FROM escalation.supervision"
                    " WHERE petition_id = ANY($1::text[]) AND state = 'open' GROUP BY petition_id",
                    stepping,
                )}
            ids: list[int] = []
            lateness: list[float] = []
            outcomes: list[str] = []
            missed_by_timer: list[int] = []
            missed_total = capped = 0
            out_topic: list[str] = []
            out_key: list[bytes] = []
            out_value: list[bytes] = []
            warned: dict[tuple[str, str], list[float]] = defaultdict(list)
            breached: list[tuple[str, str]] = []
            next_steps: list[tuple[Any, ...]] = []
            supervisions: list[tuple[Any, ...]] = []
            counts: dict[str, int] = defaultdict(int)
            escalations: list[str] = []
            for r in rows:
                late = max((now - r["fire_at"]).total_seconds(), 0.0)
                ids.append(r["id"])
                lateness.append(late)
                outcomes.append("event")
                missed_by_timer.append(0)
                if r["clock_state"] in ("stopped", "paused") or r["current_due"] != r["clock_due_at"]:
                    counts["stale"] += 1
                    outcomes[-1] = "stale"
                    continue  # a stale timer of a stopped, paused or moved clock
                pid, clock, kind = r["petition_id"], r["clock"], r["kind"]
                event_id = uuid.uuid5(EVENT_NAMESPACE, f"timer:{r['id']}")
                event: Any
                if kind == "warning" and now >= r["clock_due_at"]:
                    counts["superseded"] += 1
                    outcomes[-1] = "superseded"
                    continue  # its deadline has passed: the breach, not a warning, tells it
                if kind == "warning":
                    event = SlaWarning(
                        event_id=event_id, occurred_at=now, petition_id=pid, clock=clock,
                        department_code=r["department_code"], fraction=r["fraction"],
                        due_at=r["clock_due_at"], lateness_seconds=late,
                    )
                    warned[(pid, clock)].append(r["fraction"])
                elif kind == "breach":
                    event = SlaBreached(
                        event_id=event_id, occurred_at=now, petition_id=pid, clock=clock,
                        department_code=r["department_code"], due_at=r["clock_due_at"], lateness_seconds=late,
                    )
                    breached.append((pid, clock))
                    step = plan_step(self.ladder, 1, previous_at=r["clock_due_at"],
                                     handling_unit=r["department_code"], jurisdiction=r["jurisdiction"],
                                     calendar=self.calendar)
                    next_steps.append((pid, clock, 1, r["clock_due_at"], step.fire_at))
                elif kind == "escalate":
                    # planned for step r["step"] at r["fire_at"]: fire the step reached by now, once
                    reached = catch_up(self.ladder, r["step"], planned_at=r["fire_at"], now=now,
                                       handling_unit=r["department_code"], jurisdiction=r["jurisdiction"],
                                       calendar=self.calendar)
                    step = reached.fire
                    next_steps.append((pid, clock, reached.following.step, r["clock_due_at"],
                                       reached.following.fire_at))
                    missed_by_timer[-1] = reached.missed
                    missed_total += reached.missed
                    held = open_supervisions.get(pid, 0)
                    if not opens_supervision(self.ladder, held):
                        counts[kind] += 1
                        capped += 1
                        outcomes[-1] = "capped"
                        log.warning(
                            "petition %s holds %d open 督办 (max_open_supervisions_per_petition): ladder step %d"
                            " of its %s clock (%s, %s) opens none", pid, held, step.step, clock, step.level,
                            step.target_unit,
                        )
                        continue
                    open_supervisions[pid] = held + 1
                    supervision_id = uuid.uuid5(EVENT_NAMESPACE, f"supervision:{r['id']}")
                    supervision_due = self.ladder.supervision_due.after(now, self.calendar)
                    event = SlaEscalated(
                        event_id=event_id, occurred_at=now, petition_id=pid, clock=clock,
                        department_code=r["department_code"], step=step.step, level=step.level,
                        target_unit=step.target_unit, rule=step.rule, repeat=step.repeat,
                        due_at=r["clock_due_at"], supervision_id=supervision_id,
                        supervision_due_at=supervision_due, lateness_seconds=late,
                        missed_steps=reached.missed, missed_from_step=reached.first_missed,
                        missed_since=reached.missed_since, missed_estimated=reached.estimated,
                    )
                    supervisions.append((supervision_id, pid, clock, step.step, step.level, step.target_unit,
                                         r["department_code"], step.rule, now, supervision_due, reached.missed))
                    escalations.append(step.level)
                else:
                    counts["unknown"] += 1
                    outcomes[-1] = "unknown"
                    continue
                counts[kind] += 1
                out_topic.append(topics.PETITION_SLA)
                out_key.append(key_for(pid))
                out_value.append(encode_event(event))
            await conn.execute(
                """UPDATE escalation.timer t SET state = 'fired', fired_at = $2, lateness_seconds = u.late,
                     fired_by = $3, outcome = u.outcome, missed_steps = u.missed
                   FROM unnest($1::bigint[], $4::float8[], $5::text[], $6::int[]) AS u(id, late, outcome, missed)
                   WHERE t.id = u.id""",
                ids, now, self.instance_id, lateness, outcomes, missed_by_timer,
            )
            if warned:
                keys = list(warned)
                await conn.execute(
                    """UPDATE escalation.clock c SET state = CASE WHEN c.state = 'running' THEN 'warned' ELSE c.state END,
                         warned_fractions = c.warned_fractions || string_to_array(u.f, ',')::float8[],
                         updated_at = now()
                       FROM unnest($1::text[], $2::text[], $3::text[]) AS u(p, k, f)
                       WHERE c.petition_id = u.p AND c.clock = u.k""",  # noqa: E501 - SQL kept as written
                    [k[0] for k in keys], [k[1] for k in keys], [",".join(map(str, warned[k])) for k in keys],
                )
            if breached:
                await conn.execute(
                    """UPDATE escalation.clock c SET state = 'breached', updated_at = now()
                       FROM unnest($1::text[], $2::text[]) AS u(p, k)
                       WHERE c.petition_id = u.p AND c.clock = u.k AND c.state IN ('running', 'warned')""",
                    [b[0] for b in breached], [b[1] for b in breached],
                )
            if next_steps:
                await conn.execute(
                    """INSERT INTO escalation.timer (petition_id, clock, kind, fraction, step, clock_due_at, fire_at)
                       SELECT p, k, 'escalate', 1.0, s, d, f
                       FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::timestamptz[])
                         AS u(p, k, s, d, f)""",
                    *[list(col) for col in zip(*next_steps, strict=True)],
                )
            if supervisions:
                await conn.executemany(
                    """INSERT INTO escalation.supervision (id, petition_id, clock, step, level, target_unit,
                         supervised_unit, rule, opened_at, due_at, missed_steps)
                       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT (id) DO NOTHING""",
                    supervisions,
                )
            if out_value:
                await conn.execute(
                    "INSERT INTO escalation.outbox (topic, key, value)"
                    " SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[])",
                    out_topic, out_key, out_value,
                )
        for kind, n in counts.items():
            metrics.TIMERS_FIRED.labels(kind).inc(n)
        for late in lateness:
            metrics.TIMER_LATENESS.observe(late)
        by_clock: Counter[str] = Counter()
        for (_, clock), fractions in warned.items():
            by_clock[clock] += len(fractions)
        for clock, n in by_clock.items():
            metrics.WARNINGS.labels(clock).inc(n)
        for clock, n in Counter(clock for _, clock in breached).items():
            metrics.BREACHES.labels(clock).inc(n)
        for level, n in Counter(escalations).items():
            metrics.ESCALATIONS.labels(level).inc(n)
            metrics.SUPERVISION_ORDERS.labels(level).inc(n)
        if missed_total:
            metrics.ESCALATION_STEPS_MISSED.inc(missed_total)
        if capped:
            metrics.SUPERVISION_CAP_REACHED.inc(capped)
        if self.relay is not None and out_value:
            self.relay.kick()
        return len(rows)

    # --- zero reports ---------------------------------------------------------------------

    def _status_message(self, status: ZeroReportStatus) -> OutboxMessage:
        return OutboxMessage(topics.ZERO_REPORT_STATUS, key_for_unit(status.unit), encode_event(status))

    async def on_zero_report(
        self, conn: asyncpg.Connection, e: ZeroReportSubmitted, raw: RawMessage, result: BatchResult
    ) -> None:
        ob = self.obligations.get(e.unit)
        try:
            sched = scheduled(ob, e.period, self.calendar) if ob else None
        except ValueError as exc:
            raise BadInput(str(exc), code="invalid_period") from None
        status: ReportStatus
        if ob is None:
            status, rule, due, closes = "unscheduled", "unscheduled:no_obligation", None, None
        elif sched is None:
            status, rule, due, closes = "unscheduled", "unscheduled:not_a_period_of_unit", None, None
        else:
            (status, rule), due, closes = classify(e.submitted_at, sched), sched.due_at, sched.closes_at
        row = await conn.fetchrow(
            """INSERT INTO escalation.zero_report_period (unit, period, status, rule, due_at, closes_at,
                 submitted_at, incidents, submission_id)
               VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
               ON CONFLICT (unit, period) DO UPDATE SET status = EXCLUDED.status, rule = EXCLUDED.rule,
                 submitted_at = EXCLUDED.submitted_at, incidents = EXCLUDED.incidents,
                 submission_id = EXCLUDED.submission_id, updated_at = now()
               WHERE zero_report_period.submitted_at IS NULL
               RETURNING escalated_to""",
            e.unit, e.period, status, rule, due, closes, e.submitted_at, len(e.incidents), e.submission_id,
        )
        if row is None:
            return  # this period's report was already received (a replay or a second copy)
        # the report the 督办 asked for is in: every 督办 about this period closes
        await conn.execute(
            "UPDATE escalation.supervision SET state = 'closed', closed_at = $3, closed_by = $1,"
            " close_note = 'report received' WHERE subject = 'zero_report' AND report_unit = $1"
            " AND report_period = $2 AND state = 'open'",
            e.unit, e.period, e.submitted_at,
        )
        await add_to_outbox(conn, SCHEMA, [self._status_message(ZeroReportStatus(
            event_id=derived_event_id(e.event_id, "zero_report_status"), occurred_at=utcnow(),
            causation_id=e.event_id, unit=e.unit, period=e.period, status=status, rule=rule, due_at=due,
            submitted_at=e.submitted_at, incidents=len(e.incidents), escalated_to=row["escalated_to"],
        ))])

        def count() -> None:
            metrics.ZERO_REPORTS.labels(status).inc()
            if status in ("on_time", "late"):
                metrics.ZERO_REPORTS_RECEIVED.labels(status).inc()

        result.after_commit.append(count)

    async def evaluate_zero_reports(self, now: datetime) -> int:
        """Mark every period closed by `now` without a report as missing; returns how many.

        Per unit, the instant evaluated up to is kept in PostgreSQL and claimed with
        ``SKIP LOCKED``; the (unit, period) key guarantees one verdict per period even if two
        instances overlap. A unit's first evaluation starts at the later of its obligation's
        ``since`` and `now` (:func:`evaluation_start`), so nothing that closed before the
        install is missing; periods that closed while the service was down are caught up.
        """
        assert self.pool is not None  # noqa: S101 - narrows the type: never None here
        missing = opened = 0
        for unit, ob in self.obligations.items():
            async with self.pool.acquire() as conn, conn.transaction():
                # first met now (a fresh install, a unit new to the file): judged from now on,
                # never for periods that closed before; the cursor persists through downtime
                start = evaluation_start(ob, now)
                await conn.execute(
                    "INSERT INTO escalation.zero_report_cursor (unit, evaluated_until) VALUES ($1, $2)"
                    " ON CONFLICT DO NOTHING",
                    unit, start,
                )
                after = await conn.fetchval(
                    "SELECT evaluated_until FROM escalation.zero_report_cursor WHERE unit = $1"
                    " FOR UPDATE SKIP LOCKED",
                    unit,
                )
                if after is None or after >= now:
                    continue  # another instance is evaluating this unit
                out: list[OutboxMessage] = []
                for s in closing_between(ob, after, now, self.calendar):
                    rule = f"missing:{s.rule}"
                    inserted = await conn.fetchval(
                        """INSERT INTO escalation.zero_report_period (unit, period, status, rule, due_at,
                             closes_at, escalated_to) VALUES ($1,$2,'missing',$3,$4,$5,$6)
                           ON CONFLICT (unit, period) DO NOTHING RETURNING 1""",
                        unit, s.period.id, rule, s.due_at, s.closes_at, ob.supervising_unit,
                    )
                    if inserted is None:
                        continue  # reported (or already judged)
                    supervision_id, supervision_due = None, None
                    if ob.supervising_unit:
                        supervision_id = uuid.uuid5(EVENT_NAMESPACE, f"zero_report_supervision:{unit}:{s.period.id}")
                        supervision_due = self.ladder.supervision_due.after(now, self.calendar)
                        await conn.execute(
                            """INSERT INTO escalation.supervision (id, petition_id, clock, step, level,
                                 target_unit, supervised_unit, rule, opened_at, due_at, subject,
                                 report_unit, report_period)
                               VALUES ($1, NULL, NULL, 1, $2, $3, $4, $5, $6, $7, 'zero_report', $4, $8)
                               ON CONFLICT (id) DO NOTHING""",
                            supervision_id, metrics.ZERO_REPORT_LEVEL, ob.supervising_unit, unit,
                            f"zero_report:{rule}", now, supervision_due, s.period.id,
                        )
                        opened += 1
                    out.append(self._status_message(ZeroReportStatus(
                        event_id=uuid.uuid5(EVENT_NAMESPACE, f"zero_report:{unit}:{s.period.id}:missing"),
                        occurred_at=now, unit=unit, period=s.period.id, status="missing", rule=rule,
                        due_at=s.due_at, escalated_to=ob.supervising_unit,
                        supervision_id=supervision_id, supervision_due_at=supervision_due,
                    )))
                await conn.execute(
                    "UPDATE escalation.zero_report_cursor SET evaluated_until = $2 WHERE unit = $1", unit, now
                )
                await add_to_outbox(conn, SCHEMA, out)
                missing += len(out)
        if missing:
            metrics.ZERO_REPORTS.labels("missing").inc(missing)
            metrics.ZERO_REPORT_ESCALATIONS.inc(missing)
            metrics.SUPERVISION_ORDERS.labels(metrics.ZERO_REPORT_LEVEL).inc(opened)
            if self.relay is not None:
                self.relay.kick()
        return missing

    async def fire_overdue_supervisions(self, now: datetime, limit: int = 200) -> int:
        """Escalate up to `limit` open 督办 whose own deadline passed by `now`; how many.

        The 督办's ``due_at`` is its durable timer: claimed with ``SKIP LOCKED`` through the
        ``supervision_due`` partial index (open and not yet overdue), marked ``overdue_at``,
        and, when the addressed unit has one above it, followed by a new 督办 for that unit
        (level ``overdue``, supervising the lapsed unit; it can lapse in turn, one level up
        each time, up to the province). The event goes to ``petition.sla`` for a petition's
        督办 and to ``zero_report.status`` for a missing report's. One transaction.
        """
        assert self.pool is not None  # noqa: S101 - narrows the type: never None here
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT * FROM escalation.supervision
                   WHERE state = 'open' AND overdue_at IS NULL AND due_at <= $1
                   ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
                now, limit,
            )
            if not rows:
                return 0
            opened: list[tuple[Any, ...]] = []
            out: list[OutboxMessage] = []
            for r in rows:
                step = plan_overdue(self.ladder, r["target_unit"], now=now, calendar=self.calendar)
                new_id = uuid.uuid5(EVENT_NAMESPACE, f"supervision_overdue:{r['id']}") if step.target_unit else None
                if step.target_unit is not None:
                    opened.append((new_id, r["petition_id"], r["clock"], r["step"], OVERDUE_LEVEL, step.target_unit,
                                   r["target_unit"], step.rule, now, step.due_at, r["subject"], r["report_unit"],
                                   r["report_period"], r["id"]))
                common: dict[str, Any] = {
                    "event_id": uuid.uuid5(EVENT_NAMESPACE, f"supervision_overdue_event:{r['id']}"),
                    "occurred_at": now, "supervision_id": r["id"], "level": r["level"],
                    "target_unit": r["target_unit"], "due_at": r["due_at"], "rule": step.rule,
                    "escalated_to": step.target_unit, "escalated_supervision_id": new_id,
                    "escalated_due_at": step.due_at,
                }
                if r["subject"] == "zero_report":
                    out.append(self._status_message(ZeroReportSupervisionOverdue(  # type: ignore[arg-type]  # **common holds fields of several types
                        unit=r["report_unit"], period=r["report_period"], **common)))
                else:
                    out.append(_sla(r["petition_id"], SupervisionOverdue(
                        petition_id=r["petition_id"], clock=r["clock"], **common)))
            await conn.execute(
                "UPDATE escalation.supervision SET overdue_at = $2 WHERE id = ANY($1::uuid[])",
                [r["id"] for r in rows], now,
            )
            if opened:
                await conn.executemany(
                    """INSERT INTO escalation.supervision (id, petition_id, clock, step, level, target_unit,
                         supervised_unit, rule, opened_at, due_at, subject, report_unit, report_period, parent_id)
                       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14) ON CONFLICT (id) DO NOTHING""",
                    opened,
                )
            await add_to_outbox(conn, SCHEMA, out)
        for level, n in Counter(r["level"] for r in rows).items():
            metrics.SUPERVISIONS_OVERDUE.labels(level).inc(n)
        if opened:
            metrics.SUPERVISION_ORDERS.labels(OVERDUE_LEVEL).inc(len(opened))
        if self.relay is not None:
            self.relay.kick()
        return len(rows)

    async def refresh_gauges(self, now: datetime | None = None) -> None:
        """Open clocks by department, open 督办, 三率, units missing a report, the calendar."""
        assert self.pool is not None  # noqa: S101 - narrows the type: never None here
        now = now or utcnow()
        since = now - timedelta(days=self.config.rate_window_days)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT department_code, clock, state, count(*) AS n FROM escalation.clock"
                " WHERE state <> 'stopped' GROUP BY department_code, clock, state"
            )
            supervision = await conn.fetch(
                "SELECT level, count(*) AS n FROM escalation.supervision WHERE state = 'open' GROUP BY level"
            )
            tallies: list[ClockTally] = []
            for clock, reasons in RATE_CLOCKS.values():
                tallies += [ClockTally(r["department_code"], clock, r["met"], r["decided"]) for r in await conn.fetch(
                    """SELECT department_code,
                         count(*) FILTER (WHERE state = 'stopped' AND stop_reason = ANY($4::text[])
                                            AND stopped_at <= due_at) AS met,
                         count(*) FILTER (WHERE state = 'stopped' OR due_at <= $1) AS decided
                       FROM escalation.clock WHERE started_at >= $2 AND clock = $3
                       GROUP BY department_code""",
                    now, since, clock, list(reasons),
                )]
            missing_units = await conn.fetchval(
                """SELECT count(*) FROM (
                     SELECT DISTINCT ON (unit) unit, status FROM escalation.zero_report_period
                     WHERE unit = ANY($1::text[]) AND due_at <= $2 ORDER BY unit, due_at DESC
                   ) latest WHERE status = 'missing'""",
                list(self.obligations), now,
            )
        self._open_clocks.replace({(r["department_code"], r["clock"], r["state"]): r["n"] for r in rows})
        self._open_supervisions.replace({(r["level"],): r["n"] for r in supervision})
        self._rates.replace(dict(department_rates(tallies).items()))
        metrics.ZERO_REPORTS_MISSING_UNITS.set(missing_units or 0)
        self.set_calendar_gauge(now)

    async def _next_due_in(self, cap: float) -> float:
        """Seconds until the earliest pending timer (at most `cap`): sleep exactly that long."""
        assert self.pool is not None  # noqa: S101 - narrows the type: never None here
        async with self.pool.acquire() as conn:
            nxt = await conn.fetchval(
                "SELECT min(fire_at) FROM escalation.timer WHERE state = 'pending'"
            )
        if nxt is None:
            return cap
        return min(max((nxt - utcnow()).total_seconds(), 0.005), cap)

    async def _fire_loop(self, limit: int) -> None:
        """Fire due timers forever. A failure of any kind (an outage, a connection left
        broken by a database restart, a defect) is logged and retried after a capped
        back-off; each round is bounded in time, so a frozen database cannot hang it."""
        backoff = 0.5
        while True:
            try:
                fired = await asyncio.wait_for(self.fire_due(utcnow(), limit), 120)
                backoff = 0.5
                if fired < limit:
                    await asyncio.sleep(await asyncio.wait_for(
                        self._next_due_in(self.settings.timer_poll_seconds), 30))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # timers must outlive any failure
                if is_transient(exc):
                    log.warning("timer loop: %r; retrying in %.1fs", exc, backoff)
                else:
                    log.exception("timer loop: unexpected failure; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def run_timers(self) -> None:
        """Fire due timers forever (several claimers); evaluate zero reports, escalate lapsed 督办,
        refresh the gauges every `gauge_refresh_seconds`."""
        limit = self.settings.timer_batch_size
        loops = [asyncio.create_task(self._fire_loop(limit)) for _ in range(max(1, self.config.timer_concurrency))]
        refreshed = float("-inf")
        try:
            while True:
                for task in loops:
                    if task.done():  # cannot happen (the loop catches everything): fail loudly
                        raise RuntimeError("a timer loop ended") from task.exception()
                try:
                    async with asyncio.timeout(300):
                        await self.evaluate_zero_reports(utcnow())
                        while await self.fire_overdue_supervisions(utcnow()) >= 200:
                            pass
                        if asyncio.get_running_loop().time() - refreshed >= self.config.gauge_refresh_seconds:
                            await self.refresh_gauges()
                            refreshed = asyncio.get_running_loop().time()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the loop outlives any failure
                    if is_transient(exc):
                        log.warning("zero-report / 督办 / gauge loop: %r", exc)
                    else:
                        log.exception("zero-report / 督办 / gauge loop: unexpected failure")
                await asyncio.sleep(min(self.config.zero_report_poll_seconds, self.config.gauge_refresh_seconds))
        finally:
            for task in loops:
                task.cancel()


def build_app(settings: Settings) -> Any:
    esc = Escalation(settings=settings)
    app = make_app(SERVICE, settings, web_port=settings.escalation_port)

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
        await esc.start()

    app.escalation_service = esc  # type: ignore[attr-defined]  # kept on the faust app for tests and ops
    return app
