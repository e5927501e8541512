"""The unread request body: a cap checked from Content-Length before reading and while reading,
pieces for a worker thread, and a client that goes away."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stratum.server import body as body_module
from stratum.server.body import AsgiBody, BodyTooLarge, ClientDisconnected


def _receiver(messages: list[dict[str, Any]], calls: list[int]) -> Any:
    async def receive() -> dict[str, Any]:
        calls.append(1)
        return messages.pop(0)

    return receive


def _msgs(pieces: list[bytes]) -> list[dict[str, Any]]:
    return [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]


def test_content_length_over_the_cap_is_refused_before_reading() -> None:
    calls: list[int] = []

    async def run() -> None:
        stream = AsgiBody(_receiver(_msgs([b"x"]), calls), {"content-length": "101"})
        with pytest.raises(BodyTooLarge):
            await stream.read_all(100)

    asyncio.run(run())
    assert calls == []


def test_a_body_without_length_is_capped_while_read_and_small_ones_are_whole() -> None:
    async def run() -> None:
        stream = AsgiBody(_receiver(_msgs([b"a" * 60, b"b" * 60]), []), {})
        with pytest.raises(BodyTooLarge):
            await stream.read_all(100)
        whole = AsgiBody(_receiver(_msgs([b"ab", b"cd", b""]), []), {"content-length": "4"})
        assert await whole.read_all(100) == b"abcd" and whole.finished

    asyncio.run(run())


def test_pieces_are_read_from_a_worker_thread_in_bounded_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body_module, "STREAM_PIECE", 10)
    parts = [bytes([65 + i]) * 4 for i in range(10)]

    async def run() -> list[bytes]:
        stream = AsgiBody(_receiver(_msgs(parts), []), {})
        return await asyncio.to_thread(lambda: list(stream.pieces()))

    got = asyncio.run(run())
    assert b"".join(got) == b"".join(parts)
    assert all(len(p) <= 12 for p in got) and len(got) == 4  # 3 messages of 4 bytes reach 10


def test_a_client_that_goes_away_is_not_a_body() -> None:
    async def run() -> None:
        stream = AsgiBody(_receiver([{"type": "http.disconnect"}], []), {})
        with pytest.raises(ClientDisconnected):
            await stream.read_all()

    asyncio.run(run())
