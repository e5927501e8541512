"""IAM's documented quotas on what one request can store, with IAM's own errors.

From the IAM User Guide, "IAM and AWS STS quotas": 50 tags per IAM resource; a managed policy of
at most 6,144 characters; the inline policies of one principal together at most 2,048 characters
for a user, 5,120 for a group and 10,240 for a role; a role trust policy at most 2,048 (the default
quota). "IAM does not count white space when calculating the size of a policy against these
limits." Each is refused with ``LimitExceeded`` (HTTP 409), worded as IAM words it.

The size checks run before a document is parsed, so an oversized one costs a count, not a parse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from sqlalchemy import Connection, select

from stratum.protocol.errors import ServiceError
from stratum.services.iam.tables import iam_inline_policies

MAX_TAGS: Final = 50
MANAGED_POLICY_SIZE: Final = 6144
TRUST_POLICY_SIZE: Final = 2048
INLINE_POLICY_SIZE: Final[Mapping[str, int]] = {"user": 2048, "group": 5120, "role": 10240}

# The whitespace a policy document (JSON, characters U+0009, U+000A, U+000D, U+0020-U+00FF) can hold.
_WHITESPACE: Final = (" ", "\t", "\n", "\r")


def limit_exceeded(message: str) -> ServiceError:
    return ServiceError("LimitExceeded", message, 409)


def policy_size(document: str) -> int:
    """Characters IAM counts against a size quota: all but whitespace."""
    return len(document) - sum(document.count(ch) for ch in _WHITESPACE)


def check_managed_policy(document: str) -> None:
    if policy_size(document) > MANAGED_POLICY_SIZE:
        raise limit_exceeded(f"Cannot exceed quota for PolicySize: {MANAGED_POLICY_SIZE}")


def check_trust_policy(document: str) -> None:
    if policy_size(document) > TRUST_POLICY_SIZE:
        raise limit_exceeded(f"Cannot exceed quota for ACLSizePerRole: {TRUST_POLICY_SIZE}")


def _check_inline_size(kind: str, name: str, size: int) -> None:
    quota = INLINE_POLICY_SIZE[kind]
    if size > quota:
        raise limit_exceeded(f"Maximum policy size of {quota} bytes exceeded for {kind} {name}")


def check_inline_policy(kind: str, name: str, document: str) -> None:
    """The new document alone against the principal's quota (before parsing it)."""
    _check_inline_size(kind, name, policy_size(document))


def check_inline_total(conn: Connection, account_id: str, kind: str, name: str, policy_name: str,
                       document: str) -> None:
    """The principal's inline policies together, ``document`` replacing any of the same name."""
    t = iam_inline_policies
    others: Iterable[str] = conn.execute(select(t.c.document).where(
        (t.c.account_id == account_id) & (t.c.principal_type == kind) & (t.c.principal_name == name)
        & (t.c.policy_name != policy_name))).scalars()
    _check_inline_size(kind, name, policy_size(document) + sum(policy_size(d) for d in others))


def check_tag_count(count: int) -> None:
    """A resource's tag count after a TagUser/TagRole (the request alone is limited by the model)."""
    if count > MAX_TAGS:
        raise limit_exceeded("The number of tags has reached the maximum limit.")
