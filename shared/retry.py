"""Retrying forever with capped exponential back-off: the one policy of every loop that must
outlive an outage (consumers, agents, relays, the read model, timers, supervised loops).

Built on tenacity. What must hold:

* an attempt that raises any ``Exception`` is tried again after a back-off that starts at
  `min_backoff` and doubles up to `max_backoff`; nothing is ever given up on (skipping work
  would lose it), so the caller reports itself unhealthy meanwhile (`on_failure`);
* cancellation (``CancelledError``, a ``BaseException``) is never retried: a service that
  stops, stops;
* an outage (:func:`shared.errors.is_transient`) is logged as a warning, anything else as an
  error with its traceback (a defect must be seen);
* with `reset_after`, an attempt that ran that long before it failed was a good run: the
  back-off starts again from `min_backoff` (a loop that crashes once a day is not throttled
  by yesterday's crashes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from shared.outages import is_transient

__all__ = ["forever"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: what a caller hears of each failed attempt: the error, the attempt's number (from 1) and
#: the seconds until the next one
OnFailure = Callable[[BaseException, int, float], None]


async def forever(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str,
    min_backoff: float = 0.5,
    max_backoff: float = 10.0,
    on_failure: OnFailure | None = None,
    logger: logging.Logger = log,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    reset_after: float | None = None,
) -> T:
    """Await ``attempt()`` until it returns, and return what it returned.

    `what` names the work in log lines ("router: batch"); `sleep` is there for tests."""
    started = time.monotonic()
    good_runs = 0  # attempts before the latest good run: the back-off counts from there

    async def timed() -> T:
        nonlocal started
        started = time.monotonic()
        return await attempt()

    def wait(state: RetryCallState) -> float:
        nonlocal good_runs
        if reset_after is not None and time.monotonic() - started >= reset_after:
            good_runs = state.attempt_number - 1
        failures = state.attempt_number - good_runs  # since the last good run, this one included
        return float(min(max_backoff, min_backoff * 2 ** min(failures - 1, 64)))

    def before_sleep(state: RetryCallState) -> None:
        outcome, action = state.outcome, state.next_action
        exc = outcome.exception() if outcome is not None else None
        wait = action.sleep if action is not None else 0.0
        if exc is None:  # cannot happen: only a raised exception is retried
            return
        if on_failure is not None:
            try:
                on_failure(exc, state.attempt_number, wait)
            except Exception:  # a reporting hook must not stop the retries
                logger.exception("%s: on_failure hook failed", what)
        if is_transient(exc):
            logger.warning("%s: %r; retrying in %.1fs (attempt %d)", what, exc, wait, state.attempt_number)
        else:
            logger.error("%s: failed; retrying in %.1fs (attempt %d)", what, wait, state.attempt_number,
                         exc_info=exc)

    retrying = AsyncRetrying(
        wait=wait,
        retry=retry_if_exception_type(Exception),
        before_sleep=before_sleep,
        reraise=True,
        sleep=sleep,
    )
    return await retrying(timed)

