"""Which request bodies the pipeline reads into memory and which the handler streams to disk.

Only S3 object uploads (PutObject, UploadPart) are streamed: their handler writes the body to a
temporary file while its signature and checksums are verified, and commits it only when every
check passed. Every other body is read whole before routing, under ``MAX_BUFFERED_BODY``.
"""

from __future__ import annotations

from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpRequest
from stratum.protocol.parser import match_route
from stratum.protocol.service_models import service_index
from stratum.server.app_state import AppState
from stratum.server.body import MAX_BUFFERED_BODY, AsgiBody, BodyTooLarge
from stratum.server.routing import route_service

STREAMED_OPERATIONS: dict[str, frozenset[str]] = {"s3": frozenset({"PutObject", "UploadPart"})}


async def receive_body(app: AppState, request: HttpRequest) -> bool:
    """Read ``request.stream`` into ``request.body`` unless the request is a streamed upload (then
    the stream stays for the handler). False when the body is over the buffering limit."""
    stream = request.stream
    if not isinstance(stream, AsgiBody):
        return True
    if request.method == "PUT" and _streamed(app, request):
        return True
    request.stream = None
    try:
        request.body = await stream.read_all(MAX_BUFFERED_BODY)
    except BodyTooLarge:
        return False
    return True


def _streamed(app: AppState, request: HttpRequest) -> bool:
    try:
        service, _region = route_service(request, app.settings.region)
        operations = STREAMED_OPERATIONS.get(service)
        if not operations:
            return False
        provider = app.providers.get(service)
        if provider is not None:
            provider.prepare_request(request)
        route, _groups = match_route(service_index(service), request)
    except ServiceError:
        return False  # the pipeline answers the same error once the body is read
    if route.operation.name not in operations:
        return False
    # A header-signed request without x-amz-content-sha256 signs the SHA-256 of its body, which has
    # to be known before the signature can be checked: such a body is read first (under the cap).
    return "authorization" not in request.headers or "x-amz-content-sha256" in request.headers


def body_too_large(protocol: str) -> ServiceError:
    if protocol == "rest-xml":
        return ServiceError("MaxMessageLengthExceeded", "Your request was too big.", 400,
                            fields={"MaxMessageLengthBytes": MAX_BUFFERED_BODY})
    return ServiceError("RequestEntityTooLarge", f"The request body is larger than the maximum of "
                        f"{MAX_BUFFERED_BODY} bytes.", 413)
