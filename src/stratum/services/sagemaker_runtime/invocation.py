"""One invocation's trip through an instance's containers: one container (Single, Direct) or each
in turn with one's answer as the next one's input (Serial: an inference pipeline)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from time import perf_counter

from stratum.hosting.routes import InstanceRoute
from stratum.services.sagemaker_runtime.client import ContainerUnreachable, ModelClient

# A container must answer /invocations within this long (AWS: 60 seconds).
MODEL_TIMEOUT_SECONDS = 60.0
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


@dataclass
class Request:
    body: bytes
    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = None


@dataclass
class Answer:
    body: bytes
    content_type: str | None
    custom_attributes: str | None
    model_seconds: float  # time spent waiting for the containers


class ModelFailure(Exception):
    """A container answered non-2xx (``status``), or not at all (status 0)."""

    def __init__(self, container: str, status: int, message: str, model_seconds: float) -> None:
        super().__init__(message)
        self.container = container
        self.status = status
        self.message = message
        self.model_seconds = model_seconds
        self.timed_out = False


def container_headers(content_type: str | None, accept: str | None, custom_attributes: str | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if content_type:
        headers["Content-Type"] = content_type
    if accept:
        headers["Accept"] = accept
    if custom_attributes:
        headers[CUSTOM_ATTRIBUTES] = custom_attributes
    return headers


async def invoke(client: ModelClient, instance: InstanceRoute, containers: tuple[str, ...], request: Request,
                 timeout: float = MODEL_TIMEOUT_SECONDS) -> Answer:
    """Send ``request`` through ``containers`` of ``instance``. In a pipeline the Content-Type of each
    answer is the next request's, and the caller's Accept goes to the last container only."""
    body, content_type, attributes = request.body, request.content_type, request.custom_attributes
    spent = 0.0
    last = len(containers) - 1
    for i, name in enumerate(containers):
        url = instance.urls.get(name)
        if url is None:
            raise ModelFailure(name, 0, f"Container {name} is not running.", spent)
        headers = container_headers(content_type, request.accept if i == last else None, attributes)
        started = perf_counter()
        try:
            reply = await client.post(url, "/invocations", body, headers, timeout)
        except TimeoutError:
            failure = ModelFailure(name, 0, "", spent + perf_counter() - started)
            failure.timed_out = True
            raise failure from None
        except (ContainerUnreachable, asyncio.IncompleteReadError) as exc:
            raise ModelFailure(name, 0, f"Could not reach container {name}: {exc}",
                               spent + perf_counter() - started) from None
        spent += perf_counter() - started
        if not 200 <= reply.status < 300:
            raise ModelFailure(name, reply.status, reply.body.decode("utf-8", errors="replace"), spent)
        body = reply.body
        content_type = reply.headers.get("content-type")
        attributes = reply.headers.get(CUSTOM_ATTRIBUTES.lower(), attributes if i < last else None)
    return Answer(body, content_type, attributes, spent)
