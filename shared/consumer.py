"""The consumer core every service uses: decode, dedupe, apply, dead-letter, retry.

Transport-neutral: a faust agent or an aiokafka loop hands a batch of raw messages to
:meth:`BatchProcessor.process` and acknowledges them only after it returns. The rules:

* a message that can never be processed (undecodable, invalid schema, rejected by the
  handler as :class:`BadInput`, or a handler bug) goes to the service's dead-letter topic
  with the reason and the original bytes, through the outbox, and the stream goes on;
* every applied event and its ledger row (`processed_event`) commit in one transaction, so
  a redelivered event is recognised and skipped; an event type whose handler recognises its
  own repeats by a key of the state it writes (``deduplicated_by_handler``: the router's new
  petitions, by petition id) skips the ledger, and its handler returns the repeats it found;
* a transient failure (database unreachable) retries the whole batch with back-off; when
  the retries are exhausted the process exits *without* acknowledging, rather than skip.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import ValidationError

from shared import metrics
from shared.db import OutboxMessage, add_to_outbox, claim_event
import shared.events.all  # noqa: F401  (registers every event type)
from shared.events import parse_event

log = logging.getLogger(__name__)


class BadInput(Exception):
    """A message that no retry will fix; it is dead-lettered with `code` as the reason."""

    code = "bad_input"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A consumed Kafka record, as the broker delivered it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int | None = None


@dataclass(slots=True)
class BatchResult:
    applied: int = 0
    repeats: int = 0
    dead_lettered: int = 0
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    #: (topic, outcome) -> events, counted into the metrics once the batch has committed
    consumed: dict[tuple[str, str], int] = field(default_factory=dict)

    def tally(self, topic: str, outcome: str) -> None:
        key = (topic, outcome)
        self.consumed[key] = self.consumed.get(key, 0) + 1

    def applied_was_repeat(self, topic: str) -> None:
        """An event counted as applied turned out to be a repeat (its handler said so)."""
        self.applied -= 1
        self.repeats += 1
        self.consumed[(topic, "applied")] -= 1
        self.tally(topic, "repeat")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A decoded batch: the events to apply and the dead letters found while decoding."""

    messages: Sequence[RawMessage]
    decoded: list[tuple[RawMessage, Any, Any]]
    dead: list[OutboxMessage]


#: A handler applies one decoded event inside the caller's transaction. (The handler of a
#: type in ``deduplicated_by_handler`` returns the messages it found already applied.)
Handler = Callable[[asyncpg.Connection, Any, RawMessage, BatchResult], Awaitable[Sequence[RawMessage] | None]]
#: A batch handler applies consecutive events of one type at once (fewer round trips).
BatchHandler = Callable[
    [asyncpg.Connection, list[tuple[Any, RawMessage]], BatchResult], Awaitable[Sequence[RawMessage] | None]
]

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)


def dead_letter_message(
    *, service: str, dead_letter_topic: str, message: RawMessage, reason: str, error: str
) -> OutboxMessage:
    """The dead-letter record: reason, error text, origin and the original bytes (base64)."""
    body = {
        "service": service,
        "reason": reason,
        "error": error[:2000],
        "source_topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "key_b64": base64.b64encode(message.key).decode() if message.key is not None else None,
        "value_b64": base64.b64encode(message.value).decode(),
        "failed_at": datetime.now(UTC).isoformat(),
    }
    return OutboxMessage(
        topic=dead_letter_topic,
        key=message.key,
        value=json.dumps(body, ensure_ascii=False).encode(),
        headers={"reason": reason, "source_topic": message.topic},
    )


class BatchProcessor:
    """Applies batches of messages for one consumer of one service."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        schema: str,
        service: str,
        consumer: str,
        dead_letter_topic: str,
        handlers: dict[str, Handler],
        decode: Callable[[bytes], Any] = parse_event,
        on_committed: Callable[[BatchResult], None] | None = None,
        prepare: Callable[[list[tuple[Any, RawMessage]]], Awaitable[None]] | None = None,
        batch_handlers: dict[str, BatchHandler] | None = None,
        deduplicated_by_handler: frozenset[str] = frozenset(),
        max_attempts: int = 8,
    ) -> None:
        self._pool = pool
        self._schema = schema
        self._service = service
        self._consumer = consumer
        self._dlq = dead_letter_topic
        self._handlers = handlers
        self._decode = decode
        self._on_committed = on_committed
        self._prepare = prepare
        self._batch_handlers = batch_handlers or {}
        self._unclaimed = deduplicated_by_handler
        self._max_attempts = max_attempts

    async def process(self, messages: Sequence[RawMessage]) -> BatchResult:
        """Apply `messages` in one transaction; retry transient failures, then exit."""
        return await self.apply(await self.prepare(messages))

    async def prepare(self, messages: Sequence[RawMessage]) -> Prepared:
        """Decode the batch and run the `prepare` hook (no database, no state): a pipelined
        consumer prepares the next batch while the previous one is applied."""
        dead: list[OutboxMessage] = []
        decoded = self._decode_all(messages, dead)
        if self._prepare is not None and decoded:
            try:
                await self._prepare([(event, message) for message, event, _ in decoded])
            except Exception:  # noqa: BLE001 - the hook only precomputes; handlers do without it
                log.exception("%s: prepare hook failed; the handlers compute without it", self._consumer)
        return Prepared(messages, decoded, dead)

    async def apply(self, prepared: Prepared) -> BatchResult:
        """Apply a prepared batch in one transaction; retry transient failures, then exit."""
        backoff = 0.2
        for attempt in range(1, self._max_attempts + 1):
            started = time.perf_counter()
            try:
                result = await self._apply(prepared)
            except TRANSIENT_ERRORS as exc:
                metrics.TRANSIENT_RETRIES.labels(self._service).inc()
                log.warning(
                    "%s: transient failure on attempt %d/%d: %r",
                    self._consumer, attempt, self._max_attempts, exc,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            metrics.BATCH_SECONDS.labels(self._service).observe(time.perf_counter() - started)
            for (topic, outcome), count in result.consumed.items():
                metrics.EVENTS_CONSUMED.labels(self._service, topic, outcome).inc(count)
            for callback in result.after_commit:
                callback()
            if self._on_committed is not None:
                self._on_committed(result)
            return result
        log.critical(
            "%s: giving up after %d attempts; stopping without acknowledging the batch",
            self._consumer, self._max_attempts,
        )
        logging.shutdown()
        os._exit(75)

    def _dead_letter(self, dead: list[OutboxMessage], message: RawMessage, reason: str, error: str) -> None:
        dead.append(
            dead_letter_message(
                service=self._service,
                dead_letter_topic=self._dlq,
                message=message,
                reason=reason,
                error=error,
            )
        )
        metrics.DEAD_LETTERS.labels(self._service, message.topic, reason).inc()
        log.warning(
            "%s: dead-lettered %s[%d]@%d: %s: %s",
            self._consumer, message.topic, message.partition, message.offset, reason, error[:300],
        )

    def _decode_all(
        self, messages: Sequence[RawMessage], dead: list[OutboxMessage]
    ) -> list[tuple[RawMessage, Any, Handler]]:
        decoded: list[tuple[RawMessage, Any, Handler]] = []
        for message in messages:
            try:
                event = self._decode(message.value)
            except ValidationError as exc:
                undecodable = any(e.get("type") == "json_invalid" for e in exc.errors())
                self._dead_letter(dead, message, "undecodable" if undecodable else "invalid_schema", str(exc))
                continue
            except (ValueError, UnicodeDecodeError) as exc:
                self._dead_letter(dead, message, "undecodable", str(exc))
                continue
            handler = self._handlers.get(getattr(event, "event_type", ""))
            if handler is None:
                self._dead_letter(dead, message, "unexpected_event_type", repr(getattr(event, "event_type", None)))
                continue
            decoded.append((message, event, handler))
        return decoded

    async def _claim_all(self, conn: asyncpg.Connection, events: list[Any]) -> set[Any]:
        """Record every event id of the batch in one round trip; returns the new ones."""
        rows = await conn.fetch(
            f'INSERT INTO "{self._schema}".processed_event (consumer, event_id)'
            " SELECT $1, e FROM unnest($2::uuid[]) AS e ON CONFLICT DO NOTHING RETURNING event_id",
            self._consumer,
            list({e.event_id for e in events}),
        )
        return {r["event_id"] for r in rows}

    async def _apply(self, prepared: Prepared) -> BatchResult:
        """Fast path: the whole batch in one transaction without savepoints; if any event
        fails, roll back and redo the batch event by event with a savepoint each, so only
        the failing events are dead-lettered."""
        try:
            return await self._apply_fast(prepared.decoded, list(prepared.dead))
        except TRANSIENT_ERRORS:
            raise
        except Exception:  # noqa: BLE001 - isolate the failing event on the slow path
            log.info("%s: batch failed on the fast path; applying event by event", self._consumer)
        return await self._apply_one_by_one(prepared.decoded, list(prepared.dead))

    async def _apply_fast(
        self, decoded: list[tuple[RawMessage, Any, Handler]], dead: list[OutboxMessage]
    ) -> BatchResult:
        result = BatchResult()
        unclaimed = self._unclaimed
        async with self._pool.acquire() as conn, conn.transaction():
            claimed = [event for _, event, _ in decoded if event.event_type not in unclaimed]
            fresh = await self._claim_all(conn, claimed) if claimed else set()
            seen: set[Any] = set()
            run: list[tuple[Any, RawMessage]] = []
            run_type = ""

            async def flush() -> None:
                if run:
                    repeats = await self._batch_handlers[run_type](conn, list(run), result)
                    if run_type in unclaimed:
                        for message in repeats or ():
                            result.applied_was_repeat(message.topic)
                    run.clear()

            for message, event, handler in decoded:
                if (event.event_id not in fresh and event.event_type not in unclaimed) or event.event_id in seen:
                    result.repeats += 1
                    result.tally(message.topic, "repeat")
                    continue
                seen.add(event.event_id)
                event_type = event.event_type
                if event_type in self._batch_handlers:
                    if event_type != run_type:
                        await flush()
                        run_type = event_type
                    run.append((event, message))
                    result.applied += 1
                    result.tally(message.topic, "applied")
                else:
                    await flush()
                    run_type = ""
                    repeats = await handler(conn, event, message, result)
                    result.applied += 1
                    result.tally(message.topic, "applied")
                    if event_type in unclaimed and repeats:
                        result.applied_was_repeat(message.topic)
            await flush()
            if dead:
                await add_to_outbox(conn, self._schema, dead)
        result.dead_lettered = len(dead)
        return result

    async def _apply_one_by_one(
        self, decoded: list[tuple[RawMessage, Any, Handler]], dead: list[OutboxMessage]
    ) -> BatchResult:
        result = BatchResult()
        async with self._pool.acquire() as conn, conn.transaction():
            for message, event, handler in decoded:
                try:
                    async with conn.transaction():
                        unclaimed = event.event_type in self._unclaimed
                        if not unclaimed and not await claim_event(conn, self._schema, self._consumer, event.event_id):
                            result.repeats += 1
                            result.tally(message.topic, "repeat")
                            continue
                        if await handler(conn, event, message, result) and unclaimed:
                            result.repeats += 1
                            result.tally(message.topic, "repeat")
                            continue
                except TRANSIENT_ERRORS:
                    raise
                except BadInput as exc:
                    self._dead_letter(dead, message, exc.code, str(exc))
                    continue
                except Exception as exc:  # noqa: BLE001 - a handler bug must not stall the stream
                    log.exception("%s: handler failed on %s", self._consumer, message.topic)
                    self._dead_letter(dead, message, "handler_error", repr(exc))
                    continue
                result.applied += 1
                result.tally(message.topic, "applied")
            if dead:
                await add_to_outbox(conn, self._schema, dead)
        result.dead_lettered = len(dead)
        return result
