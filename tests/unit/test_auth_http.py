"""The front door over HTTP: the `Caller` dependency, its 401s, the JWKS route, the spec."""

from __future__ import annotations

from pathlib import Path

import httpx
import jwt
import pytest
from fastapi import FastAPI

from services.intake.app import create_app
from shared.auth.keys import private_key
from shared.auth.verify import Verifier, build_verifier
from shared.errors import Unavailable
from shared.identity import Principal, Role
from shared.settings import Settings
from tests.unit.front_door import AUTH, small_app, token_for


@pytest.fixture
def verifier(tmp_path: Path) -> Verifier:
    v = build_verifier(AUTH, tmp_path)
    v.start()
    return v


async def call(app: FastAPI, path: str, *, token: str | None = None, authorization: str | None = None,
               client: tuple[str, int] = ("10.0.0.1", 5000)) -> httpx.Response:
    headers = {"Authorization": authorization or f"Bearer {token}"} if token or authorization else {}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        return await c.get(path, headers=headers)


async def test_a_route_taking_a_caller_gets_the_verified_principal(tmp_path: Path, verifier: Verifier) -> None:
    token = token_for(tmp_path, Principal("d-9", Role.DEPARTMENT, frozenset({"A3-HOUSING"})))
    r = await call(small_app(verifier), "/whoami", token=token)
    assert r.status_code == 200
    assert r.json() == {"subject": "d-9", "role": "department", "departments": ["A3-HOUSING"]}
    r = await call(small_app(verifier), "/whoami", authorization=f"bearer   {token}")  # the scheme is case-blind
    assert r.status_code == 200


async def test_no_token_is_401_with_a_bare_bearer_challenge(verifier: Verifier) -> None:
    for authorization in (None, "Basic dXNlcjpwYXNz"):
        r = await call(small_app(verifier), "/whoami", authorization=authorization)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json() == {"error": "missing_token", "message": r.json()["message"]}
    assert (await call(small_app(verifier), "/open")).status_code == 200


async def test_a_bad_token_is_401_invalid_token_with_its_code(tmp_path: Path, verifier: Verifier) -> None:
    folder = AUTH.key_folder(tmp_path)
    kid = jwt.get_unverified_header(token_for(tmp_path, Principal("x", Role.OPERATOR)))["kid"]
    expired = jwt.encode({"iss": AUTH.jwt_issuer, "aud": AUTH.jwt_audience, "sub": "x", "iat": 1, "nbf": 1,
                          "exp": 2, "jti": "j", "role": "operator"}, private_key(folder, kid), algorithm="EdDSA",
                         headers={"kid": kid})
    for token, code in (("garbage", "malformed_token"), (expired, "token_expired"), ("Bearer", "malformed_token")):
        r = await call(small_app(verifier), "/whoami", authorization=f"Bearer {token}")
        assert r.status_code == 401 and r.json()["error"] == code
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="invalid_token", error_description="')
        assert challenge.count('"') == 4  # the description is one quoted-string


async def test_the_jwks_route_publishes_the_issuers_public_keys(tmp_path: Path) -> None:
    app = create_app(Settings(hmac_key="k" * 64, run_dir=tmp_path))
    app.state.verifier.start()  # what the lifespan does at start-up
    r = await call(app, "/.well-known/jwks.json")
    assert r.status_code == 200 and "max-age" in r.headers["cache-control"]
    (key,) = r.json()["keys"]
    assert {key["kty"], key["crv"], key["alg"], key["use"]} == {"OKP", "Ed25519", "EdDSA", "sig"}
    assert set(key) == {"kty", "crv", "x", "kid", "alg", "use"}  # public parts only
    token = token_for(tmp_path, Principal("op-1", Role.OPERATOR))
    assert jwt.get_unverified_header(token)["kid"] == key["kid"]


def test_the_spec_declares_bearer_on_operations_that_take_a_caller(verifier: Verifier) -> None:
    spec = small_app(verifier).openapi()
    scheme = spec["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert spec["paths"]["/whoami"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/open"]["get"]


def test_the_published_spec_documents_401_403_and_429_in_the_error_shape(tmp_path: Path) -> None:
    spec = create_app(Settings(hmac_key="k" * 64, run_dir=tmp_path)).openapi()
    operation = spec["paths"]["/v1/petitions"]["post"]
    for status in ("401", "403", "429"):
        schema = operation["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorBody"}
    assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
    assert "Retry-After" in operation["responses"]["429"]["headers"]
    assert "/.well-known/jwks.json" in spec["paths"]


class ProviderDown:
    async def verify(self, token: str) -> Principal:
        raise Unavailable("the identity provider's JWKS cannot be fetched", code="identity_provider_unavailable")


async def test_an_identity_provider_outage_is_503_not_401() -> None:
    r = await call(small_app(ProviderDown()), "/whoami", authorization="Bearer a.b.c")
    assert r.status_code == 503 and r.headers["retry-after"]
    assert r.json()["error"] == "identity_provider_unavailable"
