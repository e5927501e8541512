"""Real-time endpoints through boto3: endpoint configs, endpoints and the model servers behind
them (their URLs are read from the server's endpoint instance table: the runtime API, which sends
invocations along the same routes, is tested on its own)."""

from __future__ import annotations

import os
import signal
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stratum_testing import REGION, StratumServer
from test_jobs_support import SKLEARN_IMAGE, XGBOOST_IMAGE, put, sagemaker_role, tarball, uid

INFERENCE = '''
import json, os, time

def model_fn(model_dir):
    time.sleep(float(os.environ.get("LOAD_SECONDS", "0")))  # a model slow to load: /ping waits for it
    with open(os.path.join(model_dir, "weights.json")) as f:
        return json.load(f)

def input_fn(body, content_type):
    text = body.decode() if isinstance(body, bytes) else body  # text/csv arrives decoded
    return [[float(v) for v in line.split(",")] for line in text.splitlines() if line]

def predict_fn(rows, model):
    return [sum(w * v for w, v in zip(model["w"], row)) + model["b"] for row in rows]

def output_fn(predictions, accept):
    return "".join(f"{p:g}\\n" for p in predictions), "text/csv"
'''
SCRIPT_ENV = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}


# ----------------------------------------------------------------------------------------- helpers
def script_model(server: StratumServer, name: str, bias: float = 0.5, load_seconds: float = 0) -> str:
    artifacts = put(server, f"models/{name}/model.tar.gz", tarball({
        "weights.json": f'{{"w": [1, 10], "b": {bias}}}', "code/inference.py": INFERENCE}))
    server.client("sagemaker").create_model(ModelName=name, ExecutionRoleArn=sagemaker_role(server), PrimaryContainer={
        "Image": SKLEARN_IMAGE, "ModelDataUrl": artifacts,
        "Environment": {**SCRIPT_ENV, "LOAD_SECONDS": str(load_seconds)}})
    return name


def config(sm: Any, name: str, model: str, count: int = 1, variant: str = "AllTraffic", **extra: Any) -> None:
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": variant, "ModelName": model, "InitialInstanceCount": count,
        "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}], **extra)


def wait_in_service(sm: Any, name: str) -> dict[str, Any]:
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    return dict(sm.describe_endpoint(EndpointName=name))


def wait_endpoint(sm: Any, name: str, predicate: Any, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        d = sm.describe_endpoint(EndpointName=name)
        if predicate(d):
            return dict(d)
        if time.monotonic() > deadline:
            raise AssertionError(f"endpoint {name}: condition not reached, last {d['EndpointStatus']}")
        time.sleep(0.05)


def instance_rows(server: StratumServer, endpoint: str) -> list[Any]:
    """The endpoint's model-server processes, from the server's own database."""
    from sqlalchemy import select

    from stratum.hosting.tables import sagemaker_endpoint_instances as inst
    from stratum.hosting.tables import sagemaker_endpoints as eps
    from stratum.store.db import Database

    db = Database(server.database_url or f"sqlite:///{server.data_dir / 'stratum.db'}")
    try:
        with db.read() as conn:
            return list(conn.execute(select(inst, eps.c.serving).join(eps, eps.c.endpoint_id == inst.c.endpoint_id)
                                     .where(eps.c.name_key == endpoint.lower()).order_by(inst.c.created_at)))
    finally:
        db.dispose()


def serving_urls(server: StratumServer, endpoint: str, variant: str | None = None) -> list[str]:
    return [r.url for r in instance_rows(server, endpoint)
            if r.status == "InService" and r.deployment == r.serving["Deployment"]
            and (variant is None or r.variant == variant)]


def invoke(url: str, body: str = "1,2\n3,4\n") -> str:
    request = urllib.request.Request(url + "/invocations", data=body.encode(), method="POST",
                                     headers={"Content-Type": "text/csv"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(resp.read().decode())


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def error(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


# ------------------------------------------------------------------------------------------ configs
def test_endpoint_configs(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    account = server.account_id("dev")
    model = script_model(server, uid("cfg-model"))
    prefix = uid("cfg")
    names = [f"{prefix}-{i}" for i in range(3)]
    for name in names:
        config(sm, name, model, count=2, Tags=[{"Key": "team", "Value": "ml"}],
               DataCaptureConfig={"InitialSamplingPercentage": 50, "DestinationS3Uri": "s3://bucket/capture",
                                  "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]})
    d = sm.describe_endpoint_config(EndpointConfigName=names[0])
    assert d["EndpointConfigArn"] == f"arn:aws:sagemaker:{REGION}:{account}:endpoint-config/{names[0]}"
    assert d["ProductionVariants"] == [{"VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 2,
                                        "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}]
    assert d["DataCaptureConfig"]["InitialSamplingPercentage"] == 50
    assert sm.list_tags(ResourceArn=d["EndpointConfigArn"])["Tags"] == [{"Key": "team", "Value": "ml"}]

    assert error(sm.create_endpoint_config, EndpointConfigName=names[0], ProductionVariants=[{
        "VariantName": "v", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}]) == (
        "ValidationException", f'Cannot create already existing endpoint configuration "{d["EndpointConfigArn"]}".')
    missing = uid("no-model")
    assert error(sm.create_endpoint_config, EndpointConfigName=uid("cfg-x"), ProductionVariants=[{
        "VariantName": "v", "ModelName": missing, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}]) == (
        "ValidationException", f'Could not find model "arn:aws:sagemaker:{REGION}:{account}:model/{missing}".')
    code, _ = error(sm.create_endpoint_config, EndpointConfigName=uid("cfg-x"), ProductionVariants=[{
        "VariantName": "v", "ModelName": model, "InitialInstanceCount": 1}])
    assert code == "ValidationException"

    listed = sm.list_endpoint_configs(NameContains=prefix, SortBy="Name", SortOrder="Ascending")["EndpointConfigs"]
    assert [c["EndpointConfigName"] for c in listed] == names
    page = sm.list_endpoint_configs(NameContains=prefix, SortBy="Name", SortOrder="Descending", MaxResults=2)
    assert [c["EndpointConfigName"] for c in page["EndpointConfigs"]] == names[:0:-1]
    rest = sm.list_endpoint_configs(NameContains=prefix, SortBy="Name", SortOrder="Descending", MaxResults=2,
                                    NextToken=page["NextToken"])
    assert [c["EndpointConfigName"] for c in rest["EndpointConfigs"]] == names[:1] and "NextToken" not in rest
    future = datetime.now(UTC) + timedelta(hours=1)
    assert sm.list_endpoint_configs(NameContains=prefix, CreationTimeAfter=future)["EndpointConfigs"] == []
    assert len(sm.list_endpoint_configs(NameContains=prefix, CreationTimeBefore=future)["EndpointConfigs"]) == 3

    sm.delete_endpoint_config(EndpointConfigName=names[2])
    arn = f"arn:aws:sagemaker:{REGION}:{account}:endpoint-config/{names[2]}"
    assert error(sm.describe_endpoint_config, EndpointConfigName=names[2]) == (
        "ValidationException", f'Could not find endpoint configuration "{arn}".')
    assert error(sm.delete_endpoint_config, EndpointConfigName=names[2])[0] == "ValidationException"
    assert error(sm.create_endpoint, EndpointName=uid("ep"), EndpointConfigName=names[2]) == (
        "ValidationException", f'Could not find endpoint configuration "{arn}".')
    gone = uid("ep-gone")
    assert error(sm.describe_endpoint, EndpointName=gone) == (
        "ValidationException", f'Could not find endpoint "arn:aws:sagemaker:{REGION}:{account}:endpoint/{gone}".')
    assert error(sm.delete_endpoint, EndpointName=gone)[0] == "ValidationException"


def test_endpoint_authorization(server: StratumServer) -> None:
    """CreateEndpoint is authorized on the endpoint (with aws:RequestTag) and on its config."""
    import json

    iam = server.client("iam")
    sm = server.client("sagemaker")
    account = server.account_id("dev")
    model = script_model(server, uid("authz-model"))
    allowed_cfg, other_cfg = uid("authz-cfg"), uid("authz-other")
    config(sm, allowed_cfg, model)
    config(sm, other_cfg, model)
    user = uid("ep-user")
    iam.create_user(UserName=user)
    keys = iam.create_access_key(UserName=user)["AccessKey"]
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sagemaker:CreateEndpoint",
         "Resource": f"arn:aws:sagemaker:{REGION}:{account}:endpoint/*",
         "Condition": {"StringEquals": {"aws:RequestTag/team": "ml"}}},
        {"Effect": "Allow", "Action": "sagemaker:CreateEndpoint",
         "Resource": f"arn:aws:sagemaker:{REGION}:{account}:endpoint-config/{allowed_cfg}"},
        {"Effect": "Allow", "Action": ["sagemaker:AddTags", "sagemaker:DeleteEndpoint"], "Resource": "*"}]}))
    limited = server.client("sagemaker", aws_access_key_id=keys["AccessKeyId"],
                            aws_secret_access_key=keys["SecretAccessKey"])
    tags = [{"Key": "team", "Value": "ml"}]
    code, message = error(limited.create_endpoint, EndpointName=uid("authz-ep"), EndpointConfigName=allowed_cfg)
    assert code == "AccessDeniedException" and "sagemaker:CreateEndpoint" in message  # no team tag
    code, message = error(limited.create_endpoint, EndpointName=uid("authz-ep"), EndpointConfigName=other_cfg,
                          Tags=tags)
    assert code == "AccessDeniedException" and f"endpoint-config/{other_cfg}" in message
    name = uid("authz-ep")
    limited.create_endpoint(EndpointName=name, EndpointConfigName=allowed_cfg, Tags=tags)
    assert error(limited.describe_endpoint, EndpointName=name)[0] == "AccessDeniedException"
    limited.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


# ---------------------------------------------------------------------------------------- endpoints
@pytest.mark.slow
def test_endpoint_lifecycle(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    account = server.account_id("dev")
    # A model that takes seconds to load, so the endpoint is still Creating for the checks below.
    model = script_model(server, uid("ep-model"), load_seconds=4)
    cfg = uid("ep-cfg")
    config(sm, cfg, model, Tags=[{"Key": "stage", "Value": "blue"}])
    name = uid("ep")
    arn = sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg,
                             Tags=[{"Key": "team", "Value": "ml"}])["EndpointArn"]
    assert arn == f"arn:aws:sagemaker:{REGION}:{account}:endpoint/{name}"
    d = sm.describe_endpoint(EndpointName=name)
    assert d["EndpointStatus"] == "Creating" and d["EndpointConfigName"] == cfg
    assert error(sm.create_endpoint, EndpointName=name, EndpointConfigName=cfg) == (
        "ValidationException", f'Cannot create already existing endpoint "{arn}".')
    assert error(sm.update_endpoint, EndpointName=name, EndpointConfigName=cfg) == (
        "ValidationException", f'Cannot update in-progress endpoint "{arn}".')

    d = wait_in_service(sm, name)
    assert d["EndpointStatus"] == "InService" and "FailureReason" not in d
    [variant] = d["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic" and variant["CurrentInstanceCount"] == 1
    assert variant["DesiredInstanceCount"] == 1 and variant["CurrentWeight"] == 1.0
    assert variant["DeployedImages"][0]["SpecifiedImage"] == SKLEARN_IMAGE
    assert variant["DeployedImages"][0]["ResolvedImage"].startswith(SKLEARN_IMAGE.rsplit(":", 1)[0] + "@sha256:")
    assert d["LastModifiedTime"] >= d["CreationTime"]
    [url] = serving_urls(server, name)
    assert invoke(url) == "21.5\n43.5\n"

    # Listing, filters, Search, tags.
    listed = sm.list_endpoints(NameContains=name)["Endpoints"]
    assert [(e["EndpointName"], e["EndpointStatus"]) for e in listed] == [(name, "InService")]
    assert sm.list_endpoints(NameContains=name, StatusEquals="Failed")["Endpoints"] == []
    assert sm.list_endpoints(NameContains=name, LastModifiedTimeAfter=d["LastModifiedTime"]
                             + timedelta(seconds=1))["Endpoints"] == []
    found = sm.search(Resource="Endpoint", SearchExpression={"Filters": [
        {"Name": "EndpointName", "Operator": "Equals", "Value": name}]})["Results"]
    assert [r["Endpoint"]["EndpointStatus"] for r in found] == ["InService"]
    assert found[0]["Endpoint"]["Tags"] == [{"Key": "team", "Value": "ml"}]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "owner", "Value": "me"}])
    assert {t["Key"] for t in sm.list_tags(ResourceArn=arn)["Tags"]} == {"team", "owner"}

    # A second instance.
    sm.update_endpoint_weights_and_capacities(EndpointName=name, DesiredWeightsAndCapacities=[
        {"VariantName": "AllTraffic", "DesiredInstanceCount": 2}])
    d = sm.describe_endpoint(EndpointName=name)
    assert d["EndpointStatus"] == "Updating"
    assert d["ProductionVariants"][0]["DesiredInstanceCount"] == 2
    assert d["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    d = wait_in_service(sm, name)
    assert d["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    urls = serving_urls(server, name)
    assert len(urls) == 2 and all(invoke(u) == "21.5\n43.5\n" for u in urls)
    assert error(sm.update_endpoint_weights_and_capacities, EndpointName=name, DesiredWeightsAndCapacities=[
        {"VariantName": "Nope", "DesiredWeight": 1.0}])[0] == "ValidationException"

    # A model server killed: SystemUpdating, restarted, InService, with a log line saying so.
    victim = instance_rows(server, name)[0]
    os.kill(victim.pid, signal.SIGKILL)
    wait_endpoint(sm, name, lambda e: e["EndpointStatus"] == "SystemUpdating", timeout=10)
    d = wait_in_service(sm, name)
    assert d["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    urls = serving_urls(server, name)
    assert len(urls) == 2 and all(invoke(u) == "21.5\n43.5\n" for u in urls)
    logs = server.client("logs")
    group = f"/aws/sagemaker/Endpoints/{name}"
    stream = f"AllTraffic/{victim.instance_id}"
    deadline = time.monotonic() + 10
    while True:
        events = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
        if any("exited with code -9: restarting" in e["message"] for e in events):
            break
        assert time.monotonic() < deadline, [e["message"] for e in events]
        time.sleep(0.2)
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert len(streams) == 2 and all(s["logStreamName"].startswith("AllTraffic/i-") for s in streams)

    # Blue/green to a new config: the old variant answers until the new one is InService.
    green_model = script_model(server, uid("ep-model-green"), bias=100)
    green = uid("ep-cfg-green")
    config(sm, green, green_model, variant="Green")
    old_pids = [r.pid for r in instance_rows(server, name)]
    sm.update_endpoint(EndpointName=name, EndpointConfigName=green)
    d = sm.describe_endpoint(EndpointName=name)
    assert d["EndpointStatus"] == "Updating" and d["EndpointConfigName"] == cfg
    assert d["PendingDeploymentSummary"]["EndpointConfigName"] == green
    assert [v["VariantName"] for v in d["ProductionVariants"]] == ["AllTraffic"]
    while d["EndpointStatus"] == "Updating":
        assert all(invoke(u) == "21.5\n43.5\n" for u in serving_urls(server, name, "AllTraffic"))
        d = sm.describe_endpoint(EndpointName=name)
    assert d["EndpointStatus"] == "InService" and d["EndpointConfigName"] == green
    assert [v["VariantName"] for v in d["ProductionVariants"]] == ["Green"]
    assert "PendingDeploymentSummary" not in d
    [url] = serving_urls(server, name)
    assert invoke(url) == "121\n143\n"
    deadline = time.monotonic() + 30  # drained, then stopped
    while any(alive(p) for p in old_pids):
        assert time.monotonic() < deadline
        time.sleep(0.2)

    # Weights: a second variant via a new config, then weights moved.
    two = uid("ep-cfg-two")
    sm.create_endpoint_config(EndpointConfigName=two, ProductionVariants=[
        {"VariantName": "Green", "ModelName": green_model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
         "InitialVariantWeight": 1.0},
        {"VariantName": "Blue", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
         "InitialVariantWeight": 3.0}])
    sm.update_endpoint(EndpointName=name, EndpointConfigName=two)
    d = wait_in_service(sm, name)
    assert {v["VariantName"]: v["CurrentWeight"] for v in d["ProductionVariants"]} == {"Green": 1.0, "Blue": 3.0}
    assert invoke(serving_urls(server, name, "Blue")[0]) == "21.5\n43.5\n"
    sm.update_endpoint_weights_and_capacities(EndpointName=name, DesiredWeightsAndCapacities=[
        {"VariantName": "Blue", "DesiredWeight": 0.5}])
    d = wait_in_service(sm, name)
    assert {v["VariantName"]: v["CurrentWeight"] for v in d["ProductionVariants"]} == {"Green": 1.0, "Blue": 0.5}
    # RetainAllVariantProperties keeps the weights set since (the same config deployed again).
    sm.update_endpoint(EndpointName=name, EndpointConfigName=two, RetainAllVariantProperties=True)
    d = wait_in_service(sm, name)
    assert {v["VariantName"]: v["CurrentWeight"] for v in d["ProductionVariants"]} == {"Green": 1.0, "Blue": 0.5}
    sm.update_endpoint(EndpointName=name, EndpointConfigName=two, RetainAllVariantProperties=True,
                       ExcludeRetainedVariantProperties=[{"VariantPropertyType": "DesiredWeight"}])
    d = wait_in_service(sm, name)
    assert {v["VariantName"]: v["CurrentWeight"] for v in d["ProductionVariants"]} == {"Green": 1.0, "Blue": 3.0}

    # Delete: the waiter, the processes gone.
    pids = [r.pid for r in instance_rows(server, name)]
    assert pids and all(alive(p) for p in pids)
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    assert not any(alive(p) for p in pids)
    assert instance_rows(server, name) == []
    assert error(sm.describe_endpoint, EndpointName=name)[1] == f'Could not find endpoint "{arn}".'


@pytest.mark.slow
def test_endpoint_fails_when_its_model_server_cannot_start(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    model = uid("broken-model")
    artifacts = put(server, f"models/{model}/model.tar.gz", tarball({
        "code/inference.py": "raise ImportError('no such thing')\n"}))
    sm.create_model(ModelName=model, ExecutionRoleArn=sagemaker_role(server), PrimaryContainer={
        "Image": SKLEARN_IMAGE, "ModelDataUrl": artifacts, "Environment": SCRIPT_ENV})
    cfg = uid("broken-cfg")
    config(sm, cfg, model)
    name = uid("broken-ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    with pytest.raises(Exception, match="Failed"):
        sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    d = sm.describe_endpoint(EndpointName=name)
    assert d["EndpointStatus"] == "Failed"
    assert d["FailureReason"].startswith("The primary container for production variant AllTraffic did not pass the "
                                         "ping health check."), d["FailureReason"]
    assert "no such thing" in d["FailureReason"]
    assert instance_rows(server, name) == []
    arn = d["EndpointArn"]
    assert error(sm.update_endpoint, EndpointName=name, EndpointConfigName=cfg)[0] == "ValidationException"
    assert f'"{arn}"' in error(sm.update_endpoint, EndpointName=name, EndpointConfigName=cfg)[1]
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def test_unsupported_image_fails_endpoints_and_listing_pages_them(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    model = uid("odd-model")
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/not-a-sagemaker-image:1"
    sm.create_model(ModelName=model, ExecutionRoleArn=sagemaker_role(server), PrimaryContainer={"Image": image})
    cfg = uid("odd-cfg")
    config(sm, cfg, model)
    prefix = uid("odd-ep")
    names = [f"{prefix}-{i}" for i in range(3)]
    for name in names:
        sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    for name in names:
        d = wait_endpoint(sm, name, lambda e: e["EndpointStatus"] != "Creating")
        assert d["EndpointStatus"] == "Failed" and f"Image {image} is not supported by Stratum" in d["FailureReason"]
    pages = list(sm.get_paginator("list_endpoints").paginate(
        NameContains=prefix, SortBy="Name", SortOrder="Descending", StatusEquals="Failed",
        PaginationConfig={"PageSize": 2}))
    assert [[e["EndpointName"] for e in p["Endpoints"]] for p in pages] == [names[:0:-1], names[:1]]
    by_creation = sm.list_endpoints(NameContains=prefix, SortBy="CreationTime", SortOrder="Ascending")["Endpoints"]
    assert [e["EndpointName"] for e in by_creation] == names
    assert sm.list_endpoints(NameContains=prefix, StatusEquals="InService")["Endpoints"] == []
    for name in names:
        sm.delete_endpoint(EndpointName=name)
    for name in names:
        sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


@pytest.mark.slow
def test_xgboost_endpoint_predicts_like_the_booster(server: StratumServer, tmp_path: Any) -> None:
    import numpy as np
    import xgboost

    rng = np.random.default_rng(7)
    features = rng.uniform(0, 1, (200, 3))
    labels = 3 * features[:, 0] + features[:, 1] - 2 * features[:, 2]
    booster = xgboost.train({"objective": "reg:squarederror", "max_depth": 3}, xgboost.DMatrix(features, labels),
                            num_boost_round=20)
    booster.save_model(str(tmp_path / "xgboost-model.ubj"))
    rows = features[:4]
    expected = booster.predict(xgboost.DMatrix(rows))
    sm = server.client("sagemaker")
    name = uid("xgb-ep")
    artifacts = put(server, f"models/{name}/model.tar.gz", tarball({
        "xgboost-model": (tmp_path / "xgboost-model.ubj").read_bytes()}))
    sm.create_model(ModelName=name, ExecutionRoleArn=sagemaker_role(server), PrimaryContainer={
        "Image": XGBOOST_IMAGE, "ModelDataUrl": artifacts})
    config(sm, name, name)
    started = time.monotonic()
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    wait_in_service(sm, name)
    print(f"\n[{server.backend}] CreateEndpoint -> InService (XGBoost): {time.monotonic() - started:.2f}s")
    [url] = serving_urls(server, name)
    body = "".join(",".join(f"{v:.17g}" for v in row) + "\n" for row in rows)
    answer = invoke(url, body)
    got = [float(v) for v in answer.replace("\n", ",").split(",") if v.strip()]
    assert np.allclose(got, expected, rtol=1e-5), (got, expected)
    # And through the runtime API, as a client calls it.
    through = server.client("sagemaker-runtime").invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                                                  Body=body)["Body"].read().decode()
    assert np.allclose([float(v) for v in through.replace("\n", ",").split(",") if v.strip()], expected, rtol=1e-5)
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


@pytest.mark.slow
def test_endpoint_serves_again_after_a_crash_of_stratum(fresh_server: StratumServer) -> None:
    server = fresh_server
    sm = server.client("sagemaker")
    model = script_model(server, uid("crash-model"))
    cfg = uid("crash-cfg")
    config(sm, cfg, model)
    name = uid("crash-ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    wait_in_service(sm, name)
    [before] = instance_rows(server, name)
    server.kill()
    assert alive(before.pid)  # the model server outlives the crash
    server.start()
    sm = server.client("sagemaker")
    d = wait_in_service(sm, name)
    assert d["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    deadline = time.monotonic() + 30
    while not serving_urls(server, name):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    [url] = serving_urls(server, name)
    assert invoke(url) == "21.5\n43.5\n"
    [after] = instance_rows(server, name)
    assert (after.instance_id, after.pid, after.url) == (before.instance_id, before.pid, before.url)  # adopted
    # An adopted model server that dies is started again too.
    os.kill(after.pid, signal.SIGKILL)
    wait_endpoint(sm, name, lambda e: e["EndpointStatus"] == "SystemUpdating", timeout=10)
    wait_in_service(sm, name)
    # Restarted in place, or replaced when its health checks failed first: a new live process serves.
    [again] = instance_rows(server, name)
    assert again.pid != after.pid and alive(again.pid)
    assert invoke(again.url) == "21.5\n43.5\n"
    # A clean stop stops the model servers; the next start runs them again.
    pids = [r.pid for r in instance_rows(server, name)]
    server.stop()
    assert not any(alive(p) for p in pids)
    server.start()
    sm = server.client("sagemaker")
    deadline = time.monotonic() + 60
    while True:
        urls = serving_urls(server, name)
        if urls and sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService":
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert invoke(urls[0]) == "21.5\n43.5\n"
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


@pytest.mark.slow
def test_multi_container_and_serverless_variants(server: StratumServer) -> None:
    """A Direct-mode model runs one model server per container on each instance; a serverless
    variant runs one instance; DescribeEndpoint reports both, and the DataCaptureConfig summary."""
    sm = server.client("sagemaker")
    role = sagemaker_role(server)
    multi = uid("multi-model")
    containers = []
    for hostname, bias in (("first", 1), ("second", 2)):
        artifacts = put(server, f"models/{multi}/{hostname}.tar.gz", tarball({
            "weights.json": f'{{"w": [1, 10], "b": {bias}}}', "code/inference.py": INFERENCE}))
        containers.append({"Image": SKLEARN_IMAGE, "ModelDataUrl": artifacts, "Environment": SCRIPT_ENV,
                           "ContainerHostname": hostname})
    sm.create_model(ModelName=multi, ExecutionRoleArn=role, Containers=containers,
                    InferenceExecutionConfig={"Mode": "Direct"})
    single = script_model(server, uid("sls-model"))
    cfg = uid("multi-cfg")
    sm.create_endpoint_config(EndpointConfigName=cfg, ProductionVariants=[
        {"VariantName": "Multi", "ModelName": multi, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"},
        {"VariantName": "Serverless", "ModelName": single,
         "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 2}}],
        DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 100,
                           "DestinationS3Uri": "s3://capture-bucket/ep", "CaptureOptions": [{"CaptureMode": "Input"}]})
    name = uid("multi-ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    d = wait_in_service(sm, name)
    variants = {v["VariantName"]: v for v in d["ProductionVariants"]}
    assert [i["SpecifiedImage"] for i in variants["Multi"]["DeployedImages"]] == [SKLEARN_IMAGE, SKLEARN_IMAGE]
    assert variants["Multi"]["CurrentInstanceCount"] == 1
    assert variants["Serverless"]["CurrentServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 2}
    assert "CurrentInstanceCount" not in variants["Serverless"]
    assert d["DataCaptureConfig"] == {"EnableCapture": True, "CaptureStatus": "Started",
                                      "CurrentSamplingPercentage": 100, "DestinationS3Uri": "s3://capture-bucket/ep"}
    rows = [r for r in instance_rows(server, name) if r.variant == "Multi"]
    assert sorted(r.container for r in rows) == ["first", "second"] and len({r.instance_id for r in rows}) == 1
    answers = {r.container: invoke(r.url, "1,2\n") for r in rows}
    assert answers == {"first": "22\n", "second": "23\n"}
    assert invoke(serving_urls(server, name, "Serverless")[0], "1,2\n") == "21.5\n"
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


@pytest.mark.slow
def test_another_server_takes_an_endpoint_over(tmp_path: Any) -> None:
    """Two servers on one PostgreSQL database: the endpoint runs on the server that created it;
    when that one is killed, the other takes the endpoint over once the lease expires (adopting
    its model servers on this machine) and runs it from then on."""
    from stratum_testing import BACKENDS, create_pg_database, drop_pg_database

    if "postgresql" not in BACKENDS:
        pytest.skip("PostgreSQL backend not selected")
    url = create_pg_database()
    shared = tmp_path / "shared"
    shared.mkdir()
    servers = [StratumServer(shared, url, ["--lease-seconds", "3"], backend="postgresql",
                             log_path=tmp_path / f"server{i}.log") for i in range(2)]
    try:
        first, second = servers
        first.start()
        second.start()
        sm = first.client("sagemaker")
        model = script_model(first, uid("takeover-model"))
        cfg = uid("takeover-cfg")
        config(sm, cfg, model)
        name = uid("takeover-ep")
        sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
        wait_in_service(second.client("sagemaker"), name)  # any server answers for any endpoint
        [before] = instance_rows(first, name)
        first.kill()
        deadline = time.monotonic() + 30
        while True:
            [after] = instance_rows(second, name)
            if after.owner != before.owner and after.status == "InService":
                break
            assert time.monotonic() < deadline, after
            time.sleep(0.2)
        assert (after.instance_id, after.pid) == (before.instance_id, before.pid)
        sm = second.client("sagemaker")
        assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
        assert invoke(after.url) == "21.5\n43.5\n"
        sm.delete_endpoint(EndpointName=name)
        sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        assert not alive(before.pid)
    finally:
        for srv in servers:
            srv.stop()
        drop_pg_database(url)


@pytest.mark.slow
def test_sagemaker_sdk_deploys_and_deletes_an_endpoint(server: StratumServer) -> None:
    """Model.deploy (CreateModel, CreateEndpointConfig, CreateEndpoint) and Predictor.delete_endpoint /
    delete_model of the SageMaker Python SDK. (The SDK's own wait polls every 30 s; the waiter is quicker.)"""
    sagemaker = pytest.importorskip("sagemaker")
    from sagemaker.model import Model
    from sagemaker.predictor import Predictor
    from sdk_testing import loopback_only

    name = uid("sdk-ep")
    artifacts = put(server, f"models/{name}/model.tar.gz", tarball({
        "weights.json": '{"w": [1, 10], "b": 0.5}', "code/inference.py": INFERENCE}))
    with loopback_only():
        session = sagemaker.Session(boto_session=server.session(), sagemaker_client=server.client("sagemaker"),
                                    sagemaker_runtime_client=server.client("sagemaker-runtime"))
        model = Model(image_uri=SKLEARN_IMAGE, model_data=artifacts, role=sagemaker_role(server), env=SCRIPT_ENV,
                      sagemaker_session=session, name=name)
        model.deploy(initial_instance_count=1, instance_type="ml.m5.large", endpoint_name=name, wait=False)
        sm = server.client("sagemaker")
        d = wait_in_service(sm, name)
        assert d["EndpointStatus"] == "InService" and d["EndpointConfigName"] == name
        [url] = serving_urls(server, name)
        assert invoke(url) == "21.5\n43.5\n"
        predictor = Predictor(name, sagemaker_session=session)
        predictor.delete_model()  # the models its endpoint config names
        predictor.delete_endpoint()  # the endpoint and its config
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    assert error(sm.describe_endpoint_config, EndpointConfigName=name)[0] == "ValidationException"
    assert error(sm.describe_model, ModelName=name)[0] == "ValidationException"


@pytest.mark.slow
def test_instance_metrics_and_health_checks(tmp_path_factory: pytest.TempPathFactory,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU and memory reach CloudWatch; a model server that stops answering /ping (SIGSTOP) is
    replaced."""
    from stratum_testing import BACKENDS, close_server, make_server

    monkeypatch.setenv("STRATUM_ENDPOINT_METRICS_SECONDS", "0.5")
    monkeypatch.setenv("STRATUM_ENDPOINT_HEALTH_SECONDS", "0.5")
    server = make_server(tmp_path_factory, BACKENDS[0])
    server.start()
    try:
        sm = server.client("sagemaker")
        model = script_model(server, uid("metrics-model"))
        cfg = uid("metrics-cfg")
        config(sm, cfg, model, count=2)
        name = uid("metrics-ep")
        sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
        wait_in_service(sm, name)
        cloudwatch = server.client("cloudwatch")
        dims = [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": "AllTraffic"}]
        deadline = time.monotonic() + 30
        while True:
            metrics = cloudwatch.list_metrics(Namespace="/aws/sagemaker/Endpoints", Dimensions=dims)["Metrics"]
            if {m["MetricName"] for m in metrics} == {"CPUUtilization", "MemoryUtilization"}:
                break
            assert time.monotonic() < deadline, metrics
            time.sleep(0.5)
        stats = cloudwatch.get_metric_statistics(
            Namespace="/aws/sagemaker/Endpoints", MetricName="MemoryUtilization", Dimensions=dims,
            StartTime=datetime.now(UTC) - timedelta(minutes=5), EndTime=datetime.now(UTC) + timedelta(minutes=1),
            Period=60, Statistics=["Average", "SampleCount"])["Datapoints"]
        assert stats and all(0 < p["Average"] < 100 and p["Unit"] == "Percent" for p in stats)

        hung = instance_rows(server, name)[0]
        os.kill(hung.pid, signal.SIGSTOP)
        try:
            wait_endpoint(sm, name, lambda e: e["EndpointStatus"] == "SystemUpdating", timeout=20)
            wait_in_service(sm, name)
            replaced = [r for r in instance_rows(server, name) if r.instance_id == hung.instance_id]
            assert replaced and replaced[0].pid != hung.pid and not alive(hung.pid)
            assert invoke(replaced[0].url) == "21.5\n43.5\n"
        finally:
            if alive(hung.pid):
                os.kill(hung.pid, signal.SIGKILL)
        sm.delete_endpoint(EndpointName=name)
        sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    finally:
        close_server(server)


def broken_model(server: StratumServer, name: str) -> str:
    artifacts = put(server, f"models/{name}/model.tar.gz", tarball({
        "code/inference.py": "raise ImportError('no such thing')\n"}))
    server.client("sagemaker").create_model(ModelName=name, ExecutionRoleArn=sagemaker_role(server), PrimaryContainer={
        "Image": SKLEARN_IMAGE, "ModelDataUrl": artifacts, "Environment": SCRIPT_ENV})
    return name


@pytest.mark.slow
def test_an_update_that_cannot_start_leaves_the_old_variants_serving(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    good = uid("rb-cfg")
    config(sm, good, script_model(server, uid("rb-model")))
    bad = uid("rb-bad")
    config(sm, bad, broken_model(server, uid("rb-broken")), variant="Broken")
    name = uid("rb-ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=good)
    wait_in_service(sm, name)
    [before] = instance_rows(server, name)
    sm.update_endpoint(EndpointName=name, EndpointConfigName=bad)
    d = wait_endpoint(sm, name, lambda e: e["EndpointStatus"] != "Updating")
    assert d["EndpointStatus"] == "InService" and d["EndpointConfigName"] == good
    assert "did not pass the ping health check" in d["FailureReason"] and "no such thing" in d["FailureReason"]
    assert [v["VariantName"] for v in d["ProductionVariants"]] == ["AllTraffic"]
    assert "PendingDeploymentSummary" not in d
    deadline = time.monotonic() + 10
    while len(instance_rows(server, name)) != 1:  # the failed instance is cleaned up
        assert time.monotonic() < deadline
        time.sleep(0.1)
    [after] = instance_rows(server, name)
    assert (after.instance_id, after.pid) == (before.instance_id, before.pid)
    assert invoke(after.url) == "21.5\n43.5\n"
    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    assert not alive(before.pid)


def test_an_endpoint_deleted_while_creating_leaves_nothing(server: StratumServer) -> None:
    import subprocess

    sm = server.client("sagemaker")
    cfg = uid("del-cfg")
    config(sm, cfg, script_model(server, uid("del-model")), count=2)
    name = uid("del-ep")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=cfg)
    deadline = time.monotonic() + 10
    while len(rows := instance_rows(server, name)) < 2:  # its instances are starting
        assert time.monotonic() < deadline
        time.sleep(0.02)
    sm.delete_endpoint(EndpointName=name)  # the server that runs it stops it before answering
    assert error(sm.describe_endpoint, EndpointName=name)[0] == "ValidationException"
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    assert instance_rows(server, name) == []
    ids = {r.instance_id for r in rows}
    # Model servers run from the instance's work directory, which names the instance.
    running = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert not any(i in running for i in ids)
    assert not any((server.data_dir / "hosting" / "work" / i).exists() for i in ids)


WHOAMI = '''
import json, os
import boto3

def model_fn(model_dir):
    return None

def transform_fn(model, body, content_type, accept):
    arn = boto3.client("sts").get_caller_identity()["Arn"]
    return json.dumps({"arn": arn, "static_keys": "AWS_ACCESS_KEY_ID" in os.environ,
                       "uri": os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
                       "token": os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")}), "application/json"
'''


def test_model_server_role_credentials_are_renewable_and_die_with_it(server: StratumServer) -> None:
    """The model's role reaches its container as SageMaker's do: through the container-credentials
    endpoint the SDKs read again before expiry (an endpoint runs for days), never fixed keys; the
    token is refused once the endpoint is gone."""
    import json

    sm = server.client("sagemaker")
    name = uid("whoami")
    role = sagemaker_role(server)
    artifacts = put(server, f"models/{name}/model.tar.gz", tarball({"code/inference.py": WHOAMI}))
    sm.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer={
        "Image": SKLEARN_IMAGE, "ModelDataUrl": artifacts, "Environment": SCRIPT_ENV})
    config(sm, name, name)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    wait_in_service(sm, name)
    [url] = serving_urls(server, name)
    answer = json.loads(invoke(url, "x"))
    role_name = role.rsplit("/", 1)[-1]
    assert answer["arn"] == f"arn:aws:sts::{server.account_id('dev')}:assumed-role/{role_name}/SageMaker"
    assert answer["static_keys"] is False
    assert answer["uri"] == server.endpoint_url + "/_stratum/container-credentials"
    request = urllib.request.Request(answer["uri"], headers={"Authorization": answer["token"]})
    with urllib.request.urlopen(request, timeout=10) as resp:
        document = json.loads(resp.read())
    assert document["RoleArn"] == role and document["Token"] and document["Expiration"]
    forged = urllib.request.Request(answer["uri"], headers={"Authorization": answer["token"] + "x"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=10)
    assert refused.value.code == 403

    sm.delete_endpoint(EndpointName=name)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
