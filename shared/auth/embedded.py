"""Tokens of the platform's own issuer, verified against the key ring (:mod:`shared.auth.keys`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.auth.claims import principal_of, refused
from shared.auth.jws import Verified, translate
from shared.auth.keys import ALGORITHM, RING, KeyRecord, Keyring, ensure_keys, load_keyring

__all__ = ["RING_CHECK_SECONDS", "EmbeddedVerifier"]

#: how stale the verifier's view of the key ring may get (one stat when it is due)
RING_CHECK_SECONDS = 5.0
_CLAIMS = ["iss", "aud", "sub", "iat", "nbf", "exp", "jti"]


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
        self._ring: Keyring | None = None
        self._keys: dict[str, _Key] = {}
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
        self._ring, self._stamp = ring, stamp
        return True

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys that verify now, the active one first."""
        self._reload()
        return self._ring.jwks(self._clock()) if self._ring is not None else {"keys": []}

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
                                issuer=self.issuer, leeway=self.leeway, options={"require": _CLAIMS})
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
        return Verified(principal, expires, self.issuer, kid)
