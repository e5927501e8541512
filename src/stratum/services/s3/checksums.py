"""Content-MD5 and flexible checksums (x-amz-checksum-*): verification on upload, echo on download.

boto3 1.36+ sends a CRC32 with every upload by default (as a header over plain HTTP, as an aws-chunked
trailer over HTTPS; trailers are verified by the aws-chunked decoder as the body streams in). S3 keeps one checksum
per object and returns it when the client asks with ``x-amz-checksum-mode: ENABLED``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from stratum.auth.chunked import crc32c, crc64nvme

from .errors import bad_digest, invalid_digest, invalid_request

# Algorithm names as S3 spells them (upper case) -> digest size in bytes.
ALGORITHMS: dict[str, int] = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32,
                              "SHA512": 64, "MD5": 16}
HEADER_PREFIX = "x-amz-checksum-"
FULL_OBJECT = "FULL_OBJECT"
COMPOSITE = "COMPOSITE"


class Hasher:
    """Incremental checksum for one algorithm (for streaming concatenation of multipart parts)."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm.upper()
        self._crc = 0
        self._hash: Any = None
        if self.algorithm in ("SHA1", "SHA256", "SHA512", "MD5"):
            self._hash = hashlib.new(self.algorithm.lower())
        elif self.algorithm not in ("CRC32", "CRC32C", "CRC64NVME"):
            raise ValueError(f"unsupported checksum algorithm {algorithm}")

    def update(self, data: bytes) -> None:
        if self._hash is not None:
            self._hash.update(data)
        elif self.algorithm == "CRC32":
            self._crc = zlib.crc32(data, self._crc)
        elif self.algorithm == "CRC32C":
            self._crc = crc32c(data, self._crc)
        else:
            self._crc = crc64nvme(data, self._crc)

    def digest(self) -> bytes:
        if self._hash is not None:
            return bytes(self._hash.digest())
        return self._crc.to_bytes(ALGORITHMS[self.algorithm], "big")

    def b64(self) -> str:
        return base64.b64encode(self.digest()).decode("ascii")


def compute(algorithm: str, data: bytes) -> str:
    hasher = Hasher(algorithm)
    hasher.update(data)
    return hasher.b64()


def supported(algorithm: str) -> bool:
    return algorithm.upper() in ALGORITHMS


def _declared_algorithm(headers: Mapping[str, str]) -> str | None:
    """The algorithm named by x-amz-sdk-checksum-algorithm or an x-amz-trailer checksum."""
    name = headers.get("x-amz-sdk-checksum-algorithm")
    if name:
        return name.upper()
    trailer = headers.get("x-amz-trailer", "")
    for item in trailer.split(","):
        item = item.strip().lower()
        if item.startswith(HEADER_PREFIX):
            return item[len(HEADER_PREFIX):].upper()
    return None


def _trailer_algorithm(headers: Mapping[str, str]) -> str | None:
    for item in headers.get("x-amz-trailer", "").split(","):
        item = item.strip().lower()
        if item.startswith(HEADER_PREFIX):
            return item[len(HEADER_PREFIX):].upper()
    return None


class UploadChecksums:
    """Content-MD5 and the flexible checksum of an upload, checked as its body goes by.

    The headers are validated when this is made (before any byte of the body is read); ``wrap``
    passes the body on, hashing it, and raises BadDigest after its last piece when a value does not
    match, so the caller's blob is never committed. ``trailers_verified``: a checksum announced in
    ``x-amz-trailer`` arrives with the body and is verified by its decoder (``result`` is then given
    the trailers); otherwise (a body the authenticator already decoded) it is computed here.
    """

    def __init__(self, headers: Mapping[str, str], *, trailers_verified: bool = False) -> None:
        self._md5_expected: bytes | None = None
        value = headers.get("content-md5")
        if value is not None:
            try:
                self._md5_expected = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise invalid_digest() from None
            if len(self._md5_expected) != 16:
                raise invalid_digest()
        given: dict[str, str] = {}
        for name, text in headers.items():
            if name.startswith(HEADER_PREFIX):
                alg = name[len(HEADER_PREFIX):].upper()
                if alg in ALGORITHMS:
                    given[alg] = text.strip()
        if len(given) > 1:
            raise invalid_request("Expecting a single x-amz-checksum- header. Multiple checksum Types are not "
                                  "allowed.")
        self._given: tuple[str, str] | None = None
        for alg, text in given.items():
            try:
                raw = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != ALGORITHMS[alg]:
                raise invalid_request(f"Value for x-amz-checksum-{alg.lower()} header is invalid.")
            self._given = (alg, text)
        self._from_trailer: str | None = None
        computed: str | None = None
        if self._given is not None:
            computed = self._given[0]
        else:
            declared = _declared_algorithm(headers)
            if declared in ALGORITHMS:
                if trailers_verified and _trailer_algorithm(headers) == declared:
                    self._from_trailer = declared
                else:
                    computed = declared
        self._hasher = Hasher(computed) if computed else None
        self._md5 = hashlib.md5(usedforsecurity=False) if self._md5_expected is not None else None

    @property
    def algorithm(self) -> str | None:
        """The algorithm ``result`` will name (None: the upload carries no checksum)."""
        if self._from_trailer is not None:
            return self._from_trailer
        return self._hasher.algorithm if self._hasher is not None else None

    def wrap(self, pieces: Iterable[bytes]) -> Iterator[bytes]:
        md5, hasher = self._md5, self._hasher
        for piece in pieces:
            if md5 is not None:
                md5.update(piece)
            if hasher is not None:
                hasher.update(piece)
            yield piece
        if md5 is not None and md5.digest() != self._md5_expected:
            raise bad_digest("MD5")
        if self._given is not None and hasher is not None and hasher.b64() != self._given[1]:
            raise bad_digest(self._given[0])

    def result(self, trailers: Mapping[str, str] | None = None) -> dict[str, str]:
        """The upload's checksum as ``{"<ALG>": "<base64>"}`` (empty when none was involved), once
        ``wrap`` has run to its end."""
        if self._from_trailer is not None:
            return {self._from_trailer: (trailers or {})[HEADER_PREFIX + self._from_trailer.lower()]}
        if self._given is not None:
            return {self._given[0]: self._given[1]}
        if self._hasher is not None:
            return {self._hasher.algorithm: self._hasher.b64()}
        return {}


def verify_request(headers: Mapping[str, str], body: bytes) -> dict[str, str]:
    """Check Content-MD5 and any x-amz-checksum-<alg> header against a body held in memory.

    Returns the object's checksum as ``{"<ALG>": "<base64>"}`` (empty when none was involved). When
    the algorithm was declared but its value travelled in a trailer, the (already verified) value is
    recomputed here because the authenticator consumed the trailer.
    """
    checker = UploadChecksums(headers)
    for _ in checker.wrap((body,)):
        pass
    return checker.result()


def output_fields(checksums: Mapping[str, Any] | None) -> dict[str, str]:
    """``ChecksumCRC32``-style output members (plus ``ChecksumType``) for a stored checksum dict."""
    if not checksums:
        return {}
    out: dict[str, str] = {}
    for alg, value in checksums.items():
        if alg in ALGORITHMS:
            out[f"Checksum{alg}"] = value
    if out:
        out["ChecksumType"] = checksums.get("type", FULL_OBJECT)
    return out


def from_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Checksum values a client listed for a part in CompleteMultipartUpload (``ChecksumCRC32``...)."""
    return {alg: params[f"Checksum{alg}"] for alg in ALGORITHMS if params.get(f"Checksum{alg}")}


def composite(algorithm: str, part_checksums: list[str]) -> str:
    """S3's checksum-of-checksums for multipart objects: b64(alg(concat(raw part digests)))-N."""
    hasher = Hasher(algorithm)
    for value in part_checksums:
        hasher.update(base64.b64decode(value))
    return f"{hasher.b64()}-{len(part_checksums)}"
