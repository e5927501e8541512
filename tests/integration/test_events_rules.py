"""EventBridge rules and targets through boto3 against a real server: the rules API and its errors,
TestEventPattern, and delivery: a model package approved in a spoke account reaches the hub's bus
through a rule of the spoke's default bus, where a rule of the hub starts a SageMaker pipeline with
parameters from the event; an input transformer's output; a spoke without bus permission refused
(the delivery recorded as failed, the event sent to its SQS dead-letter queue); scheduled rules firing."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select
from stratum_testing import BACKENDS, REGION, StratumServer, close_server, make_server

from stratum.services.events.tables import events_deliveries, events_entries
from stratum.store.db import Database

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1.7-1"
APPROVAL_PATTERN = {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Model Package State Change"]}
# The hub's deployment pipeline: it fails unless started for an approved package.
DEPLOY_DEFINITION = json.dumps({
    "Version": "2020-12-01", "Metadata": {},
    "Parameters": [{"Name": "ModelPackageArn", "Type": "String", "DefaultValue": "none"},
                   {"Name": "ApprovalStatus", "Type": "String", "DefaultValue": "none"}],
    "Steps": [{"Name": "Gate", "Type": "Condition", "Arguments": {
        "Conditions": [{"Type": "Equals", "LeftValue": {"Get": "Parameters.ApprovalStatus"},
                        "RightValue": "Approved"}],
        "IfSteps": [], "ElseSteps": [{"Name": "Refuse", "Type": "Fail", "Arguments": {"ErrorMessage": "no"}}]}}],
})


KNOBS = {"STRATUM_EVENTS_SCHEDULE_MINUTE_SECONDS": "2", "STRATUM_EVENTS_RETRY_BASE_SECONDS": "0.2",
         "STRATUM_EVENTS_POLL_SECONDS": "0.2"}


def _start(srv: StratumServer) -> StratumServer:
    """Start a server whose rate(...) minutes last 2 seconds and whose retries start after 0.2 s."""
    saved = {k: os.environ.get(k) for k in KNOBS}
    os.environ.update(KNOBS)
    try:
        return srv.start()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    srv = _start(make_server(tmp_path_factory, request.param))
    yield srv
    close_server(srv)


@pytest.fixture(params=BACKENDS)
def own_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    """A server of its own, for a test that kills it."""
    srv = _start(make_server(tmp_path_factory, request.param))
    yield srv
    close_server(srv)


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _error(call: Callable[..., Any], **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as err:
        call(**kwargs)
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


def _db(server: StratumServer) -> Database:
    return Database(server.database_url or f"sqlite:///{server.data_dir / 'stratum.db'}")


def _rows(server: StratumServer, query: Any) -> list[Any]:
    db = _db(server)
    try:
        with db.read() as conn:
            return list(conn.execute(query))
    finally:
        db.dispose()


def _wait(probe: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _deliveries(server: StratumServer, rule_arn: str) -> list[Any]:
    return _rows(server, select(events_deliveries).where(events_deliveries.c.rule_arn == rule_arn)
                 .order_by(events_deliveries.c.seq))


def _events_role(server: StratumServer, account: str) -> str:
    """A role EventBridge may assume, allowed to start SageMaker pipelines."""
    iam = server.client("iam", account)
    name = _uid("events-role")
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="start", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sagemaker:StartPipelineExecution",
                                                "Resource": "*"}]}))
    return str(arn)


def _pipeline(server: StratumServer, account: str) -> tuple[str, str]:
    sm = server.client("sagemaker", account)
    role = f"arn:aws:iam::{server.account_id(account)}:role/unused"
    name = _uid("deploy")
    arn = sm.create_pipeline(PipelineName=name, PipelineDefinition=DEPLOY_DEFINITION, RoleArn=role)["PipelineArn"]
    return name, arn


def _package_group(server: StratumServer, account: str) -> str:
    name = _uid("churn")
    server.client("sagemaker", account).create_model_package_group(ModelPackageGroupName=name)
    return name


def _new_version(server: StratumServer, account: str, group: str) -> str:
    spec = {"Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://models/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]}
    return str(server.client("sagemaker", account).create_model_package(
        ModelPackageGroupName=group, InferenceSpecification=spec)["ModelPackageArn"])


# ------------------------------------------------------------------------------------- rules API
def test_rule_lifecycle_listing_and_errors(server: StratumServer) -> None:
    events = server.client("events")
    account = server.account_id("dev")
    name = _uid("rule")
    pattern = json.dumps(APPROVAL_PATTERN)
    arn = events.put_rule(Name=name, EventPattern=pattern, Description="approvals",
                          Tags=[{"Key": "team", "Value": "ml"}])["RuleArn"]
    assert arn == f"arn:aws:events:{REGION}:{account}:rule/{name}"
    described = events.describe_rule(Name=name)
    assert {k: described[k] for k in ("Name", "Arn", "EventPattern", "State", "Description", "EventBusName",
                                      "CreatedBy")} == {
        "Name": name, "Arn": arn, "EventPattern": pattern, "State": "ENABLED", "Description": "approvals",
        "EventBusName": "default", "CreatedBy": account}
    assert events.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]
    events.tag_resource(ResourceARN=arn, Tags=[{"Key": "stage", "Value": "dev"}])
    events.untag_resource(ResourceARN=arn, TagKeys=["team"])
    assert events.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "stage", "Value": "dev"}]

    events.disable_rule(Name=name)
    assert events.describe_rule(Name=name)["State"] == "DISABLED"
    events.enable_rule(Name=name)
    assert events.describe_rule(Name=name)["State"] == "ENABLED"
    # PutRule on an existing rule replaces it: what is left out is gone.
    events.put_rule(Name=name, EventPattern=pattern)
    assert "Description" not in events.describe_rule(Name=name)

    # A rule on a bus of its own: its ARN names the bus.
    bus = _uid("bus")
    events.create_event_bus(Name=bus)
    on_bus = events.put_rule(Name=name, EventBusName=bus, EventPattern=pattern)["RuleArn"]
    assert on_bus == f"arn:aws:events:{REGION}:{account}:rule/{bus}/{name}"
    assert [r["Name"] for r in events.list_rules(EventBusName=bus)["Rules"]] == [name]

    prefix = _uid("page")
    for i in range(3):
        events.put_rule(Name=f"{prefix}-{i}", ScheduleExpression="rate(5 minutes)", State="DISABLED")
    first = events.list_rules(NamePrefix=prefix, Limit=2)
    assert [r["Name"] for r in first["Rules"]] == [f"{prefix}-0", f"{prefix}-1"]
    second = events.list_rules(NamePrefix=prefix, Limit=2, NextToken=first["NextToken"])
    assert [r["Name"] for r in second["Rules"]] == [f"{prefix}-2"] and "NextToken" not in second
    assert second["Rules"][0]["ScheduleExpression"] == "rate(5 minutes)"

    assert _error(events.put_rule, Name=_uid("r")) == (
        "ValidationException", "Parameter(s) EventPattern or ScheduleExpression must be specified.")
    assert _error(events.put_rule, Name=_uid("r"), ScheduleExpression="rate(1 minutes)") == (
        "ValidationException", "Parameter ScheduleExpression is not valid.")
    assert _error(events.put_rule, Name=_uid("r"), ScheduleExpression="cron(0 12 * * * *)")[0] == \
        "ValidationException"  # one of day-of-month / day-of-week must be "?"
    events.put_rule(Name=_uid("cron"), ScheduleExpression="cron(0 12 ? * MON-FRI *)", State="DISABLED")
    assert _error(events.put_rule, Name=_uid("r"), EventBusName=bus, ScheduleExpression="rate(1 minute)") == (
        "ValidationException", "ScheduleExpression is supported only on the default event bus.")
    assert _error(events.put_rule, Name=_uid("r"), EventPattern='{"source": "aws.ec2"}') == (
        "InvalidEventPatternException", 'Event pattern is not valid. Reason: "source" must be an object or an array')
    assert _error(events.put_rule, Name=_uid("r"), EventPattern=pattern, EventBusName="missing-bus") == (
        "ResourceNotFoundException", "Event bus missing-bus does not exist.")
    assert _error(events.describe_rule, Name="nope") == (
        "ResourceNotFoundException", "Rule nope does not exist on EventBus default.")

    # Targets: listed, removable, and a rule with targets cannot be deleted.
    hub_bus = f"arn:aws:events:{REGION}:{server.account_id('hub')}:event-bus/default"
    out = events.put_targets(Rule=name, Targets=[
        {"Id": "hub", "Arn": hub_bus},
        {"Id": "topic", "Arn": f"arn:aws:sns:{REGION}:{account}:t"}])
    assert out["FailedEntryCount"] == 1 and out["FailedEntries"][0]["TargetId"] == "topic"
    assert [t["Id"] for t in events.list_targets_by_rule(Rule=name)["Targets"]] == ["hub"]
    assert events.list_rule_names_by_target(TargetArn=hub_bus)["RuleNames"] == [name]
    assert _error(events.delete_rule, Name=name) == ("ValidationException", "Rule can't be deleted since it has targets.")
    assert _error(events.put_targets, Rule=name, Targets=[{"Id": "t", "Arn": hub_bus, "Input": "{}",
                                                           "InputPath": "$.detail"}]) == (
        "ValidationException", "Only one of Input, InputPath, or InputTransformer must be provided.")
    assert _error(events.put_targets, Rule=name, Targets=[{"Id": "t", "Arn": hub_bus, "Input": "not json"}])[0] == \
        "ValidationException"
    assert _error(events.put_targets, Rule=name, Targets=[
        {"Id": "p", "Arn": f"arn:aws:sagemaker:{REGION}:{account}:pipeline/x"}]) == (
        "ValidationException", "RoleArn is required for target p.")
    assert _error(events.put_targets, Rule="nope", Targets=[{"Id": "t", "Arn": hub_bus}])[0] == \
        "ResourceNotFoundException"
    events.remove_targets(Rule=name, Ids=["hub"])
    assert events.list_targets_by_rule(Rule=name)["Targets"] == []
    events.delete_rule(Name=name)
    assert _error(events.describe_rule, Name=name)[0] == "ResourceNotFoundException"
    events.delete_rule(Name=name)  # already gone: succeeds, as on AWS
    # A deleted bus takes its rules along: a new bus of the same name starts without them.
    events.delete_event_bus(Name=bus)
    events.create_event_bus(Name=bus)
    assert events.list_rules(EventBusName=bus)["Rules"] == []


def test_rules_are_authorized_per_rule_arn(server: StratumServer) -> None:
    iam = server.client("iam")
    events = server.client("events")
    allowed, denied = _uid("allowed"), _uid("denied")
    events.put_rule(Name=denied, EventPattern=json.dumps(APPROVAL_PATTERN))
    account = server.account_id("dev")
    user = _uid("rules-user")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="only", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["events:PutRule", "events:DescribeRule"],
                                                "Resource": f"arn:aws:events:{REGION}:{account}:rule/{allowed}"}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    limited = server.client("events", aws_access_key_id=key["AccessKeyId"],
                            aws_secret_access_key=key["SecretAccessKey"])
    _wait(lambda: _try(lambda: limited.put_rule(Name=allowed, EventPattern=json.dumps(APPROVAL_PATTERN))),
          what="the new key to work")
    assert limited.describe_rule(Name=allowed)["Name"] == allowed
    assert _error(limited.describe_rule, Name=denied)[0] == "AccessDeniedException"
    assert _error(limited.put_rule, Name=denied, EventPattern=json.dumps(APPROVAL_PATTERN))[0] == \
        "AccessDeniedException"


def _try(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("InvalidClientTokenId", "UnrecognizedClientException",
                                             "AccessDeniedException"):
            return False
        raise
    return True


def test_test_event_pattern(server: StratumServer) -> None:
    events = server.client("events")
    event = {"id": "1", "account": server.account_id("dev"), "source": "aws.sagemaker", "time": "2026-12-07T10:00:00Z",
             "region": REGION, "resources": [], "detail-type": "SageMaker Model Package State Change",
             "detail": {"ModelApprovalStatus": "Approved", "ModelPackageGroupName": "churn"}}
    pattern = {**APPROVAL_PATTERN, "detail": {"ModelApprovalStatus": [{"anything-but": "Rejected"}],
                                              "ModelPackageGroupName": [{"prefix": "ch"}]}}
    assert events.test_event_pattern(EventPattern=json.dumps(pattern), Event=json.dumps(event))["Result"] is True
    rejected = {**event, "detail": {**event["detail"], "ModelApprovalStatus": "Rejected"}}
    assert events.test_event_pattern(EventPattern=json.dumps(pattern), Event=json.dumps(rejected))["Result"] is False
    assert _error(events.test_event_pattern, EventPattern='{"a": [{"numeric": [">", "x"]}]}',
                  Event=json.dumps(event)) == (
        "InvalidEventPatternException", "Event pattern is not valid. Reason: Value of > must be numeric")
    assert _error(events.test_event_pattern, EventPattern=json.dumps(pattern), Event='{"source": "x"}')[0] == \
        "ValidationException"


# -------------------------------------------------------------------------------------- delivery
def test_spoke_approval_starts_the_hub_pipeline(server: StratumServer) -> None:
    """Spoke (dev) approves a package -> its default bus -> the hub's bus (allowed by its policy)
    -> the hub's rule starts the hub's deployment pipeline as its role, with event parameters."""
    spoke, hub = server.client("events", "dev"), server.client("events", "hub")
    spoke_account, hub_account = server.account_id("dev"), server.account_id("hub")
    hub_bus = _uid("models")
    hub_bus_arn = hub.create_event_bus(Name=hub_bus)["EventBusArn"]
    hub.put_permission(EventBusName=hub_bus, Action="events:PutEvents", Principal=spoke_account,
                       StatementId="spoke")
    pipeline, _pipeline_arn = _pipeline(server, "hub")
    role = _events_role(server, "hub")
    hub_rule = hub.put_rule(Name=_uid("deploy"), EventBusName=hub_bus, EventPattern=json.dumps(
        {**APPROVAL_PATTERN, "account": [spoke_account], "detail": {"ModelApprovalStatus": ["Approved"]}}))["RuleArn"]
    hub.put_targets(Rule=hub_rule.rsplit("/", 1)[1], EventBusName=hub_bus, Targets=[{
        "Id": "deploy", "Arn": _pipeline_arn, "RoleArn": role,
        "SageMakerPipelineParameters": {"PipelineParameterList": [
            {"Name": "ModelPackageArn", "Value": "$.detail.ModelPackageArn"},
            {"Name": "ApprovalStatus", "Value": "$.detail.ModelApprovalStatus"}]}}])
    group = _package_group(server, "dev")
    forward = spoke.put_rule(Name=_uid("forward"), EventPattern=json.dumps(
        {**APPROVAL_PATTERN, "detail": {"ModelPackageGroupName": [group]}}))["RuleArn"]
    out = spoke.put_targets(Rule=forward.rsplit("/", 1)[1], Targets=[{"Id": "hub", "Arn": hub_bus_arn}])
    assert out["FailedEntryCount"] == 0

    package = _new_version(server, "dev", group)  # PendingManualApproval: forwarded, not deployed
    server.client("sagemaker", "dev").update_model_package(ModelPackageArn=package, ModelApprovalStatus="Approved")

    hub_sm = server.client("sagemaker", "hub")
    executions = _wait(lambda: hub_sm.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"],
                       what="the hub pipeline to start")
    time.sleep(1.0)  # a second (wrong) start would show up by now
    executions = hub_sm.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"]
    assert len(executions) == 1
    execution = executions[0]["PipelineExecutionArn"]
    parameters = {p["Name"]: p["Value"] for p in hub_sm.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=execution)["PipelineParameters"]}
    assert parameters == {"ModelPackageArn": package, "ApprovalStatus": "Approved"}
    status = _wait(lambda: (s := hub_sm.describe_pipeline_execution(PipelineExecutionArn=execution)[
        "PipelineExecutionStatus"]) != "Executing" and s, what="the execution to finish")
    assert status == "Succeeded"

    forwarded = _deliveries(server, forward)
    assert [d.status for d in forwarded] == ["delivered", "delivered"]  # created, then approved
    deployed = _deliveries(server, hub_rule)
    assert len(deployed) == 1 and deployed[0].result == {"PipelineExecutionArn": execution}
    # The events on the hub's bus keep the spoke as their account.
    on_hub = _rows(server, select(events_entries).where(
        (events_entries.c.account_id == hub_account) & (events_entries.c.bus_name == hub_bus)))
    assert {(e.source_account, e.source) for e in on_hub} == {(spoke_account, "aws.sagemaker")}


def test_spoke_without_bus_permission_is_refused(server: StratumServer) -> None:
    """The 'test' account is not in the hub bus policy: its forwarding fails, is not retried
    (access denied), and is recorded with the dead-letter queue of the target."""
    hub = server.client("events", "hub")
    hub_bus_arn = hub.create_event_bus(Name=_uid("closed"))["EventBusArn"]
    spoke = server.client("events", "test")
    group = _package_group(server, "test")
    sqs = server.client("sqs", "test")
    rule = spoke.put_rule(Name=_uid("forward"), EventPattern=json.dumps(
        {**APPROVAL_PATTERN, "detail": {"ModelPackageGroupName": [group]}}))["RuleArn"]
    queue_url = sqs.create_queue(QueueName=_uid("forward-dlq"))["QueueUrl"]
    dlq = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # The queue's policy lets EventBridge send it this rule's failures, as the console writes it.
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": dlq, "Condition": {"ArnEquals": {"aws:SourceArn": rule}}}]})})
    spoke.put_targets(Rule=rule.rsplit("/", 1)[1], Targets=[{
        "Id": "hub", "Arn": hub_bus_arn, "DeadLetterConfig": {"Arn": dlq},
        "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 60}}])
    _new_version(server, "test", group)
    failed = _wait(lambda: [d for d in _deliveries(server, rule) if d.status == "failed"], what="the refusal")
    assert failed[0].attempts == 1 and failed[0].dead_letter_arn == dlq
    assert failed[0].last_error.startswith("AccessDeniedException") and "not sent" not in failed[0].last_error
    # The event is in the dead-letter queue, with the attributes EventBridge documents.
    [message] = sqs.receive_message(QueueUrl=queue_url, MessageAttributeNames=["All"], WaitTimeSeconds=5)["Messages"]
    event = json.loads(message["Body"])
    assert event["detail-type"] == "SageMaker Model Package State Change"
    assert event["detail"]["ModelPackageGroupName"] == group
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["RULE_ARN"] == rule and attributes["TARGET_ARN"] == hub_bus_arn
    assert attributes["ERROR_CODE"] == "AccessDeniedException" and attributes["RETRY_ATTEMPTS"] == "0"
    assert "EXHAUSTED_RETRY_CONDITION" not in attributes  # refused at once: no retry was exhausted

    # A queue whose policy does not let EventBridge in keeps nothing: the failure says why.
    closed_url = sqs.create_queue(QueueName=_uid("closed-dlq"))["QueueUrl"]
    closed = sqs.get_queue_attributes(QueueUrl=closed_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    spoke.put_targets(Rule=rule.rsplit("/", 1)[1], Targets=[{
        "Id": "hub", "Arn": hub_bus_arn, "DeadLetterConfig": {"Arn": closed}}])
    _new_version(server, "test", group)
    refused = _wait(lambda: [d for d in _deliveries(server, rule) if d.status == "failed"
                             and d.dead_letter_arn == closed], what="the second refusal")
    assert "not sent to the dead-letter queue" in refused[0].last_error
    assert "Messages" not in sqs.receive_message(QueueUrl=closed_url)


def test_sqs_queue_target_receives_each_event_once(server: StratumServer) -> None:
    """A queue target gets the (transformed) event once, under the queue's policy; a FIFO queue
    target needs its MessageGroupId."""
    events, sqs = server.client("events", "test"), server.client("sqs", "test")
    name = _uid("to-queue")
    rule = events.put_rule(Name=name, EventPattern=json.dumps({"source": ["ci.build"]}))["RuleArn"]
    url = sqs.create_queue(QueueName=_uid("builds"))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": arn, "Condition": {"ArnEquals": {"aws:SourceArn": rule}}}]})})
    events.put_targets(Rule=name, Targets=[{"Id": "q", "Arn": arn, "InputPath": "$.detail"}])
    events.put_events(Entries=[{"Source": "ci.build", "DetailType": "Build", "Detail": json.dumps({"n": i})}
                               for i in range(3)])
    bodies: list[Any] = []
    deadline = time.monotonic() + 30
    while len(bodies) < 3 and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert sorted(b["n"] for b in bodies) == [0, 1, 2]
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
    assert {d.status for d in _deliveries(server, rule)} == {"delivered"}
    fifo = f"arn:aws:sqs:{REGION}:{server.account_id('test')}:orders.fifo"
    assert _error(events.put_targets, Rule=name, Targets=[{"Id": "f", "Arn": fifo}])[0] == "ValidationException"


def test_bus_target_with_a_role_acts_as_that_role(server: StratumServer) -> None:
    """A bus target's RoleArn is assumed by events.amazonaws.com: the role's own policies and the
    target bus's policy decide; a role without events:PutEvents is refused."""
    hub = server.client("events", "hub")
    bus = _uid("roles")
    bus_arn = hub.create_event_bus(Name=bus)["EventBusArn"]
    spoke_account = server.account_id("test")
    hub.put_permission(EventBusName=bus, Action="events:PutEvents", Principal=spoke_account, StatementId="spoke")
    iam = server.client("iam", "test")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    allowed, idle = _uid("put-events"), _uid("no-events")
    allowed_arn = iam.create_role(RoleName=allowed, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.put_role_policy(RoleName=allowed, PolicyName="put", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": bus_arn}]}))
    idle_arn = iam.create_role(RoleName=idle, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    spoke = server.client("events", "test")
    rule = _uid("send")
    rule_arn = spoke.put_rule(Name=rule, EventPattern=json.dumps({"source": ["com.example.roles"]}))["RuleArn"]
    spoke.put_targets(Rule=rule, Targets=[{"Id": "allowed", "Arn": bus_arn, "RoleArn": allowed_arn},
                                          {"Id": "idle", "Arn": bus_arn, "RoleArn": idle_arn}])
    spoke.put_events(Entries=[{"Source": "com.example.roles", "DetailType": "probe", "Detail": "{}"}])
    done = _wait(lambda: (rows := _deliveries(server, rule_arn)) and all(r.status != "pending" for r in rows)
                 and rows, what="both deliveries to finish")
    outcome = {r.target_id: (r.status, (r.last_error or "").split(":")[0]) for r in done}
    assert outcome == {"allowed": ("delivered", ""), "idle": ("failed", "AccessDeniedException")}


def test_input_transformer_output(server: StratumServer) -> None:
    """A rule's target bus receives the event its InputTransformer renders (strings quoted in the
    JSON template, the reserved rule-name variable, text inside strings)."""
    events = server.client("events")
    source_bus, target_bus = _uid("in"), _uid("out")
    events.create_event_bus(Name=source_bus)
    target_arn = events.create_event_bus(Name=target_bus)["EventBusArn"]
    rule_name = _uid("transform")
    events.put_rule(Name=rule_name, EventBusName=source_bus, EventPattern=json.dumps(
        {"source": ["com.example.ci"], "detail": {"build": {"number": [{"numeric": [">", 10]}]}}}))
    template = ('{"source": "com.example.relay", "detail-type": "Build <status>", '
                '"detail": {"number": <number>, "status": <status>, "rule": <aws.events.rule-name>, '
                '"note": "build <number> is <status>", "tags": <tags>}}')
    events.put_targets(Rule=rule_name, EventBusName=source_bus, Targets=[{
        "Id": "relay", "Arn": target_arn, "InputTransformer": {
            "InputPathsMap": {"number": "$.detail.build.number", "status": "$.detail.build.status",
                              "tags": "$.detail.tags"},
            "InputTemplate": template}}])
    put = events.put_events(Entries=[
        {"EventBusName": source_bus, "Source": "com.example.ci", "DetailType": "Build",
         "Detail": json.dumps({"build": {"number": 5, "status": "ok"}})},
        {"EventBusName": source_bus, "Source": "com.example.ci", "DetailType": "Build",
         "Detail": json.dumps({"build": {"number": 42, "status": "passed"}, "tags": ["a", "b"]})}])
    assert put["FailedEntryCount"] == 0
    account = server.account_id("dev")
    relayed = _wait(lambda: _rows(server, select(events_entries).where(
        (events_entries.c.account_id == account) & (events_entries.c.bus_name == target_bus))),
        what="the transformed event")
    assert len(relayed) == 1
    entry = relayed[0]
    assert (entry.source, entry.detail_type) == ("com.example.relay", "Build passed")
    assert json.loads(entry.detail) == {"number": 42, "status": "passed", "rule": rule_name,
                                        "note": "build 42 is passed", "tags": ["a", "b"]}


def test_a_target_receives_a_rules_events_in_arrival_order(server: StratumServer) -> None:
    events = server.client("events")
    source_bus, target_bus = _uid("in"), _uid("out")
    events.create_event_bus(Name=source_bus)
    target_arn = events.create_event_bus(Name=target_bus)["EventBusArn"]
    rule = _uid("relay")
    events.put_rule(Name=rule, EventBusName=source_bus, EventPattern=json.dumps({"source": ["com.example.seq"]}))
    events.put_targets(Rule=rule, EventBusName=source_bus, Targets=[{"Id": "out", "Arn": target_arn}])
    for batch in range(3):
        events.put_events(Entries=[{"EventBusName": source_bus, "Source": "com.example.seq", "DetailType": "n",
                                    "Detail": json.dumps({"n": batch * 5 + i})} for i in range(5)])
    account = server.account_id("dev")

    def relayed() -> list[int]:
        rows = _rows(server, select(events_entries).where(
            (events_entries.c.account_id == account) & (events_entries.c.bus_name == target_bus))
            .order_by(events_entries.c.seq))
        return [json.loads(r.detail)["n"] for r in rows]
    _wait(lambda: len(relayed()) == 15, what="15 relayed events")
    assert relayed() == list(range(15))


def test_scheduled_rule_fires_on_time(server: StratumServer) -> None:
    """rate(1 minute) with the test clock's 2-second minutes: the rule's target bus receives a
    "Scheduled Event" about every 2 seconds, and none once the rule is disabled."""
    events = server.client("events")
    target_bus = _uid("ticks")
    target_arn = events.create_event_bus(Name=target_bus)["EventBusArn"]
    name = _uid("tick")
    rule_arn = events.put_rule(Name=name, ScheduleExpression="rate(1 minute)")["RuleArn"]
    events.put_targets(Rule=name, Targets=[{"Id": "bus", "Arn": target_arn}])
    account = server.account_id("dev")

    def ticks() -> list[Any]:
        return _rows(server, select(events_entries).where(
            (events_entries.c.account_id == account) & (events_entries.c.bus_name == target_bus)))
    _wait(lambda: len(ticks()) >= 2, timeout=20, what="two scheduled events")
    events.disable_rule(Name=name)
    first = ticks()
    assert {(t.source, t.detail_type) for t in first} == {("aws.events", "Scheduled Event")}
    assert all(t.resources == [rule_arn] for t in first)
    times = sorted(t.time for t in first)
    assert all(1.5 <= (b - a).total_seconds() <= 4.5 for a, b in zip(times, times[1:], strict=False))
    time.sleep(4.5)
    assert len(ticks()) <= len(first) + 1  # at most one firing that was under way


@pytest.mark.slow
def test_kill_during_delivery_neither_loses_nor_duplicates(own_server: StratumServer) -> None:
    """kill -9 right after approvals: after the restart every approval has started the pipeline
    exactly once (the outbox rows and pending deliveries are read again; a start retried after
    the crash carries the same ClientRequestToken)."""
    server = own_server
    events = server.client("events")
    pipeline, pipeline_arn = _pipeline(server, "dev")
    role = _events_role(server, "dev")
    group = _package_group(server, "dev")
    rule = _uid("deploy")
    events.put_rule(Name=rule, EventPattern=json.dumps(
        {**APPROVAL_PATTERN, "detail": {"ModelPackageGroupName": [group], "ModelApprovalStatus": ["Approved"]}}))
    events.put_targets(Rule=rule, Targets=[{
        "Id": "deploy", "Arn": pipeline_arn, "RoleArn": role,
        "SageMakerPipelineParameters": {"PipelineParameterList": [
            {"Name": "ModelPackageArn", "Value": "$.detail.ModelPackageArn"},
            {"Name": "ApprovalStatus", "Value": "$.detail.ModelApprovalStatus"}]}}])
    sm = server.client("sagemaker")
    packages = [_new_version(server, "dev", group) for _ in range(3)]
    for package in packages:
        sm.update_model_package(ModelPackageArn=package, ModelApprovalStatus="Approved")
    server.kill()
    _start(server)
    sm = server.client("sagemaker")

    def started() -> list[str]:
        summaries = sm.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"]
        return [s["PipelineExecutionArn"] for s in summaries]
    _wait(lambda: len(started()) >= 3, timeout=60, what="three executions")
    time.sleep(1.5)
    executions = started()
    assert len(executions) == 3
    started_for = sorted(next(p["Value"] for p in sm.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=arn)["PipelineParameters"] if p["Name"] == "ModelPackageArn") for arn in executions)
    assert started_for == sorted(packages)
