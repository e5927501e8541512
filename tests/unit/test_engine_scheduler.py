"""The engine in-process with fake job-step handlers: arguments and properties, job names,
metadata published while running, retry policies on job error types, fail-fast, stop, a missing
handler, and resuming a running handler step after a restart of the engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from engine_testing import ACCOUNT, ACTOR, REGION, engine_app, engine_of, new_pipeline

from stratum.engine import handlers
from stratum.engine.handlers import StepResult, StepRun
from stratum.engine.records import ExecKey, load_steps
from stratum.engine.scheduler import PipelineEngine
from stratum.server.app_state import AppState
from stratum.services.sagemaker.pipelines import records as pl


@pytest.fixture
def app(tmp_path: Any) -> Iterator[AppState]:
    with engine_app(tmp_path, poll_seconds=0.2) as state:
        yield state


def start(app: AppState, steps: list[dict[str, Any]], parameters: list[dict[str, Any]] | None = None,
          supplied: list[dict[str, str]] | None = None, parallelism: int | None = None) -> ExecKey:
    with app.db.begin() as conn:
        row, defn, now = new_pipeline(conn, steps, parameters)
        arn = pl.start_execution(conn, row, defn, supplied=supplied, display_name=None, description=None,
                                 parallelism={"MaxParallelExecutionSteps": parallelism} if parallelism else None,
                                 selective=None, role_arn=None, mlflow_experiment_name=None, actor=ACTOR, now=now)
    key = ExecKey(ACCOUNT, REGION, arn.rsplit("/", 1)[1])
    engine_of(app).execution_started(*_key_args(key))
    return key


def _key_args(key: ExecKey) -> tuple[str, str, str]:
    return key.account_id, key.region, key.execution_id


def execution(app: AppState, key: ExecKey) -> Any:
    from stratum.engine.records import load_execution

    with app.db.read() as conn:
        return load_execution(conn, key)


def steps(app: AppState, key: ExecKey) -> dict[str, Any]:
    with app.db.read() as conn:
        return {r.step_name: r for r in load_steps(conn, key)}


def wait(app: AppState, key: ExecKey, statuses: tuple[str, ...] = ("Succeeded", "Failed", "Stopped"),
         timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        row = execution(app, key)
        if row.status in statuses:
            return row
        assert time.monotonic() < deadline, f"execution is {row.status}: {steps(app, key)}"
        time.sleep(0.02)


def processing(name: str, **extra: Any) -> dict[str, Any]:
    return {"Name": name, "Type": "Processing", "Arguments": {
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "train", "S3Output": {
            "S3Uri": {"Std:Join": {"On": "/", "Values": ["s3://bucket", {"Get": "Execution.PipelineExecutionId"},
                                                         "train"]}}}}]},
        "Environment": {"JOB": {"Get": "Execution.ProcessingJobName"}}}, **extra}


def describe_like(run: StepRun) -> dict[str, Any]:
    """What a real handler returns: the DescribeProcessingJob response of its job."""
    return {"ProcessingJobName": run.extra["job_name"], "ProcessingJobStatus": "Completed",
            "ProcessingOutputConfig": run.arguments["ProcessingOutputConfig"],
            "CreationTime": datetime(2024, 1, 2, tzinfo=UTC)}


def test_handler_gets_resolved_arguments_and_its_properties_feed_later_steps(
        app: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[StepRun] = []

    def fake(run: StepRun) -> StepResult:
        seen.append(run)
        return StepResult(status="Succeeded", properties=describe_like(run),
                          metadata={"ProcessingJob": {"Arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/"
                                                             f"{run.extra['job_name']}"}})

    monkeypatch.setitem(handlers._resolved, "Processing", fake)
    engine_of(app).start()
    key = start(app, [processing("Prep"), {"Name": "Check", "Type": "Condition", "Arguments": {
        "Conditions": [{"Type": "Equals", "RightValue": "s3://bucket/{}/train",
                        "LeftValue": {"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}}],
        "IfSteps": [], "ElseSteps": [{"Name": "Echo", "Type": "Fail", "Arguments": {"ErrorMessage": {
            "Get": "Steps.Prep.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}}}]}}])
    row = wait(app, key)
    (run,) = seen
    assert run.extra["job_name"].startswith(f"pipelines-{key.execution_id}-Prep-")
    assert run.arguments["Environment"] == {"JOB": run.extra["job_name"]}
    assert run.extra["resume"] is False and run.attempt == 1 and run.account_id == ACCOUNT
    assert run.role_arn == f"arn:aws:iam::{ACCOUNT}:role/r"
    # The Condition compared against a literal "{}": false, so the Fail step shows the resolved URI.
    assert row.status == "Failed" and row.failure_reason == f"s3://bucket/{key.execution_id}/train"
    listed = steps(app, key)
    assert listed["Prep"].status == "Succeeded"
    assert listed["Prep"].outputs["CreationTime"] == "2024-01-02T00:00:00+00:00"
    assert listed["Prep"].step_metadata["ProcessingJob"]["Arn"].endswith(run.extra["job_name"])


def test_metadata_is_published_while_running_and_stop_reaches_the_handler(
        app: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    started = threading.Event()

    def fake(run: StepRun) -> StepResult:
        run.set_metadata({"ProcessingJob": {"Arn": "arn:job"}})
        started.set()
        assert run.stop_event.wait(10)
        return StepResult(status="Stopped", metadata={"ProcessingJob": {"Arn": "arn:job"}})

    monkeypatch.setitem(handlers._resolved, "Processing", fake)
    engine_of(app).start()
    key = start(app, [processing("Prep"), {"Name": "Never", "Type": "Fail", "DependsOn": ["Prep"],
                                           "Arguments": {"ErrorMessage": "x"}}])
    assert started.wait(10)
    row = steps(app, key)["Prep"]
    assert row.status == "Executing" and row.step_metadata == {"ProcessingJob": {"Arn": "arn:job"}}
    with app.db.begin() as conn:
        assert pl.stop_execution(conn, execution(app, key), ACTOR, datetime.now(UTC)) == "Stopping"
    engine_of(app).execution_stopping(*_key_args(key))
    row = wait(app, key)
    assert row.status == "Stopped" and row.failure_reason is None
    assert {n: r.status for n, r in steps(app, key).items()} == {"Prep": "Stopped"}


def test_job_error_types_are_retried_and_a_failure_stops_new_steps(
        app: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[tuple[int, str]] = []

    def fake(run: StepRun) -> StepResult:
        attempts.append((run.attempt, run.extra["job_name"]))
        if run.attempt < 3:
            return StepResult(status="Failed", failure_reason="capacity", error_type="SageMaker.CAPACITY_ERROR")
        return StepResult(status="Failed", failure_reason="ClientError: bad input", error_type=None)

    monkeypatch.setitem(handlers._resolved, "Processing", fake)
    engine_of(app).start()
    retry = [{"ExceptionType": ["SageMaker.CAPACITY_ERROR"], "IntervalSeconds": 0.05, "BackoffRate": 1.0,
              "MaxAttempts": 5}]
    # Parallelism 1: the independent Later step is never started once Prep has failed.
    key = start(app, [processing("Prep", RetryPolicies=retry),
                      {"Name": "Later", "Type": "Fail", "Arguments": {"ErrorMessage": "x"}}], parallelism=1)
    row = wait(app, key)
    assert row.status == "Failed" and row.failure_reason == "Step failure: One or multiple steps failed."
    assert [a for a, _ in attempts] == [1, 2, 3]
    assert len({name for _, name in attempts}) == 3  # a new job per attempt
    listed = steps(app, key)
    assert set(listed) == {"Prep"}
    assert listed["Prep"].attempt_count == 3 and listed["Prep"].failure_reason == "ClientError: bad input"


def test_missing_handler_fails_the_step(app: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(handlers.STEP_HANDLERS, "Training", "stratum.no_such_module:run")
    monkeypatch.delitem(handlers._resolved, "Training", raising=False)
    engine_of(app).start()
    key = start(app, [{"Name": "Train", "Type": "Training", "Arguments": {}}])
    wait(app, key)
    reason = steps(app, key)["Train"].failure_reason
    assert reason.startswith("No handler is available for step type Training in this Stratum build")


def test_running_handler_step_is_resumed_by_a_new_engine(app: AppState, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[StepRun] = []
    first_running = threading.Event()

    def fake(run: StepRun) -> StepResult:
        runs.append(run)
        if len(runs) == 1:
            first_running.set()
            run.extra["shutdown"].wait(10)  # the server goes down while the job runs
            return StepResult(status="Failed", failure_reason="interrupted")
        return StepResult(status="Succeeded", properties=describe_like(run))

    monkeypatch.setitem(handlers._resolved, "Processing", fake)
    engine = engine_of(app)
    engine.start()
    key = start(app, [processing("Prep")])
    assert first_running.wait(10)
    engine.stop()
    # Nothing was recorded for the interrupted run: the step is still running.
    assert steps(app, key)["Prep"].status == "Executing"
    assert execution(app, key).status == "Executing"

    fresh = PipelineEngine(app)
    fresh.poll_seconds = 0.2
    app.add_background(fresh)
    fresh.start()
    row = wait(app, key)
    assert row.status == "Succeeded"
    first, second = runs
    assert second.extra["resume"] is True and second.extra["job_name"] == first.extra["job_name"]
    assert second.attempt == first.attempt == 1


def test_functions_file_is_registered_when_the_engine_starts(app: AppState, tmp_path: Any) -> None:
    from stratum.bootstrap import bootstrap
    from stratum.engine.functions import get_function

    bootstrap(app.db, app.settings)
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "mod.py").write_text("def score(event, context):\n    return 1\n")
    spec = tmp_path / "functions.yaml"
    spec.write_text("functions:\n"
                    "  - {name: scorer, account: dev, handler: 'pkg.mod:score', path: src, timeout: 30,\n"
                    "     environment: {STAGE: test}}\n"
                    "  - {name: shell, account: dev, region: eu-west-1, command: 'echo {}'}\n")
    app.settings.functions_file = spec
    engine_of(app).start()
    with app.db.read() as conn:
        from stratum.services.organizations.accounts import find_account

        dev = find_account(conn, "dev")
        assert dev is not None
        scorer = get_function(conn, dev["id"], REGION, "scorer")
        shell = get_function(conn, dev["id"], "eu-west-1", "shell")
    # Real Lambda functions: the handler as Lambda writes it, the directory as the zipped code.
    assert scorer is not None and scorer["Handler"] == "pkg.mod.score" and scorer["Timeout"] == 30
    assert scorer["Runtime"] == "python3.11" and scorer["Environment"] == {"Variables": {"STAGE": "test"}}
    assert scorer["CodeSize"] > 0
    assert shell is not None and shell["Runtime"] == "provided.al2023"
    assert shell["StratumCommand"] == ["/bin/sh", "-c", "echo {}"]
