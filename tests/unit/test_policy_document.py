"""Parsing and validation of policy documents."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stratum.policy import POLICY_KINDS, MalformedPolicyDocument, Policy, parse_policy

ALLOW_ALL: dict[str, Any] = {"Effect": "Allow", "Action": "*", "Resource": "*"}


def doc(*statements: dict[str, Any], version: str | None = "2012-10-17", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"Statement": list(statements), **extra}
    if version is not None:
        out["Version"] = version
    return out


def rejects(document: Any, match: str, kind: str = "identity") -> None:
    with pytest.raises(MalformedPolicyDocument, match=match):
        parse_policy(document, kind=kind)


# ------------------------------------------------------------------------------ loading


def test_parses_json_string_bytes_and_mapping() -> None:
    for source in (json.dumps(doc(ALLOW_ALL)), json.dumps(doc(ALLOW_ALL)).encode(), doc(ALLOW_ALL)):
        policy = parse_policy(source)
        assert isinstance(policy, Policy)
        assert len(policy.statements) == 1


def test_policy_metadata() -> None:
    policy = parse_policy(doc(ALLOW_ALL, Id="pid"), kind="boundary", name="MyBoundary")
    assert (policy.kind, policy.version, policy.id, policy.name) == (
        "boundary",
        "2012-10-17",
        "pid",
        "MyBoundary",
    )
    assert json.loads(policy.to_json()) == doc(ALLOW_ALL, Id="pid")


def test_single_statement_object_is_accepted() -> None:
    policy = parse_policy({"Version": "2012-10-17", "Statement": ALLOW_ALL})
    assert len(policy.statements) == 1


def test_statement_fields_are_compiled() -> None:
    policy = parse_policy(
        doc(
            {"Sid": "A", "Effect": "Allow", "Action": ["s3:Get*"], "Resource": "arn:aws:s3:::b/*"},
            {
                "Effect": "Deny",
                "NotAction": "iam:*",
                "NotResource": ["arn:aws:s3:::b"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        )
    )
    first, second = policy.statements
    assert (first.index, first.sid, first.effect, first.is_allow, first.not_action) == (
        0,
        "A",
        "Allow",
        True,
        False,
    )
    assert (second.index, second.sid, second.is_allow, second.not_action, second.not_resource) == (
        1,
        None,
        False,
        True,
        True,
    )
    assert len(second.conditions) == 1
    assert first.principal is None


def test_candidates_split_denies_and_allows_by_action_and_are_cached() -> None:
    policy = parse_policy(
        doc(
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"},
        )
    )
    denies, allows = policy.candidates("s3:getobject")
    assert [s.index for s in denies] == [1]
    assert [s.index for s in allows] == [0]
    assert policy.candidates("s3:getobject") is policy.candidates("s3:getobject")
    assert [s.index for s in policy.candidates("ec2:runinstances")[1]] == [2]


# ------------------------------------------------------------------------ version / top


def test_version_absent_means_2008() -> None:
    assert parse_policy(doc(ALLOW_ALL, version=None)).version == "2008-10-17"
    assert parse_policy(doc(ALLOW_ALL, version="2008-10-17")).version == "2008-10-17"


@pytest.mark.parametrize("version", ["2012-10-18", "", 2012, None])
def test_invalid_version_is_rejected(version: Any) -> None:
    rejects({"Version": version, "Statement": [ALLOW_ALL]}, "valid version string")


@pytest.mark.parametrize("source", ["{not json", "[1, 2]", '"string"', b"\xff\xfe", "", 42])
def test_syntax_errors(source: Any) -> None:
    rejects(source, r"Syntax errors in policy\.")


def test_unknown_top_level_field() -> None:
    rejects(doc(ALLOW_ALL, Foo=1), "^Unknown field Foo$")


def test_id_must_be_string() -> None:
    rejects(doc(ALLOW_ALL, Id=5), "Id must be a string")


def test_missing_or_empty_statement() -> None:
    rejects({"Version": "2012-10-17"}, "Missing required field Statement")
    rejects({"Version": "2012-10-17", "Statement": []}, "at least one statement")


def test_statement_must_be_object() -> None:
    rejects(doc(ALLOW_ALL, "Allow"), "^Statement 2: Statement must be an object$")  # type: ignore[arg-type]


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown policy kind"):
        parse_policy(doc(ALLOW_ALL), kind="bucket")
    assert {"identity", "resource", "trust", "boundary", "session", "endpoint"} <= POLICY_KINDS


# --------------------------------------------------------------------- statement fields


def test_unknown_statement_field() -> None:
    rejects(doc(ALLOW_ALL, {**ALLOW_ALL, "Foo": "bar"}), "^Statement 2: Unknown field Foo$")


def test_sid_rules() -> None:
    rejects(doc({**ALLOW_ALL, "Sid": 1}), "Sid must be a string")
    rejects(doc({**ALLOW_ALL, "Sid": "A"}, {**ALLOW_ALL, "Sid": "A"}), r"Statement IDs \(SID\)")
    parse_policy(doc({**ALLOW_ALL, "Sid": ""}, {**ALLOW_ALL, "Sid": ""}))  # empty Sids are not identifiers


def test_effect_rules() -> None:
    rejects(doc({"Action": "*", "Resource": "*"}), "Missing required field Effect")
    rejects(doc({**ALLOW_ALL, "Effect": "allow"}), "Invalid effect: allow")
    rejects(doc({**ALLOW_ALL, "Effect": ["Allow"]}), "Invalid effect")


def test_action_rules() -> None:
    rejects(doc({"Effect": "Allow", "Resource": "*"}), "Policy statement must contain actions.")
    rejects(doc({**ALLOW_ALL, "NotAction": "s3:*"}), "Action and NotAction cannot both be specified")
    rejects(
        doc(ALLOW_ALL, {**ALLOW_ALL, "Action": 5}),
        "^Statement 2: Action must be a string or list of strings$",
    )
    rejects(doc({**ALLOW_ALL, "Action": ["s3:GetObject", 5]}), "Action must be a string or list of strings")
    rejects(doc({**ALLOW_ALL, "Action": []}), "must contain actions")
    rejects(doc({**ALLOW_ALL, "Action": ""}), "Action must be a string")
    rejects(doc({"Effect": "Allow", "NotAction": {"a": 1}, "Resource": "*"}), "NotAction must be a string")


@pytest.mark.parametrize("action", ["GetObject", "s3:", ":GetObject", "s3"])
def test_action_needs_vendor_prefix(action: str) -> None:
    rejects(doc({**ALLOW_ALL, "Action": action}), "must be prefaced by a vendor")


def test_resource_rules_for_identity_policies() -> None:
    rejects(doc({"Effect": "Allow", "Action": "*"}), "Policy statement must contain resources.")
    rejects(doc({**ALLOW_ALL, "NotResource": "*"}), "Resource and NotResource cannot both be specified")
    rejects(doc({**ALLOW_ALL, "Resource": "bucket"}), 'Resource bucket must be in ARN format or "\\*".')
    rejects(
        doc({**ALLOW_ALL, "Resource": ["arn:aws:s3:::b", 3]}), "Resource must be a string or list of strings"
    )


def test_resource_is_optional_in_resource_policies_and_forbidden_in_trust_policies() -> None:
    statement = {"Effect": "Allow", "Principal": "*", "Action": "ecr:*"}
    assert parse_policy(doc(statement), kind="resource").statements[0].resources is None
    rejects(doc({**statement, "Resource": "*"}), "Has prohibited field Resource", kind="trust")
    rejects(doc({**statement, "NotResource": "*"}), "Has prohibited field NotResource", kind="trust")
    trust = parse_policy(doc({**statement, "Action": "sts:AssumeRole"}), kind="trust")
    assert trust.statements[0].resources is None


def test_trust_policy_still_needs_an_action() -> None:
    rejects(doc({"Effect": "Allow", "Principal": "*"}), "must contain actions", kind="trust")


# ---------------------------------------------------------------------------- principals


@pytest.mark.parametrize("kind", ["identity", "boundary", "session", "scp"])
@pytest.mark.parametrize("key", ["Principal", "NotPrincipal"])
def test_principal_forbidden_in_identity_style_policies(kind: str, key: str) -> None:
    rejects(doc({**ALLOW_ALL, key: "*"}), r"Policy document should not specify a principal\.", kind=kind)


@pytest.mark.parametrize("kind", ["resource", "trust"])
def test_principal_required_in_resource_and_trust_policies(kind: str) -> None:
    rejects(
        doc({"Effect": "Allow", "Action": "sts:AssumeRole"}), "Missing required field Principal", kind=kind
    )


def test_principal_optional_in_endpoint_policies() -> None:
    parse_policy(doc(ALLOW_ALL), kind="endpoint")
    policy = parse_policy(doc({**ALLOW_ALL, "Principal": "*"}), kind="endpoint")
    assert policy.statements[0].principal is not None


def test_principal_and_not_principal_together() -> None:
    rejects(
        doc({**ALLOW_ALL, "Principal": "*", "NotPrincipal": "*"}), "cannot both be specified", kind="resource"
    )


def test_principal_forms_are_normalised() -> None:
    statement = {
        **ALLOW_ALL,
        "Principal": {
            "AWS": [
                "111122223333",
                "arn:aws:iam::444455556666:root",
                "arn:aws:iam::111122223333:user/alice",
                "arn:aws:iam::111122223333:role/path/R",
                "arn:aws:sts::111122223333:assumed-role/R/s",
            ],
            "Service": "events.amazonaws.com",
            "Federated": "cognito-identity.amazonaws.com",
            "CanonicalUser": "79a59df900b949e55d96a1e698fbaced",
        },
    }
    spec = parse_policy(doc(statement), kind="resource").statements[0].principal
    assert spec is not None
    assert spec.accounts == {"111122223333", "444455556666"}
    assert spec.arns == {
        "arn:aws:iam::111122223333:user/alice",
        "arn:aws:iam::111122223333:role/path/R",
        "arn:aws:sts::111122223333:assumed-role/R/s",
    }
    assert spec.services == {"events.amazonaws.com"}
    assert spec.federated == {"cognito-identity.amazonaws.com"}
    assert not spec.wildcard


@pytest.mark.parametrize("principal", ["*", {"AWS": "*"}, {"AWS": ["111122223333", "*"]}])
def test_wildcard_principals(principal: Any) -> None:
    spec = parse_policy(doc({**ALLOW_ALL, "Principal": principal}), kind="resource").statements[0].principal
    assert spec is not None and spec.wildcard


@pytest.mark.parametrize(
    "principal",
    [
        "alice",
        {},
        {"Users": "x"},
        {"AWS": "alice"},
        {"AWS": "arn:aws:iam::111122223333:user/*"},
        {"AWS": "arn:aws:s3:::bucket"},
        {"AWS": []},
        {"AWS": [1]},
        {"Service": ""},
        ["*"],
    ],
)
def test_invalid_principals(principal: Any) -> None:
    rejects(doc({**ALLOW_ALL, "Principal": principal}), "Invalid principal in policy", kind="resource")


# ---------------------------------------------------------------------------- conditions


def test_condition_errors_name_the_statement() -> None:
    rejects(
        doc(ALLOW_ALL, {**ALLOW_ALL, "Condition": {"StringEqualz": {"k": "v"}}}),
        "^Statement 2: Unknown condition operator StringEqualz$",
    )
    rejects(doc({**ALLOW_ALL, "Condition": ["StringEquals"]}), "Condition must be an object")
    rejects(doc({**ALLOW_ALL, "Condition": {"NumericLessThan": {"k": "x"}}}), "not a valid number")


def test_every_operator_family_parses() -> None:
    condition = {
        "StringEquals": {"a": "x"},
        "StringNotEqualsIgnoreCase": {"b": ["x", "y"]},
        "StringLikeIfExists": {"c": "x*"},
        "NumericGreaterThanEquals": {"d": 1},
        "DateLessThan": {"e": "2030-01-01T00:00:00Z"},
        "Bool": {"f": True},
        "BinaryEquals": {"g": "QUJD"},
        "NotIpAddress": {"h": "10.0.0.0/8"},
        "ArnNotLike": {"i": "arn:aws:s3:::*"},
        "Null": {"j": "true"},
        "ForAllValues:StringEquals": {"k": ["a"]},
        "ForAnyValue:StringLike": {"l": "a*"},
    }
    policy = parse_policy(doc({**ALLOW_ALL, "Condition": condition}))
    assert len(policy.statements[0].conditions) == len(condition)
