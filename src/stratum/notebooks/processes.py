"""Processes of a notebook instance: lifecycle scripts, JupyterLab, and stopping them all.

Every process Stratum starts for an instance leads a session of its own; what it starts in the
background (``nohup ... &``, ``sudo -u ec2-user ...``) stays in that session, so stopping the
instance kills every member of its recorded sessions, and after a crash of Stratum the next start
finds them the same way (on the same host).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from stratum.jobs import logs as job_logs
from stratum.jobs.process import OutputCapture

MARKER_ENV = "STRATUM_NOTEBOOK_MARKER"


class ScriptResult:
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"


def run_script(argv: list[str], env: dict[str, str], *, script: bytes, log_path: Path, timeout: float,
               marker: str, on_start: Callable[[int], None] | None = None) -> tuple[str, int]:
    """Run a lifecycle script (fed to bash as /dev/fd/N) until it exits or ``timeout``; background
    work it started keeps running. Returns (ScriptResult, exit code)."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, script)  # at most 16 KiB (the API's limit): the pipe holds it all
    os.close(write_fd)
    capture = OutputCapture(str(log_path))
    full = [a.replace("{script}", f"/dev/fd/{read_fd}") for a in argv]
    try:
        proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=capture.write_fd, stderr=subprocess.STDOUT,
                                env={**env, MARKER_ENV: marker}, start_new_session=True, pass_fds=(read_fd,))
    finally:
        capture.started()
        os.close(read_fd)
    if on_start is not None:
        on_start(proc.pid)
    deadline = time.monotonic() + timeout
    outcome = ScriptResult.OK
    try:
        while proc.poll() is None:
            if not capture.pump():
                time.sleep(0.02)
            if time.monotonic() >= deadline:
                outcome = ScriptResult.TIMEOUT
                kill_sessions([proc.pid])
                proc.wait()
                break
    finally:
        # Read what is already there; background children that keep the pipe get EPIPE later.
        while capture.pump():
            pass
        capture.close()
        job_logs.flush(log_path)
    code = proc.returncode if proc.returncode is not None else -9
    if outcome == ScriptResult.OK and code != 0:
        outcome = ScriptResult.FAILED
    return outcome, code


def _session_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return int(fields[3])  # after state, ppid, pgrp: session
    except (IndexError, ValueError):
        return None


def session_members(sessions: list[int]) -> list[int]:
    wanted = set(sessions)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _session_of(int(entry)) in wanted:
            found.append(int(entry))
    return found


def kill_sessions(sessions: list[int], grace: float = 2.0) -> None:
    """SIGTERM every process of the sessions, SIGKILL what is left after ``grace`` seconds."""
    sessions = [s for s in sessions if s > 1]
    if not sessions:
        return
    members = session_members(sessions)
    for pid in members:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + grace
    while time.monotonic() < end and session_members(sessions):
        time.sleep(0.05)
    for pid in session_members(sessions):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    for pid in members:  # reap our own children
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
