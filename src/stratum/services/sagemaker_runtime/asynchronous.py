"""InvokeEndpointAsync: the request is accepted at once (202) and processed in the background by
this server: the input read from S3 (or the inline Body), the invocation made as a synchronous one
would be, and the answer written to ``<S3OutputPath>/<id>.out`` or the failure to
``<S3FailurePath>/<id>-error.out``, both as the endpoint's execution role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stratum.services.sagemaker_runtime import errors


@dataclass(frozen=True)
class Locations:
    output: str
    failure: str | None
    kms_key_id: str | None = None  # OutputConfig.KmsKeyId: the results are written SSE-KMS with it


def locations(config: dict[str, Any] | None, endpoint: str, inference_id: str, extension: str | None,
              filename: str | None) -> Locations:
    output_config = (config or {}).get("OutputConfig") or {}
    output_path = output_config.get("S3OutputPath")
    if not output_path:
        raise errors.validation(f"Endpoint {endpoint} is not configured for asynchronous inference.")
    base = output_path.rstrip("/")
    if extension:
        base = f"{base}/{extension.strip('/')}"
    name = filename or f"{inference_id}.out"
    failure_path = output_config.get("S3FailurePath")
    failure = None
    if failure_path:
        failure_base = failure_path.rstrip("/")
        if extension:
            failure_base = f"{failure_base}/{extension.strip('/')}"
        failure = f"{failure_base}/{inference_id}-error.out"
    return Locations(f"{base}/{name}", failure, output_config.get("KmsKeyId") or None)
