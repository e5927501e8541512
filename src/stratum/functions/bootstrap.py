"""The execution environment of a Python function: ``python bootstrap.py`` (run by path, so it
imports nothing of Stratum and starts fast).

It imports the handler once (the init phase), then serves invocations one at a time over two
pipes (fds in ``_STRATUM_LAMBDA_FDS``): each request is a JSON header frame and a payload frame;
each answer a JSON frame ``{"ok": bool, "body": "<json text>"}`` where a failure's body is the
runtime's error shape {"errorMessage", "errorType", "stackTrace"}. The function's prints go to
this process's stdout/stderr, which the runtime points at the log stream.
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import sys
import time
import traceback
from typing import Any, BinaryIO

_LENGTH = struct.Struct(">I")


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    """``size`` bytes from the pipe (a raw pipe read returns what has arrived so far), or None at
    its end."""
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: BinaryIO) -> bytes | None:
    head = _read_exact(stream, 4)
    if head is None:
        return None
    (size,) = _LENGTH.unpack(head)
    return _read_exact(stream, size)


def write_frame(stream: BinaryIO, data: bytes) -> None:
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


class LambdaContext:
    """The context object of the Python runtime (awslambdaric's LambdaContext)."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = request.get("arn", "")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.aws_request_id = request.get("id", "")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = request.get("client_context")
        self.tenant_id = None
        self._deadline_ms = int(request.get("deadline_ms", 0))

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def log(self, message: str) -> None:
        sys.stdout.write(message)


def error_shape(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    frames = traceback.extract_tb(exc.__traceback__)
    # A function may name its error's class for pipeline RetryPolicies (e.g. "Step.THROTTLING").
    declared = getattr(exc, "error_type", None)
    error_type = error_type or (declared if isinstance(declared, str) else type(exc).__name__)
    return {"errorMessage": str(exc), "errorType": error_type,
            "requestId": "", "stackTrace": traceback.format_list(frames)}


def load_handler() -> tuple[Any, dict[str, Any] | None]:
    handler = os.environ.get("_HANDLER", "")
    module_name, _, func_name = handler.rpartition(".")
    if not module_name:
        return None, {"errorMessage": f"Bad handler '{handler}': not enough values to unpack (expected 2, got 1)",
                      "errorType": "Runtime.MalformedHandlerName", "requestId": "", "stackTrace": []}
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        return None, {"errorMessage": f"Unable to import module '{module_name}': {exc}",
                      "errorType": "Runtime.ImportModuleError", "requestId": "", "stackTrace": []}
    except Exception as exc:  # the module's own code failed at import
        return None, error_shape(exc, "Runtime.UserCodeSyntaxError" if isinstance(exc, SyntaxError) else None)
    func = getattr(module, func_name, None)
    if func is None:
        return None, {"errorMessage": f"Handler '{func_name}' missing on module '{module_name}'",
                      "errorType": "Runtime.HandlerNotFound", "requestId": "", "stackTrace": []}
    return func, None


def main() -> int:
    rfd, wfd = (int(x) for x in os.environ.pop("_STRATUM_LAMBDA_FDS").split(","))
    requests = os.fdopen(rfd, "rb", buffering=0)
    answers = os.fdopen(wfd, "wb", buffering=0)
    task_root = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
    if task_root not in sys.path:
        sys.path.insert(0, task_root)
    handler, init_error = load_handler()
    if init_error is not None:
        print(f"[ERROR] {init_error['errorType']}: {init_error['errorMessage']}", file=sys.stderr, flush=True)
    write_frame(answers, b"ready")
    while True:
        header = read_frame(requests)
        payload = read_frame(requests)
        if header is None or payload is None:
            return 0
        request = json.loads(header)
        ok, body = invoke(handler, init_error, request, payload)
        sys.stdout.flush()
        sys.stderr.flush()
        write_frame(answers, json.dumps({"ok": ok, "body": body}).encode())


def invoke(handler: Any, init_error: dict[str, Any] | None, request: dict[str, Any], payload: bytes
           ) -> tuple[bool, str]:
    if init_error is not None:
        return False, json.dumps({**init_error, "requestId": request.get("id", "")})
    try:
        event = json.loads(payload) if payload else {}
        result = handler(event, LambdaContext(request))
    except Exception as exc:
        shape = error_shape(exc)
        shape["requestId"] = request.get("id", "")
        print(f"[ERROR] {shape['errorType']}: {shape['errorMessage']}\nTraceback (most recent call last):\n"
              + "".join(shape["stackTrace"]), file=sys.stderr, flush=True)
        return False, json.dumps(shape)
    try:
        return True, json.dumps(result)
    except (TypeError, ValueError) as exc:
        return False, json.dumps({"errorMessage": f"Unable to marshal response: {exc}",
                                  "errorType": "Runtime.MarshalError", "requestId": request.get("id", ""),
                                  "stackTrace": []})


if __name__ == "__main__":
    sys.exit(main())
