"""The SageMaker Python SDK 3.x tests (tests/sdk3) run in their own virtualenv, .venv-sdk3 (made by
`make test` from tests/sdk3/requirements.txt), against a server of each backend. The server maps
the image of the 3.x function steps to that virtualenv's interpreter (a job images file), as a
user maps an image whose Python has the SDK their functions need; everything else runs on the
server's Python."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from stratum_testing import BACKENDS, StratumServer, close_server, make_server

REPO = Path(__file__).resolve().parents[2]
SDK3_PYTHON = Path(os.environ.get("STRATUM_SDK3_PYTHON", REPO / ".venv-sdk3" / "bin" / "python"))
FUNCTION_IMAGE = "885854791233.dkr.ecr.us-east-1.amazonaws.com/sagemaker-distribution-prod:3.2.0-cpu"


@pytest.fixture(scope="module", params=BACKENDS)
def sdk3_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    if not SDK3_PYTHON.is_file():
        pytest.skip(f"{SDK3_PYTHON} is missing: `make test` makes it (or set STRATUM_SDK3_PYTHON)")
    images = tmp_path_factory.mktemp("images") / "images.yaml"
    images.write_text(f'images:\n  - match: "*/sagemaker-distribution-prod:*"\n    runtime: python\n'
                      f'    python: "{SDK3_PYTHON}"\n')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STRATUM_JOB_IMAGES", str(images))
        srv = make_server(tmp_path_factory, request.param)
        srv.start()
    yield srv
    close_server(srv)


@pytest.mark.slow
def test_sdk3_suite(sdk3_server: StratumServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_", "PYTEST_"))}
    env.update({"STRATUM_SDK3_SERVER_LOG": str(sdk3_server.data_dir / "server.log"),
                "STRATUM_SDK3_FUNCTION_IMAGE": FUNCTION_IMAGE})
    started = time.monotonic()
    run = subprocess.run([str(SDK3_PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                          "-rA", "--durations=0", str(REPO / "tests" / "sdk3")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    summary = [ln for ln in run.stdout.splitlines() if ln.startswith(("PASSED", "FAILED", "ERROR", "SKIPPED"))
               or " passed" in ln or " failed" in ln or re.match(r"^\d+\.\d+s call ", ln)]
    print(f"\n[{sdk3_server.backend}] SDK 3.x suite: {time.monotonic() - started:.1f}s\n" + "\n".join(summary))
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert "5 passed" in run.stdout, run.stdout[-3000:]
