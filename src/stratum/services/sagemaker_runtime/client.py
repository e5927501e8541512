"""An asyncio HTTP/1.1 client for the model servers: keep-alive connections pooled per container
URL, responses parsed by httptools (uvicorn's C parser, already installed), nothing blocking the
event loop. It speaks just what the inference contract needs: a POST with a body, an answer with
a status, headers and a body (Content-Length or chunked)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

# Idle connections kept per container URL; a burst beyond this opens more and closes the surplus.
MAX_IDLE_PER_URL = 64


class ContainerUnreachable(Exception):
    """No connection could be made, or it broke before an answer came."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; answers one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Reply] | None = None
        self.closed = False
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._name = b""

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ContainerUnreachable(f"malformed response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ContainerUnreachable("connection closed before the response was complete"))

    # ------------------------------------------------------------------ httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self._headers[key] = f"{self._headers[key]},{text}" if key in self._headers else text

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        reply = Reply(self.parser.get_status_code(), self._headers, b"".join(self._body))
        if not self.parser.should_keep_alive():
            self.close()
        waiter, self.waiter = self.waiter, None
        self._headers, self._body = {}, []
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    # ------------------------------------------------------------------
    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, head: bytes, body: bytes) -> asyncio.Future[Reply]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        if body:
            self.transport.writelines((head, body))
        else:
            self.transport.write(head)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[Reply]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class ModelClient:
    """Pools of idle connections, one per container base URL (http://host:port).

    Answers overdue are failed by one timer that runs every ``SWEEP_SECONDS`` while any answer is
    awaited, rather than by a timer per request (arming and cancelling one cost ~5 us a request,
    more than the rest of the exchange's Python): a timeout fires up to that much late."""

    SWEEP_SECONDS = 0.1

    def __init__(self) -> None:
        self._idle: dict[str, deque[_Connection]] = {}
        self._hosts: dict[str, tuple[str, int, str]] = {}
        self._awaited: dict[asyncio.Future[Reply], float] = {}  # answer awaited -> its deadline (loop time)
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None

    def _address(self, base_url: str) -> tuple[str, int, str]:
        found = self._hosts.get(base_url)
        if found is None:
            parts = urlsplit(base_url)
            host, port = parts.hostname or "127.0.0.1", parts.port or 80
            found = self._hosts[base_url] = (host, port, f"{host}:{port}")
        return found

    async def _connect(self, host: str, port: int) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _transport, conn = await loop.create_connection(_Connection, host, port)
        except OSError as exc:
            raise ContainerUnreachable(str(exc)) from None
        return conn

    async def post(self, base_url: str, path: str, body: bytes, headers: dict[str, str], timeout: float,
                   method: str = "POST") -> Reply:
        """POST (or ``method``) ``body`` to ``base_url + path``; TimeoutError after ``timeout``
        seconds (the connection is then dropped: its answer may still come)."""
        host, port, host_header = self._address(base_url)
        lines = [f"{method} {path} HTTP/1.1\r\nHost: {host_header}\r\nContent-Length: {len(body)}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        idle = self._idle.get(base_url)
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            try:
                return await self._exchange(base_url, conn, head, body, timeout)
            except ContainerUnreachable:
                # The server closed an idle connection just as it was reused (nothing of an
                # answer came): the request goes again on a fresh connection.
                continue
        conn = await asyncio.wait_for(self._connect(host, port), timeout)
        return await self._exchange(base_url, conn, head, body, timeout)

    async def _exchange(self, base_url: str, conn: _Connection, head: bytes, body: bytes, timeout: float) -> Reply:
        waiter = conn.send(head, body)
        loop = waiter.get_loop()
        self._awaited[waiter] = loop.time() + timeout
        if self._sweep is None or self._sweep_loop is not loop:
            self._sweep_loop = loop
            self._sweep = loop.call_later(self.SWEEP_SECONDS, self._expire_overdue, loop)
        try:
            reply = await waiter
        except BaseException:
            conn.close()
            raise
        finally:
            del self._awaited[waiter]
        if not conn.closed:
            idle = self._idle.setdefault(base_url, deque())
            if len(idle) < MAX_IDLE_PER_URL:
                idle.append(conn)
            else:
                conn.close()
        return reply

    def _expire_overdue(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._sweep_loop:  # the client moved to another loop, which has its own sweep
            return
        now = loop.time()
        for waiter, deadline in list(self._awaited.items()):
            if deadline <= now:
                _expire(waiter)
        # Runs again only while answers are awaited: an idle server has no timer ticking.
        self._sweep = loop.call_later(self.SWEEP_SECONDS, self._expire_overdue, loop) if self._awaited else None

    def close(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()


class StreamedReply:
    """A container's answer whose body is read as it comes (chunked transfer encoding, or the
    Content-Length in pieces); one connection of its own, closed at the end."""

    def __init__(self, status: int, headers: dict[str, str], reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.status, self.headers = status, headers
        self._reader, self._writer = reader, writer

    async def chunks(self, timeout: float) -> AsyncIterator[bytes]:
        """The body's pieces; TimeoutError when the next one does not come within ``timeout``."""
        try:
            if "chunked" in self.headers.get("transfer-encoding", "").lower():
                while True:
                    size_line = await asyncio.wait_for(self._reader.readline(), timeout)
                    size = int(size_line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        await asyncio.wait_for(self._reader.readline(), timeout)  # the final CRLF
                        return
                    data = await asyncio.wait_for(self._reader.readexactly(size + 2), timeout)
                    yield data[:-2]
            else:
                left = int(self.headers.get("content-length") or 0)
                while left > 0:
                    data = await asyncio.wait_for(self._reader.read(min(left, 65536)), timeout)
                    if not data:
                        raise asyncio.IncompleteReadError(b"", left)
                    left -= len(data)
                    yield data
        finally:
            self._writer.close()

    async def read(self, timeout: float) -> bytes:
        return b"".join([piece async for piece in self.chunks(timeout)])


async def post_streamed(base_url: str, path: str, body: bytes, headers: dict[str, str],
                        timeout: float) -> StreamedReply:
    """POST and wait for the status line and headers only (for response streaming)."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except OSError as exc:
        raise ContainerUnreachable(str(exc)) from None
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}", "Connection: close",
             *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        writer.close()
        raise ContainerUnreachable(str(exc)) from None
    except BaseException:
        writer.close()
        raise
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    fields = {}
    for line in header_lines:
        if ":" in line:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
    return StreamedReply(status, fields, reader, writer)
