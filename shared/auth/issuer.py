"""The embedded issuer: signs a token for a principal with the key ring's active key."""

from __future__ import annotations

from pathlib import Path

import jwt

from shared.auth.claims import issue_claims
from shared.auth.keys import ALGORITHM, ensure_keys, private_key
from shared.identity import Principal

__all__ = ["issue_token"]


def issue_token(folder: Path, principal: Principal, *, issuer: str, audience: str, ttl_seconds: int,
                max_ttl_seconds: int, now: int) -> str:
    """A signed token (compact JWS) for `principal`, valid `ttl_seconds` from `now`.

    The key ring is created on first use. The caller checks that the principal's scope
    names real units; this refuses only what would break the rotation bound."""
    if not 0 < ttl_seconds <= max_ttl_seconds:
        raise ValueError(f"the lifetime must be between 1 s and the maximum, {max_ttl_seconds} s")
    ring = ensure_keys(folder, now)
    claims = issue_claims(principal, issuer=issuer, audience=audience, now=now, ttl_seconds=ttl_seconds)
    return jwt.encode(claims, private_key(folder, ring.active), algorithm=ALGORITHM,
                      headers={"kid": ring.active, "typ": "JWT"})
