"""IAM administration, identity-policy authorization on every service, and STS AssumeRole."""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


_USER_KEYS: dict[tuple[str, str], dict[str, str]] = {}


def _user_client(server, account: str, service: str, user: str):  # type: ignore[no-untyped-def]
    """A client signed with the user's own key (one key per user, created on first use)."""
    cache_key = (server.endpoint_url, user)
    if cache_key not in _USER_KEYS:
        _USER_KEYS[cache_key] = server.client("iam", account).create_access_key(UserName=user)["AccessKey"]
    key = _USER_KEYS[cache_key]
    return server.client(service, account, aws_access_key_id=key["AccessKeyId"],
                         aws_secret_access_key=key["SecretAccessKey"])


def trust(principal: object, **condition: object) -> str:
    stmt: dict[str, object] = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    if condition:
        stmt["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [stmt]})


def test_get_caller_identity_is_the_admin(server) -> None:
    ident = server.client("sts", "dev").get_caller_identity()
    assert ident["Account"] == server.account_id("dev")
    assert ident["Arn"] == f"arn:aws:iam::{server.account_id('dev')}:user/admin"
    assert ident["UserId"].startswith("AIDA")


def test_user_without_policy_is_denied_naming_the_action(server) -> None:
    iam = server.client("iam", "dev")
    user = _uid("nopol")
    arn = iam.create_user(UserName=user)["User"]["Arn"]
    sm = _user_client(server, "dev", "sagemaker", user)
    with pytest.raises(ClientError) as err:
        sm.list_pipelines()
    e = err.value.response["Error"]
    assert e["Code"] == "AccessDeniedException"
    assert e["Message"].startswith(f"User: {arn} is not authorized to perform: sagemaker:ListPipelines")
    assert "because no identity-based policy allows the sagemaker:ListPipelines action" in e["Message"]
    iam_c = _user_client(server, "dev", "iam", user)
    with pytest.raises(ClientError) as err:
        iam_c.list_roles()
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    assert "iam:ListRoles" in err.value.response["Error"]["Message"]
    # GetCallerIdentity needs no permission at all
    assert _user_client(server, "dev", "sts", user).get_caller_identity()["Arn"] == arn


def test_inline_policy_allows_and_explicit_deny_wins(server) -> None:
    iam = server.client("iam", "dev")
    user = _uid("inline")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="sm-read", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sagemaker:List*", "Resource": "*"}]}))
    sm = _user_client(server, "dev", "sagemaker", user)
    assert "PipelineSummaries" in sm.list_pipelines()
    assert iam.get_user_policy(UserName=user, PolicyName="sm-read")["PolicyDocument"]["Statement"][0]["Action"] \
        == "sagemaker:List*"
    iam.put_user_policy(UserName=user, PolicyName="deny", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Deny", "NotAction": "iam:*", "Resource": "*"}]}))
    import time
    time.sleep(0.1)
    with pytest.raises(ClientError) as err:
        sm.list_pipelines()
    assert "with an explicit deny in an identity-based policy" in err.value.response["Error"]["Message"] or \
        "explicit deny" in err.value.response["Error"]["Message"]
    assert sorted(iam.list_user_policies(UserName=user)["PolicyNames"]) == ["deny", "sm-read"]


def test_managed_policies_attach_and_conditions(server) -> None:
    iam = server.client("iam", "dev")
    user = _uid("managed")
    iam.create_user(UserName=user)
    pol = iam.create_policy(PolicyName=_uid("p"), PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sagemaker:ListPipelines",
                                                 "Resource": "*",
                                                 "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}}]}))
    arn = pol["Policy"]["Arn"]
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    assert iam.list_attached_user_policies(UserName=user)["AttachedPolicies"][0]["PolicyArn"] == arn
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    sm = _user_client(server, "dev", "sagemaker", user)
    sm.list_pipelines()
    # A new default version that requires another source network takes effect.
    iam.create_policy_version(PolicyArn=arn, SetAsDefault=True, PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sagemaker:ListPipelines",
                                                 "Resource": "*",
                                                 "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}))
    with pytest.raises(ClientError):
        sm.list_pipelines()
    with pytest.raises(ClientError) as err:
        iam.delete_policy(PolicyArn=arn)
    assert err.value.response["Error"]["Code"] == "DeleteConflict"
    iam.detach_user_policy(UserName=user, PolicyArn=arn)
    assert iam.list_attached_user_policies(UserName=user)["AttachedPolicies"] == []


def test_malformed_policy_documents_are_rejected(server) -> None:
    iam = server.client("iam", "dev")
    user = _uid("mal")
    iam.create_user(UserName=user)
    for doc in ("not json", json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Maybe",
                                                                               "Action": "*", "Resource": "*"}]}),
                json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                                                                   "Action": "*", "Resource": "*"}]})):
        with pytest.raises(ClientError) as err:
            iam.put_user_policy(UserName=user, PolicyName="bad", PolicyDocument=doc)
        assert err.value.response["Error"]["Code"] == "MalformedPolicyDocument"
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == []


def test_iam_errors(server) -> None:
    iam = server.client("iam", "dev")
    with pytest.raises(ClientError) as err:
        iam.get_user(UserName="does-not-exist")
    assert err.value.response["Error"]["Code"] == "NoSuchEntity"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    name = _uid("dup")
    iam.create_user(UserName=name)
    with pytest.raises(ClientError) as err:
        iam.create_user(UserName=name)
    assert err.value.response["Error"]["Code"] == "EntityAlreadyExists"
    with pytest.raises(ClientError) as err:
        iam.create_user(UserName="bad name!")
    assert err.value.response["Error"]["Code"] == "ValidationError"


def test_assume_role_across_accounts(server) -> None:
    dev, test = server.account_id("dev"), server.account_id("test")
    iam_test = server.client("iam", "test")
    role = _uid("deployer")
    iam_test.create_role(RoleName=role, AssumeRolePolicyDocument=trust(f"arn:aws:iam::{dev}:root"),
                         MaxSessionDuration=7200)
    iam_test.attach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")
    resp = server.client("sts", "dev").assume_role(RoleArn=f"arn:aws:iam::{test}:role/{role}",
                                                   RoleSessionName="ci", DurationSeconds=3600)
    assert resp["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{test}:assumed-role/{role}/ci"
    c = resp["Credentials"]
    assert c["AccessKeyId"].startswith("ASIA")
    creds = {"aws_access_key_id": c["AccessKeyId"], "aws_secret_access_key": c["SecretAccessKey"],
             "aws_session_token": c["SessionToken"]}
    ident = server.client("sts", "dev", **creds).get_caller_identity()
    assert ident["Account"] == test
    assert ident["Arn"] == f"arn:aws:sts::{test}:assumed-role/{role}/ci"
    # The session acts in the target account with the role's permissions.
    assert "PipelineSummaries" in server.client("sagemaker", "dev", **creds).list_pipelines()
    with pytest.raises(ClientError) as err:
        server.client("iam", "dev", **creds).list_users()
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    # An account the trust policy does not name is refused.
    with pytest.raises(ClientError) as err:
        server.client("sts", "prod").assume_role(RoleArn=f"arn:aws:iam::{test}:role/{role}", RoleSessionName="xx")
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    assert "sts:AssumeRole" in err.value.response["Error"]["Message"]


def test_assume_role_cross_account_needs_caller_identity_policy(server) -> None:
    dev, test = server.account_id("dev"), server.account_id("test")
    role = _uid("r")
    server.client("iam", "test").create_role(RoleName=role, AssumeRolePolicyDocument=trust(dev))
    iam_dev = server.client("iam", "dev")
    user = _uid("noperm")
    iam_dev.create_user(UserName=user)
    sts = _user_client(server, "dev", "sts", user)
    with pytest.raises(ClientError) as err:
        sts.assume_role(RoleArn=f"arn:aws:iam::{test}:role/{role}", RoleSessionName="sess")
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    iam_dev.put_user_policy(UserName=user, PolicyName="assume", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                 "Resource": f"arn:aws:iam::{test}:role/{role}"}]}))
    import time
    time.sleep(0.1)
    assert sts.assume_role(RoleArn=f"arn:aws:iam::{test}:role/{role}", RoleSessionName="sess")["AssumedRoleUser"]


def test_assume_role_external_id_duration_and_session_policy(server) -> None:
    dev = server.account_id("dev")
    iam = server.client("iam", "dev")
    role = _uid("ext")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust(
        f"arn:aws:iam::{dev}:root", StringEquals={"sts:ExternalId": "secret-123"}))
    iam.attach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")
    sts = server.client("sts", "dev")
    arn = f"arn:aws:iam::{dev}:role/{role}"
    with pytest.raises(ClientError):
        sts.assume_role(RoleArn=arn, RoleSessionName="sess")
    with pytest.raises(ClientError):
        sts.assume_role(RoleArn=arn, RoleSessionName="sess", ExternalId="wrong")
    with pytest.raises(ClientError) as err:
        sts.assume_role(RoleArn=arn, RoleSessionName="sess", ExternalId="secret-123", DurationSeconds=7200)
    assert err.value.response["Error"]["Code"] == "ValidationError"
    assert "MaxSessionDuration" in err.value.response["Error"]["Message"]
    session_policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sagemaker:DescribePipeline", "Resource": "*"}]})
    c = sts.assume_role(RoleArn=arn, RoleSessionName="sess", ExternalId="secret-123", Policy=session_policy)["Credentials"]
    sm = server.client("sagemaker", "dev", aws_access_key_id=c["AccessKeyId"],
                       aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
    with pytest.raises(ClientError) as err:
        sm.list_pipelines()  # the role allows it, the session policy does not
    assert "session policy" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        sts.assume_role(RoleArn=arn, RoleSessionName="sess", ExternalId="secret-123", Policy="{bad")
    assert err.value.response["Error"]["Code"] == "MalformedPolicyDocument"


def test_assume_unknown_role_is_access_denied(server) -> None:
    with pytest.raises(ClientError) as err:
        server.client("sts", "dev").assume_role(
            RoleArn=f"arn:aws:iam::{server.account_id('test')}:role/nope", RoleSessionName="sess")
    assert err.value.response["Error"]["Code"] == "AccessDenied"


def test_permissions_boundary_limits_user(server) -> None:
    iam = server.client("iam", "dev")
    user = _uid("bounded")
    iam.create_user(UserName=user)
    iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    iam.put_user_permissions_boundary(UserName=user,
                                      PermissionsBoundary="arn:aws:iam::aws:policy/AmazonSageMakerReadOnly")
    assert iam.get_user(UserName=user)["User"]["PermissionsBoundary"]["PermissionsBoundaryArn"].endswith(
        "AmazonSageMakerReadOnly")
    sm = _user_client(server, "dev", "sagemaker", user)
    sm.list_pipelines()
    with pytest.raises(ClientError) as err:
        _user_client(server, "dev", "iam", user).list_users()
    assert "permissions boundary" in err.value.response["Error"]["Message"]


def test_access_key_lifecycle(server) -> None:
    iam = server.client("iam", "dev")
    user = _uid("keys")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="sts", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sagemaker:ListPipelines",
                                                 "Resource": "*"}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    assert [k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]] == [key["AccessKeyId"]]
    sm = server.client("sagemaker", "dev", aws_access_key_id=key["AccessKeyId"],
                       aws_secret_access_key=key["SecretAccessKey"])
    sm.list_pipelines()
    iam.update_access_key(UserName=user, AccessKeyId=key["AccessKeyId"], Status="Inactive")
    with pytest.raises(ClientError) as err:
        sm.list_pipelines()
    assert err.value.response["Error"]["Code"] == "UnrecognizedClientException"
    iam.delete_access_key(UserName=user, AccessKeyId=key["AccessKeyId"])
    assert iam.list_access_keys(UserName=user)["AccessKeyMetadata"] == []


def test_delete_user_and_role_need_their_dependents_gone(server) -> None:
    iam = server.client("iam", "dev")
    user, role = _uid("gone"), _uid("gone-role")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}))
    with pytest.raises(ClientError) as err:
        iam.delete_user(UserName=user)
    assert err.value.response["Error"]["Code"] == "DeleteConflict"
    assert "access keys" in err.value.response["Error"]["Message"]
    iam.delete_access_key(UserName=user, AccessKeyId=key)
    with pytest.raises(ClientError) as err:
        iam.delete_user(UserName=user)
    assert "policies" in err.value.response["Error"]["Message"]
    iam.delete_user_policy(UserName=user, PolicyName="p")
    iam.delete_user(UserName=user)
    with pytest.raises(ClientError) as err:
        iam.get_user(UserName=user)
    assert err.value.response["Error"]["Code"] == "NoSuchEntity"

    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust(server.account_id("dev")))
    iam.attach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    with pytest.raises(ClientError) as err:
        iam.delete_role(RoleName=role)
    assert err.value.response["Error"]["Code"] == "DeleteConflict"
    iam.detach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/ReadOnlyAccess")
    iam.delete_role(RoleName=role)
    with pytest.raises(ClientError) as err:
        iam.get_role(RoleName=role)
    assert err.value.response["Error"]["Code"] == "NoSuchEntity"
