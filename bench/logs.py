"""CloudWatch Logs: what capturing a job's output costs, and how fast its events are read back.

On a real Stratum server subprocess (SQLite, local executor), account ``dev``:

1. **Capture.** A Processing job whose script prints N lines (default 1,000,000) to stdout, and the
   same job with the script's stdout sent to /dev/null. Time = ProcessingEndTime - CreationTime
   from DescribeProcessingJob (the server's own clock). Also, without a server, the process itself
   through ``stratum.jobs.process.run`` (what a job's command runs under, its output stamped into
   the log stream while it runs) beside the same command with stdout to /dev/null and to a plain
   file: the capture cost without the job's launch overhead.
2. **GetLogEvents.** The logged job's stream read from the head with boto3, pages of 10,000
   events (startFromHead, nextForwardToken) until an empty page: wall time per call at the client
   (request, server, JSON parsing).
3. **FilterLogEvents.** One call over the job's stream with a quoted term that matches one event,
   so the whole stream (N events) is scanned in one request, beside grep -c over a plain file with
   the same lines; and one with the pattern ``-payload`` (an exclusion only: no substring to search
   for, so every line is tested; it matches only Stratum's own lines).

Usage: python bench/logs.py [--lines 1000000] [--runs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from harness import REGION, account_session, free_port, start_server
from jobs import IMAGE, run_job

# One line of code: a container entrypoint argument may not hold newlines. Jobs run with
# PYTHONUNBUFFERED=1 (as SageMaker's containers do), so every print is a write(2) on fd 1; the
# /dev/null and plain-file variants point fd 1 elsewhere and keep exactly that behaviour.
PRINTER = ("import os, sys; "
           "sys.argv[2] != 'stdout' and os.dup2(os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND), 1); "
           "[print(f'line {i:07d} of the benchmark job, some payload text') for i in range(int(sys.argv[1]))]")


def process_ms(lines: int, mode: str, work: Path) -> float:
    """The printer run the way a job's command runs (process.run), or plainly with stdout to
    /dev/null or a file."""
    from stratum.jobs import process

    argv = [sys.executable, "-c", PRINTER, str(lines), "stdout"]
    log = work / f"{mode}-{uuid.uuid4().hex[:6]}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    if mode == "stream":
        process.run(argv, env=env, cwd=str(work), log_path=str(log), marker="bench",
                    should_stop=lambda: False, deadline=None, grace=1)
    else:
        target = os.devnull if mode == "devnull" else str(log)
        with open(target, "ab") as out:
            subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env, check=True)
    return (time.perf_counter() - started) * 1000


class RawLogs:
    """Signed JSON requests on one keep-alive connection, timed to the last byte of the response
    (the server's time plus loopback; no botocore parsing)."""

    def __init__(self, session: boto3.Session, port: int) -> None:
        import http.client

        self.credentials = session.get_credentials()
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

    def call(self, operation: str, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        body = json.dumps(params).encode()
        request = AWSRequest(method="POST", url=f"http://127.0.0.1:{self.port}/", data=body,
                             headers={"X-Amz-Target": f"Logs_20140328.{operation}",
                                      "Content-Type": "application/x-amz-json-1.1"})
        SigV4Auth(self.credentials, "logs", REGION).add_auth(request)
        started = time.perf_counter()
        self.conn.request("POST", "/", body=body, headers=dict(request.headers.items()))
        response = self.conn.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"{operation}: {response.status} {data[:300]!r}")
        return elapsed, json.loads(data)


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(values):7.1f} ms  p95 {p95:7.1f}  max {max(values):7.1f}  (n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    results: dict[str, Any] = {"lines": args.lines}

    # ------------------------------------------------------------------ capture, without a server
    work = Path(tempfile.mkdtemp(prefix="stratum-bench-logs-proc-"))
    try:
        times: dict[str, list[float]] = {"devnull": [], "file": [], "stream": []}
        for _ in range(args.runs):
            for mode in times:
                times[mode].append(process_ms(args.lines, mode, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(times["devnull"])
    print(f"process printing {args.lines:,} lines (median of {args.runs}):")
    for mode, label in (("devnull", "stdout to /dev/null"), ("file", "stdout to a plain file"),
                        ("stream", "process.run, log stream")):
        m = statistics.median(times[mode])
        print(f"  {label:28s} {m:8.1f} ms  {m / base:5.2f}x")
    results["process_ms"] = {k: statistics.median(v) for k, v in times.items()}

    # ------------------------------------------------------------------------- on a real server
    data_dir = Path(tempfile.mkdtemp(prefix="stratum-bench-logs-"))
    port = free_port()
    server = start_server(data_dir, port)
    try:
        session = account_session(data_dir)
        endpoint = f"http://127.0.0.1:{port}"
        cfg = Config(s3={"addressing_style": "path"}, read_timeout=300)
        sm = session.client("sagemaker", endpoint_url=endpoint, config=cfg)
        logs = session.client("logs", endpoint_url=endpoint, config=cfg)
        iam = session.client("iam", endpoint_url=endpoint, config=cfg)
        role = iam.create_role(RoleName="bench-logs", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "sagemaker.amazonaws.com"}}]}))["Role"]["Arn"]

        plain_target = data_dir / "job-plain.log"

        def request(name: str, mode: str) -> dict[str, Any]:
            target = {"devnull": os.devnull, "file": str(plain_target), "stdout": "stdout"}[mode]
            return {"ProcessingJobName": name, "RoleArn": role,
                    "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                              "VolumeSizeInGB": 5}},
                    "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": [
                        "python3", "-c", PRINTER, str(args.lines), target]}}

        job_times: dict[str, list[float]] = {"devnull": [], "file": [], "stdout": []}
        logged = ""
        run_job(sm, request("bench-warmup-" + uuid.uuid4().hex[:6], "devnull"), poll=0.05)
        for _ in range(args.runs):
            for mode in job_times:
                name = f"bench-{mode}-{uuid.uuid4().hex[:6]}"
                job_times[mode].append(run_job(sm, request(name, mode), poll=0.05))
                if mode == "stdout":
                    logged = name
        base = statistics.median(job_times["devnull"])
        print(f"Processing job printing {args.lines:,} lines, CreationTime -> ProcessingEndTime (median of {args.runs}):")
        for mode, label in (("devnull", "stdout to /dev/null"), ("file", "stdout to a plain file"),
                            ("stdout", "stdout into the log stream")):
            m = statistics.median(job_times[mode])
            print(f"  {label:28s} {m:8.1f} ms  {m / base:5.2f}x")
        results["job_ms"] = {k: statistics.median(v) for k, v in job_times.items()}

        group = "/aws/sagemaker/ProcessingJobs"
        stream = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=logged + "/")["logStreams"][0]
        raw = RawLogs(session, port)
        stream_name = stream["logStreamName"]
        for label, boto in (("served (raw HTTP, to the last byte)", False), ("boto3 get_log_events", True)):
            page_times: list[float] = []
            count = 0
            token = None
            while True:
                params: dict[str, Any] = {"logGroupName": group, "logStreamName": stream_name,
                                          "startFromHead": True, "limit": 10_000}
                if token:
                    params["nextToken"] = token
                if boto:
                    started = time.perf_counter()
                    page = logs.get_log_events(**params)
                    elapsed = (time.perf_counter() - started) * 1000
                else:
                    elapsed, page = raw.call("GetLogEvents", params)
                if not page["events"]:
                    break
                page_times.append(elapsed)
                count += len(page["events"])
                token = page["nextForwardToken"]
            print(f"GetLogEvents, pages of 10,000 over {count:,} events, {label}:")
            print(f"  {summary(page_times)}")
            results["get_log_events_ms" + ("_boto3" if boto else "")] = {
                "median": statistics.median(page_times), "max": max(page_times), "events": count}

        needle = f"line {args.lines // 2:07d} "
        filter_times = []
        matched = 0
        for _ in range(args.runs):
            elapsed, found = raw.call("FilterLogEvents", {"logGroupName": group, "logStreamNames": [stream_name],
                                                          "filterPattern": f'"{needle}"'})
            filter_times.append(elapsed)
            matched = len(found["events"])
        # An exclusion only: no substring to search for, every line is tested.
        alt_times = []
        for _ in range(args.runs):
            elapsed, found = raw.call("FilterLogEvents", {
                "logGroupName": group, "logStreamNames": [stream_name],
                "filterPattern": "-payload"})
            alt_times.append(elapsed)
        alt_matched = len(found["events"])
        plain = data_dir / "plain.log"
        with open(plain, "w") as f:
            for i in range(args.lines):
                f.write(f"line {i:07d} of the benchmark job, some payload text\n")
        grep_times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            subprocess.run(["grep", "-c", needle, str(plain)], capture_output=True)
            grep_times.append((time.perf_counter() - started) * 1000)
        print(f"FilterLogEvents over {count:,} events, one call, {matched} match(es), served (raw HTTP):")
        print(f"  {summary(filter_times)}")
        print(f"  grep -c on a plain file with the same lines: median {statistics.median(grep_times):.1f} ms")
        print(f"FilterLogEvents over {count:,} events, '-payload' (every line tested), {alt_matched} matches, served:")
        print(f"  {summary(alt_times)}")
        results["filter_log_events_every_line_ms"] = statistics.median(alt_times)
        results["filter_log_events_ms"] = statistics.median(filter_times)
        results["grep_ms"] = statistics.median(grep_times)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
