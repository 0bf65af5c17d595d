"""faust workers start once a broker listens; their table recovery seeks only to offsets
the consumer accepts (shared.worker)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from faust.tables.recovery import Recovery
from faust.types import TP

from shared.worker import _recovery_seek_guarded


class Consumer:
    def __init__(self) -> None:
        self.seeks: dict[TP, int] = {}

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        for offset in offsets.values():
            if not isinstance(offset, int) or offset < 0:  # what aiokafka refuses
                raise ValueError("Offset must be a positive integer")
        self.seeks.update(offsets)


def test_a_partition_without_a_usable_offset_is_read_from_its_start() -> None:
    _recovery_seek_guarded()
    _recovery_seek_guarded()  # applying it twice wraps once
    a, b, c, d = (TP("petition-watch-surges-changelog", n) for n in range(4))
    offsets: Counter[TP] = Counter({a: 41, b: -1, d: -2})
    offsets[c] = None  # type: ignore[assignment]  # what faust leaves for a partition added mid-recovery
    consumer = Consumer()
    recovery: Any = object.__new__(Recovery)
    asyncio.run(Recovery._seek_offsets(recovery, consumer, {a, b, c, d}, offsets, "active"))  # type: ignore[arg-type]  # a stand-in consumer that refuses what aiokafka refuses
    assert consumer.seeks == {a: 41, b: 0, c: 0, d: 0}
    assert offsets[c] == -1 and offsets[d] == -1


def test_without_the_guard_faust_hands_the_consumer_what_it_refuses() -> None:
    """The fault the guard exists for (found by the chaos test): if faust ever stops passing
    None through, this test says the guard can go."""
    _recovery_seek_guarded()
    unguarded = Recovery._seek_offsets.__wrapped__  # type: ignore[attr-defined]
    tp = TP("petition-watch-pending-changelog", 0)
    offsets: Counter[TP] = Counter()
    offsets[tp] = None  # type: ignore[assignment]
    recovery: Any = object.__new__(Recovery)
    try:
        asyncio.run(unguarded(recovery, Consumer(), {tp}, offsets, "active"))
    except ValueError:
        return
    raise AssertionError("faust now seeks a partition without an offset itself; the guard is no longer needed")


def test_a_worker_starts_once_a_broker_listens() -> None:
    import socket
    import threading

    from shared.worker import wait_for_a_broker

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listener = socket.socket()

    def listen() -> None:
        listener.bind(("127.0.0.1", port))
        listener.listen()

    opened = threading.Timer(0.6, listen)
    opened.start()
    try:
        waited = wait_for_a_broker([("127.0.0.1", 1), ("127.0.0.1", port)], poll=0.1)
    finally:
        opened.join()
        listener.close()
    assert waited >= 0.5
