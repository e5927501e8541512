"""RAM's managed permission catalog, the resource policy a share amounts to, and how the policy
evaluator reads it (the consumer's identity AND the share must allow)."""

from __future__ import annotations

import json

import pytest

from stratum.policy import AuthzRequest, Caller, PolicySet, evaluate, parse_policy
from stratum.protocol.errors import ServiceError
from stratum.services.ram import paging
from stratum.services.ram.access import Grant, policy_for
from stratum.services.ram.permissions import (
    PERMISSIONS,
    default_permission,
    find_resource_type,
    resource_type_of,
)

OWNER = "111111111111"
CONSUMER = "222222222222"
PIPELINE = f"arn:aws:sagemaker:us-east-1:{OWNER}:pipeline/train"
READ = "arn:aws:ram::aws:permission/AWSRAMDefaultPermissionSageMakerPipeline"
EXECUTE = "arn:aws:ram::aws:permission/AWSRAMPermissionSageMakerPipelineAllowExecution"
ADMIN = parse_policy(json.dumps({"Version": "2012-10-17",
                                 "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
CALLER = Caller(arn=f"arn:aws:iam::{CONSUMER}:user/admin", account=CONSUMER, kind="user")


def _decide(permission: str, action: str, resource: str, identity: tuple = (ADMIN,)) -> bool:
    grant = Grant("arn:aws:ram:us-east-1:111111111111:resource-share/0f0e0d0c-0b0a-0908-0706-050403020100",
                  OWNER, PIPELINE, "sagemaker:Pipeline", permission)
    policy = policy_for(CONSUMER, [grant])
    assert policy is not None
    request = AuthzRequest(caller=CALLER, action=action, resource=resource, resource_account=OWNER)
    resource_policy = parse_policy(json.dumps(policy), kind="resource")
    return evaluate(request, PolicySet(identity=identity, resource=resource_policy)).allowed


def test_catalog_matches_the_documented_permissions() -> None:
    read, execute = PERMISSIONS[READ], PERMISSIONS[EXECUTE]
    assert read.is_resource_type_default and not execute.is_resource_type_default
    assert default_permission("sagemaker:Pipeline") is read
    assert set(execute.actions) - set(read.actions) == {
        "sagemaker:StartPipelineExecution", "sagemaker:StopPipelineExecution", "sagemaker:RetryPipelineExecution"}
    assert json.loads(read.template) == {"Effect": "Allow", "Action": list(read.actions)}
    assert resource_type_of(PIPELINE) is not None
    assert resource_type_of("arn:aws:s3:::bucket") is None
    assert find_resource_type("sagemaker:pipeline") is not None  # type part is case-insensitive
    assert find_resource_type("SageMaker:Pipeline") is None


@pytest.mark.parametrize(("permission", "action", "resource", "allowed"), [
    (READ, "sagemaker:DescribePipeline", PIPELINE, True),
    (READ, "sagemaker:DescribePipelineExecution", PIPELINE + "/execution/abc123", True),
    (READ, "sagemaker:StartPipelineExecution", PIPELINE, False),
    (READ, "sagemaker:StopPipelineExecution", PIPELINE + "/execution/abc123", False),
    (EXECUTE, "sagemaker:StartPipelineExecution", PIPELINE, True),
    (EXECUTE, "sagemaker:RetryPipelineExecution", PIPELINE + "/execution/abc123", True),
    (EXECUTE, "sagemaker:UpdatePipeline", PIPELINE, False),
    (EXECUTE, "sagemaker:DeletePipeline", PIPELINE, False),
    (EXECUTE, "sagemaker:DescribePipeline", PIPELINE.replace("/train", "/other"), False),
])
def test_share_policy_grants_exactly_the_permission(permission: str, action: str, resource: str,
                                                    allowed: bool) -> None:
    assert _decide(permission, action, resource) is allowed


def test_consumer_identity_policy_still_applies() -> None:
    describe_only = parse_policy(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sagemaker:DescribePipeline", "Resource": "*"}]}))
    assert _decide(EXECUTE, "sagemaker:DescribePipeline", PIPELINE, (describe_only,))
    assert not _decide(EXECUTE, "sagemaker:StartPipelineExecution", PIPELINE, (describe_only,))


def test_no_grant_no_policy() -> None:
    assert policy_for(CONSUMER, []) is None


def test_page_tokens_are_bound_to_their_request() -> None:
    items = list(range(5))
    params = {"resourceOwner": "SELF", "maxResults": 2}
    first, token = paging.page(items, params, OWNER, "GetResourceShares")
    assert first == [0, 1] and token
    second, token2 = paging.page(items, {**params, "nextToken": token}, OWNER, "GetResourceShares")
    assert second == [2, 3] and token2
    last, none = paging.page(items, {**params, "nextToken": token2}, OWNER, "GetResourceShares")
    assert last == [4] and none is None
    for bad in ({**params, "resourceOwner": "OTHER-ACCOUNTS", "nextToken": token},
                {**params, "nextToken": "x"}):
        with pytest.raises(ServiceError) as exc:
            paging.page(items, bad, OWNER, "GetResourceShares")
        assert exc.value.code == "InvalidNextTokenException"
    with pytest.raises(ServiceError):
        paging.page(items, {**params, "nextToken": token}, CONSUMER, "GetResourceShares")
