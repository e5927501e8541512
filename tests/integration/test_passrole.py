"""iam:PassRole: handing a role to SageMaker needs the permission, with iam:PassedToService and
iam:AssociatedResourceArn as condition keys."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from authz_testing import client, limited_user
from botocore.exceptions import ClientError
from stratum_testing import REGION, StratumServer

DEFINITION = json.dumps({
    "Version": "2020-12-01", "Parameters": [],
    "Steps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "stop"}}]})
SAGEMAKER_ALL = {"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"}


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _user(server: StratumServer, statements: list[dict[str, Any]], account: str = "dev") -> tuple[Any, str]:
    """A SageMaker client of a new IAM user whose only policy holds ``statements``."""
    creds, arn = limited_user(server, *statements, account=account, prefix="passer")
    return client(server, "sagemaker", creds), arn


def _role(server: StratumServer, account: str = "dev") -> str:
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    return client(server, "iam", account=account).create_role(RoleName=_uid("exec"), AssumeRolePolicyDocument=json.dumps(
        trust))["Role"]["Arn"]


def _denied(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as err:
        call(**kwargs)
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    return str(err.value.response["Error"]["Message"])


def test_create_pipeline_needs_pass_role(server: StratumServer) -> None:
    role = _role(server)
    sm, user = _user(server, [SAGEMAKER_ALL])
    name = _uid("pr")
    message = _denied(sm.create_pipeline, PipelineName=name, PipelineDefinition=DEFINITION, RoleArn=role)
    assert message.startswith(f"User: {user} is not authorized to perform: iam:PassRole on resource: {role}")
    with pytest.raises(ClientError) as err:
        sm.describe_pipeline(PipelineName=name)
    assert err.value.response["Error"]["Code"] == "ResourceNotFound"  # nothing was created

    sm, _ = _user(server, [SAGEMAKER_ALL, {"Effect": "Allow", "Action": "iam:PassRole", "Resource": role}])
    arn = sm.create_pipeline(PipelineName=name, PipelineDefinition=DEFINITION, RoleArn=role)["PipelineArn"]
    assert sm.describe_pipeline(PipelineName=name)["RoleArn"] == role
    assert arn.endswith(f":pipeline/{name}")


def test_passed_to_service_condition(server: StratumServer) -> None:
    role = _role(server)

    def passing_to(service: str) -> Any:
        return _user(server, [SAGEMAKER_ALL, {
            "Effect": "Allow", "Action": "iam:PassRole", "Resource": role,
            "Condition": {"StringEquals": {"iam:PassedToService": service}}}])[0]

    to_ec2 = passing_to("ec2.amazonaws.com")
    _denied(to_ec2.create_pipeline, PipelineName=_uid("pr"), PipelineDefinition=DEFINITION, RoleArn=role)
    to_sagemaker = passing_to("sagemaker.amazonaws.com")
    to_sagemaker.create_pipeline(PipelineName=_uid("pr"), PipelineDefinition=DEFINITION, RoleArn=role)


def test_associated_resource_arn_condition(server: StratumServer) -> None:
    role = _role(server)
    account = server.account_id("dev")
    sm, _ = _user(server, [SAGEMAKER_ALL, {
        "Effect": "Allow", "Action": "iam:PassRole", "Resource": role,
        "Condition": {"ArnLike": {"iam:AssociatedResourceArn": f"arn:aws:sagemaker:{REGION}:{account}:pipeline/team-a-*"}}}])
    sm.create_pipeline(PipelineName=_uid("team-a"), PipelineDefinition=DEFINITION, RoleArn=role)
    _denied(sm.create_pipeline, PipelineName=_uid("team-b"), PipelineDefinition=DEFINITION, RoleArn=role)


def test_update_and_start_check_the_role_they_are_given(server: StratumServer) -> None:
    allowed, other = _role(server), _role(server)
    sm, _ = _user(server, [SAGEMAKER_ALL, {"Effect": "Allow", "Action": "iam:PassRole", "Resource": allowed}])
    name = _uid("pr")
    sm.create_pipeline(PipelineName=name, PipelineDefinition=DEFINITION, RoleArn=allowed)
    _denied(sm.update_pipeline, PipelineName=name, RoleArn=other)
    assert sm.update_pipeline(PipelineName=name, RoleArn=allowed)["PipelineArn"].endswith(name)
    message = _denied(sm.start_pipeline_execution, PipelineName=name, RoleArn=other)
    assert f"iam:PassRole on resource: {other}" in message
    # Without a RoleArn the execution uses the pipeline's role: nothing new is passed.
    assert sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]


def test_role_of_another_account_cannot_be_passed(server: StratumServer) -> None:
    foreign = _role(server, "test")
    message = _denied(client(server, "sagemaker").create_pipeline, PipelineName=_uid("pr"),
                      PipelineDefinition=DEFINITION, RoleArn=foreign)
    assert "because no resource-based policy allows the iam:PassRole action" in message


def test_explicit_deny_on_pass_role_beats_admin(server: StratumServer) -> None:
    role = _role(server)
    iam = client(server, "iam")
    name = _uid("admin-ish")
    iam.create_user(UserName=name)
    iam.attach_user_policy(UserName=name, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    iam.put_user_policy(UserName=name, PolicyName="no-pass", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "iam:PassRole", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    sm = client(server, "sagemaker", {"aws_access_key_id": key["AccessKeyId"],
                                      "aws_secret_access_key": key["SecretAccessKey"]})
    message = _denied(sm.create_pipeline, PipelineName=_uid("pr"), PipelineDefinition=DEFINITION, RoleArn=role)
    assert message.endswith("with an explicit deny in an identity-based policy")
