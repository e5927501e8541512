"""Helpers shared by the SageMaker job tests (no tests here): execution roles, buckets, job requests
and polling."""

from __future__ import annotations

import csv
import io
import json
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

from stratum_testing import StratumServer

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
XGBOOST_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
# The UCI abalone data set, kept in the repository (tests/data/README.md: source and licence).
ABALONE = Path(__file__).resolve().parents[1] / "data" / "abalone-dataset.csv"
FINAL = ("Completed", "Failed", "Stopped")
STATUS_KEY = {"processing": "ProcessingJobStatus", "training": "TrainingJobStatus", "transform": "TransformJobStatus",
              "tuning": "HyperParameterTuningJobStatus"}

_roles: dict[tuple[str, str, bool], str] = {}
_buckets: dict[tuple[str, str], str] = {}


def uid(prefix: str = "job") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def sagemaker_role(server: StratumServer, account: str = "dev", trusted: bool = True) -> str:
    """A role SageMaker may assume (or, with trusted=False, one it may not) with S3 access."""
    key = (server.endpoint_url, account, trusted)
    if key not in _roles:
        name = uid("sm-exec" if trusted else "no-sm-trust")
        principal = {"Service": "sagemaker.amazonaws.com"} if trusted else {
            "AWS": f"arn:aws:iam::{server.account_id(account)}:root"}
        iam = server.client("iam", account)
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
        iam.attach_role_policy(RoleName=name, PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")
        _roles[key] = arn
    return _roles[key]


def bucket(server: StratumServer, account: str = "dev") -> str:
    key = (server.endpoint_url, account)
    if key not in _buckets:
        name = uid("jobs")
        server.client("s3", account).create_bucket(Bucket=name)
        _buckets[key] = name
    return _buckets[key]


def describe(sm: Any, kind: str, name: str) -> dict[str, Any]:
    if kind == "processing":
        return sm.describe_processing_job(ProcessingJobName=name)
    if kind == "training":
        return sm.describe_training_job(TrainingJobName=name)
    if kind == "transform":
        return sm.describe_transform_job(TransformJobName=name)
    return sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)


def wait_job(sm: Any, kind: str, name: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        d = describe(sm, kind, name)
        if d[STATUS_KEY[kind]] in FINAL:
            return d
        if time.monotonic() > deadline:
            raise AssertionError(f"{kind} job {name} still {d[STATUS_KEY[kind]]} after {timeout}s")
        time.sleep(0.1)


def wait_status(sm: Any, kind: str, name: str, predicate: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        d = describe(sm, kind, name)
        if predicate(d):
            return d
        if time.monotonic() > deadline:
            raise AssertionError(f"{kind} job {name}: condition not reached, last {d[STATUS_KEY[kind]]}")
        time.sleep(0.1)


def put(server: StratumServer, key: str, body: str | bytes, account: str = "dev") -> str:
    b = bucket(server, account)
    server.client("s3", account).put_object(Bucket=b, Key=key, Body=body.encode() if isinstance(body, str) else body)
    return f"s3://{b}/{key}"


def get(server: StratumServer, uri: str, account: str = "dev") -> bytes:
    b, _, key = uri[len("s3://"):].partition("/")
    return bytes(server.client("s3", account).get_object(Bucket=b, Key=key)["Body"].read())


def tarball(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def untar(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def abalone_rows() -> list[list[str]]:
    """Numeric abalone: rings (the label) first, sex one-hot (M, F, I), then the measurements."""
    rows = []
    with open(ABALONE) as f:
        for r in csv.reader(f):
            rows.append([r[-1]] + [str(int(r[0] == s)) for s in "MFI"] + r[1:-1])
    return rows


def csv_text(rows: list[list[str]]) -> str:
    return "".join(",".join(r) + "\n" for r in rows)


def upload_abalone(server: StratumServer, prefix: str, account: str = "dev") -> dict[str, str]:
    rows = abalone_rows()
    return {"train": put(server, f"{prefix}/train/train.csv", csv_text(rows[:3000]), account).rsplit("/", 1)[0],
            "validation": put(server, f"{prefix}/validation/validation.csv", csv_text(rows[3000:3600]),
                              account).rsplit("/", 1)[0],
            "test": put(server, f"{prefix}/test/test.csv", csv_text([r[1:] for r in rows[3600:3620]]),
                        account).rsplit("/", 1)[0]}


def processing_request(server: StratumServer, name: str, script: str, *, account: str = "dev",
                       inputs: list[dict[str, Any]] | None = None, outputs: list[dict[str, Any]] | None = None,
                       image: str = SKLEARN_IMAGE, max_runtime: int | None = None, role: str | None = None,
                       arguments: list[str] | None = None, environment: dict[str, str] | None = None
                       ) -> dict[str, Any]:
    """A CreateProcessingJob request laid out like the SDK's ScriptProcessor: the script is an input
    at /opt/ml/processing/input/code and the entrypoint runs it with python3."""
    code = put(server, f"code/{name}/script.py", script, account)
    request: dict[str, Any] = {
        "ProcessingJobName": name, "RoleArn": role or sagemaker_role(server, account),
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                  "VolumeSizeInGB": 5}},
        "AppSpecification": {"ImageUri": image,
                             "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/script.py"]},
        "ProcessingInputs": [*(inputs or []),
                             {"InputName": "code", "S3Input": {"S3Uri": code, "LocalPath": "/opt/ml/processing/input/code",
                                                               "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
    }
    if arguments:
        request["AppSpecification"]["ContainerArguments"] = arguments
    if outputs:
        request["ProcessingOutputConfig"] = {"Outputs": outputs}
    if max_runtime:
        request["StoppingCondition"] = {"MaxRuntimeInSeconds": max_runtime}
    if environment:
        request["Environment"] = environment
    return request


def script_training_request(server: StratumServer, name: str, files: dict[str, str], *, program: str = "train.py",
                            account: str = "dev", hyperparameters: dict[str, Any] | None = None,
                            channels: dict[str, str] | None = None, max_runtime: int = 600,
                            metric_definitions: list[dict[str, str]] | None = None,
                            image: str = SKLEARN_IMAGE) -> dict[str, Any]:
    """CreateTrainingJob as the SDK's framework estimators build it: sourcedir.tar.gz in S3 and the
    JSON-encoded sagemaker_program / sagemaker_submit_directory hyperparameters."""
    source = put(server, f"code/{name}/sourcedir.tar.gz", tarball(files), account)
    hps = {k: json.dumps(v) for k, v in (hyperparameters or {}).items()}
    hps.update({"sagemaker_program": json.dumps(program), "sagemaker_submit_directory": json.dumps(source),
                "sagemaker_region": json.dumps("us-east-1"), "sagemaker_container_log_level": "20"})
    algorithm: dict[str, Any] = {"TrainingImage": image, "TrainingInputMode": "File"}
    if metric_definitions:
        algorithm["MetricDefinitions"] = metric_definitions
    request: dict[str, Any] = {
        "TrainingJobName": name, "RoleArn": sagemaker_role(server, account), "AlgorithmSpecification": algorithm,
        "HyperParameters": hps,
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket(server, account)}/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
    }
    if channels:
        request["InputDataConfig"] = [
            {"ChannelName": ch, "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}}}
            for ch, uri in channels.items()]
    return request


def xgboost_training_request(server: StratumServer, name: str, data: dict[str, str], *, account: str = "dev",
                             num_round: int = 20, extra: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "TrainingJobName": name, "RoleArn": sagemaker_role(server, account),
        "AlgorithmSpecification": {"TrainingImage": XGBOOST_IMAGE, "TrainingInputMode": "File"},
        "HyperParameters": {"num_round": str(num_round), "max_depth": "5", "eta": "0.2", "subsample": "0.8",
                            "objective": "reg:squarederror", **(extra or {})},
        "InputDataConfig": [
            {"ChannelName": ch, "ContentType": "text/csv",
             "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": data[ch],
                                             "S3DataDistributionType": "FullyReplicated"}}}
            for ch in ("train", "validation")],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket(server, account)}/xgb"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
