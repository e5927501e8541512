"""The incremental aws-chunked decoder gives the same payload, trailers and errors whatever the
pieces the body arrives in (a CRLF or a chunk header split between two reads included)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib

import pytest

from stratum.auth.chunked import ChunkedDecoder, decode_aws_chunked
from stratum.auth.sigv4 import EMPTY_SHA256, SigV4Error

KEY = hashlib.sha256(b"signing key").digest()
SEED = "5" * 64
DATE = "20240101T000000Z"
SCOPE = "20240101/us-east-1/s3/aws4_request"
PAYLOAD = bytes(range(256)) * 700  # 179,200 bytes


def _signed(payload: bytes, size: int, trailer: tuple[str, str] | None = None) -> bytes:
    out, previous = b"", SEED
    chunks = [payload[i:i + size] for i in range(0, len(payload), size)] + [b""]
    for chunk in chunks:
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", DATE, SCOPE, previous, EMPTY_SHA256,
                             hashlib.sha256(chunk).hexdigest()])
        previous = hmac.new(KEY, to_sign.encode(), hashlib.sha256).hexdigest()
        out += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk + (b"\r\n" if chunk else b"")
    if trailer is None:
        return out + b"\r\n"
    canonical = f"{trailer[0]}:{trailer[1]}\n"
    to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", DATE, SCOPE, previous,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(KEY, to_sign.encode(), hashlib.sha256).hexdigest()
    return out + f"{trailer[0]}:{trailer[1]}\r\nx-amz-trailer-signature:{signature}\r\n\r\n".encode()


def _decode_in_pieces(body: bytes, piece: int, **kwargs: object) -> tuple[bytes, dict[str, str]]:
    decoder = ChunkedDecoder(signing_key=KEY, seed_signature=SEED, amz_date=DATE, scope=SCOPE, **kwargs)  # type: ignore[arg-type]
    out = bytearray()
    for i in range(0, len(body), piece):
        for part in decoder.feed(body[i:i + piece]):
            out += part
    return bytes(out), decoder.finish()


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 89, 4096, 65537, 10**7])
def test_any_piece_size_gives_the_same_payload_and_trailers(piece: int) -> None:
    crc = base64.b64encode(zlib.crc32(PAYLOAD).to_bytes(4, "big")).decode()
    body = _signed(PAYLOAD, 8192, ("x-amz-checksum-crc32", crc))
    decoded, trailers = _decode_in_pieces(body, piece, payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
                                          decoded_length=len(PAYLOAD), checksums=["x-amz-checksum-crc32"])
    assert decoded == PAYLOAD and trailers == {"x-amz-checksum-crc32": crc}
    assert (decoded, trailers) == decode_aws_chunked(
        body, payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", signing_key=KEY, seed_signature=SEED,
        amz_date=DATE, scope=SCOPE)


@pytest.mark.parametrize("piece", [1, 5, 1000])
def test_errors_are_the_same_in_pieces(piece: int) -> None:
    body = _signed(PAYLOAD, 8192)
    mode = {"payload_hash": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"}
    flipped = bytearray(body)
    flipped[20000] ^= 1  # inside the third chunk's data
    with pytest.raises(SigV4Error) as exc:
        _decode_in_pieces(bytes(flipped), piece, **mode)
    assert exc.value.code == "SignatureDoesNotMatch"
    with pytest.raises(SigV4Error) as exc:
        _decode_in_pieces(body[:-100], piece, **mode)
    assert exc.value.code == "IncompleteBody"
    with pytest.raises(SigV4Error) as exc:
        _decode_in_pieces(body, piece, decoded_length=len(PAYLOAD) - 1, **mode)
    assert exc.value.code == "IncompleteBody"


def test_declared_trailer_checksums_must_arrive_and_match() -> None:
    good = base64.b64encode(hashlib.sha256(PAYLOAD).digest()).decode()
    wrong = base64.b64encode(hashlib.sha256(b"x").digest()).decode()
    mode = {"payload_hash": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "checksums": ["x-amz-checksum-sha256"]}
    assert _decode_in_pieces(_signed(PAYLOAD, 65536, ("x-amz-checksum-sha256", good)), 3000, **mode)[0] == PAYLOAD
    with pytest.raises(SigV4Error) as exc:
        _decode_in_pieces(_signed(PAYLOAD, 65536, ("x-amz-checksum-sha256", wrong)), 3000, **mode)
    assert exc.value.code == "BadDigest"
    crc = base64.b64encode(zlib.crc32(PAYLOAD).to_bytes(4, "big")).decode()
    with pytest.raises(SigV4Error) as exc:  # declared sha256, sent crc32
        _decode_in_pieces(_signed(PAYLOAD, 65536, ("x-amz-checksum-crc32", crc)), 3000, **mode)
    assert exc.value.code == "MalformedTrailerError"


def test_a_chunk_is_never_held_whole() -> None:
    """A huge announced chunk is passed on as its data arrives (memory bounded by the piece)."""
    decoder = ChunkedDecoder(payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER", signing_key=None, seed_signature="",
                             amz_date="", scope="")
    assert decoder.feed(b"40000000\r\n") == []  # a 1 GiB chunk announced
    parts = decoder.feed(b"a" * 1000)
    assert [bytes(p) for p in parts] == [b"a" * 1000]
    with pytest.raises(SigV4Error) as exc:
        decoder.finish()
    assert exc.value.code == "IncompleteBody"
    long_line = ChunkedDecoder(payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER", signing_key=None,
                               seed_signature="", amz_date="", scope="")
    with pytest.raises(SigV4Error):
        for _ in range(10):
            long_line.feed(b"1" * 1000)  # a size line that never ends


@pytest.mark.parametrize("name", ["crc32c", "crc64nvme"])
def test_vectorized_crcs_match_the_table_loop(name: str) -> None:
    import os

    from stratum.auth.crc import crc32c, crc64nvme, crc_by_loop

    fast = {"crc32c": crc32c, "crc64nvme": crc64nvme}[name]
    for size in (0, 1, 127, 4095, 4096, 4097, 65536, 100_003, 1 << 20):
        data = os.urandom(size)
        for start in (0, 0xDEADBEEF):
            assert fast(data, start) == crc_by_loop(name, data, start), (size, start)
    # Continuing across pieces of any size gives the whole input's value.
    data = os.urandom(300_000)
    value = 0
    for i in range(0, len(data), 70_001):
        value = fast(data[i:i + 70_001], value)
    assert value == crc_by_loop(name, data)
