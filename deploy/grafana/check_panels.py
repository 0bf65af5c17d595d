"""Run every panel query of deploy/grafana/dashboards/*.json against a Prometheus.

A panel whose query returns no series shows "No data" in Grafana; after ``make demo`` none
may. Grafana's own variables are replaced the way Grafana would for a default view
(``$__rate_interval`` → ``1m``, a dashboard variable → its "All" value ``.*``).

    .venv/bin/python -m deploy.grafana.check_panels --prometheus http://127.0.0.1:9090 --wait 60

Exit status 1 when some query still returns nothing after ``--wait`` seconds.
Used by ``make demo`` and by tests/integration/test_dashboards.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

DASHBOARDS = Path(__file__).resolve().parent / "dashboards"
SUBSTITUTIONS = (("$__rate_interval", "1m"), ("$__interval", "15s"), ("$department", ".*"))


def panel_queries(folder: Path = DASHBOARDS) -> Iterator[tuple[str, str, str]]:
    """(dashboard title, panel title, PromQL ready to run) for every target of every panel."""
    for path in sorted(folder.glob("*.json")):
        board = json.loads(path.read_text("utf-8"))
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in SUBSTITUTIONS:
                    expr = expr.replace(variable, value)
                yield board["title"], panel["title"], expr


def query(prometheus: str, expr: str, timeout: float = 10.0) -> list[dict]:
    """Instant query; raises on a PromQL error (a broken panel is not an empty one)."""
    url = f"{prometheus.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as resp:
        body = json.load(resp)
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


def empty_panels(prometheus: str, folder: Path = DASHBOARDS) -> list[tuple[str, str, str]]:
    return [(b, p, e) for b, p, e in panel_queries(folder) if not query(prometheus, e)]


def wait_for_data(prometheus: str, wait: float, folder: Path = DASHBOARDS) -> list[tuple[str, str, str]]:
    """Poll until every panel query returns a series or `wait` seconds pass; the empty ones."""
    deadline = time.monotonic() + wait
    while True:
        empty = empty_panels(prometheus, folder)
        if not empty or time.monotonic() >= deadline:
            return empty
        time.sleep(2.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--prometheus", default="http://127.0.0.1:9090")
    ap.add_argument("--wait", type=float, default=0.0, help="seconds to keep polling for data")
    args = ap.parse_args(argv)
    total = sum(1 for _ in panel_queries())
    empty = wait_for_data(args.prometheus, args.wait)
    for board, panel, expr in empty:
        print(f"NO DATA  {board} / {panel}: {expr}")
    print(f"{total - len(empty)} of {total} panel queries return data")
    return 1 if empty else 0


if __name__ == "__main__":
    sys.exit(main())
