"""The consumer core with an in-memory database: every record is applied or dead-lettered,
with a stable reason; outages are retried (reported unhealthy meanwhile), never given up on."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from shared.consumer import BatchProcessor, BatchResult, ConsumerHealth, group_instance_id
from shared.errors import BadInput
from shared.kafka_client import KafkaAccess
from shared.records import DEAD_LETTER_INLINE_BYTES, RawMessage, check_record, raw_message
from tests.fakes import FakeDatabase, FakeTransaction, FakeUnitOfWork

GOLDEN = Path(__file__).parent / "golden"


class AppliedDb(FakeDatabase):
    """The fake database of a consumer whose one table is the list of event ids applied."""

    def __init__(self) -> None:
        super().__init__()
        self.applied: list[Any] = []


class AppliedStore(FakeTransaction):
    db: AppliedDb


def new_db() -> AppliedDb:
    return AppliedDb()


def applied(db: AppliedDb) -> list[Any]:
    return db.applied


def golden(name: str = "petition.submitted", **changes: Any) -> bytes:
    body = json.loads((GOLDEN / f"{name}.json").read_text())
    body["event_id"] = str(uuid.uuid4())
    body.update(changes)
    return json.dumps(body).encode()


_offsets = iter(range(10**9))


def record(
    value: Any = None, *, key: Any = b"P-1", headers: Any = None, topic: str = "petition.submitted"
) -> RawMessage:
    return raw_message(topic=topic, partition=0, offset=next(_offsets), key=key, value=value,
                       timestamp_ms=1, headers=headers)


def processor(db: AppliedDb, handler: Any = None, *, uow: Any = None, **kwargs: Any) -> BatchProcessor:
    async def apply(tx: AppliedStore, event: Any, raw: RawMessage, result: BatchResult) -> None:
        tx.db.applied.append(event.event_id)

    return BatchProcessor(
        uow=uow or FakeUnitOfWork(db, AppliedStore),
        service="test",
        consumer="test",
        dead_letter_topic="deadletter.test",
        handlers={"petition.submitted": handler or apply},
        min_backoff=0.001,
        max_backoff=0.01,
        **kwargs,
    )


async def test_every_kind_of_bad_record_is_dead_lettered_with_its_reason() -> None:
    db = new_db()
    good = record(golden())
    batch = [
        record(None),  # a tombstone: raw_of used to crash on bytes(None)
        record(golden(), key=None),
        record(golden(), key=b""),
        record(golden(), headers=[("trace", 5)]),  # a header value that is not bytes
        record(golden(), headers=[(b"\xff\xfe", b"x")]),  # a header name that is not UTF-8
        record(golden(), headers="not pairs"),
        record(golden(content="长" * 400_000)),  # ~1.2 MB of UTF-8
        record(golden(schema_version=2)),
        record(golden(schema_version=2, title=None)),  # a newer version that also changed a field
        record(b"{not json"),
        record(golden(title=None)),
        record(golden("sla.warning")),  # a type this consumer has no handler for
        record(object()),  # a client that delivered something that is not bytes
        good,
    ]
    result = await processor(db).process(batch)
    reasons = [d["reason"] for d in db.dead_letters()]
    assert reasons == [
        "null_value", "null_key", "null_key", "bad_headers", "bad_headers", "bad_headers", "oversized",
        "unsupported_schema_version", "unsupported_schema_version", "undecodable", "invalid_schema",
        "unexpected_event_type", "processing_error",
    ]
    assert result.applied == 1 and result.dead_lettered == len(batch) - 1
    assert [str(e) for e in applied(db)] == [json.loads(good.value or b"")["event_id"]]


async def test_dead_letters_carry_the_original_bytes_and_null_stays_null() -> None:
    db = new_db()
    tombstone = record(None, key=b"P-9", headers=[("h", b"\x00\x01"), ("empty", None)])
    garbage = record(b"\xff not an event", key=None)
    big_value = golden(content="长" * 400_000)
    big = record(big_value)
    await processor(db).process([tombstone, garbage, big])
    first, second, third = db.dead_letters()
    assert first["value_b64"] is None and first["key_b64"] == base64.b64encode(b"P-9").decode()
    assert first["headers"] == [["h", base64.b64encode(b"\x00\x01").decode()], ["empty", None]]
    assert first["offset"] == tombstone.offset and first["source_topic"] == "petition.submitted"
    assert second["key_b64"] is None and base64.b64decode(second["value_b64"]) == b"\xff not an event"
    # an oversized value is cut, so the dead letter itself stays publishable
    assert third["value_truncated"] is True and third["value_bytes"] == len(big_value)
    assert len(big_value) > DEAD_LETTER_INLINE_BYTES
    assert big_value.startswith(base64.b64decode(third["value_b64"]))
    assert all(len(m.value) < 1024 * 1024 for m in db.outbox)


def test_the_size_limit_is_configurable_and_counts_key_value_and_headers() -> None:
    message = record(b"x" * 100, key=b"k" * 10, headers=[("h", b"v" * 10)])
    assert check_record(message, max_record_bytes=1000) is None
    assert check_record(message, max_record_bytes=120) is not None
    assert check_record(message, max_record_bytes=120)[0] == "oversized"  # type: ignore[index]  # the defect is known to be set here


async def test_an_outage_is_retried_until_it_ends_and_reported_meanwhile() -> None:
    db = new_db()
    db.faults.outages = 30  # far beyond the 8 attempts after which the old core called os._exit
    proc = processor(db)
    health_seen: list[bool] = []

    async def watch() -> None:
        while True:
            health_seen.append(proc.healthy)
            await asyncio.sleep(0.001)

    watcher = asyncio.ensure_future(watch())
    try:
        result = await asyncio.wait_for(proc.process([record(golden())]), 10)
    finally:
        watcher.cancel()
    assert result.applied == 1 and len(applied(db)) == 1
    assert False in health_seen  # unhealthy while it retried
    assert proc.healthy and proc.failing_since is None


async def test_failing_since_is_set_while_retrying() -> None:
    db = new_db()
    db.faults.outages = 10**6
    proc = processor(db)
    task = asyncio.ensure_future(proc.process([record(golden())]))
    await asyncio.sleep(0.05)
    assert not proc.healthy and proc.failing_since is not None
    assert "database down" in (proc.health.last_error or "")
    db.faults.outages = 0
    await asyncio.wait_for(task, 5)
    assert proc.healthy


async def test_handler_defects_and_bad_input_dead_letter_only_their_record() -> None:
    db = new_db()
    calls: list[str] = []

    async def handler(tx: Any, event: Any, raw: RawMessage, result: BatchResult) -> None:
        calls.append(event.title)
        if event.title == "boom":
            raise KeyError("a handler bug")
        if event.title == "bad":
            raise BadInput("refused", code="unknown_petition")
        result.after_commit.append(lambda: None)
        tx.db.applied.append(event.event_id)

    batch = [record(golden(title="ok")), record(golden(title="boom")), record(golden(title="bad"))]
    result = await processor(db, handler).process(batch)
    assert [d["reason"] for d in db.dead_letters()] == ["handler_error", "unknown_petition"]
    assert result.applied == 1 and len(applied(db)) == 1


async def test_a_defect_outside_the_handlers_dead_letters_the_batch_instead_of_raising() -> None:
    db = new_db()
    calls = 0

    def on_committed(_r: BatchResult) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("a callback bug after the commit")

    async def handler(tx: Any, event: Any, raw: RawMessage, result: BatchResult) -> None:
        raise BadInput("refused")

    proc = processor(db, handler, on_committed=on_committed)
    # the batch is committed once: a failing callback neither raises nor re-applies it
    result = await proc.process([record(golden())])
    assert result.dead_lettered == 1 and calls == 1

    db.faults.outbox_broken = True  # writing the dead letters themselves fails (not an outage)
    task = asyncio.ensure_future(proc.process([record(golden())]))
    await asyncio.sleep(0.05)
    assert not task.done() and not proc.healthy  # nothing can be written: it waits, visibly
    db.faults.outbox_broken = False
    await asyncio.wait_for(task, 5)
    assert proc.healthy


async def test_a_defect_in_the_decoder_is_isolated_per_record() -> None:
    db = new_db()

    def decode(raw: bytes) -> Any:
        if raw.startswith(b"!"):
            raise ZeroDivisionError("decoder bug")
        from shared.events import parse_event

        return parse_event(raw)

    proc = processor(db, decode=decode)
    result = await proc.process([record(b"!x"), record(golden())])
    assert [d["reason"] for d in db.dead_letters()] == ["processing_error"]
    assert result.applied == 1


def test_raw_message_never_raises() -> None:
    weird: list[Any] = [None, 5, object(), [("a",)], {"k": b"v"}, [(1, b"v")], [("k", "text")]]
    for headers in weird:
        m = raw_message(topic="t", partition=0, offset=0, key=b"k", value=b"v", headers=headers)
        assert isinstance(m, RawMessage)
    assert raw_message(topic="t", partition=0, offset=0, key=b"k", value=b"v", headers={"k": b"v"}).headers == (
        ("k", b"v"),)
    assert raw_message(topic="t", partition=0, offset=0, key=bytearray(b"k"), value=memoryview(b"v")).value == b"v"


def test_faust_records_become_raw_messages_without_raising() -> None:
    from types import SimpleNamespace

    from shared.worker import raw_of

    def event(**fields: Any) -> Any:
        message = {"topic": "petition.submitted", "partition": 2, "offset": 7, "key": b"P-1",
                   "value": b"{}", "timestamp": 1.5, "headers": []}
        message.update(fields)
        return SimpleNamespace(message=SimpleNamespace(**message))

    assert raw_of(event(value=None)).value is None  # used to raise TypeError: bytes(None)
    assert raw_of(event(key=None)).key is None
    assert raw_of(event()).timestamp_ms == 1500
    assert raw_of(event(headers=[("x", 3)])).defect[0] == "bad_headers"  # type: ignore[index]  # the defect is known to be set here
    assert raw_of(SimpleNamespace()).defect[0] == "processing_error"  # type: ignore[index]  # the defect is known to be set here


def test_static_member_ids_differ_per_instance_and_survive_restarts() -> None:
    assert group_instance_id("router", 8081) == group_instance_id("router", 8081)
    assert group_instance_id("router", 8081) != group_instance_id("router", 9081)
    assert group_instance_id("router", 8081, "router-a") == "router-a"


def test_health_tracks_each_source() -> None:
    health = ConsumerHealth()
    health.failed("a", OSError("x"))
    health.failed("b", "y")
    health.recovered("a")
    assert not health.healthy and health.last_error == "y"
    health.recovered("b")
    assert health.healthy and health.failing_since is None


async def test_an_agent_retries_what_its_processor_raised_instead_of_dying() -> None:
    from shared.worker import retry_until_done

    health = ConsumerHealth()
    attempts = 0

    async def attempt() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 5:
            raise (ConnectionRefusedError if attempts % 2 else RuntimeError)("start-up failed")
        return "done"

    seen: list[bool] = []

    async def watch() -> None:
        while True:
            seen.append(health.healthy)
            await asyncio.sleep(0.001)

    watcher = asyncio.ensure_future(watch())
    try:
        assert await retry_until_done(attempt, health=health, source="route", min_backoff=0.005) == "done"
    finally:
        watcher.cancel()
    assert attempts == 5 and False in seen and health.healthy


async def test_the_read_model_loop_outlives_kafka_failures_and_commits_past_bad_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    from aiokafka.errors import KafkaConnectionError

    from services.intake.readmodel import consumer as projector

    db = new_db()
    proc = processor(db)
    starts: list[dict[str, Any]] = []
    commits: list[int] = []

    delivered = [
        SimpleNamespace(topic="petition.submitted", partition=0, offset=i, key=k, value=v, timestamp=1, headers=())
        for i, (k, v) in enumerate([(b"P-1", None), (None, golden()), (b"P-2", golden())])
    ]
    polls = 0

    class FakeConsumer:
        def __init__(self, *topics: str, **kwargs: Any) -> None:
            starts.append(kwargs)

        async def start(self) -> None:
            if len(starts) == 1:
                raise KafkaConnectionError("broker down")

        async def getmany(self, **_: Any) -> dict[Any, list[Any]]:
            nonlocal polls
            polls += 1
            if polls == 1:  # the batch is applied, then the loop fails before its commit
                return {0: delivered}
            if polls == 2:
                raise RuntimeError("a defect in the loop")
            if polls == 3:  # delivered again to the new consumer: repeats, then committed
                return {0: delivered}
            await asyncio.sleep(0.01)
            return {}

        async def commit(self) -> None:
            commits.append(polls)

        async def stop(self) -> None:
            pass

    monkeypatch.setattr(projector, "AIOKafkaConsumer", FakeConsumer)
    task = asyncio.ensure_future(projector.run_projector(
        kafka=KafkaAccess("x"), processor=proc, group_instance_id="intake-a", min_backoff=0.001, max_backoff=0.01,
    ))
    try:
        for _ in range(500):
            if len(starts) >= 3 and proc.healthy:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert len(starts) >= 3 and starts[0]["group_instance_id"] == "intake-a"
    assert commits == [1, 3]  # past the bad records, once they were dead-lettered
    assert [d["reason"] for d in db.dead_letters()][:2] == ["null_value", "null_key"]
    assert len(applied(db)) == 1 and proc.healthy


async def test_the_fast_path_applies_a_batch_in_one_transaction_and_a_redelivery_applies_nothing() -> None:
    db = new_db()
    proc = processor(db)
    batch = [record(golden()) for _ in range(5)]
    result = await proc.process(batch)
    assert result.applied == 5 and result.repeats == 0
    assert db.commits == 1 and len(applied(db)) == 5
    assert len(db.ledger) == 5
    again = await proc.process(batch)  # the broker delivered the batch again
    assert again.applied == 0 and again.repeats == 5 and len(applied(db)) == 5
    assert again.consumed == {("petition.submitted", "repeat"): 5}


async def test_the_same_event_twice_in_one_batch_is_applied_once() -> None:
    db = new_db()
    raw = golden()
    result = await processor(db).process([record(raw), record(raw)])
    assert result.applied == 1 and result.repeats == 1 and len(applied(db)) == 1


async def test_the_slow_path_undoes_the_fast_paths_work_and_keeps_each_good_event_once() -> None:
    db = new_db()
    seen_after_commit: list[str] = []

    async def handler(tx: Any, event: Any, raw: RawMessage, result: BatchResult) -> None:
        tx.db.applied.append(event.title)
        title = event.title
        result.after_commit.append(lambda: seen_after_commit.append(title))
        if event.title == "bad":
            raise BadInput("refused", code="unknown_petition")

    uow = FakeUnitOfWork(db, AppliedStore)
    proc = processor(db, handler, uow=uow)
    batch = [record(golden(title=t)) for t in ("a", "bad", "b")]
    result = await proc.process(batch)
    # the fast path's transaction was rolled back whole; the slow one kept a and b, once each
    assert applied(db) == ["a", "b"]
    assert uow.begun == 2 and db.commits == 1
    assert result.applied == 2 and result.dead_lettered == 1
    assert [d["reason"] for d in db.dead_letters()] == ["unknown_petition"]
    # callbacks of the undone work (the refused event's, and the fast path's) never run
    assert seen_after_commit == ["a", "b"]
    # the refused event is not in the ledger: a corrected copy of it is not a "repeat"
    assert len(db.ledger) == 2


async def test_batch_handlers_take_runs_and_report_repeats_of_unledgered_types() -> None:
    db = new_db()
    runs: list[list[str]] = []

    async def one(tx: Any, event: Any, raw: RawMessage, result: BatchResult) -> None:
        tx.db.applied.append(event.event_type)

    async def run_of(tx: Any, items: list[tuple[Any, RawMessage]], result: BatchResult) -> list[RawMessage]:
        runs.append([e.title for e, _ in items])
        repeats = [m for e, m in items if e.title in tx.db.applied]
        tx.db.applied.extend(e.title for e, _ in items if e.title not in tx.db.applied)
        return repeats

    proc = BatchProcessor(
        uow=FakeUnitOfWork(db, AppliedStore), service="test", consumer="test", dead_letter_topic="deadletter.test",
        handlers={"petition.submitted": one, "sla.warning": one},
        batch_handlers={"petition.submitted": run_of},
        deduplicated_by_handler=frozenset({"petition.submitted"}),
        min_backoff=0.001, max_backoff=0.01,
    )
    batch = [record(golden(title="a")), record(golden(title="b")),
             record(golden("sla.warning")), record(golden(title="a"))]
    result = await proc.process(batch)
    assert runs == [["a", "b"], ["a"]]  # a run ends where another type comes between
    assert result.applied == 3 and result.repeats == 1
    # unledgered: a new petition is recognised by the handler (its state), not by the ledger
    assert len(db.ledger) == 1
