"""The end-to-end benchmark's load generator: the project's own asyncio client, open loop.

``python -m bench.e2e_load open ...`` posts petitions at a fixed rate: request i leaves at
t0 + i/rate whatever the earlier answers (a bounded number in flight; a request that cannot
leave within a second of its time, because the generator is behind or every in-flight slot
is taken, is not sent and counts as late). The bodies are real petition texts from
``../shared/data`` (``PETITION_DATA_DIR``), each with a petitioner (a name and one of 20,000
phone numbers, so a few callers call again), an ``Idempotency-Key`` and the token of one of
many operators (intake limits each caller to its own rate, as it would a real desk). It
prints ``start <t0 wall clock>`` when the first request is due and ``end`` once the last has
been scheduled, then waits for the answers and writes what each request got as JSON.

Two HTTP clients: ``raw`` (HTTP/1.1 keep-alive over asyncio streams, a connection per request
in flight: cheap enough for 2,000/s on one core) and ``httpx`` (``httpx.AsyncClient``).
``ceiling`` measures one client's own ceiling (closed loop against ``trivial``, a fixed 202
answer served by a bare asyncio protocol in another process).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.e2e_rules import LATE_AFTER_SECONDS, due, is_late, schedule

#: outcome codes stored instead of an HTTP status
LATE_GENERATOR = 0  # the generator itself got to the request too late
LATE_IN_FLIGHT = -1  # every in-flight slot stayed taken until the request was too late
TIMEOUT = -2
BROKEN = -3  # connection refused, reset or closed mid-answer
OUTCOME_NAMES = {LATE_GENERATOR: "late (generator)", LATE_IN_FLIGHT: "late (in-flight limit)",
                 TIMEOUT: "timeout", BROKEN: "connection error"}

TRIVIAL_BODY = b'{"id":"00000000-0000-4000-8000-000000000000","tracking_code":"XF-TRIVIAL","status":"submitted"}'
TRIVIAL_ANSWER = (b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: "
                  + str(len(TRIVIAL_BODY)).encode() + b"\r\n\r\n" + TRIVIAL_BODY)

Send = Callable[[bytes, bytes], Awaitable[tuple[int, bytes]]]


# --- the bodies -------------------------------------------------------------------------

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"


def petition_bodies(count: int, seed: int) -> list[bytes]:
    """`count` JSON bodies of petitions as an operator posts them: real texts (those intake
    accepts: a title of at most 200 characters, a text of at most 20,000), a petitioner."""
    from bench.classify_bench import load_texts

    texts = [(t.strip(), c.strip()) for t, c in load_texts()[0]]
    texts = [(t, c) for t, c in texts if 0 < len(t) <= 200 and 0 < len(c) <= 20000]
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        title, content = rng.choice(texts)
        phone = f"139{rng.randrange(20000):08d}"
        name = rng.choice(_SURNAMES) + rng.choice(("先生", "女士"))
        out.append(json.dumps({"title": title, "content": content, "channel": "hotline",
                               "petitioner": {"name": name, "phone": phone}},
                              ensure_ascii=False, separators=(",", ":")).encode())
    return out


# --- the raw asyncio client -----------------------------------------------------------------

class RawClient:
    """HTTP/1.1 with keep-alive over asyncio streams: one connection per request in flight,
    reused most-recently-used first; a connection idle for 2 s is dropped rather than reused
    (the server may be closing it: uvicorn's keep-alive is 5 s)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def send(self, path_and_headers: bytes, body: bytes) -> tuple[int, bytes]:
        """`path_and_headers`: the request line and headers without Content-Length and the
        blank line. Returns (status, body)."""
        conn = None
        now = time.monotonic()
        while self._idle:
            reader, writer, used = self._idle.pop()
            if now - used < 2.0:
                conn = (reader, writer)
                break
            writer.close()
        if conn is None:
            conn = await asyncio.open_connection(self.host, self.port)
        reader, writer = conn
        keep = False
        try:
            writer.write(path_and_headers + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lower = head.lower()
            keep = b"connection: close" not in lower
            at = lower.find(b"content-length:")
            if at >= 0:
                answer = await reader.readexactly(int(lower[at + 15 : lower.index(b"\r\n", at)]))
            elif b"transfer-encoding: chunked" in lower:
                answer = await _read_chunked(reader)
            else:
                answer, keep = await reader.read(), False
            return status, answer
        finally:
            if keep:
                self._idle.append((reader, writer, time.monotonic()))
            else:
                writer.close()

    def close(self) -> None:
        for _r, writer, _t in self._idle:
            writer.close()
        self._idle.clear()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def raw_sender(url: str, timeout: float) -> tuple[Send, Callable[[], Awaitable[None]]]:
    host, port = _host_port(url)
    client = RawClient(host, port, timeout)

    async def send(head: bytes, body: bytes) -> tuple[int, bytes]:
        return await client.send(head, body)

    async def close() -> None:
        client.close()

    return send, close


def httpx_sender(url: str, timeout: float, in_flight: int) -> tuple[Send, Callable[[], Awaitable[None]]]:
    import httpx

    client = httpx.AsyncClient(base_url=url, timeout=timeout, limits=httpx.Limits(
        max_connections=in_flight, max_keepalive_connections=in_flight, keepalive_expiry=2.0))

    async def send(head: bytes, body: bytes) -> tuple[int, bytes]:
        lines = head.decode().split("\r\n")
        path = lines[0].split(" ")[1]
        headers = dict(line.split(": ", 1) for line in lines[1:] if line and not line.lower().startswith("host:"))
        response = await client.post(path, content=body, headers=headers)
        return response.status_code, response.content

    return send, client.aclose


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[1].split("/", 1)[0]
    host, _, port = rest.rpartition(":")
    return host, int(port)


def sender(kind: str, url: str, timeout: float, in_flight: int) -> tuple[Send, Callable[[], Awaitable[None]]]:
    if kind == "raw":
        return raw_sender(url, timeout)
    if kind == "httpx":
        return httpx_sender(url, timeout, in_flight)
    raise ValueError(f"unknown client {kind!r} (raw or httpx)")


def request_head(url: str, path: str, token: str, key: str) -> bytes:
    host = url.split("://", 1)[1].split("/", 1)[0]
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nIdempotency-Key: {key}\r\n").encode()


# --- open loop ------------------------------------------------------------------------------

async def open_loop(send: Send, heads: Callable[[int], bytes], bodies: list[bytes], *, rate: float,
                    seconds: float, in_flight: int, timeout: float,
                    on_start: Callable[[float], None] = lambda _t: None,
                    on_scheduled: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Send ``rate * seconds`` requests, request i at t0 + i/rate; returns per request its
    outcome (HTTP status or one of the codes above), when it left and when it was answered
    (seconds after t0), and the petition id of a 202."""
    loop = asyncio.get_running_loop()
    total = max(1, round(rate * seconds))
    status = [LATE_GENERATOR] * total
    sent = [-1.0] * total
    done = [-1.0] * total
    ids: list[str | None] = [None] * total
    slots = asyncio.Semaphore(in_flight)
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int, at: float) -> None:
        now = loop.time() - t0
        if now - at < LATE_AFTER_SECONDS and slots.locked():
            try:
                async with asyncio.timeout(LATE_AFTER_SECONDS - (now - at)):
                    await slots.acquire()
            except TimeoutError:
                status[i] = LATE_IN_FLIGHT
                return
        elif slots.locked():
            status[i] = LATE_IN_FLIGHT
            return
        else:
            await slots.acquire()
        try:
            sent[i] = loop.time() - t0
            try:
                async with asyncio.timeout(timeout):
                    code, answer = await send(heads(i), bodies[i % len(bodies)])
            except TimeoutError:
                status[i] = TIMEOUT
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                status[i] = BROKEN
            else:
                status[i] = code
                if code == 202:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        ids[i] = json.loads(answer)["id"]
        finally:
            done[i] = loop.time() - t0
            slots.release()

    t0 = loop.time() + 0.05
    t0_wall = time.time() + (t0 - loop.time())
    on_start(t0_wall)
    scheduled = 0
    while scheduled < total:
        now = loop.time() - t0
        upto = due(now, scheduled, total, rate)
        for i in range(scheduled, upto):
            at = schedule(i, rate)
            if is_late(at, now):
                status[i] = LATE_GENERATOR  # the generator itself is behind: not sent
                continue
            task = loop.create_task(one(i, at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        scheduled = upto
        if scheduled < total:
            await asyncio.sleep(max(0.0, schedule(scheduled, rate) - (loop.time() - t0)))
    on_scheduled()
    while tasks:
        await asyncio.gather(*list(tasks))
    return {"t0_wall": t0_wall, "rate": rate, "seconds": seconds, "total": total, "status": status,
            "sent": sent, "done": done, "ids": ids}


async def closed_loop(send: Send, heads: Callable[[int], bytes], bodies: list[bytes], *, seconds: float,
                      concurrency: int) -> tuple[int, float]:
    """Requests answered in `seconds` by `concurrency` workers each sending as soon as its
    previous request is answered: the client's ceiling when the server answers at once."""
    loop = asyncio.get_running_loop()
    count = 0
    end = loop.time() + seconds

    async def worker(w: int) -> None:
        nonlocal count
        i = w
        while loop.time() < end:
            await send(heads(i), bodies[i % len(bodies)])
            count += 1
            i += concurrency

    started = loop.time()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return count, loop.time() - started


# --- the trivial server ------------------------------------------------------------------------

class _Trivial(asyncio.Protocol):
    """Answers each HTTP/1.1 request with the same 202, as fast as asyncio can."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            at = head.find(b"content-length:")
            length = 0
            if at >= 0:
                stop = head.find(b"\r\n", at)
                length = int(head[at + 15 : stop if stop >= 0 else len(head)])
            if len(self.buf) < end + 4 + length:
                return
            del self.buf[: end + 4 + length]
            self.transport.write(TRIVIAL_ANSWER)


async def serve_trivial(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Trivial, "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


# --- command line -----------------------------------------------------------------------------

def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.e2e_load")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("open", "ceiling"):
        s = sub.add_parser(name)
        s.add_argument("--url", required=True)
        s.add_argument("--path", default="/v1/petitions")
        s.add_argument("--client", default="raw", choices=("raw", "httpx"))
        s.add_argument("--tokens", type=Path, help="a file of bearer tokens, one a line (operators)")
        s.add_argument("--seconds", type=float, default=20)
        s.add_argument("--timeout", type=float, default=10)
        s.add_argument("--seed", type=int, default=1)
        s.add_argument("--label", default="e2e", help="makes the Idempotency-Keys unique to a run")
        s.add_argument("--out", type=Path, required=True)
    sub.choices["open"].add_argument("--rate", type=float, required=True)
    sub.choices["open"].add_argument("--in-flight", type=int, default=512)
    sub.choices["ceiling"].add_argument("--concurrency", type=int, default=64)
    t = sub.add_parser("trivial")
    t.add_argument("--port", type=int, required=True)
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    a = _args(argv)
    if a.command == "trivial":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_trivial(a.port))
        return 0
    tokens = a.tokens.read_text().split() if a.tokens else ["none"]
    bodies = petition_bodies(4096, a.seed)

    def heads(i: int) -> bytes:
        return request_head(a.url, a.path, tokens[i % len(tokens)], f"{a.label}-{i}")

    async def run() -> dict[str, Any]:
        in_flight = getattr(a, "in_flight", a.concurrency if a.command == "ceiling" else 512)
        send, close = sender(a.client, a.url, a.timeout, in_flight)
        try:
            cpu0 = time.process_time()
            if a.command == "ceiling":
                count, wall = await closed_loop(send, heads, bodies, seconds=a.seconds, concurrency=a.concurrency)
                return {"client": a.client, "count": count, "wall": wall, "cpu": time.process_time() - cpu0}
            result = await open_loop(
                send, heads, bodies, rate=a.rate, seconds=a.seconds, in_flight=a.in_flight, timeout=a.timeout,
                on_start=lambda t: print(f"start {t:.6f}", flush=True), on_scheduled=lambda: print("end", flush=True))
            result["client"], result["cpu"] = a.client, time.process_time() - cpu0
            return result
        finally:
            await close()

    result = asyncio.run(run())
    tmp = a.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    os.replace(tmp, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
