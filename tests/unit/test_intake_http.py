"""Intake's HTTP layer without a database: error shapes, outages, header and text checks."""

from __future__ import annotations

import re
import time
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.intake import text
from services.intake.api.errors import install_error_handlers
from services.intake.app import create_app
from shared.auth.issuer import issue_token
from shared.auth.settings import AuthSettings
from shared.errors import BadInput, Conflict, NotFound, PetitionError, Unavailable
from shared.identity import Principal, Role
from shared.settings import Settings


async def _call(app: FastAPI, method: str, path: str, **kw: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kw)  # type: ignore[arg-type]  # passes the test's keyword arguments through


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


async def test_idempotency_key_with_a_control_character_is_422(tmp_path: Path) -> None:
    # HTTP clients refuse to send such a header; an ASGI caller can (the route checks before the database)
    app = create_app(Settings(hmac_key="k" * 64, run_dir=tmp_path))
    app.state.verifier.start()  # what the lifespan does (the ASGI transport runs none)
    auth = AuthSettings()
    token = issue_token(auth.key_folder(tmp_path), Principal("op-1", Role.OPERATOR), issuer=auth.jwt_issuer,
                        audience=auth.jwt_audience, ttl_seconds=60, max_ttl_seconds=auth.jwt_max_ttl_seconds,
                        now=int(time.time()))
    body = {"title": "标题", "content": "内容", "channel": "hotline"}
    r = await _call(app, "POST", "/v1/petitions", json=body,
                    headers={"Idempotency-Key": "key\x01", "Authorization": f"Bearer {token}"})
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


def test_the_date_range_pattern_matches_exactly_the_days_of_its_range() -> None:
    import random
    from datetime import date, timedelta

    from services.intake.api.openapi import date_range_pattern

    rng = random.Random(7)
    for _ in range(150):
        lo = date(2000, 1, 1) + timedelta(days=rng.randint(0, 9000))
        hi = lo + timedelta(days=rng.randint(-2, 3000))
        rx = re.compile("^" + date_range_pattern(lo, hi) + "$")
        probes = [lo - timedelta(days=1), lo, hi, hi + timedelta(days=1), date(2004, 2, 29), date(2100, 2, 28)]
        probes += [lo + timedelta(days=rng.randint(-400, 3400)) for _ in range(40)]
        for d in probes:
            assert bool(rx.match(d.isoformat())) == (lo <= d <= hi), (lo, hi, d)


def test_the_received_at_pattern_lists_only_instants_the_server_accepts_and_reaches_two_days_ago() -> None:
    import random
    from datetime import UTC, datetime, timedelta, timezone

    from services.intake.api.openapi import received_at_pattern
    from services.intake.handlers import Intake, check_received_at

    settings = Settings()
    ctx = Intake(reference=None, hmac_key=b"", received_at_earliest=settings.received_at_earliest,  # type: ignore[arg-type]  # the window check reads no reference data
                 received_at_max_future_seconds=settings.received_at_max_future_seconds)
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    rx = re.compile(received_at_pattern(settings, now))
    rng = random.Random(11)
    accepted_by_pattern = 0
    for _ in range(4000):
        day = datetime(1999, 12, 20, tzinfo=UTC) + timedelta(days=rng.randint(0, 9850))
        offset = timedelta(minutes=rng.choice([-1439, -480, 0, 480, 1439, rng.randint(-1439, 1439)]))
        zone = timezone(offset)
        local = day.replace(tzinfo=zone) + timedelta(seconds=rng.randint(0, 86399))
        written = local.isoformat()
        if rx.match(written):
            accepted_by_pattern += 1
            check_received_at(ctx, datetime.fromisoformat(written), now)  # raises if refused
    assert accepted_by_pattern > 1000
    two_days_ago = (now - timedelta(days=2)).astimezone(timezone(timedelta(hours=8))).replace(hour=9, minute=0)
    assert rx.match(two_days_ago.isoformat(timespec="seconds"))
    assert not rx.match((now + timedelta(days=1)).isoformat(timespec="seconds"))


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (BadInput("no unit X9-GOV exists", code="unknown_unit", field="department"), 422),
        (NotFound("no petition XF-1"), 404),
        (Conflict("cannot accept a petition in status 'resolved'", code="invalid_state"), 409),
        (Unavailable("intake is starting; retry"), 503),
    ],
)
async def test_each_family_of_the_error_tree_has_its_status_and_keeps_its_code(
    error: PetitionError, status: int
) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/refuse")
    async def refuse() -> None:
        raise error

    r = await _call(app, "GET", "/refuse")
    assert r.status_code == status
    body = r.json()
    if status == 503:
        assert body["error"] == "unavailable" and r.headers["retry-after"]
        return
    assert body == {"error": error.code, "message": error.message,
                    **({"errors": [{"field": error.field, "message": error.message, "type": error.code}]}
                       if error.field else {})}
