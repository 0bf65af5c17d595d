"""Floods: a token bucket per caller (verified subject, else address), 429 with Retry-After."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import jwt
import pytest
from fastapi import FastAPI

from services.intake.api.limits import BodyLimit
from services.intake.api.ratelimit import Buckets, RateLimit, caller_address
from shared.auth.verify import Verifier, build_verifier
from shared.identity import Principal, Role
from tests.unit.front_door import AUTH, small_app, token_for


class Counting:
    """The verifier, counting its calls."""

    def __init__(self, inner: Verifier) -> None:
        self.inner, self.calls = inner, 0

    async def verify(self, token: str) -> Principal:
        self.calls += 1
        return await self.inner.verify(token)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return self.inner.jwks()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def verifier(tmp_path: Path) -> Counting:
    v = build_verifier(AUTH, tmp_path)
    v.start()
    return Counting(v)


def limited(verifier: Counting, *, rate: float = 1.0, burst: int = 5, max_callers: int = 1000,
            clock: Clock | None = None) -> FastAPI:
    app = small_app(verifier)
    for route in ("/healthz", "/metrics"):
        app.add_api_route(route, lambda: {"ok": True})
    app.add_middleware(BodyLimit, limit=1024)
    buckets = Buckets(rate, burst, max_callers, clock=clock or time.monotonic)
    app.add_middleware(RateLimit, buckets=buckets, verifier=verifier)
    return app


async def get(app: FastAPI, path: str, *, token: str | None = None, address: str = "10.0.0.1") -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        return await c.get(path, headers={"Authorization": f"Bearer {token}"} if token else {})


async def test_a_flood_from_one_token_gets_429_while_another_caller_still_passes(tmp_path: Path,
                                                                                 verifier: Counting) -> None:
    app = limited(verifier)
    flood = token_for(tmp_path, Principal("flooder", Role.OPERATOR))
    other = token_for(tmp_path, Principal("colleague", Role.OPERATOR))
    answers = [await get(app, "/whoami", token=flood) for _ in range(8)]
    assert [r.status_code for r in answers] == [200] * 5 + [429] * 3
    refused = answers[-1]
    assert refused.json() == {"error": "rate_limited", "message": refused.json()["message"]}
    assert refused.headers["retry-after"] == "1"
    # same address, another token: its own bucket
    assert (await get(app, "/whoami", token=other)).status_code == 200
    # no token, another address
    assert (await get(app, "/open", address="10.0.0.2")).status_code == 200
    # the ops pages are never limited
    assert (await get(app, "/healthz", token=flood)).status_code == 200


async def test_a_forged_token_naming_someone_cannot_drain_their_bucket(tmp_path: Path, verifier: Counting) -> None:
    app = limited(verifier)
    victim = token_for(tmp_path, Principal("victim", Role.OPERATOR))
    head, _, signature = victim.split(".")
    forged_body = jwt.utils.base64url_encode(b'{"iss":"petition-platform","sub":"victim"}').decode()
    forged = f"{head}.{forged_body}.{signature}"
    codes = [(await get(app, "/whoami", token=forged, address="10.6.6.6")).status_code for _ in range(10)]
    assert codes == [401] * 5 + [429] * 5  # charged to the attacker's address
    assert verifier.calls == 5  # once the address is out of requests, unverified tokens are not even checked
    assert [(await get(app, "/whoami", token=victim)).status_code for _ in range(5)] == [200] * 5


async def test_a_token_is_verified_once_per_request(tmp_path: Path, verifier: Counting) -> None:
    app = limited(verifier, burst=50)
    token = token_for(tmp_path, Principal("op-1", Role.OPERATOR))
    assert (await get(app, "/whoami", token=token)).status_code == 200
    assert verifier.calls == 1  # by the limiter; the route reused its answer
    assert (await get(app, "/whoami", token=token)).status_code == 200
    assert verifier.calls == 2  # the limiter knew the token; the route verified it
    assert (await get(app, "/open", token=token)).status_code == 200
    assert verifier.calls == 2  # a route without a Caller: the limiter's memory sufficed


async def test_an_anonymous_flood_is_counted_by_address(verifier: Counting) -> None:
    clock = Clock()
    app = limited(verifier, rate=2, burst=3, clock=clock)
    assert [(await get(app, "/open")).status_code for _ in range(5)] == [200, 200, 200, 429, 429]
    assert (await get(app, "/open", address="10.0.0.9")).status_code == 200
    clock.now += 0.5  # one request's worth at 2/s
    assert [(await get(app, "/open")).status_code for _ in range(2)] == [200, 429]


async def test_a_refused_request_with_a_body_is_answered_before_the_app_reads_it(verifier: Counting) -> None:
    reached: list[bytes] = []
    app = limited(verifier, burst=1)

    @app.post("/echo")
    async def echo(body: dict[str, str]) -> dict[str, str]:
        reached.append(b"x")
        return body

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=("10.1.1.1", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        assert (await c.post("/echo", json={"a": "b"})).status_code == 200
        r = await c.post("/echo", json={"a": "b"})
    assert r.status_code == 429 and r.headers["connection"] == "close" and len(reached) == 1


def test_buckets_are_bounded_and_refill() -> None:
    clock = Clock()
    buckets = Buckets(10, 20, 100, clock=clock)
    for n in range(10_000):
        buckets.take(f"addr:{n}")
    assert len(buckets) == 100
    for _ in range(20):
        assert buckets.take("sub:a") == 0
    assert buckets.take("sub:a") == pytest.approx(0.1)
    assert buckets.wait("sub:a") == pytest.approx(0.1)
    clock.now += 0.1
    assert buckets.take("sub:a") == 0


def test_ipv6_callers_count_by_their_64() -> None:
    one = caller_address({"client": ("2001:db8:1:2::1", 1)})
    assert one == caller_address({"client": ("2001:db8:1:2:ffff::9", 1)}) == "2001:db8:1:2::/64"
    assert one != caller_address({"client": ("2001:db8:1:3::1", 1)})
    assert caller_address({"client": ("192.0.2.7", 1)}) == "192.0.2.7"
    assert caller_address({"client": None}) == "unknown"


def test_remembered_tokens_are_bounded(tmp_path: Path, verifier: Counting) -> None:
    limiter = RateLimit(FastAPI(), buckets=Buckets(100, 100, 10), verifier=verifier)
    tokens = [token_for(tmp_path, Principal(f"op-{n}", Role.OPERATOR)) for n in range(30)]

    async def run() -> None:
        for t in tokens:
            await limiter._caller({"type": "http", "headers": [(b"authorization", f"Bearer {t}".encode())],
                                   "client": ("10.0.0.1", 1)})

    asyncio.run(run())
    assert len(limiter._verified) == 10
