"""Hostile single requests that used to be 500s (or unparseable answers): each gets the service's
4xx error, in the service's own format, which botocore's parser for that protocol reads."""

from __future__ import annotations

import json
import socket
import uuid
from typing import Any

import boto3
import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.parsers import create_parser
from stratum_testing import REGION, StratumServer

_HTTP = urllib3.PoolManager()


def _name(prefix: str = "h") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _signed(server: StratumServer, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
            signing_name: str = "sagemaker") -> urllib3.BaseHTTPResponse:
    """A request signed with botocore's SigV4 signer: the wire exactly as written, no client checks."""
    ak, sk = server.creds("dev")
    request = AWSRequest(method=method, url=server.endpoint_url + path, data=body, headers=headers or {})
    SigV4Auth(Credentials(ak, sk), signing_name, REGION).add_auth(request)
    prepared = request.prepare()
    return _HTTP.request(method, prepared.url, body=prepared.body, headers=dict(prepared.headers), retries=False,
                         timeout=30)


def _json_call(server: StratumServer, target: str, body: bytes | str) -> urllib3.BaseHTTPResponse:
    data = body if isinstance(body, bytes) else body.encode()
    return _signed(server, "POST", "/", data, {"X-Amz-Target": target,
                                               "Content-Type": "application/x-amz-json-1.1"})


def _parsed_error(response: urllib3.BaseHTTPResponse, protocol: str) -> dict[str, Any]:
    """The error as botocore reads it (ResponseParserError if the body is not the protocol's)."""
    parsed = create_parser(protocol).parse(
        {"status_code": response.status, "headers": dict(response.headers), "body": response.data}, None)
    return dict(parsed["Error"])


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


# ---------------------------------------------------------------------------------------- JSON text
@pytest.mark.parametrize("body", [
    '{"PipelineName": "\\ud800"}',  # an escaped lone surrogate (what json.dumps writes for one)
    b'{"PipelineName": "\xed\xa0\x80"}',  # the surrogate's bytes: not UTF-8
    '{"PipelineName": "a", "x": ' + "[" * 2000 + "]" * 2000 + "}",
    "[" * 100_000 + "]" * 100_000,
    '{"PipelineName": NaN}',
])
def test_unreadable_json_is_a_serialization_error(server: StratumServer, body: str | bytes) -> None:
    response = _json_call(server, "SageMaker.DescribePipeline", body)
    assert response.status == 400
    assert _parsed_error(response, "json")["Code"] == "SerializationException"


def test_boto3_sending_a_lone_surrogate_gets_a_client_error(server: StratumServer) -> None:
    # botocore writes the string with json.dumps, so "\ud800" goes out as an escape.
    with pytest.raises(ClientError) as exc:
        server.client("sagemaker").describe_pipeline(PipelineName="\ud800")
    assert _code(exc) == "SerializationException"


@pytest.mark.parametrize("value", ["1e20", '"inf"', '"9999-12-31T23:59:59-12:00"', "-1e20", '"NaN"', "1e400"])
def test_out_of_range_timestamps_are_refused(server: StratumServer, value: str) -> None:
    for target, member in [("SageMaker.ListPipelines", "CreatedAfter"),
                           ("SageMaker.ListTrainingJobs", "CreationTimeBefore"),
                           ("SageMaker.ListPipelineExecutions", "CreatedBefore")]:
        body = f'{{"PipelineName": "p", "{member}": {value}}}'
        response = _json_call(server, target, body)
        assert response.status == 400, (target, response.data)
        assert _parsed_error(response, "json")["Code"] == "SerializationException"
    entry = f'{{"Source": "a", "DetailType": "b", "Detail": "{{}}", "Time": {value}}}'
    response = _signed(server, "POST", "/", f'{{"Entries": [{entry}]}}'.encode(),
                       {"X-Amz-Target": "AWSEvents.PutEvents", "Content-Type": "application/x-amz-json-1.1"},
                       signing_name="events")
    assert response.status == 400 and _parsed_error(response, "json")["Code"] == "SerializationException"


def test_an_s3_timestamp_header_out_of_range_is_refused(server: StratumServer) -> None:
    s3 = server.client("s3")
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    response = _signed(server, "GET", f"/{bucket}/k", headers={"If-Modified-Since": "Fri, 31 Dec 9999 23:59:59 -1200"},
                       signing_name="s3")
    assert response.status == 400
    assert _parsed_error(response, "rest-xml")["Code"] in ("InvalidArgument", "InvalidParameterValue")


def test_simulate_custom_policy_date_context_out_of_range(server: StratumServer) -> None:
    iam = server.client("iam")
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    for value in ("1e20", "99999999999999", "-99999999999999"):
        with pytest.raises(ClientError) as exc:
            iam.simulate_custom_policy(PolicyInputList=[policy], ActionNames=["s3:GetObject"], ContextEntries=[
                {"ContextKeyName": "aws:CurrentTime", "ContextKeyValues": [value], "ContextKeyType": "date"}])
        assert _code(exc) == "InvalidInput"


def test_a_date_header_beyond_year_9999_in_utc(server: StratumServer) -> None:
    ak, _ = server.creds("dev")
    auth = (f"AWS4-HMAC-SHA256 Credential={ak}/20261207/{REGION}/s3/aws4_request, SignedHeaders=date;host, "
            f"Signature={'0' * 64}")
    response = _HTTP.request("GET", server.endpoint_url + "/", headers={
        "Authorization": auth, "Date": "Fri, 31 Dec 9999 23:59:59 -1200"}, retries=False)
    assert response.status == 400
    assert _parsed_error(response, "rest-xml")["Code"] == "AuthorizationHeaderMalformed"


# ------------------------------------------------------------------------------- policy documents
def _deep_policy(depth: int = 5000) -> str:
    return '{"Version": "2012-10-17", "Statement": ' + "[" * depth + "]" * depth + "}"


def test_policies_nested_5000_deep_are_malformed_in_every_api(server: StratumServer) -> None:
    deep = _deep_policy()
    iam, s3, kms, sm = (server.client(s) for s in ("iam", "s3", "kms", "sagemaker"))
    events, sts = server.client("events"), server.client("sts")
    account = server.account_id("dev")
    user, role, bucket = _name("u"), _name("r"), _name()
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}]})
    allow = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    iam.create_user(UserName=user)
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
    iam.put_role_policy(RoleName=role, PolicyName="all", PolicyDocument=allow)
    policy_arn = iam.create_policy(PolicyName=_name("p"), PolicyDocument=allow)["Policy"]["Arn"]
    s3.create_bucket(Bucket=bucket)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    group_name = _name("mpg")
    sm.create_model_package_group(ModelPackageGroupName=group_name)
    calls = {
        "iam:CreatePolicy": lambda: iam.create_policy(PolicyName=_name("p"), PolicyDocument=deep),
        "iam:CreatePolicyVersion": lambda: iam.create_policy_version(PolicyArn=policy_arn, PolicyDocument=deep),
        "iam:PutUserPolicy": lambda: iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=deep),
        "iam:PutRolePolicy": lambda: iam.put_role_policy(RoleName=role, PolicyName="p", PolicyDocument=deep),
        "iam:CreateRole": lambda: iam.create_role(RoleName=_name("r"), AssumeRolePolicyDocument=deep),
        "iam:UpdateAssumeRolePolicy": lambda: iam.update_assume_role_policy(RoleName=role, PolicyDocument=deep),
        "iam:SimulateCustomPolicy": lambda: iam.simulate_custom_policy(PolicyInputList=[deep],
                                                                         ActionNames=["s3:GetObject"]),
        "s3:PutBucketPolicy": lambda: s3.put_bucket_policy(Bucket=bucket, Policy=deep),
        "kms:PutKeyPolicy": lambda: kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=deep),
        "kms:CreateKey": lambda: kms.create_key(Policy=deep),
        "sagemaker:PutModelPackageGroupPolicy": lambda: sm.put_model_package_group_policy(
            ModelPackageGroupName=group_name, ResourcePolicy=deep),
        "events:PutPermission": lambda: events.put_permission(Policy=deep),
        "sts:AssumeRole": lambda: sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role}",
                                                  RoleSessionName="deep", Policy=deep),
    }
    for name, call in calls.items():
        with pytest.raises(ClientError) as exc:
            call()
        status = exc.value.response["ResponseMetadata"]["HTTPStatusCode"]
        assert 400 <= status < 500, (name, exc.value.response["Error"])


# ----------------------------------------------------------------------------------- S3 headers
@pytest.mark.parametrize("value", ["\u2603", "text/plain\r\nX-Injected: yes", "a\nb", "a\x00b"])
def test_s3_response_header_overrides_that_cannot_be_headers(server: StratumServer, value: str) -> None:
    s3 = server.client("s3")
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    # A presigned URL (botocore percent-encodes the value: %E2%98%83, %0D%0A) and a signed request.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k",
                                                          "ResponseContentType": value})
    response = _HTTP.request("GET", url, retries=False)
    assert response.status in (400, 403)  # 403: the SigV2 form's signature over a CR LF does not match
    assert "x-injected" not in response.headers
    assert _parsed_error(response, "rest-xml")["Code"] in ("InvalidArgument", "SignatureDoesNotMatch")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", ResponseContentType=value)
    assert _code(exc) == "InvalidArgument"
    assert s3.get_object(Bucket=bucket, Key="k", ResponseContentType="text/plain; charset=\xe9")["ContentType"]


# ----------------------------------------------------------------------------- pipeline definitions
def _condition(depth: int) -> dict[str, Any]:
    cond: dict[str, Any] = {"Type": "Equals", "LeftValue": 1, "RightValue": 1}
    for _ in range(depth):
        cond = {"Type": "Not", "Expression": cond}
    return cond


def _join(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"Std:Join": {"On": ",", "Values": [value]}}
    return value


def _condition_pipeline(conditions: list[Any], parameters: list[Any] | None = None) -> str:
    return json.dumps({"Version": "2020-12-01", "Parameters": parameters or [], "Steps": [
        {"Name": "c", "Type": "Condition",
         "Arguments": {"Conditions": conditions, "IfSteps": [], "ElseSteps": []}}]})


@pytest.mark.parametrize("definition", [
    _condition_pipeline([_condition(200)]),
    _condition_pipeline([{"Type": "Equals", "LeftValue": _join(200), "RightValue": "x"}]),
    _condition_pipeline([{"Type": "Equals", "LeftValue": {"Get": "Parameters.p"}, "RightValue": "x"}],
                        [{"Name": "p", "Type": "String", "DefaultValue": "@SURROGATE@"}]
                        ).replace("@SURROGATE@", "\\ud800"),
], ids=["condition-200-deep", "join-200-deep", "lone-surrogate-default"])
def test_definitions_no_execution_could_start_are_refused_at_create(server: StratumServer, definition: str) -> None:
    sm = server.client("sagemaker")
    role = f"arn:aws:iam::{server.account_id('dev')}:role/pipeline"
    with pytest.raises(ClientError) as exc:
        sm.create_pipeline(PipelineName=_name("p"), PipelineDefinition=definition, RoleArn=role)
    assert _code(exc) == "ValidationException"


# ---------------------------------------------------------------------------------------- NUL bytes
def test_nul_bytes_are_refused_alike_on_every_backend(server: StratumServer) -> None:
    s3, iam, ram = server.client("s3"), server.client("iam"), server.client("ram")
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    for call in (lambda: s3.put_object(Bucket=bucket, Key="a\x00b", Body=b"x"),
                 lambda: s3.get_object(Bucket=bucket, Key="a\x00b"),
                 lambda: s3.copy_object(Bucket=bucket, Key="c", CopySource=f"{bucket}/a\x00b")):
        with pytest.raises(ClientError) as exc:
            call()
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # botocore checks bucket names before sending; without that check the name goes out as %00.
    from botocore.handlers import validate_bucket_name

    raw_s3 = server.client("s3")
    raw_s3.meta.events.unregister("before-parameter-build.s3", validate_bucket_name)
    for call in (lambda: raw_s3.create_bucket(Bucket=f"{bucket}\x00x"),
                 lambda: raw_s3.put_object(Bucket=f"{bucket}\x00x", Key="k", Body=b"x"),
                 lambda: raw_s3.list_objects_v2(Bucket=f"{bucket}\x00x")):
        with pytest.raises(ClientError) as exc:
            call()
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    account = server.account_id("dev")
    for call in (lambda: iam.get_policy(PolicyArn=f"arn:aws:iam::{account}:policy/a\x00b"),
                 lambda: iam.attach_user_policy(UserName="u\x00", PolicyArn="arn:aws:iam::aws:policy/x"),
                 lambda: iam.get_role(RoleName="r\x00"),
                 lambda: ram.create_resource_share(name="s\x00"),
                 lambda: ram.get_resource_shares(resourceOwner="SELF", name="s\x00"),
                 lambda: ram.get_resource_shares(resourceOwner="SELF",
                                                 resourceShareArns=[f"arn:aws:ram:{REGION}:{account}:x\x00"])):
        with pytest.raises(ClientError) as exc:
            call()
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_a_nul_echoed_in_an_xml_error_still_parses(server: StratumServer) -> None:
    with pytest.raises(ClientError) as exc:  # used to be botocore's ResponseParserError
        server.client("iam").get_user(UserName="a\x00b\x01c")
    assert _code(exc) == "ValidationError"
    with pytest.raises(ClientError) as exc:
        server.client("s3").head_object(Bucket=_name(), Key="a\x00")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# ------------------------------------------------------------------------------------ malformed HTTP
def _raw_exchange(server: StratumServer, data: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_malformed_http_is_answered_in_the_services_format(server: StratumServer) -> None:
    status, headers, body = _raw_exchange(server, (
        b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: SageMaker.ListPipelines\r\n"
        b"Content-Type: application/x-amz-json-1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n"))
    assert status == 400
    parsed = create_parser("json").parse({"status_code": status, "headers": headers, "body": body}, None)
    assert parsed["Error"]["Code"] == "BadRequest"
    status, headers, body = _raw_exchange(server, b"GET /bucket/key HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
    assert status == 400 and headers["content-type"] == "application/xml"
    parsed = create_parser("rest-xml").parse({"status_code": status, "headers": headers, "body": body}, None)
    assert parsed["Error"]["Code"] == "BadRequest"
    # The bad header comes before the Authorization header that says the request is IAM's.
    ak, _ = server.creds("dev")
    status, headers, body = _raw_exchange(server, (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"X-Bad: a\x01b\r\nAuthorization: AWS4-HMAC-SHA256 Credential=" + ak.encode() +
        b"/20261207/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00\r\n"
        b"Content-Length: 29\r\n\r\nAction=ListUsers&Version=2010-05-08"))
    assert status == 400 and headers["content-type"] == "text/xml"
    parsed = create_parser("query").parse({"status_code": status, "headers": headers, "body": body}, None)
    assert parsed["Error"]["Code"] == "BadRequest"


# ------------------------------------------------------------------------------- unserved services
def _unserved_calls() -> list[tuple[str, str, dict[str, Any]]]:
    return [("cloudformation", "list_stacks", {}), ("ec2", "describe_instances", {}),
            ("sns", "list_topics", {}), ("kinesis", "list_streams", {}), ("dynamodb", "list_tables", {}),
            ("route53", "list_hosted_zones", {}), ("ecr", "describe_repositories", {}),
            ("secretsmanager", "list_secrets", {}),
            # Query services sharing a signing name ("elasticloadbalancing"): told apart by Version.
            ("elb", "describe_load_balancers", {}), ("elbv2", "describe_load_balancers", {}),
            # Services that sign with a served service's name: told apart by the request's shape.
            ("eventbridgev2", "list_event_buses", {}),  # signs as "events", speaks CBOR
            ("sagemaker-a2i-runtime", "list_human_loops", {"FlowDefinitionArn": "arn:aws:x"}),  # "sagemaker"
            ("bedrock-agent", "list_agent_aliases", {"agentId": "ABCDEFGHIJ"}),  # "bedrock", like bedrock
            ("iam-toolbox", "get_request_authorization_details", {"authorizationId": "a"}),  # "iam", REST
            ]


@pytest.mark.parametrize(("service", "method", "kwargs"), _unserved_calls(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_service_not_served_answers_in_its_own_protocol(server: StratumServer, service: str, method: str,
                                                          kwargs: dict[str, Any]) -> None:
    from stratum.protocol.service_models import SERVED_SERVICES

    if service in SERVED_SERVICES:
        pytest.skip(f"{service} is served now")
    ak, sk = server.creds("dev")
    client = boto3.client(service, endpoint_url=server.endpoint_url, region_name=REGION, aws_access_key_id=ak,
                          aws_secret_access_key=sk, config=Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as exc:
        getattr(client, method)(**kwargs)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert f"The service '{service}' is not served by Stratum" in str(exc.value)


def test_sqs_over_the_query_protocol_is_refused_in_xml(server: StratumServer) -> None:
    ak, sk = server.creds("dev")
    request = AWSRequest(method="POST", url=server.endpoint_url + "/", data=b"Action=ListQueues&Version=2012-11-05",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    SigV4Auth(Credentials(ak, sk), "sqs", REGION).add_auth(request)
    prepared = request.prepare()
    response = _HTTP.request("POST", prepared.url, body=prepared.body, headers=dict(prepared.headers), retries=False)
    # SQS is served over JSON, the only protocol botocore's model has: an older SDK's query request
    # gets an XML error it can parse, saying so.
    assert response.status == 400 and response.headers["content-type"] == "text/xml"
    error = _parsed_error(response, "query")
    assert error["Code"] == "UnsupportedProtocol" and "sqs over its JSON protocol only" in error["Message"]


# ------------------------------------------------------------------------- found by the fuzz suite
def test_fuzz_findings(server: StratumServer) -> None:
    ram, s3 = server.client("ram"), server.client("s3")
    for call in (lambda: ram.create_resource_share(name=_name("s"), tags=[{"value": "v"}]),
                 lambda: ram.tag_resource(resourceShareArn=f"arn:aws:ram:{REGION}:{server.account_id('dev')}:"
                                                           "resource-share/x", tags=[{}])):
        with pytest.raises(ClientError) as exc:  # a RAM tag without a key (optional in the model)
            call()
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # A rest-json body that is JSON but not an object.
    response = _signed(server, "POST", "/getresourceshares", b"null", {"Content-Type": "application/json"},
                       signing_name="ram")
    assert response.status == 400 and _parsed_error(response, "rest-json")["Code"] == "SerializationException"
    # A string payload that is not UTF-8.
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    response = _signed(server, "PUT", f"/{bucket}?policy", b"\xff\xfe\xfd", signing_name="s3")
    assert response.status == 400 and _parsed_error(response, "rest-xml")["Code"] == "InvalidArgument"
    # An X-Amz-Target no service has, on a request signed for IAM: a header IAM ignores.
    response = _signed(server, "POST", "/", b"Action=GetUser&Version=2010-05-08",
                       {"Content-Type": "application/x-www-form-urlencoded", "X-Amz-Target": "\xe2\x98\x83.x"},
                       signing_name="iam")
    assert response.status == 200, response.data


def test_numbers_beyond_java_int_and_long_are_refused(server: StratumServer) -> None:
    sm, iam = server.client("sagemaker"), server.client("iam")
    name = _name("p")
    definition = json.dumps({"Version": "2020-12-01", "Steps": [{"Name": "c", "Type": "Condition", "Arguments": {
        "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 1}], "IfSteps": [], "ElseSteps": []}}]})
    sm.create_pipeline(PipelineName=name, PipelineDefinition=definition,
                       RoleArn=f"arn:aws:iam::{server.account_id('dev')}:role/pipeline")
    with pytest.raises(ClientError) as exc:  # a long: SQLite and PostgreSQL both overflowed (500)
        sm.describe_pipeline(PipelineName=name, PipelineVersionId=2**63)
    assert _code(exc) == "SerializationException"
    for version in (2**31, 2**62):  # a long, beyond PostgreSQL's integer column (SQLite's is 64-bit)
        with pytest.raises(ClientError) as exc:
            sm.describe_pipeline(PipelineName=name, PipelineVersionId=version)
        assert _code(exc) == "ResourceNotFound"
        with pytest.raises(ClientError) as exc:
            sm.update_pipeline_version(PipelineArn=sm.describe_pipeline(PipelineName=name)["PipelineArn"],
                                       PipelineVersionId=version, PipelineVersionDisplayName="x")
        assert _code(exc) == "ResourceNotFound"
    with pytest.raises(ClientError) as exc:  # an integer
        iam.list_users(MaxItems=2**31)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def _timestamp_members() -> list[tuple[str, str, str]]:
    """(service, operation, member) for every top-level timestamp member of the JSON services."""
    from stratum.protocol.service_models import SERVED_SERVICES, service_model

    found = []
    for service in SERVED_SERVICES:
        model = service_model(service)
        if model.protocol != "json":
            continue
        for name in model.operation_names:
            shape = model.operation_model(name).input_shape
            for member, member_shape in (shape.members.items() if shape is not None else ()):
                if member_shape.type_name == "timestamp":
                    found.append((service, name, member))
    return found


def test_every_timestamp_member_refuses_out_of_range_values(server: StratumServer) -> None:
    from stratum.protocol.service_models import service_model

    members = _timestamp_members()
    assert len(members) > 80
    bad = []
    for i, (service, operation, member) in enumerate(members):
        model = service_model(service)
        value = ["1e20", '"inf"', '"9999-12-31T23:59:59-12:00"'][i % 3]
        response = _signed(server, "POST", "/", f'{{"{member}": {value}}}'.encode(),
                           {"X-Amz-Target": f"{model.metadata['targetPrefix']}.{operation}",
                            "Content-Type": "application/x-amz-json-1.1"},
                           signing_name=model.signing_name or model.endpoint_prefix)
        if response.status != 400 or _parsed_error(response, "json")["Code"] != "SerializationException":
            bad.append(f"{service}:{operation}.{member}: {response.status} {response.data[:120]!r}")
    assert not bad, bad
