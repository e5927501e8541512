"""CreateModel resolved as SageMaker resolves it, through boto3: containers given by
ModelPackageName (same account, another account through the group's resource policy, approval),
model data that must exist and be readable by the execution role, iam:PassRole, ContainerHostname
rules, and a batch transform of a model created from a registry package."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from authz_testing import client, limited_user
from botocore.exceptions import ClientError
from stratum_testing import StratumServer
from test_jobs_support import (
    SKLEARN_IMAGE,
    XGBOOST_IMAGE,
    abalone_rows,
    bucket,
    csv_text,
    get,
    put,
    sagemaker_role,
    tarball,
    uid,
    wait_job,
)
from test_jobs_transform import transform_request

HUB = "shared-services"


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def spec(image: str, url: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    return {"Containers": [{"Image": image, "ModelDataUrl": url, "Environment": env or {"FROM": "package"}}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]}


def package(server: StratumServer, url: str, account: str = "dev", status: str = "Approved",
            image: str = XGBOOST_IMAGE) -> tuple[str, str]:
    sm = server.client("sagemaker", account)
    group = uid("pkg")
    sm.create_model_package_group(ModelPackageGroupName=group)
    arn = sm.create_model_package(ModelPackageGroupName=group, InferenceSpecification=spec(image, url),
                                  ModelApprovalStatus=status)["ModelPackageArn"]
    return group, arn


def test_model_from_a_package_of_the_same_account(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    role = sagemaker_role(server)
    url = put(server, f"models/{uid('m')}/model.tar.gz", tarball({"weights.json": "{}"}))
    _, arn = package(server, url)
    name = uid("from-pkg")
    sm.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer={
        "ModelPackageName": arn, "Environment": {"EXTRA": "1"}})
    described = sm.describe_model(ModelName=name)
    # DescribeModel shows the container as it was given: the package, not its image.
    assert described["PrimaryContainer"] == {"ModelPackageName": arn, "Environment": {"EXTRA": "1"}}
    assert "Containers" not in described and described["ExecutionRoleArn"] == role

    # An unversioned package by name (no approval status).
    plain = uid("plain")
    sm.create_model_package(ModelPackageName=plain, InferenceSpecification=spec(SKLEARN_IMAGE, url))
    sm.create_model(ModelName=uid("from-plain"), ExecutionRoleArn=role, PrimaryContainer={"ModelPackageName": plain})

    # A version that is not Approved cannot be deployed.
    _, pending = package(server, url, status="PendingManualApproval")
    with pytest.raises(ClientError) as exc:
        sm.create_model(ModelName=uid("pending"), ExecutionRoleArn=role, PrimaryContainer={"ModelPackageName": pending})
    code, message = error(exc)
    assert code == "ValidationException" and "PendingManualApproval" in message and "Approved" in message
    # A package that does not exist.
    missing = arn.rsplit("/", 1)[0] + "/99"
    with pytest.raises(ClientError) as exc:
        sm.create_model(ModelName=uid("missing"), ExecutionRoleArn=role, PrimaryContainer={"ModelPackageName": missing})
    assert error(exc) == ("ValidationException", f"ModelPackage {missing} does not exist.")


def test_model_data_must_exist_and_be_readable_by_the_role(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    role = sagemaker_role(server)
    missing = f"s3://{bucket(server)}/models/{uid('none')}/model.tar.gz"
    with pytest.raises(ClientError) as exc:
        sm.create_model(ModelName=uid("m"), ExecutionRoleArn=role, PrimaryContainer={
            "Image": XGBOOST_IMAGE, "ModelDataUrl": missing})
    assert error(exc) == ("ValidationException", f"Could not find model data at {missing}.")
    with pytest.raises(ClientError) as exc:
        sm.create_model(ModelName=uid("m"), ExecutionRoleArn=role, PrimaryContainer={
            "Image": XGBOOST_IMAGE, "ModelDataUrl": f"s3://{uid('nobucket')}/model.tar.gz"})
    assert error(exc)[1].startswith("Could not find model data at s3://")

    # A role without S3 access cannot read it.
    iam = server.client("iam")
    bare = iam.create_role(RoleName=uid("bare"), AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    url = put(server, f"models/{uid('m')}/model.tar.gz", b"data")
    name = uid("m")
    with pytest.raises(ClientError) as exc:
        sm.create_model(ModelName=name, ExecutionRoleArn=bare, PrimaryContainer={
            "Image": XGBOOST_IMAGE, "ModelDataUrl": url})
    code, message = error(exc)
    assert code == "ValidationException" and message.startswith(f"Could not access model data at {url}.")
    assert bare in message
    assert sm.list_models(NameContains=name)["Models"] == []  # nothing was stored
    # The same data with a role that may read it.
    sm.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer={"Image": XGBOOST_IMAGE,
                                                                             "ModelDataUrl": url})
    assert [m["ModelName"] for m in sm.list_models(NameContains=name)["Models"]] == [name]


def test_create_model_needs_pass_role(server: StratumServer) -> None:
    role = sagemaker_role(server)
    creds, _ = limited_user(server, {"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"}, prefix="modeler")
    sm = client(server, "sagemaker", creds)
    with pytest.raises(ClientError) as exc:
        sm.create_model(ModelName=uid("m"), ExecutionRoleArn=role, PrimaryContainer={"Image": SKLEARN_IMAGE})
    code, message = error(exc)
    assert code == "AccessDeniedException" and "iam:PassRole" in message
    creds, _ = limited_user(server, {"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"},
                            {"Effect": "Allow", "Action": "iam:PassRole", "Resource": role,
                             "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}},
                            prefix="modeler")
    allowed = client(server, "sagemaker", creds)
    name = uid("m")
    allowed.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer={"Image": SKLEARN_IMAGE})
    assert allowed.describe_model(ModelName=name)["ExecutionRoleArn"] == role


def test_cross_account_package_through_the_group_policy(server: StratumServer) -> None:
    hub = server.client("sagemaker", HUB)
    dev_account, hub_account = server.account_id("dev"), server.account_id(HUB)
    role = sagemaker_role(server)  # dev's execution role
    # The model data lives in the hub's bucket; its policy lets dev's role read it.
    hub_bucket = bucket(server, HUB)
    url = put(server, f"models/{uid('x')}/model.tar.gz", tarball({"w": "1"}), account=HUB)
    group, arn = package(server, url, account=HUB)
    sm = server.client("sagemaker")
    name = uid("xacct")
    with pytest.raises(ClientError) as exc:  # no group policy yet
        sm.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer={"ModelPackageName": arn})
    code, message = error(exc)
    assert code == "AccessDeniedException" and "sagemaker:DescribeModelPackage" in message
    hub.put_model_package_group_policy(ModelPackageGroupName=group, ResourcePolicy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Sid": "Deploy", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{dev_account}:root"},
            "Action": ["sagemaker:DescribeModelPackage"],
            "Resource": f"arn:aws:sagemaker:us-east-1:{hub_account}:model-package/{group.lower()}/*"}]}))
    with pytest.raises(ClientError) as exc:  # dev's role cannot read the hub's bucket yet
        sm.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer={"ModelPackageName": arn})
    assert error(exc)[1].startswith(f"Could not access model data at {url}.")
    server.client("s3", HUB).put_bucket_policy(Bucket=hub_bucket, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": role}, "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{hub_bucket}/models/*"}]}))
    sm.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer={"ModelPackageName": arn})
    assert sm.describe_model(ModelName=name)["PrimaryContainer"] == {"ModelPackageName": arn}

    # A version of that group still pending approval is refused across accounts too.
    pending = hub.create_model_package(ModelPackageGroupName=group, InferenceSpecification=spec(XGBOOST_IMAGE, url),
                                       )["ModelPackageArn"]
    with pytest.raises(ClientError) as exc:
        sm.create_model(ModelName=uid("xpending"), ExecutionRoleArn=role, PrimaryContainer={"ModelPackageName": pending})
    assert error(exc)[0] == "ValidationException" and "PendingManualApproval" in error(exc)[1]


def test_container_hostname_rules(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    role = sagemaker_role(server)

    def refused(**kw: Any) -> str:
        with pytest.raises(ClientError) as exc:
            sm.create_model(ModelName=uid("mc"), ExecutionRoleArn=role, **kw)
        assert error(exc)[0] == "ValidationException"
        return error(exc)[1]

    a, b = {"Image": SKLEARN_IMAGE}, {"Image": XGBOOST_IMAGE}
    assert "Direct" in refused(Containers=[a, b], InferenceExecutionConfig={"Mode": "Direct"})
    assert "every container" in refused(Containers=[{**a, "ContainerHostname": "one"}, b])
    assert "unique" in refused(Containers=[{**a, "ContainerHostname": "one"}, {**b, "ContainerHostname": "one"}])
    assert "Containers" in refused(PrimaryContainer=a, InferenceExecutionConfig={"Mode": "Serial"})
    name = uid("direct")
    sm.create_model(ModelName=name, ExecutionRoleArn=role, InferenceExecutionConfig={"Mode": "Direct"},
                    Containers=[{**a, "ContainerHostname": "pre"}, {**b, "ContainerHostname": "post"}])
    described = sm.describe_model(ModelName=name)
    assert [c["ContainerHostname"] for c in described["Containers"]] == ["pre", "post"]
    assert described["InferenceExecutionConfig"] == {"Mode": "Direct"}


def _xgboost_model() -> tuple[Any, bytes, list[list[str]]]:
    """A small booster on abalone, written as the 1.7-1 container writes it, and rows to predict."""
    import xgboost as xgb

    from stratum.algorithms.xgboost import model_file

    rows = abalone_rows()
    data = np.array(rows[:1000], dtype=np.float32)
    booster = xgb.train({"objective": "reg:squarederror", "max_depth": 3}, xgb.DMatrix(data[:, 1:], label=data[:, 0]),
                        num_boost_round=5)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = model_file.save(booster, Path(tmp), XGBOOST_IMAGE)
        archive = tarball({"xgboost-model": path.read_bytes()})
    return booster, archive, [r[1:] for r in rows[3600:3610]]


def test_transform_with_a_model_from_the_registry(server: StratumServer) -> None:
    import xgboost as xgb

    booster, archive, features = _xgboost_model()
    sm = server.client("sagemaker")
    name = uid("reg-tr")
    url = put(server, f"models/{name}/model.tar.gz", archive)
    _, arn = package(server, url)
    sm.create_model(ModelName=name, ExecutionRoleArn=sagemaker_role(server),
                    PrimaryContainer={"ModelPackageName": arn})
    source = put(server, f"batch/{name}/in/part.csv", csv_text(features)).rsplit("/", 1)[0]
    output = f"s3://{bucket(server)}/batch/{name}/out"
    sm.create_transform_job(**transform_request(name, name, source, output, BatchStrategy="MultiRecord"))
    d = wait_job(sm, "transform", name)
    assert d["TransformJobStatus"] == "Completed", d.get("FailureReason")
    got = [float(v) for v in get(server, f"{output}/part.csv.out").decode().splitlines()]
    expected = booster.predict(xgb.DMatrix(np.array(features, dtype=np.float32)))
    assert np.allclose(got, expected, rtol=1e-6)
