"""The SageMaker Python SDK as a user runs it against Stratum: only the environment the server
prints at start (`export AWS_CONFIG_FILE=... AWS_SHARED_CREDENTIALS_FILE=...
SAGEMAKER_ADMIN_CONFIG_OVERRIDE=...`), nothing passed to the SDK, and no request leaving the
machine (every host name a client resolves is recorded; only loopback ones may connect).

Used by the 2.x tests (tests/integration) and the 3.x tests (tests/sdk3), which run in another
virtualenv: this module imports nothing but the standard library."""

from __future__ import annotations

import os
import re
import shlex
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_EXPORT = re.compile(r"^\s*export (AWS_CONFIG_FILE=.*)$", re.MULTILINE)


def printed_environment(server_log: Path) -> dict[str, str]:
    """The variables of the `export` line the server printed when it started."""
    found = _EXPORT.findall(Path(server_log).read_text(errors="replace"))
    assert found, f"no export line in {server_log}"
    return dict(item.split("=", 1) for item in shlex.split(found[-1]))


class OffMachine(AssertionError):
    pass


@contextmanager
def loopback_only() -> Iterator[list[str]]:
    """Refuse (and record) every connection attempt to a host that is not this machine."""
    attempts: list[str] = []
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK and not name.startswith("127."):
            attempts.append(name)
            raise OSError(f"{name}: the test refuses any host but this machine")
        return real(host, *args, **kwargs)

    socket.getaddrinfo = guarded  # type: ignore[assignment]
    try:
        yield attempts
    finally:
        socket.getaddrinfo = real  # type: ignore[assignment]


@contextmanager
def user_environment(server_log: Path, home: Path, **extra: str) -> Iterator[dict[str, str]]:
    """os.environ as a user's shell has it after pasting the printed export line: no other AWS_*
    or SAGEMAKER_* variable, and a HOME without ~/.aws or ~/.config/sagemaker."""
    saved = dict(os.environ)
    env = printed_environment(server_log)
    for key in list(os.environ):
        if key.startswith(("AWS_", "SAGEMAKER_")):
            del os.environ[key]
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update({"HOME": str(home), **env, **extra})
    try:
        import boto3

        boto3.DEFAULT_SESSION = None  # a default session made earlier read another environment
    except ImportError:
        pass
    try:
        yield env
    finally:
        os.environ.clear()
        os.environ.update(saved)


# What logging prints when a handler writes to a stream pytest's capture has closed (an SDK logger
# keeps the sys.stderr of the test that configured it): the harness's, not the SDK's.
_CLOSED_CAPTURE = re.compile(r"--- Logging error ---\n.*?I/O operation on closed file\..*?\nArguments: [^\n]*\n",
                             re.DOTALL)


def has_traceback(output: str) -> bool:
    """Whether the SDK printed a traceback (the telemetry's is the one users met)."""
    return "Traceback" in _CLOSED_CAPTURE.sub("", output)
