"""Processing and Training steps of a pipeline run real jobs: arguments without job names, property
references between steps (the processing output feeds the training channel), step metadata,
stopping an execution stops its job, and a role SageMaker cannot assume fails the step."""

from __future__ import annotations

import json
import time
from typing import Any

from stratum_testing import StratumServer
from test_jobs_support import (
    SKLEARN_IMAGE,
    bucket,
    put,
    sagemaker_role,
    tarball,
    uid,
    wait_job,
)

PREPROCESS = """
import os
rows = open('/opt/ml/processing/input/raw/raw.csv').read().split()
os.makedirs('/opt/ml/processing/train', exist_ok=True)
open('/opt/ml/processing/train/clean.csv', 'w').write('\\n'.join(str(int(r) * 2) for r in rows))
"""
TRAIN = """
import os
values = [int(v) for v in open(os.path.join(os.environ['SM_CHANNEL_TRAIN'], 'clean.csv')).read().split()]
print(f'total={sum(values)}')
open(os.path.join(os.environ['SM_MODEL_DIR'], 'model.txt'), 'w').write(str(sum(values)))
"""


SLEEP = "import time\ntime.sleep(120)\n"


def _steps(server: StratumServer, role: str, name: str, sleep: bool = False, train_sleep: bool = False
           ) -> list[dict[str, Any]]:
    raw = put(server, f"pipe/{name}/raw/raw.csv", "1\n2\n3\n").rsplit("/", 1)[0]
    code = put(server, f"pipe/{name}/code/preprocess.py", PREPROCESS + (SLEEP if sleep else ""))
    source = put(server, f"pipe/{name}/sourcedir.tar.gz", tarball({"train.py": TRAIN + (SLEEP if train_sleep else "")}))
    return [
        {"Name": "Preprocess", "Type": "Processing", "Arguments": {
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                      "VolumeSizeInGB": 5}},
            "AppSpecification": {"ImageUri": SKLEARN_IMAGE,
                                 "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/preprocess.py"]},
            "RoleArn": role,
            "ProcessingInputs": [
                {"InputName": "raw", "S3Input": {"S3Uri": raw, "LocalPath": "/opt/ml/processing/input/raw",
                                                 "S3DataType": "S3Prefix", "S3InputMode": "File"}},
                {"InputName": "code", "S3Input": {"S3Uri": code, "LocalPath": "/opt/ml/processing/input/code",
                                                  "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "train", "S3Output": {
                "S3Uri": f"s3://{bucket(server)}/pipe/{name}/train", "LocalPath": "/opt/ml/processing/train",
                "S3UploadMode": "EndOfJob"}}]}}},
        {"Name": "Train", "Type": "Training", "Arguments": {
            "AlgorithmSpecification": {"TrainingImage": SKLEARN_IMAGE, "TrainingInputMode": "File",
                                       "MetricDefinitions": [{"Name": "total", "Regex": "total=([0-9]+)"}]},
            "HyperParameters": {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": f'"{source}"'},
            "RoleArn": role,
            "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": {"Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['train']"
                                                               ".S3Output.S3Uri"}}}}],
            "OutputDataConfig": {"S3OutputPath": f"s3://{bucket(server)}/pipe/{name}/model"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
            "StoppingCondition": {"MaxRuntimeInSeconds": 300}}},
    ]


def _pipeline(server: StratumServer, steps: list[dict[str, Any]]) -> str:
    name = uid("jobpipe")
    server.client("sagemaker").create_pipeline(
        PipelineName=name, RoleArn=sagemaker_role(server),
        PipelineDefinition=json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": steps}))
    return name


def _wait(sm: Any, arn: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        desc = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        if desc["PipelineExecutionStatus"] in ("Succeeded", "Failed", "Stopped"):
            return desc
        assert time.monotonic() < deadline, desc
        time.sleep(0.1)


def _step_map(sm: Any, arn: str) -> dict[str, dict[str, Any]]:
    return {s["StepName"]: s for s in sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]}


def test_processing_and_training_steps(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = uid("p")
    pipeline = _pipeline(server, _steps(server, sagemaker_role(server), name))
    arn = sm.start_pipeline_execution(PipelineName=pipeline)["PipelineExecutionArn"]
    desc = _wait(sm, arn)
    steps = _step_map(sm, arn)
    assert desc["PipelineExecutionStatus"] == "Succeeded", steps
    processing_arn = steps["Preprocess"]["Metadata"]["ProcessingJob"]["Arn"]
    training_arn = steps["Train"]["Metadata"]["TrainingJob"]["Arn"]
    execution_id = arn.rsplit("/", 1)[1]
    assert processing_arn.split("/")[-1].startswith(f"pipelines-{execution_id}-preprocess-")
    job = sm.describe_training_job(TrainingJobName=training_arn.split("/")[-1])
    assert job["TrainingJobStatus"] == "Completed"
    assert job["FinalMetricDataList"][0]["Value"] == 12.0
    assert job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{bucket(server)}/pipe/{name}/train"


def test_stopping_an_execution_stops_its_job(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    pipeline = _pipeline(server, _steps(server, sagemaker_role(server), uid("p"), sleep=True)[:1])
    arn = sm.start_pipeline_execution(PipelineName=pipeline)["PipelineExecutionArn"]
    deadline = time.monotonic() + 60
    job_name = None
    while job_name is None and time.monotonic() < deadline:
        step = _step_map(sm, arn).get("Preprocess") or {}
        job_arn = (step.get("Metadata") or {}).get("ProcessingJob", {}).get("Arn")
        if job_arn:
            job_name = job_arn.split("/")[-1]
        time.sleep(0.1)
    assert job_name
    time.sleep(0.5)
    sm.stop_pipeline_execution(PipelineExecutionArn=arn)
    assert _wait(sm, arn)["PipelineExecutionStatus"] == "Stopped"
    assert wait_job(sm, "processing", job_name)["ProcessingJobStatus"] == "Stopped"


def test_stopping_an_execution_stops_its_running_training_job(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    pipeline = _pipeline(server, _steps(server, sagemaker_role(server), uid("p"), train_sleep=True))
    arn = sm.start_pipeline_execution(PipelineName=pipeline)["PipelineExecutionArn"]
    deadline = time.monotonic() + 90
    job_name = None
    while job_name is None and time.monotonic() < deadline:
        step = _step_map(sm, arn).get("Train") or {}
        job_arn = (step.get("Metadata") or {}).get("TrainingJob", {}).get("Arn")
        if job_arn:
            job_name = job_arn.split("/")[-1]
        time.sleep(0.1)
    assert job_name
    job_deadline = time.monotonic() + 30
    while sm.describe_training_job(TrainingJobName=job_name)["TrainingJobStatus"] != "InProgress":
        assert time.monotonic() < job_deadline
        time.sleep(0.1)
    time.sleep(1.0)  # the training script is now sleeping
    sm.stop_pipeline_execution(PipelineExecutionArn=arn)
    assert _wait(sm, arn)["PipelineExecutionStatus"] == "Stopped"
    assert wait_job(sm, "training", job_name)["TrainingJobStatus"] == "Stopped"
    steps = _step_map(sm, arn)
    assert steps["Preprocess"]["StepStatus"] == "Succeeded"
    assert steps["Train"]["StepStatus"] == "Stopped"


def test_step_with_untrusted_role_fails(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    untrusted = sagemaker_role(server, trusted=False)
    pipeline = _pipeline(server, _steps(server, untrusted, uid("p"))[:1])
    arn = sm.start_pipeline_execution(PipelineName=pipeline)["PipelineExecutionArn"]
    assert _wait(sm, arn)["PipelineExecutionStatus"] == "Failed"
    step = _step_map(sm, arn)["Preprocess"]
    assert step["StepStatus"] == "Failed"
    assert "Could not assume role" in step["FailureReason"]
