"""SageMaker Runtime: InvokeEndpoint and InvokeEndpointAsync.

An invocation finds its endpoint's route (``app.hosting.route``, an in-memory lookup the hosting
supervisor keeps current), is authorized as ``sagemaker:InvokeEndpoint`` on the endpoint, picks a
variant and an instance, and is forwarded to the instance's model server(s) over pooled keep-alive
connections without leaving the event loop. Metrics and captured data are queued in memory and
published by background threads, never on the request's path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

from stratum.hosting.routes import EndpointRoute, InstanceRoute, VariantRoute
from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpRequest, HttpResponse
from stratum.server.app_state import AppState
from stratum.server.context import Provider, RequestContext
from stratum.services.sagemaker.tags import resource_tag_context
from stratum.services.sagemaker_runtime import asynchronous, capture, errors, eventstream
from stratum.services.sagemaker_runtime.client import ContainerUnreachable, ModelClient, post_streamed
from stratum.services.sagemaker_runtime.errors import timed_out_message
from stratum.services.sagemaker_runtime.invocation import (
    CUSTOM_ATTRIBUTES,
    MODEL_TIMEOUT_SECONDS,
    Answer,
    ModelFailure,
    Request,
    container_headers,
    invoke,
)
from stratum.services.sagemaker_runtime.metrics import InvocationMetrics
from stratum.services.sagemaker_runtime.multimodel import ModelCache
from stratum.services.sagemaker_runtime.roles import RoleS3, execution_role
from stratum.services.sagemaker_runtime.selection import RoundRobin, choose_variant, containers_for

log = logging.getLogger("stratum.sagemaker_runtime")

ACTION = "sagemaker:InvokeEndpoint"
ASYNC_ACTION = "sagemaker:InvokeEndpointAsync"
# Endpoint states in which invocations are served (an endpoint being updated keeps serving).
SERVING = frozenset({"InService", "Updating", "SystemUpdating", "RollingBack", "UpdateRollbackFailed"})
# How long an asynchronous invocation may take by default (AWS: InvocationTimeoutSeconds, 15 min).
ASYNC_TIMEOUT_SECONDS = 900


def _refuse_multi_model(route: EndpointRoute, variant: VariantRoute, operation: str) -> None:
    if variant.multi_model is not None:
        raise errors.validation(f"Endpoint {route.name} is a multi-model endpoint: {operation} does not support "
                                "multi-model endpoints (use InvokeEndpoint with a TargetModel).")


def endpoint_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:endpoint/{name.lower()}"


class SageMakerRuntimeProvider(Provider):
    service = "sagemaker-runtime"

    def __init__(self, app: AppState) -> None:
        super().__init__(app)
        self.client = ModelClient()
        self.instances = RoundRobin()
        self.model_timeout = MODEL_TIMEOUT_SECONDS
        self.metrics = InvocationMetrics(app.db)
        self.s3 = RoleS3(app.db, app.settings.endpoint_url)
        self.capture = capture.CaptureBuffer(self._write_capture)
        self.models = ModelCache(self.client, self.s3, app.settings.data_dir, self._loaded_models)
        self.metrics.instance_serves = self._instance_serves
        app.add_background(self.metrics)
        app.add_background(self.capture)
        app.telemetry_sources.append(self.metrics.prometheus)
        self._background: set[asyncio.Task[None]] = set()
        # Invocations in flight per (endpoint ARN, variant) of serverless variants (MaxConcurrency).
        self._in_flight: dict[tuple[str, str], int] = {}

    def prepare_request(self, request: HttpRequest) -> None:
        # AWS's front end refuses an InvokeEndpoint body over 6 MB before anything else.
        if len(request.body) > errors.MAX_PAYLOAD_BYTES and request.path.endswith("/invocations"):
            raise errors.payload_too_large()

    # ------------------------------------------------------------------------------ endpoints
    def _route(self, ctx: RequestContext, name: str, action: str, context: dict[str, Any]) -> EndpointRoute:
        """The endpoint's route, authorized. Endpoints have no resource policies: a caller reaches
        only its own account's endpoints (another account's through a role assumed there)."""
        hosting = getattr(self.app, "hosting", None)
        route = hosting.route(ctx.account_id, ctx.region, name) if hosting is not None else None
        arn = route.arn if route is not None else endpoint_arn(ctx.region, ctx.account_id, name)
        tags = resource_tag_context(list(route.tags)) if route is not None else None
        ctx.authorize(action, arn, resource_account=ctx.account_id, context={**(tags or {}), **context})
        if route is None:
            raise errors.endpoint_not_found(name, ctx.account_id)
        if route.status not in SERVING:
            raise errors.validation(f"Endpoint {name} of account {ctx.account_id} is not in service "
                                    f"(its status is {route.status}).")
        return route

    @staticmethod
    def _refuse_unsupported(route: EndpointRoute, params: dict[str, Any]) -> None:
        if params.get("EnableExplanations") is not None:
            raise errors.validation(f"EnableExplanations is only supported for endpoints with a ClarifyExplainerConfig; "
                                    f"endpoint {route.name} has none (Stratum does not serve online explainability).")
        if params.get("InferenceComponentName") is not None:
            raise errors.validation(f"Endpoint {route.name} has no inference components.")
        if params.get("SessionId") is not None:
            raise errors.validation(f"Endpoint {route.name} is not configured for stateful sessions.")

    # ------------------------------------------------------------------------------ InvokeEndpoint
    async def invoke_endpoint(self, ctx: RequestContext, params: dict[str, Any]) -> HttpResponse:
        started = ctx.http.received_at  # OverheadLatency counts authentication and parsing too
        name = params["EndpointName"]
        context: dict[str, Any] = {}
        if params.get("TargetContainerHostname") is not None:
            context["sagemaker:TargetContainerHostname"] = params["TargetContainerHostname"]
        if params.get("TargetModel") is not None:
            context["sagemaker:TargetModel"] = params["TargetModel"]
        route = self._route(ctx, name, ACTION, context)
        self._refuse_unsupported(route, params)
        variant = choose_variant(route, params.get("TargetVariant"))
        target = params.get("TargetModel")
        if target is not None and variant.multi_model is None:
            raise errors.validation(f"Endpoint {route.name} is not a multi-model endpoint and does not support "
                                    "target model header.")
        if target is None and variant.multi_model is not None:
            raise errors.validation(f"Endpoint {route.name} is a multi-model endpoint: specify the TargetModel "
                                    "(the X-Amzn-SageMaker-Target-Model header) to invoke.")
        containers = containers_for(route, variant, params.get("TargetContainerHostname"))
        request = Request(params.get("Body") or b"", params.get("ContentType"), params.get("Accept"),
                          params.get("CustomAttributes"))
        with self._slot(route, variant):
            answer = await self._invoke(route, variant, containers, request, started,
                                        inference_id=params.get("InferenceId"), target_model=target)
        # The output shape is a payload and three headers: answered as HTTP directly, not walked
        # member by member (the container's header values came through an HTTP parser already).
        headers = {"x-Amzn-Invoked-Production-Variant": variant.name}
        if answer.content_type:
            headers["Content-Type"] = answer.content_type
        if answer.custom_attributes:
            headers[CUSTOM_ATTRIBUTES] = answer.custom_attributes
        return HttpResponse(200, headers, answer.body)

    # ------------------------------------------------------------------ InvokeEndpointWithResponseStream
    async def invoke_endpoint_with_response_stream(self, ctx: RequestContext, params: dict[str, Any]) -> HttpResponse:
        """The container's answer as it comes: each piece it sends (chunked transfer encoding, as
        a streaming container answers /invocations) is a PayloadPart event of the response's event
        stream. A container that fails before answering is a ModelError, as for InvokeEndpoint;
        one that breaks off or stalls mid-answer ends the stream with a ModelStreamError event."""
        started = ctx.http.received_at
        name = params["EndpointName"]
        context: dict[str, Any] = {}
        if params.get("TargetContainerHostname") is not None:
            context["sagemaker:TargetContainerHostname"] = params["TargetContainerHostname"]
        route = self._route(ctx, name, ACTION, context)
        self._refuse_unsupported(route, params)
        variant = choose_variant(route, params.get("TargetVariant"))
        _refuse_multi_model(route, variant, "InvokeEndpointWithResponseStream")
        containers = containers_for(route, variant, params.get("TargetContainerHostname"))
        if len(containers) != 1:
            raise errors.validation(f"Endpoint {route.name} is an inference pipeline: its response cannot be "
                                    "streamed (use InvokeEndpoint).")
        container = containers[0]
        instance = self.instances.instance(route, variant)
        url = instance.urls.get(container)
        timeout = self.model_timeout
        headers = {k: v for k, v in (("Content-Type", params.get("ContentType")), ("Accept", params.get("Accept")),
                                     (CUSTOM_ATTRIBUTES, params.get("CustomAttributes"))) if v}
        waited = perf_counter()
        try:
            if url is None:
                raise ContainerUnreachable(f"Container {container} is not running.")
            reply = await post_streamed(url, "/invocations", params.get("Body") or b"", headers, timeout)
            if not 200 <= reply.status < 300:
                text = (await reply.read(timeout)).decode("utf-8", errors="replace")
                raise ModelFailure(container, reply.status, text, perf_counter() - waited)
        except (ContainerUnreachable, TimeoutError, asyncio.IncompleteReadError) as exc:
            timed_out = isinstance(exc, TimeoutError)
            failure = ModelFailure(container, 0, "" if timed_out else f"Could not reach container {container}: {exc}",
                                   perf_counter() - waited)
            failure.timed_out = timed_out
            raise self._model_error(route, variant, failure) from None
        except ModelFailure as failure:
            raise self._model_error(route, variant, failure) from None
        model_seconds = perf_counter() - waited
        self.metrics.record(route.account_id, route.region, route.name, variant.name, status=200, model_error=False,
                            model_us=model_seconds * 1e6,
                            overhead_us=max(perf_counter() - started - model_seconds, 0.0) * 1e6)

        async def events() -> AsyncIterator[bytes]:
            try:
                async for piece in reply.chunks(timeout):
                    if piece:
                        yield eventstream.payload_part(piece)
            except TimeoutError:
                yield eventstream.model_stream_error("ModelInvocationTimeExceeded", timed_out_message(container))
            except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
                yield eventstream.model_stream_error("StreamBroken", f"The stream from {container} broke: {exc}")

        out = {"Content-Type": "application/vnd.amazon.eventstream",
               "x-Amzn-Invoked-Production-Variant": variant.name}
        if reply.headers.get("content-type"):
            out["X-Amzn-SageMaker-Content-Type"] = reply.headers["content-type"]
        if reply.headers.get(CUSTOM_ATTRIBUTES.lower()):
            out[CUSTOM_ATTRIBUTES] = reply.headers[CUSTOM_ATTRIBUTES.lower()]
        return HttpResponse(200, out, events())

    @contextlib.contextmanager
    def _slot(self, route: EndpointRoute, variant: VariantRoute) -> Iterator[None]:
        """One of a serverless variant's MaxConcurrency invocations; ThrottlingException when
        they are all taken (on the event loop: the count needs no lock)."""
        if not variant.max_concurrency:
            yield
            return
        key = (route.arn, variant.name)
        if self._in_flight.get(key, 0) >= variant.max_concurrency:
            raise errors.throttled(route.name, variant.name, variant.max_concurrency)
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        try:
            yield
        finally:
            left = self._in_flight[key] - 1
            if left:
                self._in_flight[key] = left
            else:
                del self._in_flight[key]

    def _model_error(self, route: EndpointRoute, variant: VariantRoute, failure: ModelFailure) -> ServiceError:
        self.metrics.record(route.account_id, route.region, route.name, variant.name, status=failure.status,
                            model_error=True, model_us=None, overhead_us=None)
        message = timed_out_message(failure.container) if failure.timed_out else failure.message
        return errors.model_error(route.region, route.account_id, route.name, failure.container, failure.status,
                                  message)

    async def _invoke(self, route: EndpointRoute, variant: VariantRoute, containers: tuple[str, ...],
                      request: Request, started: float, *, inference_id: str | None,
                      timeout: float | None = None, target_model: str | None = None) -> Answer:
        """Forward to an instance; record the metrics and the capture; a container's failure
        becomes ModelError."""
        instance = self.instances.instance(route, variant)
        try:
            if target_model is not None:
                answer = await self._invoke_model(route, variant, instance, containers[0], target_model, request,
                                                  timeout or self.model_timeout)
            else:
                answer = await invoke(self.client, instance, containers, request, timeout or self.model_timeout)
        except ModelFailure as failure:
            raise self._model_error(route, variant, failure) from None
        total = perf_counter() - started
        self.metrics.record(route.account_id, route.region, route.name, variant.name, status=200, model_error=False,
                            model_us=answer.model_seconds * 1e6,
                            overhead_us=max(total - answer.model_seconds, 0.0) * 1e6)
        if capture.sampled(route.data_capture):
            self._capture(route, variant.name, request, answer, inference_id)
        return answer

    async def _invoke_model(self, route: EndpointRoute, variant: VariantRoute, instance: InstanceRoute,
                            container: str, target: str, request: Request, timeout: float) -> Answer:
        """A multi-model endpoint's invocation of ``target`` (loaded first when it is not)."""
        if container not in instance.urls:
            raise ModelFailure(container, 0, f"Container {container} is not running.", 0.0)
        headers = container_headers(request.content_type, request.accept, request.custom_attributes)
        status, reply_headers, body, seconds, loading = await self.models.invoke(
            route, variant, instance, container, target, request.body, headers, timeout)
        self.metrics.record_loading(route.account_id, route.region, route.name, variant.name, loading)
        if not 200 <= status < 300:
            raise ModelFailure(container, status, body.decode("utf-8", errors="replace"), seconds)
        return Answer(body, reply_headers.get("content-type"), reply_headers.get(CUSTOM_ATTRIBUTES.lower()), seconds)

    def _instance_serves(self, account: str, region: str, endpoint: str, instance_id: str) -> bool:
        hosting = getattr(self.app, "hosting", None)
        route = hosting.route(account, region, endpoint) if hosting is not None else None
        return route is not None and any(i.instance_id == instance_id for v in route.variants for i in v.instances)

    def _loaded_models(self, route: EndpointRoute, variant: VariantRoute, instance_id: str, count: int) -> None:
        self.metrics.set_loaded_models(route.account_id, route.region, route.name, variant.name, instance_id, count)

    def _capture(self, route: EndpointRoute, variant: str, request: Request, answer: Answer,
                 inference_id: str | None) -> None:
        config = route.data_capture or {}
        if not config.get("DestinationS3Uri"):
            return
        at = datetime.now(UTC)
        line = capture.record(config, request_body=request.body, request_type=request.content_type,
                              response_body=answer.body, response_type=answer.content_type, at=at,
                              inference_id=inference_id)
        self.capture.add(route, variant, at, line)

    def _write_capture(self, route: EndpointRoute, variant: str, uri: str, data: bytes) -> None:
        """In the capture thread: the file, as the variant's execution role."""
        role = execution_role(self.app.db, route, variant)
        if role is None:
            raise RuntimeError(f"endpoint {route.name} variant {variant} has no execution role")
        self._write_object(role, route.region, uri, data, kms_key_id=(route.data_capture or {}).get("KmsKeyId"))

    def _write_object(self, role: str, region: str, uri: str, data: bytes, content_type: str | None = None,
                      kms_key_id: str | None = None) -> None:
        self.s3.client(role, region, kms_key_id or None).put_bytes(data, uri, content_type)

    # ------------------------------------------------------------------------------ InvokeEndpointAsync
    async def invoke_endpoint_async(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        route = self._route(ctx, name, ASYNC_ACTION, {})
        input_location, body = params.get("InputLocation"), params.get("Body")
        if input_location is not None and body is not None:
            raise errors.validation("InputLocation and Body are mutually exclusive: specify only one.")
        if input_location is None and body is None:
            raise errors.validation("Either InputLocation or Body must be specified.")
        if input_location is not None and not input_location.startswith("s3://"):
            raise errors.validation(f"InputLocation {input_location} is not an S3 URI.")
        if not route.async_config:
            raise errors.validation(f"Endpoint {name} is not configured for asynchronous inference.")
        inference_id = params.get("InferenceId") or str(uuid.uuid4())
        where = asynchronous.locations(route.async_config, name, inference_id, params.get("S3OutputPathExtension"),
                                       params.get("Filename"))
        variant = choose_variant(route, None)
        _refuse_multi_model(route, variant, "InvokeEndpointAsync")
        containers = containers_for(route, variant, None)
        timeout = float(params.get("InvocationTimeoutSeconds") or ASYNC_TIMEOUT_SECONDS)
        task = asyncio.get_running_loop().create_task(self._run_async(
            route, variant, containers, input_location, body, params, where, inference_id, timeout))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        output = {"InferenceId": inference_id, "OutputLocation": where.output}
        if where.failure:
            output["FailureLocation"] = where.failure
        return output

    async def _run_async(self, route: EndpointRoute, variant: VariantRoute, containers: tuple[str, ...],
                         input_location: str | None, body: bytes | None, params: dict[str, Any],
                         where: asynchronous.Locations, inference_id: str, timeout: float) -> None:
        role = await asyncio.to_thread(execution_role, self.app.db, route, variant.name)
        if role is None:
            log.warning("asynchronous invocation %s of %s dropped: the variant has no execution role",
                        inference_id, route.name)
            return
        try:
            if input_location is not None:
                data = await asyncio.to_thread(lambda: self.s3.client(role, route.region).get_bytes(input_location))
            else:
                data = body or b""
            request = Request(data, params.get("ContentType"), params.get("Accept"), params.get("CustomAttributes"))
            answer = await self._invoke(route, variant, containers, request, perf_counter(),
                                        inference_id=inference_id, timeout=timeout)
            await asyncio.to_thread(self._write_object, role, route.region, where.output, answer.body,
                                    answer.content_type, where.kms_key_id)
        except Exception as exc:  # ServiceError (ModelError...), S3 refusals (JobDataError)
            message = exc.message if isinstance(exc, ServiceError) else str(exc)
            log.info("asynchronous invocation %s of %s failed: %s", inference_id, route.name, message)
            if where.failure:
                try:
                    await asyncio.to_thread(self._write_object, role, route.region, where.failure,
                                            message.encode(), "text/plain", where.kms_key_id)
                except Exception as write_exc:
                    log.warning("writing the failure of %s to %s failed: %s", inference_id, where.failure, write_exc)
