"""A minimal HTTP/1.1 load generator: sends pre-built raw requests over keep-alive connections.

``run_phase(host, port, requests, concurrency)`` opens ``concurrency`` connections; connection k
sends requests k, k+C, k+2C, ... one after the other (a request is written once the previous
response has been read in full). Responses are parsed just enough to find their end: status line,
``Content-Length`` (or ``Transfer-Encoding: chunked``) and ``Connection: close``. When the server
closes the connection (moto_server's Werkzeug closes after every response), the connection is
reopened and the next request goes out on the new one; reconnects are counted.

It runs in its own process (see bench/api.py), so its CPU never competes with the benchmark's
driver, and it reports its own CPU time so a reader can check it was not the bottleneck. It uses
uvloop when installed (it is, with uvicorn[standard]).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import Any

MAX_ERROR_SAMPLES = 5


class _Stats:
    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.samples: list[tuple[int, bytes]] = []
        self.first_ok_body: bytes | None = None
        self.connects = 0
        self.bytes_in = 0


class _Conn(asyncio.Protocol):
    """Sends ``requests[i]`` for the indexes in ``todo`` (a shared iterator position), one at a time."""

    def __init__(self, requests: list[bytes], todo: list[int], pos: int, stats: _Stats,
                 done: asyncio.Future[int]) -> None:
        self.requests = requests
        self.todo = todo
        self.pos = pos
        self.stats = stats
        self.done = done
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.in_flight = False

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._send_next()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.in_flight:
            parsed = self._parse()
            if parsed is None:
                return
            status, end, close = parsed
            body = bytes(self.buf[self._body_start:end]) if status != 200 or self.stats.first_ok_body is None \
                else None
            del self.buf[:end]
            self.stats.bytes_in += end
            self.stats.statuses[status] += 1
            if status == 200:
                if self.stats.first_ok_body is None:
                    self.stats.first_ok_body = body
            elif len(self.stats.samples) < MAX_ERROR_SAMPLES:
                self.stats.samples.append((status, body or b""))
            self.in_flight = False
            self.pos += 1
            if close or self.pos >= len(self.todo):
                self._finish()
                return
            self._send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight:
            # The request got no (complete) response: count it and move on.
            self.stats.errors[f"connection lost mid-response ({exc!r})"] += 1
            self.in_flight = False
            self.pos += 1
        if not self.done.done():
            self.done.set_result(self.pos)

    # -- internals --------------------------------------------------------------------------------
    def _send_next(self) -> None:
        assert self.transport is not None
        self.in_flight = True
        self.transport.write(self.requests[self.todo[self.pos]])

    def _finish(self) -> None:
        assert self.transport is not None
        self.transport.close()
        if not self.done.done():
            self.done.set_result(self.pos)

    _body_start = 0

    def _parse(self) -> tuple[int, int, bool] | None:
        """(status, end offset of the response, server closes) once a full response is buffered."""
        buf = self.buf
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        head = bytes(buf[:head_end]).lower()
        status = int(head[9:12])
        body_start = head_end + 4
        self._body_start = body_start
        close = b"\r\nconnection: close" in head
        i = head.find(b"\r\ncontent-length:")
        if i >= 0:
            j = head.find(b"\r\n", i + 2)
            length = int(head[i + 17:j if j >= 0 else len(head)])
            end = body_start + length
            return (status, end, close) if len(buf) >= end else None
        if b"\r\ntransfer-encoding: chunked" in head:
            return self._parse_chunked(status, body_start, close)
        if status in (204, 304) or 100 <= status < 200:
            return status, body_start, close
        raise ValueError("response without Content-Length nor chunked encoding: unsupported")

    def _parse_chunked(self, status: int, pos: int, close: bool) -> tuple[int, int, bool] | None:
        buf = self.buf
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
            pos = line_end + 2
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", pos - 2)
                return (status, trailer_end + 4, close) if trailer_end >= 0 else None
            pos += size + 2
            if pos > len(buf):
                return None


async def _client(host: str, port: int, requests: list[bytes], todo: list[int], stats: _Stats) -> None:
    loop = asyncio.get_running_loop()
    pos = 0
    failures = 0
    while pos < len(todo):
        done: asyncio.Future[int] = loop.create_future()
        conn = _Conn(requests, todo, pos, stats, done)
        try:
            await loop.create_connection(lambda c=conn: c, host, port)
        except OSError as exc:
            failures += 1
            stats.errors[f"connect failed ({exc!r})"] += 1
            if failures > 20:
                stats.errors["gave up after 20 connect failures"] += len(todo) - pos
                return
            await asyncio.sleep(0.05)
            continue
        stats.connects += 1
        pos = await done


async def _run(host: str, port: int, requests: list[bytes], concurrency: int, stats: _Stats) -> float:
    shares = [list(range(k, len(requests), concurrency)) for k in range(concurrency)]
    t0 = time.perf_counter()
    await asyncio.gather(*(_client(host, port, requests, share, stats) for share in shares if share))
    return time.perf_counter() - t0


def run_phase(host: str, port: int, requests: list[bytes], concurrency: int) -> dict[str, Any]:
    """Send every request once; return wall time, status counts, errors and this process's CPU time."""
    stats = _Stats()
    try:
        import uvloop

        runner = uvloop.run
        loop_name = "uvloop"
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        runner = asyncio.run
        loop_name = "asyncio"
    cpu0 = time.process_time()
    elapsed = runner(_run(host, port, requests, concurrency, stats))
    cpu = time.process_time() - cpu0
    return {
        "elapsed": elapsed,
        "requests": len(requests),
        "statuses": dict(stats.statuses),
        "errors": dict(stats.errors),
        "error_samples": [(s, b[:500].decode("utf-8", "replace")) for s, b in stats.samples],
        "first_ok_body": (stats.first_ok_body or b"").decode("utf-8", "replace"),
        "connects": stats.connects,
        "bytes_in": stats.bytes_in,
        "client_cpu": cpu,
        "loop": loop_name,
        "pid": os.getpid(),
    }
