"""The routing table in force, re-read when its files change (the router's table reloading)."""

from __future__ import annotations

import logging
from pathlib import Path

from services.router import metrics
from services.router.config import load_routing_table
from services.router.domain.routing import RoutingTable

log = logging.getLogger(__name__)


class TableSource:
    """The routing table in force, re-read when its files change; a broken file is rejected."""

    def __init__(self, routing_path: Path, gazetteer_path: Path) -> None:
        self._paths = self.paths = (routing_path, gazetteer_path)
        self._stamp = self._mtimes()
        self.table: RoutingTable = load_routing_table(*self._paths)
        metrics.ROUTING_TABLE_INFO.labels(self.table.version).set(1)

    def _mtimes(self) -> tuple[int, ...]:
        return tuple(p.stat().st_mtime_ns for p in self._paths)

    def maybe_reload(self) -> bool:
        """Reload if a file changed; True when a new table came into force."""
        try:
            stamp = self._mtimes()
        except OSError as exc:
            log.error("routing table files unreadable (%s); keeping table %s", exc, self.table.version)
            metrics.ROUTING_TABLE_RELOADS.labels("rejected").inc()
            return False
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            table = load_routing_table(*self._paths)
        except Exception as exc:  # noqa: BLE001 - any defect in the files rejects them
            log.error("routing table rejected (%s: %s); keeping table %s", type(exc).__name__, exc, self.table.version)
            metrics.ROUTING_TABLE_RELOADS.labels("rejected").inc()
            return False
        if table.version == self.table.version:
            return False
        metrics.ROUTING_TABLE_INFO.labels(self.table.version).set(0)
        self.table = table
        metrics.ROUTING_TABLE_INFO.labels(table.version).set(1)
        metrics.ROUTING_TABLE_RELOADS.labels("loaded").inc()
        log.info("routing table %s in force", table.version)
        return True
