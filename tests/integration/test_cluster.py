"""Three servers on one PostgreSQL database and one shared data directory (object store, master
key): executions started through every server run each step once, a server killed with SIGKILL has
its claims taken over once its lease expires, and every execution still finishes Succeeded."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from stratum_testing import BACKENDS, StratumServer, create_pg_database, drop_pg_database, pipeline_role
from test_jobs_support import SKLEARN_IMAGE, processing_request, put, sagemaker_role, wait_job
from test_jobs_support import wait_status as wait_job_status

pytestmark = pytest.mark.slow

LEASE = 4.0
RESTART_REASON = "Stratum restarted while the job was running"

# Each invocation appends "start|done <execution> <step> <pid of the server that ran it>".
FUNCTION_SOURCE = '''
import os, time
RUNS = {runs!r}

def step(event, context):
    line = f"{{event['execution']}} {{event['step']}} {{os.getppid()}}"
    with open(RUNS, "a") as f:
        f.write("start " + line + "\\n")
    time.sleep(float(event.get("sleep", 0.3)))
    with open(RUNS, "a") as f:
        f.write("done " + line + "\\n")
    return {{"n": 1}}
'''
JOB_SCRIPT = '''
import os, sys, time
execution = sys.argv[1]
with open({runs!r}, "a") as f:
    f.write(f"start {{execution}} Proc job-{{os.getpid()}}\\n")
time.sleep(3)
with open({runs!r}, "a") as f:
    f.write(f"done {{execution}} Proc job-{{os.getpid()}}\\n")
'''


def _postgres_reachable() -> bool:
    try:
        import psycopg
        from stratum_testing import PG_ADMIN_URL

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture
def unstarted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[StratumServer]]:
    """Three servers (not started) on one new PostgreSQL database and one shared data directory."""
    if "postgresql" not in BACKENDS or not _postgres_reachable():
        pytest.skip("PostgreSQL is not available")
    monkeypatch.setenv("STRATUM_ENGINE_POLL_SECONDS", "0.5")
    url = create_pg_database()
    shared = tmp_path / "shared"  # one data directory for all: objects, master key, job logs
    shared.mkdir()
    servers = [StratumServer(shared, url, ["--lease-seconds", str(LEASE)], backend="postgresql",
                             log_path=tmp_path / f"server{i}.log") for i in range(3)]
    try:
        yield servers
    finally:
        for srv in servers:
            srv.stop()
        drop_pg_database(url)


@pytest.fixture
def cluster(unstarted: list[StratumServer]) -> list[StratumServer]:
    for srv in unstarted:
        srv.start()
    return unstarted


def test_a_server_joining_leaves_the_running_jobs_alone(unstarted: list[StratumServer]) -> None:
    # Before claims, a server starting on the same data directory failed the jobs the other ran.
    first, second = unstarted[:2]
    first.start()
    sm = first.client("sagemaker")
    name = f"long-{uuid.uuid4().hex[:8]}"
    sm.create_processing_job(**processing_request(first, name, "import time\ntime.sleep(4)\nprint('done')\n"))
    wait_job_status(sm, "processing", name, lambda d: d["ProcessingJobStatus"] == "InProgress")
    second.start()
    assert wait_job(second.client("sagemaker"), "processing", name, timeout=60)["ProcessingJobStatus"] == "Completed"


def _server_id(log: Path) -> str:
    for line in log.read_text().splitlines():
        if "server id " in line:
            return line.split("server id ", 1)[1].split()[0]
    raise AssertionError(f"no server id in {log}")


def _register(server: StratumServer, tmp_path: Path, runs: Path) -> str:
    code = tmp_path / "code"
    code.mkdir()
    module = f"cluster_fns_{uuid.uuid4().hex[:8]}"
    (code / f"{module}.py").write_text(FUNCTION_SOURCE.format(runs=str(runs)))
    spec = tmp_path / "functions.yaml"
    spec.write_text(json.dumps({"functions": [{"name": "counted", "account": "dev", "handler": f"{module}:step",
                                               "path": str(code), "timeout": 60}]}))
    out = subprocess.run([sys.executable, "-m", "stratum.cli", "lambda", "load", str(spec), "--data-dir",
                          str(server.data_dir), "--database-url", str(server.database_url)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return f"arn:aws:lambda:us-east-1:{server.account_id('dev')}:function:counted"


def _lambda(name: str, fn: str, depends: list[str] | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"Name": name, "Type": "Lambda", "FunctionArn": fn,
                            "Arguments": {"execution": {"Get": "Execution.PipelineExecutionId"}, "step": name,
                                          "sleep": 0.3},
                            "OutputParameters": [{"OutputName": "n", "OutputType": "Integer"}]}
    if depends:
        step["DependsOn"] = depends
    return step


def _definitions(server: StratumServer, fn: str, runs: Path) -> dict[str, list[dict[str, Any]]]:
    condition = {"Name": "Check", "Type": "Condition", "Arguments": {
        "Conditions": [{"Type": "Equals", "LeftValue": {"Get": "Steps.L2.OutputParameters['n']"}, "RightValue": 1}],
        "IfSteps": [_lambda("L4", fn)], "ElseSteps": []}, "DependsOn": ["L3"]}
    lambdas = [_lambda("L1", fn), _lambda("L2", fn, ["L1"]), _lambda("L3", fn, ["L1"]), condition]
    script = put(server, f"cluster/{uuid.uuid4().hex[:8]}/job.py", JOB_SCRIPT.format(runs=str(runs)))
    processing = {"Name": "Proc", "Type": "Processing", "DependsOn": ["L1"], "Arguments": {
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                  "VolumeSizeInGB": 5}},
        "AppSpecification": {"ImageUri": SKLEARN_IMAGE,
                             "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/job.py"],
                             "ContainerArguments": [{"Get": "Execution.PipelineExecutionId"}]},
        "RoleArn": sagemaker_role(server),
        "ProcessingInputs": [{"InputName": "code", "S3Input": {
            "S3Uri": script, "LocalPath": "/opt/ml/processing/input/code", "S3DataType": "S3Prefix",
            "S3InputMode": "File"}}]},
        # A job its server left running is failed by the server that takes it over, as after a
        # restart: the pipeline asks for that failure to be retried.
        "RetryPolicies": [{"ExceptionType": ["SageMaker.JOB_INTERNAL_ERROR"], "MaxAttempts": 2,
                           "IntervalSeconds": 1}]}
    with_job = [_lambda("L1", fn), processing, _lambda("L2", fn, ["Proc"])]
    return {"lambdas": lambdas, "job": with_job}


def _claims(url: str) -> list[Any]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT kind, item_id, owner FROM stratum_claims")))
    finally:
        engine.dispose()


def _jobs(url: str) -> list[Any]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT name, status, failure_reason, node FROM sagemaker_jobs")))
    finally:
        engine.dispose()


def test_three_servers_share_executions_and_survive_a_kill(cluster: list[StratumServer], tmp_path: Path) -> None:
    first, victim, third = cluster
    url = str(first.database_url)
    ids = [_server_id(s.log_path) for s in cluster]
    assert len(set(ids)) == 3
    runs = tmp_path / "runs.txt"
    runs.touch()
    fn = _register(first, tmp_path, runs)
    role = pipeline_role(first)
    pipelines = {}
    for kind, steps in _definitions(first, fn, runs).items():
        name = f"cluster-{kind}-{uuid.uuid4().hex[:6]}"
        first.client("sagemaker").create_pipeline(PipelineName=name, RoleArn=role, PipelineDefinition=json.dumps(
            {"Version": "2020-12-01", "Parameters": [], "Steps": steps}))
        pipelines[kind] = name

    # 12 executions started round-robin through the three servers; each server claims (and runs)
    # the executions started through it.
    started: list[tuple[str, str, int]] = []  # (arn, pipeline kind, server index)
    for i in range(12):
        kind = "job" if i % 4 == 3 else "lambdas"
        srv = cluster[i % 3]
        arn = srv.client("sagemaker").start_pipeline_execution(PipelineName=pipelines[kind])["PipelineExecutionArn"]
        started.append((arn, kind, i % 3))

    # Kill the victim while its executions run: once its job step has started a job.
    deadline = time.monotonic() + 60
    while not any(c.kind == "job" and c.owner == ids[1] for c in _claims(url)):
        assert time.monotonic() < deadline, "the killed server never ran its job step"
        time.sleep(0.05)
    owned_at_kill = [c for c in _claims(url) if c.owner == ids[1]]
    assert any(c.kind == "execution" for c in owned_at_kill), owned_at_kill
    victim.kill()
    killed_at = time.monotonic()

    # Its claims move to the survivors once the lease has expired.
    while any(c.owner == ids[1] for c in _claims(url)):
        assert time.monotonic() - killed_at < LEASE + 15, _claims(url)
        time.sleep(0.05)
    takeover = time.monotonic() - killed_at
    assert takeover >= LEASE * 2 / 3 - 0.5, takeover  # not before the lease (renewed every third of it)

    sm = first.client("sagemaker")
    statuses = {}
    deadline = time.monotonic() + 120
    for arn, _kind, _ in started:
        while True:
            status = sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
            if status != "Executing" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        statuses[arn] = status
    assert set(statuses.values()) == {"Succeeded"}, statuses

    # Nothing lost: every step of every execution has one row, Succeeded.
    expected = {"lambdas": {"L1", "L2", "L3", "Check", "L4"}, "job": {"L1", "Proc", "L2"}}
    retried = 0
    for arn, kind, _ in started:
        steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
        names = [s["StepName"] for s in steps]
        assert sorted(names) == sorted(expected[kind]), (arn, names)
        assert {s["StepStatus"] for s in steps} == {"Succeeded"}, (arn, steps)
        retried += sum(1 for s in steps if s.get("AttemptCount", 1) > 1)

    # Each step ran once. The only second runs are of steps the killed server had in flight (its
    # processes outlive it, as after a restart): never two runs by live servers. A function process
    # the kill orphaned reports its new parent (init), so runs are counted by the survivors' pids.
    lines = [line.split() for line in runs.read_text().splitlines()]
    starts = Counter((e, s) for kind, e, s, _ in lines if kind == "start")
    survivors = {str(s.proc.pid) for s in (first, third) if s.proc}
    by_survivors = Counter((e, s) for kind, e, s, pid in lines if kind == "start" and pid in survivors)
    for arn, kind, _ in started:
        execution = arn.rsplit("/", 1)[1]
        for step in expected[kind] - {"Check"}:
            assert starts[(execution, step)] >= 1, (execution, step)
            assert by_survivors[(execution, step)] <= 1, (execution, step, lines)
    lambda_runs = sum(n for (_, s), n in starts.items() if s != "Proc")
    lambda_steps = sum(len(expected[k] - {"Check", "Proc"}) for _, k, _ in started)
    reruns = {key: n for key, n in starts.items() if n > 1}

    # Jobs: one Completed job per Proc step; any other was the killed server's, failed as after a
    # restart (and retried by the RetryPolicy).
    jobs = _jobs(url)
    by_execution: dict[str, list[Any]] = {}
    for job in jobs:
        by_execution.setdefault(job.name.split("-")[1], []).append(job)
    for arn, kind, _ in started:
        if kind != "job":
            continue
        mine = by_execution[arn.rsplit("/", 1)[1]]
        assert [j.status for j in mine].count("Completed") == 1, mine
        for job in mine:
            if job.status != "Completed":
                assert (job.status, job.failure_reason, job.node) == ("Failed", RESTART_REASON, ids[1]), job
    # Finished work holds no claim.
    assert _claims(url) == []
    print(f"\ncluster: {len(started)} executions Succeeded; {lambda_runs} Lambda runs for {lambda_steps} Lambda "
          f"steps; re-run after the kill: {reruns}; steps retried by RetryPolicies: {retried}; "
          f"{len(owned_at_kill)} claims of the killed server taken over {takeover:.2f} s after kill -9 "
          f"(lease {LEASE} s)")
