"""An asyncio HTTP/1.1 client for the model servers: keep-alive connections pooled per container
URL, responses parsed by httptools (uvicorn's C parser, already installed), nothing blocking the
event loop. It speaks just what the inference contract needs: a POST with a body, an answer with
a status, headers and a body (Content-Length or chunked)."""

from __future__ import annotations

import asyncio
from collections import deque
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
    """Pools of idle connections, one per container base URL (http://host:port)."""

    def __init__(self) -> None:
        self._idle: dict[str, deque[_Connection]] = {}
        self._hosts: dict[str, tuple[str, int, bytes]] = {}

    def _address(self, base_url: str) -> tuple[str, int, bytes]:
        found = self._hosts.get(base_url)
        if found is None:
            parts = urlsplit(base_url)
            host, port = parts.hostname or "127.0.0.1", parts.port or 80
            found = self._hosts[base_url] = (host, port, f"{host}:{port}".encode("latin-1"))
        return found

    async def _connect(self, host: str, port: int) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _transport, conn = await loop.create_connection(_Connection, host, port)
        except OSError as exc:
            raise ContainerUnreachable(str(exc)) from None
        return conn

    async def post(self, base_url: str, path: str, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
        """POST ``body`` to ``base_url + path``; TimeoutError after ``timeout`` seconds (the
        connection is then dropped: its answer may still come)."""
        host, port, host_header = self._address(base_url)
        lines = [b"POST ", path.encode("latin-1"), b" HTTP/1.1\r\nHost: ", host_header,
                 b"\r\nContent-Length: ", str(len(body)).encode(), b"\r\n"]
        for name, value in headers.items():
            lines += [name.encode("latin-1"), b": ", value.encode("latin-1"), b"\r\n"]
        lines.append(b"\r\n")
        head = b"".join(lines)
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
        # A timer on the future rather than asyncio.wait_for: no wrapper future or callbacks per call.
        timer = waiter.get_loop().call_later(timeout, _expire, waiter)
        try:
            reply = await waiter
        except BaseException:
            conn.close()
            raise
        finally:
            timer.cancel()
        if not conn.closed:
            idle = self._idle.setdefault(base_url, deque())
            if len(idle) < MAX_IDLE_PER_URL:
                idle.append(conn)
            else:
                conn.close()
        return reply

    def close(self) -> None:
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()
