"""The SageMaker Python SDK 3.x with its defaults against Stratum: the default bucket from the
printed environment, a ModelTrainer job, a pipeline built with sagemaker.mlops.workflow (a
TrainingStep from ModelTrainer, a condition on a parameter, a Fail step) read back through
sagemaker-core resources, and @step function steps whose results come back."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

REGION = "us-east-1"
SKLEARN_IMAGE_VERSION = "1.2-1"
TRAIN = """
import json, os, sys
rows = open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "data.csv")).read().split()
hps = json.loads(os.environ["SM_HPS"])
print("rows", len(rows), "args", sys.argv[1:])
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as f:
    json.dump({"rows": len(rows), "total": sum(int(r) for r in rows), "alpha": hps["alpha"]}, f)
"""


def _timed(label: str, started: float) -> None:
    print(f"\n[sdk3] {label}: {time.monotonic() - started:.1f}s")


def _account() -> str:
    return str(boto3.client("sts").get_caller_identity()["Account"])


def _role(name: str) -> str:
    """An execution role as a user makes one: trusts SageMaker, AmazonSageMakerFullAccess."""
    iam = boto3.client("iam")
    role = f"{name}-{uuid.uuid4().hex[:8]}"
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                       "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    iam.attach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")
    return str(arn)


def _source(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(TRAIN)
    return source


def _model_json(uri: str) -> dict[str, Any]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        member = tar.extractfile("model.json")
        assert member is not None
        return dict(json.load(member))


def test_default_bucket_from_the_printed_environment(user: dict[str, str]) -> None:
    from sagemaker.core.helper.session_helper import Session

    assert "SAGEMAKER_ADMIN_CONFIG_OVERRIDE" in user
    bucket = Session().default_bucket()
    assert bucket == f"sagemaker-{REGION}-{_account()}"
    boto3.client("s3").head_bucket(Bucket=bucket, ExpectedBucketOwner=_account())


@pytest.mark.slow
def test_model_trainer_job_runs(user: dict[str, str], tmp_path: Path) -> None:
    from sagemaker.core import image_uris
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.training.configs import InputData, SourceCode
    from sagemaker.train import ModelTrainer

    session = Session()
    prefix = f"mt-{uuid.uuid4().hex[:8]}"
    session.upload_string_as_file_body("1\n2\n3\n4\n", session.default_bucket(), f"{prefix}/train/data.csv")
    started = time.monotonic()
    trainer = ModelTrainer(
        training_image=image_uris.retrieve("sklearn", region=REGION, version=SKLEARN_IMAGE_VERSION),
        source_code=SourceCode(source_dir=str(_source(tmp_path)), entry_script="train.py"),
        role=_role("ModelTrainerRole"), base_job_name="sdk3-trainer", hyperparameters={"alpha": 3})
    trainer.train(input_data_config=[InputData(channel_name="train",
                                               data_source=f"s3://{session.default_bucket()}/{prefix}/train")])
    job = trainer._latest_training_job
    assert job.training_job_status == "Completed", job.failure_reason
    artifacts = job.model_artifacts.s3_model_artifacts
    assert artifacts.startswith(f"s3://{session.default_bucket()}/")
    assert _model_json(artifacts) == {"rows": 4, "total": 10, "alpha": 3}
    # train() waits with logs on by default, reading the job's stream as the SDK's log handler does
    # (its rich logger writes to the console it was made with, which pytest's capfd cannot see).
    logs = boto3.client("logs")
    streams = logs.describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                        logStreamNamePrefix=job.training_job_name)["logStreams"]
    assert [s["logStreamName"].startswith(f"{job.training_job_name}/algo-1-") for s in streams] == [True]
    events = logs.get_log_events(logGroupName="/aws/sagemaker/TrainingJobs",
                                 logStreamName=streams[0]["logStreamName"], startFromHead=True)["events"]
    assert any(e["message"].startswith("rows 4 args") for e in events), events
    _timed("ModelTrainer.train", started)


@pytest.mark.slow
def test_mlops_workflow_pipeline_upserts_and_runs(user: dict[str, str], tmp_path: Path) -> None:
    from sagemaker.core import image_uris
    from sagemaker.core.resources import Pipeline as PipelineResource
    from sagemaker.core.resources import PipelineExecution
    from sagemaker.core.training.configs import InputData, SourceCode
    from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.core.workflow.parameters import ParameterInteger
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import TrainingStep
    from sagemaker.train import ModelTrainer

    session = PipelineSession()
    bucket = session.default_bucket()
    prefix = f"pipe-{uuid.uuid4().hex[:8]}"
    session.upload_string_as_file_body("5\n6\n", bucket, f"{prefix}/train/data.csv")
    role = _role("PipelineRole")
    trainer = ModelTrainer(
        training_image=image_uris.retrieve("sklearn", region=REGION, version=SKLEARN_IMAGE_VERSION),
        source_code=SourceCode(source_dir=str(_source(tmp_path)), entry_script="train.py"),
        role=role, base_job_name="sdk3-pipe", hyperparameters={"alpha": 7}, sagemaker_session=session)
    train = TrainingStep(name="Train", step_args=trainer.train(
        input_data_config=[InputData(channel_name="train", data_source=f"s3://{bucket}/{prefix}/train")]))
    minimum = ParameterInteger(name="Minimum", default_value=1)
    check = ConditionStep(name="Enough", conditions=[ConditionGreaterThanOrEqualTo(left=minimum, right=1)],
                          if_steps=[train], else_steps=[FailStep(name="TooFew", error_message="minimum below 1")])
    name = f"sdk3-{uuid.uuid4().hex[:8]}"
    pipeline = Pipeline(name=name, parameters=[minimum], steps=[check], sagemaker_session=session)
    started = time.monotonic()
    created = pipeline.upsert(role_arn=role, description="made by the SDK 3.x")
    assert created["PipelineArn"].endswith(f":pipeline/{name}")
    assert pipeline.upsert(role_arn=role, description="updated")["PipelineArn"] == created["PipelineArn"]

    execution = pipeline.start()
    execution.wait(delay=2, max_attempts=150)
    steps = {s["StepName"]: s for s in execution.list_steps()}
    assert {n: s["StepStatus"] for n, s in steps.items()} == {"Enough": "Succeeded", "Train": "Succeeded"}, steps
    job_name = steps["Train"]["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[1]
    job = session.sagemaker_client.describe_training_job(TrainingJobName=job_name)
    assert _model_json(job["ModelArtifacts"]["S3ModelArtifacts"]) == {"rows": 2, "total": 11, "alpha": 7}
    failed = pipeline.start(parameters={"Minimum": 0})
    with pytest.raises(Exception, match="Failed"):
        failed.wait(delay=1, max_attempts=60)
    _timed("mlops.workflow pipeline (upsert, two runs)", started)

    # The same pipeline and runs through sagemaker-core's resource classes.
    resource = PipelineResource.get(pipeline_name=name)
    assert resource.pipeline_arn == created["PipelineArn"] and resource.pipeline_description == "updated"
    run = PipelineExecution.get(pipeline_execution_arn=failed.arn)
    assert run.pipeline_execution_status == "Failed" and run.failure_reason == "minimum below 1"
    assert PipelineExecution.get(pipeline_execution_arn=execution.arn).pipeline_execution_status == "Succeeded"


@pytest.mark.slow
def test_function_steps_run_in_a_pipeline_and_return_their_results(user: dict[str, str]) -> None:
    from sagemaker.core.workflow.parameters import ParameterInteger
    from sagemaker.mlops.workflow.function_step import step
    from sagemaker.mlops.workflow.pipeline import Pipeline

    image = os.environ["STRATUM_SDK3_FUNCTION_IMAGE"]
    role = _role("FunctionStepRole")
    threshold = ParameterInteger(name="Threshold", default_value=10)

    @step(name="squares", image_uri=image, instance_type="ml.m5.large", role=role)
    def squares(n: int) -> list[int]:
        return [i * i for i in range(n)]

    @step(name="summary", image_uri=image, instance_type="ml.m5.large", role=role)
    def summary(values: list[int], threshold: int) -> dict[str, Any]:
        from importlib.metadata import version

        return {"total": sum(values), "above": [v for v in values if v > threshold],
                "sdk": version("sagemaker").split(".")[0]}

    pipeline = Pipeline(name=f"sdk3-functions-{uuid.uuid4().hex[:8]}", parameters=[threshold],
                        steps=[summary(squares(6), threshold)])
    pipeline.upsert(role_arn=role)
    started = time.monotonic()
    execution = pipeline.start(parameters={"Threshold": 5})
    execution.wait(delay=2, max_attempts=150)
    steps = {s["StepName"]: s["StepStatus"] for s in execution.list_steps()}
    assert steps == {"squares": "Succeeded", "summary": "Succeeded"}, execution.list_steps()
    assert execution.result(step_name="squares") == [0, 1, 4, 9, 16, 25]
    assert execution.result(step_name="summary") == {"total": 55, "above": [9, 16, 25], "sdk": "3"}
    _timed("two function steps", started)
