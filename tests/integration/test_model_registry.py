"""The SageMaker model registry through boto3 and the SageMaker Python SDK: model package groups,
versioned and unversioned packages, approvals, metadata, listing, deletion rules, Search, tags,
group resource policies (hub and spoke), and the RegisterModel step handler writing into the
server's database."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select
from stratum_testing import REGION, StratumServer

from stratum.store.db import Database

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1.7-1"


def _uid(prefix: str = "mpg") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = exc.value.response["Error"]
    return err["Code"], err["Message"]


def inference_spec(model_url: str = "s3://models/model.tar.gz") -> dict[str, Any]:
    return {"Containers": [{"Image": IMAGE, "ModelDataUrl": model_url, "Environment": {"MODE": "csv"}}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"],
            "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large"],
            "SupportedTransformInstanceTypes": ["ml.m5.large"]}


def new_group(server: StratumServer, account: str = "dev", **kw: Any) -> tuple[str, str]:
    name = _uid()
    arn = server.client("sagemaker", account).create_model_package_group(ModelPackageGroupName=name,
                                                                         **kw)["ModelPackageGroupArn"]
    return name, arn


def new_version(sm: Any, group: str, **kw: Any) -> str:
    kw.setdefault("InferenceSpecification", inference_spec())
    return sm.create_model_package(ModelPackageGroupName=group, **kw)["ModelPackageArn"]


def server_db(server: StratumServer) -> Database:
    return Database(server.database_url or f"sqlite:///{server.data_dir / 'stratum.db'}")


# ------------------------------------------------------------------------------------------- groups
def test_group_lifecycle_and_errors(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    account = server.account_id("dev")
    name = _uid("Churn")
    arn = sm.create_model_package_group(ModelPackageGroupName=name, ModelPackageGroupDescription="churn models",
                                        Tags=[{"Key": "team", "Value": "risk"}])["ModelPackageGroupArn"]
    assert arn == f"arn:aws:sagemaker:{REGION}:{account}:model-package-group/{name}"

    d = sm.describe_model_package_group(ModelPackageGroupName=name)
    assert d["ModelPackageGroupName"] == name and d["ModelPackageGroupArn"] == arn
    assert d["ModelPackageGroupDescription"] == "churn models"
    assert d["ModelPackageGroupStatus"] == "Completed"
    assert d["CreatedBy"]["IamIdentity"]["Arn"] == f"arn:aws:iam::{account}:user/admin"
    assert abs(d["CreationTime"] - datetime.now(UTC)) < timedelta(minutes=1)
    # By ARN, and names are case-insensitive like the ARNs of their versions.
    assert sm.describe_model_package_group(ModelPackageGroupName=arn)["ModelPackageGroupArn"] == arn
    assert sm.describe_model_package_group(ModelPackageGroupName=name.lower())["ModelPackageGroupName"] == name
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "risk"}]

    with pytest.raises(ClientError) as exc:
        sm.create_model_package_group(ModelPackageGroupName=name)
    code, message = error_of(exc)
    assert code == "ValidationException" and "already exists" in message and arn in message

    missing = _uid()
    with pytest.raises(ClientError) as exc:
        sm.describe_model_package_group(ModelPackageGroupName=missing)
    assert error_of(exc) == ("ValidationException", f"ModelPackageGroup arn:aws:sagemaker:{REGION}:{account}:"
                                                    f"model-package-group/{missing} does not exist.")
    with pytest.raises(ClientError) as exc:
        sm.create_model_package_group(ModelPackageGroupName="bad_name")
    assert error_of(exc)[0] == "ValidationException"

    sm.delete_model_package_group(ModelPackageGroupName=name)
    with pytest.raises(ClientError) as exc:
        sm.describe_model_package_group(ModelPackageGroupName=name)
    assert "does not exist" in error_of(exc)[1]
    with pytest.raises(ClientError) as exc:
        sm.delete_model_package_group(ModelPackageGroupName=name)
    assert error_of(exc)[0] == "ValidationException"
    # Deleted groups free their name.
    assert sm.create_model_package_group(ModelPackageGroupName=name)["ModelPackageGroupArn"] == arn


def test_list_groups_filters_sorting_and_pages(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    marker = uuid.uuid4().hex[:8]
    names = [f"lst-{marker}-{c}" for c in ("b", "a", "c")]
    before = datetime.now(UTC) - timedelta(seconds=1)
    for name in names:
        sm.create_model_package_group(ModelPackageGroupName=name)

    listed = sm.list_model_package_groups(NameContains=marker.upper())["ModelPackageGroupSummaryList"]
    assert [g["ModelPackageGroupName"] for g in listed] == names  # CreationTime, ascending by default
    assert all(g["ModelPackageGroupStatus"] == "Completed" for g in listed)

    by_name = sm.list_model_package_groups(NameContains=marker, SortBy="Name", SortOrder="Descending")
    assert [g["ModelPackageGroupName"] for g in by_name["ModelPackageGroupSummaryList"]] == sorted(names, reverse=True)

    first = sm.list_model_package_groups(NameContains=marker, SortBy="Name", MaxResults=2)
    assert [g["ModelPackageGroupName"] for g in first["ModelPackageGroupSummaryList"]] == sorted(names)[:2]
    second = sm.list_model_package_groups(NameContains=marker, SortBy="Name", MaxResults=2,
                                          NextToken=first["NextToken"])
    assert [g["ModelPackageGroupName"] for g in second["ModelPackageGroupSummaryList"]] == sorted(names)[2:]
    assert "NextToken" not in second
    with pytest.raises(ClientError) as exc:
        sm.list_model_package_groups(NameContains="other", NextToken=first["NextToken"])
    assert error_of(exc)[0] == "ValidationException"

    window = sm.list_model_package_groups(NameContains=marker, CreationTimeAfter=before,
                                          CreationTimeBefore=datetime.now(UTC) + timedelta(minutes=1))
    assert len(window["ModelPackageGroupSummaryList"]) == 3
    later = sm.list_model_package_groups(NameContains=marker, CreationTimeAfter=datetime.now(UTC) + timedelta(minutes=1))
    assert later["ModelPackageGroupSummaryList"] == []
    # Another account's groups are not listed.
    other = server.client("sagemaker", "test").list_model_package_groups(NameContains=marker)
    assert other["ModelPackageGroupSummaryList"] == []
    # The paginator drives NextToken to the end.
    pages = server.client("sagemaker").get_paginator("list_model_package_groups").paginate(
        NameContains=marker, PaginationConfig={"PageSize": 1})
    assert sum(len(p["ModelPackageGroupSummaryList"]) for p in pages) == 3


# ----------------------------------------------------------------------------------------- versions
def test_versions_describe_every_member(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    account = server.account_id("dev")
    name = _uid("Abalone")
    group_arn = sm.create_model_package_group(ModelPackageGroupName=name)["ModelPackageGroupArn"]
    metrics = {"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                               "S3Uri": "s3://bkt/evaluation.json"}}}
    baselines = {"ModelDataQuality": {"Statistics": {"ContentType": "application/json",
                                                     "S3Uri": "s3://bkt/drift.json"}}}
    arn1 = new_version(sm, name, ModelPackageDescription="first", ModelMetrics=metrics,
                       CustomerMetadataProperties={"git": "abc123", "owner": "ml"},
                       MetadataProperties={"Repository": "git@example:repo", "CommitId": "abc123"},
                       Domain="MACHINE_LEARNING", Task="REGRESSION", SamplePayloadUrl="s3://bkt/payload.tar.gz",
                       DriftCheckBaselines=baselines, SkipModelValidation="None")
    arn2 = new_version(sm, name, ModelApprovalStatus="Approved")
    arn3 = new_version(sm, group_arn)
    base = f"arn:aws:sagemaker:{REGION}:{account}:model-package/{name.lower()}"
    assert [arn1, arn2, arn3] == [f"{base}/1", f"{base}/2", f"{base}/3"]

    d = sm.describe_model_package(ModelPackageName=arn1)
    assert d["ModelPackageName"] == name and d["ModelPackageGroupName"] == name
    assert d["ModelPackageVersion"] == 1 and d["ModelPackageArn"] == arn1
    assert d["ModelPackageDescription"] == "first"
    assert d["ModelPackageStatus"] == "Completed"
    assert d["ModelPackageStatusDetails"] == {"ValidationStatuses": [], "ImageScanStatuses": []}
    assert d["ModelApprovalStatus"] == "PendingManualApproval"
    assert d["InferenceSpecification"] == inference_spec()
    assert d["ModelMetrics"] == metrics and d["DriftCheckBaselines"] == baselines
    assert d["CustomerMetadataProperties"] == {"git": "abc123", "owner": "ml"}
    assert d["MetadataProperties"] == {"Repository": "git@example:repo", "CommitId": "abc123"}
    assert (d["Domain"], d["Task"], d["SamplePayloadUrl"]) == ("MACHINE_LEARNING", "REGRESSION",
                                                              "s3://bkt/payload.tar.gz")
    assert d["SkipModelValidation"] == "None" and d["CertifyForMarketplace"] is False
    assert d["CreatedBy"]["IamIdentity"]["Arn"] == f"arn:aws:iam::{account}:user/admin"
    assert d["LastModifiedTime"] == d["CreationTime"]
    assert "ApprovalDescription" not in d

    assert sm.describe_model_package(ModelPackageName=f"{name}/2")["ModelApprovalStatus"] == "Approved"
    assert sm.describe_model_package(ModelPackageName=arn3)["ModelPackageVersion"] == 3
    with pytest.raises(ClientError) as exc:
        sm.describe_model_package(ModelPackageName=f"{base}/9")
    assert error_of(exc) == ("ValidationException", f"ModelPackage {base}/9 does not exist.")


def test_create_model_package_errors(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    with pytest.raises(ClientError) as exc:
        new_version(sm, _uid())
    assert error_of(exc) == ("ValidationException", "Model Package Group does not exist.")
    name, _ = new_group(server)
    with pytest.raises(ClientError) as exc:
        sm.create_model_package(ModelPackageGroupName=name, ModelPackageName=_uid(),
                                InferenceSpecification=inference_spec())
    assert "Both ModelPackageName and ModelPackageGroupName" in error_of(exc)[1]
    with pytest.raises(ClientError) as exc:
        sm.create_model_package(InferenceSpecification=inference_spec())
    assert error_of(exc) == ("ValidationException", "Missing ARN.")
    with pytest.raises(ClientError) as exc:
        new_version(sm, name, Tags=[{"Key": "a", "Value": "b"}])
    assert error_of(exc)[0] == "ValidationException" and "tags" in error_of(exc)[1].lower()
    with pytest.raises(ClientError) as exc:
        new_version(sm, name, ModelApprovalStatus="Maybe")
    assert error_of(exc)[0] == "ValidationException"
    # None of the refused requests used up a version number.
    assert new_version(sm, name).endswith(f"{name.lower()}/1")


def test_client_token_replays_the_first_create(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, _ = new_group(server)
    token = uuid.uuid4().hex[:32]
    first = new_version(sm, name, ClientToken=token)
    assert new_version(sm, name, ClientToken=token) == first
    assert new_version(sm, name).endswith("/2")


def test_concurrent_creates_get_distinct_versions(server: StratumServer) -> None:
    name, _ = new_group(server)
    arns: list[str] = []
    errors: list[Exception] = []

    def register() -> None:
        try:
            arns.append(new_version(server.client("sagemaker"), name))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(int(a.rsplit("/", 1)[1]) for a in arns) == [1, 2, 3, 4, 5, 6]


# ----------------------------------------------------------------------------------------- updates
def test_approval_and_metadata_updates_record_events(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, _ = new_group(server)
    arn = new_version(sm, name, CustomerMetadataProperties={"keep": "1", "drop": "2"})
    created = sm.describe_model_package(ModelPackageName=arn)

    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved",
                            ApprovalDescription="metrics look good")
    d = sm.describe_model_package(ModelPackageName=arn)
    assert d["ModelApprovalStatus"] == "Approved" and d["ApprovalDescription"] == "metrics look good"
    assert d["LastModifiedTime"] >= created["LastModifiedTime"]
    assert d["LastModifiedBy"]["IamIdentity"]["Arn"].endswith(":user/admin")

    sm.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"new": "3", "keep": "1b"},
                            CustomerMetadataPropertiesToRemove=["drop"])
    assert sm.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"] == {"keep": "1b",
                                                                                           "new": "3"}
    with pytest.raises(ClientError) as exc:
        sm.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"x": "1"},
                                CustomerMetadataPropertiesToRemove=["x"])
    assert error_of(exc)[0] == "ValidationException"

    sm.update_model_package(ModelPackageArn=arn, AdditionalInferenceSpecificationsToAdd=[
        {"Name": "neo", "Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://models/compiled.tar.gz"}]}])
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    d = sm.describe_model_package(ModelPackageName=arn)
    assert d["ModelApprovalStatus"] == "Rejected"
    assert [s["Name"] for s in d["AdditionalInferenceSpecifications"]] == ["neo"]
    assert d["ApprovalDescription"] == "metrics look good"

    with pytest.raises(ClientError) as exc:
        sm.update_model_package(ModelPackageArn=arn + "0")
    assert error_of(exc)[0] == "ValidationException" and "does not exist" in error_of(exc)[1]

    # One state-change event per creation and approval change, none for metadata-only updates.
    from stratum.services.sagemaker.registry.tables import sagemaker_registry_events as events

    db = server_db(server)
    try:
        with db.read() as conn:
            rows = [r for r in conn.execute(select(events).order_by(events.c.event_id)) if r.resources == [arn]]
    finally:
        db.dispose()
    assert [r.detail["ModelApprovalStatus"] for r in rows] == ["PendingManualApproval", "Approved", "Rejected"]
    assert all(r.detail_type == "SageMaker Model Package State Change" and r.source == "aws.sagemaker"
               for r in rows)
    assert rows[1].detail["ModelPackageGroupName"] == name and rows[1].detail["ModelPackageVersion"] == 1
    # The event bus moves them onto the account's default bus and stamps them (test_events_rules).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with db.read() as conn:
            stamps = [r.dispatched_at for r in conn.execute(select(events)) if r.resources == [arn]]
        if all(stamps):
            break
        time.sleep(0.2)
    db.dispose()
    assert all(stamps)


# ----------------------------------------------------------------------------------------- listing
def test_list_model_packages_filters_and_pages(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, group_arn = new_group(server)
    arns = [new_version(sm, name) for _ in range(4)]
    sm.update_model_package(ModelPackageArn=arns[1], ModelApprovalStatus="Approved")
    sm.update_model_package(ModelPackageArn=arns[3], ModelApprovalStatus="Approved")

    listed = sm.list_model_packages(ModelPackageGroupName=name)["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in listed] == arns
    assert listed[0]["ModelPackageVersion"] == 1 and listed[0]["ModelPackageGroupName"] == name
    assert listed[1]["ModelApprovalStatus"] == "Approved" and listed[0]["ModelPackageStatus"] == "Completed"

    approved = sm.list_model_packages(ModelPackageGroupName=group_arn, ModelApprovalStatus="Approved",
                                      SortOrder="Descending")["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in approved] == [arns[3], arns[1]]  # "latest approved" first

    page1 = sm.list_model_packages(ModelPackageGroupName=name, MaxResults=3)
    page2 = sm.list_model_packages(ModelPackageGroupName=name, MaxResults=3, NextToken=page1["NextToken"])
    assert [p["ModelPackageArn"] for p in page1["ModelPackageSummaryList"] + page2["ModelPackageSummaryList"]] == arns
    assert "NextToken" not in page2

    # Without a group, the default type is Unversioned; Versioned/Both include these versions.
    marker = name.split("-", 1)[1]
    assert sm.list_model_packages(NameContains=marker)["ModelPackageSummaryList"] == []
    both = sm.list_model_packages(NameContains=marker, ModelPackageType="Both")["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in both] == arns
    versioned = sm.list_model_packages(NameContains=marker, ModelPackageType="Versioned", SortBy="Name",
                                       SortOrder="Descending")["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in versioned] == list(reversed(arns))
    assert sm.list_model_packages(ModelPackageGroupName=name, ModelPackageType="Unversioned")[
        "ModelPackageSummaryList"] == []
    assert sm.list_model_packages(ModelPackageGroupName=_uid())["ModelPackageSummaryList"] == []


def test_unversioned_packages(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    account = server.account_id("dev")
    name = _uid("Standalone")
    arn = sm.create_model_package(ModelPackageName=name, ModelPackageDescription="marketplace style",
                                  InferenceSpecification=inference_spec(),
                                  Tags=[{"Key": "stage", "Value": "dev"}])["ModelPackageArn"]
    assert arn == f"arn:aws:sagemaker:{REGION}:{account}:model-package/{name.lower()}"
    d = sm.describe_model_package(ModelPackageName=name)
    assert d["ModelPackageName"] == name and d["ModelPackageArn"] == arn
    assert "ModelPackageGroupName" not in d and "ModelPackageVersion" not in d and "ModelApprovalStatus" not in d
    with pytest.raises(ClientError) as exc:
        sm.create_model_package(ModelPackageName=name, InferenceSpecification=inference_spec())
    assert error_of(exc)[0] == "ValidationException" and "ModelPackage already exists" in error_of(exc)[1]

    listed = sm.list_model_packages(NameContains=name.split("-", 1)[1])["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in listed] == [arn]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "owner", "Value": "ml"}])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "stage", "Value": "dev"}, {"Key": "owner", "Value": "ml"}]
    with pytest.raises(ClientError) as exc:
        sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    assert error_of(exc)[0] == "ValidationException"

    sm.delete_model_package(ModelPackageName=arn)
    with pytest.raises(ClientError) as exc:
        sm.describe_model_package(ModelPackageName=name)
    assert error_of(exc) == ("ValidationException", f"ModelPackage {arn} does not exist.")


def test_deletion_rules(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, _ = new_group(server)
    v1, v2 = new_version(sm, name), new_version(sm, name)
    with pytest.raises(ClientError) as exc:
        sm.delete_model_package_group(ModelPackageGroupName=name)
    assert error_of(exc)[0] == "ConflictException"
    sm.delete_model_package(ModelPackageName=v2)
    # Version numbers are not reused after a delete.
    v3 = new_version(sm, name)
    assert v3.endswith("/3")
    assert [p["ModelPackageArn"] for p in sm.list_model_packages(ModelPackageGroupName=name)[
        "ModelPackageSummaryList"]] == [v1, v3]
    sm.delete_model_package(ModelPackageName=v1)
    sm.delete_model_package(ModelPackageName=f"{name}/3")
    sm.delete_model_package_group(ModelPackageGroupName=name)
    with pytest.raises(ClientError) as exc:
        sm.delete_model_package(ModelPackageName=v1)
    assert error_of(exc)[0] == "ValidationException"


def test_batch_describe(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, _ = new_group(server)
    v1, v2 = new_version(sm, name), new_version(sm, name, ModelApprovalStatus="Approved")
    missing = v1.rsplit("/", 1)[0] + "/99"
    out = sm.batch_describe_model_package(ModelPackageArnList=[v1, v2, missing])
    assert set(out["ModelPackageSummaries"]) == {v1, v2}
    assert out["ModelPackageSummaries"][v2]["ModelApprovalStatus"] == "Approved"
    assert out["ModelPackageSummaries"][v1]["InferenceSpecification"] == inference_spec()
    assert out["BatchDescribeModelPackageErrorMap"][missing]["ErrorCode"] == "ValidationException"


# ------------------------------------------------------------------------------------------ Search
def test_search_groups_and_packages(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, group_arn = new_group(server, Tags=[{"Key": "domain", "Value": "fraud"}])
    v1 = new_version(sm, name)
    v2 = new_version(sm, name, ModelApprovalStatus="Approved")

    groups = sm.search(Resource="ModelPackageGroup", SearchExpression={"Filters": [
        {"Name": "ModelPackageGroupName", "Operator": "Equals", "Value": name}]})["Results"]
    assert [r["ModelPackageGroup"]["ModelPackageGroupArn"] for r in groups] == [group_arn]
    assert groups[0]["ModelPackageGroup"]["Tags"] == [{"Key": "domain", "Value": "fraud"}]

    packages = sm.search(Resource="ModelPackage", SearchExpression={"Filters": [
        {"Name": "ModelPackageGroupName", "Operator": "Equals", "Value": name},
        {"Name": "ModelApprovalStatus", "Operator": "Equals", "Value": "Approved"}]})["Results"]
    assert [r["ModelPackage"]["ModelPackageArn"] for r in packages] == [v2]
    assert packages[0]["ModelPackage"]["Tags"] == [{"Key": "domain", "Value": "fraud"}]
    by_version = sm.search(Resource="ModelPackage", SortBy="CreationTime", SortOrder="Ascending",
                           SearchExpression={"Filters": [{"Name": "ModelPackageGroupName", "Value": name}]})
    assert [r["ModelPackage"]["ModelPackageArn"] for r in by_version["Results"]] == [v1, v2]
    assert server.client("sagemaker", "test").search(Resource="ModelPackageGroup", SearchExpression={"Filters": [
        {"Name": "ModelPackageGroupName", "Value": name}]})["Results"] == []


def test_sdk_model_register_creates_group_and_version(server: StratumServer, monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:
    """Model.register() outside a pipeline: the SDK searches for the group, creates it when missing
    (accepting "already exists"), then creates the version."""
    pytest.importorskip("sagemaker")
    from sagemaker.model import Model
    from sagemaker.session import Session

    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    access_key, secret_key = server.creds("dev")
    boto_session = boto3.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=REGION)
    session = Session(boto_session=boto_session, sagemaker_client=server.client("sagemaker"),
                      default_bucket=f"sdk-{uuid.uuid4().hex[:12]}",
                      sagemaker_config={"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {
                          "TelemetryOptOut": True}}}})
    group = _uid("SdkGroup")
    model = Model(image_uri=IMAGE, model_data="s3://models/model.tar.gz", sagemaker_session=session,
                  role=f"arn:aws:iam::{server.account_id('dev')}:role/sdk-role")
    for expected in (1, 2):
        package = model.register(content_types=["text/csv"], response_types=["text/csv"],
                                 inference_instances=["ml.m5.large"], transform_instances=["ml.m5.large"],
                                 model_package_group_name=group, approval_status="Approved",
                                 customer_metadata_properties={"source": "sdk"})
        assert package.model_package_arn.endswith(f"/{group.lower()}/{expected}")
    d = server.client("sagemaker").describe_model_package(ModelPackageName=package.model_package_arn)
    assert d["ModelApprovalStatus"] == "Approved" and d["CustomerMetadataProperties"] == {"source": "sdk"}
    assert d["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == "s3://models/model.tar.gz"


# ----------------------------------------------------------------------------------- hub and spoke
def hub_policy(server: StratumServer, name: str, spoke: str = "dev") -> str:
    hub, spoke_id = server.account_id("hub"), server.account_id(spoke)
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadGroup", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{spoke_id}:root"},
         "Action": ["sagemaker:DescribeModelPackageGroup"],
         "Resource": f"arn:aws:sagemaker:{REGION}:{hub}:model-package-group/{name}"},
        {"Sid": "Versions", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{spoke_id}:root"},
         "Action": ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages",
                    "sagemaker:CreateModelPackage", "sagemaker:UpdateModelPackage"],
         "Resource": f"arn:aws:sagemaker:{REGION}:{hub}:model-package/{name.lower()}/*"},
    ]})


def test_group_policy_hub_and_spoke(server: StratumServer) -> None:
    hub_sm, spoke_sm = server.client("sagemaker", "hub"), server.client("sagemaker", "dev")
    hub = server.account_id("hub")
    name, group_arn = new_group(server, "hub")

    # Without a policy the spoke cannot see or write the hub's group.
    with pytest.raises(ClientError) as exc:
        spoke_sm.describe_model_package_group(ModelPackageGroupName=group_arn)
    assert error_of(exc)[0] == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:
        new_version(spoke_sm, group_arn)
    assert error_of(exc)[0] == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:
        hub_sm.get_model_package_group_policy(ModelPackageGroupName=name)
    assert error_of(exc)[0] == "ValidationException"

    policy = hub_policy(server, name)
    assert hub_sm.put_model_package_group_policy(ModelPackageGroupName=name,
                                                 ResourcePolicy=policy)["ModelPackageGroupArn"] == group_arn
    assert json.loads(hub_sm.get_model_package_group_policy(ModelPackageGroupName=name)["ResourcePolicy"]) == \
        json.loads(policy)

    # Now the spoke addresses the group by ARN: read it and push versions into it.
    assert spoke_sm.describe_model_package_group(ModelPackageGroupName=group_arn)["ModelPackageGroupName"] == name
    arn = new_version(spoke_sm, group_arn, CustomerMetadataProperties={"from": "dev"})
    assert arn == f"arn:aws:sagemaker:{REGION}:{hub}:model-package/{name.lower()}/1"
    d = spoke_sm.describe_model_package(ModelPackageName=arn)
    assert d["CreatedBy"]["IamIdentity"]["Arn"] == f"arn:aws:iam::{server.account_id('dev')}:user/admin"
    assert hub_sm.describe_model_package(ModelPackageName=f"{name}/1")["CustomerMetadataProperties"] == {"from": "dev"}
    listed = spoke_sm.list_model_packages(ModelPackageGroupName=group_arn)["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in listed] == [arn]
    spoke_sm.update_model_package(ModelPackageArn=arn, ApprovalDescription="from the spoke")
    shared = spoke_sm.list_model_package_groups(CrossAccountFilterOption="CrossAccount",
                                                NameContains=name)["ModelPackageGroupSummaryList"]
    assert [g["ModelPackageGroupArn"] for g in shared] == [group_arn]

    # By name, the spoke means its own account; the policy grants nothing else.
    with pytest.raises(ClientError) as exc:
        spoke_sm.describe_model_package_group(ModelPackageGroupName=name)
    assert error_of(exc)[0] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        spoke_sm.delete_model_package(ModelPackageName=arn)
    assert error_of(exc)[0] == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:
        spoke_sm.delete_model_package_group(ModelPackageGroupName=group_arn)
    assert error_of(exc)[0] == "AccessDeniedException"
    # An account the policy does not name stays out.
    outsider = server.client("sagemaker", "test")
    with pytest.raises(ClientError) as exc:
        outsider.describe_model_package(ModelPackageName=arn)
    assert error_of(exc)[0] == "AccessDeniedException"
    assert outsider.list_model_package_groups(CrossAccountFilterOption="CrossAccount",
                                              NameContains=name)["ModelPackageGroupSummaryList"] == []

    # Malformed policies are refused; deleting the policy closes the group again.
    with pytest.raises(ClientError) as exc:
        hub_sm.put_model_package_group_policy(ModelPackageGroupName=name, ResourcePolicy=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sagemaker:*",
                                                     "Resource": "*"}]}))
    assert error_of(exc)[0] == "ValidationException"
    hub_sm.delete_model_package_group_policy(ModelPackageGroupName=name)
    with pytest.raises(ClientError) as exc:
        spoke_sm.describe_model_package(ModelPackageName=arn)
    assert error_of(exc)[0] == "AccessDeniedException"


def test_identity_policy_and_resource_tags(server: StratumServer) -> None:
    """An IAM user limited by aws:ResourceTag and sagemaker:ModelApprovalStatus."""
    iam = server.client("iam")
    user = _uid("registry-user")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="fraud-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["sagemaker:DescribeModelPackageGroup", "sagemaker:DescribeModelPackage",
                                           "sagemaker:CreateModelPackage", "sagemaker:UpdateModelPackage"],
             "Resource": "*", "Condition": {"StringEquals": {"aws:ResourceTag/domain": "fraud"}}},
            {"Effect": "Deny", "Action": ["sagemaker:CreateModelPackage", "sagemaker:UpdateModelPackage"],
             "Resource": "*", "Condition": {"StringEquals": {"sagemaker:ModelApprovalStatus": "Approved"}}}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    sm = server.client("sagemaker", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    fraud, _ = new_group(server, Tags=[{"Key": "domain", "Value": "fraud"}])
    other, _ = new_group(server, Tags=[{"Key": "domain", "Value": "churn"}])

    assert sm.describe_model_package_group(ModelPackageGroupName=fraud)["ModelPackageGroupName"] == fraud
    arn = new_version(sm, fraud)
    assert sm.describe_model_package(ModelPackageName=arn)["ModelPackageVersion"] == 1
    for call in (lambda: sm.describe_model_package_group(ModelPackageGroupName=other),
                 lambda: new_version(sm, other),
                 lambda: new_version(sm, fraud, ModelApprovalStatus="Approved"),
                 lambda: sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_of(exc)[0] == "AccessDeniedException"
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")


# ------------------------------------------------------------------------------ RegisterModel step
def register_step_run(server: StratumServer, db: Database, arguments: dict[str, Any], step_name: str,
                      execution_id: str) -> Any:
    from stratum.engine.handlers import StepRun

    account = server.account_id("dev")
    pipeline_arn = f"arn:aws:sagemaker:{REGION}:{account}:pipeline/registry-pipe"
    return StepRun(app=SimpleNamespace(db=db), account_id=account, region=REGION, pipeline_name="registry-pipe",
                   pipeline_arn=pipeline_arn, execution_id=execution_id,
                   execution_arn=f"{pipeline_arn}/execution/{execution_id}",
                   role_arn=f"arn:aws:iam::{account}:role/pipeline-role", step_name=step_name,
                   step_type="RegisterModel", arguments=arguments, raw={}, attempt=1, stop_event=threading.Event())


def test_register_model_step_against_the_server_database(server: StratumServer) -> None:
    from stratum.services.sagemaker.registry.steps import run_register_model_step

    group = _uid("PipelineGroup")
    arguments = {  # as the SDK's ModelStep(register) compiles it, parameters already resolved
        "ModelPackageGroupName": group,
        "ModelPackageDescription": "from a pipeline",
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                         "S3Uri": "s3://bkt/evaluation.json"}},
                         "Bias": {}, "Explainability": {}},
        "CustomerMetadataProperties": {"k": "v"},
        "InferenceSpecification": inference_spec(),
        "ModelApprovalStatus": "PendingManualApproval",
        "SkipModelValidation": "None",
    }
    execution_id = uuid.uuid4().hex[:12]
    db = server_db(server)
    try:
        result = run_register_model_step(register_step_run(server, db, arguments, "Reg-RegisterModel",
                                                           execution_id))
        again = run_register_model_step(register_step_run(server, db, arguments, "Reg-RegisterModel",
                                                          execution_id))
        second = run_register_model_step(register_step_run(server, db, arguments, "Reg2-RegisterModel",
                                                           execution_id))
        bad = run_register_model_step(register_step_run(server, db, {**arguments, "ModelApprovalStatus": "Nope"},
                                                        "Bad-RegisterModel", execution_id))
    finally:
        db.dispose()
    assert result.status == "Succeeded", result.failure_reason
    arn = result.metadata["RegisterModel"]["Arn"]
    assert arn == f"arn:aws:sagemaker:{REGION}:{server.account_id('dev')}:model-package/{group.lower()}/1"
    assert result.properties["ModelPackageArn"] == arn and result.properties["ModelPackageVersion"] == 1
    assert isinstance(result.properties["CreationTime"], str)  # stored as JSON by the engine
    # A re-run of the same execution step returns the same version; another step makes version 2.
    assert again.metadata == result.metadata
    assert second.metadata["RegisterModel"]["Arn"].endswith("/2")
    assert bad.status == "Failed" and "ValidationException" in (bad.failure_reason or "")

    sm = server.client("sagemaker")
    assert sm.describe_model_package_group(ModelPackageGroupName=group)["ModelPackageGroupName"] == group
    d = sm.describe_model_package(ModelPackageName=arn)
    pipeline_arn = f"arn:aws:sagemaker:{REGION}:{server.account_id('dev')}:pipeline/registry-pipe"
    assert d["MetadataProperties"] == {"GeneratedBy": f"{pipeline_arn}/execution/{execution_id}"}
    assert d["ModelApprovalStatus"] == "PendingManualApproval" and d["CustomerMetadataProperties"] == {"k": "v"}
    assert d["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == "s3://bkt/evaluation.json"
    assert d["CreatedBy"]["IamIdentity"]["Arn"].endswith(":assumed-role/pipeline-role/SageMaker")
