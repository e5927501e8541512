"""Runs one local Lambda function invocation: ``python -m stratum.engine.lambda_runner module:function``.

The event arrives as JSON on stdin; the function's return value (or its error, as Lambda reports
it: {"errorType", "errorMessage"}) is written as one JSON document to the original stdout, while
anything the function prints goes to stderr. Kept free of Stratum imports so it starts fast.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import uuid
from typing import Any


class LambdaContext:
    """The attributes of the AWS Lambda Python context object that functions commonly read."""

    def __init__(self, timeout_seconds: float) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = "$LATEST"
        self.invoked_function_arn = os.environ.get("STRATUM_LAMBDA_FUNCTION_ARN", "")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = self.aws_request_id
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _error(exc: BaseException) -> dict[str, Any]:
    # A function may say which retryable class its error is in (e.g. "Step.THROTTLING").
    error_type = getattr(exc, "error_type", None)
    return {"errorType": error_type if isinstance(error_type, str) else type(exc).__name__,
            "errorMessage": str(exc)}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or ":" not in argv[1]:
        print("usage: python -m stratum.engine.lambda_runner package.module:function", file=sys.stderr)
        return 2
    out = sys.stdout
    sys.stdout = sys.stderr  # the function's prints must not corrupt the result
    module_name, _, func_name = argv[1].partition(":")
    try:
        event = json.loads(sys.stdin.read() or "null")
        handler = getattr(importlib.import_module(module_name), func_name)
        result = handler(event, LambdaContext(float(os.environ.get("STRATUM_LAMBDA_TIMEOUT", "120"))))
        payload, code = json.dumps(result, default=str), 0
    except Exception as exc:  # the function's failure is the invocation's result
        payload, code = json.dumps(_error(exc)), 1
    out.write(payload)
    out.flush()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
