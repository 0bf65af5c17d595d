"""Reading a compact JWS before and after PyJWT: the cheap look that picks the issuer, the
result of a verification, and PyJWT's refusals as the platform's codes
(:data:`shared.auth.claims.CODES`)."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

import jwt

from shared.auth.claims import refused
from shared.errors import Unauthenticated
from shared.identity import Principal

__all__ = ["MAX_TOKEN_BYTES", "Verified", "peek", "translate"]

#: longer tokens are refused unread (ours are ~470 bytes; a provider's rarely over 2 KB)
MAX_TOKEN_BYTES = 8192
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


@dataclass(frozen=True, slots=True)
class Verified:
    """A token that verified: who it proves, until when (epoch seconds), by which issuer and key."""

    principal: Principal
    expires: int
    issuer: str
    kid: str


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
