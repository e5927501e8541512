"""Request parsing stays linear in the request size, for every protocol: the largest bodies a
client can send parse in time proportional to their length, to the same parameters as before."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from test_protocol_roundtrip import wire_request

from stratum.protocol.parser import parse_request
from stratum.protocol.service_models import service_index

# Query-protocol shapes the tree walk must rebuild exactly as botocore serialized them: nested
# lists of structures with lists inside, maps (entry.N.key / entry.N.value), empty lists.
QUERY_REQUESTS = [
    ("iam", "SimulateCustomPolicy", {
        "PolicyInputList": ['{"Version":"2012-10-17"}', "{}"], "ActionNames": ["s3:GetObject", "s3:PutObject"],
        "ResourceArns": ["arn:aws:s3:::b/k"],
        "ContextEntries": [{"ContextKeyName": "aws:username", "ContextKeyValues": ["ann", "bob"],
                            "ContextKeyType": "stringList"},
                           {"ContextKeyName": "aws:MultiFactorAuthPresent", "ContextKeyValues": ["true"],
                            "ContextKeyType": "boolean"}]}),
    ("iam", "TagUser", {"UserName": "u", "Tags": [{"Key": f"k{i}", "Value": f"v{i}"} for i in range(1, 13)]}),
    ("iam", "UntagUser", {"UserName": "u", "TagKeys": []}),
    ("sts", "AssumeRole", {"RoleArn": "arn:aws:iam::111111111111:role/R", "RoleSessionName": "sess",
                           "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}],
                           "TransitiveTagKeys": ["a"], "PolicyArns": [{"arn": "arn:aws:iam::aws:policy/P"}]}),
    ("sns", "Publish", {"TopicArn": "arn:aws:sns:us-east-1:111111111111:t", "Message": "m",
                        "MessageAttributes": {"one": {"DataType": "String", "StringValue": "1"},
                                              "two": {"DataType": "Number", "StringValue": "2"}}}),
]


@pytest.mark.parametrize(("service", "operation", "params"), QUERY_REQUESTS,
                         ids=[f"{s}.{o}" for s, o, _ in QUERY_REQUESTS])
def test_query_requests_parse_back_to_what_botocore_sent(service: str, operation: str,
                                                         params: dict[str, Any]) -> None:
    index = service_index(service)
    if index.protocol != "query":
        pytest.skip(f"{service} is {index.protocol} in this botocore")
    op, parsed = parse_request(index, wire_request(service, operation, params))
    assert op.name == operation
    assert parsed == params


def _tags(n: int) -> list[dict[str, str]]:
    return [{"Key": f"key-{i:06d}", "Value": "v" * 30} for i in range(n)]


def _parse_seconds(service: str, operation: str, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    request = wire_request(service, operation, params)
    started = time.process_time()
    _, parsed = parse_request(service_index(service), request)
    return time.process_time() - started, parsed


# 20,000 tags is a 1.7 MB body; scanning every key per list item made it minutes (8,000: 13 s).
BIG = 20_000


@pytest.mark.parametrize(("service", "operation", "params"), [
    ("iam", "TagUser", {"UserName": "u", "Tags": _tags(BIG)}),  # query
    ("sagemaker", "AddTags", {"ResourceArn": "arn:aws:sagemaker:us-east-1:1:pipeline/p",
                              "Tags": _tags(BIG)}),  # json
    ("ram", "TagResource", {"resourceShareArn": "arn:aws:ram:us-east-1:1:resource-share/x",
                            "tags": [{"key": f"k{i}", "value": "v"} for i in range(BIG)]}),  # rest-json
    ("s3", "PutBucketTagging", {"Bucket": "b", "Tagging": {"TagSet": _tags(BIG)}}),  # rest-xml
], ids=["query", "json", "rest-json", "rest-xml"])
def test_huge_lists_parse_in_linear_time(service: str, operation: str, params: dict[str, Any]) -> None:
    seconds, parsed = _parse_seconds(service, operation, params)
    assert json.dumps(parsed, sort_keys=True, default=str) == json.dumps(params, sort_keys=True, default=str)
    assert seconds < 3.0, f"{operation} with {BIG:,} list items took {seconds:.2f} s of CPU"


def test_a_huge_list_over_its_limit_is_refused_with_a_bounded_message() -> None:
    """8,000 tags were echoed whole in the ValidationError: a 3 MB message."""
    from stratum.protocol.errors import ServiceError
    from stratum.protocol.validate import validate_input

    request = wire_request("iam", "TagUser", {"UserName": "u", "Tags": _tags(8000)})
    op, params = parse_request(service_index("iam"), request)
    with pytest.raises(ServiceError) as exc:
        validate_input(op.input_shape, params, "ValidationError")
    assert exc.value.code == "ValidationError"
    assert "at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50" in exc.value.message
    assert "... (7900 more)]" in exc.value.message
    assert len(exc.value.message) < 10_000
