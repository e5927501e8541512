"""Running a job's process: isolation of /opt/ml, deadlines, stop, and killing the process tree.

How scripts that hard-code ``/opt/ml/...`` see the job directory (``isolation``):

- ``mountns`` (preferred; needs root or unprivileged mount namespaces, and /opt/ml to exist or be
  creatable): the process starts in a private mount namespace (``unshare --mount``) where the job
  directory is bind-mounted on /opt/ml. Everything sees the real paths: Python, native libraries
  (xgboost.save_model, torch.save), shell commands. Nothing leaks to the host's mount table.
- ``pathpatch`` (fallback): a sitecustomize module on PYTHONPATH wraps Python's file API (open,
  io, os, hence os.path, pathlib, shutil, glob, pandas/numpy readers) to redirect /opt/ml/....
  Native code and non-Python children do not see the redirect.

Either way /opt/ml prefixes in the command line and environment are rewritten to the job
directory first (contracts.Layout.remap), so the common cases never depend on the isolation.

Every process is the leader of its own session: stopping a job signals the whole group (SIGTERM,
then SIGKILL after a grace period), so children the script started die with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from stratum.jobs import logs as job_logs
from stratum.services.logs.eventstore import exclusive

PATHPATCH_DIR = str(Path(__file__).resolve().parent / "pathpatch")
MARKER_ENV = "STRATUM_JOB_MARKER"
FLUSH_INTERVAL = 0.2  # seconds between stamping a running job's new output lines
CAPTURE_INTERVAL = 0.01  # seconds between emptying the output pipe while it has less than a buffer
PIPE_BUFFER = 1 << 20  # the pipe's capacity (Linux's default pipe-max-size) and the read size

_probe_lock = threading.Lock()
_probe_result: str | None = None


def available_isolation() -> str:
    """'mountns' when a private mount namespace with /opt/ml works here, else 'pathpatch'."""
    global _probe_result
    with _probe_lock:
        if _probe_result is None:
            _probe_result = "mountns" if _mountns_works() else "pathpatch"
        return _probe_result


def _mountns_works() -> bool:
    if os.name != "posix" or not shutil.which("unshare") or not shutil.which("mount"):
        return False
    target = Path("/opt/ml")
    if not target.is_dir():
        try:
            target.mkdir(parents=True, exist_ok=True)  # an empty mount point; only namespaces bind on it
        except OSError:
            return False
    probe = Path(os.environ.get("TMPDIR", "/tmp"))
    try:
        out = subprocess.run(_mountns_prefix(str(probe)) + ["true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def _mountns_prefix(ml_dir: str) -> list[str]:
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        unshare.insert(1, "--map-root-user")
    # sh -c SCRIPT ARG0 ARGS...: $0 is the job directory, "$@" the command.
    return [*unshare, "--", "/bin/sh", "-c", 'mount --bind "$0" /opt/ml && exec "$@"', ml_dir]


def resolve_isolation(requested: str) -> str:
    return available_isolation() if requested == "auto" else requested


def isolate(argv: list[str], env: dict[str, str], ml_dir: str, isolation: str) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run ``argv`` with /opt/ml pointing at ``ml_dir``."""
    env = dict(env)
    if isolation == "mountns":
        return _mountns_prefix(ml_dir) + argv, env
    env["STRATUM_OPT_ML"] = ml_dir
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PATHPATCH_DIR, env.get("PYTHONPATH", "")) if p)
    return argv, env


class Outcome:
    COMPLETED = "completed"
    STOPPED = "stopped"
    TIMEOUT = "timeout"


class OutputCapture:
    """A process's stdout and stderr: a pipe the runner empties into the log file.

    A million unbuffered ``print``s cost a process about 1.5x as long into a regular file as into
    /dev/null, and about 1.1x into a pipe of 1 MiB. The reader never blocks on the pipe (it would
    be woken by every write): it reads what is there every 10 ms, at once again while the pipe
    keeps filling, and appends only complete lines, so Stratum's own lines never split one."""

    def __init__(self, log_path: str) -> None:
        self.log_path = log_path
        self.read_fd, self.write_fd = os.pipe()
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(self.write_fd, fcntl.F_SETPIPE_SZ, PIPE_BUFFER)
        os.set_blocking(self.read_fd, False)
        self._tail = b""

    def started(self) -> None:
        """The process holds the write end now: the runner's copy goes, so the end of the
        process (and of its children) is the end of the pipe."""
        os.close(self.write_fd)

    def pump(self) -> bool:
        """Append what the pipe holds; True when it held a full buffer (more may be waiting)."""
        chunks: list[bytes] = []
        full = False
        while len(chunks) < 8:
            try:
                chunk = os.read(self.read_fd, PIPE_BUFFER)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            full = len(chunk) == PIPE_BUFFER
            if not full:
                break
        if chunks:
            data = self._tail + b"".join(chunks)
            end = data.rfind(b"\n") + 1
            self._tail = data[end:]
            if end:
                self._append(data[:end])
        return full

    def close(self) -> None:
        while self.pump():
            pass
        if self._tail:
            self._append(self._tail + b"\n")  # the output has ended, and so has its last line
            self._tail = b""
        os.close(self.read_fd)

    def _append(self, data: bytes) -> None:
        with exclusive(self.log_path), open(self.log_path, "ab") as log:
            log.write(data)


def run(argv: list[str], *, env: dict[str, str], cwd: str, log_path: str, marker: str,
        should_stop: Callable[[], bool], deadline: float | None, grace: float,
        on_start: Callable[[int], None] | None = None) -> tuple[int, str]:
    """Run to completion, stop or deadline; returns (exit code, Outcome)."""
    env = {**env, MARKER_ENV: marker}
    capture = OutputCapture(log_path)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=capture.write_fd, stderr=subprocess.STDOUT,
                                cwd=cwd, env=env, start_new_session=True)
    finally:
        capture.started()
    if on_start is not None:
        on_start(proc.pid)
    outcome = Outcome.COMPLETED
    next_flush = time.monotonic() + FLUSH_INTERVAL
    try:
        while True:
            more = capture.pump()
            if proc.poll() is not None:
                break
            if time.monotonic() >= next_flush:
                # Complete lines appended since the last flush become CloudWatch Logs events
                # stamped now (see jobs.logs).
                job_logs.flush(log_path)
                next_flush = time.monotonic() + FLUSH_INTERVAL
            if should_stop():
                outcome = Outcome.STOPPED
            elif deadline is not None and time.monotonic() >= deadline:
                outcome = Outcome.TIMEOUT
            else:
                if not more:
                    time.sleep(CAPTURE_INTERVAL)
                continue
            kill_group(proc.pid, grace, proc)
            break
    except BaseException:
        # KeyboardInterrupt (a cancelled Ray task) or anything else: never leave the tree behind.
        kill_group(proc.pid, 0, proc)
        raise
    finally:
        # The leader may be gone while children it started still run.
        _signal_group(proc.pid, signal.SIGKILL)
        capture.close()
        job_logs.flush(log_path)
    return proc.returncode if proc.returncode is not None else -9, outcome


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def kill_group(pgid: int, grace: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds."""
    if not _signal_group(pgid, signal.SIGTERM):
        if proc is not None:
            proc.wait()
        return
    end = time.monotonic() + grace
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    _signal_group(pgid, signal.SIGKILL)
    if proc is not None:
        proc.wait()


def kill_orphan(pid: int, marker: str) -> bool:
    """After a crash: kill the process group ``pid`` led, if it is still the job's (pids are reused)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    if f"{MARKER_ENV}={marker}".encode() not in environ.split(b"\0"):
        return False
    return _signal_group(pid, signal.SIGKILL)
