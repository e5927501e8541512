"""The SageMaker Python SDK 3.x tests. They run in their own virtualenv (.venv-sdk3, made by
`make test`), started by tests/integration/test_sagemaker_sdk3.py against a server it runs on each
backend; that server's log (its printed environment) comes in STRATUM_SDK3_SERVER_LOG. In any
other interpreter (the 2.x one of the main run) this directory is not collected."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdk_testing import has_traceback, loopback_only, user_environment  # noqa: E402


def _sdk_major() -> int:
    try:
        return int(metadata.version("sagemaker").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return 0


def pytest_ignore_collect(collection_path: Path, config: Any) -> bool:
    return _sdk_major() != 3


@pytest.fixture
def user(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> Iterator[dict[str, str]]:
    """The user's shell: only the environment the server printed; a connection off the machine or
    a traceback on the output fails the test."""
    log = os.environ.get("STRATUM_SDK3_SERVER_LOG")
    if not log:
        pytest.skip("run by tests/integration/test_sagemaker_sdk3.py (STRATUM_SDK3_SERVER_LOG)")
    with user_environment(Path(log), tmp_path / "home") as env, loopback_only() as attempts:
        yield env
    out, err = capfd.readouterr()
    assert attempts == [], f"requests left the machine for {attempts}"
    assert not has_traceback(out + err), out + err
