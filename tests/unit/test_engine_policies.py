"""CacheConfig (ISO-8601 ExpireAfter, signatures), RetryPolicies and Lambda output typing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from stratum.engine.caching import cache_policy, parse_duration, signature
from stratum.engine.functions import FunctionError, FunctionSpec, parse_function_arn
from stratum.engine.lambda_step import read_outputs, retry_class
from stratum.engine.retries import RetryPolicyError, next_delay, parse_policies


@pytest.mark.parametrize(("text", "expected"), [
    ("PT1H", timedelta(hours=1)),
    ("P30D", timedelta(days=30)),
    ("p30d", timedelta(days=30)),
    ("P4DT12H", timedelta(days=4, hours=12)),
    ("T12H", timedelta(hours=12)),  # the SDK's own docstring example
    ("PT1H30M15S", timedelta(hours=1, minutes=30, seconds=15)),
    ("PT0.5S", timedelta(seconds=0.5)),
    ("P1W", timedelta(days=7)),
    ("P1Y2M", timedelta(days=365 + 60)),
])
def test_iso8601_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "1H", "P1H", "PTX", "P1DT", "1 day"])
def test_invalid_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_cache_policy_and_signature() -> None:
    assert cache_policy({"Type": "Lambda"}) is None
    assert cache_policy({"Type": "Lambda", "CacheConfig": {"Enabled": False, "ExpireAfter": "P1D"}}) is None
    assert cache_policy({"Type": "Condition", "CacheConfig": {"Enabled": True}}) is None
    policy = cache_policy({"Type": "Training", "CacheConfig": {"Enabled": True, "ExpireAfter": "PT2H"}})
    assert policy is not None and policy.expire_after == timedelta(hours=2)
    unlimited = cache_policy({"Type": "Training", "CacheConfig": {"Enabled": True}})
    assert unlimited is not None and unlimited.expire_after is None
    with pytest.raises(ValueError):
        cache_policy({"Type": "Training", "CacheConfig": {"Enabled": True, "ExpireAfter": "soon"}})
    step = {"Name": "A", "Type": "Lambda", "FunctionArn": "arn:1"}
    base = signature("Lambda", {"x": 1, "y": [1, 2]}, step)
    assert base == signature("Lambda", {"y": [1, 2], "x": 1}, {**step, "Name": "Renamed"})
    assert base != signature("Lambda", {"x": 2, "y": [1, 2]}, step)
    assert base != signature("Lambda", {"x": 1, "y": [1, 2]}, {**step, "FunctionArn": "arn:2"})
    assert base != signature("Training", {"x": 1, "y": [1, 2]}, step)


def test_retry_policies_match_error_types_with_backoff() -> None:
    policies = parse_policies({"RetryPolicies": [
        {"ExceptionType": ["SageMaker.CAPACITY_ERROR"], "IntervalSeconds": 10, "BackoffRate": 2.0, "MaxAttempts": 2},
        {"ExceptionType": ["Step.THROTTLING"], "IntervalSeconds": 1, "BackoffRate": 3.0, "ExpireAfterMin": 1},
    ]})
    retries: dict[int, int] = {}
    assert next_delay(policies, None, retries, 0) is None
    assert next_delay(policies, "Step.SERVICE_FAULT", retries, 0) is None
    assert next_delay(policies, "SageMaker.CAPACITY_ERROR", retries, 0) == (0, 10.0)
    assert next_delay(policies, "SageMaker.CAPACITY_ERROR", {0: 1}, 0) == (0, 20.0)
    assert next_delay(policies, "SageMaker.CAPACITY_ERROR", {0: 2}, 0) is None  # MaxAttempts retries made
    assert next_delay(policies, "Step.THROTTLING", {1: 2}, 0) == (1, 9.0)
    assert next_delay(policies, "Step.THROTTLING", {1: 2}, 55) is None  # past ExpireAfterMin
    assert parse_policies({}) == []
    for bad in ([{"ExceptionType": ["Nope"], "MaxAttempts": 1}], [{"ExceptionType": [], "MaxAttempts": 1}],
                [{"ExceptionType": ["Step.THROTTLING"], "MaxAttempts": 0}], "x"):
        with pytest.raises(RetryPolicyError):
            parse_policies({"RetryPolicies": bad})


def test_lambda_error_types_and_outputs() -> None:
    assert retry_class("TooManyRequestsException") == "Step.THROTTLING"
    assert retry_class("ServiceException") == "Step.SERVICE_FAULT"
    assert retry_class("Step.THROTTLING") == "Step.THROTTLING"
    assert retry_class("ValueError") is None
    declared = [{"OutputName": "n", "OutputType": "Integer"}, {"OutputName": "f", "OutputType": "Float"},
                {"OutputName": "b", "OutputType": "Boolean"}, {"OutputName": "s"}]
    typed, listed = read_outputs(declared, {"n": "3", "f": 2, "b": "True", "s": {"k": 1}, "extra": 1})
    assert typed == {"n": 3, "f": 2.0, "b": True, "s": '{"k": 1}'}
    assert listed == [{"Name": "n", "Value": "3"}, {"Name": "f", "Value": "2"}, {"Name": "b", "Value": "True"},
                      {"Name": "s", "Value": '{"k": 1}'}]
    with pytest.raises(ValueError, match="no value for OutputParameter 'n'"):
        read_outputs(declared, {})
    for bad in ("x", 2.5, True):
        with pytest.raises(ValueError, match="not of type Integer"):
            read_outputs(declared[:1], {"n": bad})
    assert read_outputs(None, "anything") == ({}, [])


def test_function_arns_and_specs() -> None:
    assert parse_function_arn("arn:aws:lambda:eu-west-1:111122223333:function:fn:$LATEST", "a", "r") == (
        "111122223333", "eu-west-1", "fn")
    assert parse_function_arn("fn_1", "999988887777", "us-east-1") == ("999988887777", "us-east-1", "fn_1")
    assert parse_function_arn("arn:aws:s3:::bucket", "a", "r") is None
    FunctionSpec("1", "r", "ok", handler="pkg.mod:fn").validate()
    for bad in (FunctionSpec("1", "r", "ok"), FunctionSpec("1", "r", "bad name", command=["x"]),
                FunctionSpec("1", "r", "ok", handler="nocolon"),
                FunctionSpec("1", "r", "ok", command=["x"], timeout_seconds=0)):
        with pytest.raises(FunctionError):
            bad.validate()


def test_cache_key_ignores_attributes_outside_the_documented_key() -> None:
    """SageMaker's default cache key for a Processing step is AppSpecification, Environment and
    ProcessingInputs: outputs whose S3 URIs embed the execution id must not defeat caching."""
    base = {"AppSpecification": {"ImageUri": "img", "ContainerEntrypoint": ["python3", "p.py"]},
            "ProcessingInputs": [{"InputName": "code", "S3Input": {"S3Uri": "s3://b/code.py"}}],
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge"}}}
    run1 = {**base, "ProcessingOutputConfig": {"Outputs": [{"S3Output": {"S3Uri": "s3://b/exec-1/train"}}]}}
    run2 = {**base, "ProcessingOutputConfig": {"Outputs": [{"S3Output": {"S3Uri": "s3://b/exec-2/train"}}]},
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large"}}}
    step = {"Name": "Preprocess", "Type": "Processing"}
    assert signature("Processing", run1, step) == signature("Processing", run2, step)
    changed = {**run1, "Environment": {"SEED": "2"}}
    assert signature("Processing", run1, step) != signature("Processing", changed, step)
    # Step types without a documented key still hash every argument.
    assert signature("Lambda", {"a": 1}, step) != signature("Lambda", {"a": 2}, step)
