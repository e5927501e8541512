"""Running invocations: the warm environments of this server, the role credentials and
environment variables a function sees, its log lines, and the timeout."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stratum.functions import logs
from stratum.functions.environments import Environment, EnvironmentKey, Outcome, Pool
from stratum.protocol.errors import ServiceError

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

log = logging.getLogger("stratum.functions")
LAMBDA_SERVICE = "lambda.amazonaws.com"
ROLE_ERROR = "The role defined for the function cannot be assumed by Lambda."
# Extra configuration keys Stratum keeps in a version's config and never shows through the API.
COMMAND_KEY = "StratumCommand"
# The function's layers, as the digests of their archives in order (the Layers member shows ARNs).
LAYER_CODE_KEY = "StratumLayerCode"


@dataclass
class InvokeResult:
    status_code: int  # 200 (RequestResponse), 202 (Event), 204 (DryRun)
    payload: bytes = b""
    function_error: str | None = None  # "Unhandled" when the function failed
    log_result: str | None = None  # base64 of the last 4 KB of log (LogType Tail)
    executed_version: str | None = None
    request_id: str = ""


@dataclass(frozen=True)
class Target:
    """What an invocation runs: one stored version of a function, as invoked."""

    account_id: str
    region: str
    name: str
    version: str  # "$LATEST" or a number
    config: dict[str, Any]
    code_sha256: str
    invoked_arn: str


class Runtime:
    """One per server: its warm environments (and, in eventqueue, its Event invocations)."""

    name = "lambda runtime"

    def __init__(self, app: AppState) -> None:
        self.app = app
        self.data_dir = Path(app.settings.data_dir)
        self.pool = Pool(idle_seconds=float(os.environ.get("STRATUM_LAMBDA_IDLE_SECONDS", "300")),
                         max_age_seconds=float(os.environ.get("STRATUM_LAMBDA_MAX_AGE_SECONDS", "2700")))
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        from stratum.functions.eventqueue import EventQueue

        self.events = EventQueue(self)

    # ---------------------------------------------------------------------------- background
    def start(self) -> None:
        self._stop.clear()
        self._reaper = threading.Thread(target=self._reap, name="stratum-lambda-reaper", daemon=True)
        self._reaper.start()
        self.events.start()

    def stop(self) -> None:
        self._stop.set()
        self.events.stop()
        self.pool.close()

    def _reap(self) -> None:
        while not self._stop.wait(min(5.0, self.pool.idle_seconds / 2)):
            try:
                self.pool.reap()
            except Exception:
                log.exception("recycling idle Lambda environments failed")

    # ---------------------------------------------------------------------------- invocations
    def run(self, target: Target, payload: bytes, *, request_id: str | None = None, tail: bool = False
            ) -> InvokeResult:
        """One synchronous invocation of ``target`` (authorization is the caller's business)."""
        request_id = request_id or str(uuid.uuid4())
        if target.config.get(COMMAND_KEY):
            return self._run_command(target, payload, request_id, tail)
        key = EnvironmentKey(target.account_id, target.region, target.name, target.version,
                             str(target.config.get("RevisionId", "")))
        env, _cold = self.pool.acquire(key, lambda: self._environment(key, target))
        timeout = float(target.config.get("Timeout", 3))
        memory = int(target.config.get("MemorySize", 128))
        try:
            start = logs.append(env.log_path, f"START RequestId: {request_id} Version: {target.version}\n")
            began = time.monotonic()
            request = {"id": request_id, "arn": target.invoked_arn,
                       "deadline_ms": int(time.time() * 1000 + timeout * 1000)}
            outcome = env.invoke(request, payload, timeout)
            duration = (time.monotonic() - began) * 1000
            lines = ""
            if outcome.timed_out:
                now = datetime.now(UTC)
                stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
                lines += f"{stamp} {request_id} Task timed out after {timeout:.2f} seconds\n"
                outcome = Outcome(False, json.dumps({
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds"}
                ).encode(), timed_out=True, init_ms=outcome.init_ms)
                duration = timeout * 1000
            lines += f"END RequestId: {request_id}\n"
            lines += logs.report_line(request_id, duration, memory, outcome.max_memory_mb, outcome.init_ms) + "\n"
            logs.append(env.log_path, lines)
        finally:
            self.pool.release(env)
        return InvokeResult(200, outcome.body, None if outcome.ok else "Unhandled",
                            logs.tail(env.log_path, start) if tail else None, target.version, request_id)

    def _environment(self, key: EnvironmentKey, target: Target) -> Environment:
        from stratum.services.lambda_.code import task_root

        root = task_root(self.data_dir, target.code_sha256)
        stream, path = logs.open_stream(self.app.db, self.data_dir, target.account_id, target.region,
                                        target.name, target.version)
        return Environment(key, self.environment(target, str(root), stream), str(root), path, stream)

    def credentials(self, target: Target) -> dict[str, Any] | None:
        role = target.config.get("Role")
        if not role:
            return None
        from stratum.services.sts.sessions import issue_service_role_session

        try:
            return issue_service_role_session(self.app.db, role, target.name, service=LAMBDA_SERVICE)
        except ServiceError:
            raise ServiceError("InvalidParameterValueException", ROLE_ERROR, 400, fields={"Type": "User"}) from None

    def environment(self, target: Target, root: str, stream: str) -> dict[str, str]:
        """The variables of Lambda's Python runtime, then the function's own."""
        config = target.config
        settings = self.app.settings
        runtime = str(config.get("Runtime") or "python3.12")
        env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LANG": "en_US.UTF-8", "TZ": ":UTC",
               "LAMBDA_TASK_ROOT": root, "LAMBDA_RUNTIME_DIR": str(Path(__file__).parent), "PYTHONPATH": root,
               "_HANDLER": str(config.get("Handler", "")), "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
               "AWS_LAMBDA_FUNCTION_NAME": target.name, "AWS_LAMBDA_FUNCTION_VERSION": target.version,
               "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.get("MemorySize", 128)),
               "AWS_LAMBDA_LOG_GROUP_NAME": logs.group_name(target.name), "AWS_LAMBDA_LOG_STREAM_NAME": stream,
               "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand", "AWS_REGION": target.region,
               "AWS_DEFAULT_REGION": target.region, "AWS_ENDPOINT_URL": settings.endpoint_url,
               "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "HOME": os.environ.get("HOME", "/tmp")}
        if config.get(LAYER_CODE_KEY):
            env.update(self._layer_paths(config[LAYER_CODE_KEY], runtime, env))
        credentials = self.credentials(target)
        if credentials is not None:
            env.update({"AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
                        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
                        "AWS_SESSION_TOKEN": credentials["SessionToken"]})
        env.update({str(k): str(v) for k, v in ((config.get("Environment") or {}).get("Variables") or {}).items()})
        return env

    def _layer_paths(self, digests: list[str], runtime: str, env: dict[str, str]) -> dict[str, str]:
        """The layers' directory where Lambda's Python runtime looks in /opt: python/lib/<runtime>/
        site-packages and python on the import path after the task root, bin on PATH, lib for the
        dynamic loader."""
        from stratum.services.lambda_.code import layers_root

        opt = layers_root(self.data_dir, digests)
        imports = [env["PYTHONPATH"], str(opt / "python" / "lib" / runtime / "site-packages"), str(opt / "python")]
        loader = [str(opt / "lib"), *filter(None, [os.environ.get("LD_LIBRARY_PATH")])]
        return {"PYTHONPATH": os.pathsep.join(imports), "PATH": f"{opt / 'bin'}{os.pathsep}{env['PATH']}",
                "LD_LIBRARY_PATH": os.pathsep.join(loader), "STRATUM_LAMBDA_OPT": str(opt)}

    def _run_command(self, target: Target, payload: bytes, request_id: str, tail: bool) -> InvokeResult:
        """A function declared with ``stratum lambda register --command``: the command runs once per
        invocation in the task root, the event as JSON on stdin, its result as JSON on stdout."""
        from stratum.services.lambda_.code import task_root

        root = task_root(self.data_dir, target.code_sha256)
        stream, path = logs.open_stream(self.app.db, self.data_dir, target.account_id, target.region, target.name,
                                        target.version)
        timeout = float(target.config.get("Timeout", 3))
        start = logs.append(path, f"START RequestId: {request_id} Version: {target.version}\n")
        began = time.monotonic()
        with open(path, "ab") as err:
            proc = subprocess.Popen(list(target.config[COMMAND_KEY]), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=err, cwd=root, env=self.environment(target, str(root), stream),
                                    start_new_session=True)
            try:
                out, _ = proc.communicate(payload, timeout=timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                import signal

                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
                timed_out = True
        duration = (time.monotonic() - began) * 1000
        if timed_out:
            body = json.dumps({"errorType": "Sandbox.Timedout", "errorMessage":
                               f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds"}).encode()
            ok = False
        elif proc.returncode != 0:
            text = out.decode("utf-8", "replace").strip()
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = None
            ok = False
            if isinstance(parsed, dict) and "errorMessage" in parsed:
                body = json.dumps(parsed).encode()
            else:
                body = json.dumps({"errorType": "Runtime.ExitError", "errorMessage":
                                   f"RequestId: {request_id} Error: Runtime exited with error: exit status "
                                   f"{proc.returncode}"}).encode()
        else:
            text = out.decode("utf-8", "replace").strip()
            try:
                json.loads(text or "null")
                body, ok = (text or "null").encode(), True
            except ValueError:
                body, ok = json.dumps({"errorType": "Runtime.MarshalError", "errorMessage":
                                       f"the command's output is not JSON: {text[:200]!r}"}).encode(), False
        logs.append(path, f"END RequestId: {request_id}\n"
                    + logs.report_line(request_id, duration, int(target.config.get("MemorySize", 128)), 0, None) + "\n")
        return InvokeResult(200, body, None if ok else "Unhandled", logs.tail(path, start) if tail else None,
                            target.version, request_id)
