"""The request pipeline: route -> authenticate -> parse + validate -> provider (which authorizes)
-> serialize. Every failure becomes the AWS error the client expects; nothing escapes as a 500 page."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
from collections.abc import Callable
from time import perf_counter
from typing import Any

from botocore.model import OperationModel

from stratum import ids
from stratum.protocol.errors import ServiceError, internal_error
from stratum.protocol.http import HttpRequest, HttpResponse
from stratum.protocol.parser import parse_request
from stratum.protocol.serializer import serialize_error, serialize_response
from stratum.protocol.service_models import ServiceIndex, service_index
from stratum.protocol.validate import validate_input
from stratum.server.app_state import AppState
from stratum.server.body import ClientDisconnected
from stratum.server.context import RequestContext
from stratum.server.routing import ForeignProtocolError, route_service
from stratum.server.streaming import body_too_large, receive_body, run_streamed

log = logging.getLogger("stratum.request")
Handler = Callable[[RequestContext, dict[str, Any]], Any]

VALIDATION_CODES = {"iam": "ValidationError", "sts": "ValidationError", "s3": "InvalidArgument",
                    "ram": "InvalidParameterException", "organizations": "InvalidInputException",
                    "sqs": "InvalidParameterValue"}
# A request with a larger body is answered in a worker thread, and (except S3's object data) parsed
# and validated in the parser process (server.parsing_process): hashing, parsing and checking
# hundreds of KB (8,000 tags, a 1 MB pipeline definition) would otherwise hold the event loop, or
# the GIL, and every other account's requests with it. Everyday requests are far smaller and stay
# on the loop.
OFFLOAD_BODY_BYTES = 4096
# Services whose large bodies are data, not documents (S3 objects, inference payloads): nothing in
# them to parse, so they are not sent to the parser process; only their signature's hash is worked.
OPAQUE_BODIES = frozenset({"s3", "sagemaker-runtime"})
# Those large documents are worked on one at a time: each is CPU in Python, holding the GIL, and
# two at once left the event loop a third of it instead of a half (DescribePipeline p99 under an
# 8,000-tag flood: 240-360 ms with the shared pool, 90-145 ms with one worker; bench/fairness.py).
# S3 bodies are object data for blocking handlers that wait on I/O: they keep the shared pool.
_DOCUMENTS = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="stratum-large-request")


async def handle(app: AppState, request: HttpRequest) -> HttpResponse:
    started = perf_counter()
    labels = ["-", "-"]  # service and operation for the request counters, as far as they are known
    response = await _respond(app, request, labels)
    app.request_stats.record(labels[0], labels[1], response.status, perf_counter() - started)
    return response


async def _respond(app: AppState, request: HttpRequest, labels: list[str]) -> HttpResponse:
    request_id = ids.request_id()
    index: ServiceIndex | None = None
    try:
        if request.stream is not None and not await receive_body(app, request):
            index = service_index(route_service(request, app.settings.region)[0])
            raise body_too_large(index.protocol)
        service, region = route_service(request, app.settings.region)
        labels[0] = service
        index = service_index(service)
        provider = app.providers.get(service)
        if provider is not None:
            provider.prepare_request(request)
        if isinstance(request.body, bytes) and len(request.body) > OFFLOAD_BODY_BYTES:
            answer = functools.partial(_answer_in_thread, app, request, request_id, index, service, region,
                                       labels)
            answered = await asyncio.get_running_loop().run_in_executor(None if service == "s3" else _DOCUMENTS,
                                                                        answer)
            if isinstance(answered, HttpResponse):
                return answered
            ctx, op, params, handler = answered  # admitted in the thread; a coroutine handler runs here
            return _serialize(ctx, index, op, await handler(ctx, params))
        ctx, op, params, handler, blocking = _admit(app, request, request_id, index, service, region, labels)
        if blocking and request.stream is not None:
            output = await run_streamed(handler, ctx, params)
        elif blocking:
            output = await asyncio.to_thread(handler, ctx, params)
        elif inspect.iscoroutinefunction(handler):  # waits on I/O without a thread (InvokeEndpoint)
            output = await handler(ctx, params)
        else:
            output = handler(ctx, params)
        return _serialize(ctx, index, op, output)
    except ForeignProtocolError as exc:  # answered in the request's protocol, not in one Stratum serves
        return serialize_error(exc.service_model, exc, request_id, request.method)
    except ServiceError as exc:
        return serialize_error(index.model if index else None, exc, request_id, request.method)
    except ClientDisconnected:
        raise  # nobody to answer
    except Exception:
        log.exception("unhandled error in request %s %s", request.method, request.raw_path)
        return serialize_error(index.model if index else None, internal_error(), request_id, request.method)


def _admit(app: AppState, request: HttpRequest, request_id: str, index: ServiceIndex, service: str, region: str,
           labels: list[str], large: bool = False) -> tuple[RequestContext, OperationModel, dict[str, Any], Handler, bool]:
    """authenticate -> parse + validate -> the provider's handler for the operation. A ``large``
    body is parsed and validated in the parser process (server.parsing_process)."""
    identity, _info = app.authenticator.authenticate(request, index.protocol)
    code = VALIDATION_CODES.get(service, "ValidationException")
    prechecked: tuple[bool, ServiceError | None] = (False, None)
    if large:
        op, params, prechecked = app.parser.parse(index, request, code, labels)
    else:
        op, params = parse_request(index, request)
        labels[1] = op.name
        validate_input(op.input_shape, params, code)
    provider = app.providers.get(service)
    handler, blocking = provider.dispatch(op.name) if provider is not None else (None, False)
    if handler is None:
        raise ServiceError("NotImplemented", f"{service}:{op.name} is not supported by Stratum yet", 501)
    ctx = RequestContext(app, request_id, service, op.name, region, identity, request, prechecked=prechecked[0],
                         precheck_error=prechecked[1])
    return ctx, op, params, handler, blocking


def _serialize(ctx: RequestContext, index: ServiceIndex, op: OperationModel, output: Any) -> HttpResponse:
    if not ctx.authorized:
        log.error("%s:%s returned without an authorization decision", ctx.service, op.name)
        raise internal_error()
    return serialize_response(index.model, op, output, ctx.request_id)


def _answer_in_thread(app: AppState, request: HttpRequest, request_id: str, index: ServiceIndex, service: str,
                      region: str, labels: list[str]
                      ) -> HttpResponse | tuple[RequestContext, OperationModel, dict[str, Any], Handler]:
    """The steps of ``handle`` after routing, for a large request, in a worker thread (an error
    message can be as large as the input: it is serialized here too). A coroutine handler is handed
    back admitted, to be awaited on the event loop."""
    try:
        ctx, op, params, handler, _blocking = _admit(app, request, request_id, index, service, region, labels,
                                                     large=service not in OPAQUE_BODIES)
        if inspect.iscoroutinefunction(handler):
            return ctx, op, params, handler
        return _serialize(ctx, index, op, handler(ctx, params))
    except ServiceError as exc:
        return serialize_error(index.model, exc, request_id, request.method)
