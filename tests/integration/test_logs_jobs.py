"""A job's output reaches CloudWatch Logs while it runs: each stdout and stderr line is an event of
the job's stream in /aws/sagemaker/ProcessingJobs (``<job>/algo-1-<epoch>``) in the job's account,
read with boto3 and the AWS CLI while the job is still running; ``stratum logs`` prints the same
lines; another account sees nothing. The same on the Ray executor."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
from botocore.exceptions import ClientError
from stratum_testing import StratumServer
from test_jobs_support import processing_request, uid, wait_job

try:  # the Ray executor's cluster and server fixtures, when Ray is installed
    from test_ray_executor import ray_cluster, ray_server  # noqa: F401
except pytest.skip.Exception:
    @pytest.fixture
    def ray_server() -> StratumServer:
        pytest.skip("Ray is not installed")

SCRIPT = """
import sys, time
print("job says hello", flush=True)
print("a warning on stderr", file=sys.stderr, flush=True)
time.sleep(4)
for i in range(3):
    print(f"tick {i}", flush=True)
print('{"event": "done", "count": 3}', flush=True)
"""
GROUP = "/aws/sagemaker/ProcessingJobs"


def test_processing_job_output_is_streamed_to_cloudwatch_logs(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    logs = server.client("logs")
    name = uid("proc-logs")
    sm.create_processing_job(**processing_request(server, name, SCRIPT))

    # While the job runs, its stream exists and already holds the first lines.
    deadline = time.monotonic() + 120
    early: list[str] = []
    stream = None
    while time.monotonic() < deadline:
        try:
            streams = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=f"{name}/")["logStreams"]
        except ClientError:
            streams = []
        if streams:
            stream = streams[0]["logStreamName"]
            early = [e["message"] for e in logs.get_log_events(logGroupName=GROUP, logStreamName=stream,
                                                               startFromHead=True)["events"]]
            if "job says hello" in early:
                break
        time.sleep(0.2)
    assert stream is not None and re.fullmatch(rf"{name}/algo-1-\d{{10}}", stream), stream
    status = sm.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"]
    assert "job says hello" in early and "tick 0" not in early and status == "InProgress", (early, status)

    assert wait_job(sm, "processing", name)["ProcessingJobStatus"] == "Completed"
    events = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, startFromHead=True)["events"]
    messages = [e["message"] for e in events]
    job_lines = [m for m in messages if not m.startswith("[stratum]")]
    assert job_lines == ["job says hello", "a warning on stderr", "tick 0", "tick 1", "tick 2",
                         '{"event": "done", "count": 3}'], messages
    stamp = {e["message"]: e["timestamp"] for e in events}
    assert stamp["tick 0"] - stamp["job says hello"] >= 3000  # stamped as appended, not at the end

    # The AWS CLI reads the same events.
    cli = json.loads(server.aws_cli("logs", "get-log-events", "--log-group-name", GROUP, "--log-stream-name",
                                    stream, "--start-from-head").stdout)
    assert [e["message"] for e in cli["events"]] == messages
    cli = json.loads(server.aws_cli("logs", "filter-log-events", "--log-group-name", GROUP,
                                    "--log-stream-name-prefix", f"{name}/", "--filter-pattern", "tick -1").stdout)
    assert [e["message"] for e in cli["events"]] == ["tick 0", "tick 2"]
    found = logs.filter_log_events(logGroupName=GROUP, logStreamNamePrefix=f"{name}/",
                                   filterPattern="{ $.count >= 3 }")["events"]
    assert [e["message"] for e in found] == ['{"event": "done", "count": 3}']

    # stratum logs prints the same store.
    out = subprocess.run([sys.executable, "-m", "stratum.cli", "logs", name, "--data-dir", str(server.data_dir),
                          "--type", "processing", *(["--database-url", server.database_url]
                                                    if server.database_url else [])],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == messages

    # Another account has no such stream and cannot read this one by ARN.
    other = server.client("logs", "test")
    try:
        theirs = other.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=f"{name}/")["logStreams"]
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ResourceNotFoundException"
        theirs = []
    assert theirs == []
    arn = f"arn:aws:logs:us-east-1:{server.account_id('dev')}:log-group:{GROUP}"
    try:
        other.get_log_events(logGroupIdentifier=arn, logStreamName=stream)
        raise AssertionError("another account read the job's log")
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AccessDeniedException"


@pytest.mark.slow
def test_job_on_ray_streams_its_output(ray_server: StratumServer) -> None:
    """On the Ray executor the runner in the Ray task stamps the lines into the same stream (a
    worker on a machine sharing the data directory; otherwise the log arrives when the job ends)."""
    server = ray_server
    sm = server.client("sagemaker")
    logs = server.client("logs")
    name = uid("ray-logs")
    sm.create_processing_job(**processing_request(server, name, SCRIPT))
    deadline = time.monotonic() + 120
    early: list[str] = []
    while time.monotonic() < deadline and "job says hello" not in early:
        try:
            streams = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=f"{name}/")["logStreams"]
        except ClientError:
            streams = []
        if streams:
            early = [e["message"] for e in logs.get_log_events(
                logGroupName=GROUP, logStreamName=streams[0]["logStreamName"], startFromHead=True)["events"]]
        time.sleep(0.2)
    assert "job says hello" in early and "tick 0" not in early, early
    assert wait_job(sm, "processing", name)["ProcessingJobStatus"] == "Completed"
    events = logs.filter_log_events(logGroupName=GROUP, logStreamNamePrefix=f"{name}/", filterPattern="tick")
    assert [e["message"] for e in events["events"]] == ["tick 0", "tick 1", "tick 2"]
