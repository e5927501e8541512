"""SageMaker's own events through EventBridge: every pipeline execution and step status change, and
every job status change, is an event of the account's default bus, in the documented shape and in
order; a rule on a failed execution starts another pipeline with the failed execution's ARN (boto3
against a real server)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sqlalchemy import select
from stratum_testing import StratumServer
from test_jobs_support import processing_request, wait_job

from stratum.services.sagemaker.registry.tables import sagemaker_registry_events as outbox_t
from stratum.store.db import Database

STATUS = "SageMaker Model Building Pipeline Execution Status Change"
STEP = "SageMaker Model Building Pipeline Execution Step Status Change"


def _definition(threshold: float) -> str:
    # 0.9: the Gate's condition is false and the execution succeeds; 0.1: the Stop step fails it.
    return json.dumps({"Version": "2020-12-01", "Parameters": [
        {"Name": "FailedExecution", "Type": "String", "DefaultValue": "none"}], "Steps": [
        {"Name": "Gate", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "GreaterThanOrEqualTo", "LeftValue": 0.5, "RightValue": threshold}],
            "IfSteps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "gate closed"}}],
            "ElseSteps": []}}]})


def _wait(probe: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _events(server: StratumServer, resource_arn: str) -> list[Any]:
    db = Database(server.database_url or f"sqlite:///{server.data_dir / 'stratum.db'}")
    try:
        with db.read() as conn:
            rows = conn.execute(select(outbox_t).order_by(outbox_t.c.event_id)).all()
    finally:
        db.dispose()
    return [r for r in rows if r.source == "aws.sagemaker" and resource_arn in r.resources]


def test_execution_and_step_events_in_order(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = f"events-{uuid.uuid4().hex[:6]}"
    role = f"arn:aws:iam::{server.account_id('dev')}:role/events-pipeline"
    pipeline_arn = sm.create_pipeline(PipelineName=name, RoleArn=role, PipelineDefinition=_definition(0.1),
                                      PipelineDescription="fails")["PipelineArn"]
    arn = sm.start_pipeline_execution(PipelineName=name, PipelineExecutionDisplayName="shown",
                                      PipelineExecutionDescription="why")["PipelineExecutionArn"]
    _wait(lambda: sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Failed",
          "the execution to fail")
    events = _wait(lambda: [e for e in _events(server, arn)] if len(_events(server, arn)) >= 4 else None,
                   "the events")
    flow = [(e.detail_type, e.detail.get("stepName"),
             e.detail.get("currentStepStatus") or e.detail.get("currentPipelineExecutionStatus")) for e in events]
    assert flow == [(STATUS, None, "Executing"), (STEP, "Gate", "Succeeded"), (STEP, "Stop", "Failed"),
                    (STATUS, None, "Failed")], flow
    first, step, failed, last = events
    assert first.resources == [pipeline_arn, arn]
    assert first.detail == {"pipelineExecutionDisplayName": "shown", "currentPipelineExecutionStatus": "Executing",
                            "executionStartTime": first.detail["executionStartTime"],
                            "pipelineExecutionDescription": "why", "pipelineArn": pipeline_arn,
                            "pipelineExecutionArn": arn}
    assert last.detail["previousPipelineExecutionStatus"] == "Executing"
    assert last.detail["executionEndTime"] >= last.detail["executionStartTime"]
    assert step.detail["stepType"] == "Condition"
    assert step.detail["metadata"] == {"condition": {"outcome": "True"}}  # 0.5 >= 0.1
    assert step.detail["previousStepStatus"] == "Executing"
    assert step.detail["stepStartTime"] <= step.detail["stepEndTime"]
    assert (failed.detail["stepType"], failed.detail["failureReason"]) == ("Fail", "gate closed")
    assert failed.detail["metadata"] == {"fail": {"errorMessage": "gate closed"}}


def test_a_rule_on_failed_executions_starts_another_pipeline(server: StratumServer) -> None:
    sm, events = server.client("sagemaker"), server.client("events")
    account = server.account_id("dev")
    iam = server.client("iam")
    role_name = f"events-start-{uuid.uuid4().hex[:6]}"
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    iam.put_role_policy(RoleName=role_name, PolicyName="start", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sagemaker:StartPipelineExecution",
                                                "Resource": "*"}]}))
    pipeline_role = f"arn:aws:iam::{account}:role/events-pipeline"
    failing, handler = f"failing-{uuid.uuid4().hex[:6]}", f"on-failure-{uuid.uuid4().hex[:6]}"
    failing_arn = sm.create_pipeline(PipelineName=failing, RoleArn=pipeline_role,
                                     PipelineDefinition=_definition(0.1))["PipelineArn"]
    handler_arn = sm.create_pipeline(PipelineName=handler, RoleArn=pipeline_role,
                                     PipelineDefinition=_definition(0.9))["PipelineArn"]
    rule = events.put_rule(Name=f"failed-{uuid.uuid4().hex[:6]}", EventPattern=json.dumps({
        "source": ["aws.sagemaker"], "detail-type": [STATUS],
        "detail": {"currentPipelineExecutionStatus": ["Failed"], "pipelineArn": [failing_arn]}}))["RuleArn"]
    events.put_targets(Rule=rule.rsplit("/", 1)[1], Targets=[{
        "Id": "handler", "Arn": handler_arn, "RoleArn": role, "SageMakerPipelineParameters": {
            "PipelineParameterList": [{"Name": "FailedExecution", "Value": "$.detail.pipelineExecutionArn"}]}}])
    failed = sm.start_pipeline_execution(PipelineName=failing)["PipelineExecutionArn"]
    started = _wait(lambda: sm.list_pipeline_executions(PipelineName=handler)["PipelineExecutionSummaries"],
                    "the handler pipeline to start")
    assert len(started) == 1
    parameters = sm.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=started[0]["PipelineExecutionArn"])["PipelineParameters"]
    assert parameters == [{"Name": "FailedExecution", "Value": failed}]
    # The handler's own success matches nothing: it does not start itself again.
    time.sleep(2)
    assert len(sm.list_pipeline_executions(PipelineName=handler)["PipelineExecutionSummaries"]) == 1


def test_job_state_changes(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = f"events-job-{uuid.uuid4().hex[:6]}"
    arn = sm.create_processing_job(**processing_request(server, name, "print('hello')\n"))["ProcessingJobArn"]
    assert wait_job(sm, "processing", name)["ProcessingJobStatus"] == "Completed"
    events = _wait(lambda: _events(server, arn) if len(_events(server, arn)) >= 2 else None, "the job's events")
    assert [(e.detail_type, e.detail["ProcessingJobStatus"]) for e in events] == [
        ("SageMaker Processing Job State Change", "InProgress"), ("SageMaker Processing Job State Change", "Completed")]
    last = events[-1].detail
    assert (last["ProcessingJobName"], last["ProcessingJobArn"]) == (name, arn)
    assert isinstance(last["CreationTime"], int) and last["ProcessingEndTime"] >= last["CreationTime"]
