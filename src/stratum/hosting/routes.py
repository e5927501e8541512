"""What an invocation needs to reach a model: an endpoint's serving variants, their instances and
each instance's containers' base URLs. The supervisor publishes routes; the runtime API reads
them on every InvokeEndpoint, so reading one is an in-memory lookup."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InstanceRoute:
    """One instance of a variant: every container of the model, each its own model server."""

    instance_id: str
    urls: dict[str, str]  # ContainerHostname -> base URL (http://127.0.0.1:<port>)


@dataclass(frozen=True)
class MultiModelRoute:
    """A variant whose model's container is in Mode MultiModel: TargetModel is a key below
    ``prefix`` (its ModelDataUrl), downloaded as ``role`` into the instance and loaded on demand."""

    prefix: str
    role: str | None
    cache: bool = True  # MultiModelConfig.ModelCacheSetting (Disabled: unloaded after each invocation)
    max_loaded: int = 0  # models kept loaded per container before the least recently used goes (0: no limit)


@dataclass(frozen=True)
class VariantRoute:
    name: str
    weight: float  # CurrentWeight
    containers: tuple[str, ...]  # ContainerHostnames in the model's order (Serial pipes them in this order)
    images: tuple[str, ...]  # the containers' images, same order
    instances: tuple[InstanceRoute, ...]  # the instances answering now (InService)
    multi_model: MultiModelRoute | None = None
    max_concurrency: int = 0  # a serverless variant's MaxConcurrency: invocations in flight at most (0: no bound)


@dataclass(frozen=True)
class EndpointRoute:
    arn: str
    name: str
    account_id: str
    region: str
    status: str  # EndpointStatus
    mode: str  # "Single" (one container), "Direct" or "Serial" (InferenceExecutionConfig)
    variants: tuple[VariantRoute, ...]
    tags: tuple[dict[str, str], ...] = ()
    data_capture: dict[str, Any] | None = None  # the serving config's DataCaptureConfig
    async_config: dict[str, Any] | None = None  # the serving config's AsyncInferenceConfig
    extra: dict[str, Any] = field(default_factory=dict)
    # A blue/green update shifting traffic in steps: the new fleet's variants take this share.
    canary: tuple[VariantRoute, ...] = ()
    canary_fraction: float = 0.0
