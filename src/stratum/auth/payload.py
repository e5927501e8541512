"""Verification of a streamed request payload (S3 uploads) as it is read.

The request's signature covers its payload through ``x-amz-content-sha256``: a hex SHA-256 of the
body, ``UNSIGNED-PAYLOAD``, or one of the aws-chunked framings (see :mod:`stratum.auth.chunked`).
With the body streamed to disk rather than held in memory, the header signature is checked first
(``sigv4.verify(..., payload_follows=True)``) and the payload here, piece by piece: the payload
is handed on as it arrives and every check that needs the whole of it runs when the last piece has
been read, before the iterator ends. A consumer therefore commits nothing until the iteration
finished without an error.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Mapping

from stratum.auth.chunked import ChunkedDecoder, declared_trailers
from stratum.auth.errors import auth_error
from stratum.auth.sigv4 import (
    EMPTY_SHA256,
    STREAMING_PAYLOAD,
    STREAMING_PAYLOAD_TRAILER,
    UNSIGNED_PAYLOAD,
    SignedRequestInfo,
    SigV4Error,
    credential_scope,
)
from stratum.protocol.errors import ServiceError
from stratum.protocol.http import BodyStream

_HEX64 = frozenset("0123456789abcdef")
PROTOCOL = "rest-xml"  # only S3 streams request bodies


class VerifiedPayload:
    """A request body, decoded (aws-chunked) and verified while it is read.

    ``signing`` is the verified request's (info, signing key), None for requests that carry no
    SigV4 signature (anonymous, SigV2 presigned): their payload is still decoded and its unsigned
    checks (a hex ``x-amz-content-sha256``, trailing checksums) applied.
    """

    def __init__(self, raw: BodyStream, headers: Mapping[str, str],
                 signing: tuple[SignedRequestInfo, bytes] | None = None) -> None:
        self.raw = raw
        self.trailers: dict[str, str] = {}  # the verified trailing headers, once read to the end
        self.size = 0
        payload_hash = (headers.get("x-amz-content-sha256") or "").strip()
        self.expected_sha256: str | None = None
        self.decoder: ChunkedDecoder | None = None
        if payload_hash.startswith("STREAMING-"):
            if payload_hash in (STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER) and signing is None:
                raise auth_error("AccessDenied", PROTOCOL, "A signed aws-chunked payload needs a signed request.",
                                 403)
            decoded = (headers.get("x-amz-decoded-content-length") or "").strip()
            info, key = signing if signing is not None else (None, None)
            try:
                self.decoder = ChunkedDecoder(
                    payload_hash=payload_hash, signing_key=key,
                    seed_signature=info.signature if info else "", amz_date=info.amz_date if info else "",
                    scope=credential_scope(info) if info else "",
                    decoded_length=int(decoded) if decoded.isdigit() else None,
                    checksums=declared_trailers(headers.get("x-amz-trailer")))
            except SigV4Error as exc:
                raise auth_error(exc.code, PROTOCOL, exc.message, exc.status) from None
        elif payload_hash and payload_hash != UNSIGNED_PAYLOAD:
            if len(payload_hash) != 64 or not _HEX64.issuperset(payload_hash.lower()):
                raise auth_error("InvalidArgument", PROTOCOL, "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                                 "STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "
                                 "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value.", 400)
            self.expected_sha256 = payload_hash.lower()

    @property
    def content_length(self) -> int | None:
        """The payload's size as announced before it was sent (for size limits)."""
        if self.decoder is not None:
            return self.decoder.decoded_length
        return self.raw.content_length

    def pieces(self) -> Iterator[bytes]:
        """The payload; raises the S3 error (XAmzContentSHA256Mismatch, SignatureDoesNotMatch,
        IncompleteBody, BadDigest...) instead of ending when a check fails."""
        try:
            yield from self._pieces()
        except SigV4Error as exc:
            raise auth_error(exc.code, PROTOCOL, exc.message, exc.status) from None

    def _pieces(self) -> Iterator[bytes]:
        decoder = self.decoder
        sha = hashlib.sha256() if self.expected_sha256 is not None else None
        for piece in self.raw.pieces():
            if decoder is not None:
                for part in decoder.feed(piece):
                    self.size += len(part)
                    yield part.tobytes()
                continue
            if sha is not None:
                sha.update(piece)
            self.size += len(piece)
            yield piece
        if decoder is not None:
            self.trailers = decoder.finish()
            undeclared = decoder.undeclared_checksums(self.trailers)
            if undeclared:
                raise SigV4Error("MalformedTrailerError", f"The trailing header {undeclared[0]} was not declared in "
                                 "x-amz-trailer.", status=400)
        elif sha is not None:
            actual = sha.hexdigest() if self.size else EMPTY_SHA256
            if not hmac.compare_digest(actual, self.expected_sha256 or ""):
                # S3 names both digests in its error.
                raise ServiceError("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does "
                                   "not match what was computed.", 400,
                                   fields={"ClientComputedContentSHA256": self.expected_sha256,
                                           "S3ComputedContentSHA256": actual})


def payload_of(stream: BodyStream, headers: Mapping[str, str]) -> VerifiedPayload:
    """The verified payload of a streamed request: as the authenticator wrapped it, or (requests it
    left alone: anonymous, SigV2) wrapped now with the checks that need no key."""
    if isinstance(stream, VerifiedPayload):
        return stream
    return VerifiedPayload(stream, headers)
