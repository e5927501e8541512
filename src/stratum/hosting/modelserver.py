"""Starting a model server (``python -m stratum.algorithms.serving``) for one container of a model:
its /opt/ml/model from the container's ModelDataUrl, its code from SAGEMAKER_SUBMIT_DIRECTORY, a
free loopback port, isolation of /opt/ml, and waiting for /ping. Batch transform and endpoint
instances both start their model servers here."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stratum.jobs import process
from stratum.jobs.contracts import Layout
from stratum.jobs.s3io import S3, JobDataError, split_uri
from stratum.jobs.tarballs import extract_tarball

PING_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch_code(s3: S3, uri: str, target: Path, scratch: Path) -> None:
    """The SDK's sourcedir.tar.gz (or a prefix of plain files) into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    if uri.endswith((".tar.gz", ".tgz", ".tar")):
        archive = scratch / "sourcedir.tar.gz"
        bucket, key = split_uri(uri)
        s3.download(bucket, key, archive)
        extract_tarball(archive, target)
        archive.unlink()
    elif not s3.download_prefix(uri, target):
        raise JobDataError(f"ClientError: no code found at {uri}")


def prepare_container(s3: S3, container: dict[str, Any], env_vars: dict[str, str], layout: Layout,
                      log: Callable[[str], None]) -> dict[str, str]:
    """Download and unpack the container's model into ``layout.model`` and its code into
    ``layout.code``; returns ``env_vars`` with SAGEMAKER_SUBMIT_DIRECTORY pointing at the code."""
    layout.model.mkdir(parents=True, exist_ok=True)
    if container.get("ModelDataUrl"):
        archive = layout.job_dir / "model.tar.gz"
        bucket, key = split_uri(container["ModelDataUrl"])
        log(f"downloading model from {container['ModelDataUrl']}")
        s3.download(bucket, key, archive)
        extract_tarball(archive, layout.model)
        archive.unlink()
    env_vars = dict(env_vars)
    submit = env_vars.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
    if submit.startswith("s3://"):
        log(f"downloading code from {submit}")
        fetch_code(s3, submit, layout.code, layout.job_dir)
        env_vars["SAGEMAKER_SUBMIT_DIRECTORY"] = str(layout.code)
    return env_vars


@dataclass
class ModelServer:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def launch(*, runtime: str, layout: Layout, env: dict[str, str], log_path: str | Path, marker: str,
           isolation: str, port: int | None = None, image: str | None = None,
           multi_model: bool = False) -> ModelServer:
    """Start the model server of one container (its own session, output appended to ``log_path``).
    ``env`` is the container's full environment; the port and model directory are added here.
    ``image`` chooses the serving behaviour; ``multi_model`` serves the multi-model container API."""
    port = port or free_port()
    env = {**env, "SAGEMAKER_BIND_TO_PORT": str(port), "SM_MODEL_DIR": str(layout.model), process.MARKER_ENV: marker}
    argv = [sys.executable, "-m", "stratum.algorithms.serving", "--runtime", runtime, "--port", str(port),
            "--model-dir", str(layout.model)]
    if image:
        argv += ["--image", image]
    if multi_model:
        argv.append("--multi-model")
        env["SAGEMAKER_MULTI_MODEL"] = "true"  # as SageMaker sets it for a MultiModel container
    full_argv, full_env = process.isolate(argv, env, str(layout.ml), isolation)
    with open(log_path, "ab", buffering=0) as out:
        proc = subprocess.Popen(full_argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=str(layout.ml), env=full_env, start_new_session=True)
    return ModelServer(proc, port)


def ping(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url + "/ping", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


class NotReady(Exception):
    """The model server exited (``exit_code``) or did not answer /ping in time (``exit_code`` None)."""

    def __init__(self, exit_code: int | None) -> None:
        super().__init__(f"exit code {exit_code}" if exit_code is not None else "no answer to /ping")
        self.exit_code = exit_code


def wait_ready(server: ModelServer, timeout: float = PING_TIMEOUT,
               check_stop: Callable[[], None] | None = None) -> None:
    """Until GET /ping answers 200; NotReady if the process exits first or ``timeout`` passes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check_stop is not None:
            check_stop()
        if server.proc.poll() is not None:
            raise NotReady(server.proc.returncode)
        if ping(server.url):
            return
        time.sleep(0.05)
    raise NotReady(None)


def stop(server: ModelServer, grace: float = 1.0) -> None:
    process.kill_group(server.pid, grace, server.proc)
