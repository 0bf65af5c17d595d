"""A city's OIDC provider: tokens verified against its JWKS, served here by a test server of
the suite's own (an HTTP server on a free loopback port), through key rollover and outages."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.auth.settings import AuthSettings
from shared.auth.verify import Verifier, build_verifier
from shared.errors import Unauthenticated, Unavailable
from shared.identity import Principal, Role

ISSUER, AUDIENCE = "https://sso.city.example/realms/gov", "petition-platform"


class Provider:
    """What the test server serves: a JWKS the test changes, and how it misbehaves."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.requests = 0
        self.status = 200
        self.delay = 0.0

    def add(self, kid: str, alg: str = "ES256") -> Any:
        private: Any = ec.generate_private_key(ec.SECP256R1()) if alg == "ES256" else \
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
        to_jwk = ECAlgorithm.to_jwk if alg == "ES256" else RSAAlgorithm.to_jwk
        self.keys[kid] = (private, {**to_jwk(private.public_key(), as_dict=True), "kid": kid, "alg": alg, "use": "sig"})
        return private

    def document(self) -> bytes:
        return json.dumps({"keys": [jwk for _, jwk in self.keys.values()]}).encode()

    def token(self, kid: str, **claims: Any) -> str:
        private, jwk = self.keys[kid]
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "zhang.wei", "iat": now, "exp": now + 300,
                "realm_access": {"roles": ["offline_access", "department"]}, "depts": ["A3-HOUSING"]}
        body.update(claims)
        return jwt.encode(body, private, algorithm=jwk["alg"], headers={"kid": kid})


@pytest.fixture
def provider() -> Iterator[tuple[Provider, str]]:
    state = Provider()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            time.sleep(state.delay)
            body = state.document() if state.status == 200 else b"{}"
            self.send_response(state.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/realms/gov/protocol/openid-connect/certs"
    finally:
        server.shutdown()
        server.server_close()


def _verifier(tmp_path: Path, url: str, **overrides: Any) -> Verifier:
    settings: dict[str, Any] = {
        "oidc_issuer": ISSUER, "oidc_jwks_url": url, "oidc_audience": AUDIENCE,
        "oidc_role_claim": "realm_access.roles", "oidc_departments_claim": "depts",
        "oidc_jwks_max_age_seconds": 300, "oidc_jwks_min_interval_seconds": 0.2, "oidc_jwks_timeout_seconds": 1.0,
    }
    settings.update(overrides)
    return build_verifier(AuthSettings(**settings), tmp_path)


async def _code(verifier: Verifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(token)
    return caught.value.code


CLERK = Principal("zhang.wei", Role.DEPARTMENT, frozenset({"A3-HOUSING"}))


async def test_key_rollover_without_a_restart(tmp_path: Path, provider: tuple[Provider, str]) -> None:
    state, url = provider
    state.add("2026-11")
    verifier = _verifier(tmp_path, url, oidc_jwks_max_age_seconds=0.5)
    old = state.token("2026-11")
    try:
        assert await verifier.verify(old) == CLERK
        assert state.requests == 1
        assert await verifier.verify(old) == CLERK
        assert state.requests == 1  # cached

        # the provider rolls a new key over: its tokens verify at once (the unknown kid is fetched)
        await asyncio.sleep(0.25)  # past the minimum interval between fetches
        state.add("2026-12", alg="RS256")
        new = state.token("2026-12")
        assert await verifier.verify(new) == CLERK
        assert state.requests == 2
        assert await verifier.verify(old) == CLERK

        # the old key disappears: once the cached set is older than its max age, its tokens are refused
        del state.keys["2026-11"]
        await asyncio.sleep(0.6)
        assert await _code(verifier, old) == "unknown_key"
        assert await verifier.verify(new) == CLERK
    finally:
        await verifier.aclose()


async def test_unknown_kids_are_fetched_once_per_interval_and_by_one_request(tmp_path: Path,
                                                                            provider: tuple[Provider, str]) -> None:
    state, url = provider
    state.add("k1")
    verifier = _verifier(tmp_path, url, oidc_jwks_min_interval_seconds=60)
    try:
        assert await verifier.verify(state.token("k1")) == CLERK
        for n in range(20):  # an attacker naming ever new kids
            forged = jwt.encode({"iss": ISSUER}, state.keys["k1"][0], algorithm="ES256", headers={"kid": f"x{n}"})
            assert await _code(verifier, forged) == "unknown_key"
        assert state.requests == 1
    finally:
        await verifier.aclose()

    # twenty requests with a new provider key at once: one fetch, all verified
    state.requests = 0
    state.delay = 0.2
    verifier = _verifier(tmp_path, url)
    try:
        state.add("k2")
        results = await asyncio.gather(*(verifier.verify(state.token("k2")) for _ in range(20)))
        assert results == [CLERK] * 20 and state.requests == 1
    finally:
        await verifier.aclose()


@pytest.mark.parametrize("failure", ["status", "slow", "closed"])
async def test_a_provider_that_cannot_answer_is_an_outage_not_a_401(tmp_path: Path, provider: tuple[Provider, str],
                                                                    failure: str) -> None:
    state, url = provider
    state.add("k1")
    token = state.token("k1")
    if failure == "status":
        state.status = 500
    elif failure == "slow":
        state.delay = 2.0
    else:
        url = "http://127.0.0.1:9/certs"  # the discard port: nothing listens
    verifier = _verifier(tmp_path, url, oidc_jwks_timeout_seconds=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(Unavailable) as caught:
            await verifier.verify(token)
        assert caught.value.code == "identity_provider_unavailable"
        assert time.monotonic() - started < 1.5  # bounded by the timeout
    finally:
        await verifier.aclose()


async def test_a_known_key_outlives_a_failed_refresh_but_an_unknown_one_is_an_outage(
        tmp_path: Path, provider: tuple[Provider, str]) -> None:
    state, url = provider
    state.add("k1")
    verifier = _verifier(tmp_path, url, oidc_jwks_max_age_seconds=0.1, oidc_jwks_min_interval_seconds=0.05,
                         oidc_jwks_max_stale_seconds=60)
    try:
        assert await verifier.verify(state.token("k1")) == CLERK
        state.status = 503
        await asyncio.sleep(0.15)
        assert await verifier.verify(state.token("k1")) == CLERK  # refresh failed: the set in hand stands
        state.add("k2")
        await asyncio.sleep(0.1)
        with pytest.raises(Unavailable):
            await verifier.verify(state.token("k2"))
    finally:
        await verifier.aclose()


async def test_claims_are_read_where_the_settings_say(tmp_path: Path, provider: tuple[Provider, str]) -> None:
    state, url = provider
    state.add("k1")
    verifier = _verifier(tmp_path, url, oidc_area_claim="org.area")
    try:
        supervisor = state.token("k1", realm_access={"roles": ["supervisor"]}, depts=None, org={"area": "430103"})
        assert await verifier.verify(supervisor) == Principal("zhang.wei", Role.SUPERVISOR, area="430103")
        assert await _code(verifier, state.token("k1", realm_access={"roles": ["operator", "admin"]})) \
            == "invalid_claims"
        assert await _code(verifier, state.token("k1", realm_access={"roles": ["department"]}, depts=[])) \
            == "invalid_claims"
        assert await _code(verifier, state.token("k1", aud="another-client")) == "wrong_audience"
        assert await _code(verifier, state.token("k1", exp=int(time.time()) - 60)) == "token_expired"
        hs = jwt.encode({"iss": ISSUER, "aud": AUDIENCE}, "s" * 32, algorithm="HS256", headers={"kid": "k1"})
        assert await _code(verifier, hs) == "unsupported_algorithm"
    finally:
        await verifier.aclose()


async def test_both_issuers_side_by_side(tmp_path: Path, provider: tuple[Provider, str]) -> None:
    from shared.auth.issuer import issue_token

    state, url = provider
    state.add("k1")
    verifier = _verifier(tmp_path, url)
    verifier.start()
    settings = AuthSettings()
    ours = issue_token(settings.key_folder(tmp_path), Principal("op-1", Role.OPERATOR), issuer=settings.jwt_issuer,
                       audience=settings.jwt_audience, ttl_seconds=60, max_ttl_seconds=600, now=int(time.time()))
    try:
        assert (await verifier.verify(ours)).subject == "op-1"
        assert await verifier.verify(state.token("k1")) == CLERK
        assert await _code(verifier, state.token("k1", iss="https://elsewhere.example")) == "wrong_issuer"
    finally:
        await verifier.aclose()
