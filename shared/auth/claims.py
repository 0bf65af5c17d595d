"""What a token says, both ways: the claims the embedded issuer signs, and the principal a
verified token's claims make. Pure: the standard library, :mod:`shared.identity`,
:mod:`shared.errors` and the department-code rule.

A token of the embedded issuer carries ``iss``, ``aud``, ``sub`` (a staff id), ``iat``,
``nbf``, ``exp``, ``jti``, ``role`` (a :class:`~shared.identity.Role`), ``departments`` (a
list of unit codes, empty unless the role is ``department``) and ``area`` (a 6-digit
gazetteer code, a supervisor's only). Every refusal is :class:`~shared.errors.Unauthenticated`
with one of the stable codes below.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from shared.codes import is_department_code
from shared.errors import Unauthenticated
from shared.identity import ROLES, Principal, Role

__all__ = [
    "CODES",
    "MAX_SUBJECT_LENGTH",
    "claim_at",
    "issue_claims",
    "parse_duration",
    "principal_of",
    "refused",
]

#: every code a refused credential gets (HTTP 401); stable, clients and runbooks use them
CODES = (
    "missing_token",  # no Authorization: Bearer header
    "malformed_token",  # not three base64url parts of JSON, or too long
    "unsupported_algorithm",  # an alg the issuer does not sign with (none, HS256 …)
    "unknown_key",  # no kid, or a kid no key of the issuer has (any more)
    "bad_signature",  # the signature does not match
    "token_expired",  # exp has passed (beyond the leeway)
    "token_not_yet_valid",  # nbf or iat in the future (beyond the leeway)
    "wrong_audience",  # aud missing or not ours
    "wrong_issuer",  # iss missing or no issuer we trust
    "invalid_claims",  # the claims make no valid principal (unknown role, no departments …)
)

MAX_SUBJECT_LENGTH = 200
_AREA = re.compile(r"^[0-9]{6}$")
_DURATION = re.compile(r"^\s*([0-9]{1,7})\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def refused(code: str, message: str) -> Unauthenticated:
    """The error for a refused credential; `code` must be one of :data:`CODES`."""
    if code not in CODES:
        raise ValueError(f"not a credential refusal code: {code}")
    return Unauthenticated(message, code=code)


def parse_duration(text: str) -> int:
    """Seconds of a duration like ``8h``, ``30m``, ``7d``, ``90s`` or ``3600``; ValueError otherwise."""
    m = _DURATION.fullmatch(text)
    if m is None or int(m.group(1)) == 0:
        raise ValueError(f"not a duration: {text!r} (say 30m, 8h, 7d)")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def issue_claims(principal: Principal, *, issuer: str, audience: str, now: int, ttl_seconds: int) -> dict[str, Any]:
    """The claims of a new token for `principal`, valid from `now` (epoch seconds) for `ttl_seconds`."""
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": principal.subject,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
        "role": principal.role.value,
        "departments": sorted(principal.departments),
    }
    if principal.area is not None:
        claims["area"] = principal.area
    return claims


def principal_of(subject: object, role: object, departments: object, area: object) -> Principal:
    """The principal of verified claims, or ``invalid_claims``.

    `departments` may be absent (None), one code or a list of codes; `role` a role's name or a
    list holding exactly one known role (providers often send a list of roles)."""
    if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_SUBJECT_LENGTH:
        raise refused("invalid_claims", "the token's subject is missing or not a staff id")
    known = _role(role)
    codes = _departments(departments)
    if area is not None and (not isinstance(area, str) or _AREA.fullmatch(area) is None):
        raise refused("invalid_claims", "the token's area is not a 6-digit area code")
    try:
        return Principal(subject=subject, role=known, departments=codes, area=area)
    except ValueError as exc:
        raise refused("invalid_claims", f"the token makes no valid principal: {exc}") from None


def _role(value: object) -> Role:
    names: Iterable[object] = value if isinstance(value, list) else [value]
    roles = {Role(n) for n in names if isinstance(n, str) and n in ROLES}
    if len(roles) != 1:
        what = "no known role" if not roles else "more than one role"
        raise refused("invalid_claims", f"the token names {what} (roles: {', '.join(ROLES)})")
    return roles.pop()


def _departments(value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or len(items) > 1000 or \
            not all(isinstance(c, str) and is_department_code(c) for c in items):
        raise refused("invalid_claims", "the token's departments are not a list of unit codes")
    return frozenset(items)


def claim_at(claims: Mapping[str, Any], path: str) -> object:
    """The value at a dotted `path` (``realm_access.roles``), None when any step is missing."""
    node: object = claims
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node
