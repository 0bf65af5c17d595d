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
def local():  # noqa: ANN201 - the classifier the router loads in-process
    return load_classifier("model")


def test_worker_predictions_and_signatures_match_in_process(local) -> None:  # noqa: ANN001
    async def run() -> list:
        offload = OffloadedClassifier("model", workers=2, local=local)
        try:
            await offload.warm_up()
            flags = [i % 2 == 0 for i in range(len(ITEMS))]
            return await offload.predict_with_signatures([(t, c, f) for (t, c), f in zip(ITEMS, flags)])
        finally:
            offload.close()

    got = asyncio.run(run())
    expected = local.predict(ITEMS)
    assert [p.category for p, _ in got] == [p.category for p in expected]
    assert [p.confidence for p, _ in got] == pytest.approx([p.confidence for p in expected], abs=1e-12)
    for i, ((title, content), (_, packed)) in enumerate(zip(ITEMS, got)):
        assert packed == (pack(signature(title, content)) if i % 2 == 0 else None)


def test_a_dead_worker_costs_time_not_predictions(local) -> None:  # noqa: ANN001
    async def run() -> tuple[list, list, int]:
        offload = OffloadedClassifier("model", workers=1, local=local)
        try:
            await offload.warm_up()
            pool = offload._executor()
            for pid in list(pool._processes):  # noqa: SLF001 - the test kills the worker on purpose
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
    from shared.settings import Settings
    from shared.worker import QuietWorker, make_app

    app = make_app("unit-quiet", Settings(run_dir=os.environ.get("TMPDIR", "/tmp") + "/unit-quiet"), web_port=1)
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
