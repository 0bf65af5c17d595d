"""A city's own OIDC provider: its tokens (:class:`OidcVerifier`, the claims carrying role,
departments and area named by settings) and its JWKS, fetched over HTTP, cached, refreshed
on rollover (:class:`JwksCache`).

What must hold:

* a fetch is bounded (``timeout``, and a body of at most :data:`MAX_JWKS_BYTES`);
* the set is fetched again when it is older than ``max_age`` (so a key the provider removed
  stops verifying within that), and when a token names a kid the set does not have (the
  provider rolled a new key over) — but at most once per ``min_interval``, however many
  tokens name unknown kids, and by one request at a time (the others wait for its result);
* a provider that cannot be reached is an outage (:class:`~shared.errors.Unavailable`,
  503), never a 401: with no set at all, when a token names a kid the set lacks, or when
  the set is older than ``max_stale``. Until then a set that could not be refreshed is kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
import jwt

from shared.auth.claims import claim_at, principal_of, refused
from shared.auth.jws import Verified, translate
from shared.auth.settings import AuthSettings
from shared.errors import Unavailable

__all__ = ["MAX_JWKS_BYTES", "JwksCache", "OidcVerifier", "fetch_jwks"]

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 1024 * 1024
_CLAIMS = ["iss", "aud", "exp"]

Fetch = Callable[[], Awaitable[dict[str, Any]]]


async def fetch_jwks(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    """GET the JWKS document; OSError-free: any failure is :class:`Unavailable`."""
    try:
        async with client.stream("GET", url, headers={"accept": "application/json"}) as response:
            if response.status_code != 200:
                raise Unavailable(f"the identity provider's JWKS answered {response.status_code}",
                                  code="identity_provider_unavailable")
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise Unavailable("the identity provider's JWKS is too large",
                                      code="identity_provider_unavailable")
        document = json.loads(body)
    except (httpx.HTTPError, ValueError) as exc:
        raise Unavailable(f"the identity provider's JWKS cannot be fetched: {exc!r}",
                          code="identity_provider_unavailable") from exc
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise Unavailable("the identity provider's JWKS is not a key set", code="identity_provider_unavailable")
    return document


def usable_keys(document: dict[str, Any]) -> dict[str, jwt.PyJWK]:
    """The signing keys of a JWKS by kid; keys without a kid, for encryption, or of a type
    this platform cannot verify are left out."""
    keys: dict[str, jwt.PyJWK] = {}
    for data in document["keys"]:
        if not isinstance(data, dict) or not isinstance(data.get("kid"), str) or data.get("use", "sig") != "sig":
            continue
        try:
            keys[data["kid"]] = jwt.PyJWK(data)
        except jwt.PyJWTError as exc:
            log.warning("JWKS key %s skipped: %s", data.get("kid"), exc)
    return keys


class JwksCache:
    """The provider's keys by kid, with the refresh rules of the module."""

    def __init__(self, fetch: Fetch, *, max_age: float, min_interval: float, max_stale: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch, self._clock = fetch, clock
        self.max_age, self.min_interval, self.max_stale = max_age, min_interval, max_stale
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._fetched_at = float("-inf")  # last success
        self._attempted_at = float("-inf")  # last try, successful or not
        self._failure: str | None = None  # why the last fetch failed, None after a success
        self._lock = asyncio.Lock()
        #: fetches completed (successful or not); a request that waited for another's fetch
        #: sees it changed and takes that fetch's result
        self.fetches = 0

    def holds(self, kid: str) -> bool:
        """Whether `kid` is in a set not yet due for a refresh (no fetch, no waiting)."""
        return self._keys is not None and kid in self._keys and self._clock() - self._fetched_at <= self.max_age

    async def key(self, kid: str) -> jwt.PyJWK:
        """The key `kid`; ``unknown_key`` when the provider does not have it, Unavailable
        when the provider cannot say."""
        now = self._clock()
        if self._keys is None or now - self._fetched_at > self.max_age:
            await self._refresh(required=self._keys is None or now - self._fetched_at > self.max_stale)
        keys = self._keys or {}
        if kid not in keys:
            await self._refresh(required=True)
            keys = self._keys or {}
        found = keys.get(kid)
        if found is None:
            raise refused("unknown_key", "the token's key is not one of the identity provider's keys")
        return found

    async def _refresh(self, *, required: bool) -> None:
        """Fetch again unless a fetch was tried within `min_interval` (or by another request
        while this one waited). `required`: the answer cannot be trusted without a set that
        is fresh enough, so the last fetch having failed is an outage; else the set is kept."""
        seen = self.fetches
        async with self._lock:
            if self.fetches == seen and self._clock() - self._attempted_at >= self.min_interval:
                self._attempted_at = self._clock()
                try:
                    keys = usable_keys(await self._fetch())
                except Unavailable as exc:
                    log.warning("identity provider JWKS not refreshed: %s", exc.message)
                    self._failure = exc.message
                else:
                    self._keys, self._fetched_at, self._failure = keys, self._clock(), None
                finally:
                    self.fetches += 1
        if self._failure is not None and (required or self._keys is None):
            raise Unavailable(self._failure, code="identity_provider_unavailable")


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
                                leeway=s.jwt_leeway_seconds, options={"require": _CLAIMS})
        except jwt.PyJWTError as exc:
            raise translate(exc) from None
        principal = principal_of(claim_at(claims, s.oidc_subject_claim), claim_at(claims, s.oidc_role_claim),
                                 claim_at(claims, s.oidc_departments_claim), claim_at(claims, s.oidc_area_claim))
        return Verified(principal, int(claims["exp"]), self.issuer, kid)
