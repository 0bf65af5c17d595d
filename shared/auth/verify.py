"""Verifying a bearer token into a :class:`~shared.identity.Principal`.

:class:`Verifier` takes a token of the embedded issuer (keys in the run folder's key ring,
:mod:`shared.auth.keys`) or of a city's OIDC provider (keys from its JWKS,
:mod:`shared.auth.oidc`), chosen by the token's ``iss``, and answers the principal or raises
:class:`~shared.errors.Unauthenticated` with one of :data:`shared.auth.claims.CODES`
(:class:`~shared.errors.Unavailable` when the provider's keys cannot be fetched). Only the
algorithms configured for an issuer are accepted, never the token's own say (RFC 8725 2.1).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.auth.claims import claim_at, principal_of, refused
from shared.auth.keys import ALGORITHM, RING, KeyRecord, ensure_keys, load_keyring
from shared.auth.oidc import JwksCache, fetch_jwks
from shared.auth.settings import AuthSettings
from shared.errors import Unauthenticated
from shared.identity import Principal

__all__ = [
    "MAX_TOKEN_BYTES", "RING_CHECK_SECONDS", "EmbeddedVerifier", "OidcVerifier", "TokenVerifier", "Verified",
    "Verifier", "build_verifier", "peek", "translate",
]

#: how stale the embedded verifier's view of the key ring may get (one stat when it is due)
RING_CHECK_SECONDS = 5.0
#: longer tokens are refused unread (ours are ~400 bytes; a provider's rarely over 2 KB)
MAX_TOKEN_BYTES = 8192
_EMBEDDED_CLAIMS = ["iss", "aud", "sub", "iat", "nbf", "exp", "jti"]
_OIDC_CLAIMS = ["iss", "aud", "exp"]
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_BASE64URL_OR_EMPTY = re.compile(r"[A-Za-z0-9_-]*")


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and the claims of a compact JWS, unverified: only to choose the issuer
    whose keys then verify it (PyJWT reads it again, strictly). ``malformed_token`` when it
    is not three base64url parts, the first two JSON objects."""
    parts = token.split(".")
    # an empty signature is readable (alg "none"): refused for its algorithm, by name
    readable = len(parts) == 3 and all(_BASE64URL.fullmatch(p) for p in parts[:2])
    if not readable or not _BASE64URL_OR_EMPTY.fullmatch(parts[2]):
        raise refused("malformed_token", "the token is not three base64url parts")
    try:
        header, claims = (json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in parts[:2])
    except (ValueError, RecursionError):
        raise refused("malformed_token", "the token cannot be read") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise refused("malformed_token", "the token's header and claims are not JSON objects")
    return header, claims


class TokenVerifier(Protocol):
    """What the HTTP layer needs: a token in, the principal out (or Unauthenticated)."""

    async def verify(self, token: str) -> Principal: ...


#: PyJWT's refusals and the platform's codes for them, most specific first (a bad signature
#: is a DecodeError too)
_REFUSALS: tuple[tuple[type[jwt.PyJWTError], str, str], ...] = (
    (jwt.ExpiredSignatureError, "token_expired", "the token has expired"),
    (jwt.ImmatureSignatureError, "token_not_yet_valid", "the token is not valid yet"),
    (jwt.InvalidAudienceError, "wrong_audience", "the token is for another audience"),
    (jwt.InvalidIssuerError, "wrong_issuer", "the token is of another issuer"),
    (jwt.InvalidSignatureError, "bad_signature", "the token's signature does not verify"),
    (jwt.InvalidAlgorithmError, "unsupported_algorithm", "the token is signed with an algorithm not accepted here"),
    (jwt.DecodeError, "malformed_token", "the token cannot be read"),
)


def translate(exc: jwt.PyJWTError) -> Unauthenticated:
    """PyJWT's refusal as the platform's stable code."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        code = {"aud": "wrong_audience", "iss": "wrong_issuer"}.get(exc.claim, "invalid_claims")
        return refused(code, f"the token has no {exc.claim!r} claim")
    for family, code, message in _REFUSALS:
        if isinstance(exc, family):
            return refused(code, message)
    return refused("invalid_claims", f"the token's claims are not valid: {exc}")


@dataclass(frozen=True, slots=True)
class Verified:
    """A token that verified: who it proves, until when (epoch seconds), by which key."""

    principal: Principal
    expires: int
    kid: str


@dataclass(frozen=True, slots=True)
class _Key:
    record: KeyRecord
    public: Ed25519PublicKey


class EmbeddedVerifier:
    """Tokens of the platform's own issuer, against the key ring in `folder`.

    The ring file is read again, if it changed on disk (one ``stat``), when a token names a
    kid not known yet (``petitionctl keys rotate`` ran), when the JWKS is asked for, and at
    most :data:`RING_CHECK_SECONDS` after it was last looked at (a retirement is seen then)."""

    def __init__(self, folder: Path, *, issuer: str, audience: str, leeway: float, max_ttl_seconds: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.folder, self.issuer, self.audience = folder, issuer, audience
        self.leeway, self.max_ttl_seconds, self._clock = leeway, max_ttl_seconds, clock
        self._keys: dict[str, _Key] = {}
        self._active = ""
        self._stamp: int | None = None
        self._checked_at = float("-inf")

    def start(self) -> None:
        """Create the key ring if there is none (first start), and read it."""
        ensure_keys(self.folder, int(self._clock()))
        self._reload()

    def _reload(self) -> bool:
        """Read the ring again if its file changed; whether it did."""
        self._checked_at = self._clock()
        try:
            stamp = os.stat(self.folder / RING).st_mtime_ns
        except FileNotFoundError:
            return False
        if stamp == self._stamp:
            return False
        ring = load_keyring(self.folder)
        if ring is None:
            return False
        self._keys = {k.kid: _Key(k, k.public_key()) for k in ring.keys}
        self._active, self._stamp = ring.active, stamp
        return True

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys that verify now, the active one first."""
        self._reload()
        now = self._clock()
        ordered = sorted(self._keys.values(), key=lambda k: (k.record.kid != self._active, -k.record.created_at))
        return {"keys": [k.record.public_jwk() for k in ordered if k.record.verifies_at(now)]}

    def _look_again(self) -> None:
        if self._clock() - self._checked_at >= RING_CHECK_SECONDS:
            self._reload()

    def trusts(self, kid: str) -> bool:
        """Whether `kid` still verifies (for a token verified before)."""
        self._look_again()
        key = self._keys.get(kid)
        return key is not None and key.record.verifies_at(self._clock())

    def verify(self, token: str, header: Mapping[str, Any]) -> Verified:
        if header.get("alg") != ALGORITHM:
            raise refused("unsupported_algorithm", f"the platform's tokens are signed with {ALGORITHM}")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise refused("unknown_key", "the token names no key")
        self._look_again()
        key = self._keys.get(kid)
        if key is None and self._reload():
            key = self._keys.get(kid)
        if key is None or not key.record.verifies_at(self._clock()):
            raise refused("unknown_key", "the token's key is not (or no longer) one of the issuer's")
        try:
            claims = jwt.decode(token, key.public, algorithms=[ALGORITHM], audience=self.audience,
                                issuer=self.issuer, leeway=self.leeway, options={"require": _EMBEDDED_CLAIMS})
        except jwt.PyJWTError as exc:
            raise translate(exc) from None
        # PyJWT has checked that both read as integers (a string of digits does too)
        issued_at, expires = int(claims["iat"]), int(claims["exp"])
        if expires - issued_at > self.max_ttl_seconds:
            raise refused("invalid_claims", "the token lives longer than the issuer's maximum")
        retired = key.record.retired_at
        if retired is not None and issued_at > retired + self.leeway:
            raise refused("unknown_key", "the token was signed after its key was retired")
        principal = principal_of(claims["sub"], claims.get("role"), claims.get("departments"), claims.get("area"))
        return Verified(principal, expires, kid)


class OidcVerifier:
    """Tokens of a city's OIDC provider; the claims carrying role, departments and area are settings."""

    def __init__(self, settings: AuthSettings, jwks: JwksCache) -> None:
        self.settings, self.jwks = settings, jwks
        self.issuer = settings.oidc_issuer

    async def verify(self, token: str, header: Mapping[str, Any]) -> Verified:
        s = self.settings
        alg = header.get("alg")
        if alg not in s.oidc_algorithms:
            raise refused("unsupported_algorithm", "the token is signed with an algorithm not accepted here")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise refused("unknown_key", "the token names no key")
        key = await self.jwks.key(kid)
        if key.algorithm_name != alg:
            raise refused("unsupported_algorithm", "the token's algorithm is not its key's")
        try:
            claims = jwt.decode(token, key, algorithms=[alg], audience=s.oidc_audience, issuer=self.issuer,
                                leeway=s.jwt_leeway_seconds, options={"require": _OIDC_CLAIMS})
        except jwt.PyJWTError as exc:
            raise translate(exc) from None
        principal = principal_of(claim_at(claims, s.oidc_subject_claim), claim_at(claims, s.oidc_role_claim),
                                 claim_at(claims, s.oidc_departments_claim), claim_at(claims, s.oidc_area_claim))
        return Verified(principal, int(claims["exp"]), kid)


class Verifier:
    """Every issuer the platform trusts, chosen by the token's ``iss``.

    A token that verified is remembered (by a digest, at most `remember` of them, least
    recently used out) until it expires, as long as its key is still trusted: a client
    sends the same token with every request, and checking its signature again would prove
    nothing new. No token is ever revoked before it expires in this design (no deny list),
    so remembering changes no answer; a key gone from the ring or the provider's JWKS (or
    a JWKS due for a refresh) sends the token through the whole verification again."""

    def __init__(self, *, embedded: EmbeddedVerifier | None, oidc: OidcVerifier | None,
                 client: httpx.AsyncClient | None = None, leeway: float = 5.0, remember: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.embedded, self.oidc, self._client = embedded, oidc, client
        self.leeway, self.remember, self._clock = leeway, remember, clock
        self._verified: OrderedDict[bytes, Verified] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        if not token or len(token) > MAX_TOKEN_BYTES:
            raise refused("malformed_token", "the token is empty or too long")
        digest = hashlib.blake2b(token.encode(), digest_size=16).digest()
        seen = self._verified.get(digest)
        if seen is not None:
            if self._clock() < seen.expires + self.leeway and self._still_trusted(seen):
                self._verified.move_to_end(digest)
                return seen.principal
            del self._verified[digest]
        verified = await self._verify(token)
        if self.remember > 0:
            self._verified[digest] = verified
            if len(self._verified) > self.remember:
                self._verified.popitem(last=False)
        return verified.principal

    async def _verify(self, token: str) -> Verified:
        header, claims = peek(token)
        issuer = claims.get("iss")
        if self.embedded is not None and issuer == self.embedded.issuer:
            return self.embedded.verify(token, header)
        if self.oidc is not None and issuer == self.oidc.issuer:
            return await self.oidc.verify(token, header)
        raise refused("wrong_issuer", "the token is not of an issuer trusted here")

    def _still_trusted(self, seen: Verified) -> bool:
        if self.embedded is not None and self.embedded.trusts(seen.kid):
            return True
        return self.oidc is not None and self.oidc.jwks.holds(seen.kid)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The embedded issuer's public keys (none when it is off)."""
        return self.embedded.jwks() if self.embedded is not None else {"keys": []}

    def start(self) -> None:
        if self.embedded is not None:
            self.embedded.start()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def build_verifier(settings: AuthSettings, run_dir: Path) -> Verifier:
    """The verifier the settings describe. Touches no file and no network until used."""
    embedded = EmbeddedVerifier(
        settings.key_folder(run_dir), issuer=settings.jwt_issuer, audience=settings.jwt_audience,
        leeway=settings.jwt_leeway_seconds, max_ttl_seconds=settings.jwt_max_ttl_seconds,
    ) if settings.jwt_embedded else None
    if not settings.oidc_issuer:
        return Verifier(embedded=embedded, oidc=None, leeway=settings.jwt_leeway_seconds)
    client = httpx.AsyncClient(timeout=settings.oidc_jwks_timeout_seconds, follow_redirects=False)
    url = settings.oidc_jwks_url
    cache = JwksCache(lambda: fetch_jwks(client, url), max_age=settings.oidc_jwks_max_age_seconds,
                      min_interval=settings.oidc_jwks_min_interval_seconds,
                      max_stale=settings.oidc_jwks_max_stale_seconds)
    return Verifier(embedded=embedded, oidc=OidcVerifier(settings, cache), client=client,
                    leeway=settings.jwt_leeway_seconds)
