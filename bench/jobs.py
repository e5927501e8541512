"""Job launch overhead: how long a Processing job whose script does nothing takes from InProgress
to Completed, on a real Stratum server subprocess (SQLite, local executor).

The time is the server's own: ProcessingEndTime - CreationTime from DescribeProcessingJob (the
job is InProgress from its creation), so client polling adds nothing. Two shapes:

* ``bare``: ContainerEntrypoint ["python3", "-c", "pass"], no inputs or outputs: pure overhead
  (role session, job directory, isolation, process start, bookkeeping);
* ``sdk``: the SageMaker SDK's ScriptProcessor layout: the (empty) script is an S3 input at
  /opt/ml/processing/input/code and the entrypoint is ["python3", ".../script.py"], plus one
  output uploaded at the end (so one S3 download and one upload are included).

Jobs are run one at a time (the figure is latency, not throughput), after a few warm-up jobs.

Usage: python bench/jobs.py [--jobs 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from botocore.config import Config
from harness import account_session, free_port, percentile, start_server

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def run_job(sm: Any, request: dict[str, Any], poll: float = 0.01) -> float:
    """Create a processing job, wait for it, and return its CreationTime-to-end in ms."""
    sm.create_processing_job(**request)
    name = request["ProcessingJobName"]
    while True:
        d = sm.describe_processing_job(ProcessingJobName=name)
        if d["ProcessingJobStatus"] not in ("InProgress", "Stopping"):
            break
        time.sleep(poll)
    if d["ProcessingJobStatus"] != "Completed":
        raise RuntimeError(f"{name}: {d['ProcessingJobStatus']}: {d.get('FailureReason')}")
    return (d["ProcessingEndTime"] - d["CreationTime"]).total_seconds() * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="stratum-bench-jobs-"))
    port = free_port()
    server = start_server(data_dir, port)
    try:
        session = account_session(data_dir)
        cfg = Config(s3={"addressing_style": "path"})
        endpoint = f"http://127.0.0.1:{port}"
        sm = session.client("sagemaker", endpoint_url=endpoint, config=cfg)
        s3 = session.client("s3", endpoint_url=endpoint, config=cfg)
        iam = session.client("iam", endpoint_url=endpoint, config=cfg)
        role = iam.create_role(RoleName="bench-jobs", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "sagemaker.amazonaws.com"}}]}))["Role"]["Arn"]
        iam.attach_role_policy(RoleName="bench-jobs", PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")
        bucket = "bench-jobs-" + uuid.uuid4().hex[:8]
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="code/script.py", Body=b"")
        resources = {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 5}}

        def bare(name: str) -> dict[str, Any]:
            return {"ProcessingJobName": name, "RoleArn": role, "ProcessingResources": resources,
                    "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["python3", "-c", "pass"]}}

        def sdk(name: str) -> dict[str, Any]:
            return {"ProcessingJobName": name, "RoleArn": role, "ProcessingResources": resources,
                    "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": [
                        "python3", "/opt/ml/processing/input/code/script.py"]},
                    "ProcessingInputs": [{"InputName": "code", "S3Input": {
                        "S3Uri": f"s3://{bucket}/code/script.py", "LocalPath": "/opt/ml/processing/input/code",
                        "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
                    "ProcessingOutputConfig": {"Outputs": [{"OutputName": "out", "S3Output": {
                        "S3Uri": f"s3://{bucket}/out/{name}", "LocalPath": "/opt/ml/processing/output",
                        "S3UploadMode": "EndOfJob"}}]}}

        results: dict[str, dict[str, float]] = {}
        for label, build in (("bare", bare), ("sdk", sdk)):
            for i in range(args.warmup):
                run_job(sm, build(f"warm-{label}-{i}-{uuid.uuid4().hex[:6]}"))
            times = [run_job(sm, build(f"{label}-{i}-{uuid.uuid4().hex[:6]}")) for i in range(args.jobs)]
            results[label] = {"jobs": len(times), "median_ms": statistics.median(times),
                              "p90_ms": percentile(times, 0.9), "min_ms": min(times), "max_ms": max(times)}
        with urllib.request.urlopen(f"{endpoint}/_stratum/health", timeout=2):
            pass
    finally:
        server.terminate()
        server.wait(timeout=30)
    isolation = _isolation(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)
    print(f"Processing job launch overhead, InProgress -> Completed (server timestamps), {args.jobs} jobs "
          f"each, isolation {isolation}, load average {os.getloadavg()[0]:.2f}")
    print(f"{'shape':8} {'median ms':>10} {'p90 ms':>8} {'min ms':>8} {'max ms':>8}")
    for label, r in results.items():
        print(f"{label:8} {r['median_ms']:10.1f} {r['p90_ms']:8.1f} {r['min_ms']:8.1f} {r['max_ms']:8.1f}")
    target = results["bare"]["median_ms"] < 300
    print(f"target: median under 300 ms for a no-op job: {'PASS' if target else 'FAIL'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"isolation": isolation, **results}, indent=2))
    return 0 if target else 1


def _isolation(data_dir: Path) -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from stratum.jobs.process import available_isolation

    return available_isolation()


if __name__ == "__main__":
    sys.exit(main())
