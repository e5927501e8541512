"""Global condition keys filled from the real request: conditions in identity and resource policies
decide real calls made with boto3."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from authz_testing import client, limited_user
from botocore.exceptions import ClientError
from sqlalchemy import select
from stratum_testing import REGION, StratumServer

from stratum.services.organizations.tables import accounts
from stratum.store.db import Database


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _user(server: StratumServer, *statements: dict[str, Any], tags: list[dict[str, str]] | None = None
          ) -> tuple[dict[str, str], str]:
    return limited_user(server, *statements, tags=tags, prefix="ck")


def _list_pipelines(condition: dict[str, Any]) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": "sagemaker:ListPipelines", "Resource": "*", "Condition": condition}


def _allowed(server: StratumServer, creds: dict[str, str], region: str | None = None) -> bool:
    try:
        client(server, "sagemaker", creds, region=region or REGION).list_pipelines()
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AccessDeniedException", exc.response
        return False
    return True


def _org_id(server: StratumServer) -> str:
    db = Database(server.database_url or f"sqlite:///{server.data_dir / 'stratum.db'}")
    try:
        with db.read() as conn:
            return str(conn.execute(select(accounts.c.organization_id).where(
                accounts.c.id == server.account_id("dev"))).scalar())
    finally:
        db.dispose()


def test_source_ip(server: StratumServer) -> None:
    loopback, _ = _user(server, _list_pipelines({"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}))
    assert _allowed(server, loopback)
    elsewhere, _ = _user(server, _list_pipelines({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}))
    assert not _allowed(server, elsewhere)


def test_forwarded_for_headers_do_not_change_source_ip(server: StratumServer) -> None:
    elsewhere, _ = _user(server, _list_pipelines({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}))
    sm = client(server, "sagemaker", elsewhere)

    def forged(request: Any, **_: Any) -> None:
        request.headers["X-Forwarded-For"] = "203.0.113.7"
        request.headers["X-Real-IP"] = "203.0.113.7"
        request.headers["Forwarded"] = "for=203.0.113.7"

    sm.meta.events.register("before-sign.sagemaker.ListPipelines", forged)
    with pytest.raises(ClientError) as exc:
        sm.list_pipelines()
    assert exc.value.response["Error"]["Code"] == "AccessDeniedException"


def test_requested_region(server: StratumServer) -> None:
    creds, _ = _user(server, _list_pipelines({"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}))
    assert not _allowed(server, creds, "us-east-1")
    assert _allowed(server, creds, "eu-west-1")


def test_secure_transport_is_false_over_plain_http(server: StratumServer) -> None:
    creds, _ = _user(server, _list_pipelines({}),
                     {"Effect": "Deny", "Action": "*", "Resource": "*",
                      "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
    assert not _allowed(server, creds)
    tls_only, _ = _user(server, _list_pipelines({"Bool": {"aws:SecureTransport": "true"}}))
    assert not _allowed(server, tls_only)


def test_current_and_epoch_time(server: StratumServer) -> None:
    now = int(time.time())
    window, _ = _user(server, _list_pipelines({
        "DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"},
        "NumericLessThan": {"aws:EpochTime": str(now + 3600)}}))
    assert _allowed(server, window)
    expired, _ = _user(server, _list_pipelines({"DateLessThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}))
    assert not _allowed(server, expired)


def test_username_variable_and_userid(server: StratumServer) -> None:
    account = server.account_id("dev")
    creds, arn = _user(server, {"Effect": "Allow", "Action": "iam:GetUser",
                                "Resource": f"arn:aws:iam::{account}:user/${{aws:username}}"})
    iam = client(server, "iam", creds)
    me = arn.rsplit("/", 1)[1]
    user_id = iam.get_user(UserName=me)["User"]["UserId"]
    with pytest.raises(ClientError):
        iam.get_user(UserName="admin")
    by_id, _ = _user(server, _list_pipelines({"StringEquals": {"aws:userid": user_id}}))
    assert not _allowed(server, by_id)  # another user's id
    prefixed, _ = _user(server, _list_pipelines({"StringLike": {"aws:userid": "AIDA*"}}))
    assert _allowed(server, prefixed)


def test_principal_tags_of_users_and_role_sessions(server: StratumServer) -> None:
    ml, _ = _user(server, _list_pipelines({"StringEquals": {"aws:PrincipalTag/team": "ml"}}),
                  tags=[{"Key": "team", "Value": "ml"}])
    assert _allowed(server, ml)
    web, _ = _user(server, _list_pipelines({"StringEquals": {"aws:PrincipalTag/team": "ml"}}),
                   tags=[{"Key": "team", "Value": "web"}])
    assert not _allowed(server, web)

    iam = client(server, "iam")
    account = server.account_id("dev")
    role = _uid("tagged-role")
    iam.create_role(RoleName=role, Tags=[{"Key": "team", "Value": "ml"}, {"Key": "stage", "Value": "dev"}],
                    AssumeRolePolicyDocument=_doc({"Effect": "Allow", "Principal": {"AWS": account},
                                                   "Action": ["sts:AssumeRole", "sts:TagSession"]}))
    iam.put_role_policy(RoleName=role, PolicyName="team", PolicyDocument=_doc(_list_pipelines(
        {"StringEquals": {"aws:PrincipalTag/team": "ml", "aws:PrincipalTag/stage": "dev"}})))
    sts = client(server, "sts")

    def session_creds(**kw: Any) -> dict[str, str]:
        c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="ck-session", **kw)["Credentials"]
        return {"aws_access_key_id": c["AccessKeyId"], "aws_secret_access_key": c["SecretAccessKey"],
                "aws_session_token": c["SessionToken"]}

    assert _allowed(server, session_creds())  # the role's tags are the session's principal tags
    assert not _allowed(server, session_creds(Tags=[{"Key": "stage", "Value": "prod"}]))  # session tag wins
    assert _allowed(server, session_creds(Tags=[{"Key": "extra", "Value": "x"}]))


def test_principal_org_id_in_a_bucket_policy(server: StratumServer) -> None:
    bucket = _uid("org-bucket")
    s3 = client(server, "s3", account="shared-services")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="model.bin", Body=b"weights")

    def share_with(org: str) -> None:
        s3.put_bucket_policy(Bucket=bucket, Policy=_doc({
            "Sid": "OrgReads", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*", "Condition": {"StringEquals": {"aws:PrincipalOrgID": org}}}))

    share_with("o-someoneelse")
    with pytest.raises(ClientError):
        client(server, "s3", account="prod").get_object(Bucket=bucket, Key="model.bin")
    share_with(_org_id(server))
    assert client(server, "s3", account="prod").get_object(Bucket=bucket, Key="model.bin")["Body"].read() == b"weights"


def test_resource_org_and_service_keys(server: StratumServer) -> None:
    creds, _ = _user(server, {"Effect": "Allow", "Action": "sagemaker:ListPipelines", "Resource": "*", "Condition": {
        "Bool": {"aws:PrincipalIsAWSService": "false", "aws:ViaAWSService": "false"},
        "StringEquals": {"aws:PrincipalOrgID": _org_id(server), "aws:PrincipalType": "User"}}})
    assert _allowed(server, creds)
    bucket = _uid("res-org")
    client(server, "s3", account="prod").create_bucket(Bucket=bucket)
    client(server, "s3", account="prod").put_bucket_policy(Bucket=bucket, Policy=_doc({
        "Effect": "Allow", "Principal": {"AWS": server.account_id("dev")}, "Action": "s3:ListBucket",
        "Resource": f"arn:aws:s3:::{bucket}"}))
    inside, _ = _user(server, {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*",
                               "Condition": {"StringEquals": {"aws:ResourceOrgID": _org_id(server)}}})
    client(server, "s3", inside).list_objects_v2(Bucket=bucket)
    outside, _ = _user(server, {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*",
                                "Condition": {"StringEquals": {"aws:ResourceOrgID": "o-elsewhere"}}})
    with pytest.raises(ClientError):
        client(server, "s3", outside).list_objects_v2(Bucket=bucket)


def test_request_tags_on_sagemaker_create_pipeline(server: StratumServer) -> None:
    role = f"arn:aws:iam::{server.account_id('dev')}:role/ck-pipeline-role"
    creds, _ = _user(server, {"Effect": "Allow", "Action": "iam:PassRole", "Resource": role},
                     {"Effect": "Allow", "Action": ["sagemaker:CreatePipeline", "sagemaker:AddTags"], "Resource": "*",
                      "Condition": {"StringEquals": {"aws:RequestTag/cost-center": "1234"}}})
    sm = client(server, "sagemaker", creds)
    definition = json.dumps({"Version": "2020-12-01", "Parameters": [],
                             "Steps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "x"}}]})
    sm.create_pipeline(PipelineName=_uid("ck"), PipelineDefinition=definition, RoleArn=role,
                       Tags=[{"Key": "cost-center", "Value": "1234"}])
    with pytest.raises(ClientError) as err:
        sm.create_pipeline(PipelineName=_uid("ck"), PipelineDefinition=definition, RoleArn=role,
                           Tags=[{"Key": "cost-center", "Value": "9999"}])
    assert "sagemaker:CreatePipeline" in err.value.response["Error"]["Message"]


def test_tagging_on_create_also_needs_add_tags(server: StratumServer) -> None:
    role = f"arn:aws:iam::{server.account_id('dev')}:role/ck-pipeline-role"
    creds, _ = _user(server, {"Effect": "Allow", "Action": "iam:PassRole", "Resource": role},
                     {"Effect": "Allow", "Action": ["sagemaker:CreatePipeline", "sagemaker:CreateModelPackageGroup"],
                      "Resource": "*"})
    sm = client(server, "sagemaker", creds)
    definition = json.dumps({"Version": "2020-12-01", "Parameters": [],
                             "Steps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "x"}}]})
    sm.create_pipeline(PipelineName=_uid("ck"), PipelineDefinition=definition, RoleArn=role)
    tagged = _uid("ck")
    with pytest.raises(ClientError) as err:
        sm.create_pipeline(PipelineName=tagged, PipelineDefinition=definition, RoleArn=role,
                           Tags=[{"Key": "team", "Value": "ml"}])
    assert "sagemaker:AddTags" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        server.client("sagemaker").describe_pipeline(PipelineName=tagged)  # nothing was half-created
    assert err.value.response["Error"]["Code"] == "ResourceNotFound"
    sm.create_model_package_group(ModelPackageGroupName=_uid("ckg"))
    with pytest.raises(ClientError) as err:
        sm.create_model_package_group(ModelPackageGroupName=_uid("ckg"), Tags=[{"Key": "team", "Value": "ml"}])
    assert "sagemaker:AddTags" in err.value.response["Error"]["Message"]
