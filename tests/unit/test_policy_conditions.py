"""Condition operators: every family, IfExists, set qualifiers, Null, variables."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from stratum.policy import AuthzRequest, Caller, MalformedPolicyDocument
from stratum.policy.conditions import parse_conditions, parse_operator
from stratum.policy.context import EvalContext

ALICE = Caller(arn="arn:aws:iam::111122223333:user/alice", account="111122223333", kind="user")


def holds(block: dict[str, Any], context: dict[str, Any] | None = None, *, variables: bool = True) -> bool:
    """Evaluate a Condition block the way a statement does (all clauses ANDed)."""
    clauses = parse_conditions(block, variables=variables)
    ctx = EvalContext(AuthzRequest(ALICE, "s3:GetObject", "*", None, context or {}))
    return all(clause.evaluate(ctx) for clause in clauses)


# ------------------------------------------------------------------------------ strings


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("StringEquals", "ml", True),
        ("StringEquals", "ML", False),
        ("StringNotEquals", "ml", False),
        ("StringNotEquals", "ops", True),
        ("StringEqualsIgnoreCase", "ML", True),
        ("StringNotEqualsIgnoreCase", "ML", False),
        ("StringNotEqualsIgnoreCase", "ops", True),
        ("StringLike", "m*", True),
        ("StringLike", "?l", True),
        ("StringLike", "M*", False),
        ("StringNotLike", "m*", False),
        ("StringNotLike", "x*", True),
    ],
)
def test_string_operators(operator: str, value: str, expected: bool) -> None:
    assert holds({operator: {"aws:PrincipalTag/team": value}}, {"aws:PrincipalTag/team": "ml"}) is expected


def test_multiple_values_are_ored() -> None:
    assert holds({"StringEquals": {"k": ["a", "b", "c"]}}, {"k": "b"})
    assert not holds({"StringEquals": {"k": ["a", "c"]}}, {"k": "b"})


def test_negated_operator_with_several_values_means_none_equal() -> None:
    assert holds({"StringNotEquals": {"k": ["a", "c"]}}, {"k": "b"})
    assert not holds({"StringNotEquals": {"k": ["a", "b"]}}, {"k": "b"})


def test_multiple_keys_and_operators_are_anded() -> None:
    block = {"StringEquals": {"a": "1", "b": "2"}, "StringLike": {"c": "x*"}}
    assert holds(block, {"a": "1", "b": "2", "c": "xy"})
    assert not holds(block, {"a": "1", "b": "3", "c": "xy"})
    assert not holds(block, {"a": "1", "b": "2", "c": "y"})


def test_condition_key_names_are_case_insensitive_values_are_not() -> None:
    assert holds({"StringEquals": {"AWS:PrincipalTag/Team": "ml"}}, {"aws:principaltag/team": "ml"})
    assert not holds({"StringEquals": {"aws:PrincipalTag/team": "ml"}}, {"aws:PrincipalTag/team": "Ml"})


def test_operator_names_are_case_insensitive() -> None:
    assert holds({"stringequals": {"k": "v"}}, {"k": "v"})


def test_string_like_star_spans_slashes_and_question_mark_is_one_char() -> None:
    assert holds({"StringLike": {"s3:prefix": "home/*"}}, {"s3:prefix": "home/a/b/c"})
    assert not holds({"StringLike": {"s3:prefix": "home/?"}}, {"s3:prefix": "home/ab"})
    assert holds({"StringLike": {"s3:prefix": "home/??"}}, {"s3:prefix": "home/ab"})


def test_string_like_escapes_regex_metacharacters() -> None:
    assert holds({"StringLike": {"k": "a.b+(c)*"}}, {"k": "a.b+(c)d"})
    assert not holds({"StringLike": {"k": "a.b"}}, {"k": "axb"})


def test_string_operators_compare_non_string_context_values_as_strings() -> None:
    assert holds({"StringEquals": {"k": "5"}}, {"k": 5})
    assert holds({"StringEquals": {"k": "true"}}, {"k": True})
    assert holds({"StringEquals": {"k": 5}}, {"k": "5"})  # JSON numbers in policies are strings


# ------------------------------------------------------------------------- missing keys


@pytest.mark.parametrize(
    "operator",
    [
        "StringEquals",
        "StringEqualsIgnoreCase",
        "StringLike",
        "NumericEquals",
        "NumericLessThan",
        "DateEquals",
        "Bool",
        "BinaryEquals",
        "IpAddress",
        "ArnEquals",
        "ArnLike",
    ],
)
def test_missing_key_makes_positive_operators_false(operator: str) -> None:
    value = {
        "NumericEquals": "1",
        "NumericLessThan": "1",
        "DateEquals": "2020-01-01",
        "Bool": "true",
        "BinaryEquals": "QQ==",
        "IpAddress": "10.0.0.0/8",
    }.get(operator, "arn:aws:s3:::b")
    assert not holds({operator: {"missing:key": value}})


@pytest.mark.parametrize(
    ("operator", "value"),
    [
        ("StringNotEquals", "x"),
        ("StringNotEqualsIgnoreCase", "x"),
        ("StringNotLike", "x*"),
        ("NumericNotEquals", "1"),
        ("DateNotEquals", "2020-01-01"),
        ("NotIpAddress", "10.0.0.0/8"),
        ("ArnNotEquals", "arn:aws:s3:::b"),
        ("ArnNotLike", "arn:aws:s3:::*"),
    ],
)
def test_missing_key_makes_negated_operators_true(operator: str, value: str) -> None:
    assert holds({operator: {"missing:key": value}})


def test_if_exists_is_true_when_key_missing_and_checks_when_present() -> None:
    block = {"StringEqualsIfExists": {"ec2:InstanceType": ["t2.micro", "t3.micro"]}}
    assert holds(block)
    assert holds(block, {"ec2:InstanceType": "t2.micro"})
    assert not holds(block, {"ec2:InstanceType": "m5.large"})


@pytest.mark.parametrize(
    ("operator", "value", "present", "expected"),
    [
        ("NumericLessThanIfExists", "10", 5, True),
        ("NumericLessThanIfExists", "10", 50, False),
        ("DateLessThanIfExists", "2030-01-01T00:00:00Z", "2020-01-01T00:00:00Z", True),
        ("BoolIfExists", "true", False, False),
        ("IpAddressIfExists", "10.0.0.0/8", "192.168.1.1", False),
        ("ArnLikeIfExists", "arn:aws:iam::*:role/x", "arn:aws:iam::1:role/x", True),
        ("StringNotEqualsIfExists", "a", "a", False),
        ("BinaryEqualsIfExists", "QQ==", "QQ==", True),
    ],
)
def test_if_exists_on_every_family(operator: str, value: str, present: Any, expected: bool) -> None:
    assert holds({operator: {"some:key": value}})
    assert holds({operator: {"some:key": value}}, {"some:key": present}) is expected


def test_none_and_empty_list_count_as_missing() -> None:
    assert not holds({"StringEquals": {"k": "v"}}, {"k": None})
    assert holds({"StringEqualsIfExists": {"k": "v"}}, {"k": []})


# ----------------------------------------------------------------------------- numeric


@pytest.mark.parametrize(
    ("operator", "policy", "actual", "expected"),
    [
        ("NumericEquals", "10", 10, True),
        ("NumericEquals", "10", "10.0", True),
        ("NumericEquals", "10", 11, False),
        ("NumericNotEquals", "10", 11, True),
        ("NumericNotEquals", "10", 10, False),
        ("NumericLessThan", "10", 9, True),
        ("NumericLessThan", "10", 10, False),
        ("NumericLessThanEquals", "10", 10, True),
        ("NumericGreaterThan", "10", 11, True),
        ("NumericGreaterThan", "10", 10, False),
        ("NumericGreaterThanEquals", "10", 10, True),
        ("NumericGreaterThanEquals", "1.5", 1.4, False),
        ("NumericLessThan", "-1", -2, True),
    ],
)
def test_numeric_operators(operator: str, policy: str, actual: Any, expected: bool) -> None:
    assert holds({operator: {"s3:max-keys": policy}}, {"s3:max-keys": actual}) is expected


def test_numeric_non_numeric_context_value_does_not_match() -> None:
    assert not holds({"NumericEquals": {"k": "1"}}, {"k": "one"})
    assert not holds({"NumericEquals": {"k": "1"}}, {"k": True})
    assert holds({"NumericNotEquals": {"k": "1"}}, {"k": "one"})


def test_numeric_policy_value_must_be_a_number() -> None:
    with pytest.raises(MalformedPolicyDocument, match="not a valid number"):
        parse_conditions({"NumericEquals": {"k": "ten"}}, variables=True)


# -------------------------------------------------------------------------------- dates


NOON = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("operator", "policy", "expected"),
    [
        ("DateEquals", "2024-06-01T12:00:00Z", True),
        ("DateEquals", "2024-06-01T12:00:00+00:00", True),
        ("DateEquals", "2024-06-01T14:00:00+02:00", True),
        ("DateEquals", str(int(NOON.timestamp())), True),
        ("DateNotEquals", "2024-06-01T12:00:00Z", False),
        ("DateNotEquals", "2024-06-01T12:00:01Z", True),
        ("DateLessThan", "2024-06-01T12:00:01Z", True),
        ("DateLessThan", "2024-06-01T12:00:00Z", False),
        ("DateLessThanEquals", "2024-06-01T12:00:00Z", True),
        ("DateGreaterThan", "2024-06-01", True),
        ("DateGreaterThan", "2024-06-02", False),
        ("DateGreaterThanEquals", "2024-06-01T12:00:00.000Z", True),
    ],
)
def test_date_operators(operator: str, policy: str, expected: bool) -> None:
    assert holds({operator: {"aws:CurrentTime": policy}}, {"aws:CurrentTime": NOON}) is expected


@pytest.mark.parametrize(
    "actual",
    [NOON, NOON.replace(tzinfo=None), "2024-06-01T12:00:00Z", int(NOON.timestamp()), NOON.timestamp()],
)
def test_date_context_value_forms(actual: Any) -> None:
    assert holds({"DateEquals": {"aws:CurrentTime": "2024-06-01T12:00:00Z"}}, {"aws:CurrentTime": actual})


def test_date_unparseable_context_value_does_not_match() -> None:
    assert not holds({"DateLessThan": {"aws:CurrentTime": "2030-01-01"}}, {"aws:CurrentTime": "yesterday"})


def test_date_policy_value_must_be_a_date() -> None:
    with pytest.raises(MalformedPolicyDocument, match="not a valid date"):
        parse_conditions({"DateLessThan": {"aws:CurrentTime": "soon"}}, variables=True)


# ------------------------------------------------------------------------------- bool


@pytest.mark.parametrize(
    ("policy", "actual", "expected"),
    [
        ("true", True, True),
        ("true", False, False),
        ("false", False, True),
        ("True", "true", True),
        (True, True, True),
        ("false", "FALSE", True),
    ],
)
def test_bool(policy: Any, actual: Any, expected: bool) -> None:
    assert holds({"Bool": {"aws:SecureTransport": policy}}, {"aws:SecureTransport": actual}) is expected


def test_bool_rejects_non_boolean_policy_values() -> None:
    with pytest.raises(MalformedPolicyDocument, match="true or false"):
        parse_conditions({"Bool": {"aws:SecureTransport": "yes"}}, variables=True)


# ----------------------------------------------------------------------------- binary


def test_binary_equals() -> None:
    encoded = base64.b64encode(b"\x00\x01secret").decode()
    assert holds({"BinaryEquals": {"k": encoded}}, {"k": encoded})
    assert holds({"BinaryEquals": {"k": encoded}}, {"k": b"\x00\x01secret"})
    assert not holds({"BinaryEquals": {"k": encoded}}, {"k": base64.b64encode(b"other").decode()})
    assert not holds({"BinaryEquals": {"k": encoded}}, {"k": "!!not base64!!"})


def test_binary_equals_rejects_invalid_base64_in_policy() -> None:
    with pytest.raises(MalformedPolicyDocument, match="base64"):
        parse_conditions({"BinaryEquals": {"k": "***"}}, variables=True)


# -------------------------------------------------------------------------- IP address


@pytest.mark.parametrize(
    ("policy", "actual", "expected"),
    [
        ("203.0.113.0/24", "203.0.113.7", True),
        ("203.0.113.0/24", "203.0.114.7", False),
        ("203.0.113.7", "203.0.113.7", True),
        ("203.0.113.7/32", "203.0.113.8", False),
        (["10.0.0.0/8", "192.168.0.0/16"], "192.168.4.4", True),
        ("2001:db8::/32", "2001:db8:1::5", True),
        ("2001:db8::/32", "2001:db9::5", False),
        ("10.0.0.0/8", "::ffff:10.1.2.3", True),
        ("10.0.0.0/8", "2001:db8::1", False),
        ("0.0.0.0/0", "not-an-ip", False),
        ("10.0.0.1/8", "10.9.9.9", True),  # host bits in the policy CIDR are masked off
    ],
)
def test_ip_address(policy: Any, actual: str, expected: bool) -> None:
    assert holds({"IpAddress": {"aws:SourceIp": policy}}, {"aws:SourceIp": actual}) is expected


def test_not_ip_address() -> None:
    block = {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}}
    assert holds(block, {"aws:SourceIp": "8.8.8.8"})
    assert not holds(block, {"aws:SourceIp": "10.1.1.1"})
    assert not holds(block, {"aws:SourceIp": "2001:db8::1"})


def test_ip_address_rejects_invalid_cidr_in_policy() -> None:
    with pytest.raises(MalformedPolicyDocument, match="IP address"):
        parse_conditions({"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}, variables=True)


# --------------------------------------------------------------------------------- ARN


@pytest.mark.parametrize(
    ("operator", "policy", "actual", "expected"),
    [
        (
            "ArnEquals",
            "arn:aws:sns:us-east-1:111122223333:topic",
            "arn:aws:sns:us-east-1:111122223333:topic",
            True,
        ),
        ("ArnEquals", "arn:aws:sns:*:111122223333:topic", "arn:aws:sns:eu-west-1:111122223333:topic", True),
        ("ArnLike", "arn:aws:iam::111122223333:role/*", "arn:aws:iam::111122223333:role/a/b", True),
        ("ArnLike", "arn:aws:iam::*:role/Admin", "arn:aws:iam::111122223333:role/Admin", True),
        ("ArnLike", "arn:aws:iam::*:role/Admin", "arn:aws:iam::111122223333:role/admin", False),
        # "*" in the account segment must not swallow the following segment separators.
        ("ArnLike", "arn:aws:s3:::*", "arn:aws:s3:::bucket/key:with:colons", True),
        ("ArnLike", "arn:aws:sqs:*:111122223333:*", "arn:aws:sqs:us-east-1:999:111122223333:q", False),
        (
            "ArnLike",
            "arn:aws:logs:*:*:log-group:*",
            "arn:aws:logs:us-east-1:1:log-group:a:log-stream:b",
            True,
        ),
        ("ArnLike", "arn:aws:s3:::b", "not-an-arn", False),
        ("ArnNotEquals", "arn:aws:s3:::a", "arn:aws:s3:::b", True),
        ("ArnNotLike", "arn:aws:s3:::a*", "arn:aws:s3:::abc", False),
        ("ArnNotLike", "arn:aws:s3:::a*", "arn:aws:s3:::xyz", True),
    ],
)
def test_arn_operators(operator: str, policy: str, actual: str, expected: bool) -> None:
    assert holds({operator: {"aws:SourceArn": policy}}, {"aws:SourceArn": actual}) is expected


# -------------------------------------------------------------------------------- Null


def test_null() -> None:
    assert holds({"Null": {"aws:TokenIssueTime": "true"}})
    assert not holds({"Null": {"aws:TokenIssueTime": "true"}}, {"aws:TokenIssueTime": "2024-01-01"})
    assert holds({"Null": {"aws:TokenIssueTime": "false"}}, {"aws:TokenIssueTime": "2024-01-01"})
    assert not holds({"Null": {"aws:TokenIssueTime": "false"}})
    assert holds({"Null": {"aws:TagKeys": "true"}}, {"aws:TagKeys": []})
    assert holds({"Null": {"k": True}})


def test_null_rejects_if_exists_and_non_boolean_values() -> None:
    with pytest.raises(MalformedPolicyDocument, match="Unknown condition operator NullIfExists"):
        parse_conditions({"NullIfExists": {"k": "true"}}, variables=True)
    with pytest.raises(MalformedPolicyDocument, match="true or false"):
        parse_conditions({"Null": {"k": "maybe"}}, variables=True)


# ---------------------------------------------------------------- set operators (multi-valued)


def test_for_all_values() -> None:
    block = {"ForAllValues:StringEquals": {"aws:TagKeys": ["environment", "cost-center"]}}
    assert holds(block, {"aws:TagKeys": ["environment"]})
    assert holds(block, {"aws:TagKeys": ["environment", "cost-center"]})
    assert not holds(block, {"aws:TagKeys": ["environment", "owner"]})


def test_for_all_values_is_true_when_key_missing_or_empty() -> None:
    block = {"ForAllValues:StringEquals": {"aws:TagKeys": ["environment"]}}
    assert holds(block)
    assert holds(block, {"aws:TagKeys": []})


def test_for_any_value() -> None:
    block = {"ForAnyValue:StringEquals": {"aws:TagKeys": ["environment", "cost-center"]}}
    assert holds(block, {"aws:TagKeys": ["owner", "environment"]})
    assert not holds(block, {"aws:TagKeys": ["owner"]})


def test_for_any_value_is_false_when_key_missing_or_empty() -> None:
    block = {"ForAnyValue:StringEquals": {"aws:TagKeys": ["environment"]}}
    assert not holds(block)
    assert not holds(block, {"aws:TagKeys": []})


def test_for_any_value_negated_needs_one_value_outside_the_list() -> None:
    block = {"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["DataClass", "Owner"]}}
    assert holds(block, {"aws:TagKeys": ["DataClass", "Other"]})
    assert not holds(block, {"aws:TagKeys": ["DataClass", "Owner"]})
    assert not holds(block)


def test_for_all_values_negated_needs_every_value_outside_the_list() -> None:
    block = {"ForAllValues:StringNotEquals": {"aws:TagKeys": ["DataClass", "Owner"]}}
    assert holds(block, {"aws:TagKeys": ["a", "b"]})
    assert not holds(block, {"aws:TagKeys": ["a", "Owner"]})
    assert holds(block)


def test_set_qualifiers_with_wildcards_and_other_families() -> None:
    assert holds(
        {"ForAllValues:StringLike": {"sagemaker:VpcSubnets": "subnet-0a*"}},
        {"sagemaker:VpcSubnets": ["subnet-0a1", "subnet-0a2"]},
    )
    assert not holds(
        {"ForAllValues:StringLike": {"sagemaker:VpcSubnets": "subnet-0a*"}},
        {"sagemaker:VpcSubnets": ["subnet-0a1", "subnet-0b2"]},
    )
    assert holds({"ForAnyValue:StringEqualsIgnoreCase": {"k": "A"}}, {"k": ["b", "a"]})
    assert holds({"ForAnyValue:NumericGreaterThan": {"k": "5"}}, {"k": [1, 9]})
    assert holds({"ForAllValues:IpAddress": {"k": "10.0.0.0/8"}}, {"k": ["10.0.0.1", "10.2.0.1"]})
    assert not holds(
        {"ForAllValues:ArnLike": {"k": "arn:aws:s3:::a*"}}, {"k": ["arn:aws:s3:::ab", "arn:aws:s3:::b"]}
    )


def test_unqualified_operator_on_multivalued_key_matches_any_value() -> None:
    assert holds({"StringEquals": {"k": "b"}}, {"k": ["a", "b"]})
    assert not holds({"StringNotEquals": {"k": "b"}}, {"k": ["a", "b"]})
    assert holds({"StringNotEquals": {"k": "c"}}, {"k": ["a", "b"]})


def test_for_all_values_if_exists_suffix_parses() -> None:
    assert parse_operator("ForAllValues:StringLikeIfExists") == (1, "stringlike", True)
    assert parse_operator("ForAnyValue:ArnEquals") == (2, "arnequals", False)


# -------------------------------------------------------------------------- variables


def test_policy_variable_in_condition_value() -> None:
    block = {"StringEquals": {"aws:PrincipalTag/owner": "${aws:username}"}}
    assert holds(block, {"aws:PrincipalTag/owner": "alice"})  # aws:username derived from the caller
    assert not holds(block, {"aws:PrincipalTag/owner": "bob"})


def test_policy_variable_from_any_context_key_with_wildcards() -> None:
    block = {"StringLike": {"s3:prefix": ["home/${aws:PrincipalTag/team}/*", "shared/*"]}}
    ctx = {"aws:PrincipalTag/team": "ml"}
    assert holds(block, {**ctx, "s3:prefix": "home/ml/notebooks"})
    assert holds(block, {**ctx, "s3:prefix": "shared/x"})
    assert not holds(block, {**ctx, "s3:prefix": "home/ops/x"})


def test_substituted_value_is_literal_not_a_wildcard() -> None:
    block = {"StringLike": {"s3:prefix": "${aws:PrincipalTag/team}/x"}}
    assert holds(block, {"aws:PrincipalTag/team": "a*", "s3:prefix": "a*/x"})
    assert not holds(block, {"aws:PrincipalTag/team": "a*", "s3:prefix": "abc/x"})


def test_special_variables_insert_literal_characters() -> None:
    assert holds({"StringLike": {"k": "a${*}b"}}, {"k": "a*b"})
    assert not holds({"StringLike": {"k": "a${*}b"}}, {"k": "axb"})
    assert holds({"StringEquals": {"k": "${?}${$}"}}, {"k": "?$"})


def test_variable_default_value() -> None:
    block = {"StringEquals": {"k": "${aws:PrincipalTag/team, 'none'}"}}
    assert holds(block, {"k": "none"})
    assert holds(block, {"k": "ml", "aws:PrincipalTag/team": "ml"})
    assert holds({"StringEquals": {"k": "${missing:key, 'it''s'}"}}, {"k": "it's"})


def test_unresolvable_variable_matches_nothing_even_for_negated_operators() -> None:
    assert not holds({"StringEquals": {"k": "${missing:key}"}}, {"k": ""})
    assert not holds({"StringNotEquals": {"k": "${missing:key}"}}, {"k": "anything"})
    assert holds({"StringEquals": {"k": ["${missing:key}", "x"]}}, {"k": "x"})


def test_multivalued_key_cannot_be_used_as_variable() -> None:
    assert not holds({"StringEquals": {"k": "${aws:TagKeys}"}}, {"k": "a", "aws:TagKeys": ["a"]})


def test_variables_are_literal_text_in_2008_policies() -> None:
    block = {"StringEquals": {"k": "${aws:username}"}}
    assert holds(block, {"k": "${aws:username}"}, variables=False)
    assert not holds(block, {"k": "alice"}, variables=False)


def test_variables_in_arn_conditions_and_bool() -> None:
    assert holds(
        {"ArnLike": {"aws:SourceArn": "arn:aws:s3:::${aws:username}-*"}},
        {"aws:SourceArn": "arn:aws:s3:::alice-bucket"},
    )
    assert holds({"Bool": {"k": "${flag}"}}, {"k": True, "flag": "TRUE"})


def test_derived_principal_keys() -> None:
    assert holds({"StringEquals": {"aws:PrincipalAccount": "111122223333", "aws:PrincipalType": "User"}})
    assert holds({"ArnEquals": {"aws:PrincipalArn": ALICE.arn}})
    # Explicit context wins over derived values.
    assert holds({"StringEquals": {"aws:username": "carol"}}, {"aws:username": "carol"})


# ------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    "block",
    [
        {"StringEqualz": {"k": "v"}},
        {"ForSomeValues:StringEquals": {"k": "v"}},
        {"IfExists": {"k": "v"}},
    ],
)
def test_unknown_operators_are_rejected(block: dict[str, Any]) -> None:
    with pytest.raises(MalformedPolicyDocument, match="Unknown condition operator"):
        parse_conditions(block, variables=True)


@pytest.mark.parametrize(
    "block",
    [
        "StringEquals",
        {"StringEquals": "k"},
        {"StringEquals": {}},
        {"StringEquals": {"k": {"nested": "object"}}},
        {"StringEquals": {"k": [None]}},
    ],
)
def test_malformed_condition_blocks_are_rejected(block: Any) -> None:
    with pytest.raises(MalformedPolicyDocument):
        parse_conditions(block, variables=True)


def test_current_time_is_derived_when_not_supplied() -> None:
    assert holds({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}})
    assert holds({"NumericGreaterThan": {"aws:EpochTime": "1577836800"}})
    assert not holds(
        {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}},
        {"aws:CurrentTime": "2019-01-01T00:00:00Z"},
    )
