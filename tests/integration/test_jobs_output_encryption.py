"""Job outputs honour KmsKeyId: a bucket that denies uploads not encrypted with a shared KMS key
(the secure-deployment bucket policy) accepts a training job's model and a processing job's
outputs and a transform job's results when the job names that key, as SSE-KMS objects made with it
by the job's role; without the key the job fails with the denied upload. VolumeKmsKeyId is
accepted."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stratum_testing import StratumServer
from test_jobs_support import (
    SKLEARN_IMAGE,
    bucket,
    processing_request,
    put,
    script_training_request,
    tarball,
    uid,
    wait_job,
)
from test_jobs_transform import INFERENCE, transform_request

TRAIN = "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'model.txt'), 'w').write('weights')\n"
PROCESS = ("import os\nos.makedirs('/opt/ml/processing/out', exist_ok=True)\n"
           "open('/opt/ml/processing/out/report.txt', 'w').write('report')\n")


@pytest.fixture(scope="module")
def shared_key(server: StratumServer) -> dict[str, Any]:
    """A key of the shared-services account that the dev account may use, and a dev bucket whose
    policy denies any upload not encrypted with it."""
    owner = server.account_id("shared-services")
    dev = server.account_id("dev")
    key = server.client("kms", "shared-services").create_key(Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Sid": "Owner", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{owner}:root"},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "Dev", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{dev}:root"},
             "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"],
             "Resource": "*"}]}))["KeyMetadata"]
    bucket = uid("encrypted-models")
    s3 = server.client("s3")
    s3.create_bucket(Bucket=bucket)
    objects = f"arn:aws:s3:::{bucket}/*"
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "DenyNotKms", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": objects,
         "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}},
        {"Sid": "DenyOtherKeys", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": objects,
         "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": key["Arn"]}}}]}))
    iam = server.client("iam")
    role = uid("sm-kms")
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    iam.attach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")
    iam.put_role_policy(RoleName=role, PolicyName="shared-key", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": key["Arn"], "Action": [
            "kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt", "kms:DescribeKey"]}]}))
    return {"arn": key["Arn"], "bucket": bucket, "role": role_arn}


def _training(server: StratumServer, name: str, setup: dict[str, Any], kms: bool) -> dict[str, Any]:
    request = script_training_request(server, name, {"train.py": TRAIN})
    request["RoleArn"] = setup["role"]
    request["OutputDataConfig"] = {"S3OutputPath": f"s3://{setup['bucket']}/models"}
    if kms:
        request["OutputDataConfig"]["KmsKeyId"] = setup["arn"]
        request["ResourceConfig"]["VolumeKmsKeyId"] = setup["arn"]
    return request


def test_training_output_encrypted_with_the_jobs_key(server: StratumServer, shared_key: dict[str, Any]) -> None:
    sm = server.client("sagemaker")
    s3 = server.client("s3")
    name = uid("kms-train")
    sm.create_training_job(**_training(server, name, shared_key, kms=True))
    d = wait_job(sm, "training", name)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    assert d["OutputDataConfig"]["KmsKeyId"] == shared_key["arn"]
    assert d["ResourceConfig"]["VolumeKmsKeyId"] == shared_key["arn"]
    head = s3.head_object(Bucket=shared_key["bucket"], Key=f"models/{name}/output/model.tar.gz")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", shared_key["arn"])

    plain = uid("plain-train")
    sm.create_training_job(**_training(server, plain, shared_key, kms=False))
    d = wait_job(sm, "training", plain)
    assert d["TrainingJobStatus"] == "Failed"
    reason = d["FailureReason"]
    assert reason.startswith("ClientError: uploading to ") and f"{plain}/output/model.tar.gz" in reason
    assert "AccessDenied" in reason and "explicit deny in a resource-based policy" in reason


def test_processing_outputs_encrypted_with_the_jobs_key(server: StratumServer, shared_key: dict[str, Any]) -> None:
    sm = server.client("sagemaker")
    s3 = server.client("s3")
    results = {}
    for kms in (True, False):
        name = uid("kms-proc")
        outputs = [{"OutputName": "out", "S3Output": {"S3Uri": f"s3://{shared_key['bucket']}/reports/{name}",
                                                       "LocalPath": "/opt/ml/processing/out",
                                                       "S3UploadMode": "EndOfJob"}}]
        request = processing_request(server, name, PROCESS, outputs=outputs, role=shared_key["role"])
        if kms:
            request["ProcessingOutputConfig"]["KmsKeyId"] = shared_key["arn"]
            request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] = shared_key["arn"]
        sm.create_processing_job(**request)
        results[kms] = (name, wait_job(sm, "processing", name))
    name, d = results[True]
    assert d["ProcessingJobStatus"] == "Completed", d.get("FailureReason")
    head = s3.head_object(Bucket=shared_key["bucket"], Key=f"reports/{name}/report.txt")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", shared_key["arn"])
    name, d = results[False]
    assert d["ProcessingJobStatus"] == "Failed" and "AccessDenied" in d["FailureReason"], d.get("FailureReason")


def test_output_key_the_role_may_not_use_fails_the_upload(server: StratumServer,
                                                            shared_key: dict[str, Any]) -> None:
    """A key of another account that grants the job's role nothing, on a bucket without a policy:
    S3's GenerateDataKey call as the role is refused, and the upload with it."""
    sm = server.client("sagemaker")
    foreign_key = server.client("kms", "prod").create_key()["KeyMetadata"]["Arn"]
    name = uid("kms-denied")
    request = _training(server, name, shared_key, kms=False)
    request["OutputDataConfig"] = {"S3OutputPath": f"s3://{bucket(server)}/models", "KmsKeyId": foreign_key}
    sm.create_training_job(**request)
    d = wait_job(sm, "training", name)
    assert d["TrainingJobStatus"] == "Failed"
    assert d["FailureReason"].startswith("ClientError: uploading to "), d["FailureReason"]
    assert "AccessDenied" in d["FailureReason"]


def test_transform_output_encrypted_with_the_jobs_key(server: StratumServer, shared_key: dict[str, Any]) -> None:
    sm = server.client("sagemaker")
    s3 = server.client("s3")
    model = uid("kms-model")
    artifacts = put(server, f"models/{model}/model.tar.gz", tarball({
        "weights.json": '{"w": [1, 10], "b": 0.5}', "code/inference.py": INFERENCE}))
    sm.create_model(ModelName=model, ExecutionRoleArn=shared_key["role"], PrimaryContainer={
        "Image": SKLEARN_IMAGE, "ModelDataUrl": artifacts, "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
    source = put(server, f"batch/{model}/in/a.csv", "1,2\n").rsplit("/", 1)[0]
    results = {}
    for kms in (True, False):
        name = uid("kms-tr")
        output = f"s3://{shared_key['bucket']}/batch/{name}"
        request = transform_request(name, model, source, output)
        if kms:
            request["TransformOutput"]["KmsKeyId"] = shared_key["arn"]  # type: ignore[index]
            request["TransformResources"]["VolumeKmsKeyId"] = shared_key["arn"]  # type: ignore[index]
        sm.create_transform_job(**request)
        results[kms] = (name, wait_job(sm, "transform", name))
    name, d = results[True]
    assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
    head = s3.head_object(Bucket=shared_key["bucket"], Key=f"batch/{name}/a.csv.out")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", shared_key["arn"])
    _, d = results[False]
    assert d["TransformJobStatus"] == "Failed" and "AccessDenied" in d["FailureReason"], d.get("FailureReason")
