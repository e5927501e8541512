"""Lambda invoke latency, warm and cold, on a real Stratum server subprocess (SQLite), side by
side with running the same handler in a bare ``python -c``.

Figures (milliseconds, client wall time of boto3 ``invoke``):

* ``warm``: invocations of a warm environment (the handler returns its event);
* ``api``: GetFunctionConfiguration of the same function: the same HTTP + SigV4 + authorization
  path without running anything, so ``warm - api`` is what running the function adds;
* ``warm overhead``: ``warm`` minus the handler's own time (measured in-process: microseconds);
* ``cold``: the first invocation after UpdateFunctionConfiguration recycled the environments
  (a new worker process: interpreter start, role session, log stream, the handler's import);
* ``python -c``: ``python -c "import app; app.handler({...}, None)"`` in the task directory: the
  floor a cold start cannot beat.

Usage: python bench/lambda.py [--warm 300] [--cold 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import account_session, free_port, percentile, start_server  # noqa: E402

HANDLER = "def handler(event, context):\n    return event\n"


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 2), "p90": round(percentile(values, 0.9), 2),
            "p99": round(percentile(values, 0.99), 2), "n": len(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm", type=int, default=300)
    parser.add_argument("--cold", type=int, default=20)
    parser.add_argument("--json")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="stratum-bench-lambda-"))
    port = free_port()
    proc = start_server(tmp, port)
    try:
        session = account_session(tmp)
        cfg = Config(retries={"max_attempts": 1})
        url = f"http://127.0.0.1:{port}"
        iam, lam = session.client("iam", endpoint_url=url, config=cfg), session.client("lambda", endpoint_url=url,
                                                                                      config=cfg)
        role = iam.create_role(RoleName="bench-fn", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                    "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("app.py", HANDLER)
        name = f"bench-{uuid.uuid4().hex[:8]}"
        lam.create_function(FunctionName=name, Runtime="python3.11", Role=role, Handler="app.handler",
                            Code={"ZipFile": buffer.getvalue()}, Timeout=30)
        payload = json.dumps({"n": 1}).encode()

        def invoke() -> float:
            began = time.perf_counter()
            out = lam.invoke(FunctionName=name, Payload=payload)
            out["Payload"].read()
            elapsed = (time.perf_counter() - began) * 1000
            assert "FunctionError" not in out, out
            return elapsed

        cold: list[float] = []
        for i in range(args.cold):
            lam.update_function_configuration(FunctionName=name, Description=f"cold {i}")
            cold.append(invoke())
        for _ in range(20):
            invoke()
        warm = [invoke() for _ in range(args.warm)]
        api = []
        for _ in range(args.warm):
            began = time.perf_counter()
            lam.get_function_configuration(FunctionName=name)
            api.append((time.perf_counter() - began) * 1000)

        task = tmp / "bare"
        task.mkdir()
        (task / "app.py").write_text(HANDLER)
        bare = []
        for _ in range(args.cold):
            began = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import app; app.handler({'n': 1}, None)"], cwd=task, check=True)
            bare.append((time.perf_counter() - began) * 1000)
        namespace: dict[str, Any] = {}
        exec(HANDLER, namespace)  # noqa: S102 - the benchmark's own handler
        began = time.perf_counter()
        for _ in range(10000):
            namespace["handler"]({"n": 1}, None)
        handler_ms = (time.perf_counter() - began) / 10000 * 1000

        result = {"warm": summary(warm), "api": summary(api), "cold": summary(cold), "python -c": summary(bare),
                  "handler_ms": round(handler_ms, 5),
                  "warm overhead p50": round(statistics.median(warm) - handler_ms, 2),
                  "run cost p50 (warm - api)": round(statistics.median(warm) - statistics.median(api), 2)}
        print(json.dumps(result, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
