"""Refusing floods: a token bucket per caller, before the body is read or the database asked.

**Who a caller is.** The subject of its bearer token *once that token has verified*, else its
address. A subject read from an unverified token would let anyone drain someone else's
bucket with a forged token naming them, so the limiter verifies the token itself (the
route's :func:`~services.intake.api.auth.current_principal` then reuses the answer: one
verification per request) and remembers which tokens verified (a digest of each, bounded),
so that a flood with a valid token costs a dictionary look-up, not a signature check, per
request. A token that does not verify is charged to the address it came from; while that
address's bucket is empty, new unverified tokens from it are refused without a signature
check. IPv6 addresses count by their /64 (one host usually holds a whole /64).

**Bounded memory.** At most `max_callers` buckets and as many remembered tokens, each table
least-recently-used first out. A bucket that has been idle for ``burst / rate`` seconds is
full, so dropping it loses nothing; one dropped sooner (more callers than the table holds)
comes back full: the limit is lenient then, never wrong for anybody else.

**The answer** is ``429`` in the project's error shape with ``Retry-After`` (whole seconds
until a request would pass); a body the client is still sending is read and dropped after
it, as for a 413, so that the client can read the answer
(:func:`~services.intake.api.limits.answer_and_drain`: bounded in bytes, time and idleness).
The ops pages (``/healthz``, ``/readyz``, ``/metrics``) are never limited.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from services.intake import metrics
from services.intake.api.auth import VERIFIED, bearer_token
from services.intake.api.limits import DRAIN_BYTES, DRAIN_SECONDS, EXEMPT, answer_and_drain, has_body
from shared.auth.verify import TokenVerifier
from shared.errors import Unauthenticated, Unavailable

__all__ = ["Buckets", "RateLimit", "caller_address"]


class Buckets:
    """Token buckets by caller key: `rate` requests a second, `burst` at once; LRU-bounded."""

    def __init__(self, rate: float, burst: int, max_callers: int, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1 or max_callers < 1:
            raise ValueError("a bucket needs a positive rate, a burst of at least 1 and room for one caller")
        self.rate, self.burst, self.max_callers, self._clock = rate, float(burst), max_callers, clock
        self._levels: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, when)

    def __len__(self) -> int:
        return len(self._levels)

    def _level(self, key: str, now: float) -> float:
        found = self._levels.get(key)
        if found is None:
            return self.burst
        tokens, when = found
        return min(self.burst, tokens + (now - when) * self.rate)

    def wait(self, key: str) -> float:
        """Seconds until `key` may make a request (0: now), without taking anything."""
        level = self._level(key, self._clock())
        return 0.0 if level >= 1.0 else (1.0 - level) / self.rate

    def take(self, key: str) -> float:
        """Take one request for `key`: 0 when it may go, else the seconds until it may."""
        now = self._clock()
        level = self._level(key, now)
        allowed = level >= 1.0
        self._levels[key] = (level - 1.0 if allowed else level, now)
        self._levels.move_to_end(key)
        if len(self._levels) > self.max_callers:
            self._levels.popitem(last=False)
        return 0.0 if allowed else (1.0 - level) / self.rate


def caller_address(scope: Scope) -> str:
    """The caller's address as the limiter counts it (an IPv6 address by its /64)."""
    client = scope.get("client")
    host = client[0] if client else "unknown"
    if ":" in host:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
            return str(ipaddress.IPv6Network((address, 64), strict=False))
    return host


class RateLimit:
    """ASGI middleware: 429 for a caller over its rate (see the module for who a caller is)."""

    def __init__(self, app: ASGIApp, *, buckets: Buckets, verifier: TokenVerifier) -> None:
        self.app, self.buckets, self.verifier = app, buckets, verifier
        self._verified: OrderedDict[bytes, str] = OrderedDict()  # token digest -> subject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT:
            await self.app(scope, receive, send)
            return
        key = await self._caller(scope)
        wait = self.buckets.take(key) if key is not None else self.buckets.wait(self._address(scope))
        if wait > 0:
            await self._refuse(scope, receive, send, wait)
            return
        await self.app(scope, receive, send)

    def _address(self, scope: Scope) -> str:
        return "addr:" + caller_address(scope)

    async def _caller(self, scope: Scope) -> str | None:
        """The key to charge; None: a new token from an address that is out of requests."""
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        token = bearer_token(authorization.decode("latin-1")) if authorization is not None else None
        if not token:
            return self._address(scope)
        digest = hashlib.blake2b(token.encode(), digest_size=16).digest()
        subject = self._verified.get(digest)
        if subject is not None:
            self._verified.move_to_end(digest)
            return "sub:" + subject
        if self.buckets.wait(self._address(scope)) > 0:
            return None
        try:
            principal = await self.verifier.verify(token)
        except (Unauthenticated, Unavailable) as exc:
            scope[VERIFIED] = (token, exc)
            return self._address(scope)
        scope[VERIFIED] = (token, principal)
        self._verified[digest] = principal.subject
        if len(self._verified) > self.buckets.max_callers:
            self._verified.popitem(last=False)
        return "sub:" + principal.subject

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, wait: float) -> None:
        metrics.REJECTED.labels("rate_limited").inc()
        seconds = max(1, math.ceil(wait))
        body = json.dumps({"error": "rate_limited",
                           "message": f"too many requests from this caller; retry in {seconds} s"}).encode()
        await answer_and_drain(receive, send, 429, body, more=has_body(scope), drain_bytes=DRAIN_BYTES,
                               drain_seconds=DRAIN_SECONDS, headers=[(b"retry-after", str(seconds).encode())])
