"""Decoding of ``Content-Encoding: aws-chunked`` request bodies (S3 streaming uploads).

Three framings, selected by the ``x-amz-content-sha256`` value the request was signed with:

* ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``: ``<hex-size>;chunk-signature=<sig>\\r\\n<data>\\r\\n``
  repeated, ending with a 0-size chunk; each signature chains from the previous one, starting
  at the seed (the request's own signature).
* ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER``: the same, then trailing headers and an
  ``x-amz-trailer-signature`` line signed with the ``AWS4-HMAC-SHA256-TRAILER`` scheme.
* ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` (what botocore sends over HTTPS with a flexible
  checksum): ``<hex-size>\\r\\n<data>\\r\\n`` repeated, ``0\\r\\n``, trailer lines, ``\\r\\n``.

Trailing ``x-amz-checksum-*`` values are checked against the decoded payload.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import zlib
from collections.abc import Callable

from stratum.auth.sigv4 import (
    EMPTY_SHA256,
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    SigV4Error,
)

__all__ = ["compute_checksum", "crc32c", "crc64nvme", "decode_aws_chunked"]

_MAX_LINE = 4096  # bounds the search for a chunk header / trailer line in a malformed body
_MAX_TRAILER = 16384
_HEX_SIZE_RE = re.compile(rb"[0-9a-fA-F]{1,16}")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
_TRAILER_SIGNATURE = "x-amz-trailer-signature"


# --------------------------------------------------------------------------- checksums
#
# zlib only provides CRC-32; CRC-32C and CRC-64/NVME come from awscrt in botocore, which is not
# a dependency here, so they are computed with a byte-at-a-time table in pure Python
# (~10-20 MB/s: fine for test payloads, slow for multi-GB objects).


def _reflect(value: int, width: int) -> int:
    return int(f"{value:0{width}b}"[::-1], 2)


def _crc_table(reflected_poly: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ reflected_poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc_table(_reflect(0x1EDC6F41, 32))  # Castagnoli
_CRC64NVME_TABLE = _crc_table(_reflect(0xAD93D23594C93659, 64))
_MASK32 = 0xFFFFFFFF
_MASK64 = 0xFFFFFFFFFFFFFFFF


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C (Castagnoli); ``crc`` continues a previous result, like ``zlib.crc32``."""
    table = _CRC32C_TABLE
    crc ^= _MASK32
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK32


def crc64nvme(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-64/NVME, the algorithm behind ``x-amz-checksum-crc64nvme``."""
    table = _CRC64NVME_TABLE
    crc ^= _MASK64
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _MASK64


_CHECKSUMS: dict[str, Callable[[bytes], bytes]] = {
    "crc32": lambda d: zlib.crc32(d).to_bytes(4, "big"),
    "crc32c": lambda d: crc32c(d).to_bytes(4, "big"),
    "crc64nvme": lambda d: crc64nvme(d).to_bytes(8, "big"),
    "sha1": lambda d: hashlib.sha1(d).digest(),
    "sha256": lambda d: hashlib.sha256(d).digest(),
    "sha512": lambda d: hashlib.sha512(d).digest(),
}


def compute_checksum(algorithm: str, data: bytes) -> str | None:
    """Base64 checksum as carried by ``x-amz-checksum-<algorithm>``; None if unsupported."""
    fn = _CHECKSUMS.get(algorithm.lower())
    return base64.b64encode(fn(data)).decode("ascii") if fn is not None else None


def _verify_checksums(payload: bytes, trailers: dict[str, str]) -> None:
    for name, value in trailers.items():
        if not name.startswith("x-amz-checksum-"):
            continue
        algorithm = name[len("x-amz-checksum-") :]
        expected = compute_checksum(algorithm, payload)
        # Unknown algorithms (xxhash*) cannot be checked here; the caller may reject them.
        if expected is not None and expected != value:
            raise SigV4Error(
                "BadDigest", f"The {algorithm.upper()} you specified did not match the calculated checksum."
            )


# --------------------------------------------------------------------------- decoding


def _incomplete(message: str) -> SigV4Error:
    return SigV4Error("IncompleteBody", message)


def _read_line(body: bytes, pos: int) -> tuple[bytes, int]:
    end = body.find(b"\r\n", pos, pos + _MAX_LINE)
    if end < 0:
        raise _incomplete("The aws-chunked body is truncated or malformed (expected CRLF).")
    return body[pos:end], end + 2


def decode_aws_chunked(
    body: bytes,
    *,
    payload_hash: str,
    signing_key: bytes | None,
    seed_signature: str,
    amz_date: str,
    scope: str,
    decoded_length: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Decode (and, for the signed modes, authenticate) an aws-chunked body.

    ``seed_signature`` is the request's signature (``info.signature``), ``amz_date`` and
    ``scope`` come from the same request (``info.amz_date``, ``credential_scope(info)``),
    ``signing_key`` is what :func:`stratum.auth.sigv4.verify` returned (may be None for the
    unsigned mode).  ``decoded_length`` is ``x-amz-decoded-content-length`` when sent.

    Returns the payload and the trailing headers (lower-case names, without the trailer
    signature).  Raises :class:`SigV4Error`: ``SignatureDoesNotMatch`` (bad chunk or trailer
    signature), ``IncompleteBody`` (framing or length), ``BadDigest`` (trailing checksum).
    """
    if payload_hash.startswith("STREAMING-AWS4-ECDSA"):
        raise SigV4Error("IncompleteSignature", "Signature Version 4A streaming payloads are not supported.")
    signed = payload_hash in (STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER)
    trailer_allowed = payload_hash != STREAMING_PAYLOAD
    if signed and signing_key is None:
        raise ValueError("signing_key is required to decode a signed aws-chunked body")
    chunk_prefix = f"AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n"
    previous = seed_signature

    view = memoryview(body)
    parts: list[memoryview] = []
    pos = 0
    while True:
        line, pos = _read_line(body, pos)
        size_field, _, extension = line.partition(b";")
        if not _HEX_SIZE_RE.fullmatch(size_field):
            raise _incomplete(f"Invalid aws-chunked chunk size {size_field[:32]!r}.")
        size = int(size_field, 16)
        end = pos + size
        if end > len(body):
            raise _incomplete("The aws-chunked body is truncated (chunk longer than the remaining body).")
        chunk = view[pos:end]
        if signed:
            assert signing_key is not None
            name, _, signature = extension.decode("latin-1").partition("=")
            if name.strip() != "chunk-signature" or not _SIGNATURE_RE.fullmatch(signature):
                raise SigV4Error(
                    "SignatureDoesNotMatch", "Missing or malformed chunk-signature in aws-chunked body."
                )
            digest = hashlib.sha256(chunk).hexdigest() if size else EMPTY_SHA256
            string_to_sign = f"{chunk_prefix}{previous}\n{EMPTY_SHA256}\n{digest}"
            computed = hmac.digest(signing_key, string_to_sign.encode("utf-8"), "sha256").hex()
            if not hmac.compare_digest(computed, signature):
                raise SigV4Error(
                    "SignatureDoesNotMatch",
                    "The chunk signature we calculated does not match the signature you provided.",
                )
            previous = signature
        if size == 0:
            break
        parts.append(chunk)
        if body[end : end + 2] != b"\r\n":
            raise _incomplete("The aws-chunked body is malformed (missing CRLF after chunk data).")
        pos = end + 2

    # Trailer section.  Canonically "name:value\r\n" lines then an empty line, but SDKs differ
    # at the edges (an extra CRLF right after the 0-size chunk, no final CRLF), so blank lines
    # are skipped and the final terminator is optional; signed trailers are authenticated anyway.
    rest = body[pos:]
    if len(rest) > _MAX_TRAILER:
        raise _incomplete("The aws-chunked trailer section is too large.")
    ordered: list[tuple[str, str]] = []
    trailer_signature: str | None = None
    for line in rest.split(b"\r\n"):
        if not line:
            continue
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise _incomplete(f"Malformed trailing header line {line[:64]!r}.")
        name = name.strip().lower()
        value = value.strip()
        if name == _TRAILER_SIGNATURE:
            trailer_signature = value
        else:
            ordered.append((name, value))
    if ordered and not trailer_allowed:
        raise _incomplete(f"Trailing headers are not allowed with x-amz-content-sha256: {payload_hash}.")

    if signed and trailer_allowed:
        assert signing_key is not None
        if trailer_signature is None:
            raise SigV4Error("SignatureDoesNotMatch", "Missing x-amz-trailer-signature in aws-chunked body.")
        prefix = f"AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{previous}\n"
        # SDKs emit trailers sorted by name (the canonical order); a single trailer is the norm,
        # but accept the as-sent order too rather than guess which one a client used.
        candidates = [sorted(ordered)]
        if candidates[0] != ordered:
            candidates.append(ordered)
        for trailers in candidates:
            canonical = "".join(f"{n}:{v}\n" for n, v in trailers)
            string_to_sign = prefix + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
            computed = hmac.digest(signing_key, string_to_sign.encode("utf-8"), "sha256").hex()
            if hmac.compare_digest(computed.encode(), trailer_signature.encode("ascii", "replace")):
                break
        else:
            raise SigV4Error(
                "SignatureDoesNotMatch",
                "The trailer signature we calculated does not match the signature you provided.",
            )

    payload = parts[0].tobytes() if len(parts) == 1 else b"".join(parts)
    if decoded_length is not None and len(payload) != decoded_length:
        raise _incomplete(
            f"The decoded aws-chunked payload is {len(payload)} bytes but x-amz-decoded-content-length "
            f"says {decoded_length}."
        )
    trailers = dict(ordered)
    _verify_checksums(payload, trailers)
    return payload, trailers
