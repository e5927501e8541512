"""Training jobs through boto3: the built-in XGBoost on abalone, script mode with a source
directory, failures, MaxRuntimeInSeconds, StopTrainingJob (the process tree dies), listings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.exceptions import ClientError
from stratum_testing import REGION, StratumServer
from test_jobs_support import (
    XGBOOST_IMAGE,
    bucket,
    get,
    listed,
    processing_request,
    put,
    sagemaker_role,
    script_training_request,
    uid,
    untar,
    upload_abalone,
    wait_job,
    wait_status,
    xgboost_training_request,
)

TRAIN_SCRIPT = r"""
import argparse, json, os, sys
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
parser.add_argument("--learning-rate", type=float)
parser.add_argument("--model-dir", default=os.environ["SM_MODEL_DIR"])
args = parser.parse_args()
import helper  # from the source directory, which is on sys.path
rows = open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "data.csv")).read().split()
config = json.load(open("/opt/ml/input/config/hyperparameters.json"))
env = {k: os.environ[k] for k in ("SM_CHANNELS", "SM_HPS", "SM_HP_EPOCHS", "SM_CURRENT_HOST", "SM_HOSTS",
                                  "SM_NUM_CPUS", "SM_USER_ENTRY_POINT", "SM_OUTPUT_DATA_DIR")}
training_env = json.loads(os.environ["SM_TRAINING_ENV"])
for epoch in range(args.epochs):
    print(f"epoch={epoch} loss={helper.loss(epoch, args.learning_rate):.4f}")
with open(os.path.join(args.model_dir, "model.json"), "w") as f:
    json.dump({"rows": len(rows), "config": config, "env": env, "job": training_env["job_name"],
               "cwd": os.getcwd(), "argv": sys.argv[1:]}, f)
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "report.txt"), "w") as f:
    f.write("report")
"""
HELPER = "def loss(epoch, lr):\n    return 1.0 / (1 + epoch * lr)\n"


@pytest.mark.slow
def test_builtin_xgboost_on_abalone(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = uid("xgb")
    data = upload_abalone(server, f"abalone/{name}")
    request = xgboost_training_request(server, name, data, extra={"eval_metric": "rmse,mae"})
    arn = sm.create_training_job(**request)["TrainingJobArn"]
    assert arn == f"arn:aws:sagemaker:{REGION}:{server.account_id('dev')}:training-job/{name.lower()}"
    early = sm.describe_training_job(TrainingJobName=name)
    assert early["TrainingJobStatus"] in ("InProgress", "Completed")
    d = wait_job(sm, "training", name)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    assert d["SecondaryStatus"] == "Completed"
    assert [t["Status"] for t in d["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert d["TrainingStartTime"] <= d["TrainingEndTime"] and d["TrainingTimeInSeconds"] >= 0
    assert d["HyperParameters"] == request["HyperParameters"]
    assert d["AlgorithmSpecification"]["TrainingImage"] == XGBOOST_IMAGE
    metrics = {m["MetricName"]: m["Value"] for m in d["FinalMetricDataList"]}
    assert set(metrics) == {"train:rmse", "validation:rmse", "train:mae", "validation:mae"}
    assert 0.5 < metrics["validation:rmse"] < 4.0 and metrics["train:rmse"] < metrics["validation:rmse"] + 1
    artifacts = d["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifacts == f"{request['OutputDataConfig']['S3OutputPath']}/{name}/output/model.tar.gz"
    model = untar(get(server, artifacts))
    assert list(model) == ["xgboost-model"]

    import numpy as np
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(model["xgboost-model"]))
    assert booster.num_features() == 10
    assert booster.predict(xgb.DMatrix(np.array([[1, 0, 0, 0.5, 0.4, 0.1, 0.6, 0.25, 0.13, 0.18]]))).shape == (1,)

    logs = _logs(server, name)
    assert re.search(r"^\[19\]#011train-rmse:[\d.]+#011train-mae:[\d.]+#011validation-rmse:[\d.]+", logs, re.M)
    summary = listed(sm, "training", NameContains=name)
    assert [(s["TrainingJobName"], s["TrainingJobStatus"], s["SecondaryStatus"]) for s in summary] == [
        (name, "Completed", "Completed")]


def test_script_mode_training_with_source_directory(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = uid("script")
    channel = put(server, f"train/{name}/data.csv", "1\n2\n3\n").rsplit("/", 1)[0]
    request = script_training_request(
        server, name, {"train.py": TRAIN_SCRIPT, "helper.py": HELPER},
        hyperparameters={"epochs": 3, "learning-rate": 0.5}, channels={"train": channel},
        metric_definitions=[{"Name": "train:loss", "Regex": r"loss=([0-9\.]+)"}])
    sm.create_training_job(**request)
    d = wait_job(sm, "training", name)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    assert d["FinalMetricDataList"][0]["MetricName"] == "train:loss"
    assert d["FinalMetricDataList"][0]["Value"] == pytest.approx(0.5)
    files = untar(get(server, d["ModelArtifacts"]["S3ModelArtifacts"]))
    result = json.loads(files["model.json"])
    assert result["rows"] == 3 and result["job"] == name
    assert result["config"]["epochs"] == "3" and json.loads(result["config"]["sagemaker_program"]) == "train.py"
    env = result["env"]
    assert json.loads(env["SM_CHANNELS"]) == ["train"] and env["SM_CURRENT_HOST"] == "algo-1"
    assert json.loads(env["SM_HOSTS"]) == ["algo-1"] and env["SM_HP_EPOCHS"] == "3"
    assert json.loads(env["SM_HPS"]) == {"epochs": 3, "learning-rate": 0.5}
    assert env["SM_USER_ENTRY_POINT"] == "train.py" and int(env["SM_NUM_CPUS"]) >= 1
    assert result["argv"][:2] == ["--epochs", "3"] and "--learning-rate" in result["argv"]
    assert result["cwd"].endswith("/code")
    output = untar(get(server, d["ModelArtifacts"]["S3ModelArtifacts"].replace("model.tar.gz", "output.tar.gz")))
    assert output == {"report.txt": b"report"}


def test_failing_training_job(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    with_file = uid("train-fail")
    script = ("import sys\nopen('/opt/ml/output/failure', 'w').write('Loss diverged at epoch 3')\n"
              "sys.exit(1)\n")
    sm.create_training_job(**script_training_request(server, with_file, {"train.py": script}))
    crash = uid("train-crash")
    sm.create_training_job(**script_training_request(server, crash, {"train.py": "raise ValueError('no data here')\n"}))
    missing_hp = uid("xgb-nohp")
    data = {"train": put(server, f"xgb-small/{missing_hp}/train/a.csv", "1,2\n0,1\n").rsplit("/", 1)[0]}
    request = xgboost_training_request(server, missing_hp, {**data, "validation": data["train"]})
    del request["HyperParameters"]["num_round"]
    sm.create_training_job(**request)

    d = wait_job(sm, "training", with_file)
    assert d["TrainingJobStatus"] == "Failed" and d["SecondaryStatus"] == "Failed"
    assert d["FailureReason"] == "AlgorithmError: Loss diverged at epoch 3"
    assert d["SecondaryStatusTransitions"][-1]["Status"] == "Failed"
    d = wait_job(sm, "training", crash)
    assert d["TrainingJobStatus"] == "Failed"
    assert d["FailureReason"].startswith("AlgorithmError: ExecuteUserScriptError")
    assert "ValueError: no data here" in d["FailureReason"]
    d = wait_job(sm, "training", missing_hp)
    assert d["TrainingJobStatus"] == "Failed"
    assert d["FailureReason"] == "ClientError: Missing required hyperparameter: num_round"


def test_max_runtime_and_stop_kill_the_process_tree(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    sleeper = ("import os, subprocess, time\n"
               "child = subprocess.Popen(['sleep', '300'])\n"
               "print(f'pids {os.getpid()} {child.pid}', flush=True)\n"
               "time.sleep(300)\n")
    timed = uid("train-timeout")
    sm.create_training_job(**script_training_request(server, timed, {"train.py": sleeper}, max_runtime=2))
    stopped = uid("train-stop")
    sm.create_training_job(**script_training_request(server, stopped, {"train.py": sleeper}))

    wait_status(sm, "training", stopped, lambda d: d["SecondaryStatus"] == "Training", timeout=60)
    pids = _wait_pids(server, stopped)
    assert all(_alive(p) for p in pids)
    sm.stop_training_job(TrainingJobName=stopped)
    d = sm.describe_training_job(TrainingJobName=stopped)
    assert d["TrainingJobStatus"] in ("Stopping", "Stopped")
    d = wait_job(sm, "training", stopped, timeout=60)
    assert d["TrainingJobStatus"] == "Stopped" and d["SecondaryStatus"] == "Stopped"
    statuses = [t["Status"] for t in d["SecondaryStatusTransitions"]]
    assert statuses[:3] == ["Starting", "Downloading", "Training"] and statuses[-2:] == ["Stopping", "Stopped"]
    assert not any(_alive(p) for p in pids)

    d = wait_job(sm, "training", timed, timeout=60)
    assert d["TrainingJobStatus"] == "Stopped" and d["SecondaryStatus"] == "MaxRuntimeExceeded"
    assert d["SecondaryStatusTransitions"][-1]["StatusMessage"] == (
        "Training job runtime exceeded MaxRuntimeInSeconds provided")
    assert not any(_alive(p) for p in _wait_pids(server, timed))
    with pytest.raises(ClientError) as exc:
        sm.stop_training_job(TrainingJobName=timed)
    assert exc.value.response["Error"]["Code"] == "ValidationException"


def test_training_validation(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    with pytest.raises(ClientError) as exc:
        sm.describe_training_job(TrainingJobName=uid("nope"))
    assert exc.value.response["Error"] == {"Code": "ValidationException", "Message": "Requested resource not found."}
    name = uid("train-val")
    request = script_training_request(server, name, {"train.py": "print(1)\n"},
                                      metric_definitions=[{"Name": "bad", "Regex": "loss=([0-9"}])
    with pytest.raises(ClientError) as exc:
        sm.create_training_job(**request)
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    request = script_training_request(server, name, {"train.py": "print(1)\n"})
    request["RoleArn"] = sagemaker_role(server, trusted=False)
    with pytest.raises(ClientError) as exc:
        sm.create_training_job(**request)
    assert "Could not assume role" in exc.value.response["Error"]["Message"]
    unknown = uid("train-image")
    request = script_training_request(server, unknown, {"train.py": "print(1)\n"}, image="myrepo/trainer:latest")
    sm.create_training_job(**request)
    d = wait_job(sm, "training", unknown, timeout=30)
    assert d["TrainingJobStatus"] == "Failed" and "Image myrepo/trainer:latest is not supported" in d["FailureReason"]
    # Tags are kept and listed.
    tagged = uid("train-tags")
    request = script_training_request(server, tagged, {"train.py": "print(1)\n"})
    arn = sm.create_training_job(**request, Tags=[{"Key": "team", "Value": "ml"}])["TrainingJobArn"]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]
    wait_job(sm, "training", tagged)


def _logs(server: StratumServer, name: str, kind: str = "training") -> str:
    cmd = [sys.executable, "-m", "stratum.cli", "logs", name, "--data-dir", str(server.data_dir), "--type", kind]
    if server.database_url:
        cmd += ["--database-url", server.database_url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _wait_pids(server: StratumServer, name: str) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(r"^pids (\d+) (\d+)$", _logs(server, name), re.M)
        if m:
            return [int(m.group(1)), int(m.group(2))]
        time.sleep(0.2)
    raise AssertionError("the job never printed its pids")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_environment_is_not_leaked(server: StratumServer) -> None:
    """The job sees its role session, not the server's environment."""
    sm = server.client("sagemaker")
    name = uid("train-env")
    script = ("import json, os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'env.json'), 'w').write("
              "json.dumps(dict(os.environ)))\n")
    sm.create_training_job(**script_training_request(server, name, {"train.py": script}))
    d = wait_job(sm, "training", name)
    env = json.loads(untar(get(server, d["ModelArtifacts"]["S3ModelArtifacts"]))["env.json"])
    assert env["AWS_ENDPOINT_URL"] == server.endpoint_url and env["AWS_DEFAULT_REGION"] == REGION
    # The role comes from the container-credentials endpoint, as in SageMaker's containers (renewed
    # for as long as the job runs), not from keys fixed at its start.
    assert "AWS_ACCESS_KEY_ID" not in env and "AWS_SESSION_TOKEN" not in env
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == server.endpoint_url + "/_stratum/container-credentials"
    # Once the job has ended its token is worth nothing.
    request = urllib.request.Request(env["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
                                     headers={"Authorization": env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    assert not any(k.startswith("STRATUM_") and k != "STRATUM_OPT_ML" for k in env if k != "STRATUM_JOB_MARKER")
    assert os.environ.get("STRATUM_DEV_CREATE_ALL") is None or "STRATUM_DEV_CREATE_ALL" not in env


def test_list_jobs_cut_the_page_before_filtering_by_name_and_status(server: StratumServer) -> None:
    """As SageMaker: MaxResults cuts the page first, NameContains (and, for ListTrainingJobs,
    StatusEquals) filter that page, so a page can be short or empty and still carry a NextToken."""
    region = "eu-south-2"  # no other test lists jobs here: the listing holds only this test's jobs
    ak, sk = server.creds("dev")
    sm = boto3.client("sagemaker", endpoint_url=server.endpoint_url, region_name=region,
                      aws_access_key_id=ak, aws_secret_access_key=sk)
    rnd = uid("page")
    names = [f"{rnd}-a-match", f"{rnd}-b-other", f"{rnd}-c-match"]
    for name in names:  # an image Stratum does not know: each job fails at once, nothing runs
        request = script_training_request(server, name, {"train.py": "print('never')\n"},
                                          image="111111111111.dkr.ecr.eu-south-2.amazonaws.com/none:1")
        sm.create_training_job(**request)
        proc = processing_request(server, name, "print('never')\n",
                                  image="111111111111.dkr.ecr.eu-south-2.amazonaws.com/none:1")
        sm.create_processing_job(**proc)
    model = f"{rnd}-model"
    sm.create_model(ModelName=model, ExecutionRoleArn=sagemaker_role(server),
                    PrimaryContainer={"Image": "111111111111.dkr.ecr.eu-south-2.amazonaws.com/none:1"})
    for name in names:
        sm.create_transform_job(TransformJobName=name, ModelName=model, TransformInput={"DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket(server)}/never/"}}},
            TransformOutput={"S3OutputPath": f"s3://{bucket(server)}/never-out/"},
            TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1})
    for name in names:
        assert wait_job(sm, "training", name)["TrainingJobStatus"] == "Failed"
        assert wait_job(sm, "processing", name)["ProcessingJobStatus"] == "Failed"
        assert wait_job(sm, "transform", name)["TransformJobStatus"] == "Failed"

    for operation, member, key in (("list_training_jobs", "TrainingJobSummaries", "TrainingJobName"),
                                   ("list_processing_jobs", "ProcessingJobSummaries", "ProcessingJobName"),
                                   ("list_transform_jobs", "TransformJobSummaries", "TransformJobName")):
        pages, token = [], None
        while True:
            page = getattr(sm, operation)(NameContains="match", MaxResults=1, SortBy="Name", SortOrder="Ascending",
                                          **({"NextToken": token} if token else {}))
            pages.append([s[key] for s in page[member]])
            token = page.get("NextToken")
            if not token:
                break
        assert pages == [[names[0]], [], [names[2]]], operation
        full = sm.get_paginator(operation).paginate(NameContains="match", SortBy="Name").build_full_result()
        assert sorted(s[key] for s in full[member]) == [names[0], names[2]]

    # ListTrainingJobs: StatusEquals filters the page too ("first retrieved ignoring StatusEquals").
    first = sm.list_training_jobs(StatusEquals="Completed", MaxResults=2, SortBy="Name")
    assert first["TrainingJobSummaries"] == [] and "NextToken" in first
    second = sm.list_training_jobs(StatusEquals="Completed", MaxResults=2, SortBy="Name",
                                   NextToken=first["NextToken"])
    assert second["TrainingJobSummaries"] == [] and "NextToken" not in second
