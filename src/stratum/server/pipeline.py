"""The request pipeline: route -> authenticate -> parse + validate -> provider (which authorizes)
-> serialize. Every failure becomes the AWS error the client expects; nothing escapes as a 500 page."""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter

from stratum import ids
from stratum.protocol.errors import ServiceError, internal_error
from stratum.protocol.http import HttpRequest, HttpResponse
from stratum.protocol.parser import parse_request
from stratum.protocol.serializer import serialize_error, serialize_response
from stratum.protocol.service_models import ServiceIndex, service_index
from stratum.protocol.validate import validate_input
from stratum.server.app_state import AppState
from stratum.server.context import RequestContext
from stratum.server.routing import route_service

log = logging.getLogger("stratum.request")

VALIDATION_CODES = {"iam": "ValidationError", "sts": "ValidationError", "s3": "InvalidArgument",
                    "ram": "InvalidParameterException", "organizations": "InvalidInputException"}


async def handle(app: AppState, request: HttpRequest) -> HttpResponse:
    started = perf_counter()
    request_id = ids.request_id()
    index: ServiceIndex | None = None
    service = operation = "-"  # for the request counters, until known
    try:
        service, region = route_service(request, app.settings.region)
        index = service_index(service)
        provider = app.providers.get(service)
        if provider is not None:
            provider.prepare_request(request)
        identity, _info = app.authenticator.authenticate(request, index.protocol)
        op, params = parse_request(index, request)
        operation = op.name
        validate_input(op.input_shape, params, VALIDATION_CODES.get(service, "ValidationException"))
        handler, blocking = provider.dispatch(op.name) if provider is not None else (None, False)
        if handler is None:
            raise ServiceError("NotImplemented", f"{service}:{op.name} is not supported by Stratum yet", 501)
        ctx = RequestContext(app, request_id, service, op.name, region, identity, request)
        if blocking:
            output = await asyncio.to_thread(handler, ctx, params)
        else:
            output = handler(ctx, params)
        if not ctx.authorized:
            log.error("%s:%s returned without an authorization decision", service, op.name)
            raise internal_error()
        response = serialize_response(index.model, op, output, request_id)
    except ServiceError as exc:
        response = serialize_error(index.model if index else None, exc, request_id, request.method)
    except Exception:
        log.exception("unhandled error in request %s %s", request.method, request.raw_path)
        response = serialize_error(index.model if index else None, internal_error(), request_id, request.method)
    app.request_stats.record(service, operation, response.status, perf_counter() - started)
    return response
