"""Lambda steps: invoke a Lambda function (stratum.functions) as the pipeline's role, which needs
lambda:InvokeFunction on it.

As in SageMaker, a running function is not interrupted by StopPipelineExecution: the step ends
when the function returns (or times out), then the execution stops. A server shutdown does kill
it; after the restart the step runs again.

Errors: a function that fails fails the step with "<errorType>: <errorMessage>" of the runtime's
error shape; a command function fails with a non-zero exit, optionally printing {"errorType",
"errorMessage"} on stdout. Error types
"Step.THROTTLING" / "Step.SERVICE_FAULT" (or Lambda's own names for them, e.g.
TooManyRequestsException, ServiceException) are retryable under the step's RetryPolicies; a
Python exception can carry its type in an ``error_type`` attribute.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from stratum.engine.functions import parse_function_arn
from stratum.engine.handlers import StepResult, StepRun
from stratum.functions import invoke, role_identity
from stratum.protocol.errors import ServiceError

MAX_REASON = 1024
_THROTTLING = {"Step.THROTTLING", "ThrottlingException", "TooManyRequestsException", "Throttling",
               "TooManyRequests"}
_SERVICE_FAULT = {"Step.SERVICE_FAULT", "ServiceException", "ServiceFault", "ServiceUnavailable",
                  "ServiceUnavailableException", "InternalServerError", "InternalFailure"}
_OUTPUT_TYPES = ("String", "Integer", "Boolean", "Float")


def retry_class(error_type: str | None) -> str | None:
    if error_type in _THROTTLING:
        return "Step.THROTTLING"
    if error_type in _SERVICE_FAULT:
        return "Step.SERVICE_FAULT"
    if error_type and error_type.startswith(("Step.", "SageMaker.")):
        return error_type
    return None


def _failed(reason: str, error_type: str | None = None, metadata: dict[str, Any] | None = None) -> StepResult:
    return StepResult(status="Failed", failure_reason=reason[:MAX_REASON], error_type=error_type,
                      metadata=metadata or {})


def typed_output(value: Any, output_type: str) -> Any:
    """An output parameter's value as its declared OutputType (String when not declared)."""
    if output_type == "Integer":
        if isinstance(value, bool):
            raise ValueError("a Boolean is not an Integer")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"{value!r} is not an Integer")
            return int(value)
        return int(value)
    if output_type == "Float":
        if isinstance(value, bool):
            raise ValueError("a Boolean is not a Float")
        return float(value)
    if output_type == "Boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"{value!r} is not a Boolean")
    return value if isinstance(value, str) else json.dumps(value)


def output_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def read_outputs(declared: Any, result: Any) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """(properties' OutputParameters, metadata's OutputParameters) from a function's result.

    Raises ValueError with a user-facing reason when the result lacks a declared output.
    """
    if not declared:
        return {}, []
    if not isinstance(result, dict):
        raise ValueError(f"The Lambda function returned {type(result).__name__}, not a JSON object holding the "
                         "step's OutputParameters.")
    typed: dict[str, Any] = {}
    listed: list[dict[str, str]] = []
    for entry in declared:
        name = entry.get("OutputName") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            raise ValueError("Each OutputParameters entry needs an OutputName.")
        output_type = entry.get("OutputType", "String")
        if output_type not in _OUTPUT_TYPES:
            raise ValueError(f"OutputParameter '{name}' has unsupported OutputType '{output_type}'.")
        if name not in result:
            raise ValueError(f"The Lambda function output has no value for OutputParameter '{name}'.")
        try:
            typed[name] = typed_output(result[name], output_type)
        except (TypeError, ValueError):
            raise ValueError(f"OutputParameter '{name}' value {result[name]!r} is not of type {output_type}.") from None
        listed.append({"Name": name, "Value": output_text(result[name])[:1024]})
    return typed, listed


def run_lambda_step(run: StepRun) -> StepResult:
    fields = run.extra.get("step_fields") or {}
    function_arn = fields.get("FunctionArn", run.raw.get("FunctionArn"))
    if not isinstance(function_arn, str) or not function_arn:
        return _failed("Lambda step has no FunctionArn.")
    metadata = {"Lambda": {"Arn": function_arn}}
    target = parse_function_arn(function_arn, run.account_id, run.region)
    if target is None:
        return _failed(f"Invalid Lambda FunctionArn '{function_arn}'.", metadata=metadata)
    account, region, _name = target
    qualified = function_arn if function_arn.startswith("arn:") else (
        f"arn:aws:lambda:{region}:{account}:function:{function_arn}")
    payload = json.dumps(run.arguments, default=str).encode()
    try:
        # As in SageMaker, the step invokes the function as the pipeline's execution role.
        caller = role_identity(run.app, run.role_arn, "SageMaker")
        result = invoke(run.app, qualified, payload, "RequestResponse", caller, region=region)
    except ServiceError as exc:
        reason = f"{exc.code}: {exc.message}"
        if exc.code == "ResourceNotFoundException":
            reason += (" Create it with the Lambda API (the SDK's Lambda helper does when the pipeline is "
                       "upserted) or declare it with `stratum lambda register` / a functions file.")
        return _failed(reason, retry_class(exc.code), metadata)
    shutdown: threading.Event | None = run.extra.get("shutdown")
    if shutdown is not None and shutdown.is_set():  # the server is shutting down: the step runs again
        return StepResult(status="Stopped", failure_reason="Stratum shut down while the function ran.",
                          metadata=metadata)
    try:
        value = json.loads(result.payload) if result.payload else None
    except ValueError:
        value = None
    if result.function_error:
        error_type = value.get("errorType") if isinstance(value, dict) else None
        message = value.get("errorMessage") if isinstance(value, dict) else None
        reason = f"{error_type or 'Error'}: {message or value}"
        return _failed(f"Lambda function {qualified} failed: {reason}", retry_class(error_type), metadata)
    try:
        typed, listed = read_outputs(run.raw.get("OutputParameters"), value)
    except ValueError as exc:
        return _failed(str(exc), metadata=metadata)
    metadata["Lambda"]["OutputParameters"] = listed
    return StepResult(status="Succeeded", properties={"OutputParameters": typed}, metadata=metadata)
