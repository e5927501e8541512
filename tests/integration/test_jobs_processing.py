"""Processing jobs through boto3: inputs, outputs, hard-coded /opt/ml paths, the job's role
identity, failures, MaxRuntimeInSeconds, unknown images, listings, logs and validation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError
from stratum_testing import REGION, StratumServer
from test_jobs_support import (
    SKLEARN_IMAGE,
    bucket,
    get,
    listed,
    processing_request,
    put,
    sagemaker_role,
    uid,
    wait_job,
)

SCRIPT = """
import json, os, sys, boto3
# Paths hard-coded the way SageMaker examples write them.
rows = open("/opt/ml/processing/input/data/numbers.csv").read().split()
total = sum(int(r) for r in rows)
os.makedirs("/opt/ml/processing/output/result", exist_ok=True)
with open("/opt/ml/processing/output/result/total.json", "w") as f:
    json.dump({"total": total, "args": sys.argv[1:], "mode": os.environ.get("MODE")}, f)
with open(os.path.join(sys.argv[2], "copy.txt"), "w") as f:   # --out <path> was remapped
    f.write(" ".join(sorted(os.listdir("/opt/ml/processing/input"))))
identity = boto3.client("sts").get_caller_identity()
objects = boto3.client("s3").list_objects_v2(Bucket=os.environ["BUCKET"], Prefix="inputs/")
with open("/opt/ml/processing/output/result/identity.json", "w") as f:
    json.dump({"arn": identity["Arn"], "keys": [o["Key"] for o in objects.get("Contents", [])]}, f)
print("processed", total)
"""


def test_processing_job_inputs_outputs_and_role_identity(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = uid("proc")
    data = put(server, f"inputs/{name}/numbers.csv", "1\n2\n3\n4\n")
    out = f"s3://{bucket(server)}/outputs/{name}"
    request = processing_request(
        server, name, SCRIPT, arguments=["--out", "/opt/ml/processing/output/result"],
        environment={"MODE": "test", "BUCKET": bucket(server)},
        inputs=[{"InputName": "data", "S3Input": {"S3Uri": data.rsplit("/", 1)[0], "LocalPath":
                                                  "/opt/ml/processing/input/data", "S3DataType": "S3Prefix"}}],
        outputs=[{"OutputName": "result", "S3Output": {"S3Uri": out, "LocalPath": "/opt/ml/processing/output/result",
                                                       "S3UploadMode": "EndOfJob"}}])
    arn = sm.create_processing_job(**request)["ProcessingJobArn"]
    assert arn == f"arn:aws:sagemaker:{REGION}:{server.account_id('dev')}:processing-job/{name.lower()}"
    first = sm.describe_processing_job(ProcessingJobName=name)
    assert first["ProcessingJobStatus"] in ("InProgress", "Completed")
    d = wait_job(sm, "processing", name)
    assert d["ProcessingJobStatus"] == "Completed", d.get("FailureReason")
    assert d["ProcessingJobArn"] == arn and d["RoleArn"] == request["RoleArn"]
    assert d["AppSpecification"] == request["AppSpecification"]
    assert d["ProcessingInputs"][0]["S3Input"]["LocalPath"] == "/opt/ml/processing/input/data"
    assert d["CreationTime"] <= d["ProcessingStartTime"] <= d["ProcessingEndTime"]
    total = json.loads(get(server, f"{out}/total.json"))
    assert total == {"total": 10, "args": total["args"], "mode": "test"}
    assert total["args"][0] == "--out" and not total["args"][1].startswith("/opt/ml")
    assert get(server, f"{out}/copy.txt").decode() == "code data"
    identity = json.loads(get(server, f"{out}/identity.json"))
    role_name = request["RoleArn"].rsplit("/", 1)[1]
    assert identity["arn"] == f"arn:aws:sts::{server.account_id('dev')}:assumed-role/{role_name}/SageMaker"
    assert f"inputs/{name}/numbers.csv" in identity["keys"]

    found = listed(sm, "processing", NameContains=name)
    assert [(j["ProcessingJobName"], j["ProcessingJobStatus"]) for j in found] == [(name, "Completed")]
    assert listed(sm, "processing", NameContains=name, StatusEquals="Failed") == []

    # stratum logs prints what the script printed.
    logs = subprocess.run([sys.executable, "-m", "stratum.cli", "logs", name, "--data-dir", str(server.data_dir),
                           "--type", "processing", *(["--database-url", server.database_url]
                                                     if server.database_url else [])],
                          capture_output=True, text=True, timeout=60)
    assert logs.returncode == 0, logs.stderr
    assert "processed 10" in logs.stdout


def test_failing_processing_job_reports_failure_file(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = uid("proc-fail")
    script = ("import sys\nopen('/opt/ml/output/failure', 'w').write('bad input: column x is missing')\n"
              "open('/opt/ml/output/message', 'w').write('exiting early')\nsys.exit(3)\n")
    sm.create_processing_job(**processing_request(server, name, script))
    d = wait_job(sm, "processing", name)
    assert d["ProcessingJobStatus"] == "Failed"
    assert "bad input: column x is missing" in d["FailureReason"]
    assert d["ExitMessage"] == "exiting early"
    summary = listed(sm, "processing", NameContains=name)[0]
    assert summary["ProcessingJobStatus"] == "Failed" and "column x" in summary["FailureReason"]

    plain = uid("proc-crash")
    sm.create_processing_job(**processing_request(server, plain, "raise SystemExit('boom')\n"))
    d = wait_job(sm, "processing", plain)
    assert d["ProcessingJobStatus"] == "Failed"
    assert d["FailureReason"] == "AlgorithmError: See job logs for more information"


def test_processing_max_runtime_and_unknown_image(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    slow = uid("proc-slow")
    sm.create_processing_job(**processing_request(server, slow, "import time\ntime.sleep(60)\n", max_runtime=1))
    unknown = uid("proc-image")
    sm.create_processing_job(**processing_request(server, unknown, "print('never')\n",
                                                  image="registry.example.com/team/custom:1.0"))
    d = wait_job(sm, "processing", unknown, timeout=30)
    assert d["ProcessingJobStatus"] == "Failed"
    assert "Image registry.example.com/team/custom:1.0 is not supported by Stratum; supported:" in d["FailureReason"]
    d = wait_job(sm, "processing", slow, timeout=30)
    assert d["ProcessingJobStatus"] == "Failed"
    assert "MaxRuntimeExceeded" in d["FailureReason"] and "MaxRuntimeInSeconds" in d["FailureReason"]
    assert (d["ProcessingEndTime"] - d["ProcessingStartTime"]).total_seconds() < 15


def test_stop_processing_job(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = uid("proc-stop")
    sm.create_processing_job(**processing_request(server, name, "import time\nprint('up', flush=True)\ntime.sleep(120)\n"))
    sm.stop_processing_job(ProcessingJobName=name)
    assert sm.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] in ("Stopping", "Stopped")
    assert wait_job(sm, "processing", name, timeout=30)["ProcessingJobStatus"] == "Stopped"
    with pytest.raises(ClientError) as exc:
        sm.stop_processing_job(ProcessingJobName=name)
    assert exc.value.response["Error"]["Code"] == "ValidationException"


def test_processing_validation_and_errors(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = uid("proc-val")
    request = processing_request(server, name, "print(1)\n")
    bad = json.loads(json.dumps(request))
    bad["ProcessingInputs"][0]["S3Input"]["LocalPath"] = "/tmp/elsewhere"
    with pytest.raises(ClientError) as exc:
        sm.create_processing_job(**bad)
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert "/opt/ml/processing/" in exc.value.response["Error"]["Message"]

    sm.create_processing_job(**request)
    with pytest.raises(ClientError) as exc:
        sm.create_processing_job(**request)
    assert exc.value.response["Error"]["Code"] == "ResourceInUse"
    wait_job(sm, "processing", name)

    with pytest.raises(ClientError) as exc:
        sm.describe_processing_job(ProcessingJobName=uid("missing"))
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    # Another account does not see the job.
    with pytest.raises(ClientError):
        server.client("sagemaker", "test").describe_processing_job(ProcessingJobName=name)

    # A role SageMaker may not assume is refused when the job is created, as on AWS.
    untrusted = processing_request(server, uid("proc-role"), "print(1)\n", role=sagemaker_role(server, trusted=False))
    with pytest.raises(ClientError) as exc:
        sm.create_processing_job(**untrusted)
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert "Could not assume role" in exc.value.response["Error"]["Message"]


def test_processing_authorization_condition_keys(server: StratumServer) -> None:
    """sagemaker:InstanceTypes and sagemaker:NetworkIsolation are condition keys of CreateProcessingJob."""
    iam = server.client("iam")
    user = uid("jobs-user")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["sagemaker:*", "iam:PassRole", "s3:*"], "Resource": "*"},
            {"Effect": "Deny", "Action": "sagemaker:CreateProcessingJob", "Resource": "*",
             "Condition": {"ForAnyValue:StringNotLike": {"sagemaker:InstanceTypes": ["ml.m5.*"]}}},
            {"Effect": "Deny", "Action": "sagemaker:CreateProcessingJob", "Resource": "*",
             "Condition": {"Bool": {"sagemaker:NetworkIsolation": "false"}}},
        ]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    sm = server.client("sagemaker", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    request = processing_request(server, uid("proc-auth"), "print(1)\n")
    request["NetworkConfig"] = {"EnableNetworkIsolation": True}
    big = json.loads(json.dumps(request))
    big["ProcessingResources"]["ClusterConfig"]["InstanceType"] = "ml.c5.xlarge"
    for denied in (big, {k: v for k, v in request.items() if k != "NetworkConfig"}):
        with pytest.raises(ClientError) as exc:
            sm.create_processing_job(**denied)
        assert exc.value.response["Error"]["Code"] == "AccessDeniedException"
        assert "sagemaker:CreateProcessingJob" in exc.value.response["Error"]["Message"]
    sm.create_processing_job(**request)
    assert wait_job(sm, "processing", request["ProcessingJobName"])["ProcessingJobStatus"] == "Completed"


def test_sklearn_image_uri_from_the_sdk_is_supported(server: StratumServer) -> None:
    from sagemaker import image_uris

    uri = image_uris.retrieve("sklearn", region=REGION, version="1.2-1", instance_type="ml.m5.large")
    assert uri.split("/")[-1].startswith("sagemaker-scikit-learn")
    sm = server.client("sagemaker")
    name = uid("proc-sdk")
    sm.create_processing_job(**processing_request(server, name, "print('ok')\n", image=uri))
    assert wait_job(sm, "processing", name)["ProcessingJobStatus"] == "Completed"
    assert SKLEARN_IMAGE.split("/")[-1].split(":")[0] == uri.split("/")[-1].split(":")[0]
