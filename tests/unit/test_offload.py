"""The router's CPU work off its event loop: the classifier worker process and faust's worker.

The worker must answer exactly what the in-process classifier and the repeat signature
answer, in input order, and a worker that dies must cost nothing but time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import pytest

from services.router.classification.offload import OffloadedClassifier
from services.router.config import load_classifier
from services.router.domain.repeats import pack, signature
from tests.unit.test_classification import OBVIOUS

ITEMS = [(title, content) for _, title, content in OBVIOUS] + [("", ""), ("噪音", "")]


@pytest.fixture(scope="module")
def local():  # the classifier the router loads in-process
    return load_classifier("model")


def test_worker_predictions_and_signatures_match_in_process(local) -> None:
    async def run() -> list:
        offload = OffloadedClassifier("model", workers=2, local=local)
        try:
            await offload.warm_up()
            flags = [i % 2 == 0 for i in range(len(ITEMS))]
            return await offload.predict_with_signatures([(t, c, f) for (t, c), f in zip(ITEMS, flags, strict=False)])
        finally:
            offload.close()

    got = asyncio.run(run())
    expected = local.predict(ITEMS)
    assert [p.category for p, _ in got] == [p.category for p in expected]
    assert [p.confidence for p, _ in got] == pytest.approx([p.confidence for p in expected], abs=1e-12)
    for i, ((title, content), (_, packed)) in enumerate(zip(ITEMS, got, strict=False)):
        assert packed == (pack(signature(title, content)) if i % 2 == 0 else None)


def test_a_dead_worker_costs_time_not_predictions(local) -> None:
    async def run() -> tuple[list, list, int]:
        offload = OffloadedClassifier("model", workers=1, local=local)
        try:
            await offload.warm_up()
            pool = offload._executor()
            for pid in list(pool._processes):  # the test kills the worker on purpose
                os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.5)
            after_crash = await offload.predict(ITEMS)  # classified in-process, pool restarted
            again = await offload.predict(ITEMS)  # through a new worker
            return after_crash, again, offload.fallbacks
        finally:
            offload.close()

    after_crash, again, fallbacks = asyncio.run(run())
    expected = [p.category for p in local.predict(ITEMS)]
    assert fallbacks == 1
    assert [p.category for p in after_crash] == expected
    assert [p.category for p in again] == expected


def test_quiet_worker_leaves_the_root_logger_alone() -> None:
    from shared.kafka_client import KafkaAccess
    from shared.settings import Settings
    from shared.worker import QuietWorker, make_app

    app = make_app("unit-quiet", Settings(run_dir=os.environ.get("TMPDIR", "/tmp") + "/unit-quiet"),
                   kafka=KafkaAccess("127.0.0.1:1"), web_port=1)
    assert app.conf.Worker is QuietWorker
    root = logging.getLogger()
    before = root.level, list(root.handlers)
    try:
        root.setLevel(logging.WARNING)
        worker = QuietWorker(app, loglevel="warn")
        worker.on_setup_root_logger(root, logging.WARNING)
        assert root.level == logging.WARNING  # faust's own worker sets DEBUG here
        assert worker.spinner is None
    finally:
        root.setLevel(before[0])
        root.handlers[:] = before[1]


def _submitted(i: int, title: str, content: str, **extra):
    import uuid
    from datetime import UTC, datetime

    from shared.events import Channel, Location, PetitionSubmitted

    fields = {"location": Location(), "kind": None, "persons": 1, "petitioner_key": None} | extra
    return PetitionSubmitted(
        event_id=uuid.UUID(int=i + 1), occurred_at=datetime(2026, 12, 2, 8, 0, tzinfo=UTC),
        petition_id=f"unit-plan-{i}", tracking_code=f"XF-UNIT{i:05d}", title=title, content=content,
        channel=Channel.HOTLINE, received_at=datetime(2026, 12, 2, 8, 0, tzinfo=UTC), **fields,
    )


def test_worker_plans_exactly_what_the_router_plans_itself(local) -> None:
    """Planned in the worker (decoded there, routed with its own copy of the table, events
    encoded) or in the router's process: the same department, rule, jurisdiction, accused
    units and events, for ordinary, accusation, coded, group and low-confidence petitions."""
    from services.router.config import GAZETTEER, ROUTING, load_routing_table
    from services.router.planning import encode, initial_decision, initial_routing, routing_from_worker
    from shared.events import Kind, Location, encode_event, parse_event

    table = load_routing_table(ROUTING, GAZETTEER)
    events = [_submitted(i, t, c, petitioner_key="p-1" if i % 3 == 0 else None) for i, (t, c) in enumerate(ITEMS)]
    events += [
        _submitted(100, "举报A3区住建局工作人员", "A3区住建局工作人员收受开发商好处，小区电梯坏了三个月一直不修。",
                   kind=Kind.ACCUSATION),
        _submitted(101, "小区噪音", "夜间施工噪音扰民", location=Location(admin_code=table.gazetteer.areas()[-1].code)),
        _submitted(102, "工资", "拖欠工资", persons=12),
        _submitted(103, "", ""),
    ]
    threshold = 0.6  # some of these go to the triage desk

    async def run() -> list:
        offload = OffloadedClassifier("model", workers=1, local=local, tables=(ROUTING, GAZETTEER))
        try:
            await offload.warm_up()
            raws = [(encode_event(e), e.petitioner_key is not None) for e in events]
            return await offload.plan(raws, table.version, threshold)
        finally:
            offload.close()

    got = asyncio.run(run())
    rules = set()
    predictions = local.predict([(e.title, e.content) for e in events])
    for event, (prediction, packed, plan), p in zip(events, got, predictions, strict=True):
        assert prediction.category == p.category and prediction.confidence == pytest.approx(p.confidence, abs=1e-12)
        assert packed == (pack(signature(event.title, event.content)) if event.petitioner_key else None)
        assert plan is not None
        from_worker = routing_from_worker(event, prediction, plan, table)
        assert from_worker is not None
        routing, encoded = from_worker
        decision, source = initial_decision(event, prediction, table, threshold)
        assert routing == initial_routing(event, prediction, decision, source, local.version)
        mine = encode(event, routing, parse_event(encoded.messages[0].value).occurred_at, table)
        assert encoded == mine  # same topics, keys, bytes and log row
        rules.add(routing.decision.rule.split(":")[0])
    assert {"triage", "accusation"} <= rules, rules
    # a table version the worker does not have: predictions, but no plan
    stale = asyncio.run(_plan_with_version(local, events[:2], "not-a-version"))
    assert [plan for _, _, plan in stale] == [None, None]


async def _plan_with_version(local, events, version):
    from services.router.config import GAZETTEER, ROUTING
    from shared.events import encode_event

    offload = OffloadedClassifier("model", workers=1, local=local, tables=(ROUTING, GAZETTEER))
    try:
        return await offload.plan([(encode_event(e), False) for e in events], version, 0.5)
    finally:
        offload.close()


def test_a_dead_worker_hands_planning_back_to_the_router(local) -> None:
    from services.router.config import GAZETTEER, ROUTING, load_routing_table
    from shared.events import encode_event

    version = load_routing_table(ROUTING, GAZETTEER).version
    raws = [(encode_event(_submitted(i, t, c)), False) for i, (t, c) in enumerate(ITEMS[:3])]

    async def run() -> tuple[list, list, int]:
        offload = OffloadedClassifier("model", workers=1, local=local, tables=(ROUTING, GAZETTEER))
        try:
            await offload.warm_up()
            for pid in list(offload._executor()._processes):  # killed on purpose
                os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.5)
            after_crash = await offload.plan(raws, version, 0.5)  # nothing: the router plans
            again = await offload.plan(raws, version, 0.5)  # a new worker plans again
            return after_crash, again, offload.fallbacks
        finally:
            offload.close()

    after_crash, again, fallbacks = asyncio.run(run())
    assert fallbacks == 1 and after_crash == [None] * 3
    assert all(r is not None and r[2] is not None for r in again)
