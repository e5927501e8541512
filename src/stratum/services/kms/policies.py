"""Key policies: the default ones KMS writes, and the checks it applies to the ones callers write."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, select

from stratum.policy import parse_policy
from stratum.policy.errors import MalformedPolicyDocument
from stratum.services.iam.tables import iam_roles, iam_users

from . import errors

MAX_POLICY_BYTES = 32 * 1024
DEFAULT_POLICY_NAME = "default"
# What an AWS managed key lets every principal of the account do through its service.
_SERVICE_USE_ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]


def default_key_policy(account_id: str) -> str:
    """The policy CreateKey writes when none is given: the account's IAM policies decide."""
    return json.dumps({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }],
    }, indent=2)


def aws_managed_key_policy(account_id: str, service: str, region: str) -> str:
    """The policy of an AWS managed key such as aws/s3: every principal of the account may use it,
    but only through the service; the account may read its metadata directly. Nobody may change it."""
    return json.dumps({
        "Version": "2012-10-17",
        "Id": f"auto-{service}-2",
        "Statement": [
            {
                "Sid": f"Allow access through {service.upper()} for all principals in the account that are "
                       f"authorized to use {service.upper()}",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": _SERVICE_USE_ACTIONS,
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:CallerAccount": account_id,
                                               "kms:ViaService": f"{service}.{region}.amazonaws.com"}},
            },
            {
                "Sid": "Allow direct access to key metadata to the account",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": ["kms:Describe*", "kms:Get*", "kms:List*"],
                "Resource": "*",
            },
        ],
    }, indent=2)


def validate_key_policy(conn: Connection, document: str) -> None:
    """Grammar, size and principals, as KMS checks them before accepting a key policy."""
    if len(document.encode()) > MAX_POLICY_BYTES:
        raise errors.limit_exceeded(f"Key policy must not exceed {MAX_POLICY_BYTES} bytes.")
    try:
        policy = parse_policy(document, kind="resource")
    except MalformedPolicyDocument as exc:
        raise errors.malformed_policy(str(exc) or "The policy is not valid JSON.") from None
    statements = policy.document.get("Statement")
    listed = statements if isinstance(statements, list) else [statements]
    arns = {arn for stmt in listed if isinstance(stmt, dict) for arn in _principal_arns(stmt)}
    if arns and not _all_exist(conn, arns):
        raise errors.malformed_policy("Policy contains a statement with one or more invalid principals.")


def _principal_arns(statement: dict[str, Any]) -> list[str]:
    """IAM user and role ARNs named by a statement (accounts and role sessions need no check)."""
    principal = statement.get("Principal") or statement.get("NotPrincipal")
    if not isinstance(principal, dict):
        return []
    raw = principal.get("AWS")
    values = raw if isinstance(raw, list) else [raw]
    return [v for v in values if isinstance(v, str) and v.startswith("arn:")
            and v.split(":", 5)[2:3] == ["iam"] and (":user/" in v or ":role/" in v)]


def _all_exist(conn: Connection, arns: set[str]) -> bool:
    found = {r[0] for r in conn.execute(select(iam_users.c.arn).where(iam_users.c.arn.in_(arns)))}
    found.update(r[0] for r in conn.execute(select(iam_roles.c.arn).where(iam_roles.c.arn.in_(arns))))
    return arns <= found
