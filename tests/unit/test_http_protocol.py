"""The coalescing transport sends a response's head and body in one write, and never holds bytes
past the event loop's next iteration."""

from __future__ import annotations

import asyncio

from stratum.server.http_protocol import _CoalescingTransport


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def test_head_and_body_leave_in_one_write() -> None:
    async def go() -> Recorder:
        rec = Recorder()
        t = _CoalescingTransport(rec, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(HEAD)
        assert rec.writes == []
        t.write(b"{}")
        await asyncio.sleep(0)
        return rec

    assert asyncio.run(go()).writes == [HEAD + b"{}"]


def test_a_head_alone_goes_out_on_the_next_iteration() -> None:
    async def go() -> Recorder:
        rec = Recorder()
        t = _CoalescingTransport(rec, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # nothing follows until the client sends the body
        await asyncio.sleep(0)
        assert rec.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        t.write(HEAD)  # a HEAD response: no body write follows
        t.close()
        return rec

    rec = asyncio.run(go())
    assert rec.writes[1:] == [HEAD] and rec.closed


def test_other_writes_pass_through_and_attributes_delegate() -> None:
    async def go() -> tuple[Recorder, str]:
        rec = Recorder()
        t = _CoalescingTransport(rec, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(b"chunk-1")
        t.write(HEAD)
        t.write(b"ab")
        t.write(b"chunk-2")
        return rec, t.get_extra_info("peername")

    rec, info = asyncio.run(go())
    assert rec.writes == [b"chunk-1", HEAD + b"ab", b"chunk-2"] and info == "info:peername"


def test_a_refused_head_is_read_leniently_in_linear_time() -> None:
    import time

    from stratum.server.http_protocol import _lenient_headers

    head = (b"PUT /b/k HTTP/1.1\r\nHost: x\r\nX-Long: " + b"\xc3\xa9A=" * 50_000 + b"\r\nX-Bad: a\x01b\r\n"
            b"Authorization: AWS4-HMAC-SHA256 Credential=AK/20261207/us-east-1/iam/aws4_request\r\n\r\nbody")
    started = time.monotonic()
    headers = _lenient_headers(head)
    assert time.monotonic() - started < 0.5  # a backtracking pattern took 39 s on a 150 KB head
    assert headers["authorization"].endswith("/iam/aws4_request") and headers["x-bad"] == "a\x01b"
    assert _lenient_headers(b"\x00garbage") == {}
