"""Pieces of the IAM policy simulator that need no server: statement positions, context entries."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from stratum.protocol.errors import ServiceError
from stratum.services.iam.simulation import context_from_entries, statement_positions


def test_positions_of_a_single_statement_object() -> None:
    text = ('{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"dynamodb:*","Resource":"*",'
            '"Condition":{"DateGreaterThan":{"aws:CurrentTime":"2018-08-16T12:00:00Z"}}}}')
    assert statement_positions(text) == [((1, 38), (1, 167))]  # what AWS reports for this policy


def test_positions_in_a_pretty_array_with_tricky_strings() -> None:
    statements = [{"Sid": "A", "Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/{x}]\""},
                  {"Effect": "Deny", "Action": "s3:Delete*", "Resource": "*"}]
    text = json.dumps({"Id": "x", "Statement": statements, "Version": "2012-10-17"}, indent=2)
    lines = text.splitlines()
    (first_start, first_end), (second_start, second_end) = statement_positions(text)
    assert lines[first_start[0] - 1][first_start[1] - 2] == "{"
    assert lines[first_end[0] - 1][first_end[1] - 2] == "}"
    assert first_end[0] == first_start[0] + 5
    assert second_start[0] == first_end[0] + 1 and second_end[0] == second_start[0] + 4


def test_unparseable_text_has_no_positions() -> None:
    assert statement_positions("[]") == []
    assert statement_positions('{"Statement": ') == []


def test_context_entry_conversion() -> None:
    context = context_from_entries([
        {"ContextKeyName": "aws:CurrentTime", "ContextKeyValues": ["2020-01-02T03:04:05Z"], "ContextKeyType": "date"},
        {"ContextKeyName": "s3:max-keys", "ContextKeyValues": ["10"], "ContextKeyType": "numeric"},
        {"ContextKeyName": "aws:SecureTransport", "ContextKeyValues": ["TRUE"], "ContextKeyType": "boolean"},
        {"ContextKeyName": "aws:TagKeys", "ContextKeyValues": ["a"], "ContextKeyType": "stringList"},
    ])
    assert context["aws:CurrentTime"] == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert context["s3:max-keys"] == 10 and context["aws:SecureTransport"] is True
    assert context["aws:TagKeys"] == ["a"]
    # Keys the evaluator would derive from the caller stay unknown unless given.
    assert context["aws:PrincipalArn"] is None and context["aws:EpochTime"] is None


@pytest.mark.parametrize("kind, value", [("numeric", "ten"), ("boolean", "yes"), ("date", "someday"), ("ip", "x")])
def test_bad_context_values(kind: str, value: str) -> None:
    with pytest.raises(ServiceError) as err:
        context_from_entries([{"ContextKeyName": "k:k", "ContextKeyValues": [value], "ContextKeyType": kind}])
    assert err.value.code == "InvalidInput"
