"""A deadline on every API request: a frozen database answers ``503`` in seconds, never hangs.

The pool's statement and connect timeouts bound each call to PostgreSQL; a request makes
several (acquire, a few statements, commit), so the request as a whole gets one budget
too. When the budget runs out before the answer has started, the work is cancelled
(asyncpg cancels the statement in flight and resets or drops the connection in the
background) and the client gets ``503`` with ``Retry-After`` in the project's error shape:
nothing was recorded, or — if the deadline struck while the ``COMMIT`` was on its way —
the petition may have been recorded after all, which is why a client retries with the same
``Idempotency-Key`` and gets the same petition back. Never a late ``202``.

The ops pages (``/healthz``, ``/readyz``, ``/metrics``) are exempt: readiness bounds its own
checks and says which part is not ready.
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.intake import metrics

log = logging.getLogger(__name__)

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestDeadline:
    """ASGI middleware: cancel a request still unanswered after `seconds`, answer 503."""

    def __init__(self, app: ASGIApp, seconds: float, *, retry_after: int = 2) -> None:
        self.app, self.seconds, self.retry_after = app, seconds, retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            async with asyncio.timeout(self.seconds):
                await self.app(scope, receive, tracked)
        except TimeoutError:
            if started:
                raise  # half an answer is out: only dropping the connection is honest
            log.warning("%s %s: no answer within %.1fs (database or broker too slow); 503",
                        scope.get("method"), scope.get("path"), self.seconds)
            metrics.REJECTED.labels("timeout").inc()
            body = json.dumps({
                "error": "unavailable",
                "message": f"storage did not answer within {self.seconds:g}s; retry"
                           " (with the same Idempotency-Key, a retried petition is not recorded twice)",
            }).encode()
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(self.retry_after).encode()),
            ]})
            await send({"type": "http.response.body", "body": body})
