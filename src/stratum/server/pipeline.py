"""The request pipeline: route -> authenticate -> parse + validate -> provider (which authorizes)
-> serialize. Every failure becomes the AWS error the client expects; nothing escapes as a 500 page."""

from __future__ import annotations

import asyncio
import logging

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
from stratum.server.routing import UnservedService, route_service
from stratum.server.streaming import body_too_large, receive_body, run_streamed

log = logging.getLogger("stratum.request")

VALIDATION_CODES = {"iam": "ValidationError", "sts": "ValidationError", "s3": "InvalidArgument",
                    "ram": "InvalidParameterException", "organizations": "InvalidInputException"}


async def handle(app: AppState, request: HttpRequest) -> HttpResponse:
    request_id = ids.request_id()
    index: ServiceIndex | None = None
    try:
        if request.stream is not None and not await receive_body(app, request):
            index = service_index(route_service(request, app.settings.region)[0])
            raise body_too_large(index.protocol)
        service, region = route_service(request, app.settings.region)
        index = service_index(service)
        provider = app.providers.get(service)
        if provider is not None:
            provider.prepare_request(request)
        identity, _info = app.authenticator.authenticate(request, index.protocol)
        op, params = parse_request(index, request)
        validate_input(op.input_shape, params, VALIDATION_CODES.get(service, "ValidationException"))
        handler, blocking = provider.dispatch(op.name) if provider is not None else (None, False)
        if handler is None:
            raise ServiceError("NotImplemented", f"{service}:{op.name} is not supported by Stratum yet", 501)
        ctx = RequestContext(app, request_id, service, op.name, region, identity, request)
        if blocking and request.stream is not None:
            output = await run_streamed(handler, ctx, params)
        elif blocking:
            output = await asyncio.to_thread(handler, ctx, params)
        else:
            output = handler(ctx, params)
        if not ctx.authorized:
            log.error("%s:%s returned without an authorization decision", service, op.name)
            raise internal_error()
        return serialize_response(index.model, op, output, request_id)
    except UnservedService as exc:  # answered in that service's protocol, not in one Stratum serves
        return serialize_error(exc.service_model, exc, request_id, request.method)
    except ServiceError as exc:
        return serialize_error(index.model if index else None, exc, request_id, request.method)
    except ClientDisconnected:
        raise  # nobody to answer
    except Exception:
        log.exception("unhandled error in request %s %s", request.method, request.raw_path)
        return serialize_error(index.model if index else None, internal_error(), request_id, request.method)
