"""Fixtures every test folder may use: the session's running platform.

``stack`` is started on the first test that asks for it, once a session, on the ``infra``
fixture (the session's private Kafka and PostgreSQL, deploy/stack/pytest_plugin.py), and
shared by tests/integration and tests/browser.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deploy.stack.testinfra import Infra
from tests.service_stack import Stack, new_stack, running


@pytest.fixture(scope="session")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = new_stack(infra, tmp_path_factory.mktemp("run"))
    s.env["PETITION_TABLE_RELOAD_SECONDS"] = "0.5"
    with running(s):
        yield s
