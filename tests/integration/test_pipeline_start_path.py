"""StartPipelineExecution's record, as a client sees it: ClientRequestToken replays (also when the
request would no longer pass, and not after the token's day), the pipeline's LastRunTime and each
version's last execution, and a one-step Fail pipeline run to its end (on SQLite within the start)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select, update
from stratum_testing import StratumServer

from stratum.services.sagemaker.tables import sagemaker_pipeline_executions as executions_t
from stratum.store.db import Database


def _definition(parameters: list[dict[str, Any]], message: Any = "stop") -> str:
    return json.dumps({"Version": "2020-12-01", "Parameters": parameters,
                       "Steps": [{"Name": "F", "Type": "Fail", "Arguments": {"ErrorMessage": message}}]})


def _create(server: StratumServer, definition: str) -> str:
    name = f"start-{uuid.uuid4().hex[:10]}"
    server.client("sagemaker").create_pipeline(
        PipelineName=name, PipelineDefinition=definition,
        RoleArn=f"arn:aws:iam::{server.account_id('dev')}:role/pipeline-role")
    return name


def _database(server: StratumServer) -> Database:
    return Database(server.database_url or f"sqlite:///{server.data_dir / 'stratum.db'}")


def _wait_status(sm: Any, arn: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        if described["PipelineExecutionStatus"] != "Executing":
            return described
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_retry_gets_the_first_answer_even_if_it_would_not_pass_now(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = _create(server, _definition([{"Name": "Epochs", "Type": "Integer", "DefaultValue": 1}]))
    token = uuid.uuid4().hex
    params = [{"Name": "Epochs", "Value": "3"}]
    first = sm.start_pipeline_execution(PipelineName=name, ClientRequestToken=token,
                                        PipelineParameters=params)["PipelineExecutionArn"]
    # The latest version no longer has the parameter: a new request with it fails validation...
    sm.update_pipeline(PipelineName=name, PipelineDefinition=_definition([]))
    with pytest.raises(ClientError) as exc:
        sm.start_pipeline_execution(PipelineName=name, ClientRequestToken=uuid.uuid4().hex,
                                    PipelineParameters=params)
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    # ...but the retry of the first one gets its answer, and a changed retry is a conflict.
    again = sm.start_pipeline_execution(PipelineName=name, ClientRequestToken=token, PipelineParameters=params)
    assert again["PipelineExecutionArn"] == first
    with pytest.raises(ClientError) as exc:
        sm.start_pipeline_execution(PipelineName=name, ClientRequestToken=token,
                                    PipelineParameters=[{"Name": "Epochs", "Value": "4"}])
    assert exc.value.response["Error"]["Code"] == "ConflictException"
    assert len(sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"]) == 1


def test_token_is_new_again_after_a_day(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = _create(server, _definition([]))
    token = uuid.uuid4().hex
    first = sm.start_pipeline_execution(PipelineName=name, ClientRequestToken=token)["PipelineExecutionArn"]
    db = _database(server)
    try:
        with db.begin() as conn:
            created = conn.execute(select(executions_t.c.created_at).where(executions_t.c.arn == first)).scalar_one()
            conn.execute(update(executions_t).where(executions_t.c.arn == first).values(
                created_at=created - timedelta(hours=25)))
        second = sm.start_pipeline_execution(PipelineName=name, ClientRequestToken=token)["PipelineExecutionArn"]
        assert second != first
        with db.read() as conn:
            tokens = dict(conn.execute(select(executions_t.c.arn, executions_t.c.client_token).where(
                executions_t.c.arn.in_([first, second]))).all())
        assert tokens == {first: None, second: token}
    finally:
        db.dispose()
    assert sm.start_pipeline_execution(PipelineName=name, ClientRequestToken=token)["PipelineExecutionArn"] == second


def test_last_run_and_last_execution_per_version(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = _create(server, _definition([]))
    described = sm.describe_pipeline(PipelineName=name)
    assert "LastRunTime" not in described
    assert "LastExecutionPipelineExecutionArn" not in \
        sm.list_pipeline_versions(PipelineName=name)["PipelineVersionSummaries"][0]
    v1_first = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    v1_last = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    sm.update_pipeline(PipelineName=name, PipelineDefinition=_definition([], "v2"))
    v2 = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    versions = {v["PipelineVersionId"]: v.get("LastExecutionPipelineExecutionArn")
                for v in sm.list_pipeline_versions(PipelineName=name)["PipelineVersionSummaries"]}
    assert versions == {1: v1_last, 2: v2} and v1_first not in versions.values()
    started = sm.describe_pipeline_execution(PipelineExecutionArn=v2)["CreationTime"]
    assert sm.describe_pipeline(PipelineName=name)["LastRunTime"] == started
    summary = sm.list_pipelines(PipelineNamePrefix=name)["PipelineSummaries"][0]
    assert summary["LastExecutionTime"] == started
    # Still the pipeline's last run after the version it ran is no longer the latest.
    sm.update_pipeline(PipelineName=name, PipelineDefinition=_definition([], "v3"))
    assert sm.describe_pipeline(PipelineName=name)["LastRunTime"] == started


def test_one_step_fail_pipeline_runs_to_its_end(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = _create(server, _definition([{"Name": "Why", "Type": "String", "DefaultValue": "d"}],
                                       {"Std:Join": {"On": ": ", "Values": ["failed", {"Get": "Parameters.Why"}]}}))
    arn = sm.start_pipeline_execution(PipelineName=name, PipelineParameters=[{"Name": "Why", "Value": "because"}],
                                      ParallelismConfiguration={"MaxParallelExecutionSteps": 2},
                                      )["PipelineExecutionArn"]
    if server.database_url is None:
        # SQLite: a first Fail step is decided in the start's own commit, so the answer comes after it.
        first = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        assert (first["PipelineExecutionStatus"], first["FailureReason"]) == ("Failed", "failed: because")
    described = _wait_status(sm, arn)
    assert (described["PipelineExecutionStatus"], described["FailureReason"]) == ("Failed", "failed: because")
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert len(steps) == 1
    step = steps[0]
    assert (step["StepName"], step["StepStatus"], step["FailureReason"]) == ("F", "Failed", "failed: because")
    assert step["Metadata"] == {"Fail": {"ErrorMessage": "failed: because"}}
    assert step["StartTime"] <= step["EndTime"]
    with pytest.raises(ClientError) as exc:
        sm.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken=uuid.uuid4().hex)
    assert exc.value.response["Error"]["Code"] == "ConflictException"


def test_a_replayed_start_adds_nothing(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = _create(server, _definition([]))
    token = uuid.uuid4().hex
    first = sm.start_pipeline_execution(PipelineName=name, ClientRequestToken=token)["PipelineExecutionArn"]
    for _ in range(3):
        assert sm.start_pipeline_execution(PipelineName=name, ClientRequestToken=token)["PipelineExecutionArn"] == first
    described = _wait_status(sm, first)
    assert (described["PipelineExecutionStatus"], described["FailureReason"]) == ("Failed", "stop")
    assert [e["PipelineExecutionArn"] for e in
            sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"]] == [first]
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=first)["PipelineExecutionSteps"]
    assert [(s["StepName"], s["StepStatus"]) for s in steps] == [("F", "Failed")]


def test_a_first_step_whose_expression_fails_is_recorded_failed(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = _create(server, _definition([], {"Std:Join": {"On": 1, "Values": ["a"]}}))
    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    assert _wait_status(sm, arn)["PipelineExecutionStatus"] == "Failed"
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert [(s["StepName"], s["StepStatus"], s["FailureReason"]) for s in steps] == [
        ("F", "Failed", "Std:Join 'On' must be a string.")]
