"""Retrying forever: the back-off doubles up to its cap, restarts after a good run, and
cancellation is never retried."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from shared import retry


async def test_failures_are_retried_with_a_doubling_capped_back_off_until_success() -> None:
    waits: list[float] = []
    failures: list[tuple[str, int]] = []
    attempts = 0

    async def attempt() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 7:
            raise (ConnectionRefusedError if attempts % 2 else KeyError)("down")
        return "done"

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    result = await retry.forever(attempt, what="test", min_backoff=0.5, max_backoff=4.0, sleep=sleep,
                                 on_failure=lambda exc, n, wait: failures.append((type(exc).__name__, n)))
    assert result == "done" and attempts == 7
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert failures[0] == ("ConnectionRefusedError", 1) and failures[1] == ("KeyError", 2)


async def test_a_good_run_restarts_the_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    waits: list[float] = []
    runs = iter([0, 0, 0, 120, 0, 0])  # seconds each attempt "runs" before it fails

    async def attempt() -> None:
        ran = next(runs, None)
        if ran is None:
            return
        clock[0] += ran
        raise RuntimeError("crashed")

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    await retry.forever(attempt, what="loop", min_backoff=1.0, max_backoff=60.0, reset_after=60.0, sleep=sleep)
    assert waits == [1.0, 2.0, 4.0, 1.0, 2.0, 4.0]


async def test_cancellation_is_not_retried() -> None:
    attempts = 0

    async def attempt() -> Any:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(10)

    task = asyncio.ensure_future(retry.forever(attempt, what="test"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert attempts == 1
