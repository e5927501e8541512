"""Execution environments: one worker process per environment, kept warm between invocations.

An environment belongs to one function version in one configuration (its RevisionId): it runs one
invocation at a time; invocations that arrive while every environment of the version is busy start
another. Idle environments are recycled after ``idle_seconds``, and every environment of a
configuration that has been replaced (UpdateFunctionCode / UpdateFunctionConfiguration) is
recycled as soon as it is idle. A timed-out invocation kills its environment (the whole process
group), as Lambda does.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BOOTSTRAP = str(Path(__file__).with_name("bootstrap.py"))
_LENGTH_BYTES = 4


@dataclass(frozen=True)
class EnvironmentKey:
    account_id: str
    region: str
    function_name: str
    version: str
    revision_id: str


@dataclass
class Outcome:
    ok: bool
    body: bytes  # the result's JSON, or the error shape's
    timed_out: bool = False
    init_ms: float | None = None  # the init phase, on the first invocation of an environment
    max_memory_mb: int = 0


class WorkerDied(Exception):
    pass


def _write_frame(fd: int, data: bytes) -> None:
    view = memoryview(len(data).to_bytes(_LENGTH_BYTES, "big") + data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                raise TimeoutError
        chunk = os.read(fd, remaining)
        if not chunk:
            raise WorkerDied
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int, deadline: float | None) -> bytes:
    size = int.from_bytes(_read_exact(fd, _LENGTH_BYTES, deadline), "big")
    return _read_exact(fd, size, deadline)


@dataclass
class Environment:
    key: EnvironmentKey
    env: dict[str, str]
    cwd: str
    log_path: Path  # the stream's data file: the worker's stdout and stderr
    log_stream: str
    proc: subprocess.Popen[bytes] | None = None
    to_worker: int = -1
    from_worker: int = -1
    last_used: float = field(default_factory=time.monotonic)
    started: float = field(default_factory=time.monotonic)
    invocations: int = 0
    ready: bool = False

    def start(self) -> None:
        req_r, req_w = os.pipe()
        ans_r, ans_w = os.pipe()
        env = dict(self.env)
        env["_STRATUM_LAMBDA_FDS"] = f"{req_r},{ans_w}"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-P", "-u", BOOTSTRAP], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, env=env, cwd=self.cwd, pass_fds=(req_r, ans_w),
                                         start_new_session=True)
        os.close(req_r)
        os.close(ans_w)
        self.to_worker, self.from_worker = req_w, ans_r

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def invoke(self, request: dict[str, Any], payload: bytes, timeout: float) -> Outcome:
        """One invocation; the init phase (the handler's import) counts against the same timeout,
        as on Lambda's first invocation of an environment."""
        deadline = time.monotonic() + timeout
        init_ms = None
        try:
            if not self.ready:
                began = time.monotonic()
                _read_frame(self.from_worker, deadline)  # "ready": the handler module is imported
                self.ready = True
                init_ms = (time.monotonic() - began) * 1000
            _write_frame(self.to_worker, json.dumps(request).encode())
            _write_frame(self.to_worker, payload)
            answer = json.loads(_read_frame(self.from_worker, deadline))
        except TimeoutError:
            self.kill()
            return Outcome(False, b"", timed_out=True, init_ms=init_ms)
        except (WorkerDied, BrokenPipeError, OSError):
            code = self.kill()
            return Outcome(False, json.dumps({
                "errorType": "Runtime.ExitError",
                "errorMessage": f"RequestId: {request.get('id', '')} Error: Runtime exited with error: "
                                f"exit status {code}"}).encode(), init_ms=init_ms)
        self.invocations += 1
        self.last_used = time.monotonic()
        return Outcome(bool(answer.get("ok")), str(answer.get("body", "null")).encode(), init_ms=init_ms,
                       max_memory_mb=self.max_memory_mb())

    def max_memory_mb(self) -> int:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) // 1024
        except OSError:
            pass
        return 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        code = proc.wait()
        for fd in (self.to_worker, self.from_worker):
            try:
                os.close(fd)
            except OSError:
                pass
        self.to_worker = self.from_worker = -1
        return code


class Pool:
    """The warm environments of this server, by function version and configuration."""

    def __init__(self, idle_seconds: float, max_age_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self.max_age_seconds = max_age_seconds  # role credentials expire: recycle before they do
        self._idle: dict[EnvironmentKey, list[Environment]] = {}
        self._busy: set[int] = set()
        self._all: dict[int, Environment] = {}
        self._current: dict[tuple[str, str, str, str], str] = {}  # version -> its current revision
        self._lock = threading.Lock()

    def acquire(self, key: EnvironmentKey, create: Callable[[], Environment]) -> tuple[Environment, bool]:
        """A warm idle environment of ``key``, else a new one; (environment, cold)."""
        stale: list[Environment] = []
        with self._lock:
            version = (key.account_id, key.region, key.function_name, key.version)
            previous = self._current.get(version)
            if previous is not None and previous != key.revision_id:
                old = EnvironmentKey(*version, previous)
                stale = self._idle.pop(old, [])
            self._current[version] = key.revision_id
            idle = self._idle.get(key)
            while idle:
                env = idle.pop()
                if env.alive():
                    self._busy.add(id(env))
                    return env, False
                self._all.pop(id(env), None)
        for env in stale:
            self._forget(env)
        env = create()
        env.start()
        with self._lock:
            self._busy.add(id(env))
            self._all[id(env)] = env
        return env, True

    def release(self, env: Environment) -> None:
        with self._lock:
            self._busy.discard(id(env))
            current = self._current.get((env.key.account_id, env.key.region, env.key.function_name, env.key.version))
            if env.alive() and current == env.key.revision_id:
                self._idle.setdefault(env.key, []).append(env)
                return
        self._forget(env)

    def _forget(self, env: Environment) -> None:
        env.kill()
        with self._lock:
            self._all.pop(id(env), None)

    def retire(self, account_id: str, region: str, function_name: str) -> None:
        """Recycle every idle environment of a function (its code or configuration changed, or it
        was deleted); busy ones are recycled when their invocation ends."""
        doomed: list[Environment] = []
        with self._lock:
            for key in [k for k in self._idle if (k.account_id, k.region, k.function_name)
                        == (account_id, region, function_name)]:
                doomed.extend(self._idle.pop(key))
            for version in [v for v in self._current if v[:3] == (account_id, region, function_name)]:
                self._current[version] = "retired"
        for env in doomed:
            self._forget(env)

    def reap(self) -> None:
        now = time.monotonic()
        doomed: list[Environment] = []
        with self._lock:
            for key, envs in list(self._idle.items()):
                keep = [e for e in envs if now - e.last_used < self.idle_seconds
                        and now - e.started < self.max_age_seconds and e.alive()]
                doomed.extend(e for e in envs if e not in keep)
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
        for env in doomed:
            self._forget(env)

    def pids(self, account_id: str, region: str, function_name: str) -> list[int]:
        with self._lock:
            return [e.pid for e in self._all.values()
                    if (e.key.account_id, e.key.region, e.key.function_name) == (account_id, region, function_name)]

    def close(self) -> None:
        with self._lock:
            envs = list(self._all.values())
            self._idle.clear()
            self._all.clear()
        for env in envs:
            env.kill()
