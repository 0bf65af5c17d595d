"""Limits on every API request: its size and its time.

**Size** (:class:`BodyLimit`): a body over the limit gets ``413`` in the project's error
shape, readable also by a client that sends the whole body before it reads.

**Time** (:class:`RequestDeadline`): a frozen database answers ``503`` in seconds, never
hangs. The pool's statement and connect timeouts bound each call to PostgreSQL; a request makes
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
import contextlib
import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.intake import metrics

log = logging.getLogger(__name__)

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics", "/console/events"})  # the last: a long-lived stream
#: how much of a refused request's body is read and dropped so that the client can read
#: the refusal (see :func:`answer_and_drain`), and for how long at most
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 30.0


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


class BodyLimit:
    """Answers 413 to a body larger than `limit` bytes, declared or streamed, readably.

    A client that sends the whole body before it reads (most do) would see its connection
    reset if the server answered and closed while the body was still arriving. So the 413
    goes out first, then the rest of the body is read and dropped, at most `drain_bytes`
    and `drain_seconds`, and the connection is closed (``Connection: close``) after it.
    """

    def __init__(self, app: ASGIApp, limit: int, *, drain_bytes: int = DRAIN_BYTES,
                 drain_seconds: float = DRAIN_SECONDS) -> None:
        self.app, self.limit = app, limit
        self.drain_bytes, self.drain_seconds = drain_bytes, drain_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            # Drained even under `Expect: 100-continue`: the server sends no go-ahead once
            # the 413 has started, a client that waits closes on reading it (the drain ends
            # at the disconnect), and one that sends the body anyway (RFC 9110 10.1.1 lets it)
            # must not meet a reset.
            await self._too_large(receive, send, more=True)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size > self.limit:
                await self._too_large(receive, send, more=more)
                return
            chunks.append(chunk)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, receive: Receive, send: Send, *, more: bool) -> None:
        body = b'{"error":"body_too_large","message":"the request body exceeds the limit"}'
        await answer_and_drain(receive, send, 413, body, more=more, drain_bytes=self.drain_bytes,
                               drain_seconds=self.drain_seconds)


def has_body(scope: Scope) -> bool:
    """Whether the request announces a body (a Content-Length over 0, or chunked)."""
    for name, value in scope.get("headers") or []:
        if name == b"content-length" and value.strip() not in (b"", b"0"):
            return True
        if name == b"transfer-encoding":
            return True
    return False


async def answer_and_drain(receive: Receive, send: Send, status: int, body: bytes, *, more: bool,
                           drain_bytes: int, drain_seconds: float, idle_seconds: float = 2.0,
                           headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer `status` with a JSON `body` and close, readably for a client still sending.

    A client that sends the whole body before it reads (most do) would see its connection
    reset if the server closed while the body was still arriving. So the answer goes out
    first, then (`more`: the body is not all read) the rest of the body is read and dropped:
    at most `drain_bytes`, `drain_seconds` in all, and until nothing has come for
    `idle_seconds` (a client that waited for ``100 Continue`` sends nothing, and closes
    once it has read the answer); then the connection is closed."""
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *(headers or [])]})
    # the answer is complete for the client, but not yet for the server: it goes on
    # reading (the server would stop delivering the body once the response ended)
    await send({"type": "http.response.body", "body": body, "more_body": True})
    if more:
        drained = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_seconds):
                while drained <= drain_bytes:
                    async with asyncio.timeout(idle_seconds):
                        message = await receive()
                    if message["type"] != "http.request":
                        break
                    drained += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        break
    await send({"type": "http.response.body", "body": b"", "more_body": False})
