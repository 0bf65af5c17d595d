"""The project's pytest plugin: the test session's private Kafka broker and PostgreSQL.

Registered explicitly (``-p deploy.stack.pytest_plugin`` in pyproject.toml's pytest
``addopts``), not discovered: every test run loads it, and a run without the editable install
fails at once instead of a test finding no ``infra``. It only defines fixtures, so loading it
starts nothing; the broker and the database start on the first test that asks for ``infra``
(once a session: the broker takes a few seconds) and stop when the session ends.

What must hold: the fixture changes nothing on the machine beyond its own temporary folders
(no apt, nothing under /etc, no daemon stopped, no Maven); what is missing makes it fail with
a message naming ``make prepare``, which ``make test`` runs first.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.stack.testinfra import Infra, start_test_infra


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    """Kafka and PostgreSQL of this test session, on free ports under pytest's temporary folder."""
    running = start_test_infra(tmp_path_factory.mktemp("infra"))
    try:
        yield running
    finally:
        running.stop()
