"""The event-pattern matcher on the examples of the EventBridge user guide (content filtering,
arrays, null and empty values, $or), each as its pattern, an event and the documented result,
plus the validation messages of invalid patterns."""

from __future__ import annotations

from typing import Any

import pytest

from stratum.services.events.patterns import PatternError, compile_pattern, matches

EC2_EVENT: dict[str, Any] = {
    "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
    "account": "111122223333", "time": "2017-12-22T18:43:48Z", "region": "us-west-1",
    "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
    "detail": {"instance-id": "i-1234567890abcdef0", "state": "terminated"},
}

CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # Event patterns: the guide's first example
    ("ec2 state", {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"],
                   "detail": {"state": ["terminated"]}}, EC2_EVENT, True),
    ("ec2 state other", {"source": ["aws.ec2"], "detail": {"state": ["running", "pending"]}}, EC2_EVENT, False),
    ("missing field", {"detail": {"instance-type": ["t2.micro"]}}, EC2_EVENT, False),
    # Prefix matching
    ("prefix", {"time": [{"prefix": "2017-10-02"}]}, {"time": "2017-10-02T18:43:48Z"}, True),
    ("prefix no", {"time": [{"prefix": "2017-10-02"}]}, {"time": "2017-10-03T18:43:48Z"}, False),
    ("prefix not on numbers", {"n": [{"prefix": "12"}]}, {"n": 123}, False),
    ("prefix ignore case", {"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}},
     {"detail": {"service": "EVENTBRIDGE"}}, True),
    ("prefix ignore case lower", {"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}},
     {"detail": {"service": "eventbus"}}, True),
    # Suffix matching
    ("suffix", {"FileName": [{"suffix": ".png"}]}, {"FileName": "image.png"}, True),
    ("suffix case", {"FileName": [{"suffix": ".png"}]}, {"FileName": "image.PNG"}, False),
    ("suffix ignore case", {"detail": {"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]}},
     {"detail": {"FileName": "image.PNG"}}, True),
    # Anything-but matching
    ("anything-but string", {"detail": {"state": [{"anything-but": "initializing"}]}},
     {"detail": {"state": "running"}}, True),
    ("anything-but string excluded", {"detail": {"state": [{"anything-but": "initializing"}]}},
     {"detail": {"state": "initializing"}}, False),
    ("anything-but missing field", {"detail": {"state": [{"anything-but": "initializing"}]}},
     {"detail": {}}, False),
    ("anything-but number", {"detail": {"x-limit": [{"anything-but": 123}]}}, {"detail": {"x-limit": 456}}, True),
    ("anything-but number excluded", {"detail": {"x-limit": [{"anything-but": 123}]}},
     {"detail": {"x-limit": 123.0}}, False),
    ("anything-but list", {"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}},
     {"detail": {"state": "overloaded"}}, False),
    ("anything-but list other", {"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}},
     {"detail": {"state": "running"}}, True),
    ("anything-but numbers", {"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}},
     {"detail": {"x-limit": 200}}, False),
    ("anything-but numbers other", {"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}},
     {"detail": {"x-limit": 250}}, True),
    ("anything-but prefix", {"detail": {"state": [{"anything-but": {"prefix": "init"}}]}},
     {"detail": {"state": "initializing"}}, False),
    ("anything-but prefix other", {"detail": {"state": [{"anything-but": {"prefix": "init"}}]}},
     {"detail": {"state": "running"}}, True),
    ("anything-but suffix", {"detail": {"FileName": [{"anything-but": {"suffix": ".txt"}}]}},
     {"detail": {"FileName": "notes.txt"}}, False),
    ("anything-but suffix other", {"detail": {"FileName": [{"anything-but": {"suffix": ".txt"}}]}},
     {"detail": {"FileName": "photo.png"}}, True),
    ("anything-but ignore case", {"detail": {"state": [{"anything-but": {"equals-ignore-case": ["Stopped",
                                                                                                "OverLoaded"]}}]}},
     {"detail": {"state": "STOPPED"}}, False),
    ("anything-but ignore case other", {"detail": {"state": [{"anything-but": {"equals-ignore-case": ["Stopped",
                                                                                                      "OverLoaded"]}}]}},
     {"detail": {"state": "running"}}, True),
    ("anything-but wildcard", {"detail": {"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}},
     {"detail": {"FilePath": "/usr/lib/python"}}, False),
    ("anything-but wildcard other", {"detail": {"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}},
     {"detail": {"FilePath": "/usr/bin/python"}}, True),
    ("anything-but wildcards", {"detail": {"FilePath": [{"anything-but": {"wildcard": ["*/lib/*", "*/bin/*"]}}]}},
     {"detail": {"FilePath": "/usr/bin/python"}}, False),
    # Numeric matching (the guide's example event: c-count 5, d-count 7, x-limit 301.8)
    ("numeric", {"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}], "d-count": [{"numeric": ["<", 10]}],
                            "x-limit": [{"numeric": ["=", 3.018e2]}]}},
     {"detail": {"c-count": 5, "d-count": 7, "x-limit": 301.8}}, True),
    ("numeric out of range", {"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}]}},
     {"detail": {"c-count": 6}}, False),
    ("numeric open bottom", {"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}]}},
     {"detail": {"c-count": 0}}, False),
    ("numeric not on strings", {"detail": {"c-count": [{"numeric": [">", 0]}]}}, {"detail": {"c-count": "5"}}, False),
    ("number equals float", {"x": [300]}, {"x": 300.0}, True),
    ("number not string", {"x": [300]}, {"x": "300"}, False),
    # IP address matching
    ("cidr", {"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/24"}]}},
     {"detail": {"sourceIPAddress": "10.0.0.255"}}, True),
    ("cidr outside", {"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/24"}]}},
     {"detail": {"sourceIPAddress": "10.0.1.1"}}, False),
    ("cidr ipv6", {"detail": {"sourceIPAddress": [{"cidr": "2001:db8::/64"}]}},
     {"detail": {"sourceIPAddress": "2001:db8::ff00:42:8329"}}, True),
    ("cidr ipv6 outside", {"detail": {"sourceIPAddress": [{"cidr": "2001:db8::/64"}]}},
     {"detail": {"sourceIPAddress": "2001:db9::1"}}, False),
    # Exists matching: leaf nodes only
    ("exists", {"detail": {"state": [{"exists": True}]}}, {"detail": {"state": "initializing"}}, True),
    ("exists absent", {"detail": {"state": [{"exists": True}]}}, {"detail": {"c-count": 3}}, False),
    ("not exists", {"detail": {"c-count": [{"exists": False}]}}, {"detail": {"state": "initializing"}}, True),
    ("not exists present", {"detail": {"c-count": [{"exists": False}]}}, {"detail": {"c-count": 3}}, False),
    ("exists not on objects", {"detail": {"alpha": [{"exists": True}]}}, {"detail": {"alpha": {"c-count": 4}}},
     False),
    ("exists on null", {"detail": {"state": [{"exists": True}]}}, {"detail": {"state": None}}, True),
    ("exists on array", {"detail": {"tags": [{"exists": True}]}}, {"detail": {"tags": ["a"]}}, True),
    ("not exists on empty array", {"detail": {"tags": [{"exists": False}]}}, {"detail": {"tags": []}}, True),
    ("not exists without parent", {"detail": {"state": [{"exists": False}]}}, {"source": "x"}, True),
    ("exists nested in array of objects", {"detail": {"items": {"id": [{"exists": True}]}}},
     {"detail": {"items": [{"name": "a"}, {"id": 2}]}}, True),
    # Equals-ignore-case
    ("equals ignore case", {"detail-type": [{"equals-ignore-case": "ec2 instance state-change notification"}]},
     EC2_EVENT, True),
    ("equals ignore case no", {"detail-type": [{"equals-ignore-case": "ec2 instance state-change"}]},
     EC2_EVENT, False),
    # Wildcards
    ("wildcard", {"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]},
     {"EventBusArn": "arn:aws:events:us-east-1:123456789012:event-bus/myEventBus"}, True),
    ("wildcard no", {"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]},
     {"EventBusArn": "arn:aws:events:us-west-2:123456789012:event-bus/myEventBus"}, False),
    ("wildcard suffix", {"detail": {"FileName": [{"wildcard": "*.png"}]}}, {"detail": {"FileName": "a.png"}}, True),
    ("wildcard escaped", {"x": [{"wildcard": "a\\*b"}]}, {"x": "a*b"}, True),
    ("wildcard escaped literal", {"x": [{"wildcard": "a\\*b"}]}, {"x": "axxb"}, False),
    # $or
    ("or", {"detail": {"$or": [{"c-count": [{"numeric": [">", 0, "<=", 5]}]}, {"d-count": [{"numeric": ["<", 10]}]},
                               {"x-limit": [{"numeric": ["=", 3.018e2]}]}]}},
     {"detail": {"c-count": 50, "d-count": 70, "x-limit": 301.8}}, True),
    ("or none", {"detail": {"$or": [{"c-count": [{"numeric": [">", 0, "<=", 5]}]}, {"d-count": [{"numeric": ["<", 10]}]}]}},
     {"detail": {"c-count": 50, "d-count": 70}}, False),
    ("or with siblings", {"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization", "ReadLatency"]},
                                                               {"namespace": ["AWS/EC2", "AWS/ES"]}]},
     {"source": "aws.cloudwatch", "namespace": "AWS/ES", "metricName": "FreeStorage"}, True),
    ("or with siblings fails sibling", {"source": ["aws.cloudwatch"],
                                        "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"]}]},
     {"source": "aws.ec2", "namespace": "AWS/EC2"}, False),
    # Arrays: any element of an event array matches
    ("arrays", {"resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
                              "arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f",
                              "arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f"]},
     {"resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
                    "arn:aws:ec2:us-east-1:000000000000:instance/i-b188560f"]}, True),
    ("arrays none", {"resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f"]},
     {"resources": ["arn:aws:ec2:us-east-1:000000000000:instance/i-b188560f"]}, False),
    ("array of objects keeps elements apart", {"a": {"b": [1], "c": [4]}},
     {"a": [{"b": 1, "c": 2}, {"b": 3, "c": 4}]}, False),
    ("array of objects one element", {"a": {"b": [3], "c": [4]}}, {"a": [{"b": 1, "c": 2}, {"b": 3, "c": 4}]}, True),
    # Null and empty values
    ("null", {"detail": {"responseElements": [None]}}, {"detail": {"responseElements": None}}, True),
    ("null not missing", {"detail": {"responseElements": [None]}}, {"detail": {}}, False),
    ("empty string", {"detail": {"eventVersion": [""]}}, {"detail": {"eventVersion": ""}}, True),
    ("empty string not null", {"detail": {"eventVersion": [""]}}, {"detail": {"eventVersion": None}}, False),
    ("booleans", {"detail": {"ok": [True]}}, {"detail": {"ok": True}}, True),
    ("boolean is not 1", {"detail": {"ok": [True]}}, {"detail": {"ok": 1}}, False),
    # SageMaker model package approval, as Stratum emits it
    ("sagemaker approval", {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Model Package State Change"],
                            "detail": {"ModelApprovalStatus": ["Approved"]}},
     {"source": "aws.sagemaker", "detail-type": "SageMaker Model Package State Change",
      "detail": {"ModelPackageGroupName": "churn", "ModelApprovalStatus": "Approved"}}, True),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_documented_examples(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, event) is expected


INVALID: list[tuple[Any, str]] = [
    ([], "Filter is not an object"),
    ({}, "Empty objects are not allowed"),
    ({"source": "aws.ec2"}, '"source" must be an object or an array'),
    ({"source": []}, "Empty arrays are not allowed"),
    ({"source": [["a"]]}, "Match value must be String, number, true, false, or null"),
    ({"source": [{"prefix": 1}]}, "prefix match pattern must be a string"),
    ({"source": [{"suffix": 1}]}, "suffix match pattern must be a string"),
    ({"source": [{"foo": "a"}]}, "Unrecognized match type foo"),
    ({"source": [{"prefix": "a", "suffix": "b"}]}, "Only one key allowed in match expression"),
    ({"n": [{"numeric": ">"}]}, "Value of numeric must be an array."),
    ({"n": [{"numeric": [">", "a"]}]}, "Value of > must be numeric"),
    ({"n": [{"numeric": ["!", 1]}]}, "Unrecognized numeric range operator: !"),
    ({"n": [{"numeric": [">", 1, ">", 5]}]}, "Bad numeric range operator: >"),
    ({"n": [{"numeric": ["<", 1, ">", 5]}]}, "Too many elements in numeric expression"),
    ({"n": [{"numeric": [">", 5, "<", 1]}]}, "Bottom must be less than top"),
    ({"n": [{"exists": "yes"}]}, "exists match pattern must be either true or false."),
    ({"n": [{"anything-but": ["a", 1]}]}, "Inside anything but list, either all values are number or string, "
                                          "mixed type is not supported"),
    ({"n": [{"anything-but": [None]}]}, "Inside anything but list, start|null|boolean is not supported."),
    ({"n": [{"anything-but": {"prefix": ""}}]}, "Null prefix/suffix not allowed"),
    ({"n": [{"anything-but": {"exists": True}}]}, "Unsupported anything-but pattern: exists"),
    ({"n": [{"wildcard": "a**b"}]}, "Consecutive wildcard characters at pos 1"),
    ({"n": [{"cidr": "10.0.0.0/33"}]}, "Nonstandard IP address: 10.0.0.0/33"),
    ({"$or": [{"a": ["1"]}]}, "There must have at least 2 Objects in $or relationship."),
    ({"$or": {"a": ["1"]}}, "It must be an Array followed with $or."),
    ({"$or": [{"a": ["1"]}, "b"]}, "Only JSON object is allowed in array of $or relationship."),
]


@pytest.mark.parametrize(("pattern", "reason"), INVALID, ids=[r for _, r in INVALID])
def test_invalid_patterns_name_the_reason(pattern: Any, reason: str) -> None:
    with pytest.raises(PatternError) as err:
        compile_pattern(pattern)
    assert str(err.value) == reason


def test_text_patterns_and_syntax_errors() -> None:
    assert matches('{"source": ["a"]}', {"source": "a"})
    with pytest.raises(PatternError):
        compile_pattern('{"source": ')
