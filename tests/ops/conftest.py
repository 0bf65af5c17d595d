"""Fixtures for the operations tests: promtool from Debian's prometheus package."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "deploy") not in sys.path:
    sys.path.insert(0, str(REPO / "deploy"))
import localstack  # noqa: E402


@pytest.fixture(scope="session")
def promtool() -> str:
    """The promtool binary, installing Debian's prometheus package (which ships it) if missing."""
    found = shutil.which("promtool")
    if found is None:
        binary = localstack.ensure_prometheus_installed()
        sibling = Path(binary).with_name("promtool")
        found = shutil.which("promtool") or (str(sibling) if sibling.exists() else None)
    assert found, "promtool not found after installing the prometheus package"
    return found
