"""The authorizer's context helpers for services: request tags and calls forwarded on a caller's
behalf, checked with the policy evaluator."""

from __future__ import annotations

from stratum.auth.authorizer import forwarded_context, tag_condition_keys
from stratum.policy import AuthzRequest, Caller, PolicySet, evaluate, parse_policy

CALLER = Caller.from_arn("arn:aws:iam::111111111111:user/alice")
DENY_OUTSIDE_VPC = parse_policy({"Statement": [{
    "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "*",
    "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1"}, "BoolIfExists": {"aws:ViaAWSService": "false"}}}]},
    kind="resource")
ALLOW = parse_policy({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def _decide(context: dict[str, object]) -> str:
    request = AuthzRequest(CALLER, "s3:GetObject", "arn:aws:s3:::b/k", "111111111111", context)
    return evaluate(request, PolicySet(identity=[ALLOW], resource=DENY_OUTSIDE_VPC)).decision


def test_forwarded_calls_drop_the_network_origin() -> None:
    direct = {"aws:SourceIp": "10.0.0.1", "aws:ViaAWSService": False}
    assert _decide(direct) == "explicitDeny"
    assert _decide({**direct, "aws:SourceVpce": "vpce-1"}) == "allowed"
    # SageMaker reading the object as the caller: no aws:SourceVpce, but aws:ViaAWSService is true,
    # which is exactly what the usual exception in such a policy looks for.
    forwarded = {**direct, "aws:SourceVpce": "vpce-1", **forwarded_context("sagemaker.amazonaws.com")}
    assert forwarded["aws:SourceVpce"] is None and forwarded["aws:SourceIp"] is None
    assert _decide(forwarded) == "allowed"
    assert "aws:CalledVia" not in forwarded  # SageMaker is not among the services AWS lists there


def test_called_via_chain() -> None:
    keys = forwarded_context("kms.amazonaws.com", ("cloudformation.amazonaws.com",))
    assert keys["aws:CalledVia"] == ["cloudformation.amazonaws.com", "kms.amazonaws.com"]
    assert keys["aws:CalledViaFirst"] == "cloudformation.amazonaws.com"
    assert keys["aws:CalledViaLast"] == "kms.amazonaws.com"


def test_tag_condition_keys() -> None:
    assert tag_condition_keys([{"Key": "team", "Value": "ml"}]) == {"aws:RequestTag/team": "ml", "aws:TagKeys": ["team"]}
    assert tag_condition_keys({"a": "1", "b": "2"})["aws:TagKeys"] == ["a", "b"]
    assert tag_condition_keys(None, ["old"]) == {"aws:TagKeys": ["old"]}
    assert tag_condition_keys(None) == {}
