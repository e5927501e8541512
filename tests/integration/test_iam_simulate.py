"""IAM SimulateCustomPolicy / SimulatePrincipalPolicy through boto3 and the AWS CLI, answered by the
same evaluator that authorizes real requests."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from authz_testing import client, limited_user
from botocore.exceptions import ClientError
from stratum_testing import StratumServer

# The AWS CLI documentation's own example, with the positions AWS reports for it.
DATED = ('{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"dynamodb:*","Resource":"*",'
         '"Condition":{"DateGreaterThan":{"aws:CurrentTime":"2018-08-16T12:00:00Z"}}}}')


def _time(value: str) -> list[dict[str, Any]]:
    return [{"ContextKeyName": "aws:CurrentTime", "ContextKeyValues": [value], "ContextKeyType": "date"}]


def _doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, indent=2)


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_allowed_with_statement_position(server: StratumServer) -> None:
    result = client(server, "iam").simulate_custom_policy(
        PolicyInputList=[DATED], ActionNames=["dynamodb:CreateBackup"],
        ContextEntries=_time("2019-04-25T11:00:00Z"))["EvaluationResults"]
    assert result == [{
        "EvalActionName": "dynamodb:CreateBackup", "EvalResourceName": "*", "EvalDecision": "allowed",
        "MatchedStatements": [{"SourcePolicyId": "PolicyInputList.1", "SourcePolicyType": "none",
                               "StartPosition": {"Line": 1, "Column": 38}, "EndPosition": {"Line": 1, "Column": 167}}],
        "MissingContextValues": []}]


def test_implicit_deny_and_missing_context(server: StratumServer) -> None:
    iam = client(server, "iam")
    before = iam.simulate_custom_policy(PolicyInputList=[DATED], ActionNames=["dynamodb:CreateBackup"],
                                        ContextEntries=_time("2014-04-25T11:00:00Z"))["EvaluationResults"][0]
    assert before["EvalDecision"] == "implicitDeny"
    assert before["MatchedStatements"] == [] and before["MissingContextValues"] == []
    unknown = iam.simulate_custom_policy(PolicyInputList=[DATED], ActionNames=["dynamodb:CreateBackup"])
    assert unknown["EvaluationResults"][0]["EvalDecision"] == "implicitDeny"
    assert unknown["EvaluationResults"][0]["MissingContextValues"] == ["aws:CurrentTime"]
    other_service = iam.simulate_custom_policy(PolicyInputList=[DATED], ActionNames=["s3:GetObject"])
    assert other_service["EvaluationResults"][0]["MissingContextValues"] == []


def test_explicit_deny_names_the_denying_statement(server: StratumServer) -> None:
    allow = _doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    deny = _doc({"Sid": "NoDeletes", "Effect": "Deny", "Action": "s3:Delete*", "Resource": "*"})
    results = client(server, "iam").simulate_custom_policy(
        PolicyInputList=[allow, deny], ActionNames=["s3:GetObject", "s3:DeleteObject"])["EvaluationResults"]
    get, delete = results
    assert get["EvalDecision"] == "allowed"
    assert [m["SourcePolicyId"] for m in get["MatchedStatements"]] == ["PolicyInputList.1"]
    assert delete["EvalDecision"] == "explicitDeny"
    assert delete["MatchedStatements"] == [{"SourcePolicyId": "PolicyInputList.2", "SourcePolicyType": "none",
                                            "StartPosition": {"Line": 4, "Column": 6},
                                            "EndPosition": {"Line": 9, "Column": 6}}]


def test_context_entry_types(server: StratumServer) -> None:
    policy = _doc({"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "*", "Condition": {
        "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}, "NumericLessThan": {"ec2:VolumeSize": "100"},
        "Bool": {"aws:MultiFactorAuthPresent": "true"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["team", "cost-center"]}}})

    def decide(ip: str, size: str, mfa: str, keys: list[str]) -> str:
        entries = [
            {"ContextKeyName": "aws:SourceIp", "ContextKeyValues": [ip], "ContextKeyType": "ip"},
            {"ContextKeyName": "ec2:VolumeSize", "ContextKeyValues": [size], "ContextKeyType": "numeric"},
            {"ContextKeyName": "aws:MultiFactorAuthPresent", "ContextKeyValues": [mfa], "ContextKeyType": "boolean"},
            {"ContextKeyName": "aws:TagKeys", "ContextKeyValues": keys, "ContextKeyType": "stringList"}]
        return str(client(server, "iam").simulate_custom_policy(
            PolicyInputList=[policy], ActionNames=["ec2:RunInstances"],
            ContextEntries=entries)["EvaluationResults"][0]["EvalDecision"])

    assert decide("10.1.2.3", "50", "true", ["team"]) == "allowed"
    assert decide("192.168.0.1", "50", "true", ["team"]) == "implicitDeny"
    assert decide("10.1.2.3", "500", "true", ["team"]) == "implicitDeny"
    assert decide("10.1.2.3", "50", "false", ["team"]) == "implicitDeny"
    assert decide("10.1.2.3", "50", "true", ["team", "owner"]) == "implicitDeny"
    with pytest.raises(ClientError) as err:
        decide("10.1.2.3", "lots", "true", ["team"])
    assert err.value.response["Error"]["Code"] == "InvalidInput"


def test_resource_arns_and_pagination(server: StratumServer) -> None:
    policy = _doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/${aws:username}/*"})
    iam = client(server, "iam")
    resources = ["arn:aws:s3:::reports/alice/q1.csv", "arn:aws:s3:::reports/bob/q1.csv"]
    page = iam.simulate_custom_policy(
        PolicyInputList=[policy], ActionNames=["s3:GetObject", "s3:PutObject"], ResourceArns=resources, MaxItems=3,
        ContextEntries=[{"ContextKeyName": "aws:username", "ContextKeyValues": ["alice"], "ContextKeyType": "string"}])
    assert page["IsTruncated"] is True
    rest = iam.simulate_custom_policy(
        PolicyInputList=[policy], ActionNames=["s3:GetObject", "s3:PutObject"], ResourceArns=resources,
        Marker=page["Marker"],
        ContextEntries=[{"ContextKeyName": "aws:username", "ContextKeyValues": ["alice"], "ContextKeyType": "string"}])
    assert rest["IsTruncated"] is False
    results = page["EvaluationResults"] + rest["EvaluationResults"]
    decided = [(r["EvalActionName"], r["EvalResourceName"], r["EvalDecision"]) for r in results]
    assert decided == [("s3:GetObject", resources[0], "allowed"), ("s3:GetObject", resources[1], "implicitDeny"),
                       ("s3:PutObject", resources[0], "implicitDeny"), ("s3:PutObject", resources[1], "implicitDeny")]
    specific = results[0]["ResourceSpecificResults"]
    assert specific[0]["EvalResourceName"] == resources[0] and specific[0]["EvalResourceDecision"] == "allowed"
    # Without the variable's value the statement cannot match, and the key is reported per resource.
    missing = iam.simulate_custom_policy(PolicyInputList=[policy], ActionNames=["s3:GetObject"],
                                         ResourceArns=resources[:1])["EvaluationResults"][0]
    assert missing["MissingContextValues"] == []
    assert missing["ResourceSpecificResults"][0]["MissingContextValues"] == ["aws:username"]


def test_resource_policy_across_accounts(server: StratumServer) -> None:
    dev, prod = server.account_id("dev"), server.account_id("prod")
    caller = f"arn:aws:iam::{prod}:user/reader"
    identity = _doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    bucket_policy = _doc({"Sid": "ProdReads", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{prod}:root"},
                          "Action": "s3:GetObject", "Resource": "arn:aws:s3:::shared/*"})
    iam = client(server, "iam")

    def decide(policy: str) -> dict[str, Any]:
        return dict(iam.simulate_custom_policy(
            PolicyInputList=[identity], ActionNames=["s3:GetObject"], ResourceArns=["arn:aws:s3:::shared/model.bin"],
            ResourcePolicy=policy, CallerArn=caller, ResourceOwner=f"arn:aws:iam::{dev}:root")["EvaluationResults"][0])

    allowed = decide(bucket_policy)
    assert allowed["EvalDecision"] == "allowed"
    assert {(m["SourcePolicyId"], m["SourcePolicyType"]) for m in allowed["MatchedStatements"]} == {
        ("PolicyInputList.1", "none"), ("ResourcePolicy", "resource")}
    other = _doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{dev}:root"}, "Action": "s3:GetObject",
                  "Resource": "arn:aws:s3:::shared/*"})
    assert decide(other)["EvalDecision"] == "implicitDeny"
    with pytest.raises(ClientError) as err:
        iam.simulate_custom_policy(PolicyInputList=[identity], ActionNames=["s3:GetObject"], ResourcePolicy=bucket_policy)
    assert err.value.response["Error"]["Code"] == "InvalidInput"


def test_boundary_and_scps_report_their_own_decision(server: StratumServer) -> None:
    identity = _doc({"Effect": "Allow", "Action": ["s3:*", "sagemaker:*"], "Resource": "*"})
    boundary = _doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    root_scp = _doc({"Effect": "Allow", "Action": "*", "Resource": "*"})
    account_scp = _doc({"Effect": "Allow", "Action": "sagemaker:List*", "Resource": "*"})
    s3_only = _doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})
    results = client(server, "iam").simulate_custom_policy(
        PolicyInputList=[identity], PermissionsBoundaryPolicyInputList=[boundary],
        OrderedOrganizationPolicyInputList=[{"ServiceControlPolicyInputList": [root_scp]},
                                            {"ServiceControlPolicyInputList": [account_scp, s3_only]}],
        ActionNames=["s3:GetObject", "sagemaker:ListPipelines", "sagemaker:CreatePipeline"])["EvaluationResults"]
    s3, list_pipelines, create = results
    assert s3["EvalDecision"] == "allowed"
    assert s3["PermissionsBoundaryDecisionDetail"] == {"AllowedByPermissionsBoundary": True}
    assert s3["OrganizationsDecisionDetail"] == {"AllowedByOrganizations": True}
    assert list_pipelines["EvalDecision"] == "implicitDeny"
    assert list_pipelines["PermissionsBoundaryDecisionDetail"] == {"AllowedByPermissionsBoundary": False}
    assert list_pipelines["OrganizationsDecisionDetail"] == {"AllowedByOrganizations": True}
    assert create["OrganizationsDecisionDetail"] == {"AllowedByOrganizations": False}


def test_principal_policy_uses_stored_policies(server: StratumServer) -> None:
    iam = client(server, "iam")
    user = _uid("sim")
    user_arn = iam.create_user(UserName=user)["User"]["Arn"]
    iam.put_user_policy(UserName=user, PolicyName="pipelines", PolicyDocument=_doc(
        {"Effect": "Allow", "Action": "sagemaker:*Pipeline*", "Resource": "*"}))
    managed = iam.create_policy(PolicyName=_uid("no-delete"), PolicyDocument=_doc(
        {"Effect": "Deny", "Action": "sagemaker:DeletePipeline", "Resource": "*"}))["Policy"]
    iam.attach_user_policy(UserName=user, PolicyArn=managed["Arn"])
    iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")

    results = iam.simulate_principal_policy(
        PolicySourceArn=user_arn,
        ActionNames=["sagemaker:CreatePipeline", "sagemaker:DeletePipeline", "s3:GetObject", "s3:PutObject"],
    )["EvaluationResults"]
    decisions = {r["EvalActionName"]: r for r in results}
    assert decisions["sagemaker:CreatePipeline"]["EvalDecision"] == "allowed"
    matched = decisions["sagemaker:CreatePipeline"]["MatchedStatements"][0]
    assert (matched["SourcePolicyId"], matched["SourcePolicyType"]) == ("pipelines", "user")
    assert matched["StartPosition"] == {"Line": 4, "Column": 6}
    deny = decisions["sagemaker:DeletePipeline"]
    assert deny["EvalDecision"] == "explicitDeny"
    assert [(m["SourcePolicyId"], m["SourcePolicyType"]) for m in deny["MatchedStatements"]] == [
        (managed["PolicyName"], "user-managed")]
    s3 = decisions["s3:GetObject"]["MatchedStatements"][0]
    assert (s3["SourcePolicyId"], s3["SourcePolicyType"]) == ("AmazonS3ReadOnlyAccess", "aws-managed")
    assert decisions["s3:PutObject"]["EvalDecision"] == "implicitDeny"

    # What-if: an extra input policy, and the deny excluded.
    what_if = iam.simulate_principal_policy(
        PolicySourceArn=user_arn, ActionNames=["sagemaker:DeletePipeline", "s3:PutObject"],
        PolicyInputList=[_doc({"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"})],
        PolicyExclusionList=[{"PolicyArn": managed["Arn"]}])["EvaluationResults"]
    assert [r["EvalDecision"] for r in what_if] == ["allowed", "allowed"]
    without_inline = iam.simulate_principal_policy(
        PolicySourceArn=user_arn, ActionNames=["sagemaker:CreatePipeline"],
        PolicyExclusionList=[{"InlinePolicyIdentifier": {"PolicyName": "pipelines", "AttachmentType": "user",
                                                         "AttachmentName": user}}])["EvaluationResults"]
    assert without_inline[0]["EvalDecision"] == "implicitDeny"


def test_principal_policy_of_a_role_with_boundary(server: StratumServer) -> None:
    iam = client(server, "iam")
    boundary = iam.create_policy(PolicyName=_uid("boundary"), PolicyDocument=_doc(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}))["Policy"]["Arn"]
    role = _uid("sim-role")
    trust = _doc({"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"})
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust, PermissionsBoundary=boundary)["Role"]["Arn"]
    iam.attach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    results = iam.simulate_principal_policy(PolicySourceArn=arn, ActionNames=["s3:ListBucket", "iam:CreateUser"])
    s3, create_user = results["EvaluationResults"]
    assert s3["EvalDecision"] == "allowed"
    assert {m["SourcePolicyType"] for m in s3["MatchedStatements"]} == {"aws-managed", "user-managed"}
    assert create_user["EvalDecision"] == "implicitDeny"
    assert create_user["PermissionsBoundaryDecisionDetail"] == {"AllowedByPermissionsBoundary": False}


def test_simulation_is_authorized_and_validated(server: StratumServer) -> None:
    iam = client(server, "iam")
    name = _uid("nosim")
    user_arn = iam.create_user(UserName=name)["User"]["Arn"]
    iam.put_user_policy(UserName=name, PolicyName="custom-only", PolicyDocument=_doc(
        {"Effect": "Allow", "Action": "iam:SimulateCustomPolicy", "Resource": "*"}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    limited = client(server, "iam", {"aws_access_key_id": key["AccessKeyId"],
                                    "aws_secret_access_key": key["SecretAccessKey"]})
    assert limited.simulate_custom_policy(PolicyInputList=[DATED], ActionNames=["dynamodb:Scan"])["EvaluationResults"]
    with pytest.raises(ClientError) as err:
        limited.simulate_principal_policy(PolicySourceArn=user_arn, ActionNames=["s3:GetObject"])
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    assert f"iam:SimulatePrincipalPolicy on resource: {user_arn}" in err.value.response["Error"]["Message"]

    with pytest.raises(ClientError) as err:
        iam.simulate_custom_policy(PolicyInputList=['{"Statement": [{"Effect": "Allow"}]}'], ActionNames=["s3:*"])
    assert err.value.response["Error"]["Code"] == "InvalidInput"
    assert "PolicyInputList.1" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        iam.simulate_principal_policy(PolicySourceArn=f"arn:aws:iam::{server.account_id('dev')}:user/ghost",
                                      ActionNames=["s3:GetObject"])
    assert err.value.response["Error"]["Code"] == "NoSuchEntity"


def test_aws_cli_simulate_custom_policy(server: StratumServer) -> None:
    out = server.aws_cli("iam", "simulate-custom-policy", "--policy-input-list", DATED,
                         "--action-names", "dynamodb:CreateBackup", "--context-entries",
                         "ContextKeyName='aws:CurrentTime',ContextKeyValues='2019-04-25T11:00:00Z',ContextKeyType=date",
                         "--output", "json")
    result = json.loads(out.stdout)["EvaluationResults"][0]
    assert result["EvalDecision"] == "allowed"
    assert result["MatchedStatements"][0]["StartPosition"] == {"Line": 1, "Column": 38}


def test_simulation_answers_what_the_server_decides(server: StratumServer) -> None:
    """Each simulated decision is checked against the real request the server answers."""
    admin_iam = client(server, "iam")
    account = server.account_id("dev")
    creds, user_arn = limited_user(
        server, {"Effect": "Allow", "Action": ["kms:*", "sts:AssumeRole"], "Resource": "*"},
        {"Effect": "Deny", "Action": "sts:*", "NotResource": "arn:aws:iam::*:role/*"})

    def simulated(action: str, resource: str | None = None) -> str:
        kwargs: dict[str, Any] = {"ResourceArns": [resource]} if resource else {}
        result = admin_iam.simulate_principal_policy(PolicySourceArn=user_arn, ActionNames=[action], **kwargs)
        return str(result["EvaluationResults"][0]["EvalDecision"])

    # sts:GetCallerIdentity: answered whatever the policies say (here an explicit deny of sts:*).
    assert client(server, "sts", creds).get_caller_identity()["Arn"] == user_arn
    assert simulated("sts:GetCallerIdentity") == "allowed"

    # KMS: the key policy must allow. The default one delegates to the account's IAM policies ...
    kms_admin, kms_user = client(server, "kms"), client(server, "kms", creds)
    open_key = kms_admin.create_key()["KeyMetadata"]["Arn"]
    assert kms_user.encrypt(KeyId=open_key, Plaintext=b"x")["KeyId"] == open_key
    assert simulated("kms:Encrypt", open_key) == "allowed"
    # ... one that names only the administrator does not, whatever the user's own policy says.
    admin_arn = f"arn:aws:iam::{account}:user/admin"
    closed_key = kms_admin.create_key(Policy=_doc(
        {"Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "kms:*", "Resource": "*"}),
        BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]["Arn"]
    with pytest.raises(ClientError) as denied:
        kms_user.encrypt(KeyId=closed_key, Plaintext=b"x")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert simulated("kms:Encrypt", closed_key) == "implicitDeny"
    # The key policy given as ResourcePolicy is used instead of the stored one.
    given = admin_iam.simulate_principal_policy(
        PolicySourceArn=user_arn, ActionNames=["kms:Encrypt"], ResourceArns=[closed_key],
        ResourcePolicy=_doc({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                             "Action": "kms:*", "Resource": "*"}))["EvaluationResults"][0]
    assert given["EvalDecision"] == "allowed"

    # Assuming a role: its trust policy must allow the caller, not only the caller's policy.
    trusted = _uid("trusts-account")
    trusted_arn = admin_iam.create_role(RoleName=trusted, AssumeRolePolicyDocument=_doc(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}))[
        "Role"]["Arn"]
    service_only = _uid("trusts-sagemaker")
    service_arn = admin_iam.create_role(RoleName=service_only, AssumeRolePolicyDocument=_doc(
        {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}))[
        "Role"]["Arn"]
    sts_user = client(server, "sts", creds)
    assert sts_user.assume_role(RoleArn=trusted_arn, RoleSessionName="sim")["AssumedRoleUser"]["Arn"]
    assert simulated("sts:AssumeRole", trusted_arn) == "allowed"
    with pytest.raises(ClientError) as refused:
        sts_user.assume_role(RoleArn=service_arn, RoleSessionName="sim")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert simulated("sts:AssumeRole", service_arn) == "implicitDeny"
