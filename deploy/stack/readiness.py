"""Readiness by HTTP: what ``make up`` and the tests wait on before calling a part started.

An open port is not readiness: every service answers ``/readyz`` with 200 only once its
database, broker and background loops are up, and Prometheus answers ``/-/ready``. The
waits give up early on a process that died, so a crash at start-up is reported at once
with its log instead of after the whole timeout. Loopback only, never through a proxy.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Mapping

from deploy.stack.process import ServiceProcess


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when GET `url` answers 200 (no proxies: everything here is loopback)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_http_ready(url: str, timeout: float, proc: ServiceProcess | None = None) -> bool:
    """Poll GET `url` until 200; gives up early when `proc` died.

    "Died" is judged by the process handle when we started it ourselves (exact), not by the
    PID file and /proc, which can briefly disagree while a sibling instance is being stopped.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_ok(url):
            return True
        if proc is not None and proc.exited():
            return False
        time.sleep(0.5)
    return False


def wait_all_ready(waits: Mapping[str, tuple[str, float, ServiceProcess | None]],
                   interval: float = 0.1) -> dict[str, bool]:
    """Poll several ``/readyz`` URLs together until each answers 200, its own deadline
    passes or (for a process we started) it dies; name -> ready."""
    now = time.monotonic()
    pending = {name: (url, now + timeout, proc) for name, (url, timeout, proc) in waits.items()}
    ready: dict[str, bool] = {}
    while pending:
        for name, (url, deadline, proc) in list(pending.items()):
            if http_ok(url, timeout=1.0):
                ready[name] = True
            elif (proc is not None and proc.exited()) or time.monotonic() > deadline:
                ready[name] = False
            else:
                continue
            del pending[name]
        if pending:
            time.sleep(interval)
    return ready
