"""The watch service's policies, read from ``data/watch.yaml`` (or ``PETITION_WATCH_POLICY_PATH``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from services.watch.domain.incidents import ClusterPolicy
from services.watch.domain.surges import SurgePolicy

__all__ = ["POLICY_FILE", "load_policies"]

POLICY_FILE = Path(__file__).resolve().parent / "data" / "watch.yaml"


def load_policies(path: Path | None = None) -> tuple[dict[str, SurgePolicy], ClusterPolicy]:
    """The surge tests by window name (``hour``, ``day``) and the clustering policy."""
    data: dict[str, Any] = yaml.safe_load((path or POLICY_FILE).read_bytes()) or {}
    surges = {name: SurgePolicy(**dict(spec)) for name, spec in data["surges"].items()}
    return surges, ClusterPolicy(**data.get("clusters", {}))
