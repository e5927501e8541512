"""Lambda steps: invoke a locally registered function (see stratum.engine.functions).

As in SageMaker, a running function is not interrupted by StopPipelineExecution: the step ends
when the function returns (or times out), then the execution stops. A server shutdown does kill
it; after the restart the step runs again.

Errors: a Python handler that raises fails the step with "<ErrorType>: <message>"; a command fails
with a non-zero exit, optionally printing {"errorType", "errorMessage"} on stdout. Error types
"Step.THROTTLING" / "Step.SERVICE_FAULT" (or Lambda's own names for them, e.g.
TooManyRequestsException, ServiceException) are retryable under the step's RetryPolicies; a
Python exception can carry its type in an ``error_type`` attribute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from stratum.engine.functions import FunctionSpec, get_function, parse_function_arn
from stratum.engine.handlers import StepResult, StepRun

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
    with run.app.db.read() as conn:
        spec = get_function(conn, *target)
    if spec is None:
        return _failed(f"ResourceNotFoundException: Function not found: {function_arn}. Stratum runs Lambda steps "
                       "with locally registered functions: register it with `stratum lambda register` or a "
                       "functions file (STRATUM_FUNCTIONS_FILE).", metadata=metadata)
    shutdown: threading.Event | None = run.extra.get("shutdown")
    outcome = invoke(spec, run.arguments, run, shutdown)
    if outcome is None:  # the server is shutting down: the step runs again after the restart
        return StepResult(status="Stopped", failure_reason="Stratum shut down while the function ran.",
                          metadata=metadata)
    ok, result, timed_out = outcome
    if timed_out:
        return _failed(f"Lambda function {spec.arn} timed out after {spec.timeout_seconds} seconds.",
                       metadata=metadata)
    if not ok:
        error_type = result.get("errorType") if isinstance(result, dict) else None
        message = result.get("errorMessage") if isinstance(result, dict) else None
        reason = f"{error_type or 'Error'}: {message or result}" if isinstance(result, dict) else str(result)
        return _failed(f"Lambda function {spec.arn} failed: {reason}", retry_class(error_type), metadata)
    try:
        typed, listed = read_outputs(run.raw.get("OutputParameters"), result)
    except ValueError as exc:
        return _failed(str(exc), metadata=metadata)
    metadata["Lambda"]["OutputParameters"] = listed
    return StepResult(status="Succeeded", properties={"OutputParameters": typed}, metadata=metadata)


def _environment(spec: FunctionSpec, run: StepRun) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STRATUM_"))}
    settings = run.app.settings
    env.update({
        "AWS_REGION": spec.region, "AWS_DEFAULT_REGION": spec.region, "AWS_ENDPOINT_URL": settings.endpoint_url,
        "AWS_LAMBDA_FUNCTION_NAME": spec.name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_seconds), "STRATUM_LAMBDA_FUNCTION_ARN": spec.arn,
        "STRATUM_LAMBDA_TIMEOUT": str(spec.timeout_seconds),
    })
    if spec.handler is not None:
        paths = [p for p in (spec.code_path, env.get("PYTHONPATH")) if p]
        if paths:
            env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(spec.environment)
    return env


def invoke(spec: FunctionSpec, event: Any, run: StepRun, shutdown: threading.Event | None
           ) -> tuple[bool, Any, bool] | None:
    """Run the function once: (succeeded, result or error document, timed out); None on shutdown."""
    if spec.handler is not None:
        argv = [sys.executable, "-m", "stratum.engine.lambda_runner", spec.handler]
    else:
        argv = list(spec.command or [])
    payload = json.dumps(event, default=str).encode()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                    env=_environment(spec, run), cwd=spec.code_path or None,
                                    start_new_session=True)
        except OSError as exc:
            return False, {"errorType": "InvalidFunction", "errorMessage": f"cannot start {argv[0]}: {exc}"}, False
        try:
            assert proc.stdin is not None
            proc.stdin.write(payload)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        deadline = time.monotonic() + spec.timeout_seconds
        while True:
            try:
                code = proc.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                if shutdown is not None and shutdown.is_set():
                    _kill(proc)
                    return None
                if time.monotonic() > deadline:
                    _kill(proc)
                    return False, None, True
        out.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    try:
        result = json.loads(stdout) if stdout.strip() else None
    except ValueError:
        result = None
        if code == 0:
            return False, {"errorType": "InvalidResult",
                           "errorMessage": f"the function's output is not JSON: {stdout[:200]!r}"}, False
    if code != 0:
        if not (isinstance(result, dict) and "errorMessage" in result):
            tail = stderr.strip().splitlines()[-1:] if stderr.strip() else []
            result = {"errorType": "Unhandled",
                      "errorMessage": f"exit status {code}" + (f": {tail[0][:300]}" if tail else "")}
        return False, result, False
    return True, result, False


def _kill(proc: subprocess.Popen[bytes]) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()
