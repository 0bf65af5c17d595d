"""Refusals a client can read while it is still sending: a body over the limit gets its 413,
and a caller over its rate its 429, with the real clients (urllib, requests, httpx, and a
raw socket for ``Expect: 100-continue``) against a real uvicorn server of the test's own on
a free loopback port, serving intake's own app (its middleware as in production; no
database: a request that gets through is answered 503)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import requests
import uvicorn

from services.intake.app import create_app
from shared.settings import Settings

MB = 1024 * 1024


def _serve(settings: Settings) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1/petitions"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(Settings(hmac_key="k" * 64, run_dir=tmp_path_factory.mktemp("limits")))


def _chunks(size: int) -> Iterator[bytes]:
    sent = 0
    while sent < size:
        n = min(64 * 1024, size - sent)
        sent += n
        yield b"x" * n


def _body(size: int, chunked: bool) -> bytes | Iterator[bytes]:
    return _chunks(size) if chunked else b"x" * size


JSON = {"content-type": "application/json"}


def _urllib(url: str, size: int, chunked: bool) -> tuple[int, bytes]:
    # an iterable body is sent chunked; bytes with their Content-Length
    request = urllib.request.Request(url, data=_body(size, chunked), method="POST", headers=JSON)  # noqa: S310 - the test's own loopback URL
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - as above
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _requests(url: str, size: int, chunked: bool) -> tuple[int, bytes]:
    r = requests.post(url, data=_body(size, chunked), timeout=30, headers=JSON)
    return r.status_code, r.content


def _httpx(url: str, size: int, chunked: bool) -> tuple[int, bytes]:
    r = httpx.post(url, content=_body(size, chunked), timeout=30, headers=JSON)
    return r.status_code, r.content


CLIENTS: dict[str, Callable[[str, int, bool], tuple[int, bytes]]] = {
    "urllib": _urllib, "requests": _requests, "httpx": _httpx,
}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("size", [3 * MB, 10 * MB], ids=["3MB", "10MB"])
@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_an_oversized_body_gets_a_readable_413(server: str, client: str, size: int, chunked: bool) -> None:
    status, body = CLIENTS[client](server, size, chunked)
    assert status == 413
    assert json.loads(body)["error"] == "body_too_large"


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_a_body_under_the_limit_reaches_the_app(server: str, client: str) -> None:
    status, body = CLIENTS[client](server, 1000, False)
    assert status == 400 and json.loads(body)["error"] == "malformed_json"  # the app read it: not JSON


def _raw(url: str, head: str, body_after: float | None, size: int) -> bytes:
    """Send `head`; then, after `body_after` seconds, the whole body without reading (None:
    no body, wait for the answer); then read until the server closes."""
    port = urllib.parse.urlsplit(url).port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head.encode())
        if body_after is not None:
            time.sleep(body_after)
            s.sendall(b"x" * size)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        return answer


@pytest.mark.parametrize("body_after", [0.0, 0.2, None], ids=["at-once", "after-a-pause", "waits"])
def test_expect_100_continue_gets_its_413_whether_it_sends_the_body_or_not(server: str,
                                                                          body_after: float | None) -> None:
    size = 3 * MB
    head = (f"POST /v1/petitions HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\nExpect: 100-continue\r\n\r\n")
    started = time.monotonic()
    answer = _raw(server, head, body_after, size)
    assert answer.startswith(b"HTTP/1.1 413 ")  # no 100 Continue before it
    assert time.monotonic() - started < 5  # a client that sends nothing is let go after the idle drain
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "body_too_large"


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_a_flood_with_bodies_gets_readable_429s(tmp_path: Path, client: str) -> None:
    settings = Settings(hmac_key="k" * 64, run_dir=tmp_path, rate_limit_per_second=0.01, rate_limit_burst=1)
    serving = _serve(settings)
    url = next(serving)
    try:
        answers = [CLIENTS[client](url, size, chunked) for size in (100 * 1024, 3 * MB) for chunked in (False, True)]
    finally:
        next(serving, None)
    assert [status for status, _ in answers] == [400, 429, 429, 429]  # the first reaches the app
    assert all(json.loads(body)["error"] == "rate_limited" for _, body in answers[1:])
