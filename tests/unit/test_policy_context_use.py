"""Which policies can read the request context, and that a request without one gets the same
decision from policies that cannot (the server then skips building it)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from stratum.policy import AuthzRequest, Caller, PolicySet, evaluate, parse_policy

ACCT, OTHER = "111122223333", "444455556666"
CALLERS = [
    Caller(arn=f"arn:aws:iam::{ACCT}:user/alice", account=ACCT, kind="user"),
    Caller(arn=f"arn:aws:sts::{ACCT}:assumed-role/Analyst/s1", account=ACCT, kind="assumed-role",
           role_arn=f"arn:aws:iam::{ACCT}:role/Analyst"),
    Caller(arn=f"arn:aws:iam::{OTHER}:user/bob", account=OTHER, kind="user"),
    Caller(arn=f"arn:aws:iam::{ACCT}:root", account=ACCT, kind="root"),
]
CONTEXT = {"aws:username": "alice", "aws:SourceIp": "10.0.0.1", "aws:PrincipalTag/team": "ml",
           "aws:SecureTransport": False, "aws:ResourceTag/stage": "dev"}


def doc(*statements: dict[str, Any], version: str | None = "2012-10-17") -> dict[str, Any]:
    d: dict[str, Any] = {"Statement": list(statements)}
    if version:
        d["Version"] = version
    return d


@pytest.mark.parametrize(("statement", "version", "expected"), [
    ({"Effect": "Allow", "Action": "*", "Resource": "*"}, "2012-10-17", False),
    ({"Effect": "Deny", "NotAction": "s3:Get*", "NotResource": "arn:aws:s3:::b/*"}, "2012-10-17", False),
    ({"Effect": "Allow", "Action": "s3:*", "Resource": "*",
      "Condition": {"Bool": {"aws:SecureTransport": "true"}}}, "2012-10-17", True),
    ({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${aws:username}/*"}, "2012-10-17", True),
    ({"Effect": "Deny", "Action": "s3:*", "NotResource": "arn:aws:s3:::b/${aws:username}/*"}, "2012-10-17", True),
    # Version 2008: no policy variables, the text is literal.
    ({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/${aws:username}/*"}, None, False),
], ids=["allow-all", "not-action-not-resource", "condition", "variable", "variable-in-not-resource", "2008"])
def test_policy_uses_context(statement: dict[str, Any], version: str | None, expected: bool) -> None:
    assert parse_policy(doc(statement, version=version)).uses_context is expected


def test_policy_set_uses_context_if_any_policy_does() -> None:
    plain = parse_policy(doc({"Effect": "Allow", "Action": "*", "Resource": "*"}))
    conditional = parse_policy(doc({"Effect": "Deny", "Action": "*", "Resource": "*",
                                    "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "false"}}}))
    resource = parse_policy(doc({"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*",
                                 "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-1"}}}), kind="resource")
    assert not PolicySet(identity=(plain,), boundary=plain, session=(plain,), scps=[plain, [plain]]).uses_context()
    assert PolicySet(identity=(plain, conditional)).uses_context()
    assert PolicySet(identity=(plain,), resource=resource).uses_context()
    assert PolicySet(identity=(plain,), boundary=conditional).uses_context()
    assert PolicySet(identity=(plain,), session=(conditional,)).uses_context()
    assert PolicySet(identity=(plain,), endpoint=conditional).uses_context()
    assert PolicySet(identity=(plain,), scps=[plain, [plain, conditional]]).uses_context()


ACTIONS = ["s3:GetObject", "s3:PutObject", "sagemaker:StartPipelineExecution", "sagemaker:DescribePipeline",
           "iam:PassRole"]
PATTERNS = ["*", "arn:aws:s3:::b/*", "arn:aws:s3:::b/k", "arn:aws:sagemaker:*:*:pipeline/*",
            f"arn:aws:sagemaker:us-east-1:{ACCT}:pipeline/p", "arn:aws:iam::*:role/*"]
RESOURCES = ["arn:aws:s3:::b/k", "arn:aws:s3:::c/k", f"arn:aws:sagemaker:us-east-1:{ACCT}:pipeline/p",
             f"arn:aws:sagemaker:us-east-1:{OTHER}:pipeline/q", f"arn:aws:iam::{ACCT}:role/r"]


def _statement(rng: random.Random, principal: bool) -> dict[str, Any]:
    s: dict[str, Any] = {"Effect": rng.choice(["Allow", "Allow", "Deny"])}
    s["NotAction" if rng.random() < 0.2 else "Action"] = rng.sample(
        ACTIONS + ["s3:*", "sagemaker:*", "*"], rng.randint(1, 3))
    s["NotResource" if rng.random() < 0.2 else "Resource"] = rng.sample(PATTERNS, rng.randint(1, 2))
    if principal:
        s["Principal"] = rng.choice(["*", {"AWS": f"arn:aws:iam::{OTHER}:root"}, {"AWS": ACCT}])
    return s


def _policy(rng: random.Random, kind: str) -> Any:
    statements = [_statement(rng, kind == "resource") for _ in range(rng.randint(1, 4))]
    return parse_policy(doc(*statements), kind=kind)


def test_context_free_policies_decide_the_same_without_context() -> None:
    rng = random.Random(20261122)
    for _ in range(3000):
        policies = PolicySet(
            identity=tuple(_policy(rng, "identity") for _ in range(rng.randint(0, 2))),
            resource=_policy(rng, "resource") if rng.random() < 0.4 else None,
            boundary=_policy(rng, "boundary") if rng.random() < 0.2 else None,
            session=(_policy(rng, "session"),) if rng.random() < 0.2 else (),
            scps=[_policy(rng, "scp")] if rng.random() < 0.2 else (),
            resource_policy_required=rng.random() < 0.1)
        assert not policies.uses_context()
        caller = rng.choice(CALLERS)
        resource = rng.choice(RESOURCES)
        owner = resource.split(":")[4] or None
        common = {"caller": caller, "action": rng.choice(ACTIONS), "resource": resource, "resource_account": owner}
        with_context = evaluate(AuthzRequest(**common, context=dict(CONTEXT)), policies)
        without = evaluate(AuthzRequest(**common, context={}), policies)
        assert (with_context.allowed, with_context.decision, with_context.denying_policy_type,
                with_context.matched) == (without.allowed, without.decision, without.denying_policy_type,
                                          without.matched)
