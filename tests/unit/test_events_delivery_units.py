"""Schedule expressions, input transformation and the retry decisions of event delivery."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stratum.services.events import schedules, transform
from stratum.services.events.delivery import after_failure
from stratum.services.events.targets import TargetError, pipeline_parameters

AT = datetime(2026, 12, 7, 10, 30, 15, tzinfo=UTC)  # a Monday


# -------------------------------------------------------------------------------------- schedules
@pytest.mark.parametrize("expression", ["rate(1 minute)", "rate(5 minutes)", "rate(1 hour)", "rate(2 days)",
                                        "cron(0 12 * * ? *)", "cron(15 10 ? * MON-FRI *)",
                                        "cron(0/15 * * * ? *)", "cron(0 8 1 * ? *)", "cron(0 18 ? * 6L 2027)",
                                        "cron(0 9 ? * 2#1 *)", "cron(0 0 L * ? *)", "cron(0 0 15W * ? *)"])
def test_valid_schedules(expression: str) -> None:
    assert schedules.parse(expression).next_after(AT) is not None


@pytest.mark.parametrize("expression", ["rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "rate(1 week)",
                                        "rate(-1 minute)", "cron(0 12 * * * *)", "cron(0 12 ? * ? *)",
                                        "cron(60 * * * ? *)", "cron(0 12 * *)", "cron(0 25 * * ? *)",
                                        "every minute", "cron(0 12 ? * FOO *)"])
def test_invalid_schedules(expression: str) -> None:
    with pytest.raises(schedules.ScheduleError):
        schedules.parse(expression)


def test_next_firings() -> None:
    assert schedules.parse("rate(5 minutes)").next_after(AT) == AT + timedelta(minutes=5)
    assert schedules.parse("rate(1 minute)").next_after(AT, minute_seconds=2) == AT + timedelta(seconds=2)
    assert schedules.parse("cron(0 12 * * ? *)").next_after(AT) == datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert schedules.parse("cron(0/15 * * * ? *)").next_after(AT) == datetime(2026, 12, 7, 10, 45, tzinfo=UTC)
    # 10:15 on weekdays: Monday's has passed, Tuesday's is next
    assert schedules.parse("cron(15 10 ? * MON-FRI *)").next_after(AT) == datetime(2026, 12, 8, 10, 15, tzinfo=UTC)
    assert schedules.parse("cron(0 0 L * ? *)").next_after(AT) == datetime(2026, 12, 31, 0, 0, tzinfo=UTC)
    # the first Monday (2) of January 2027 is the 4th
    assert schedules.parse("cron(0 9 ? * 2#1 2027)").next_after(AT) == datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
    # the last Friday (6L) of December 2026 is the 25th
    assert schedules.parse("cron(0 18 ? * 6L *)").next_after(AT) == datetime(2026, 12, 25, 18, 0, tzinfo=UTC)
    # the weekday nearest Saturday 2027-05-15 is Friday the 14th
    assert schedules.parse("cron(0 0 15W 5 ? 2027)").next_after(AT) == datetime(2027, 5, 14, 0, 0, tzinfo=UTC)


# -------------------------------------------------------------------------------- input transform
EC2 = {"version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602", "detail-type": "EC2 Instance State-change "
       "Notification", "source": "aws.ec2", "account": "123456789012", "time": "2015-11-11T21:29:54Z",
       "region": "us-east-1", "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
       "detail": {"instance-id": "i-0123456789", "state": "RUNNING"}}
PATHS = {"instance": "$.detail.instance-id", "state": "$.detail.state"}


def _render(template: str, paths: dict[str, str] | None = None) -> str:
    target = {"Id": "t", "InputTransformer": {"InputPathsMap": PATHS if paths is None else paths,
                                              "InputTemplate": template}}
    transform.check(target)
    return transform.render(target, EC2, rule_arn="arn:aws:events:us-east-1:123456789012:rule/r", rule_name="r",
                            ingestion_time="2015-11-11T21:29:55Z")


def test_user_guide_json_template() -> None:
    out = _render('{"instance": <instance>, "state": [9, <state>, true], "Transformed": "Yes"}')
    assert json.loads(out) == {"instance": "i-0123456789", "state": [9, "RUNNING", True], "Transformed": "Yes"}


def test_user_guide_string_templates() -> None:
    assert _render('"instance <instance> is in <state>"') == '"instance i-0123456789 is in RUNNING"'
    assert _render('<instance> is in state "<state>"') == 'i-0123456789 is in state "RUNNING"'
    # inside a JSON string the value is text, escaped for that string
    out = _render('{"myInstance": <instance>, "myStatus": "<instance> is in state \\"<state>\\""}')
    assert json.loads(out) == {"myInstance": "i-0123456789", "myStatus": 'i-0123456789 is in state "RUNNING"'}


def test_predefined_variables() -> None:
    out = json.loads(_render('{"rule": <aws.events.rule-name>, "arn": "<aws.events.rule-arn>", '
                             '"at": <aws.events.event.ingestion-time>, "event": <aws.events.event>, '
                             '"whole": <aws.events.event.json>}', {}))
    assert out["rule"] == "r" and out["arn"].endswith(":rule/r") and out["at"] == "2015-11-11T21:29:55Z"
    assert "detail" not in out["event"] and out["event"]["source"] == "aws.ec2"
    assert out["whole"] == EC2


def test_input_and_input_path() -> None:
    assert transform.render({"Id": "t", "Input": '{"a": 1}'}, EC2, rule_arn="", rule_name="",
                            ingestion_time="") == '{"a": 1}'
    assert json.loads(transform.render({"Id": "t", "InputPath": "$.detail"}, EC2, rule_arn="", rule_name="",
                                       ingestion_time="")) == EC2["detail"]
    assert json.loads(transform.render({"Id": "t"}, EC2, rule_arn="", rule_name="", ingestion_time="")) == EC2
    assert transform.select(EC2, "$.resources[0]") == EC2["resources"][0]
    assert transform.select(EC2, "$.detail.missing") is None


@pytest.mark.parametrize(("target", "message"), [
    ({"Id": "t", "Input": "{", "InputPath": "$"}, "Only one of Input, InputPath, or InputTransformer must be provided."),
    ({"Id": "t", "Input": "{"}, "Input for target t is not valid JSON text."),
    ({"Id": "t", "InputPath": "detail"}, "InputPath for target t is invalid."),
    ({"Id": "t", "InputTransformer": {"InputPathsMap": {"aws.events.rule-name": "$.x"}, "InputTemplate": "x"}},
     "InputTransformer for target t uses the reserved key aws.events.rule-name."),
    ({"Id": "t", "InputTransformer": {"InputPathsMap": {"a": "x"}, "InputTemplate": "x"}},
     "InputTransformer for target t has an invalid JSON path x."),
    ({"Id": "t", "InputTransformer": {"InputTemplate": '{"a": <b>, }'}}, "InputTemplate for target t is not valid JSON."),
])
def test_invalid_inputs(target: dict[str, Any], message: str) -> None:
    with pytest.raises(transform.InputError) as err:
        transform.check(target)
    assert str(err.value) == message


def test_pipeline_parameters_from_the_event() -> None:
    target = {"SageMakerPipelineParameters": {"PipelineParameterList": [
        {"Name": "Instance", "Value": "$.detail.instance-id"}, {"Name": "Fixed", "Value": "x"},
        {"Name": "Resources", "Value": "$.resources"}, {"Name": "Missing", "Value": "$.detail.nope"}]}}
    assert pipeline_parameters(target, EC2) == [
        {"Name": "Instance", "Value": "i-0123456789"}, {"Name": "Fixed", "Value": "x"},
        {"Name": "Resources", "Value": json.dumps(EC2["resources"], separators=(",", ":"))},
        {"Name": "Missing", "Value": ""}]


# ------------------------------------------------------------------------------------------ retries
def test_retry_decisions() -> None:
    accepted = AT
    throttled = TargetError("ThrottlingException", "slow down", True)
    denied = TargetError("AccessDeniedException", "no", False)
    first = after_failure({}, 1, accepted, AT, throttled, 1.0)
    assert first.retry_at == AT + timedelta(seconds=1)
    assert after_failure({}, 4, accepted, AT, throttled, 1.0).retry_at == AT + timedelta(seconds=8)
    assert after_failure({}, 30, accepted, AT, throttled, 1.0).retry_at == AT + timedelta(seconds=300)
    assert after_failure({}, 1, accepted, AT, denied, 1.0).retry_at is None
    policy = {"RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 60}}
    assert after_failure(policy, 2, accepted, AT, throttled, 1.0).retry_at is not None
    assert after_failure(policy, 3, accepted, AT, throttled, 1.0).reason == "retry attempts exhausted"
    late = after_failure(policy, 1, accepted, AT + timedelta(seconds=59.5), throttled, 1.0)
    assert late.retry_at is None and late.reason == "maximum event age exceeded"
    no_retries = {"RetryPolicy": {"MaximumRetryAttempts": 0}}
    assert after_failure(no_retries, 1, accepted, AT, throttled, 1.0).retry_at is None
