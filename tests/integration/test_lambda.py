"""The Lambda API and runtime through the unmodified boto3 lambda client: functions from a zip,
waiters, Invoke (payload, errors, Tail logs, timeout, Event retries, DryRun), versions and
aliases, resource policies across accounts, a function calling Stratum as its role, its logs in
/aws/lambda/<fn>, and warm environments."""

from __future__ import annotations

import base64
import io
import json
import os
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stratum_testing import BACKENDS, StratumServer, close_server, make_server

HANDLER = '''
import json, os, sys, time

def handler(event, context):
    print("hello from", context.function_name)
    if event.get("fail"):
        raise ValueError("asked to fail: " + str(event["fail"]))
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("record"):
        with open(event["record"], "a") as f:
            f.write(context.aws_request_id + "\\n")
        if event.get("fail_record"):
            raise RuntimeError("recorded and failed")
    return {"event": event, "pid": os.getpid(), "version": context.function_version,
            "arn": context.invoked_function_arn, "memory": context.memory_limit_in_mb,
            "request_id": context.aws_request_id, "group": context.log_group_name,
            "stream": context.log_stream_name, "remaining": context.get_remaining_time_in_millis(),
            "env": {k: os.environ.get(k) for k in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
                    "LAMBDA_TASK_ROOT", "_HANDLER", "AWS_REGION", "AWS_DEFAULT_REGION", "STAGE",
                    "AWS_ENDPOINT_URL")},
            "helper": __import__("helper").VALUE}
'''

WHOAMI = '''
import boto3

def handler(event, context):
    arn = boto3.client("sts").get_caller_identity()["Arn"]
    s3 = boto3.client("s3")
    s3.put_object(Bucket=event["bucket"], Key="from-lambda.txt", Body=b"written by " + arn.encode())
    denied = None
    try:
        s3.put_object(Bucket=event["other_bucket"], Key="x", Body=b"x")
    except Exception as exc:
        denied = type(exc).__name__ + ":" + str(exc)[:200]
    return {"arn": arn, "denied": denied}
'''


def zip_of(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    saved = os.environ.get("STRATUM_LAMBDA_RETRY_DELAYS")
    os.environ["STRATUM_LAMBDA_RETRY_DELAYS"] = "0.3,0.3"  # the server inherits it: retries in tests are quick
    srv = make_server(tmp_path_factory, request.param).start()
    try:
        yield srv
    finally:
        close_server(srv)
        if saved is None:
            os.environ.pop("STRATUM_LAMBDA_RETRY_DELAYS", None)
        else:
            os.environ["STRATUM_LAMBDA_RETRY_DELAYS"] = saved


def lambda_role(server: StratumServer, *, service: str = "lambda.amazonaws.com", policy: dict[str, Any] | None = None,
                account: str = "dev") -> str:
    iam = server.client("iam", account)
    name = f"fn-role-{uuid.uuid4().hex[:8]}"
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    if policy is not None:
        iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=json.dumps(policy))
    return str(arn)


def create(server: StratumServer, files: dict[str, str] | None = None, *, role: str | None = None,
           account: str = "dev", **kwargs: Any) -> dict[str, Any]:
    client = server.client("lambda", account)
    name = kwargs.pop("FunctionName", f"fn-{uuid.uuid4().hex[:10]}")
    params = {"FunctionName": name, "Runtime": "python3.11", "Role": role or lambda_role(server, account=account),
              "Handler": "app.handler", "Code": {"ZipFile": zip_of(files or {"app.py": HANDLER, "helper.py": "VALUE = 42\n"})},
              "Timeout": 10, **kwargs}
    out = client.create_function(**params)
    client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    return dict(out)


def call(client: Any, name: str, event: Any, **kwargs: Any) -> tuple[dict[str, Any], Any]:
    out = client.invoke(FunctionName=name, Payload=json.dumps(event).encode(), **kwargs)
    body = out["Payload"].read()
    return out, json.loads(body) if body else None


def test_create_invoke_and_read_back(server: StratumServer) -> None:
    client = server.client("lambda")
    fn = create(server, MemorySize=256, Description="first", Environment={"Variables": {"STAGE": "test"}},
                Tags={"team": "ml"})
    name = fn["FunctionName"]
    account = server.account_id("dev")
    assert fn["FunctionArn"] == f"arn:aws:lambda:us-east-1:{account}:function:{name}"
    assert fn["Version"] == "$LATEST" and fn["State"] == "Active" and fn["MemorySize"] == 256
    assert fn["CodeSha256"] and fn["CodeSize"] > 0 and fn["Runtime"] == "python3.11"

    out, result = call(client, name, {"a": 1})
    assert out["StatusCode"] == 200 and "FunctionError" not in out and out["ExecutedVersion"] == "$LATEST"
    assert result["event"] == {"a": 1} and result["helper"] == 42
    assert result["version"] == "$LATEST" and result["arn"] == fn["FunctionArn"] and str(result["memory"]) == "256"
    assert 0 < result["remaining"] <= 10_000
    env = result["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name and env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256" and env["_HANDLER"] == "app.handler"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}" == result["group"]
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"] == result["stream"] and "/[$LATEST]" in result["stream"]
    assert env["STAGE"] == "test" and env["AWS_REGION"] == "us-east-1" == env["AWS_DEFAULT_REGION"]
    assert env["AWS_ENDPOINT_URL"] == server.endpoint_url and env["LAMBDA_TASK_ROOT"]

    got = client.get_function(FunctionName=name)
    assert got["Configuration"]["Description"] == "first" and got["Tags"] == {"team": "ml"}
    with urllib.request.urlopen(got["Code"]["Location"], timeout=10) as r:
        archive = zipfile.ZipFile(io.BytesIO(r.read()))
    assert sorted(archive.namelist()) == ["app.py", "helper.py"]
    conf = client.get_function_configuration(FunctionName=f"{account}:function:{name}")
    assert conf["Environment"] == {"Variables": {"STAGE": "test"}}

    with pytest.raises(ClientError) as exc:
        create(server, FunctionName=name)
    assert _code(exc) == "ResourceConflictException"
    with pytest.raises(ClientError) as exc:
        client.invoke(FunctionName=f"missing-{uuid.uuid4().hex[:6]}", Payload=b"{}")
    assert _code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        client.invoke(FunctionName=name, Payload=b"{not json")
    assert _code(exc) == "InvalidRequestContentException"
    assert client.invoke(FunctionName=name, InvocationType="DryRun")["StatusCode"] == 204


def test_list_functions_paginates(server: StratumServer) -> None:
    client = server.client("lambda", "prod")
    role = lambda_role(server, account="prod")
    names = sorted(create(server, role=role, account="prod")["FunctionName"] for _ in range(3))
    first = client.list_functions(MaxItems=2)
    assert len(first["Functions"]) == 2 and first["NextMarker"]
    rest = client.list_functions(MaxItems=2, Marker=first["NextMarker"])
    assert "NextMarker" not in rest
    listed = [f["FunctionName"] for f in first["Functions"] + rest["Functions"]]
    assert listed == names
    paged = [f["FunctionName"] for p in client.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 1})
             for f in p["Functions"]]
    assert paged == names


def test_role_must_trust_lambda_and_be_passable(server: StratumServer) -> None:
    with pytest.raises(ClientError) as exc:
        create(server, role=lambda_role(server, service="sagemaker.amazonaws.com"))
    assert _code(exc) == "InvalidParameterValueException"
    assert exc.value.response["Error"]["Message"] == "The role defined for the function cannot be assumed by Lambda."
    with pytest.raises(ClientError) as exc:
        create(server, Runtime="nodejs20.x")
    assert _code(exc) == "InvalidParameterValueException"
    # A user without iam:PassRole cannot hand a role to Lambda.
    iam = server.client("iam")
    user = f"dev-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="lambda", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "lambda:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    limited = server.client("lambda", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    with pytest.raises(ClientError) as exc:
        limited.create_function(FunctionName=f"fn-{uuid.uuid4().hex[:8]}", Runtime="python3.12", Role=lambda_role(server),
                                Handler="app.handler", Code={"ZipFile": zip_of({"app.py": HANDLER})})
    assert _code(exc) == "AccessDeniedException" and "iam:PassRole" in exc.value.response["Error"]["Message"]


def test_errors_tail_logs_and_timeout(server: StratumServer) -> None:
    client = server.client("lambda")
    name = create(server, Timeout=1)["FunctionName"]
    out, error = call(client, name, {"fail": "boom"}, LogType="Tail")
    assert out["StatusCode"] == 200 and out["FunctionError"] == "Unhandled"
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "asked to fail: boom"
    assert isinstance(error["stackTrace"], list) and any("app.py" in line for line in error["stackTrace"])
    tail = base64.b64decode(out["LogResult"]).decode()
    assert tail.startswith("START RequestId: ") and "hello from " + name in tail
    assert "[ERROR] ValueError: asked to fail: boom" in tail
    assert "END RequestId: " in tail and "REPORT RequestId: " in tail and "Duration: " in tail

    out, error = call(client, name, {"sleep": 3})
    assert out["FunctionError"] == "Unhandled"
    assert error["errorMessage"].endswith("Task timed out after 1.00 seconds")
    # The environment that timed out was killed; the next invocation gets a fresh one.
    out, result = call(client, name, {"n": 1})
    assert "FunctionError" not in out and result["event"] == {"n": 1}


def test_logs_and_warm_environments(server: StratumServer) -> None:
    client = server.client("lambda")
    name = create(server)["FunctionName"]
    _, first = call(client, name, {"i": 1})
    big = "x" * 200_000  # a large request body takes the server's other parsing path
    out, second = call(client, name, {"i": 2, "big": big})
    assert "FunctionError" not in out, second
    assert first["pid"] == second["pid"]  # the same warm environment
    assert first["request_id"] != second["request_id"] and second["event"]["big"] == big
    # Two invocations at once run in two environments (one invocation at a time in each).
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda i: call(server.client("lambda"), name, {"sleep": 1, "i": i})[1], (1, 2)))
    assert len({r["pid"] for r in both}) == 2 and first["pid"] in {r["pid"] for r in both}
    client.update_function_configuration(FunctionName=name, Environment={"Variables": {"STAGE": "two"}})
    client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    _, third = call(client, name, {"i": 3})
    assert third["pid"] != first["pid"] and third["env"]["STAGE"] == "two"  # recycled after the update

    logs = server.client("logs")
    group = f"/aws/lambda/{name}"
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert first["stream"] in [s["logStreamName"] for s in streams]
    messages = [e["message"] for e in logs.get_log_events(logGroupName=group, logStreamName=first["stream"],
                                                          startFromHead=True)["events"]]
    text = "\n".join(messages)
    assert f"START RequestId: {first['request_id']} Version: $LATEST" in text
    assert f"END RequestId: {second['request_id']}" in text
    # The first environment ran three invocations: two alone, one of the concurrent pair.
    assert sum(m.startswith("REPORT RequestId") for m in messages) == 3
    assert f"hello from {name}" in text
    assert "Init Duration" in next(m for m in messages if m.startswith("REPORT"))


def test_versions_and_aliases(server: StratumServer) -> None:
    client = server.client("lambda")
    name = create(server, Publish=True)["FunctionName"]
    versions = client.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]
    client.update_function_code(FunctionName=name, ZipFile=zip_of({"app.py": HANDLER, "helper.py": "VALUE = 2\n"}))
    client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    v2 = client.publish_version(FunctionName=name, Description="second")
    assert v2["Version"] == "2" and v2["FunctionArn"].endswith(f":{name}:2")
    assert client.publish_version(FunctionName=name)["Version"] == "2"  # nothing changed: the same version

    alias = client.create_alias(FunctionName=name, Name="prod", FunctionVersion="1")
    assert alias["AliasArn"].endswith(f":{name}:prod")
    out, result = call(client, name, {}, Qualifier="prod")
    assert out["ExecutedVersion"] == "1" and result["helper"] == 42 and result["arn"] == alias["AliasArn"]
    out, result = call(client, f"{name}:2", {})
    assert out["ExecutedVersion"] == "2" and result["helper"] == 2 and result["version"] == "2"
    _, result = call(client, name, {})
    assert result["helper"] == 2
    client.update_alias(FunctionName=name, Name="prod", FunctionVersion="2")
    assert client.get_alias(FunctionName=name, Name="prod")["FunctionVersion"] == "2"
    assert [a["Name"] for a in client.list_aliases(FunctionName=name)["Aliases"]] == ["prod"]
    assert client.get_function(FunctionName=name, Qualifier="1")["Configuration"]["Version"] == "1"
    with pytest.raises(ClientError) as exc:
        client.delete_function(FunctionName=name, Qualifier="2")  # prod points at it
    assert _code(exc) == "ResourceConflictException"
    client.delete_alias(FunctionName=name, Name="prod")
    client.delete_function(FunctionName=name, Qualifier="2")
    with pytest.raises(ClientError) as exc:
        client.invoke(FunctionName=name, Qualifier="2", Payload=b"{}")
    assert _code(exc) == "ResourceNotFoundException"
    client.delete_function(FunctionName=name)
    with pytest.raises(ClientError) as exc:
        client.get_function(FunctionName=name)
    assert _code(exc) == "ResourceNotFoundException"


def test_resource_policy_lets_another_account_invoke(server: StratumServer) -> None:
    client = server.client("lambda")
    fn = create(server)
    other = server.client("lambda", "test")
    with pytest.raises(ClientError) as exc:
        other.invoke(FunctionName=fn["FunctionArn"], Payload=b"{}")
    assert _code(exc) == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:
        client.get_policy(FunctionName=fn["FunctionName"])
    assert _code(exc) == "ResourceNotFoundException"
    added = client.add_permission(FunctionName=fn["FunctionName"], StatementId="test-account",
                                  Action="lambda:InvokeFunction", Principal=server.account_id("test"))
    statement = json.loads(added["Statement"])
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{server.account_id('test')}:root"}
    assert statement["Resource"] == fn["FunctionArn"]
    client.add_permission(FunctionName=fn["FunctionName"], StatementId="rule", Action="lambda:InvokeFunction",
                          Principal="events.amazonaws.com",
                          SourceArn=f"arn:aws:events:us-east-1:{server.account_id('dev')}:rule/r")
    policy = json.loads(client.get_policy(FunctionName=fn["FunctionName"])["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["test-account", "rule"]
    assert policy["Statement"][1]["Condition"] == {"ArnLike": {"AWS:SourceArn": f"arn:aws:events:us-east-1:"
                                                               f"{server.account_id('dev')}:rule/r"}}
    with pytest.raises(ClientError) as exc:
        client.add_permission(FunctionName=fn["FunctionName"], StatementId="rule", Action="lambda:InvokeFunction",
                              Principal="events.amazonaws.com")
    assert _code(exc) == "ResourceConflictException"
    out, result = call(other, fn["FunctionArn"], {"from": "test"})
    assert "FunctionError" not in out and result["event"] == {"from": "test"}
    with pytest.raises(ClientError) as exc:  # only InvokeFunction was granted
        other.get_function(FunctionName=fn["FunctionArn"])
    assert _code(exc) == "AccessDeniedException"
    client.remove_permission(FunctionName=fn["FunctionName"], StatementId="test-account")
    with pytest.raises(ClientError) as exc:
        other.invoke(FunctionName=fn["FunctionArn"], Payload=b"{}")
    assert _code(exc) == "AccessDeniedException"


def test_function_calls_stratum_as_its_role(server: StratumServer) -> None:
    s3 = server.client("s3")
    bucket, other_bucket = f"fn-out-{uuid.uuid4().hex[:8]}", f"fn-other-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=other_bucket)
    role = lambda_role(server, policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"}]})
    fn = create(server, {"app.py": WHOAMI}, role=role)
    out, result = call(server.client("lambda"), fn["FunctionName"], {"bucket": bucket, "other_bucket": other_bucket})
    assert "FunctionError" not in out, result
    role_name = role.rsplit("/", 1)[-1]
    expected = f"arn:aws:sts::{server.account_id('dev')}:assumed-role/{role_name}/{fn['FunctionName']}"
    assert result["arn"] == expected
    assert s3.get_object(Bucket=bucket, Key="from-lambda.txt")["Body"].read() == b"written by " + expected.encode()
    assert result["denied"] and "AccessDenied" in result["denied"]


def test_event_invocations_are_retried(server: StratumServer, tmp_path: Path) -> None:
    client = server.client("lambda")
    name = create(server)["FunctionName"]
    record = tmp_path / "calls.txt"
    out = client.invoke(FunctionName=name, InvocationType="Event",
                        Payload=json.dumps({"record": str(record), "fail_record": True}).encode())
    assert out["StatusCode"] == 202 and out["Payload"].read() == b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not record.exists() or len(record.read_text().split()) < 3):
        time.sleep(0.1)
    time.sleep(1.5)  # no fourth attempt
    attempts = record.read_text().split()
    assert len(attempts) == 3 and len(set(attempts)) == 1  # the same request id each time, as Lambda retries

    ok = tmp_path / "ok.txt"
    client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"record": str(ok)}).encode())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not ok.exists():
        time.sleep(0.1)
    time.sleep(1.0)
    assert len(ok.read_text().split()) == 1


def test_failed_event_goes_to_the_dead_letter_queue(server: StratumServer) -> None:
    """An Event invocation that fails its three attempts is sent to the function's DeadLetterConfig
    queue as its execution role, with Lambda's attributes; a role without sqs:SendMessage on the
    queue leaves it dropped."""
    sqs = server.client("sqs")
    url = sqs.create_queue(QueueName=f"fn-dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    dlq = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    role = lambda_role(server, policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": dlq}]})
    client = server.client("lambda")
    name = create(server, role=role, DeadLetterConfig={"TargetArn": dlq})["FunctionName"]
    assert client.get_function_configuration(FunctionName=name)["DeadLetterConfig"] == {"TargetArn": dlq}
    out = client.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"fail": "always"}).encode())
    request_id = out["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-requestid")
    messages: list[Any] = []
    deadline = time.monotonic() + 30
    while not messages and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=1).get(
            "Messages", [])
    assert len(messages) == 1 and json.loads(messages[0]["Body"]) == {"fail": "always"}
    attributes = {k: v["StringValue"] for k, v in messages[0]["MessageAttributes"].items()}
    assert attributes["RequestID"] == request_id and attributes["ErrorCode"] == "200"
    assert "asked to fail: always" in attributes["ErrorMessage"]

    # Without the permission the event is dropped (and logged): the queue stays empty.
    other = create(server, DeadLetterConfig={"TargetArn": dlq})["FunctionName"]
    client.invoke(FunctionName=other, InvocationType="Event", Payload=json.dumps({"fail": "again"}).encode())
    time.sleep(3)
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)


def test_tags(server: StratumServer) -> None:
    client = server.client("lambda")
    fn = create(server)
    client.tag_resource(Resource=fn["FunctionArn"], Tags={"a": "1", "b": "2"})
    client.untag_resource(Resource=fn["FunctionArn"], TagKeys=["a"])
    assert client.list_tags(Resource=fn["FunctionArn"])["Tags"] == {"b": "2"}


SDK_SCRIPT = '''
def handler(event, context):
    return {"doubled": event["x"] * FACTOR, "name": context.function_name}

FACTOR = %d
'''


@pytest.mark.slow
def test_sdk_lambda_step_creates_updates_and_invokes_the_function(server: StratumServer, tmp_path: Path) -> None:
    pytest.importorskip("sagemaker")
    from sagemaker.lambda_helper import Lambda
    from sagemaker.session import Session
    from sagemaker.workflow.lambda_step import LambdaOutput, LambdaOutputTypeEnum, LambdaStep
    from sagemaker.workflow.parameters import ParameterInteger
    from sagemaker.workflow.pipeline import Pipeline
    from sdk_testing import user_environment
    from stratum_testing import sagemaker_role

    function_role = lambda_role(server)
    # AmazonSageMakerFullAccess lets the pipeline's role invoke functions named *sagemaker*, as on AWS.
    pipeline_role = sagemaker_role(server, "lambda-step")
    fn_name = f"sagemaker-double-{uuid.uuid4().hex[:8]}"
    pipeline_name = f"lambda-step-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "double.py"

    def build(session: Session, factor: int) -> Pipeline:
        script.write_text(SDK_SCRIPT % factor)
        x = ParameterInteger(name="X", default_value=4)
        step = LambdaStep(name="Double", lambda_func=Lambda(function_name=fn_name, execution_role_arn=function_role,
                                                            script=str(script), handler="double.handler",
                                                            session=session),
                          inputs={"x": x}, outputs=[LambdaOutput("doubled", LambdaOutputTypeEnum.Integer),
                                                    LambdaOutput("name", LambdaOutputTypeEnum.String)])
        return Pipeline(name=pipeline_name, parameters=[x], steps=[step], sagemaker_session=session)

    def outputs(session: Session, arn: str) -> dict[str, str]:
        steps = session.sagemaker_client.list_pipeline_execution_steps(PipelineExecutionArn=arn)
        step = steps["PipelineExecutionSteps"][0]
        assert step["StepStatus"] == "Succeeded", step
        return {p["Name"]: p["Value"] for p in step["Metadata"]["Lambda"]["OutputParameters"]}

    with user_environment(server.data_dir / "server.log", tmp_path / "home", SAGEMAKER_SUPPRESS_V2_WARNING="1"):
        session = Session()
        build(session, 2).upsert(role_arn=pipeline_role)
        # The SDK created the function through the Lambda API when the pipeline was upserted.
        conf = server.client("lambda").get_function_configuration(FunctionName=fn_name)
        assert conf["Handler"] == "double.handler" and conf["Role"] == function_role
        execution = build(session, 2).start(parameters={"X": 5})
        execution.wait(delay=1, max_attempts=120)
        assert outputs(session, execution.arn) == {"doubled": "10", "name": fn_name}

        build(session, 3).upsert(role_arn=pipeline_role)  # the function exists: its code is updated
        execution = build(session, 3).start(parameters={"X": 5})
        execution.wait(delay=1, max_attempts=120)
        assert outputs(session, execution.arn)["doubled"] == "15"

    # A pipeline whose role may not invoke the function fails the step with AccessDenied.
    other_role = sagemaker_role(server, "no-lambda")
    fn_plain = create(server)["FunctionArn"]  # not named *sagemaker*: AmazonSageMakerFullAccess does not cover it
    sm = server.client("sagemaker")
    name = f"denied-{uuid.uuid4().hex[:8]}"
    sm.create_pipeline(PipelineName=name, RoleArn=other_role, PipelineDefinition=json.dumps(
        {"Version": "2020-12-01", "Parameters": [], "Steps": [
            {"Name": "Call", "Type": "Lambda", "FunctionArn": fn_plain, "Arguments": {}}]}))
    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    deadline = time.monotonic() + 60
    while sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Executing":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    step = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"][0]
    assert step["StepStatus"] == "Failed" and "AccessDeniedException" in step["FailureReason"]
    assert "lambda:InvokeFunction" in step["FailureReason"]


GATED = '''
import os

def handler(event, context):
    with open(event["record"], "a") as f:
        f.write(context.aws_request_id + "\\n")
    if not os.path.exists(event["gate"]):
        raise RuntimeError("gate closed")
    return "ok"
'''


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_accepted_events_survive_a_kill(backend: str, tmp_path_factory: pytest.TempPathFactory,
                                        tmp_path: Path) -> None:
    saved = os.environ.get("STRATUM_LAMBDA_RETRY_DELAYS")
    os.environ["STRATUM_LAMBDA_RETRY_DELAYS"] = "4,4"
    srv = make_server(tmp_path_factory, backend).start()
    try:
        name = create(srv, {"app.py": GATED})["FunctionName"]
        record, gate = tmp_path / "record.txt", tmp_path / "gate"
        out = srv.client("lambda").invoke(FunctionName=name, InvocationType="Event",
                                          Payload=json.dumps({"record": str(record), "gate": str(gate)}).encode())
        assert out["StatusCode"] == 202
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not record.exists():
            time.sleep(0.05)
        assert len(record.read_text().split()) == 1  # the first attempt failed; a retry is due in 4 s
        srv.kill()  # kill -9: the queued retry is in the database only
        gate.touch()
        srv.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(record.read_text().split()) < 2:
            time.sleep(0.1)
        time.sleep(5)  # it succeeded: no third attempt
        attempts = record.read_text().split()
        assert len(attempts) == 2 and attempts[0] == attempts[1]
    finally:
        close_server(srv)
        if saved is None:
            os.environ.pop("STRATUM_LAMBDA_RETRY_DELAYS", None)
        else:
            os.environ["STRATUM_LAMBDA_RETRY_DELAYS"] = saved


def test_code_from_s3_is_read_as_the_caller(server: StratumServer) -> None:
    s3 = server.client("s3")
    bucket = f"fn-code-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="code/app.zip", Body=zip_of({"app.py": HANDLER, "helper.py": "VALUE = 7\n"}))
    fn = create(server, Code={"S3Bucket": bucket, "S3Key": "code/app.zip"})
    _, result = call(server.client("lambda"), fn["FunctionName"], {})
    assert result["helper"] == 7
    with pytest.raises(ClientError) as exc:
        create(server, Code={"S3Bucket": bucket, "S3Key": "code/missing.zip"})
    assert _code(exc) == "InvalidParameterValueException"
    # Another account's admin cannot read the bucket: its CreateFunction is refused.
    with pytest.raises(ClientError) as exc:
        create(server, account="test", Code={"S3Bucket": bucket, "S3Key": "code/app.zip"})
    assert _code(exc) == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:
        create(server, Code={"ZipFile": b"not a zip"})
    assert _code(exc) == "InvalidParameterValueException"
