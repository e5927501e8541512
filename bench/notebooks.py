"""Notebook instance start-up: CreateNotebookInstance -> InService and StartNotebookInstance ->
InService (no lifecycle scripts) on a real Stratum server subprocess (SQLite).

The time is measured by the client from the call to the first DescribeNotebookInstance that
answers InService (polled every 50 ms), so it includes preparing the volume, minting the role's
session and starting JupyterLab until it answers. Targets: under 10 s and under 5 s.

Usage: python bench/notebooks.py [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from botocore.config import Config
from harness import account_session, free_port, start_server


def wait_status(sm: Any, name: str, status: str, poll: float = 0.05, timeout: float = 120) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        found = sm.describe_notebook_instance(NotebookInstanceName=name)["NotebookInstanceStatus"]
        if found == status:
            return time.monotonic() - start
        if found == "Failed":
            raise RuntimeError(sm.describe_notebook_instance(NotebookInstanceName=name).get("FailureReason"))
        time.sleep(poll)
    raise RuntimeError(f"{name} not {status} after {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="stratum-bench-notebooks-"))
    port = free_port()
    proc = start_server(data_dir, port)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        session = account_session(data_dir)
        cfg = Config(retries={"max_attempts": 1})
        iam = session.client("iam", endpoint_url=endpoint, config=cfg)
        sm = session.client("sagemaker", endpoint_url=endpoint, config=cfg)
        role = iam.create_role(RoleName="bench-notebooks", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                                                     "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
        create, start = [], []
        for _ in range(args.rounds):
            name = f"bench-{uuid.uuid4().hex[:8]}"
            sm.create_notebook_instance(NotebookInstanceName=name, InstanceType="ml.t3.medium", RoleArn=role)
            create.append(wait_status(sm, name, "InService"))
            sm.stop_notebook_instance(NotebookInstanceName=name)
            wait_status(sm, name, "Stopped")
            sm.start_notebook_instance(NotebookInstanceName=name)
            start.append(wait_status(sm, name, "InService"))
            sm.stop_notebook_instance(NotebookInstanceName=name)
            wait_status(sm, name, "Stopped")
            sm.delete_notebook_instance(NotebookInstanceName=name)
        result = {"create_to_in_service_s": create, "start_to_in_service_s": start,
                  "create_median_s": statistics.median(create), "start_median_s": statistics.median(start)}
        print(f"CreateNotebookInstance -> InService: median {result['create_median_s']:.2f} s "
              f"(runs: {', '.join(f'{v:.2f}' for v in create)}; target < 10 s)")
        print(f"StartNotebookInstance  -> InService: median {result['start_median_s']:.2f} s "
              f"(runs: {', '.join(f'{v:.2f}' for v in start)}; target < 5 s)")
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
