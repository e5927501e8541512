"""The Ray executor: each job is a Ray task (1 CPU) running the same container-contract runner.

A small detached-free control actor (0 CPU) carries what the driver and the tasks tell each other
while a job runs: stop requests (the runner polls them, kills its process tree and returns a
Stopped result, exactly as on the local executor) and live progress (transitions, the process id).
Tasks reach the Stratum server at the endpoint in their JobSpec. The job directory and log are
written at the server's paths when the worker can (a local cluster or a shared data directory);
otherwise the task works in its own temporary directory and ships the log back with its result.

Token authentication (Ray >= 2.52): a cluster started with ``RAY_AUTH_MODE=token``, or by
``ray start`` on a machine that has a token (``~/.ray/auth_token``), refuses a driver that does not
present its token. ``ray.init(address=HOST:PORT)`` never turns token mode on by itself (only
``auto`` does), so the executor does it the way Ray's own CLI does: with ``--ray-token-file`` (or
``STRATUM_RAY_TOKEN_FILE``) it uses that token file; otherwise, when ``RAY_AUTH_MODE`` is unset and
Ray finds a token (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``), it
connects in token mode. A cluster without authentication accepts a driver that sends a token.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from stratum.jobs.executors.base import Executor, JobHandle, internal_failure
from stratum.jobs.spec import JobSpec, Reporter, RunResult

_POLL = 0.25


class _Control:
    """Per-cluster mailbox between the server and its job tasks (a Ray actor)."""

    def __init__(self) -> None:
        self.cancelled: set[str] = set()
        self.events: dict[str, list[tuple[Any, ...]]] = {}

    def cancel(self, job_id: str) -> None:
        self.cancelled.add(job_id)

    def is_cancelled(self, job_id: str) -> bool:
        return job_id in self.cancelled

    def report(self, job_id: str, event: tuple[Any, ...]) -> None:
        self.events.setdefault(job_id, []).append(event)

    def drain(self, job_id: str) -> list[tuple[Any, ...]]:
        return self.events.pop(job_id, [])

    def forget(self, job_id: str) -> None:
        self.cancelled.discard(job_id)
        self.events.pop(job_id, None)


def _run_remote(spec: JobSpec, control: Any) -> RunResult:
    """Body of the Ray task."""
    import ray

    from stratum.jobs.runner import run_job

    class RemoteCancel:
        def __init__(self) -> None:
            self.checked = 0.0
            self.value = False

        def is_set(self) -> bool:
            if not self.value and time.monotonic() - self.checked >= _POLL:
                self.checked = time.monotonic()
                try:
                    self.value = bool(ray.get(control.is_cancelled.remote(spec.job_id), timeout=10))
                except Exception:
                    self.value = True  # the driver is gone: nobody will record this job
            return self.value

    class RemoteReporter:
        def transition(self, status: str, message: str) -> None:
            control.report.remote(spec.job_id, ("transition", status, message))

        def process_started(self, pid: int, marker: str) -> None:
            control.report.remote(spec.job_id, ("process", pid, marker, socket.gethostname()))

    ship_log = False
    try:
        Path(spec.job_dir).mkdir(parents=True, exist_ok=True)
        Path(spec.log_path).parent.mkdir(parents=True, exist_ok=True)
        Path(spec.log_path).touch()
    except OSError:
        work = tempfile.mkdtemp(prefix="stratum-job-")
        spec.job_dir = os.path.join(work, "job")
        spec.log_path = os.path.join(work, "job.log")
        ship_log = True
    result = run_job(spec, RemoteReporter(), RemoteCancel())
    if ship_log:
        try:
            result.log_text = Path(spec.log_path).read_text(errors="replace")[-10_000_000:]
        except OSError:
            pass
    return result


class RayHandle(JobHandle):
    def __init__(self, executor: RayExecutor, ref: Any, spec: JobSpec, reporter: Reporter) -> None:
        self.executor = executor
        self.ref = ref
        self.spec = spec
        self.reporter = reporter
        self.result: RunResult | None = None
        self.kill_deadline: float | None = None
        self.lock = threading.Lock()

    def _pump(self) -> None:
        import ray

        try:
            events = ray.get(self.executor.control.drain.remote(self.spec.job_id), timeout=10)
        except Exception:
            return
        for event in events:
            if event[0] == "transition":
                self.reporter.transition(event[1], event[2])
            elif event[0] == "process" and event[3] == socket.gethostname():
                self.reporter.process_started(event[1], event[2])

    def _collect(self) -> RunResult:
        import ray

        try:
            result: RunResult = ray.get(self.ref)
        except ray.exceptions.TaskCancelledError:
            result = RunResult(status="Stopped")
        except Exception as exc:
            result = internal_failure(exc)
        self._pump()
        self.executor.control.forget.remote(self.spec.job_id)
        if result.log_text:
            Path(self.spec.log_path).parent.mkdir(parents=True, exist_ok=True)
            Path(self.spec.log_path).write_text(result.log_text)
            result.log_text = None
        return result

    def poll(self) -> RunResult | None:
        return self.wait(0)

    def wait(self, timeout: float | None = None) -> RunResult | None:
        import ray

        with self.lock:
            if self.result is not None:
                return self.result
            end = None if timeout is None else time.monotonic() + timeout
            while True:
                step = _POLL if end is None else max(0.0, min(_POLL, end - time.monotonic()))
                ready, _ = ray.wait([self.ref], timeout=step)
                if ready:
                    self.result = self._collect()
                    return self.result
                self._pump()
                if self.kill_deadline is not None and time.monotonic() > self.kill_deadline:
                    # The runner did not honour the stop request (stuck worker): cancel the task.
                    ray.cancel(self.ref, force=True)
                    self.kill_deadline = None
                if end is not None and time.monotonic() >= end:
                    return None

    def kill(self) -> None:
        self.executor.control.cancel.remote(self.spec.job_id)
        self.kill_deadline = time.monotonic() + self.spec.stop_grace + 30


def _token_auth_environment(token_file: Path | None) -> None:
    """Set Ray's token-auth environment for this driver (and what it starts) before ray.init."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:
        AuthenticationTokenLoader = Config = None  # a Ray without token authentication
    if token_file is not None:
        path = Path(token_file).expanduser().resolve()
        if not path.is_file() or not path.read_text().strip():
            raise RuntimeError(f"the Ray token file {path} is missing or empty")
        os.environ["RAY_AUTH_MODE"] = "token"
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(path)
        os.environ.pop("RAY_AUTH_TOKEN", None)  # Ray prefers the variable over the file
    elif os.environ.get("RAY_AUTH_MODE") is not None or AuthenticationTokenLoader is None:
        return  # chosen explicitly (Ray honours it as it is), or nothing to choose
    elif AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True):
        os.environ["RAY_AUTH_MODE"] = "token"
    else:
        return
    if AuthenticationTokenLoader is not None:
        # Ray caches its config and the token it loaded: make both see the environment just set.
        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


class RayExecutor(Executor):
    name = "ray"

    def __init__(self, address: str | None = None, token_file: Path | None = None) -> None:
        self.address = address
        self.token_file = token_file
        self.control: Any = None
        self._remote: Any = None

    def start(self) -> None:
        import ray

        if not ray.is_initialized():
            # ray.init replaces the SIGTERM/SIGINT handlers of the main thread with ones that exit at
            # once; the server's own handlers must stay so a shutdown stops the jobs cleanly.
            saved = {}
            if threading.current_thread() is threading.main_thread():
                saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
            try:
                _token_auth_environment(self.token_file)
                ray.init(address=self.address or None, ignore_reinit_error=True, include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
            finally:
                for sig, handler in saved.items():
                    if handler is not None:
                        signal.signal(sig, handler)
        control_cls = ray.remote(num_cpus=0)(_Control)
        self.control = control_cls.remote()
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_run_remote)

    def submit(self, spec: JobSpec, reporter: Reporter) -> JobHandle:
        if self._remote is None:
            self.start()
        ref = self._remote.options(name=f"stratum-{spec.kind}-{spec.name}").remote(spec, self.control)
        return RayHandle(self, ref, spec, reporter)

    def shutdown(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
