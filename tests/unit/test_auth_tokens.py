"""The embedded issuer and its verifier: the key ring on disk, each refusal, rotation, leeway."""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.auth.claims import CODES, parse_duration
from shared.auth.embedded import EmbeddedVerifier
from shared.auth.issuer import issue_token
from shared.auth.jws import Verified
from shared.auth.keys import ensure_keys, load_keyring, private_key, rotate
from shared.auth.settings import AuthSettings
from shared.auth.verify import Verifier, build_verifier
from shared.errors import Unauthenticated
from shared.identity import Principal, Role

ISS, AUD, MAX_TTL = "petition-platform", "petition-api", 7 * 24 * 3600
CLERK = Principal("clerk-7", Role.DEPARTMENT, frozenset({"A3-HOUSING", "A3-URBAN"}))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "secrets" / "jwt"


@pytest.fixture
def verifier(tmp_path: Path) -> Verifier:
    v = build_verifier(AuthSettings(jwt_leeway_seconds=5), tmp_path)
    v.start()
    return v


def _issue(folder: Path, principal: Principal = CLERK, ttl: int = 3600) -> str:
    return issue_token(folder, principal, issuer=ISS, audience=AUD, ttl_seconds=ttl, max_ttl_seconds=MAX_TTL,
                       now=int(time.time()))


def _sign(folder: Path, claims: dict[str, Any], *, kid: str | None = None, key: Ed25519PrivateKey | None = None) -> str:
    """A token with exactly these claims, signed by the ring's active key (or `key`)."""
    ring = ensure_keys(folder, int(time.time()))
    kid = kid or ring.active
    return jwt.encode(claims, key or private_key(folder, kid), algorithm="EdDSA", headers={"kid": kid})


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "sub": "op-1", "iat": now, "nbf": now, "exp": now + 600, "jti": "j1",
              "role": "operator", "departments": []}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _refusal(verifier: Verifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        asyncio.run(verifier.verify(token))
    assert caught.value.code in CODES
    return caught.value.code


def test_a_token_of_the_issuer_verifies_into_its_principal(verifier: Verifier, folder: Path) -> None:
    token = _issue(folder)
    assert asyncio.run(verifier.verify(token)) == CLERK
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "EdDSA" and header["kid"] == load_keyring(folder).active  # type: ignore[union-attr]  # created by the fixture
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims) == {"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "role", "departments"}
    assert claims["departments"] == ["A3-HOUSING", "A3-URBAN"] and claims["exp"] - claims["iat"] == 3600


def test_the_key_ring_is_private_and_created_once(tmp_path: Path, folder: Path) -> None:
    first = ensure_keys(folder, 1000)
    assert ensure_keys(folder, 2000) == first
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(folder.parent).st_mode) == 0o700
    files = list(folder.iterdir())
    assert {p.name for p in files} == {".lock", "keyring.json", f"{first.active}.pem"}
    assert all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in files)
    # the verifier's file holds public keys only
    assert "PRIVATE" not in (folder / "keyring.json").read_text()


# the claims are made when the test runs, not when it is collected: a long suite would see them expire
@pytest.mark.parametrize(("claims", "code"), [
    (lambda: _claims(exp=int(time.time()) - 60), "token_expired"),
    (lambda: _claims(nbf=int(time.time()) + 60), "token_not_yet_valid"),
    (lambda: _claims(iat=int(time.time()) + 60), "token_not_yet_valid"),
    (lambda: _claims(aud="another-api"), "wrong_audience"),
    (lambda: _claims(aud=None), "wrong_audience"),
    (lambda: _claims(iss="someone-else"), "wrong_issuer"),
    (lambda: _claims(jti=None), "invalid_claims"),
    (lambda: _claims(role="boss"), "invalid_claims"),
    (lambda: _claims(role="department"), "invalid_claims"),  # a department role without departments
    (lambda: _claims(role="supervisor"), "invalid_claims"),  # a supervisor without an area
    (lambda: _claims(role="supervisor", area="A3"), "invalid_claims"),  # an area is its 6-digit code
    (lambda: _claims(role="department", departments=["a3 housing"]), "invalid_claims"),
    (lambda: _claims(sub=""), "invalid_claims"),
    (lambda: _claims(exp=int(time.time()) + MAX_TTL + 60), "invalid_claims"),  # longer than any token issued
])
def test_each_bad_claim_has_its_code(verifier: Verifier, folder: Path, claims: Callable[[], dict[str, Any]],
                                     code: str) -> None:
    assert _refusal(verifier, _sign(folder, claims())) == code


def test_each_bad_token_has_its_code(verifier: Verifier, folder: Path) -> None:
    good = _sign(folder, _claims())
    head, body, signature = good.split(".")
    assert _refusal(verifier, "") == "malformed_token"
    assert _refusal(verifier, "not-a-token") == "malformed_token"
    assert _refusal(verifier, "a.b!.c") == "malformed_token"
    assert _refusal(verifier, f"{head}.{body}.{signature}" + "A" * 9000) == "malformed_token"
    # another key, but the ring's kid: the signature does not match
    assert _refusal(verifier, _sign(folder, _claims(), key=Ed25519PrivateKey.generate())) == "bad_signature"
    tampered = base64.urlsafe_b64encode(json.dumps(_claims(role="admin")).encode()).rstrip(b"=").decode()
    assert _refusal(verifier, f"{head}.{tampered}.{signature}") == "bad_signature"
    assert _refusal(verifier, _sign(folder, _claims(), kid="no-such-key", key=Ed25519PrivateKey.generate())) \
        == "unknown_key"
    unsigned = jwt.encode(_claims(), "", algorithm="none")
    assert _refusal(verifier, unsigned) == "unsupported_algorithm"
    shared_secret = jwt.encode(_claims(), "x" * 32, algorithm="HS256", headers={"kid": "k"})
    assert _refusal(verifier, shared_secret) == "unsupported_algorithm"


def test_leeway_tolerates_a_few_seconds_of_clock_skew(verifier: Verifier, folder: Path) -> None:
    now = int(time.time())
    assert asyncio.run(verifier.verify(_sign(folder, _claims(exp=now - 2))))  # 5 s of leeway
    assert asyncio.run(verifier.verify(_sign(folder, _claims(iat=now + 2, nbf=now + 2))))
    assert _refusal(verifier, _sign(folder, _claims(exp=now - 10))) == "token_expired"
    assert _refusal(verifier, _sign(folder, _claims(nbf=now + 10))) == "token_not_yet_valid"


def test_after_rotation_new_tokens_use_the_new_key_and_old_ones_stay_valid(verifier: Verifier, folder: Path) -> None:
    old = _issue(folder)
    old_kid = load_keyring(folder).active  # type: ignore[union-attr]  # created by the fixture
    now = int(time.time())
    ring = rotate(folder, now, max_ttl_seconds=MAX_TTL, leeway_seconds=5)
    assert ring.active != old_kid
    retired = ring.get(old_kid)
    assert retired is not None and retired.retired_at == now
    assert retired.verify_until == now + 5 + MAX_TTL + 5  # its last possible token's exp, with leeway both sides
    new = _issue(folder)
    assert jwt.get_unverified_header(new)["kid"] == ring.active
    # the running verifier learns the new key from the ring file, without a restart
    assert asyncio.run(verifier.verify(new)) == CLERK
    assert asyncio.run(verifier.verify(old)) == CLERK
    assert [k["kid"] for k in verifier.jwks()["keys"]] == [ring.active, old_kid]


def test_a_retired_key_signs_nothing_new_and_leaves_when_its_tokens_have_expired(tmp_path: Path, folder: Path) -> None:
    ensure_keys(folder, int(time.time()))
    old_kid = load_keyring(folder).active  # type: ignore[union-attr]  # just created
    retired_at = int(time.time()) - 100
    rotate(folder, retired_at, max_ttl_seconds=MAX_TTL, leeway_seconds=5)
    v = build_verifier(AuthSettings(), tmp_path)
    # a token of the retired key issued after it was retired: refused
    late = _sign(folder, _claims(), kid=old_kid)
    assert _refusal(v, late) == "unknown_key"
    early = _sign(folder, _claims(iat=retired_at - 10), kid=old_kid)
    assert asyncio.run(v.verify(early)).subject == "op-1"

    # rotations more than the bound later: the first key is gone from the ring, the JWKS,
    # the verifier and the disk
    later = retired_at + MAX_TTL + 11
    rotate(folder, later, max_ttl_seconds=MAX_TTL, leeway_seconds=5)
    ring = load_keyring(folder)
    assert ring is not None and ring.get(old_kid) is None and not (folder / f"{old_kid}.pem").exists()
    assert old_kid not in [k["kid"] for k in v.jwks()["keys"]]


def test_a_retired_key_past_its_bound_verifies_nothing_even_before_it_is_deleted(tmp_path: Path,
                                                                                  folder: Path) -> None:
    ensure_keys(folder, int(time.time()))
    old_kid = load_keyring(folder).active  # type: ignore[union-attr]  # just created
    rotate(folder, int(time.time()) - 100, max_ttl_seconds=30, leeway_seconds=0)
    v = build_verifier(AuthSettings(), tmp_path)
    token = _sign(folder, _claims(iat=int(time.time()) - 120, exp=int(time.time()) + 60), kid=old_kid)
    assert _refusal(v, token) == "unknown_key"
    assert old_kid not in [k["kid"] for k in v.jwks()["keys"]]


def test_an_issuer_we_do_not_trust_is_wrong_issuer_and_the_embedded_issuer_can_be_off(tmp_path: Path,
                                                                                       folder: Path) -> None:
    settings = AuthSettings(jwt_embedded=False, oidc_issuer="https://sso.example", oidc_jwks_url="http://127.0.0.1:9",
                            oidc_audience="petition")
    v = build_verifier(settings, tmp_path)
    assert v.jwks() == {"keys": []}
    assert _refusal(v, _issue(folder)) == "wrong_issuer"


def test_the_issuer_refuses_a_lifetime_over_the_maximum(folder: Path) -> None:
    with pytest.raises(ValueError, match="maximum"):
        issue_token(folder, CLERK, issuer=ISS, audience=AUD, ttl_seconds=MAX_TTL + 1, max_ttl_seconds=MAX_TTL,
                    now=int(time.time()))


@pytest.mark.parametrize(("text", "seconds"), [("8h", 28800), ("30m", 1800), ("7d", 604800), ("90s", 90), ("60", 60)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0h", "8x", "1.5h", "-1h", "h"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="MAX_TTL"):
        AuthSettings(jwt_default_ttl_seconds=100, jwt_max_ttl_seconds=10)
    with pytest.raises(ValueError, match="OIDC"):
        AuthSettings(jwt_embedded=False)
    with pytest.raises(ValueError, match="JWKS_URL"):
        AuthSettings(oidc_issuer="https://sso.example")


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_a_verified_token_is_remembered_until_it_expires(tmp_path: Path, folder: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    embedded = EmbeddedVerifier(folder, issuer=ISS, audience=AUD, leeway=0, max_ttl_seconds=MAX_TTL, clock=clock)
    embedded.start()
    v = Verifier(embedded=embedded, oidc=None, leeway=0, clock=clock)
    token = _sign(folder, _claims(exp=int(clock.now) + 60))
    checks: list[str] = []

    def counted(token: str, header: dict[str, Any]) -> Verified:
        checks.append(token)
        return EmbeddedVerifier.verify(embedded, token, header)

    monkeypatch.setattr(embedded, "verify", counted)
    assert asyncio.run(v.verify(token)).subject == "op-1"
    assert asyncio.run(v.verify(token)).subject == "op-1"
    assert len(checks) == 1  # the second time, remembered
    clock.now += 61
    # past its exp: verified again (and PyJWT's own clock still finds it valid here, so this
    # shows the remembered answer is not used past the token's exp)
    asyncio.run(v.verify(token))
    assert len(checks) == 2


def test_a_remembered_token_of_a_key_past_its_bound_is_refused(tmp_path: Path, folder: Path) -> None:
    clock = FakeClock()
    embedded = EmbeddedVerifier(folder, issuer=ISS, audience=AUD, leeway=0, max_ttl_seconds=30, clock=clock)
    embedded.start()
    v = Verifier(embedded=embedded, oidc=None, leeway=0, clock=clock)
    token = _sign(folder, _claims(exp=int(clock.now) + 30))
    assert asyncio.run(v.verify(token)).subject == "op-1"
    rotate(folder, int(clock.now), max_ttl_seconds=10, leeway_seconds=0)  # the key may verify 10 s more
    clock.now += 11  # and the verifier looks at the ring again within RING_CHECK_SECONDS
    assert _refusal(v, token) == "unknown_key"


def _ring(folder: str, start: Any) -> str:
    start.wait()
    return ensure_keys(Path(folder), 1000).active


def test_processes_starting_together_make_one_key_ring(tmp_path: Path) -> None:
    """Intake's workers start at once, each creating the ring if there is none."""
    folder = tmp_path / "run" / "secrets" / "jwt"  # nothing of it exists yet
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager:
        start = manager.Event()
        with context.Pool(6) as pool:
            waiting = [pool.apply_async(_ring, (str(folder), start)) for _ in range(6)]
            start.set()
            actives = {w.get(timeout=30) for w in waiting}
    ring = load_keyring(folder)
    assert ring is not None and actives == {ring.active}
    assert [p.name for p in folder.glob("*.pem")] == [f"{ring.active}.pem"]


def test_a_secrets_folder_made_by_another_worker_meanwhile_is_no_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The interleaving of two workers starting at once: one finds the secrets folder missing,
    the other makes it before the first does."""
    folder = tmp_path / "secrets" / "jwt"
    folder.parent.mkdir()
    monkeypatch.setattr(Path, "exists", lambda self: False)
    assert ensure_keys(folder, 1000).active
