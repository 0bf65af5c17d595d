"""The router's classifier in worker processes, beside the event loop.

Classification is pure CPU (tokenising, hashing, a sparse product) and holds the GIL, so in
the router's own thread it stops consuming, writing and publishing while it runs. Here the
same classifier (``load_classifier``: the same artefact ``petitionctl classify`` uses) runs
in ``workers`` processes; the event loop awaits the result and does other work meanwhile (the
previous batch's transaction, the outbox relay).

Only texts go to a worker and only ``(category, confidence)`` pairs come back (and, when
asked, the packed repeat signature of the text, the other pure CPU step of routing). A worker that
dies breaks the pool: the batch is classified in the calling process instead and a new pool
is started, so a crash costs time, never a petition.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from services.router.config import load_classifier
from services.router.domain.keywords import Prediction
from services.router.domain.repeats import pack, signature
from shared.children import SPAWN, exit_with_parent

log = logging.getLogger(__name__)

_worker_classifier: Any = None


def _init_worker(kind: str, parent: int) -> None:
    global _worker_classifier
    exit_with_parent(parent)
    _worker_classifier = load_classifier(kind)


def _predict_in_worker(
    items: Sequence[tuple[str, str, bool]],
) -> list[tuple[str | None, float, bytes | None]]:
    predictions = _worker_classifier.predict([(title, content) for title, content, _ in items])
    return [
        (p.category, float(p.confidence), pack(signature(title, content)) if with_signature else None)
        for p, (title, content, with_signature) in zip(predictions, items, strict=True)
    ]


def _split(items: Sequence[tuple[str, str]], parts: int) -> list[Sequence[tuple[str, str]]]:
    size = -(-len(items) // parts)
    return [items[i : i + size] for i in range(0, len(items), size)]


class OffloadedClassifier:
    """``await predict(items)``: the classifier's predictions, computed in worker processes."""

    def __init__(self, kind: str, *, workers: int = 1, local: Any = None) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._kind = kind
        self._workers = workers
        self._local = local  # the same classifier in this process, for the fallback path
        self._pool: ProcessPoolExecutor | None = None
        self.fallbacks = 0

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: this process runs threads (faust's consumer) and an event loop
            self._pool = ProcessPoolExecutor(
                self._workers,
                mp_context=SPAWN,
                initializer=_init_worker,
                initargs=(self._kind, os.getpid()),
            )
        return self._pool

    async def warm_up(self) -> None:
        """Start the workers and load the model now, not on the first petition."""
        await self.predict([("", "")] * self._workers)

    async def predict(self, items: Sequence[tuple[str, str]]) -> list[Prediction]:
        return [p for p, _ in await self.predict_with_signatures([(t, c, False) for t, c in items])]

    async def predict_with_signatures(
        self, items: Sequence[tuple[str, str, bool]]
    ) -> list[tuple[Prediction, bytes | None]]:
        """Predictions, and for the items flagged True the packed repeat signature of the
        text (:func:`services.router.domain.repeats.signature`, also pure CPU)."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        try:
            pool = self._executor()
            parts = _split(list(items), min(self._workers, len(items)))
            results = await asyncio.gather(*(loop.run_in_executor(pool, _predict_in_worker, p) for p in parts))
        except BrokenProcessPool as exc:
            self.fallbacks += 1
            log.warning("classifier worker died (%s); classifying this batch in-process, restarting the pool", exc)
            self.close(wait=False)
            local = self._local if self._local is not None else load_classifier(self._kind)
            self._local = local
            predictions = local.predict([(t, c) for t, c, _ in items])
            return [
                (Prediction(p.category, float(p.confidence)), pack(signature(t, c)) if flag else None)
                for p, (t, c, flag) in zip(predictions, items, strict=True)
            ]
        return [(Prediction(c, conf), packed) for part in results for c, conf, packed in part]

    def close(self, *, wait: bool = True) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)
