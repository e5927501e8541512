"""Models and batch transform through boto3: the built-in XGBoost model trained on abalone, a
script-mode inference model (model_fn / input_fn / predict_fn / output_fn), DataProcessing."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from stratum_testing import REGION, StratumServer
from test_jobs_support import (
    SKLEARN_IMAGE,
    XGBOOST_IMAGE,
    abalone_rows,
    bucket,
    csv_text,
    get,
    listed,
    put,
    sagemaker_role,
    tarball,
    uid,
    upload_abalone,
    wait_job,
    xgboost_training_request,
)

INFERENCE = '''
import json, os

def model_fn(model_dir):
    with open(os.path.join(model_dir, "weights.json")) as f:
        return json.load(f)

def input_fn(body, content_type):
    assert content_type == "text/csv", content_type
    assert isinstance(body, str), type(body)  # text/csv reaches input_fn decoded, as in the container
    return [[float(v) for v in line.split(",")] for line in body.splitlines() if line]

def predict_fn(rows, model):
    return [sum(w * v for w, v in zip(model["w"], row)) + model["b"] for row in rows]

def output_fn(predictions, accept):
    return "".join(f"{p:g}\\n" for p in predictions), "text/csv"
'''


def transform_request(name: str, model: str, source: str, output: str, **extra: object) -> dict[str, object]:
    request: dict[str, object] = {
        "TransformJobName": name, "ModelName": model,
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": source}},
                           "ContentType": "text/csv", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": output, "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }
    request.update(extra)
    return request


@pytest.mark.slow
def test_transform_with_trained_xgboost_model(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = uid("xgb-tr")
    data = upload_abalone(server, f"abalone/{name}")
    sm.create_training_job(**xgboost_training_request(server, name, data, num_round=10))
    trained = wait_job(sm, "training", name)
    assert trained["TrainingJobStatus"] == "Completed", trained.get("FailureReason")
    role = sagemaker_role(server)
    model_arn = sm.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer={
        "Image": XGBOOST_IMAGE, "ModelDataUrl": trained["ModelArtifacts"]["S3ModelArtifacts"]})["ModelArn"]
    assert model_arn == f"arn:aws:sagemaker:{REGION}:{server.account_id('dev')}:model/{name.lower()}"
    described = sm.describe_model(ModelName=name)
    assert described["PrimaryContainer"]["Image"] == XGBOOST_IMAGE and described["ExecutionRoleArn"] == role
    assert any(m["ModelName"] == name for m in sm.list_models(NameContains=name)["Models"])

    output = f"s3://{bucket(server)}/predictions/{name}"
    arn = sm.create_transform_job(**transform_request(name, name, data["test"], output,
                                                      BatchStrategy="MultiRecord", MaxPayloadInMB=1))["TransformJobArn"]
    assert arn.endswith(f":transform-job/{name.lower()}")
    d = wait_job(sm, "transform", name)
    assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
    assert d["ModelName"] == name and d["TransformStartTime"] <= d["TransformEndTime"]
    lines = get(server, f"{output}/test.csv.out").decode().splitlines()
    assert len(lines) == 20
    predictions = [float(v) for v in lines]
    assert all(1 < p < 25 for p in predictions)

    # Labelled input: drop the label for the model, join the prediction to the input line.
    labelled = put(server, f"abalone/{name}/labelled/part.csv", csv_text(abalone_rows()[3600:3605])).rsplit("/", 1)[0]
    joined = uid("xgb-join")
    sm.create_transform_job(**transform_request(joined, name, labelled, f"{output}-joined", BatchStrategy="SingleRecord",
                                                DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input",
                                                                "OutputFilter": "$[0,-1]"}))
    d = wait_job(sm, "transform", joined)
    assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
    pairs = [line.split(",") for line in get(server, f"{output}-joined/part.csv.out").decode().splitlines()]
    assert [p[0] for p in pairs] == [r[0] for r in abalone_rows()[3600:3605]]
    assert all(len(p) == 2 and 1 < float(p[1]) < 25 for p in pairs)


def test_transform_with_inference_script(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = uid("script-tr")
    artifacts = put(server, f"models/{name}/model.tar.gz", tarball({
        "weights.json": '{"w": [1, 10], "b": 0.5}', "code/inference.py": INFERENCE}))
    sm.create_model(ModelName=name, ExecutionRoleArn=sagemaker_role(server), PrimaryContainer={
        "Image": SKLEARN_IMAGE, "ModelDataUrl": artifacts,
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}})
    source = put(server, f"batch/{name}/in/a.csv", "1,2\n3,4\n\n5,6\n").rsplit("/", 1)[0]
    put(server, f"batch/{name}/in/sub/b.csv", "0,1\n")
    output = f"s3://{bucket(server)}/batch/{name}/out"
    sm.create_transform_job(**transform_request(name, name, source, output, BatchStrategy="SingleRecord",
                                                Environment={"EXTRA": "1"}))
    d = wait_job(sm, "transform", name)
    assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
    assert d["Environment"] == {"EXTRA": "1"}
    assert get(server, f"{output}/a.csv.out").decode() == "21.5\n43.5\n65.5\n"
    assert get(server, f"{output}/sub/b.csv.out").decode() == "10.5\n"
    assert listed(sm, "transform", NameContains=name)[0]["TransformJobStatus"] == "Completed"

    # A model whose script is broken fails the job with the server's error.
    broken = uid("broken-tr")
    bad = put(server, f"models/{broken}/model.tar.gz", tarball({"code/inference.py": "raise ImportError('nope')\n"}))
    sm.create_model(ModelName=broken, ExecutionRoleArn=sagemaker_role(server), PrimaryContainer={
        "Image": SKLEARN_IMAGE, "ModelDataUrl": bad, "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
    sm.create_transform_job(**transform_request(broken, broken, source, f"{output}-broken"))
    d = wait_job(sm, "transform", broken)
    assert d["TransformJobStatus"] == "Failed" and "model server exited" in d["FailureReason"]


def test_model_api_errors(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = uid("model")
    role = sagemaker_role(server)
    sm.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer={"Image": SKLEARN_IMAGE},
                    Tags=[{"Key": "stage", "Value": "dev"}])
    with pytest.raises(ClientError) as exc:
        sm.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer={"Image": SKLEARN_IMAGE})
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert "Cannot create already existing model" in exc.value.response["Error"]["Message"]
    arn = sm.describe_model(ModelName=name)["ModelArn"]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "stage", "Value": "dev"}]
    with pytest.raises(ClientError) as exc:
        sm.create_transform_job(**transform_request(uid("t"), uid("missing-model"), "s3://b/in", "s3://b/out"))
    assert "Could not find model" in exc.value.response["Error"]["Message"]
    sm.delete_model(ModelName=name)
    with pytest.raises(ClientError) as exc:
        sm.describe_model(ModelName=name)
    assert exc.value.response["Error"] == {"Code": "ValidationException", "Message": f'Could not find model "{arn}".'}
    with pytest.raises(ClientError):
        sm.delete_model(ModelName=name)
    with pytest.raises(ClientError) as exc:
        sm.create_model(ModelName=uid("m"), ExecutionRoleArn=sagemaker_role(server, trusted=False),
                        PrimaryContainer={"Image": SKLEARN_IMAGE})
    assert "Could not assume role" in exc.value.response["Error"]["Message"]
