"""Which request bodies the pipeline reads into memory and which the handler streams to disk.

Only S3 object uploads (PutObject, UploadPart) are streamed: their handler writes the body to a
temporary file while its signature and checksums are verified, and commits it only when every
check passed. Every other body is read whole before routing, under ``MAX_BUFFERED_BODY``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpRequest
from stratum.protocol.parser import match_route
from stratum.protocol.service_models import service_index
from stratum.server.app_state import AppState
from stratum.server.body import MAX_BUFFERED_BODY, AsgiBody, BodyTooLarge
from stratum.server.routing import route_service

STREAMED_OPERATIONS: dict[str, frozenset[str]] = {"s3": frozenset({"PutObject", "UploadPart"})}
# A streamed upload holds its thread for as long as the client takes to send the body: such
# handlers get threads of their own rather than the event loop's default pool (a few threads,
# shared by every blocking handler), so slow uploads cannot stall other requests. Uploads beyond
# this many wait, their bodies unread.
UPLOAD_THREADS = 64
_uploads: ThreadPoolExecutor | None = None
T = TypeVar("T")


async def run_streamed(func: Callable[..., T], *args: Any) -> T:
    """Run the blocking handler of a streamed request on the upload threads."""
    global _uploads
    if _uploads is None:
        _uploads = ThreadPoolExecutor(max_workers=UPLOAD_THREADS, thread_name_prefix="stratum-upload")
    call = functools.partial(contextvars.copy_context().run, func, *args)
    return await asyncio.get_running_loop().run_in_executor(_uploads, call)


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
