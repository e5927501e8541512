"""The generic protocol layer is the inverse of botocore: requests botocore serializes parse back to
the same parameters, and responses/errors we serialize parse in botocore to the same output."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.awsrequest import AWSRequest, HTTPHeaders, prepare_request_dict
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpRequest
from stratum.protocol.parser import parse_request
from stratum.protocol.serializer import serialize_error, serialize_response
from stratum.protocol.service_models import service_index
from stratum.protocol.validate import validate_input

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def wire_request(service: str, operation: str, params: dict[str, Any]) -> HttpRequest:
    index = service_index(service)
    op = index.model.operation_model(operation)
    request_dict = create_serializer(index.protocol, include_validation=True).serialize_to_request(params, op)
    prepare_request_dict(request_dict, endpoint_url="http://127.0.0.1:4747")
    prepared = AWSRequest(method=request_dict["method"], url=request_dict["url"], data=request_dict["body"],
                          headers=request_dict["headers"]).prepare()
    url = urlsplit(prepared.url)
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    elif not isinstance(body, bytes):
        body = body.read()
    return HttpRequest(method=prepared.method, raw_path=url.path or "/", query_string=url.query,
                       headers={k.lower(): v for k, v in prepared.headers.items()}, body=body)


REQUESTS = [
    ("sagemaker", "CreatePipeline", {
        "PipelineName": "p-1", "PipelineDefinition": '{"Version":"2020-12-01","Steps":[]}',
        "RoleArn": "arn:aws:iam::111111111111:role/R", "ClientRequestToken": "t" * 32,
        "Tags": [{"Key": "team", "Value": "ml"}], "ParallelismConfiguration": {"MaxParallelExecutionSteps": 4}}),
    ("sagemaker", "ListPipelines", {"CreatedAfter": T0, "SortBy": "Name", "MaxResults": 10}),
    ("iam", "CreateRole", {"RoleName": "r", "AssumeRolePolicyDocument": "{}", "MaxSessionDuration": 7200,
                           "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}]}),
    ("sts", "AssumeRole", {"RoleArn": "arn:aws:iam::111111111111:role/R", "RoleSessionName": "sess",
                           "PolicyArns": [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
                           "DurationSeconds": 900, "Tags": [{"Key": "k", "Value": "v"}]}),
    ("s3", "PutObject", {"Bucket": "b", "Key": "dir/a b+c.txt", "Body": b"data", "ContentType": "text/plain",
                         "Metadata": {"owner": "me"}}),
    ("s3", "ListObjectsV2", {"Bucket": "b", "Prefix": "dir/", "Delimiter": "/", "MaxKeys": 5}),
    ("s3", "DeleteObjects", {"Bucket": "b", "Delete": {"Objects": [{"Key": "x"}, {"Key": "y", "VersionId": "v"}],
                                                       "Quiet": True}}),
    ("s3", "CreateMultipartUpload", {"Bucket": "b", "Key": "k"}),
    ("s3", "UploadPart", {"Bucket": "b", "Key": "k", "UploadId": "u", "PartNumber": 2, "Body": b"p"}),
    ("s3", "CopyObject", {"Bucket": "b", "Key": "k2", "CopySource": "b/k", "MetadataDirective": "REPLACE"}),
    ("ram", "CreateResourceShare", {"name": "share", "resourceArns": ["arn:aws:sagemaker:us-east-1:1:pipeline/p"],
                                    "principals": ["222222222222"], "allowExternalPrincipals": False,
                                    "permissionArns": ["arn:aws:ram::aws:permission/X"]}),
    ("ram", "GetResourceShares", {"resourceOwner": "SELF", "maxResults": 5}),
    ("sagemaker-runtime", "InvokeEndpoint", {"EndpointName": "ep", "Body": b"1,2,3", "ContentType": "text/csv",
                                             "TargetContainerHostname": "c1"}),
    ("kms", "Encrypt", {"KeyId": "alias/k", "Plaintext": b"\x00\x01secret",
                        "EncryptionContext": {"purpose": "test"}}),
    ("events", "PutEvents", {"Entries": [{"Source": "s", "DetailType": "d", "Detail": "{}"}]}),
]


@pytest.mark.parametrize(("service", "operation", "params"), REQUESTS, ids=[f"{s}.{o}" for s, o, _ in REQUESTS])
def test_request_roundtrip(service: str, operation: str, params: dict[str, Any]) -> None:
    request = wire_request(service, operation, params)
    op, parsed = parse_request(service_index(service), request)
    assert op.name == operation
    for key, value in params.items():
        assert parsed[key] == value, key
    validate_input(op.input_shape, parsed)


RESPONSES = [
    ("sagemaker", "DescribePipeline", {"PipelineArn": "arn:aws:sagemaker:us-east-1:1:pipeline/p",
                                       "PipelineName": "p", "CreationTime": T0, "PipelineStatus": "Active",
                                       "ParallelismConfiguration": {"MaxParallelExecutionSteps": 2}}),
    ("iam", "GetRole", {"Role": {"Path": "/", "RoleName": "r", "RoleId": "AROAX", "Arn": "arn:aws:iam::1:role/r",
                                 "CreateDate": T0, "MaxSessionDuration": 3600,
                                 "Tags": [{"Key": "a", "Value": "1"}]}}),
    ("iam", "ListUsers", {"Users": [{"Path": "/", "UserName": "u", "UserId": "AIDAX", "Arn": "arn:aws:iam::1:user/u",
                                     "CreateDate": T0}], "IsTruncated": False}),
    ("sts", "GetCallerIdentity", {"UserId": "AIDAX", "Account": "111111111111", "Arn": "arn:aws:iam::1:user/u"}),
    ("s3", "ListObjectsV2", {"IsTruncated": False, "Name": "b", "Prefix": "d/", "KeyCount": 2,
                             "Contents": [{"Key": "d/a", "Size": 3, "ETag": '"e"', "LastModified": T0,
                                           "StorageClass": "STANDARD"}],
                             "CommonPrefixes": [{"Prefix": "d/x/"}]}),
    ("s3", "HeadObject", {"ContentLength": 3, "ETag": '"e"', "LastModified": T0, "ContentType": "text/plain",
                          "Metadata": {"owner": "me"}, "VersionId": "v1"}),
    ("s3", "CompleteMultipartUpload", {"Bucket": "b", "Key": "k", "ETag": '"x-2"', "Location": "/b/k"}),
    ("s3", "GetBucketVersioning", {"Status": "Enabled"}),
    ("ram", "CreateResourceShare", {"resourceShare": {"name": "s", "status": "ACTIVE", "creationTime": T0,
                                                      "allowExternalPrincipals": False}}),
    ("sagemaker-runtime", "InvokeEndpoint", {"Body": b"0.5", "ContentType": "text/csv", "InvokedProductionVariant": "v"}),
    ("kms", "GenerateDataKey", {"CiphertextBlob": b"\x01\x02", "Plaintext": b"\x03", "KeyId": "arn:aws:kms:k"}),
]


@pytest.mark.parametrize(("service", "operation", "output"), RESPONSES, ids=[f"{s}.{o}" for s, o, _ in RESPONSES])
def test_response_roundtrip(service: str, operation: str, output: dict[str, Any]) -> None:
    index = service_index(service)
    op = index.model.operation_model(operation)
    response = serialize_response(index.model, op, output, "req-1")
    body = response.body if isinstance(response.body, bytes) else b"".join(response.body)  # type: ignore[arg-type]
    parsed = create_parser(index.protocol).parse(
        {"status_code": response.status, "headers": HTTPHeaders.from_dict(response.headers), "body": body}, op.output_shape)
    for key, value in output.items():
        got = parsed[key]
        if hasattr(got, "read"):
            got = got.read()
        if isinstance(value, bytes) and isinstance(got, str):
            got = got.encode()  # botocore hands non-streaming blob payloads back as text
        assert got == value, key


@pytest.mark.parametrize("service", ["sagemaker", "iam", "s3", "ram"])
def test_error_roundtrip(service: str) -> None:
    index = service_index(service)
    op = next(iter(index.model.operation_names))
    response = serialize_error(index.model, ServiceError("ValidationException", "bad thing", 400), "rid-9")
    parsed = create_parser(index.protocol).parse(
        {"status_code": response.status, "headers": HTTPHeaders.from_dict(response.headers), "body": response.body},
        index.model.operation_model(op).output_shape)
    assert parsed["Error"]["Code"] == "ValidationException"
    assert parsed["Error"]["Message"] == "bad thing"


def test_validation_messages_match_aws() -> None:
    op = service_index("sagemaker").model.operation_model("DescribePipeline")
    with pytest.raises(ServiceError) as err:
        validate_input(op.input_shape, {"PipelineName": "bad name!"})
    assert err.value.code == "ValidationException"
    assert err.value.message.startswith("1 validation error detected: Value 'bad name!' at 'pipelineName' "
                                        "failed to satisfy constraint: Member must satisfy regular expression pattern")
    op = service_index("sagemaker").model.operation_model("ListPipelines")
    with pytest.raises(ServiceError) as err:
        validate_input(op.input_shape, {"SortBy": "Size", "MaxResults": 1000})
    assert err.value.message.startswith("2 validation errors detected")
    assert "Member must satisfy enum value set: [Name, CreationTime]" in err.value.message
    assert "Member must have value less than or equal to 100" in err.value.message
    with pytest.raises(ServiceError) as err:
        validate_input(service_index("sagemaker").model.operation_model("CreatePipeline").input_shape, {})
    assert "Value null at 'pipelineName' failed to satisfy constraint: Member must not be null" in err.value.message
