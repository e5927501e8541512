"""Notebook instances on two servers sharing a PostgreSQL database and a data directory: each
instance runs on the server holding its claim, the other server's API and proxy act on it, and a
server killed with SIGKILL has its InService instances served again by the other once its lease
expires."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from stratum_testing import BACKENDS, StratumServer, create_pg_database, drop_pg_database, sagemaker_role
from test_notebook_instances import WAIT, uid

pytestmark = pytest.mark.slow
LEASE = 4.0


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[list[StratumServer]]:
    if "postgresql" not in BACKENDS:
        pytest.skip("PostgreSQL is not among the test backends")
    url = create_pg_database()
    shared = tmp_path / "shared"
    shared.mkdir()
    servers = [StratumServer(shared, url, ["--lease-seconds", str(LEASE)], backend="postgresql",
                             log_path=tmp_path / f"server{i}.log") for i in range(2)]
    try:
        servers[0].start()
        servers[1].start()
        yield servers
    finally:
        for srv in servers:
            srv.stop()
        drop_pg_database(url)


def _jupyter_pid(server: StratumServer, name: str) -> int | None:
    from sqlalchemy import create_engine, text

    engine = create_engine(str(server.database_url).replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            process = conn.execute(text("SELECT process FROM sagemaker_notebook_instances WHERE name = :n"),
                                   {"n": name}).scalar()
    finally:
        engine.dispose()
    if isinstance(process, str):
        import json

        process = json.loads(process)
    return int(process["pid"]) if process and process.get("pid") else None


def _opens(sm: Any, name: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        url = sm.create_presigned_notebook_instance_url(NotebookInstanceName=name)["AuthorizedUrl"]
        page = httpx.get(url, follow_redirects=True, timeout=30)
        if page.status_code == 200 and "JupyterLab" in page.text:
            return True
        time.sleep(0.5)
    return False


def test_two_servers_share_instances_and_take_over(pair: list[StratumServer]) -> None:
    a, b = pair
    sm_a, sm_b = a.client("sagemaker"), b.client("sagemaker")
    role = sagemaker_role(a, "nb")
    name = uid("nb")
    sm_a.create_notebook_instance(NotebookInstanceName=name, InstanceType="ml.t3.medium", RoleArn=role)
    sm_b.get_waiter("notebook_instance_in_service").wait(NotebookInstanceName=name, WaiterConfig=WAIT)
    assert _opens(sm_b, name)  # B's proxy reaches the JupyterLab that A runs

    sm_b.stop_notebook_instance(NotebookInstanceName=name)  # A (the owner) stops it
    sm_b.get_waiter("notebook_instance_stopped").wait(NotebookInstanceName=name, WaiterConfig=WAIT)
    sm_b.start_notebook_instance(NotebookInstanceName=name)  # now B runs it
    sm_a.get_waiter("notebook_instance_in_service").wait(NotebookInstanceName=name, WaiterConfig=WAIT)
    assert _opens(sm_a, name)

    before = _jupyter_pid(a, name)
    b.kill()  # SIGKILL: A takes the instance over once B's lease expires and serves it again
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _jupyter_pid(a, name) in (before, None):
        time.sleep(0.5)
    after = _jupyter_pid(a, name)
    assert after not in (before, None)
    assert not Path(f"/proc/{before}").exists()  # B's orphaned JupyterLab was killed by A
    assert _opens(sm_a, name, timeout=60)
    assert sm_a.describe_notebook_instance(NotebookInstanceName=name)["NotebookInstanceStatus"] == "InService"
    sm_a.stop_notebook_instance(NotebookInstanceName=name)
    sm_a.get_waiter("notebook_instance_stopped").wait(NotebookInstanceName=name, WaiterConfig=WAIT)
    sm_a.delete_notebook_instance(NotebookInstanceName=name)
    sm_a.get_waiter("notebook_instance_deleted").wait(NotebookInstanceName=name, WaiterConfig=WAIT)
