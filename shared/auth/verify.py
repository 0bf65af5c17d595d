"""Verifying a bearer token into a :class:`~shared.identity.Principal`.

:class:`Verifier` takes a token of the embedded issuer (keys in the run folder's key ring,
:mod:`shared.auth.keys`) or of a city's OIDC provider (keys from its JWKS,
:mod:`shared.auth.oidc`), chosen by the token's ``iss``, and answers the principal or raises
:class:`~shared.errors.Unauthenticated` with one of :data:`shared.auth.claims.CODES`
(:class:`~shared.errors.Unavailable` when the provider's keys cannot be fetched). Only the
algorithms configured for an issuer are accepted, never the token's own say (RFC 8725 2.1).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import httpx

from shared.auth.claims import refused
from shared.auth.embedded import EmbeddedVerifier
from shared.auth.jws import MAX_TOKEN_BYTES, Verified, peek
from shared.auth.oidc import JwksCache, OidcVerifier, fetch_jwks
from shared.auth.settings import AuthSettings
from shared.identity import Principal

__all__ = ["TokenVerifier", "Verifier", "build_verifier"]


class TokenVerifier(Protocol):
    """What the HTTP layer needs: a token in, the principal out (or Unauthenticated)."""

    async def verify(self, token: str) -> Principal: ...


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
        if self.embedded is not None and seen.issuer == self.embedded.issuer:
            return self.embedded.trusts(seen.kid)
        return self.oidc is not None and seen.issuer == self.oidc.issuer and self.oidc.jwks.holds(seen.kid)

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
