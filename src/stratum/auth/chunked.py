"""Decoding of ``Content-Encoding: aws-chunked`` request bodies (S3 streaming uploads).

Three framings, selected by the ``x-amz-content-sha256`` value the request was signed with:

* ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``: ``<hex-size>;chunk-signature=<sig>\\r\\n<data>\\r\\n``
  repeated, ending with a 0-size chunk; each signature chains from the previous one, starting
  at the seed (the request's own signature).
* ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER``: the same, then trailing headers and an
  ``x-amz-trailer-signature`` line signed with the ``AWS4-HMAC-SHA256-TRAILER`` scheme.
* ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` (what botocore sends over HTTPS with a flexible
  checksum): ``<hex-size>\\r\\n<data>\\r\\n`` repeated, ``0\\r\\n``, trailer lines, ``\\r\\n``.

Trailing ``x-amz-checksum-*`` values are checked against the decoded payload. The decoder
(:class:`ChunkedDecoder`) works incrementally, so an upload is decoded and authenticated as it
streams to disk (see :mod:`stratum.auth.payload`); :func:`decode_aws_chunked` decodes a body
already in memory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import zlib
from collections.abc import Callable
from typing import Any

from stratum.auth.crc import crc32c, crc64nvme
from stratum.auth.sigv4 import (
    EMPTY_SHA256,
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    SigV4Error,
)

__all__ = ["ChunkedDecoder", "compute_checksum", "crc32c", "crc64nvme", "decode_aws_chunked", "declared_trailers"]

_MAX_LINE = 4096  # bounds the search for a chunk header / trailer line in a malformed body
_MAX_TRAILER = 16384
_HEX_SIZE_RE = re.compile(rb"[0-9a-fA-F]{1,16}")
_SIGNATURE_RE = re.compile(r"[0-9a-f]{64}")
_TRAILER_SIGNATURE = "x-amz-trailer-signature"
_CHECKSUM_PREFIX = "x-amz-checksum-"


# --------------------------------------------------------------------------- checksums
#
# zlib only provides CRC-32; CRC-32C and CRC-64/NVME come from stratum.auth.crc (botocore gets
# them from awscrt, which is not a dependency here).


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


def _hasher(algorithm: str) -> Callable[[], _Running] | None:
    name = algorithm.lower()
    if name in ("sha1", "sha256", "sha512"):
        return lambda: _HashlibRunning(name)
    if name in ("crc32", "crc32c", "crc64nvme"):
        return lambda: _CrcRunning(name)
    return None


class _Running:
    def update(self, data: bytes | memoryview) -> None:
        raise NotImplementedError

    def b64(self) -> str:
        raise NotImplementedError


class _HashlibRunning(_Running):
    def __init__(self, name: str) -> None:
        self._hash = hashlib.new(name)

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)

    def b64(self) -> str:
        return base64.b64encode(self._hash.digest()).decode("ascii")


class _CrcRunning(_Running):
    _FUNCS: dict[str, tuple[Callable[[Any, int], int], int]] = {
        "crc32": (zlib.crc32, 4), "crc32c": (crc32c, 4), "crc64nvme": (crc64nvme, 8)}

    def __init__(self, name: str) -> None:
        self._func, self._size = self._FUNCS[name]
        self._crc = 0

    def update(self, data: bytes | memoryview) -> None:
        self._crc = self._func(data, self._crc)

    def b64(self) -> str:
        return base64.b64encode(self._crc.to_bytes(self._size, "big")).decode("ascii")


def declared_trailers(header: str | None) -> list[str]:
    """The trailing header names an ``x-amz-trailer`` header announces (lower case)."""
    return [n.strip().lower() for n in (header or "").split(",") if n.strip()]


_SIZE_LINE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkedDecoder:
    """Incremental decoder (and, for the signed modes, authenticator) of an aws-chunked body.

    ``feed`` takes the body in pieces of any size and returns the payload bytes they complete;
    ``finish`` is called at the end of the body and returns the trailing headers once every check
    passed. Memory stays bounded by the longest chunk-header or trailer line, never by a chunk: a
    chunk's data is passed on as it arrives and its signature is checked when its last byte has
    been seen (so a consumer must not commit anything before ``finish`` returned).

    ``seed_signature`` is the request's signature, ``amz_date`` and ``scope`` come from the same
    request, ``signing_key`` is what :func:`stratum.auth.sigv4.verify` returned (None in the
    unsigned mode). ``decoded_length`` is ``x-amz-decoded-content-length`` when sent. ``checksums``
    lists the trailing ``x-amz-checksum-*`` headers the request declared (``x-amz-trailer``): their
    values are computed as the payload goes by and each must arrive and match; a checksum trailer
    that was not declared is refused, as it could only be checked with the whole payload at hand.
    """

    def __init__(self, *, payload_hash: str, signing_key: bytes | None, seed_signature: str, amz_date: str,
                 scope: str, decoded_length: int | None = None, checksums: list[str] | None = None) -> None:
        if payload_hash.startswith("STREAMING-AWS4-ECDSA"):
            raise SigV4Error("IncompleteSignature", "Signature Version 4A streaming payloads are not supported.")
        self.payload_hash = payload_hash
        self.signed = payload_hash in (STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER)
        self.trailer_allowed = payload_hash != STREAMING_PAYLOAD
        if self.signed and signing_key is None:
            raise ValueError("signing_key is required to decode a signed aws-chunked body")
        self._key = signing_key
        self._amz_date = amz_date
        self._scope = scope
        self._chunk_prefix = f"AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n"
        self._previous = seed_signature
        self.decoded_length = decoded_length
        self._sums: dict[str, _Running] = {}
        for name in checksums or ():
            if not name.startswith(_CHECKSUM_PREFIX):
                continue
            factory = _hasher(name[len(_CHECKSUM_PREFIX):])
            if factory is None:
                raise SigV4Error("InvalidRequest", f"The {name} trailer is not supported.", status=400)
            self._sums[name] = factory()
        self._declared = set(self._sums)
        self._state = _SIZE_LINE
        self._line = bytearray()  # a chunk-header line, or the trailer section, being gathered
        self._remaining = 0  # data bytes still due in the current chunk
        self._chunk_size = 0
        self._chunk_sha: Any = None
        self._signature = ""
        self.size = 0  # payload bytes decoded so far

    # ---------------------------------------------------------------------------------- feeding
    def feed(self, data: bytes | memoryview) -> list[memoryview]:
        out: list[memoryview] = []
        view = memoryview(data)
        pos, end = 0, len(view)
        while pos < end:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, end - pos)
                piece = view[pos:pos + take]
                self._payload(piece)
                out.append(piece)
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._end_of_chunk()
            elif state == _SIZE_LINE:
                pos = self._gather_line(view, pos, end)
            elif state == _DATA_END:
                need = 2 - len(self._line)
                self._line += view[pos:pos + need]
                pos += min(need, end - pos)
                if len(self._line) == 2:
                    if self._line != b"\r\n":
                        raise _incomplete("The aws-chunked body is malformed (missing CRLF after chunk data).")
                    self._line.clear()
                    self._state = _SIZE_LINE
            elif state == _TRAILER:
                if len(self._line) + end - pos > _MAX_TRAILER:
                    raise _incomplete("The aws-chunked trailer section is too large.")
                self._line += view[pos:end]
                pos = end
            else:
                raise _incomplete("The aws-chunked body has data after its end.")
        return out

    def _payload(self, piece: memoryview) -> None:
        self.size += len(piece)
        if self._chunk_sha is not None:
            self._chunk_sha.update(piece)
        for running in self._sums.values():
            running.update(piece)

    def _gather_line(self, view: memoryview, pos: int, end: int) -> int:
        stop = min(end, pos + _MAX_LINE)
        chunk = view[pos:stop].tobytes()
        # A CRLF may straddle two pieces: look from the gathered line's last byte.
        joined_at = len(self._line)
        self._line += chunk
        found = self._line.find(b"\r\n", max(0, joined_at - 1))
        if found < 0:
            if len(self._line) > _MAX_LINE:
                raise _incomplete("The aws-chunked body is truncated or malformed (expected CRLF).")
            return stop
        line = bytes(self._line[:found])
        consumed = found + 2 - joined_at
        self._line.clear()
        self._start_chunk(line)
        return pos + consumed

    def _start_chunk(self, line: bytes) -> None:
        size_field, _, extension = line.partition(b";")
        if not _HEX_SIZE_RE.fullmatch(size_field):
            raise _incomplete(f"Invalid aws-chunked chunk size {size_field[:32]!r}.")
        size = int(size_field, 16)
        if self.signed:
            name, _, signature = extension.decode("latin-1").partition("=")
            if name.strip() != "chunk-signature" or not _SIGNATURE_RE.fullmatch(signature):
                raise SigV4Error("SignatureDoesNotMatch", "Missing or malformed chunk-signature in aws-chunked body.")
            self._signature = signature
            self._chunk_sha = hashlib.sha256()
        self._chunk_size = size
        self._remaining = size
        if size == 0:
            self._end_of_chunk()
        else:
            self._state = _DATA

    def _end_of_chunk(self) -> None:
        if self.signed:
            assert self._key is not None
            digest = self._chunk_sha.hexdigest() if self._chunk_size else EMPTY_SHA256
            string_to_sign = f"{self._chunk_prefix}{self._previous}\n{EMPTY_SHA256}\n{digest}"
            computed = hmac.digest(self._key, string_to_sign.encode("utf-8"), "sha256").hex()
            if not hmac.compare_digest(computed, self._signature):
                raise SigV4Error("SignatureDoesNotMatch",
                                 "The chunk signature we calculated does not match the signature you provided.")
            self._previous = self._signature
            self._chunk_sha = None
        self._state = _TRAILER if self._chunk_size == 0 else _DATA_END

    # --------------------------------------------------------------------------------- finishing
    def finish(self) -> dict[str, str]:
        """Check the end of the body (final chunk, trailers, their signature, checksums, length);
        returns the trailing headers (lower-case names, without the trailer signature)."""
        if self._state != _TRAILER:
            raise _incomplete("The aws-chunked body is truncated (no final 0-size chunk).")
        self._state = _DONE
        # Canonically "name:value\r\n" lines then an empty line, but SDKs differ at the edges (an
        # extra CRLF right after the 0-size chunk, no final CRLF), so blank lines are skipped and the
        # final terminator is optional; signed trailers are authenticated anyway.
        ordered: list[tuple[str, str]] = []
        trailer_signature: str | None = None
        for line in bytes(self._line).split(b"\r\n"):
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
        if ordered and not self.trailer_allowed:
            raise _incomplete(f"Trailing headers are not allowed with x-amz-content-sha256: {self.payload_hash}.")
        if self.signed and self.trailer_allowed:
            self._check_trailer_signature(ordered, trailer_signature)
        if self.decoded_length is not None and self.size != self.decoded_length:
            raise _incomplete(f"The decoded aws-chunked payload is {self.size} bytes but "
                              f"x-amz-decoded-content-length says {self.decoded_length}.")
        trailers = dict(ordered)
        for name, running in self._sums.items():
            value = trailers.get(name)
            if value is None:
                raise SigV4Error("MalformedTrailerError", f"The request declared the trailing header {name} but "
                                 "did not send it.", status=400)
            if running.b64() != value:
                raise SigV4Error("BadDigest", f"The {name[len(_CHECKSUM_PREFIX):].upper()} you specified did not "
                                 "match the calculated checksum.")
        return trailers

    def undeclared_checksums(self, trailers: dict[str, str]) -> list[str]:
        return [n for n in trailers if n.startswith(_CHECKSUM_PREFIX) and n not in self._declared]

    def _check_trailer_signature(self, ordered: list[tuple[str, str]], trailer_signature: str | None) -> None:
        assert self._key is not None
        if trailer_signature is None:
            raise SigV4Error("SignatureDoesNotMatch", "Missing x-amz-trailer-signature in aws-chunked body.")
        prefix = f"AWS4-HMAC-SHA256-TRAILER\n{self._amz_date}\n{self._scope}\n{self._previous}\n"
        # SDKs emit trailers sorted by name (the canonical order); a single trailer is the norm,
        # but accept the as-sent order too rather than guess which one a client used.
        candidates = [sorted(ordered)]
        if candidates[0] != ordered:
            candidates.append(ordered)
        for trailers in candidates:
            canonical = "".join(f"{n}:{v}\n" for n, v in trailers)
            string_to_sign = prefix + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
            computed = hmac.digest(self._key, string_to_sign.encode("utf-8"), "sha256").hex()
            if hmac.compare_digest(computed.encode(), trailer_signature.encode("ascii", "replace")):
                return
        raise SigV4Error("SignatureDoesNotMatch",
                         "The trailer signature we calculated does not match the signature you provided.")


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
    """Decode (and, for the signed modes, authenticate) a whole aws-chunked body held in memory.

    Arguments as for :class:`ChunkedDecoder`. Returns the payload and the trailing headers.
    Raises :class:`SigV4Error`: ``SignatureDoesNotMatch`` (bad chunk or trailer signature),
    ``IncompleteBody`` (framing or length), ``BadDigest`` (trailing checksum).
    """
    decoder = ChunkedDecoder(payload_hash=payload_hash, signing_key=signing_key, seed_signature=seed_signature,
                             amz_date=amz_date, scope=scope, decoded_length=decoded_length)
    parts = decoder.feed(body)
    trailers = decoder.finish()
    payload = parts[0].tobytes() if len(parts) == 1 else b"".join(parts)
    # The whole payload is at hand: any trailing checksum can be checked, declared or not.
    _verify_checksums(payload, trailers)
    return payload, trailers
