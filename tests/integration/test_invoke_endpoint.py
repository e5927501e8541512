"""SageMaker Runtime through boto3 against a real server: InvokeEndpoint forwarding (single,
serial, direct), variant and instance choice, AWS errors, IAM conditions, cross-account calls
through an assumed role, metrics, data capture and InvokeEndpointAsync.

The endpoints' routes are published by the test to a server running in the test's process (the
endpoint control plane is not part of this server yet); the model servers are real processes.
The tests at the end use the control plane (CreateModel / CreateEndpointConfig / CreateEndpoint)
and skip while the server does not serve it."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from authz_testing import client, limited_user
from botocore.config import Config
from botocore.exceptions import ClientError
from runtime_testing import (
    InProcessServer,
    ModelProcess,
    endpoint_route,
    start_stratum_model,
    start_test_model,
)
from stratum_testing import BACKENDS, REGION, create_pg_database, drop_pg_database, sagemaker_role

from stratum.hosting.routes import EndpointRoute


@pytest.fixture(scope="module", params=BACKENDS)
def rt(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    data_dir = tmp_path_factory.mktemp(f"runtime-{request.param}")
    url = create_pg_database() if request.param == "postgresql" else None
    server = InProcessServer(data_dir, url, backend=request.param).start()
    try:
        yield server
    finally:
        server.stop()
        if url:
            drop_pg_database(url)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModelProcess]]:
    tmp = tmp_path_factory.mktemp("models")
    started: dict[str, ModelProcess] = {}
    try:
        started["a"] = start_test_model(tmp, "a")
        started["b"] = start_test_model(tmp, "b")
        started["upper"] = start_test_model(tmp, "upper", "upper")
        started["headers"] = start_test_model(tmp, "headers", "headers")
        started["fail400"] = start_test_model(tmp, "fail400", "fail", status=400)
        started["fail500"] = start_test_model(tmp, "fail500", "fail", status=500)
        started["slow"] = start_test_model(tmp, "slow", "sleep", seconds=3)
        started["stream"] = start_test_model(tmp, "stream", "stream", seconds=0.2)
        yield started
    finally:
        for model in started.values():
            model.stop()


def _name(prefix: str = "ep") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _runtime(server: InProcessServer, account: str = "dev", creds: dict[str, str] | None = None) -> Any:
    return client(server, "sagemaker-runtime", creds, account=account)


def _publish(server: InProcessServer, route: EndpointRoute) -> EndpointRoute:
    server.routes.put(route)
    return route


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


# ----------------------------------------------------------------------------------- forwarding
def test_single_container_answer_headers_and_custom_attributes(rt: InProcessServer,
                                                               models: dict[str, ModelProcess]) -> None:
    route = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("AllTraffic", 1.0, {"c1": models["a"].url})]))
    out = _runtime(rt).invoke_endpoint(EndpointName=route.name, Body=b"1,2,3", ContentType="text/csv",
                                       Accept="text/csv", CustomAttributes="trace=42", InferenceId="inf-1")
    assert out["Body"].read() == b"a(1,2,3)"
    assert out["ContentType"] == "text/csv"
    assert out["InvokedProductionVariant"] == "AllTraffic"
    assert out["CustomAttributes"] == "a:trace=42"  # what the model answered, passed back


def test_model_receives_the_contract_headers(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    route = _publish(rt, endpoint_route(rt.account_id("dev"), _name(),
                                        [("v1", 1.0, {"c1": models["headers"].url})]))
    out = _runtime(rt).invoke_endpoint(EndpointName=route.name, Body=b"{}", ContentType="application/json",
                                       Accept="application/json", CustomAttributes="k=v")
    seen = {k.lower(): v for k, v in json.loads(out["Body"].read()).items()}
    assert seen["content-type"] == "application/json"
    assert seen["accept"] == "application/json"
    assert seen["x-amzn-sagemaker-custom-attributes"] == "k=v"
    assert "authorization" not in seen  # the caller's signature is not passed on


def test_serial_pipeline_pipes_each_answer_into_the_next(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    # upper answers text/csv: the next container gets that content type; Accept goes to the last only.
    route = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [
        ("AllTraffic", 1.0, {"first": models["upper"].url, "second": models["a"].url,
                             "third": models["headers"].url})], mode="Serial"))
    runtime = _runtime(rt)
    out = runtime.invoke_endpoint(EndpointName=route.name, Body=b"abc", ContentType="application/x-text",
                                  Accept="application/json")
    seen = {k.lower(): v for k, v in json.loads(out["Body"].read()).items()}
    assert seen["content-type"] == "text/csv"  # a's answer kept upper's content type
    assert seen["accept"] == "application/json"
    two = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [
        ("AllTraffic", 1.0, {"first": models["upper"].url, "second": models["b"].url})], mode="Serial"))
    out = runtime.invoke_endpoint(EndpointName=two.name, Body=b"xy", ContentType="text/plain")
    assert out["Body"].read() == b"b(XY)"
    assert out["ContentType"] == "text/csv"


def test_serial_pipeline_with_stratum_model_servers(rt: InProcessServer, tmp_path: Path) -> None:
    to_csv = ("import json\n"
              "def model_fn(d):\n    return None\n"
              "def transform_fn(model, body, content_type, accept):\n"
              "    rows = json.loads(body)\n"
              "    return '\\n'.join(','.join(str(v) for v in r) for r in rows), 'text/csv'\n")
    sums = ("def model_fn(d):\n    return None\n"
            "def transform_fn(model, body, content_type, accept):\n"
            "    assert content_type.startswith('text/csv'), content_type  # the first one's answer type\n"
            "    text = body.decode() if isinstance(body, bytes) else body  # str in sagemaker-containers\n"
            "    sums = [sum(float(v) for v in line.split(',')) for line in text.splitlines()]\n"
            "    return ','.join(f'{s:g}' for s in sums), accept\n")
    first, second = start_stratum_model(tmp_path, "to-csv", to_csv), start_stratum_model(tmp_path, "sums", sums)
    try:
        route = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [
            ("AllTraffic", 1.0, {"prep": first.url, "model": second.url})], mode="Serial"))
        out = _runtime(rt).invoke_endpoint(EndpointName=route.name, Body=json.dumps([[1, 2], [3, 4.5]]),
                                           ContentType="application/json", Accept="text/csv")
        assert out["Body"].read() == b"3,7.5"
        assert out["ContentType"].startswith("text/csv")  # Flask's "text/csv; charset=utf-8"
    finally:
        first.stop()
        second.stop()


def test_direct_invocation(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    route = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [
        ("AllTraffic", 1.0, {"first": models["a"].url, "second": models["b"].url})], mode="Direct"))
    runtime = _runtime(rt)
    assert runtime.invoke_endpoint(EndpointName=route.name, Body=b"x", TargetContainerHostname="second"
                                   )["Body"].read() == b"b(x)"
    assert runtime.invoke_endpoint(EndpointName=route.name, Body=b"x", TargetContainerHostname="first"
                                   )["Body"].read() == b"a(x)"
    with pytest.raises(ClientError) as missing:
        runtime.invoke_endpoint(EndpointName=route.name, Body=b"x")
    assert _error(missing)[:2] == (400, "ValidationError") and "TargetContainerHostname" in _error(missing)[2]
    with pytest.raises(ClientError) as unknown:
        runtime.invoke_endpoint(EndpointName=route.name, Body=b"x", TargetContainerHostname="third")
    assert _error(unknown)[:2] == (400, "ValidationError") and "third" in _error(unknown)[2]
    single = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("v", 1.0, {"c": models["a"].url})]))
    with pytest.raises(ClientError) as not_direct:
        runtime.invoke_endpoint(EndpointName=single.name, Body=b"x", TargetContainerHostname="c")
    assert _error(not_direct)[:2] == (400, "ValidationError")


def test_variants_by_weight_and_target_variant(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    route = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [
        ("Blue", 1.0, {"c": models["a"].url}), ("Green", 0.0, {"c": models["b"].url})]))
    runtime = _runtime(rt)
    variants = {runtime.invoke_endpoint(EndpointName=route.name, Body=b"x")["InvokedProductionVariant"]
                for _ in range(20)}
    assert variants == {"Blue"}  # Green weighs nothing
    out = runtime.invoke_endpoint(EndpointName=route.name, Body=b"x", TargetVariant="Green")
    assert (out["InvokedProductionVariant"], out["Body"].read()) == ("Green", b"b(x)")
    with pytest.raises(ClientError) as unknown:
        runtime.invoke_endpoint(EndpointName=route.name, Body=b"x", TargetVariant="Purple")
    assert _error(unknown)[:2] == (400, "ValidationError")
    even = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [
        ("Blue", 1.0, {"c": models["a"].url}), ("Green", 1.0, {"c": models["b"].url})]))
    seen = [runtime.invoke_endpoint(EndpointName=even.name, Body=b"x")["InvokedProductionVariant"] for _ in range(60)]
    assert 10 <= seen.count("Blue") <= 50  # both get traffic (p of failing < 1e-6)


def test_round_robin_across_instances(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    route = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [
        ("AllTraffic", 1.0, [{"c": models["a"].url}, {"c": models["b"].url}])]))
    runtime = _runtime(rt)
    bodies = [runtime.invoke_endpoint(EndpointName=route.name, Body=b"x")["Body"].read() for _ in range(6)]
    assert bodies.count(b"a(x)") == 3 and bodies.count(b"b(x)") == 3
    assert all(bodies[i] != bodies[i + 1] for i in range(5))


# ----------------------------------------------------------------------------------- errors
def test_endpoint_not_found_and_not_in_service(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    runtime = _runtime(rt)
    name = _name("missing")
    with pytest.raises(ClientError) as missing:
        runtime.invoke_endpoint(EndpointName=name, Body=b"x")
    assert _error(missing) == (400, "ValidationError", f"Endpoint {name} of account {rt.account_id('dev')} not found.")
    creating = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("v", 1.0, {"c": models["a"].url})],
                                           status="Creating"))
    with pytest.raises(ClientError) as not_ready:
        runtime.invoke_endpoint(EndpointName=creating.name, Body=b"x")
    assert _error(not_ready)[:2] == (400, "ValidationError")


@pytest.mark.parametrize("model,status", [("fail400", 400), ("fail500", 500)])
def test_model_error(rt: InProcessServer, models: dict[str, ModelProcess], model: str, status: int) -> None:
    route = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("v", 1.0, {"primary": models[model].url})]))
    with pytest.raises(ClientError) as failed:
        _runtime(rt).invoke_endpoint(EndpointName=route.name, Body=b"x")
    response = failed.value.response
    assert _error(failed)[:2] == (424, "ModelError")
    kind = "client" if status == 400 else "server"
    assert response["Error"]["Message"].startswith(
        f'Received {kind} error ({status}) from primary with message "failure from {model}". See https://')
    assert response["OriginalStatusCode"] == status
    assert response["OriginalMessage"] == f"failure from {model}"
    assert response["LogStreamArn"] == (f"arn:aws:logs:{REGION}:{rt.account_id('dev')}:log-group:"
                                        f"/aws/sagemaker/Endpoints/{route.name}")


def test_model_timeout_and_unreachable_container(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    provider = rt.state.providers["sagemaker-runtime"]
    route = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("v", 1.0, {"primary": models["slow"].url})]))
    provider.model_timeout = 1.0  # type: ignore[attr-defined]
    try:
        with pytest.raises(ClientError) as slow:
            _runtime(rt).invoke_endpoint(EndpointName=route.name, Body=b"x")
    finally:
        provider.model_timeout = 60.0  # type: ignore[attr-defined]
    assert _error(slow)[:2] == (424, "ModelError")
    assert _error(slow)[2].startswith('Received server error (0) from primary with message "Your invocation timed '
                                      'out while waiting for a response from container primary.')
    from stratum_testing import free_port

    dead = _publish(rt, endpoint_route(rt.account_id("dev"), _name(),
                                       [("v", 1.0, {"primary": f"http://127.0.0.1:{free_port()}"})]))
    with pytest.raises(ClientError) as unreachable:
        _runtime(rt).invoke_endpoint(EndpointName=dead.name, Body=b"x")
    assert _error(unreachable)[:2] == (424, "ModelError")


def test_payload_limit_and_unsupported_options(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    route = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("v", 1.0, {"c": models["a"].url})]))
    runtime = _runtime(rt)
    at_limit = runtime.invoke_endpoint(EndpointName=route.name, Body=b"x" * (6 * 1024 * 1024))
    assert len(at_limit["Body"].read()) == 6 * 1024 * 1024 + 3
    with pytest.raises(ClientError) as too_large:
        runtime.invoke_endpoint(EndpointName=route.name, Body=b"x" * (6 * 1024 * 1024 + 1))
    assert _error(too_large) == (413, "413", "HTTP content length exceeded 6291456 bytes.")
    with pytest.raises(ClientError) as explain:
        runtime.invoke_endpoint(EndpointName=route.name, Body=b"x", EnableExplanations="`true`")
    assert _error(explain)[:2] == (400, "ValidationError") and "ClarifyExplainerConfig" in _error(explain)[2]
    with pytest.raises(ClientError) as target_model:
        runtime.invoke_endpoint(EndpointName=route.name, Body=b"x", TargetModel="model-a.tar.gz")
    assert _error(target_model) == (400, "ValidationError", f"Endpoint {route.name} is not a multi-model endpoint "
                                                            "and does not support target model header.")


def test_serverless_max_concurrency_throttles_the_invocations_beyond_it(rt: InProcessServer,
                                                                        models: dict[str, ModelProcess]) -> None:
    """MaxConcurrency 2 on a variant whose model takes 3 s: of 5 concurrent clients, 2 are answered
    and 3 get ThrottlingException at once; once those 2 are done the variant serves again."""
    import dataclasses
    from concurrent.futures import ThreadPoolExecutor

    route = endpoint_route(rt.account_id("dev"), _name(), [("Serverless", 1.0, {"c": models["slow"].url})])
    route = _publish(rt, dataclasses.replace(route, variants=tuple(
        dataclasses.replace(v, max_concurrency=2) for v in route.variants)))

    ak, sk = rt.creds("dev")
    # One attempt: botocore retries a ThrottlingException otherwise.
    config = Config(retries={"total_max_attempts": 1, "mode": "standard"})

    def call(_: int) -> tuple[str, float]:
        runtime = boto3.client("sagemaker-runtime", region_name=REGION, endpoint_url=rt.endpoint_url,
                               aws_access_key_id=ak, aws_secret_access_key=sk, config=config)
        started = time.monotonic()
        try:
            runtime.invoke_endpoint(EndpointName=route.name, Body=b"x")["Body"].read()
            return "ok", time.monotonic() - started
        except ClientError as exc:
            response = exc.response
            status, code, message = (response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"],
                                     response["Error"]["Message"])
            assert (status, code) == (400, "ThrottlingException") and "MaxConcurrency (2)" in message, message
            return code, time.monotonic() - started

    with ThreadPoolExecutor(5) as pool:
        outcomes = list(pool.map(call, range(5)))
    assert sorted(o for o, _ in outcomes) == ["ThrottlingException"] * 3 + ["ok"] * 2
    assert all(seconds < 2.5 for o, seconds in outcomes if o != "ok")  # refused at once, not queued
    assert all(seconds >= 2.9 for o, seconds in outcomes if o == "ok")
    assert call(0)[0] == "ok"  # the slots were given back


# ----------------------------------------------------------------------------------- authorization
def test_target_container_hostname_condition(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    route = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [
        ("AllTraffic", 1.0, {"allowed": models["a"].url, "secret": models["b"].url})], mode="Direct"))
    creds, _ = limited_user(rt, {"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": route.arn,
                                 "Condition": {"StringEquals": {"sagemaker:TargetContainerHostname": "allowed"}}},
                            prefix="rt")
    runtime = _runtime(rt, creds=creds)
    assert runtime.invoke_endpoint(EndpointName=route.name, Body=b"x", TargetContainerHostname="allowed"
                                   )["Body"].read() == b"a(x)"
    with pytest.raises(ClientError) as denied:
        runtime.invoke_endpoint(EndpointName=route.name, Body=b"x", TargetContainerHostname="secret")
    assert _error(denied)[1] == "AccessDeniedException"
    deny, _ = limited_user(rt, {"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": "*"},
                           {"Effect": "Deny", "Action": "sagemaker:InvokeEndpoint", "Resource": "*",
                            "Condition": {"StringLike": {"sagemaker:TargetContainerHostname": "sec*"}}}, prefix="rt")
    runtime = _runtime(rt, creds=deny)
    assert runtime.invoke_endpoint(EndpointName=route.name, Body=b"x", TargetContainerHostname="allowed")
    with pytest.raises(ClientError) as denied_again:
        runtime.invoke_endpoint(EndpointName=route.name, Body=b"x", TargetContainerHostname="secret")
    assert _error(denied_again)[1] == "AccessDeniedException"


def test_resource_tag_condition_and_missing_permission(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    prod = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("v", 1.0, {"c": models["a"].url})],
                                       tags=({"Key": "stage", "Value": "prod"},)))
    dev = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("v", 1.0, {"c": models["a"].url})],
                                      tags=({"Key": "stage", "Value": "dev"},)))
    creds, _ = limited_user(rt, {"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": "*",
                                 "Condition": {"StringEquals": {"aws:ResourceTag/stage": "dev"}}}, prefix="rt")
    runtime = _runtime(rt, creds=creds)
    assert runtime.invoke_endpoint(EndpointName=dev.name, Body=b"x")["Body"].read() == b"a(x)"
    with pytest.raises(ClientError) as denied:
        runtime.invoke_endpoint(EndpointName=prod.name, Body=b"x")
    assert _error(denied)[1] == "AccessDeniedException"
    nothing, _ = limited_user(rt, {"Effect": "Allow", "Action": "sagemaker:ListEndpoints", "Resource": "*"},
                              prefix="rt")
    with pytest.raises(ClientError) as no_permission:  # a missing endpoint is not revealed either
        _runtime(rt, creds=nothing).invoke_endpoint(EndpointName=_name("missing"), Body=b"x")
    assert _error(no_permission)[1] == "AccessDeniedException"


def test_cross_account_only_through_an_assumed_role(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    owner, caller = rt.account_id("prod"), rt.account_id("dev")
    route = _publish(rt, endpoint_route(owner, _name(), [("v", 1.0, {"c": models["a"].url})]))
    with pytest.raises(ClientError) as elsewhere:  # an endpoint name is looked up in the caller's account
        _runtime(rt, "dev").invoke_endpoint(EndpointName=route.name, Body=b"x")
    assert _error(elsewhere) == (400, "ValidationError", f"Endpoint {route.name} of account {caller} not found.")
    iam = client(rt, "iam", account="prod")
    role = f"invoker-{uuid.uuid4().hex[:8]}"
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{caller}:root"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="invoke", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint",
                                                "Resource": route.arn}]}))
    assumed = client(rt, "sts", account="dev").assume_role(RoleArn=role_arn, RoleSessionName="invoker")["Credentials"]
    runtime = _runtime(rt, creds={"aws_access_key_id": assumed["AccessKeyId"],
                                  "aws_secret_access_key": assumed["SecretAccessKey"],
                                  "aws_session_token": assumed["SessionToken"]})
    out = runtime.invoke_endpoint(EndpointName=route.name, Body=b"x")
    assert out["Body"].read() == b"a(x)"


# ----------------------------------------------------------------------------------- metrics
def test_invocation_metrics_in_cloudwatch_and_prometheus(rt: InProcessServer,
                                                         models: dict[str, ModelProcess]) -> None:
    route = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [
        ("AllTraffic", 1.0, {"c": models["a"].url}), ("Failing", 0.0, {"c": models["fail400"].url})]))
    runtime = _runtime(rt)
    for _ in range(5):
        runtime.invoke_endpoint(EndpointName=route.name, Body=b"x")
    for _ in range(2):
        with pytest.raises(ClientError):
            runtime.invoke_endpoint(EndpointName=route.name, Body=b"x", TargetVariant="Failing")
    rt.state.providers["sagemaker-runtime"].metrics.flush()  # type: ignore[attr-defined]
    cw = client(rt, "cloudwatch")
    now = time.time()

    def stat(metric: str, variant: str, statistic: str = "Sum") -> float:
        points = cw.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName=metric, StartTime=now - 600, EndTime=now + 120, Period=60,
            Statistics=[statistic], Dimensions=[{"Name": "EndpointName", "Value": route.name},
                                                {"Name": "VariantName", "Value": variant}])["Datapoints"]
        return sum(p[statistic] for p in points)

    assert stat("Invocations", "AllTraffic") == 5
    assert stat("Invocations", "Failing") == 2
    assert stat("InvocationModelErrors", "Failing") == 2
    assert stat("Invocation4XXErrors", "Failing") == 2
    assert stat("Invocation5XXErrors", "AllTraffic") == 0
    assert stat("ModelLatency", "AllTraffic", "SampleCount") == 5
    assert 0 < stat("ModelLatency", "AllTraffic", "Maximum") < 5_000_000  # microseconds
    assert stat("OverheadLatency", "AllTraffic", "SampleCount") == 5
    names = {m["MetricName"] for m in cw.list_metrics(Namespace="AWS/SageMaker", Dimensions=[
        {"Name": "EndpointName", "Value": route.name}])["Metrics"]}
    assert {"Invocations", "ModelLatency", "OverheadLatency", "InvocationModelErrors"} <= names
    with urllib.request.urlopen(f"{rt.endpoint_url}/metrics") as r:
        text = r.read().decode()
    from prometheus_client.parser import text_string_to_metric_families

    samples = {(s.labels["endpoint"], s.labels["variant"], s.labels["metric"]): s.value
               for family in text_string_to_metric_families(text) if family.name == "stratum_endpoint_invocations"
               for s in family.samples}
    assert samples[(route.name, "AllTraffic", "Invocations")] == 5
    assert samples[(route.name, "Failing", "InvocationModelErrors")] == 2
    assert samples[(route.name, "Failing", "Invocation4XXErrors")] == 2


# ----------------------------------------------------------------------------------- data capture
def _bucket(server: InProcessServer) -> tuple[Any, str]:
    s3 = client(server, "s3")
    bucket = f"sagemaker-capture-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    return s3, bucket


def _objects(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents") or []]


def test_data_capture_writes_model_monitor_records(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    s3, bucket = _bucket(rt)
    role = sagemaker_role(rt, "capture")
    config = {"EnableCapture": True, "InitialSamplingPercentage": 100,
              "DestinationS3Uri": f"s3://{bucket}/capture",
              "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
              "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]}}
    route = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("AllTraffic", 1.0, {"c": models["a"].url})],
                                        role=role, data_capture=config))
    runtime = _runtime(rt)
    runtime.invoke_endpoint(EndpointName=route.name, Body=b"1,2", ContentType="text/csv", InferenceId="first")
    runtime.invoke_endpoint(EndpointName=route.name, Body=b"\x00\x01", ContentType="application/x-npy")
    rt.state.providers["sagemaker-runtime"].capture.flush()  # type: ignore[attr-defined]
    # One file, or two when the server's own flush came between the calls.
    keys = sorted(_objects(s3, bucket, f"capture/{route.name}/AllTraffic/"))
    assert 1 <= len(keys) <= 2 and all(key.endswith(".jsonl") for key in keys)
    parts = keys[0].split("/")
    assert len(parts) == 8 and time.strftime("%Y", time.gmtime()) == parts[3]  # .../yyyy/mm/dd/hh/file
    lines = [json.loads(line) for key in keys
             for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()]
    assert len(lines) == 2
    first, second = sorted(lines, key=lambda line: line["eventMetadata"]["inferenceTime"])
    assert first["eventVersion"] == "0"
    assert first["captureData"]["endpointInput"] == {"observedContentType": "text/csv", "mode": "INPUT",
                                                     "data": "1,2", "encoding": "CSV"}
    assert first["captureData"]["endpointOutput"] == {"observedContentType": "text/csv", "mode": "OUTPUT",
                                                      "data": "a(1,2)", "encoding": "CSV"}
    assert first["eventMetadata"]["inferenceId"] == "first"
    assert first["eventMetadata"]["eventId"] and first["eventMetadata"]["inferenceTime"].endswith("Z")
    assert second["captureData"]["endpointInput"]["encoding"] == "BASE64"
    assert second["captureData"]["endpointInput"]["data"] == "AAE="


def test_data_capture_sampling_and_input_only(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    s3, bucket = _bucket(rt)
    role = sagemaker_role(rt, "capture")
    off = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("v", 1.0, {"c": models["a"].url})], role=role,
                                      data_capture={"EnableCapture": True, "InitialSamplingPercentage": 0,
                                                    "DestinationS3Uri": f"s3://{bucket}/c",
                                                    "CaptureOptions": [{"CaptureMode": "Input"}]}))
    # This route names its model (as the control plane's do): the role is the model's ExecutionRoleArn.
    model = _name("model")
    client(rt, "sagemaker").create_model(ModelName=model, ExecutionRoleArn=role, PrimaryContainer={
        "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"})
    only_input = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("v", 1.0, {"c": models["a"].url})],
                                             model_name=model, data_capture={
                                                 "EnableCapture": True, "InitialSamplingPercentage": 100,
                                                 "DestinationS3Uri": f"s3://{bucket}/c",
                                                 "CaptureOptions": [{"CaptureMode": "Input"}]}))
    runtime = _runtime(rt)
    for _ in range(5):
        runtime.invoke_endpoint(EndpointName=off.name, Body=b"{}", ContentType="application/json")
    runtime.invoke_endpoint(EndpointName=only_input.name, Body=b"{\"a\": 1}", ContentType="application/json")
    rt.state.providers["sagemaker-runtime"].capture.flush()  # type: ignore[attr-defined]
    assert _objects(s3, bucket, f"c/{off.name}/") == []
    keys = _objects(s3, bucket, f"c/{only_input.name}/v/")
    record = json.loads(s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read())
    assert record["captureData"] == {"endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                                       "data": "{\"a\": 1}", "encoding": "JSON"}}


def test_data_capture_encrypted_with_the_configured_key(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    s3, bucket = _bucket(rt)
    role = sagemaker_role(rt, "capture")
    key = client(rt, "kms").create_key()["KeyMetadata"]["Arn"]
    route = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("v", 1.0, {"c": models["a"].url})], role=role,
                                        data_capture={"EnableCapture": True, "InitialSamplingPercentage": 100,
                                                      "DestinationS3Uri": f"s3://{bucket}/k", "KmsKeyId": key,
                                                      "CaptureOptions": [{"CaptureMode": "Output"}]}))
    provider = rt.state.providers["sagemaker-runtime"]
    _runtime(rt).invoke_endpoint(EndpointName=route.name, Body=b"1", ContentType="text/csv")
    provider.capture.flush()  # type: ignore[attr-defined]
    assert _objects(s3, bucket, f"k/{route.name}/") == []  # the role may not use the key: nothing written
    client(rt, "iam").put_role_policy(RoleName=role.rsplit("/", 1)[1], PolicyName="capture-key", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                                                 "Resource": key}]}))
    _runtime(rt).invoke_endpoint(EndpointName=route.name, Body=b"1", ContentType="text/csv")
    provider.capture.flush()  # type: ignore[attr-defined]
    [found] = _objects(s3, bucket, f"k/{route.name}/v/")
    head = s3.head_object(Bucket=bucket, Key=found)
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key


# ----------------------------------------------------------------------------------- asynchronous
def _wait_object(s3: Any, bucket: str, key: str, timeout: float = 30) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except ClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_invoke_endpoint_async(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    s3, bucket = _bucket(rt)
    role = sagemaker_role(rt, "async")
    async_config = {"OutputConfig": {"S3OutputPath": f"s3://{bucket}/out",
                                     "S3FailurePath": f"s3://{bucket}/failed"}}
    route = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("v", 1.0, {"c": models["a"].url})],
                                        role=role, async_config=async_config))
    s3.put_object(Bucket=bucket, Key="in/request.csv", Body=b"5,6")
    runtime = _runtime(rt)
    out = runtime.invoke_endpoint_async(EndpointName=route.name, InputLocation=f"s3://{bucket}/in/request.csv",
                                        ContentType="text/csv", InferenceId="job-1")
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert out["InferenceId"] == "job-1"
    assert out["OutputLocation"] == f"s3://{bucket}/out/job-1.out"
    assert out["FailureLocation"] == f"s3://{bucket}/failed/job-1-error.out"
    assert _wait_object(s3, bucket, "out/job-1.out") == b"a(5,6)"
    inline = runtime.invoke_endpoint_async(EndpointName=route.name, Body=b"7,8", ContentType="text/csv",
                                           InferenceId="job-inline")
    assert _wait_object(s3, bucket, "out/job-inline.out") == b"a(7,8)" and inline["InferenceId"] == "job-inline"
    with pytest.raises(ClientError) as both:
        runtime.invoke_endpoint_async(EndpointName=route.name, Body=b"1", InputLocation=f"s3://{bucket}/in/x")
    assert _error(both)[:2] == (400, "ValidationError")
    generated = runtime.invoke_endpoint_async(EndpointName=route.name, InputLocation=f"s3://{bucket}/in/request.csv")
    assert generated["InferenceId"] and generated["OutputLocation"].endswith(f"/{generated['InferenceId']}.out")

    failing = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("v", 1.0, {"c": models["fail500"].url})],
                                          role=role, async_config=async_config))
    out = runtime.invoke_endpoint_async(EndpointName=failing.name, InputLocation=f"s3://{bucket}/in/request.csv",
                                        InferenceId="job-2")
    failure = _wait_object(s3, bucket, "failed/job-2-error.out").decode()
    assert "Received server error (500)" in failure and "failure from fail500" in failure
    missing_input = runtime.invoke_endpoint_async(EndpointName=route.name, InputLocation=f"s3://{bucket}/in/none",
                                                  InferenceId="job-3")
    assert missing_input["FailureLocation"].endswith("job-3-error.out")
    assert "NoSuchKey" in _wait_object(s3, bucket, "failed/job-3-error.out").decode()

    sync_only = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("v", 1.0, {"c": models["a"].url})],
                                            role=role))
    with pytest.raises(ClientError) as not_async:
        runtime.invoke_endpoint_async(EndpointName=sync_only.name, InputLocation=f"s3://{bucket}/in/request.csv")
    assert _error(not_async)[:2] == (400, "ValidationError")


# ----------------------------------------------------------------------------------- control plane
def test_invoke_endpoint_created_through_the_control_plane(rt: InProcessServer, tmp_path: Path) -> None:
    """CreateModel / CreateEndpointConfig / CreateEndpoint + the waiter, then InvokeEndpoint."""
    sm = client(rt, "sagemaker")
    s3, bucket = _bucket(rt)
    role = sagemaker_role(rt, "hosting")
    script = ("def model_fn(d):\n    return None\n"
              "def transform_fn(model, body, content_type, accept):\n    return body[::-1], 'text/plain'\n")
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = script.encode()
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=bucket, Key="model.tar.gz", Body=buffer.getvalue())
    name = _name("cp")
    image = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    sm.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer={
        "Image": image, "ModelDataUrl": f"s3://{bucket}/model.tar.gz",
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    try:
        out = _runtime(rt).invoke_endpoint(EndpointName=name, Body=b"abc", ContentType="text/plain")
        assert out["Body"].read() == b"cba"
        assert out["InvokedProductionVariant"] == "AllTraffic"
    finally:
        sm.delete_endpoint(EndpointName=name)


def test_sdk_predictor_against_a_published_route(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    """The SageMaker SDK's Predictor (what model.deploy() returns) speaks to InvokeEndpoint."""
    import boto3
    import sagemaker
    from sagemaker.deserializers import StringDeserializer
    from sagemaker.serializers import CSVSerializer

    route = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("AllTraffic", 1.0, {"c": models["a"].url})]))
    ak, sk = rt.creds("dev")
    session = boto3.Session(aws_access_key_id=ak, aws_secret_access_key=sk, region_name=REGION)
    runtime = session.client("sagemaker-runtime", endpoint_url=rt.endpoint_url,
                             config=Config(retries={"max_attempts": 1}))
    sm_session = sagemaker.Session(boto_session=session, sagemaker_runtime_client=runtime,
                                   sagemaker_client=session.client("sagemaker", endpoint_url=rt.endpoint_url))
    predictor = sagemaker.Predictor(route.name, sagemaker_session=sm_session, serializer=CSVSerializer(),
                                    deserializer=StringDeserializer())
    assert predictor.predict([1, 2, 3]) == "a(1,2,3)"


# ------------------------------------------------------------------------------- response streaming
def test_response_stream_arrives_in_parts(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    route = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("AllTraffic", 1.0,
                                                                          {"c1": models["stream"].url})]))
    started = time.monotonic()
    out = _runtime(rt).invoke_endpoint_with_response_stream(EndpointName=route.name, Body=b"one two three",
                                                            ContentType="text/plain")
    assert out["InvokedProductionVariant"] == "AllTraffic"
    assert out["ContentType"] == "text/plain"
    parts, arrived = [], []
    for event in out["Body"]:
        parts.append(event["PayloadPart"]["Bytes"])
        arrived.append(time.monotonic() - started)
    assert parts == [b"stream:one;", b"stream:two;", b"stream:three;"]
    # Each part as the container sent it (0.2 s apart), not all at the end.
    assert arrived[1] - arrived[0] > 0.1 and arrived[2] - arrived[1] > 0.1, arrived


def test_response_stream_errors(rt: InProcessServer, models: dict[str, ModelProcess]) -> None:
    runtime = _runtime(rt)
    broken = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("v", 1.0, {"c1": models["stream"].url})]))
    out = runtime.invoke_endpoint_with_response_stream(EndpointName=broken.name, Body=b"one break")
    with pytest.raises(ClientError) as exc:
        for _event in out["Body"]:
            pass
    assert exc.value.response["Error"]["Code"] == "ModelStreamError"
    failing = _publish(rt, endpoint_route(rt.account_id("dev"), _name(), [("v", 1.0, {"c1": models["fail500"].url})]))
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint_with_response_stream(EndpointName=failing.name, Body=b"x")
    assert _error(exc)[:2] == (424, "ModelError")
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint_with_response_stream(EndpointName="nope", Body=b"x")
    assert _error(exc)[:2] == (400, "ValidationError")
