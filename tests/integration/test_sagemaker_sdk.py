"""The SageMaker Python SDK 2.x pipeline workflow against Stratum, unmodified: upsert (create, then
update to version 2), describe, start with parameters, describe the execution, list executions."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import boto3
import pytest
from stratum_testing import REGION, StratumServer

sagemaker = pytest.importorskip("sagemaker")

from sagemaker.session import Session  # noqa: E402
from sagemaker.workflow.condition_step import ConditionStep  # noqa: E402
from sagemaker.workflow.conditions import ConditionEquals  # noqa: E402
from sagemaker.workflow.fail_step import FailStep  # noqa: E402
from sagemaker.workflow.functions import Join  # noqa: E402
from sagemaker.workflow.parameters import ParameterInteger, ParameterString  # noqa: E402
from sagemaker.workflow.pipeline import Pipeline  # noqa: E402

# Keeps the SDK from sending usage telemetry to AWS (there is no network to AWS, only Stratum).
SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


@pytest.fixture
def sdk_session(server: StratumServer, monkeypatch: pytest.MonkeyPatch) -> Session:
    # Any client the SDK builds on its own (STS, S3) must also go to Stratum.
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    access_key, secret_key = server.creds("dev")
    boto_session = boto3.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                                 region_name=REGION)
    return Session(boto_session=boto_session, sagemaker_client=server.client("sagemaker"),
                   default_bucket=f"sdk-{uuid.uuid4().hex[:12]}", sagemaker_config=SDK_CONFIG)


def build_pipeline(name: str, session: Session, message_default: str) -> Pipeline:
    mode = ParameterString(name="Mode", default_value="check")
    retries = ParameterInteger(name="Retries", default_value=1)
    fail = FailStep(name="StopHere", error_message=Join(on=" ", values=["mode was", mode]))
    fail_twice = FailStep(name="StopThere", error_message=message_default)
    check = ConditionStep(name="IsCheck", conditions=[ConditionEquals(left=mode, right="check")],
                          if_steps=[fail], else_steps=[fail_twice])
    return Pipeline(name=name, parameters=[mode, retries], steps=[check], sagemaker_session=session)


def test_sdk_pipeline_upsert_start_and_describe(server: StratumServer, sdk_session: Session) -> None:
    name = f"sdk-{uuid.uuid4().hex[:10]}"
    role_arn = f"arn:aws:iam::{server.account_id('dev')}:role/sdk-pipeline-role"

    pipeline = build_pipeline(name, sdk_session, "first")
    created = pipeline.upsert(role_arn=role_arn, description="made by the SDK",
                              tags=[{"Key": "origin", "Value": "sdk"}])
    arn = created["PipelineArn"]
    assert arn == f"arn:aws:sagemaker:{REGION}:{server.account_id('dev')}:pipeline/{name}"

    # A second upsert hits "already exists", so the SDK updates instead: a new version.
    pipeline = build_pipeline(name, sdk_session, "second")
    updated = pipeline.upsert(role_arn=role_arn, description="updated by the SDK",
                              tags=[{"Key": "stage", "Value": "two"}])
    assert updated["PipelineArn"] == arn
    assert updated["PipelineVersionId"] == 2

    described: dict[str, Any] = pipeline.describe()
    assert described["PipelineArn"] == arn
    assert described["PipelineStatus"] == "Active"
    assert described["PipelineDescription"] == "updated by the SDK"
    assert json.loads(described["PipelineDefinition"]) == json.loads(pipeline.definition())
    assert json.loads(pipeline.describe(pipeline_version_id=1)["PipelineDefinition"]) != json.loads(
        described["PipelineDefinition"])
    assert pipeline.latest_pipeline_version_id == 2
    tags = {t["Key"]: t["Value"] for t in sdk_session.sagemaker_client.list_tags(ResourceArn=arn)["Tags"]}
    assert tags == {"origin": "sdk", "stage": "two"}

    execution = pipeline.start(parameters={"Mode": "deploy", "Retries": 3},
                               execution_display_name="sdk-run", execution_description="from the SDK")
    assert execution.arn.startswith(f"{arn}/execution/")
    desc = execution.describe()
    for _ in range(300):
        if desc["PipelineExecutionStatus"] != "Executing":
            break
        time.sleep(0.1)
        desc = execution.describe()
    # Mode "deploy" is not "check": the else branch's Fail step ends the run with its message.
    assert desc["PipelineExecutionStatus"] == "Failed" and desc["FailureReason"] == "second"
    assert desc["PipelineExecutionDisplayName"] == "sdk-run"
    assert desc["PipelineVersionId"] == 2
    assert desc["PipelineExperimentConfig"]["ExperimentName"] == name
    assert [s["StepName"] for s in execution.list_steps()] == ["StopThere", "IsCheck"]
    params = sdk_session.sagemaker_client.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=execution.arn)["PipelineParameters"]
    assert params == [{"Name": "Mode", "Value": "deploy"}, {"Name": "Retries", "Value": "3"}]

    listed = pipeline.list_executions()
    assert [e["PipelineExecutionArn"] for e in listed["PipelineExecutionSummaries"]] == [execution.arn]
    versions = pipeline.list_pipeline_versions()
    assert [v["PipelineVersionId"] for v in versions["PipelineVersionSummaries"]] == [2, 1]

    pipeline.delete()
    with pytest.raises(Exception, match="does not exist"):
        pipeline.describe()
