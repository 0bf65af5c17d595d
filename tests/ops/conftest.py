"""Fixtures for the operations tests: promtool from Debian's prometheus package."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def promtool() -> str:
    """The promtool binary of Debian's prometheus package, which `make prepare` installs.

    Found, never installed: a fixture does not change the machine.
    """
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found (it ships with Debian's prometheus package): run `make prepare`",
                    pytrace=False)
    return found
