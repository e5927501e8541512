"""The SageMaker Python SDK 2.x against Stratum, unmodified and with its defaults: only the
environment the server prints at start, nothing passed to the SDK (sagemaker.Session()), no
request leaving the machine and no telemetry traceback. The pipeline workflow: upsert (create,
then update to version 2), describe, start with parameters, describe the execution, list
executions; the default bucket; function steps (@step) whose results come back."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sdk_testing import has_traceback, loopback_only, user_environment
from stratum_testing import REGION, StratumServer, sagemaker_role

sagemaker = pytest.importorskip("sagemaker")

from sagemaker.session import Session  # noqa: E402
from sagemaker.workflow.condition_step import ConditionStep  # noqa: E402
from sagemaker.workflow.conditions import ConditionEquals  # noqa: E402
from sagemaker.workflow.fail_step import FailStep  # noqa: E402
from sagemaker.workflow.functions import Join  # noqa: E402
from sagemaker.workflow.parameters import ParameterInteger, ParameterString  # noqa: E402
from sagemaker.workflow.pipeline import Pipeline  # noqa: E402


@pytest.fixture
def user(server: StratumServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> Iterator[StratumServer]:
    """The user's shell: the printed environment only; every off-machine connection is refused
    and fails the test, and so does a traceback on the output (the SDK's telemetry prints one when
    its request to AWS fails)."""
    with user_environment(server.data_dir / "server.log", tmp_path / "home",
                          SAGEMAKER_SUPPRESS_V2_WARNING="1"), loopback_only() as attempts:
        yield server
    out, err = capfd.readouterr()
    assert attempts == [], f"requests left the machine for {attempts}"
    assert not has_traceback(out + err), out + err


@pytest.fixture
def sdk_session(user: StratumServer) -> Session:
    return Session()


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


def test_default_bucket_is_the_accounts_and_made_on_the_machine(user: StratumServer) -> None:
    started = time.monotonic()
    session = Session()
    bucket = session.default_bucket()
    account = user.account_id("dev")  # the first account: the default profile
    assert bucket == f"sagemaker-{REGION}-{account}"
    # Created through the profile's endpoint, in the caller's account, and usable at once.
    s3 = user.client("s3")
    s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
    uri = session.upload_string_as_file_body("hello", bucket, f"sdk/{uuid.uuid4().hex}.txt")
    assert session.read_s3_file(bucket, uri.split("/", 3)[3]) == "hello"
    assert Session().default_bucket() == bucket  # a second session: the bucket exists already
    print(f"\n[{user.backend}] default_bucket: {time.monotonic() - started:.2f}s")


def test_another_profile_gets_its_own_accounts_bucket(server: StratumServer, tmp_path: Path) -> None:
    aws = server.data_dir / "aws"
    with user_environment(server.data_dir / "server.log", tmp_path / "home", AWS_PROFILE="test",
                          SAGEMAKER_ADMIN_CONFIG_OVERRIDE=str(aws / "sagemaker" / "test.yaml"),
                          SAGEMAKER_SUPPRESS_V2_WARNING="1"), loopback_only() as attempts:
        session = Session()
        assert session.default_bucket() == f"sagemaker-{REGION}-{server.account_id('test')}"
    assert attempts == []
    server.client("s3", "test").head_bucket(Bucket=f"sagemaker-{REGION}-{server.account_id('test')}")


FUNCTION_IMAGE = "236514542706.dkr.ecr.us-east-1.amazonaws.com/sagemaker-base-python-310:1.0"



@pytest.mark.slow
def test_function_steps_run_in_a_pipeline_and_return_their_results(user: StratumServer) -> None:
    from sagemaker.workflow.function_step import step

    role = sagemaker_role(user, "FunctionStepRole")
    threshold = ParameterInteger(name="Threshold", default_value=10)

    # image_uri: the SDK's own default for a Python 3.10 client (on 3.11 it has none and asks for one).
    @step(name="squares", image_uri=FUNCTION_IMAGE, instance_type="ml.m5.large", role=role)
    def squares(n: int) -> list[int]:
        return [i * i for i in range(n)]

    @step(name="summary", image_uri=FUNCTION_IMAGE, instance_type="ml.m5.large", role=role)
    def summary(values: list[int], threshold: int) -> dict[str, Any]:
        import sys

        return {"total": sum(values), "above": [v for v in values if v > threshold],
                "python": f"{sys.version_info[0]}.{sys.version_info[1]}"}

    name = f"functions-{uuid.uuid4().hex[:8]}"
    pipeline = Pipeline(name=name, parameters=[threshold], steps=[summary(squares(6), threshold)])
    pipeline.upsert(role_arn=role)
    started = time.monotonic()
    execution = pipeline.start(parameters={"Threshold": 5})
    execution.wait(delay=2, max_attempts=150)
    seconds = time.monotonic() - started
    steps = {s["StepName"]: s for s in execution.list_steps()}
    assert {n: s["StepStatus"] for n, s in steps.items()} == {"squares": "Succeeded", "summary": "Succeeded"}, steps
    # The SDK reads each step's result from S3 where its job driver wrote it.
    assert execution.result(step_name="squares") == [0, 1, 4, 9, 16, 25]
    assert execution.result(step_name="summary") == {"total": 55, "above": [9, 16, 25], "python": "3.11"}
    job = user.client("sagemaker").describe_training_job(
        TrainingJobName=steps["summary"]["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[1])
    assert job["AlgorithmSpecification"]["TrainingImage"] == FUNCTION_IMAGE
    print(f"\n[{user.backend}] two function steps: {seconds:.1f}s")
