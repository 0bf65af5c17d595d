"""The consumer core every service uses: check, decode, dedupe, apply, dead-letter, retry.

Transport-neutral: a faust agent or an aiokafka loop turns each record into a
:class:`~shared.records.RawMessage` with :func:`~shared.records.raw_message` (which never
raises; :mod:`shared.records` checks records and builds dead letters), hands a batch to
:meth:`BatchProcessor.process` and acknowledges it only after it returns. The rules:

* every record is either applied or dead-lettered, and :meth:`BatchProcessor.process`
  returns for every batch (it never raises, except to be cancelled): a record that can
  never be processed goes to the service's dead-letter topic with a stable reason code and
  the original bytes, through the outbox, and the stream goes on. The reasons
  (:data:`shared.records.DEAD_LETTER_REASONS`): ``null_value``, ``null_key``, ``bad_headers``,
  ``oversized`` (key, value and headers over ``max_record_bytes``) before decoding;
  ``undecodable``, ``invalid_schema``, ``unsupported_schema_version`` (an envelope
  version outside :data:`shared.events.SUPPORTED_SCHEMA_VERSIONS`),
  ``unexpected_event_type`` while decoding; the code of the handler's :class:`shared.errors.PetitionError` or
  ``handler_error`` while applying; ``processing_error`` for anything unexpected around
  them (a defect in this module or in a hook), so no defect can stop the stream;
* every applied event and its ledger row (`processed_event`) commit in one transaction, so
  a redelivered event is recognised and skipped; an event type whose handler recognises its
  own repeats by a key of the state it writes (``deduplicated_by_handler``: the router's new
  petitions, by petition id) skips the ledger, and its handler returns the repeats it found;
* a transient failure (:func:`shared.outages.is_transient`: database or broker unavailable)
  retries the whole batch with capped back-off, for as long as it takes: nothing is skipped
  and nothing is acknowledged meanwhile. While it retries the processor says it is not
  healthy (:attr:`BatchProcessor.healthy`, :attr:`BatchProcessor.failing_since`), for
  ``/readyz``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from shared import metrics, retry
from shared.errors import PetitionError
from shared.events import parse_event
from shared.messages import OutboxMessage
from shared.outages import is_transient
from shared.records import (
    DEFAULT_MAX_RECORD_BYTES,
    RawMessage,
    check_record,
    dead_letter_message,
    decode_failure,
)
from shared.store import Transaction, UnitOfWork

log = logging.getLogger(__name__)

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


class ConsumerHealth:
    """Whether a consumer is stuck: each source (a processor retrying an outage, an agent,
    a loop reconnecting to Kafka) reports its failures and its recovery; the consumer is
    healthy while none is failing. One object may be shared by the layers of a consumer."""

    __slots__ = ("_failing",)

    def __init__(self) -> None:
        self._failing: dict[str, tuple[float, str]] = {}

    @property
    def healthy(self) -> bool:
        return not self._failing

    @property
    def failing_since(self) -> float | None:
        """When the oldest ongoing failure began (Unix time), None while healthy."""
        return min((since for since, _ in self._failing.values()), default=None)

    @property
    def last_error(self) -> str | None:
        return next(reversed(self._failing.values()))[1] if self._failing else None

    def failed(self, source: str, error: BaseException | str) -> None:
        since = self._failing.get(source, (time.time(), ""))[0]
        self._failing[source] = (since, error if isinstance(error, str) else repr(error)[:500])

    def recovered(self, source: str) -> None:
        self._failing.pop(source, None)


#: A handler applies one decoded event through the batch's transaction (the service's store,
#: a :class:`shared.store.Transaction`). (The handler of a type in ``deduplicated_by_handler``
#: returns the messages it found already applied.) It raises a :class:`PetitionError` for an
#: event that can never be applied: dead-lettered with the error's code.
Handler = Callable[[Any, Any, RawMessage, BatchResult], Awaitable[Sequence[RawMessage] | None]]
#: A batch handler applies consecutive events of one type at once (fewer round trips).
BatchHandler = Callable[[Any, list[tuple[Any, RawMessage]], BatchResult], Awaitable[Sequence[RawMessage] | None]]

class BatchProcessor:
    """Applies batches of messages for one consumer of one service.

    :meth:`process` (and :meth:`prepare` / :meth:`apply`) return for every batch: records
    that cannot be applied are dead-lettered, a defect anywhere around the handlers
    dead-letters the records it hit as ``processing_error``, and a transient failure is
    retried with capped back-off (:func:`shared.retry.forever`) until it goes away. While it
    retries, :attr:`healthy` is False and :attr:`failing_since` says since when.

    `uow` opens the batch's transaction (:class:`shared.store.UnitOfWork`); its store is
    what the handlers receive.
    """

    def __init__(
        self,
        *,
        uow: UnitOfWork[Transaction],
        service: str,
        consumer: str,
        dead_letter_topic: str,
        handlers: Mapping[str, Handler],
        decode: Callable[[bytes], Any] = parse_event,
        on_committed: Callable[[BatchResult], None] | None = None,
        prepare: Callable[[list[tuple[Any, RawMessage]]], Awaitable[None]] | None = None,
        batch_handlers: Mapping[str, BatchHandler] | None = None,
        deduplicated_by_handler: frozenset[str] = frozenset(),
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        health: ConsumerHealth | None = None,
        min_backoff: float = 0.2,
        max_backoff: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._uow = uow
        self._service = service
        self._consumer = consumer
        self._dlq = dead_letter_topic
        self._handlers = handlers
        self._decode = decode
        self._on_committed = on_committed
        self._prepare = prepare
        self._batch_handlers = batch_handlers or {}
        self._unclaimed = deduplicated_by_handler
        self._max_record_bytes = max_record_bytes
        self._min_backoff, self._max_backoff = min_backoff, max_backoff
        self._sleep = sleep
        self.health = health if health is not None else ConsumerHealth()

    @property
    def healthy(self) -> bool:
        """False while a batch is being retried after a transient failure (for ``/readyz``)."""
        return self.health.healthy

    @property
    def failing_since(self) -> float | None:
        """Unix time the ongoing retries began; None while healthy."""
        return self.health.failing_since

    async def process(self, messages: Sequence[RawMessage]) -> BatchResult:
        """Apply `messages` in one transaction; every one is applied or dead-lettered."""
        return await self.apply(await self.prepare(messages))

    async def prepare(self, messages: Sequence[RawMessage]) -> Prepared:
        """Check and decode the batch and run the `prepare` hook (no database, no state): a
        pipelined consumer prepares the next batch while the previous one is applied."""
        dead: list[OutboxMessage] = []
        decoded = self._decode_all(messages, dead)
        if self._prepare is not None and decoded:
            try:
                await self._prepare([(event, message) for message, event, _ in decoded])
            except asyncio.CancelledError:
                raise
            except Exception:  # the hook only precomputes; handlers do without it
                log.exception("%s: prepare hook failed; the handlers compute without it", self._consumer)
        return Prepared(messages, decoded, dead)

    async def apply(self, prepared: Prepared) -> BatchResult:
        """Apply a prepared batch in one transaction; a transient failure is retried (with
        capped back-off, for as long as it lasts), anything else is isolated."""
        attempts = 0

        async def attempt() -> tuple[BatchResult, float]:
            nonlocal attempts
            attempts += 1
            started = time.perf_counter()
            try:
                result = await self._apply(prepared)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # sorted below: retry, or isolate
                if is_transient(exc):
                    raise
                # a defect outside the per-event isolation (the ledger, the dead letters'
                # own write, a batch handler's bookkeeping): the batch goes to dead letters
                log.exception("%s: batch failed outside its handlers; dead-lettering it", self._consumer)
                result = await self._dead_letter_batch(prepared, exc)
            return result, time.perf_counter() - started

        def failed(exc: BaseException, attempt_no: int, wait: float) -> None:
            self.health.failed(self._consumer, exc)
            metrics.TRANSIENT_RETRIES.labels(self._service).inc()

        result, seconds = await retry.forever(
            attempt, what=f"{self._consumer}: batch", min_backoff=self._min_backoff,
            max_backoff=self._max_backoff, on_failure=failed, logger=log, sleep=self._sleep,
        )
        if attempts > 1:
            log.info("%s: batch applied after %d attempts", self._consumer, attempts)
        self.health.recovered(self._consumer)
        self._committed(result, seconds)
        return result

    def _committed(self, result: BatchResult, seconds: float) -> None:
        """Metrics and callbacks of a committed batch: none of them may undo or redo it."""
        try:
            metrics.BATCH_SECONDS.labels(self._service).observe(seconds)
            for (topic, outcome), count in result.consumed.items():
                metrics.EVENTS_CONSUMED.labels(self._service, topic, outcome).inc(count)
        except Exception:
            log.exception("%s: counting a committed batch failed", self._consumer)
        callbacks = list(result.after_commit)
        if self._on_committed is not None:
            on_committed = self._on_committed
            callbacks.append(lambda: on_committed(result))
        for callback in callbacks:
            try:
                callback()
            except Exception:  # the batch is committed; a callback bug stays a log line
                log.exception("%s: an after-commit callback failed", self._consumer)

    async def _dead_letter_batch(self, prepared: Prepared, exc: BaseException) -> BatchResult:
        """Dead-letter every decoded record of the batch as ``processing_error`` (with the
        dead letters found while decoding), in a transaction of its own."""
        dead = list(prepared.dead)
        for message, _, _ in prepared.decoded:
            self._dead_letter(dead, message, "processing_error", repr(exc))
        result = BatchResult()
        async with self._uow.begin() as tx:
            await tx.add_to_outbox(dead)
        result.dead_lettered = len(dead)
        return result

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
                found = self._decode_one(message)
            except Exception as exc:  # a defect on one record isolates that record
                log.exception("%s: checking a record failed", self._consumer)
                found = ("processing_error", repr(exc))
            if len(found) == 2:  # (reason, error)
                try:
                    self._dead_letter(dead, message, found[0], found[1])
                except Exception:  # last resort: a dead letter without the record
                    log.exception("%s: building a dead letter failed", self._consumer)
                    bare = RawMessage(message.topic, message.partition, message.offset, None, None)
                    self._dead_letter(dead, bare, "processing_error", "the record could not be copied")
                continue
            decoded.append(found)
        return decoded

    def _decode_one(self, message: RawMessage) -> tuple[str, str] | tuple[RawMessage, Any, Handler]:
        """The record decoded, with its handler, or ``(reason, error)`` for a dead letter."""
        problem = check_record(message, self._max_record_bytes)
        if problem is not None:
            return problem
        assert message.value is not None  # noqa: S101 - checked above
        try:
            event = self._decode(message.value)
        except ValidationError as exc:
            return (decode_failure(exc), str(exc))
        except (ValueError, UnicodeDecodeError) as exc:
            return ("undecodable", str(exc))
        except RecursionError as exc:
            return ("undecodable", repr(exc))
        handler = self._handlers.get(getattr(event, "event_type", ""))
        if handler is None:
            return ("unexpected_event_type", repr(getattr(event, "event_type", None)))
        return (message, event, handler)

    async def _apply(self, prepared: Prepared) -> BatchResult:
        """Fast path: the whole batch in one transaction without savepoints; if any event
        fails, roll back and redo the batch event by event with a savepoint each, so only
        the failing events are dead-lettered."""
        try:
            return await self._apply_fast(prepared.decoded, list(prepared.dead))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # isolate the failing event on the slow path
            if is_transient(exc):
                raise
            log.info("%s: batch failed on the fast path (%r); applying event by event", self._consumer, exc)
        return await self._apply_one_by_one(prepared.decoded, list(prepared.dead))

    async def _apply_fast(
        self, decoded: list[tuple[RawMessage, Any, Handler]], dead: list[OutboxMessage]
    ) -> BatchResult:
        result = BatchResult()
        unclaimed = self._unclaimed
        async with self._uow.begin() as tx:
            claimed = [event.event_id for _, event, _ in decoded if event.event_type not in unclaimed]
            fresh = await tx.claim_events(self._consumer, claimed) if claimed else set()
            seen: set[Any] = set()
            run: list[tuple[Any, RawMessage]] = []
            run_type = ""

            async def flush() -> None:
                if run:
                    repeats = await self._batch_handlers[run_type](tx, list(run), result)
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
                    repeats = await handler(tx, event, message, result)
                    result.applied += 1
                    result.tally(message.topic, "applied")
                    if event_type in unclaimed and repeats:
                        result.applied_was_repeat(message.topic)
            await flush()
            if dead:
                await tx.add_to_outbox(dead)
        result.dead_lettered = len(dead)
        return result

    async def _apply_one_by_one(
        self, decoded: list[tuple[RawMessage, Any, Handler]], dead: list[OutboxMessage]
    ) -> BatchResult:
        result = BatchResult()
        async with self._uow.begin() as tx:
            for message, event, handler in decoded:
                callbacks = len(result.after_commit)
                try:
                    async with tx.savepoint():
                        unclaimed = event.event_type in self._unclaimed
                        if not unclaimed and not await tx.claim_events(self._consumer, [event.event_id]):
                            result.repeats += 1
                            result.tally(message.topic, "repeat")
                            continue
                        if await handler(tx, event, message, result) and unclaimed:
                            result.repeats += 1
                            result.tally(message.topic, "repeat")
                            continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a handler's refusal or bug must not stall the stream
                    if is_transient(exc):
                        raise
                    del result.after_commit[callbacks:]  # of the work its savepoint undid
                    if isinstance(exc, PetitionError):
                        self._dead_letter(dead, message, exc.code, str(exc))
                    else:
                        log.exception("%s: handler failed on %s", self._consumer, message.topic)
                        self._dead_letter(dead, message, "handler_error", repr(exc))
                    continue
                result.applied += 1
                result.tally(message.topic, "applied")
            if dead:
                await tx.add_to_outbox(dead)
        result.dead_lettered = len(dead)
        return result


def group_instance_id(service: str, port: int, configured: str = "") -> str:
    """This instance's static member id in its consumer group (``group.instance.id``).

    Stable across restarts of the same instance (so the broker hands its partitions back at
    once) and different for every instance of a group: ``PETITION_INSTANCE_ID`` when set,
    otherwise the service, the host and the instance's own port (two instances on one
    machine listen on different ports)."""
    if configured:
        return configured
    return f"petition-{service}-{socket.gethostname()}-{port}"
