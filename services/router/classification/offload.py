"""The router's classifier in worker processes, beside the event loop.

Classification is pure CPU (tokenising, hashing, a sparse product) and holds the GIL, so in
the router's own thread it stops consuming, writing and publishing while it runs. Here the
same classifier (``load_classifier``: the same artefact ``petitionctl classify`` uses) runs
in ``workers`` processes; the event loop awaits the result and does other work meanwhile (the
previous batch's transaction, the outbox relay).

Only texts go to a worker and only ``(category, confidence)`` pairs come back (and, when
asked, the packed repeat signature of the text, the other pure CPU step of routing). For new
petitions the router sends the raw event instead (:meth:`OffloadedClassifier.plan`): the
worker decodes it, classifies, plans the routing with its own copy of the routing table of
the version the router names, and encodes the two events (``services.router.planning``).
A worker that dies breaks the pool: the batch is classified in the calling process instead
and a new pool is started, so a crash costs time, never a petition.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from services.router.config import load_classifier, load_routing_table
from services.router.domain.keywords import Prediction
from services.router.domain.repeats import pack, packed_signatures, signature
from services.router.domain.routing import RoutingTable
from services.router.planning import WorkerPlan, plan_for_worker
from shared.children import SPAWN, exit_with_parent
from shared.events import PetitionSubmitted, utcnow
from shared.runtime import tune_gc

log = logging.getLogger(__name__)

_worker_classifier: Any = None
_worker_tables: WorkerTables | None = None


class WorkerTables:
    """The worker's copy of the routing table: re-read when the router names a version it
    does not have (the router reloaded); None when the files on disk are another version
    (the router then plans those petitions itself)."""

    def __init__(self, routing_path: Path, gazetteer_path: Path) -> None:
        self._paths = (routing_path, gazetteer_path)
        self._table: RoutingTable | None = None
        self._stamp: tuple[int, ...] | None = None

    def get(self, version: str) -> RoutingTable | None:
        if self._table is None or self._table.version != version:
            try:
                stamp = tuple(p.stat().st_mtime_ns for p in self._paths)
                if stamp != self._stamp:  # read the files again only when they changed
                    self._stamp = stamp
                    self._table = load_routing_table(*self._paths)
            except Exception:  # a broken file: the router keeps its own table
                log.warning("worker: routing table files unreadable or invalid", exc_info=True)
                return None
        return self._table if self._table is not None and self._table.version == version else None


def _init_worker(kind: str, parent: int, tables: tuple[Path, Path] | None = None,
                 model_dir: Path | None = None) -> None:
    global _worker_classifier, _worker_tables
    exit_with_parent(parent)
    _worker_classifier = load_classifier(kind, model_dir)
    _worker_tables = WorkerTables(*tables) if tables is not None else None
    if _worker_tables is not None:
        _worker_tables.get("")  # read the table files now (a version no table has: None)
    tune_gc()


def _plan_in_worker(
    items: Sequence[tuple[bytes, bool]], version: str, threshold: float
) -> list[tuple[str | None, float, bytes | None, WorkerPlan | None] | None]:
    """Decode, classify and plan new petitions; None for an item that does not decode."""
    events: list[PetitionSubmitted | None] = []
    for raw, _ in items:
        try:
            events.append(PetitionSubmitted.model_validate_json(raw))
        except ValueError:
            events.append(None)
    known = [e for e in events if e is not None]
    predictions = iter(_worker_classifier.predict([(e.title, e.content) for e in known], with_scores=False))
    keyed = [e for e, (_, flag) in zip(events, items, strict=True) if e is not None and flag]
    signatures = iter(packed_signatures([(e.title, e.content) for e in keyed]))
    table = _worker_tables.get(version) if _worker_tables is not None else None
    now = utcnow()
    out: list[tuple[str | None, float, bytes | None, WorkerPlan | None] | None] = []
    for event, (_, with_signature) in zip(events, items, strict=True):
        if event is None:
            out.append(None)
            continue
        p = next(predictions)
        prediction = Prediction(p.category, float(p.confidence))
        packed = next(signatures) if with_signature else None
        plan = (plan_for_worker(event, prediction, table, threshold, now, getattr(_worker_classifier, "version", None))
                if table is not None else None)
        out.append((prediction.category, prediction.confidence, packed, plan))
    return out


def _predict_in_worker(
    items: Sequence[tuple[str, str, bool]],
) -> list[tuple[str | None, float, bytes | None]]:
    predictions = _worker_classifier.predict([(title, content) for title, content, _ in items], with_scores=False)
    signatures = iter(packed_signatures([(title, content) for title, content, flag in items if flag]))
    return [
        (p.category, float(p.confidence), next(signatures) if with_signature else None)
        for p, (_, _, with_signature) in zip(predictions, items, strict=True)
    ]


def _split(items: Sequence[tuple[str, str]], parts: int) -> list[Sequence[tuple[str, str]]]:
    size = -(-len(items) // parts)
    return [items[i : i + size] for i in range(0, len(items), size)]


class OffloadedClassifier:
    """``await predict(items)``: the classifier's predictions, computed in worker processes."""

    def __init__(
        self, kind: str, *, workers: int = 1, local: Any = None, tables: tuple[Path, Path] | None = None,
        model_dir: Path | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._kind = kind
        self._tables = tables  # routing table and gazetteer files, for plan()
        self._model_dir = model_dir  # where a promoted model is served (load_classifier)
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
                initargs=(self._kind, os.getpid(), self._tables, self._model_dir),
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
        results = await self._run(_predict_in_worker, items)
        if results is None:
            local = self._local if self._local is not None else load_classifier(self._kind, self._model_dir)
            self._local = local
            predictions = local.predict([(t, c) for t, c, _ in items])
            return [
                (Prediction(p.category, float(p.confidence)), pack(signature(t, c)) if flag else None)
                for p, (t, c, flag) in zip(predictions, items, strict=True)
            ]
        return [(Prediction(c, conf), packed) for part in results for c, conf, packed in part]

    async def _run(self, fn: Any, items: Sequence[Any], *args: Any) -> list[Any] | None:
        """`fn(part, *args)` on the pool for each worker's share of `items`; None when a
        worker died (the pool is then restarted on the next call)."""
        loop = asyncio.get_running_loop()
        try:
            pool = self._executor()
            parts = _split(list(items), min(self._workers, len(items)))
            return await asyncio.gather(*(loop.run_in_executor(pool, fn, p, *args) for p in parts))
        except BrokenProcessPool as exc:
            self.fallbacks += 1
            log.warning("classifier worker died (%s); this batch is worked out in-process, restarting the pool", exc)
            self.close(wait=False)
            return None

    async def plan(
        self, items: Sequence[tuple[bytes, bool]], version: str, threshold: float
    ) -> list[tuple[Prediction, bytes | None, WorkerPlan | None] | None]:
        """For each raw ``petition.submitted`` event (and whether to compute its repeat
        signature): its prediction, signature and, when the worker has the routing table of
        `version`, its plan. None for an item the worker could not use (a dead worker: all of
        them); the caller then works it out itself."""
        if not items:
            return []
        results = await self._run(_plan_in_worker, items, version, threshold)
        if results is None:
            return [None] * len(items)
        return [
            None if r is None else (Prediction(r[0], r[1]), r[2], r[3])
            for part in results for r in part
        ]

    def reload(self, local: Any) -> None:
        """A new model was promoted: `local` is it in this process; the workers start again
        (the calls in flight finish on the old ones) and load it on their first call."""
        self._local = local
        self.close(wait=False)

    def close(self, *, wait: bool = True) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)
