"""Intake as several workers on one port (services/intake/workers.py): the sockets, the read
model's member ids, who collects the lag, the mail listener (no stack; the key ring made by
workers starting at once: tests/unit/test_auth_tokens.py)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any, cast

import pytest

from deploy.stack.process import free_ports
from services.intake import handlers
from services.intake.mail import MailIntake, MailSettings, start_listener
from services.intake.workers import api_sockets, bind, consumer_instance_id, runs_lag_collector
from shared.consumer import group_instance_id
from shared.settings import Settings


def _settings(**values: Any) -> Settings:
    return Settings(**values)


def _listen(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.listen(16)


def _answered_by(port: int, listeners: list[socket.socket]) -> int:
    """Connect to `port` and say which of `listeners` accepted the connection (its index)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        for sock in listeners:
            sock.settimeout(0.2)
            try:
                accepted, _ = sock.accept()
            except TimeoutError:
                continue
            accepted.close()
            return listeners.index(sock)
    raise AssertionError("no listener accepted the connection")


def test_intake_alone_binds_nothing_itself_and_keeps_its_member_id() -> None:
    settings = _settings(http_port=18080, instance_id="")
    assert api_sockets(settings) is None  # uvicorn binds the API's port, as it always did
    assert consumer_instance_id(settings) == group_instance_id("intake", 18080)
    assert runs_lag_collector(settings)


def test_workers_share_the_api_port_and_each_has_its_private_one() -> None:
    api, first, second = free_ports(3)
    one = api_sockets(_settings(http_port=api, intake_worker=1, intake_worker_port=first))
    two = api_sockets(_settings(http_port=api, intake_worker=2, intake_worker_port=second))
    assert one is not None and two is not None
    try:
        assert [s.getsockname()[1] for s in one + two] == [api, first, api, second]
        _listen(one + two)
        # the kernel spreads connections to the shared port over both workers' sockets
        answered = {_answered_by(api, [one[0], two[0]]) for _ in range(40)}
        assert answered == {0, 1}
        assert _answered_by(second, [one[1], two[1]]) == 1  # a private port is its worker's alone
        one[0].close()  # worker 1 dies: the port is still served
        assert {_answered_by(api, [two[0]]) for _ in range(5)} == {0}
    finally:
        for sock in one + two:
            sock.close()


def test_a_worker_cannot_take_a_port_that_is_not_shared() -> None:
    api, private = free_ports(2)
    alone = bind("127.0.0.1", api, reuse_port=False)  # an intake running alone on the API's port
    alone.listen(16)
    try:
        with pytest.raises(OSError):
            api_sockets(_settings(http_port=api, intake_worker=1, intake_worker_port=private))
    finally:
        alone.close()
    api, private = free_ports(2)
    first = api_sockets(_settings(http_port=api, intake_worker=1, intake_worker_port=private))
    assert first is not None
    _listen(first)
    try:  # a second worker 1 (one left running): its private port is taken
        with pytest.raises(OSError):
            api_sockets(_settings(http_port=api, intake_worker=1, intake_worker_port=private))
    finally:
        for sock in first:
            sock.close()


def test_each_worker_joins_the_read_model_group_under_its_own_id() -> None:
    ids = {consumer_instance_id(_settings(http_port=8080, intake_worker=n, intake_worker_port=8083 + 100 * (n - 1)))
           for n in (1, 2, 3)}
    assert len(ids) == 3 and group_instance_id("intake", 8080) not in ids
    # one PETITION_INSTANCE_ID given to every worker of a host still makes ids of their own
    configured = {consumer_instance_id(_settings(instance_id="intake-host-a", intake_worker=n)) for n in (1, 2)}
    assert configured == {"intake-host-a-worker-1", "intake-host-a-worker-2"}
    assert consumer_instance_id(_settings(instance_id="intake-host-a")) == "intake-host-a"


def test_only_worker_one_collects_the_consumer_lag() -> None:
    assert [runs_lag_collector(_settings(intake_worker=n)) for n in (1, 2, 3)] == [True, False, False]


def test_every_worker_listens_for_mail_on_the_one_port(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    mail = MailIntake(lambda: cast(Any, None), cast(handlers.Intake, None),
                      MailSettings("12345@petition.example.gov.cn", "letter", 1 << 20, "", tmp_path / "outbox"))

    async def two_listeners() -> list[int]:
        servers = [await start_listener(mail, "127.0.0.1", port, reuse_port=True) for _ in range(2)]
        try:
            return [s.sockets[0].getsockname()[1] for s in servers]
        finally:
            for s in servers:
                s.close()

    assert asyncio.run(two_listeners()) == [port, port]
