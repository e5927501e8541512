"""A request body still on the wire: read whole (with a cap) on the event loop, or piece by piece
from a worker thread by the handlers that stream it to disk (S3 uploads).

The ASGI app hands every request to the pipeline with its body unread. Most bodies are small and
are read at once, under ``MAX_BUFFERED_BODY``; S3 object uploads are streamed so that memory stays
bounded whatever the object's size. Reading starts only when a handler asks for the body, so a
request refused before that (signature, authorization, missing bucket) never has its body sent by a
client that waits for ``100 Continue``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

# Bodies that are buffered in memory (every request but an S3 object upload) are refused above this:
# the largest documented request payloads of the served APIs (InvokeEndpoint, Lambda Invoke, a
# 10,000-part CompleteMultipartUpload) stay well under it.
MAX_BUFFERED_BODY = 32 * 1024 * 1024
# How much a streaming reader takes from the connection per hop to the event loop.
STREAM_PIECE = 256 * 1024
# A body a handler stopped reading (a verification failure half-way) is read to its end and
# discarded up to this much, so the client can read the error on the same connection; beyond it
# the connection is closed instead.
DRAIN_LIMIT = 1024 * 1024 * 1024
# A client that sends nothing of a streamed body for this long loses the request (S3 answers
# RequestTimeout): the upload's thread is not held by a connection left open and silent.
IDLE_TIMEOUT = float(os.environ.get("STRATUM_BODY_IDLE_TIMEOUT", "60"))


class ClientDisconnected(Exception):
    """The client went away before sending the whole body."""


class BodyTooLarge(Exception):
    """The body is larger than the buffering limit."""


class BodyTimeout(Exception):
    """The client sent nothing of the body for IDLE_TIMEOUT seconds."""


class AsgiBody:
    """The body of one ASGI request, read through ``receive``."""

    def __init__(self, receive: Callable[[], Awaitable[dict[str, Any]]], headers: dict[str, str]) -> None:
        self._receive = receive
        self._headers = headers
        self._loop = asyncio.get_running_loop()
        self.started = False  # receive() called: a client waiting for 100 Continue was told to send
        self.finished = False  # the last piece has been received
        self.received = 0

    # Worked out when asked: most requests never need them (every request makes one of these).
    @property
    def content_length(self) -> int | None:
        return _content_length(self._headers)

    @property
    def expects_continue(self) -> bool:
        return self._headers.get("expect", "").lower() == "100-continue"

    async def _next(self) -> bytes:
        if self.finished:
            return b""
        self.started = True
        message = await self._receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        piece: bytes = message.get("body", b"")
        self.received += len(piece)
        if not message.get("more_body", False):
            self.finished = True
        return piece

    async def read_all(self, limit: int = MAX_BUFFERED_BODY) -> bytes:
        """The whole body; BodyTooLarge (before reading anything when Content-Length says so)."""
        if "content-length" in self._headers and (self.content_length or 0) > limit:
            raise BodyTooLarge()
        # The common case, spelled out: one message, no copy.
        self.started = True
        message = await self._receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        first: bytes = message.get("body", b"")
        self.received = len(first)
        if not message.get("more_body", False):
            self.finished = True
            return first
        pieces = [first]
        while not self.finished:
            pieces.append(await self._next())
            if self.received > limit:
                raise BodyTooLarge()
        return b"".join(pieces)

    async def _next_piece(self) -> bytes:
        pieces: list[bytes] = []
        size = 0
        while size < STREAM_PIECE and not self.finished:
            piece = await self._next()
            pieces.append(piece)
            size += len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def pieces(self) -> Iterator[bytes]:
        """The body in pieces of up to about STREAM_PIECE bytes, for a worker thread (never call it
        on the event loop: each piece waits for the loop to receive it)."""
        while not self.finished:
            future = asyncio.run_coroutine_threadsafe(self._next_piece(), self._loop)
            try:
                piece = future.result(IDLE_TIMEOUT)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise BodyTimeout() from None
            if piece:
                yield piece

    async def drain(self, limit: int = DRAIN_LIMIT) -> bool:
        """Read and discard the rest of the body; False if more than ``limit`` remained."""
        start = self.received
        try:
            while not self.finished:
                await asyncio.wait_for(self._next(), IDLE_TIMEOUT)
                if self.received - start > limit:
                    return False
        except (ClientDisconnected, TimeoutError):
            return False
        return True


def _content_length(headers: dict[str, str]) -> int | None:
    value = headers.get("content-length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)
