"""Background loops that cannot die quietly: each is restarted when it crashes or ends.

A service runs loops beside its main work (the outbox relay, intake's read model, the
escalation timers, the lag collector). Before, a loop that raised an error its own
``except`` did not name ended for good, and nothing said so: the relay stopped after a
database restart while ``/readyz`` answered ready. Here every loop runs under a
:class:`Supervisor`, which

* restarts a loop that raised anything (or returned) after a capped back-off, forever,
  logging the error and counting ``petition_background_task_restarts_total``;
* keeps, per loop, whether it runs and whether it says it is healthy (a loop object may
  offer ``healthy() -> bool``, e.g. the relay while it has been failing for a while), for
  ``/readyz`` (``checks`` names each loop) and ``petition_background_task_up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from shared import metrics, retry

log = logging.getLogger(__name__)

__all__ = ["Supervisor"]


class _LoopEnded(Exception):
    """A supervised loop returned: it is restarted like one that crashed."""


@dataclass(slots=True)
class _Loop:
    name: str
    factory: Callable[[], Awaitable[None]]
    healthy: Callable[[], bool] | None
    task: asyncio.Task[None] | None = None
    running: bool = False
    restarts: int = 0
    last_error: str | None = None
    started_at: float = field(default_factory=time.monotonic)


class Supervisor:
    """Runs named loops and restarts them; :meth:`checks` says which are up."""

    def __init__(self, service: str, *, min_backoff: float = 0.5, max_backoff: float = 10.0) -> None:
        self._service = service
        self._loops: dict[str, _Loop] = {}
        self._min, self._max = min_backoff, max_backoff

    def start(self, name: str, factory: Callable[[], Awaitable[None]],
              *, healthy: Callable[[], bool] | None = None) -> None:
        """Run ``factory()`` as loop `name` now, and again whenever it ends."""
        if name in self._loops:
            raise ValueError(f"loop {name!r} already supervised")
        loop = _Loop(name, factory, healthy)
        self._loops[name] = loop
        metrics.BACKGROUND_UP.labels(self._service, name).set_function(lambda: 1.0 if self._up(loop) else 0.0)
        loop.task = asyncio.get_running_loop().create_task(self._keep(loop), name=f"supervised:{name}")

    async def _keep(self, loop: _Loop) -> None:
        async def run_once() -> None:
            loop.running, loop.started_at = True, time.monotonic()
            try:
                await loop.factory()
            except asyncio.CancelledError:
                loop.running = False
                raise
            except Exception as exc:
                loop.last_error = repr(exc)
                raise
            finally:
                if loop.running:
                    loop.running = False
                    loop.restarts += 1
                    metrics.BACKGROUND_RESTARTS.labels(self._service, loop.name).inc()
            loop.last_error = "returned"
            raise _LoopEnded(f"background loop {loop.name} ended")

        # a loop must never end silently: whatever ends it, it is started again; a loop that
        # ran a good while before it failed is a new story (the back-off starts over)
        await retry.forever(run_once, what=f"{self._service}: background loop {loop.name}",
                            min_backoff=self._min, max_backoff=self._max, reset_after=60.0, logger=log)

    def _up(self, loop: _Loop) -> bool:
        if not loop.running:
            return False
        if loop.healthy is None:
            return True
        try:
            return bool(loop.healthy())
        except Exception:  # noqa: BLE001 - a health probe that fails says "not healthy"
            return False

    def checks(self) -> dict[str, bool]:
        """Loop name -> up (running and healthy), for ``/readyz``."""
        return {name: self._up(loop) for name, loop in self._loops.items()}

    def restarts(self, name: str) -> int:
        return self._loops[name].restarts

    async def stop(self) -> None:
        """Cancel every loop and wait for them to end."""
        tasks = [loop.task for loop in self._loops.values() if loop.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
