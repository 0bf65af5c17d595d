"""Intake's HTTP layer without a database: error shapes, outages, header and text checks."""

from __future__ import annotations

import re

import asyncpg
import pytest
from fastapi import FastAPI
import httpx

from services.intake import text
from services.intake.app import create_app
from services.intake.errors import install_error_handlers
from shared.settings import Settings


async def _call(app: FastAPI, method: str, path: str, **kw: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kw)  # type: ignore[arg-type]


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/client-state")
    async def client_state() -> None:  # what a request sees while PostgreSQL shuts down
        raise asyncpg.InterfaceError("cannot perform operation: another operation is in progress")

    @app.get("/admin-shutdown")
    async def admin_shutdown() -> None:
        raise asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command")

    @app.get("/client-internal")
    async def client_internal() -> None:  # asyncpg's own state machine, mid-restart
        raise asyncpg.exceptions.InternalClientError("protocol is in an unknown state")

    @app.get("/wrapped")
    async def wrapped() -> None:
        try:
            raise ConnectionResetError("reset")
        except ConnectionResetError as exc:
            raise RuntimeError("while saving") from exc

    @app.get("/defect")
    async def defect() -> None:
        raise KeyError("oops")

    return app


@pytest.mark.parametrize("path", ["/client-state", "/admin-shutdown", "/client-internal", "/wrapped"])
async def test_an_outage_is_503_with_retry_after(path: str) -> None:
    r = await _call(_app(), "GET", path)
    assert r.status_code == 503 and r.headers["retry-after"]
    assert r.json()["error"] == "unavailable" and r.json()["message"]


async def test_a_defect_is_500_in_the_same_shape() -> None:
    r = await _call(_app(), "GET", "/defect")
    assert r.status_code == 500
    assert r.json() == {"error": "internal_error", "message": r.json()["message"]}


async def test_idempotency_key_with_a_control_character_is_422() -> None:
    # HTTP clients refuse to send such a header; an ASGI caller can (the route checks before the database)
    app = create_app(Settings(hmac_key="k" * 64))
    body = {"title": "标题", "content": "内容", "channel": "hotline"}
    r = await _call(app, "POST", "/v1/petitions", json=body, headers={"Idempotency-Key": "key\x01"})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["idempotency-key"]


def test_the_published_patterns_and_the_server_agree() -> None:
    samples = ["", " ", "a", " a ", "\t\n\r", "\u3000", "a\x00", "\x1c", "\x7f", "\ufdef", "\ufdd0x",
               "\ufffe", "\U0010fffd", "\u0085", "\x0b", "正常的文字", "A3区 U+0001"]
    for value in samples:
        for pattern, nonblank in ((text.TEXT_PATTERN, False), (text.NONBLANK_PATTERN, True)):
            published = re.search(pattern, value) is not None
            try:
                text.check_text(value, nonblank=nonblank)
                accepted = True
            except ValueError:
                accepted = False
            assert published == accepted, (value, pattern == text.NONBLANK_PATTERN)
    # refused though the published (ECMA-262) pattern cannot name them; see services.intake.text
    for value in ("a\ud800", "\U0001fffe", "x\U0010ffffx"):
        assert text.bad_character(value) is not None
