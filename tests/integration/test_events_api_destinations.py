"""EventBridge API destinations through boto3 against a real server: connections (API key, basic,
OAuth client credentials) whose secrets no answer shows, API destinations, and delivery to a test
HTTP server standing in for a CI system: a model package approval reaches it with the configured
authorization, path and query parameters; a 5xx answer is retried, a 4xx is not."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select
from stratum_testing import BACKENDS, StratumServer, close_server, make_server
from test_events_rules import _start

from stratum.services.events.tables import events_deliveries
from stratum.store.db import Database

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1.7-1"


class Received:
    """What the stand-in CI server received; ``fail`` answers are given first, in order."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail: list[int] = []
        self.lock = threading.Lock()


@pytest.fixture(scope="module")
def ci() -> Iterator[tuple[str, Received]]:
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path.startswith("/oauth/token"):
                assert self.headers["Authorization"] == "Basic " + base64.b64encode(b"stratum-ci:s3cret").decode()
                payload = json.dumps({"access_token": "token-123", "token_type": "bearer", "expires_in": 3600})
                self._send(200, payload.encode())
                return
            with received.lock:
                received.requests.append({"method": self.command, "path": self.path,
                                          "headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": body.decode()})
                status = received.fail.pop(0) if received.fail else 200
            self._send(status, b"{}")

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_PUT = _answer  # noqa: N815 - http.server's naming

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    httpd.shutdown()


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    srv = _start(make_server(tmp_path_factory, request.param))
    yield srv
    close_server(srv)


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _invoker_role(server: StratumServer) -> str:
    iam = server.client("iam")
    name = _uid("invoke-destinations")
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="invoke", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "events:InvokeApiDestination",
                                                "Resource": "*"}]}))
    return str(arn)


def _wait_for(received: Received, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with received.lock:
            if len(received.requests) >= count:
                return list(received.requests)
        time.sleep(0.1)
    raise AssertionError(f"expected {count} requests, got {received.requests}")


def test_connections_keep_their_secrets(server: StratumServer, ci: tuple[str, Received]) -> None:
    events = server.client("events")
    name = _uid("jenkins")
    created = events.create_connection(Name=name, AuthorizationType="API_KEY", AuthParameters={
        "ApiKeyAuthParameters": {"ApiKeyName": "X-Api-Key", "ApiKeyValue": "very-secret"},
        "InvocationHttpParameters": {"HeaderParameters": [
            {"Key": "X-Team", "Value": "ml", "IsValueSecret": False},
            {"Key": "X-Signature", "Value": "hidden", "IsValueSecret": True}]}})
    assert created["ConnectionState"] == "AUTHORIZED"
    assert created["ConnectionArn"].startswith(f"arn:aws:events:us-east-1:{server.account_id('dev')}:connection/"
                                               f"{name}/")
    described = events.describe_connection(Name=name)
    assert described["AuthParameters"]["ApiKeyAuthParameters"] == {"ApiKeyName": "X-Api-Key"}
    assert described["AuthParameters"]["InvocationHttpParameters"]["HeaderParameters"] == [
        {"Key": "X-Team", "Value": "ml", "IsValueSecret": False}, {"Key": "X-Signature", "IsValueSecret": True}]
    assert "very-secret" not in json.dumps(described, default=str)
    assert described["SecretArn"].startswith("arn:aws:secretsmanager:")
    assert name in [c["Name"] for c in events.list_connections(NamePrefix="jenkins-")["Connections"]]
    with pytest.raises(ClientError) as exc:
        events.create_connection(Name=name, AuthorizationType="API_KEY", AuthParameters={
            "ApiKeyAuthParameters": {"ApiKeyName": "k", "ApiKeyValue": "v"}})
    assert exc.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as exc:
        events.create_connection(Name=_uid("bad"), AuthorizationType="BASIC", AuthParameters={
            "ApiKeyAuthParameters": {"ApiKeyName": "k", "ApiKeyValue": "v"}})
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        events.describe_connection(Name="nope")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # Another account sees none of it.
    with pytest.raises(ClientError) as exc:
        server.client("events", "test").describe_connection(Name=name)
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"

    url, _ = ci
    destination = events.create_api_destination(Name=_uid("build"), ConnectionArn=created["ConnectionArn"],
                                                InvocationEndpoint=f"{url}/job/*/build", HttpMethod="POST",
                                                InvocationRateLimitPerSecond=10)
    assert destination["ApiDestinationState"] == "ACTIVE"
    with pytest.raises(ClientError) as exc:
        events.delete_connection(Name=name)
    assert exc.value.response["Error"]["Code"] == "ResourceConflictException"
    with pytest.raises(ClientError) as exc:
        events.create_api_destination(Name=_uid("orphan"), ConnectionArn=created["ConnectionArn"] + "x",
                                      InvocationEndpoint=url, HttpMethod="POST")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_model_approval_reaches_the_ci_server(server: StratumServer, ci: tuple[str, Received]) -> None:
    url, received = ci
    with received.lock:
        received.requests.clear()
    events, sm = server.client("events"), server.client("sagemaker")
    connection = events.create_connection(Name=_uid("jenkins"), AuthorizationType="API_KEY", AuthParameters={
        "ApiKeyAuthParameters": {"ApiKeyName": "X-Api-Key", "ApiKeyValue": "very-secret"},
        "InvocationHttpParameters": {"QueryStringParameters": [{"Key": "token", "Value": "q", "IsValueSecret": True}]}})
    destination = events.create_api_destination(Name=_uid("deploy"), ConnectionArn=connection["ConnectionArn"],
                                                InvocationEndpoint=f"{url}/job/*/buildWithParameters",
                                                HttpMethod="POST")["ApiDestinationArn"]
    group = _uid("churn")
    sm.create_model_package_group(ModelPackageGroupName=group)
    package = sm.create_model_package(ModelPackageGroupName=group, InferenceSpecification={
        "Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://models/model.tar.gz"}],
        "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]})["ModelPackageArn"]
    rule = events.put_rule(Name=_uid("approved"), EventPattern=json.dumps({
        "source": ["aws.sagemaker"], "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": [group], "ModelApprovalStatus": ["Approved"]}}))["RuleArn"]
    rule_name = rule.rsplit("/", 1)[1]
    with pytest.raises(ClientError) as exc:  # API destination targets act as a role
        events.put_targets(Rule=rule_name, Targets=[{"Id": "ci", "Arn": destination}])
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    out = events.put_targets(Rule=rule_name, Targets=[{
        "Id": "ci", "Arn": destination, "RoleArn": _invoker_role(server),
        "HttpParameters": {"PathParameterValues": ["deploy-churn"], "HeaderParameters": {"X-Source": "stratum"}},
        "InputTransformer": {"InputPathsMap": {"arn": "$.detail.ModelPackageArn"},
                             "InputTemplate": '{"package": <arn>, "stage": "staging"}'}}])
    assert out["FailedEntryCount"] == 0
    sm.update_model_package(ModelPackageArn=package, ModelApprovalStatus="Approved")
    request = _wait_for(received, 1)[0]
    assert request["method"] == "POST"
    assert request["path"] == "/job/deploy-churn/buildWithParameters?token=q"
    assert request["headers"]["x-api-key"] == "very-secret"
    assert request["headers"]["x-source"] == "stratum"
    assert json.loads(request["body"]) == {"package": package, "stage": "staging"}


def test_oauth_retries_and_refusals(server: StratumServer, ci: tuple[str, Received]) -> None:
    url, received = ci
    with received.lock:
        received.requests.clear()
        received.fail[:] = [503, 500]  # two server errors, then the delivery goes through
    events = server.client("events")
    connection = events.create_connection(Name=_uid("oauth"), AuthorizationType="OAUTH_CLIENT_CREDENTIALS",
                                          AuthParameters={"OAuthParameters": {
                                              "ClientParameters": {"ClientID": "stratum-ci", "ClientSecret": "s3cret"},
                                              "AuthorizationEndpoint": f"{url}/oauth/token", "HttpMethod": "POST"}})
    described = events.describe_connection(Name=connection["ConnectionArn"].split("/")[1])
    assert described["AuthParameters"]["OAuthParameters"]["ClientParameters"] == {"ClientID": "stratum-ci"}
    destination = events.create_api_destination(Name=_uid("hook"), ConnectionArn=connection["ConnectionArn"],
                                                InvocationEndpoint=f"{url}/hook", HttpMethod="PUT")["ApiDestinationArn"]
    role = _invoker_role(server)
    rule = events.put_rule(Name=_uid("ci"), EventPattern=json.dumps({"source": ["com.example.ci"]}))["RuleArn"]
    events.put_targets(Rule=rule.rsplit("/", 1)[1], Targets=[{"Id": "hook", "Arn": destination, "RoleArn": role}])
    events.put_events(Entries=[{"Source": "com.example.ci", "DetailType": "build", "Detail": json.dumps({"n": 1})}])
    requests = _wait_for(received, 3)
    assert [r["method"] for r in requests] == ["PUT"] * 3
    assert {r["headers"]["authorization"] for r in requests} == {"Bearer token-123"}
    assert json.loads(requests[-1]["body"])["detail"] == {"n": 1}

    # A 4xx is the endpoint refusing the event: recorded as failed, never retried.
    with received.lock:
        received.requests.clear()
        received.fail[:] = [400]
    events.put_events(Entries=[{"Source": "com.example.ci", "DetailType": "build", "Detail": json.dumps({"n": 2})}])
    _wait_for(received, 1)
    db = Database(server.database_url or f"sqlite:///{server.data_dir / 'stratum.db'}")
    try:
        deadline = time.monotonic() + 20
        while True:
            with db.read() as conn:
                rows = conn.execute(select(events_deliveries).where(events_deliveries.c.rule_arn == rule)).all()
            if any(r.status == "failed" for r in rows) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        db.dispose()
    assert [r.status for r in rows if r.status == "failed"] == ["failed"], rows
    time.sleep(1.0)
    assert len(received.requests) == 1


def test_retries_exhausted_reach_the_dead_letter_queue(server: StratumServer, ci: tuple[str, Received]) -> None:
    """A target that keeps failing is retried within its RetryPolicy, then the event lands in the
    target's SQS dead-letter queue, saying which retry condition ran out."""
    url, received = ci
    with received.lock:
        received.requests.clear()
        received.fail[:] = [500, 503]
    events, sqs = server.client("events"), server.client("sqs")
    connection = events.create_connection(Name=_uid("key"), AuthorizationType="API_KEY", AuthParameters={
        "ApiKeyAuthParameters": {"ApiKeyName": "X-Api-Key", "ApiKeyValue": "k"}})["ConnectionArn"]
    destination = events.create_api_destination(Name=_uid("flaky"), ConnectionArn=connection,
                                                InvocationEndpoint=f"{url}/flaky", HttpMethod="POST")
    rule = events.put_rule(Name=_uid("flaky"), EventPattern=json.dumps({"source": ["com.example.flaky"]}))["RuleArn"]
    queue_url = sqs.create_queue(QueueName=_uid("flaky-dlq"))["QueueUrl"]
    dlq = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": dlq, "Condition": {"ArnEquals": {"aws:SourceArn": rule}}}]})})
    events.put_targets(Rule=rule.rsplit("/", 1)[1], Targets=[{
        "Id": "flaky", "Arn": destination["ApiDestinationArn"], "RoleArn": _invoker_role(server),
        "RetryPolicy": {"MaximumRetryAttempts": 1}, "DeadLetterConfig": {"Arn": dlq}}])
    events.put_events(Entries=[{"Source": "com.example.flaky", "DetailType": "build", "Detail": '{"n": 7}'}])
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while not messages and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url, MessageAttributeNames=["All"], WaitTimeSeconds=1).get(
            "Messages", [])
    assert len(messages) == 1, received.requests
    assert len(received.requests) == 2  # the first attempt and one retry
    assert json.loads(messages[0]["Body"])["detail"] == {"n": 7}
    attributes = {k: v["StringValue"] for k, v in messages[0]["MessageAttributes"].items()}
    assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"
    assert attributes["RETRY_ATTEMPTS"] == "1" and attributes["RULE_ARN"] == rule
