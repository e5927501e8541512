"""The body of a PutObject or UploadPart request, streamed from the connection to the blob store.

The body is never held whole: it goes from the connection through the payload checks (SigV4
payload hash or aws-chunked signatures and trailers, see ``stratum.auth.payload``), the Content-MD5
and flexible-checksum checks and the encryption into a temporary file, which becomes the blob only
once the last piece has passed every check (``ObjectStore.put_stream``).
"""

from __future__ import annotations

from collections.abc import Iterator

from stratum.auth.payload import VerifiedPayload, payload_of
from stratum.protocol.errors import ServiceError
from stratum.server.body import BodyTimeout
from stratum.server.context import RequestContext

from . import checksums

MAX_UPLOAD_SIZE = 5 * 1024 ** 3  # a single PUT (object or part) is at most 5 GiB


def entity_too_large(size: int) -> ServiceError:
    return ServiceError("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400,
                        fields={"ProposedSize": size, "MaxSizeAllowed": MAX_UPLOAD_SIZE})


class UploadBody:
    """Checks what can be checked before the body is read (checksum headers, announced size) when
    made; ``pieces`` then streams the body, raising the S3 error for any check that fails."""

    def __init__(self, ctx: RequestContext) -> None:
        http = ctx.http
        self._body = http.body
        self.payload: VerifiedPayload | None = None
        if http.stream is not None:
            self.payload = payload_of(http.stream, http.headers)
            size = self.payload.content_length
        else:  # read before authentication (a header-signed request without x-amz-content-sha256)
            size = len(http.body)
        if size is not None and size > MAX_UPLOAD_SIZE:
            raise entity_too_large(size)
        self.checksums = checksums.UploadChecksums(
            http.headers, trailers_verified=self.payload is not None and self.payload.decoder is not None)

    def pieces(self) -> Iterator[bytes]:
        source = self.payload.pieces() if self.payload is not None else iter((self._body,))
        return self.checksums.wrap(_capped(source))

    def result(self) -> dict[str, str]:
        """The verified checksum (``{"<ALG>": "<base64>"}`` or empty), after ``pieces`` ran out."""
        return self.checksums.result(self.payload.trailers if self.payload is not None else None)


def request_timeout() -> ServiceError:
    return ServiceError("RequestTimeout", "Your socket connection to the server was not read from or written to "
                        "within the timeout period. Idle connections will be closed.", 400)


def _capped(pieces: Iterator[bytes]) -> Iterator[bytes]:
    # A body sent without a length (Transfer-Encoding: chunked) is held to the same limit.
    size = 0
    try:
        for piece in pieces:
            size += len(piece)
            if size > MAX_UPLOAD_SIZE:
                raise entity_too_large(size)
            yield piece
    except BodyTimeout:
        raise request_timeout() from None
