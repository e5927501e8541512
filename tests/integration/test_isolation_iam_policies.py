"""Managed policy versions, tags and entities: each account's own, AWS managed ones read-only."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stratum_testing import StratumServer

MANAGED = "arn:aws:iam::aws:policy/AmazonSageMakerReadOnly"


def _doc(action: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]})


def _error(call: Any, **params: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as exc:
        call(**params)
    return exc.value.response["ResponseMetadata"]["HTTPStatusCode"], exc.value.response["Error"]["Code"]


def test_versions_tags_and_entities_of_a_customer_policy(server: StratumServer) -> None:
    iam = server.client("iam", "prod")
    name = f"versions-{uuid.uuid4().hex[:8]}"
    arn = iam.create_policy(PolicyName=name, PolicyDocument=_doc("s3:ListAllMyBuckets"),
                            Tags=[{"Key": "team", "Value": "ml"}])["Policy"]["Arn"]
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=_doc("s3:GetObject"))
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v2")
    assert iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"] == "v2"
    assert _error(iam.delete_policy_version, PolicyArn=arn, VersionId="v2") == (409, "DeleteConflict")
    assert _error(iam.set_default_policy_version, PolicyArn=arn, VersionId="v7") == (404, "NoSuchEntity")
    iam.delete_policy_version(PolicyArn=arn, VersionId="v1")
    assert [v["VersionId"] for v in iam.list_policy_versions(PolicyArn=arn)["Versions"]] == ["v2"]

    iam.tag_policy(PolicyArn=arn, Tags=[{"Key": "stage", "Value": "dev"}, {"Key": "team", "Value": "platform"}])
    iam.untag_policy(PolicyArn=arn, TagKeys=["stage"])
    assert iam.list_policy_tags(PolicyArn=arn)["Tags"] == [{"Key": "team", "Value": "platform"}]

    user, role = f"ent-{uuid.uuid4().hex[:8]}", f"ent-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    iam.attach_user_policy(UserName=user, PolicyArn=arn)
    iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    entities = iam.list_entities_for_policy(PolicyArn=arn)
    assert [u["UserName"] for u in entities["PolicyUsers"]] == [user]
    assert [r["RoleName"] for r in entities["PolicyRoles"]] == [role]
    assert [u["UserName"] for u in iam.list_entities_for_policy(PolicyArn=arn, EntityFilter="User")["PolicyUsers"]
            ] == [user]
    assert iam.list_entities_for_policy(PolicyArn=arn, EntityFilter="User")["PolicyRoles"] == []

    # Another account finds none of it.
    other = server.client("iam", "shared-services")
    for call, params in ((other.set_default_policy_version, {"PolicyArn": arn, "VersionId": "v2"}),
                         (other.delete_policy_version, {"PolicyArn": arn, "VersionId": "v2"}),
                         (other.tag_policy, {"PolicyArn": arn, "Tags": [{"Key": "owner", "Value": "me"}]}),
                         (other.untag_policy, {"PolicyArn": arn, "TagKeys": ["team"]}),
                         (other.list_policy_tags, {"PolicyArn": arn}),
                         (other.list_entities_for_policy, {"PolicyArn": arn})):
        assert _error(call, **params) == (404, "NoSuchEntity"), call
    assert iam.list_policy_tags(PolicyArn=arn)["Tags"] == [{"Key": "team", "Value": "platform"}]

    # Deleted once nothing uses it and only its default version is left, as IAM requires.
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=_doc("s3:PutObject"))
    assert _error(iam.delete_policy, PolicyArn=arn) == (409, "DeleteConflict")  # attached
    iam.detach_user_policy(UserName=user, PolicyArn=arn)
    iam.detach_role_policy(RoleName=role, PolicyArn=arn)
    with pytest.raises(ClientError) as exc:
        iam.delete_policy(PolicyArn=arn)
    assert "more than one version" in exc.value.response["Error"]["Message"]
    iam.delete_policy_version(PolicyArn=arn, VersionId="v3")
    iam.delete_policy(PolicyArn=arn)
    assert _error(iam.get_policy, PolicyArn=arn) == (404, "NoSuchEntity")


def test_aws_managed_policies_are_read_only_and_their_entities_each_accounts_own(server: StratumServer) -> None:
    iam, other = server.client("iam", "prod"), server.client("iam", "shared-services")
    user = f"managed-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.attach_user_policy(UserName=user, PolicyArn=MANAGED)
    assert user in [u["UserName"] for u in iam.list_entities_for_policy(PolicyArn=MANAGED)["PolicyUsers"]]
    assert user not in [u["UserName"] for u in other.list_entities_for_policy(PolicyArn=MANAGED)["PolicyUsers"]]
    for client in (iam, other):
        for call, params in ((client.set_default_policy_version, {"PolicyArn": MANAGED, "VersionId": "v1"}),
                             (client.delete_policy_version, {"PolicyArn": MANAGED, "VersionId": "v1"}),
                             (client.tag_policy, {"PolicyArn": MANAGED, "Tags": [{"Key": "k", "Value": "v"}]}),
                             (client.untag_policy, {"PolicyArn": MANAGED, "TagKeys": ["k"]})):
            assert _error(call, **params) == (403, "AccessDenied"), call
        assert client.list_policy_tags(PolicyArn=MANAGED)["Tags"] == []
