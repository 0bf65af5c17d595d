"""Helper processes of a service: started with spawn, gone when the service is.

A service's event loop is one thread; CPU work that would stall it (classification, the
outbox relay) can run in a child process on the other core. Children are spawned, never
forked (the parent runs threads and an event loop), and leave on their own when the parent
dies, even by SIGKILL, so a killed service never leaves workers behind.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from multiprocessing.context import SpawnContext

SPAWN: SpawnContext = multiprocessing.get_context("spawn")


def exit_with_parent(parent: int, *, poll_seconds: float = 0.5) -> None:
    """In a child: a daemon thread that ends this process once `parent` is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
