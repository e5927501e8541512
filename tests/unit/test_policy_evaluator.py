"""Authorization decisions: matching, policy types, same- and cross-account logic, messages."""

from __future__ import annotations

from typing import Any

import pytest

from stratum.policy import (
    ALLOWED,
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    AuthzRequest,
    Caller,
    Decision,
    MatchedStatement,
    Policy,
    PolicySet,
    access_denied_message,
    evaluate,
    parse_policy,
)

ACCT = "111122223333"
OTHER = "444455556666"
BUCKET_KEY = "arn:aws:s3:::bucket/key"
ALICE = Caller(arn=f"arn:aws:iam::{ACCT}:user/alice", account=ACCT, kind="user")
CAROL = Caller(arn=f"arn:aws:iam::{ACCT}:user/carol", account=ACCT, kind="user")
ROOT = Caller(arn=f"arn:aws:iam::{ACCT}:root", account=ACCT, kind="root")
ROLE_ARN = f"arn:aws:iam::{ACCT}:role/team/Analyst"
SESSION_ARN = f"arn:aws:sts::{ACCT}:assumed-role/Analyst/s1"
ANALYST = Caller(arn=SESSION_ARN, account=ACCT, kind="assumed-role", role_arn=ROLE_ARN)
BOB = Caller(arn=f"arn:aws:iam::{OTHER}:user/bob", account=OTHER, kind="user")
OTHER_ROLE_ARN = f"arn:aws:iam::{OTHER}:role/Reader"
OTHER_SESSION = Caller(
    arn=f"arn:aws:sts::{OTHER}:assumed-role/Reader/x",
    account=OTHER,
    kind="assumed-role",
    role_arn=OTHER_ROLE_ARN,
)
EVENTS = Caller(arn="events.amazonaws.com", account="", kind="service", service="events.amazonaws.com")
ANONYMOUS = Caller(arn="*", account="", kind="anonymous")


def allow(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = "*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def policy(
    *statements: dict[str, Any], kind: str = "identity", name: str = "P", version: str | None = "2012-10-17"
) -> Policy:
    document: dict[str, Any] = {"Statement": list(statements)}
    if version:
        document["Version"] = version
    return parse_policy(document, kind=kind, name=name)


def grant(
    principal: Any, action: Any = "*", resource: Any = "*", effect: str = "Allow", **extra: Any
) -> dict[str, Any]:
    return {"Effect": effect, "Principal": principal, "Action": action, "Resource": resource, **extra}


def resource_policy(*statements: dict[str, Any]) -> Policy:
    return policy(*statements, kind="resource", name="ResourcePolicy")


def request(
    caller: Caller = ALICE,
    action: str = "s3:GetObject",
    resource: str = BUCKET_KEY,
    resource_account: str | None = None,
    **context: Any,
) -> AuthzRequest:
    return AuthzRequest(caller, action, resource, resource_account, context)


def decide(req: AuthzRequest, **policies: Any) -> Decision:
    return evaluate(req, PolicySet(**policies))


def allowed(req: AuthzRequest, **policies: Any) -> bool:
    return decide(req, **policies).allowed


# ------------------------------------------------------------------------ action matching


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("s3:GetObject", "s3:GetObject", True),
        ("S3:GETOBJECT", "s3:getobject", True),
        ("s3:getobject", "S3:GetObject", True),
        ("s3:Get*", "s3:GetObjectAcl", True),
        ("s3:Get*", "s3:PutObject", False),
        ("s3:*Object", "s3:DeleteObject", True),
        ("s3:Get?bject", "s3:GetObject", True),
        ("s3:Get?bject", "s3:GetObbject", False),
        ("s3:*", "s3:ListBucket", True),
        ("s3:*", "s3express:CreateSession", False),
        ("s3:Get", "s3:GetObject", False),
        ("*", "sagemaker:CreatePipeline", True),
        ("sagemaker:*Pipeline*", "sagemaker:DescribePipelineExecution", True),
    ],
)
def test_action_matching(pattern: str, action: str, expected: bool) -> None:
    assert allowed(request(action=action), identity=[policy(allow(pattern))]) is expected


def test_action_list() -> None:
    identity = [policy(allow(["s3:GetObject", "s3:PutObject"]))]
    assert allowed(request(action="s3:PutObject"), identity=identity)
    assert not allowed(request(action="s3:DeleteObject"), identity=identity)


def test_not_action_allow_covers_everything_else() -> None:
    identity = [policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})]
    assert allowed(request(action="s3:GetObject"), identity=identity)
    assert not allowed(request(action="iam:CreateUser"), identity=identity)


def test_not_action_deny_denies_everything_else() -> None:
    identity = [policy(allow(), {"Effect": "Deny", "NotAction": ["iam:*", "sts:*"], "Resource": "*"})]
    assert allowed(request(action="iam:ListUsers"), identity=identity)
    assert decide(request(action="s3:GetObject"), identity=identity).decision == EXPLICIT_DENY


def test_action_cache_is_per_action() -> None:
    shared = policy(allow("s3:GetObject"), deny("s3:PutObject"))
    for _ in range(2):
        assert allowed(request(action="s3:GetObject"), identity=[shared])
        assert decide(request(action="s3:PutObject"), identity=[shared]).decision == EXPLICIT_DENY
        assert decide(request(action="s3:ListBucket"), identity=[shared]).decision == IMPLICIT_DENY


# ---------------------------------------------------------------------- resource matching


@pytest.mark.parametrize(
    ("pattern", "resource", "expected"),
    [
        ("arn:aws:s3:::bucket/key", "arn:aws:s3:::bucket/key", True),
        ("arn:aws:s3:::bucket/key", "arn:aws:s3:::bucket/Key", False),
        ("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b/c", True),
        ("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket", False),
        ("arn:aws:s3:::bucket*", "arn:aws:s3:::bucket-2/x", True),
        ("arn:aws:s3:::bucket/?", "arn:aws:s3:::bucket/ab", False),
        ("arn:aws:s3:::*", "arn:aws:s3:::b/k:with:colons", True),
        (
            "arn:aws:sagemaker:*:111122223333:pipeline/*",
            "arn:aws:sagemaker:us-east-1:111122223333:pipeline/p",
            True,
        ),
        (
            "arn:aws:sagemaker:*:111122223333:pipeline/*",
            "arn:aws:sagemaker:us-east-1:444455556666:pipeline/p",
            False,
        ),
        ("arn:aws:sagemaker:*:*:*", "arn:aws:sagemaker:us-east-1:1:pipeline/p/execution/e", True),
        # a "*" in the region segment must not swallow the account segment
        ("arn:aws:sqs:*:111122223333:q", "arn:aws:sqs:us-east-1:999:111122223333:q", False),
        ("arn:aws:logs:us-east-1:1:log-group:g:*", "arn:aws:logs:us-east-1:1:log-group:g:log-stream:s", True),
        ("arn:*", "arn:aws:s3:::bucket", True),
        ("*", "*", True),
        ("arn:aws:s3:::*", "*", False),
        ("arn:aws:s3:::a+b(c)", "arn:aws:s3:::a+b(c)", True),
    ],
)
def test_resource_matching(pattern: str, resource: str, expected: bool) -> None:
    assert allowed(request(resource=resource), identity=[policy(allow("s3:GetObject", pattern))]) is expected


def test_resource_list() -> None:
    identity = [policy(allow("s3:*", ["arn:aws:s3:::a", "arn:aws:s3:::b/*"]))]
    assert allowed(request(resource="arn:aws:s3:::a"), identity=identity)
    assert allowed(request(resource="arn:aws:s3:::b/x"), identity=identity)
    assert not allowed(request(resource="arn:aws:s3:::c"), identity=identity)


def test_not_resource() -> None:
    identity = [policy({"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"})]
    assert allowed(request(resource="arn:aws:s3:::public/x"), identity=identity)
    assert not allowed(request(resource="arn:aws:s3:::secret/x"), identity=identity)


def test_not_resource_deny() -> None:
    identity = [policy(allow(), {"Effect": "Deny", "Action": "s3:*", "NotResource": ["arn:aws:s3:::ok/*"]})]
    assert allowed(request(resource="arn:aws:s3:::ok/x"), identity=identity)
    assert decide(request(resource="arn:aws:s3:::other/x"), identity=identity).decision == EXPLICIT_DENY


# ------------------------------------------------------------------------ policy variables


def test_username_variable_in_resource() -> None:
    identity = [policy(allow("s3:*", "arn:aws:s3:::home/${aws:username}/*"))]
    assert allowed(request(resource="arn:aws:s3:::home/alice/notes"), identity=identity)
    assert not allowed(request(resource="arn:aws:s3:::home/bob/notes"), identity=identity)


def test_context_variables_in_resource() -> None:
    identity = [policy(allow("s3:*", "arn:aws:s3:::team-${aws:PrincipalTag/team}/${aws:userid}/*"))]
    ctx = {"aws:PrincipalTag/team": "ml", "aws:userid": "AIDAEXAMPLE"}
    assert allowed(request(resource="arn:aws:s3:::team-ml/AIDAEXAMPLE/x", **ctx), identity=identity)
    assert not allowed(request(resource="arn:aws:s3:::team-ops/AIDAEXAMPLE/x", **ctx), identity=identity)


def test_missing_variable_makes_resource_not_match() -> None:
    identity = [policy(allow("s3:*", "arn:aws:s3:::team-${aws:PrincipalTag/team}/*"))]
    assert not allowed(request(resource="arn:aws:s3:::team-/x"), identity=identity)
    # A role session has no aws:username, so a user-name scoped resource never matches it.
    user_scoped = [policy(allow("s3:*", "arn:aws:s3:::home/${aws:username}/*"))]
    assert not allowed(request(ANALYST, resource="arn:aws:s3:::home/Analyst/x"), identity=user_scoped)


def test_variable_default_in_resource() -> None:
    identity = [policy(allow("s3:*", "arn:aws:s3:::team-${aws:PrincipalTag/team, 'shared'}/*"))]
    assert allowed(request(resource="arn:aws:s3:::team-shared/x"), identity=identity)
    assert allowed(
        request(resource="arn:aws:s3:::team-ml/x", **{"aws:PrincipalTag/team": "ml"}), identity=identity
    )


def test_substituted_value_is_literal_in_resource() -> None:
    identity = [policy(allow("s3:*", "arn:aws:s3:::home/${aws:PrincipalTag/dir}"))]
    assert not allowed(
        request(resource="arn:aws:s3:::home/anything", **{"aws:PrincipalTag/dir": "*"}), identity=identity
    )
    assert allowed(
        request(resource="arn:aws:s3:::home/*", **{"aws:PrincipalTag/dir": "*"}), identity=identity
    )


def test_special_variable_star_in_resource() -> None:
    identity = [policy(allow("s3:*", "arn:aws:s3:::literal${*}"))]
    assert allowed(request(resource="arn:aws:s3:::literal*"), identity=identity)
    assert not allowed(request(resource="arn:aws:s3:::literalX"), identity=identity)


def test_variables_not_substituted_in_2008_policies() -> None:
    identity = [policy(allow("s3:*", "arn:aws:s3:::home/${aws:username}/*"), version=None)]
    assert not allowed(request(resource="arn:aws:s3:::home/alice/x"), identity=identity)
    assert allowed(request(resource="arn:aws:s3:::home/${aws:username}/x"), identity=identity)


# ------------------------------------------------------------------------------ conditions


def test_conditions_gate_statements() -> None:
    identity = [policy(allow(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))]
    assert allowed(request(**{"aws:SourceIp": "10.1.2.3"}), identity=identity)
    assert not allowed(request(**{"aws:SourceIp": "8.8.8.8"}), identity=identity)
    assert not allowed(request(), identity=identity)


def test_context_key_names_are_case_insensitive() -> None:
    identity = [policy(allow(Condition={"Bool": {"aws:SecureTransport": "true"}}))]
    assert allowed(request(**{"AWS:SECURETRANSPORT": True}), identity=identity)


def test_deny_with_unmet_condition_does_not_apply() -> None:
    identity = [policy(allow(), deny(Condition={"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}))]
    assert allowed(request(**{"aws:MultiFactorAuthPresent": True}), identity=identity)
    assert not allowed(request(**{"aws:MultiFactorAuthPresent": False}), identity=identity)
    assert not allowed(request(), identity=identity)  # IfExists: an absent key makes the Deny apply


# ---------------------------------------------------------------------------- basic logic


def test_default_is_implicit_deny() -> None:
    decision = decide(request())
    assert decision == Decision(False, IMPLICIT_DENY, "identity-based", [])


def test_identity_allow_reports_matched_statement() -> None:
    decision = decide(
        request(), identity=[policy(allow("ec2:*")), policy({**allow("s3:*"), "Sid": "S3"}, name="Second")]
    )
    assert decision.allowed and decision.decision == ALLOWED and decision.denying_policy_type is None
    assert decision.matched == [MatchedStatement("Second", "identity-based", 0, "S3", "Allow")]


def test_explicit_deny_overrides_allow_in_any_identity_policy() -> None:
    decision = decide(
        request(), identity=[policy(allow()), policy({**deny("s3:Get*"), "Sid": "NoGets"}, name="Deny")]
    )
    assert decision.decision == EXPLICIT_DENY and not decision.allowed
    assert decision.denying_policy_type == "identity-based"
    assert decision.matched == [MatchedStatement("Deny", "identity-based", 0, "NoGets", "Deny")]


def test_all_applicable_denies_are_reported() -> None:
    decision = decide(request(), identity=[policy(deny(), deny("s3:*"), deny("ec2:*"))])
    assert [m.statement_index for m in decision.matched] == [0, 1]


# ------------------------------------------------------------------- same-account resources


def test_resource_policy_naming_the_user_grants_without_identity_policy() -> None:
    bucket = resource_policy(grant({"AWS": ALICE.arn}, "s3:GetObject", BUCKET_KEY))
    decision = decide(request(), resource=bucket)
    assert decision.allowed
    assert decision.matched == [MatchedStatement("ResourcePolicy", "resource-based", 0, None, "Allow")]
    assert not allowed(request(CAROL), resource=bucket)


def test_resource_policy_wildcard_principal_grants() -> None:
    assert allowed(request(), resource=resource_policy(grant("*", "s3:GetObject")))
    assert allowed(request(), resource=resource_policy(grant({"AWS": "*"}, "s3:GetObject")))


def test_resource_policy_naming_own_account_only_delegates_to_iam() -> None:
    for principal in (ACCT, f"arn:aws:iam::{ACCT}:root"):
        bucket = resource_policy(grant({"AWS": principal}, "s3:*"))
        decision = decide(request(), resource=bucket)
        assert decision.decision == IMPLICIT_DENY and decision.denying_policy_type == "identity-based"
        assert allowed(request(), resource=bucket, identity=[policy(allow("s3:*"))])


def test_identity_or_resource_policy_suffices_in_same_account() -> None:
    bucket = resource_policy(grant({"AWS": CAROL.arn}, "s3:*"))
    assert allowed(request(), identity=[policy(allow("s3:*"))], resource=bucket)


def test_explicit_deny_in_resource_policy() -> None:
    bucket = resource_policy(
        grant("*", "s3:*", effect="Deny", Condition={"Bool": {"aws:SecureTransport": "false"}})
    )
    identity = [policy(allow())]
    decision = decide(request(**{"aws:SecureTransport": False}), identity=identity, resource=bucket)
    assert decision.decision == EXPLICIT_DENY and decision.denying_policy_type == "resource-based"
    assert allowed(request(**{"aws:SecureTransport": True}), identity=identity, resource=bucket)


def test_resource_policy_deny_naming_account_applies_to_its_principals() -> None:
    bucket = resource_policy(grant({"AWS": ACCT}, "s3:*", effect="Deny"))
    assert decide(request(ANALYST), identity=[policy(allow())], resource=bucket).decision == EXPLICIT_DENY


# ------------------------------------------------------------------------------ boundaries


def test_boundary_caps_identity_permissions() -> None:
    boundary = policy(allow("s3:*"), kind="boundary", name="Boundary")
    identity = [policy(allow())]
    assert allowed(request(), identity=identity, boundary=boundary)
    decision = decide(request(action="ec2:RunInstances"), identity=identity, boundary=boundary)
    assert decision.decision == IMPLICIT_DENY and decision.denying_policy_type == "permissions boundary"


def test_boundary_alone_grants_nothing() -> None:
    decision = decide(request(), boundary=policy(allow(), kind="boundary"))
    assert decision.denying_policy_type == "identity-based"


def test_allowed_decision_lists_boundary_statement() -> None:
    decision = decide(request(), identity=[policy(allow(), name="Id")], boundary=policy(allow(), name="B"))
    assert [(m.policy_name, m.policy_type) for m in decision.matched] == [
        ("Id", "identity-based"),
        ("B", "permissions boundary"),
    ]


def test_explicit_deny_in_boundary() -> None:
    boundary = policy(allow(), deny("s3:GetObject"), kind="boundary")
    decision = decide(request(), identity=[policy(allow())], boundary=boundary)
    assert decision.decision == EXPLICIT_DENY and decision.denying_policy_type == "permissions boundary"


def test_resource_policy_naming_user_is_not_limited_by_boundary() -> None:
    boundary = policy(allow("ec2:*"), kind="boundary")
    bucket = resource_policy(grant({"AWS": ALICE.arn}, "s3:GetObject"))
    assert allowed(request(), boundary=boundary, resource=bucket)
    assert not allowed(request(), boundary=boundary, identity=[policy(allow())])


def test_resource_policy_naming_role_is_limited_by_boundary() -> None:
    boundary = policy(allow("ec2:*"), kind="boundary")
    bucket = resource_policy(grant({"AWS": ROLE_ARN}, "s3:GetObject"))
    decision = decide(request(ANALYST), boundary=boundary, resource=bucket)
    assert decision.decision == IMPLICIT_DENY and decision.denying_policy_type == "permissions boundary"
    # Without a boundary, a grant to the role reaches its sessions with no identity policy.
    assert allowed(request(ANALYST), resource=bucket)
    assert allowed(request(ANALYST), resource=bucket, boundary=policy(allow("s3:*"), kind="boundary"))


def test_resource_policy_naming_session_is_not_limited_by_boundary_or_session_policy() -> None:
    bucket = resource_policy(grant({"AWS": SESSION_ARN}, "s3:GetObject"))
    limits = {
        "boundary": policy(allow("ec2:*"), kind="boundary"),
        "session": [policy(allow("ec2:*"), kind="session")],
    }
    assert allowed(request(ANALYST), resource=bucket, **limits)


def test_boundary_explicit_deny_still_beats_direct_resource_grant() -> None:
    boundary = policy(allow(), deny("s3:*"), kind="boundary")
    bucket = resource_policy(grant({"AWS": SESSION_ARN}, "s3:GetObject"))
    assert decide(request(ANALYST), resource=bucket, boundary=boundary).decision == EXPLICIT_DENY


# -------------------------------------------------------------------------- session policies


def test_session_policy_caps_role_permissions() -> None:
    identity = [policy(allow())]
    session = [policy(allow("s3:GetObject"), kind="session", name="Inline")]
    assert allowed(request(ANALYST), identity=identity, session=session)
    decision = decide(request(ANALYST, action="s3:PutObject"), identity=identity, session=session)
    assert decision.decision == IMPLICIT_DENY and decision.denying_policy_type == "session"


def test_multiple_session_policies_are_ored() -> None:
    session = [policy(allow("s3:GetObject"), kind="session"), policy(allow("s3:PutObject"), kind="session")]
    identity = [policy(allow())]
    assert allowed(request(ANALYST, action="s3:PutObject"), identity=identity, session=session)
    assert not allowed(request(ANALYST, action="s3:DeleteObject"), identity=identity, session=session)


def test_session_policy_alone_grants_nothing() -> None:
    assert not allowed(request(ANALYST), session=[policy(allow(), kind="session")])


def test_resource_policy_naming_role_is_limited_by_session_policy() -> None:
    bucket = resource_policy(grant({"AWS": ROLE_ARN}, "s3:*"))
    session = [policy(allow("s3:GetObject"), kind="session")]
    assert allowed(request(ANALYST), resource=bucket, session=session)
    decision = decide(request(ANALYST, action="s3:PutObject"), resource=bucket, session=session)
    assert decision.denying_policy_type == "session"


def test_explicit_deny_in_session_policy() -> None:
    session = [policy(allow(), deny("s3:GetObject"), kind="session")]
    decision = decide(request(ANALYST), identity=[policy(allow())], session=session)
    assert decision.decision == EXPLICIT_DENY and decision.denying_policy_type == "session"


# ----------------------------------------------------------------------------- cross-account


def test_cross_account_needs_both_sides() -> None:
    identity = [policy(allow("s3:GetObject"))]
    bucket = resource_policy(grant({"AWS": OTHER}, "s3:GetObject"))
    req = request(BOB, resource_account=ACCT)
    assert allowed(req, identity=identity, resource=bucket)

    only_identity = decide(req, identity=identity)
    assert only_identity.decision == IMPLICIT_DENY and only_identity.denying_policy_type == "resource-based"
    only_resource = decide(req, resource=bucket)
    assert only_resource.decision == IMPLICIT_DENY and only_resource.denying_policy_type == "identity-based"


def test_cross_account_resource_grant_reports_both_statements() -> None:
    identity = [policy(allow("s3:GetObject"), name="BobPolicy")]
    bucket = resource_policy(grant({"AWS": OTHER}, "s3:GetObject"))
    decision = decide(request(BOB, resource_account=ACCT), identity=identity, resource=bucket)
    assert [m.policy_type for m in decision.matched] == ["identity-based", "resource-based"]


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        ({"AWS": OTHER}, True),
        ({"AWS": f"arn:aws:iam::{OTHER}:root"}, True),
        ({"AWS": BOB.arn}, True),
        ({"AWS": [ACCT, BOB.arn]}, True),
        ("*", True),
        ({"AWS": ACCT}, False),
        ({"AWS": f"arn:aws:iam::{OTHER}:user/eve"}, False),
        ({"Service": "s3.amazonaws.com"}, False),
    ],
)
def test_cross_account_principal_forms(principal: Any, expected: bool) -> None:
    bucket = resource_policy(grant(principal, "s3:GetObject"))
    req = request(BOB, resource_account=ACCT)
    assert allowed(req, identity=[policy(allow())], resource=bucket) is expected


def test_cross_account_role_session_matches_by_role_or_session_arn() -> None:
    identity = [policy(allow())]
    req = request(OTHER_SESSION, resource_account=ACCT)
    for principal in (OTHER_ROLE_ARN, OTHER_SESSION.arn, OTHER):
        assert allowed(req, identity=identity, resource=resource_policy(grant({"AWS": principal}, "s3:*")))
    assert not allowed(req, identity=identity, resource=resource_policy(grant({"AWS": ROLE_ARN}, "s3:*")))


def test_cross_account_identity_side_is_capped_by_boundary_and_session() -> None:
    bucket = resource_policy(grant({"AWS": OTHER_SESSION.arn}, "s3:*"))
    req = request(OTHER_SESSION, resource_account=ACCT)
    identity = [policy(allow())]
    assert (
        decide(req, identity=identity, resource=bucket, boundary=policy(allow("ec2:*"))).denying_policy_type
        == "permissions boundary"
    )
    assert (
        decide(req, identity=identity, resource=bucket, session=[policy(allow("ec2:*"))]).denying_policy_type
        == "session"
    )
    # Even a direct grant to the session needs the identity side across accounts.
    assert decide(req, resource=bucket).denying_policy_type == "identity-based"


def test_cross_account_explicit_deny_in_resource_policy() -> None:
    bucket = resource_policy(
        grant({"AWS": OTHER}, "s3:*"), grant({"AWS": BOB.arn}, "s3:GetObject", effect="Deny")
    )
    decision = decide(request(BOB, resource_account=ACCT), identity=[policy(allow())], resource=bucket)
    assert decision.decision == EXPLICIT_DENY and decision.denying_policy_type == "resource-based"


def test_resource_account_equal_to_caller_account_is_same_account() -> None:
    bucket = resource_policy(grant({"AWS": ALICE.arn}, "s3:*"))
    assert allowed(request(resource_account=ACCT), resource=bucket)


# ------------------------------------------------------------ key policies (KMS) / trust


KEY_ARN = f"arn:aws:kms:us-east-1:{ACCT}:key/1234"


def kms_request(
    caller: Caller = ALICE, action: str = "kms:Decrypt", resource_account: str | None = None
) -> AuthzRequest:
    return request(caller, action, KEY_ARN, resource_account)


def test_key_policy_must_allow_even_in_same_account() -> None:
    identity = [policy(allow("kms:*"))]
    key_policy = resource_policy(grant({"AWS": CAROL.arn}, "kms:*"))
    decision = decide(kms_request(), identity=identity, resource=key_policy, resource_policy_required=True)
    assert decision.decision == IMPLICIT_DENY and decision.denying_policy_type == "resource-based"
    no_policy = decide(kms_request(), identity=identity, resource_policy_required=True)
    assert no_policy.denying_policy_type == "resource-based"


def test_key_policy_granting_account_root_enables_iam_policies() -> None:
    key_policy = resource_policy(grant({"AWS": f"arn:aws:iam::{ACCT}:root"}, "kms:*"))
    decision = decide(
        kms_request(),
        identity=[policy(allow("kms:Decrypt"))],
        resource=key_policy,
        resource_policy_required=True,
    )
    assert decision.allowed
    assert [m.policy_type for m in decision.matched] == ["identity-based", "resource-based"]
    denied = decide(kms_request(), resource=key_policy, resource_policy_required=True)
    assert denied.denying_policy_type == "identity-based"


def test_key_policy_naming_user_grants_directly() -> None:
    key_policy = resource_policy(grant({"AWS": ALICE.arn}, "kms:Decrypt"))
    assert allowed(kms_request(), resource=key_policy, resource_policy_required=True)


def test_key_policy_naming_role_is_capped_by_boundary() -> None:
    key_policy = resource_policy(grant({"AWS": ROLE_ARN}, "kms:*"))
    assert allowed(kms_request(ANALYST), resource=key_policy, resource_policy_required=True)
    decision = decide(
        kms_request(ANALYST),
        resource=key_policy,
        resource_policy_required=True,
        boundary=policy(allow("s3:*")),
    )
    assert decision.denying_policy_type == "permissions boundary"


def test_key_policy_with_root_caller() -> None:
    key_policy = resource_policy(grant({"AWS": ACCT}, "kms:*"))
    assert allowed(kms_request(ROOT), resource=key_policy, resource_policy_required=True)
    assert not allowed(
        kms_request(ROOT),
        resource=resource_policy(grant({"AWS": ALICE.arn}, "kms:*")),
        resource_policy_required=True,
    )


def test_trust_policy_evaluation() -> None:
    trust = policy(
        {"Effect": "Allow", "Principal": {"AWS": ALICE.arn}, "Action": "sts:AssumeRole"},
        {
            "Effect": "Allow",
            "Principal": {"AWS": OTHER},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "xyz"}},
        },
        {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"},
        kind="trust",
    )
    assume = {"action": "sts:AssumeRole", "resource": ROLE_ARN}
    # Named directly in the same account: no identity permission needed.
    assert allowed(request(ALICE, **assume), resource=trust, resource_policy_required=True)
    assert not allowed(
        request(CAROL, **assume), identity=[policy(allow())], resource=trust, resource_policy_required=True
    )
    cross = request(BOB, resource_account=ACCT, **assume, **{"sts:ExternalId": "xyz"})
    assert allowed(
        cross, identity=[policy(allow("sts:AssumeRole"))], resource=trust, resource_policy_required=True
    )
    assert not allowed(cross, resource=trust, resource_policy_required=True)
    sagemaker = Caller(
        arn="sagemaker.amazonaws.com", account="", kind="service", service="sagemaker.amazonaws.com"
    )
    assert allowed(
        request(sagemaker, resource_account=ACCT, **assume), resource=trust, resource_policy_required=True
    )


# ------------------------------------------------------------------------ root, services


def test_root_user_has_implicit_identity_permissions() -> None:
    assert allowed(request(ROOT))
    bucket = resource_policy(grant("*", "s3:*", effect="Deny"))
    assert decide(request(ROOT), resource=bucket).decision == EXPLICIT_DENY


def test_root_user_cross_account_needs_resource_policy() -> None:
    other_root = Caller(arn=f"arn:aws:iam::{OTHER}:root", account=OTHER, kind="root")
    assert not allowed(request(other_root, resource_account=ACCT))
    assert allowed(
        request(other_root, resource_account=ACCT), resource=resource_policy(grant({"AWS": OTHER}, "s3:*"))
    )


def test_service_principal() -> None:
    bucket = resource_policy(grant({"Service": "events.amazonaws.com"}, "s3:PutObject"))
    assert allowed(request(EVENTS, action="s3:PutObject", resource_account=ACCT), resource=bucket)
    other_service = Caller(arn="sns.amazonaws.com", account="", kind="service", service="sns.amazonaws.com")
    assert not allowed(request(other_service, action="s3:PutObject"), resource=bucket)
    assert not allowed(
        request(EVENTS, action="s3:PutObject"), resource=resource_policy(grant({"AWS": ACCT}, "s3:*"))
    )


def test_anonymous_caller_only_matches_wildcard_principal() -> None:
    assert allowed(
        request(ANONYMOUS, resource_account=ACCT), resource=resource_policy(grant("*", "s3:GetObject"))
    )
    assert not allowed(
        request(ANONYMOUS, resource_account=ACCT), resource=resource_policy(grant({"AWS": ACCT}, "s3:*"))
    )
    # Identity policies never describe an anonymous caller; only the resource policy counts.
    assert not allowed(request(ANONYMOUS, resource_account=ACCT), identity=[policy(allow())])


def test_federated_principal() -> None:
    web = Caller(arn="cognito-identity.amazonaws.com", account=ACCT, kind="federated")
    trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"Federated": "cognito-identity.amazonaws.com"},
            "Action": "sts:AssumeRoleWithWebIdentity",
        },
        kind="trust",
    )
    req = request(web, "sts:AssumeRoleWithWebIdentity", ROLE_ARN)
    assert allowed(req, resource=trust, resource_policy_required=True)


# ---------------------------------------------------------------------------- NotPrincipal


def test_not_principal_deny_exempts_only_fully_listed_user() -> None:
    bucket = resource_policy(
        grant("*", "s3:*"),
        {
            "Effect": "Deny",
            "NotPrincipal": {"AWS": [ALICE.arn, f"arn:aws:iam::{ACCT}:root"]},
            "Action": "s3:*",
            "Resource": "*",
        },
    )
    assert allowed(request(ALICE), resource=bucket)
    assert decide(request(CAROL), resource=bucket).decision == EXPLICIT_DENY


def test_not_principal_without_account_does_not_exempt_user() -> None:
    bucket = resource_policy(
        grant("*", "s3:*"),
        {"Effect": "Deny", "NotPrincipal": {"AWS": ALICE.arn}, "Action": "s3:*", "Resource": "*"},
    )
    assert decide(request(ALICE), resource=bucket).decision == EXPLICIT_DENY


def test_not_principal_role_session_needs_session_role_and_account() -> None:
    full = [SESSION_ARN, ROLE_ARN, ACCT]
    for listed, exempt in ((full, True), ([ROLE_ARN, ACCT], False), ([SESSION_ARN, ACCT], False)):
        bucket = resource_policy(
            grant("*", "s3:*"),
            {"Effect": "Deny", "NotPrincipal": {"AWS": listed}, "Action": "s3:*", "Resource": "*"},
        )
        assert allowed(request(ANALYST), resource=bucket) is exempt


def test_not_principal_deny_always_applies_to_principals_with_a_boundary() -> None:
    bucket = resource_policy(
        grant("*", "s3:*"),
        {"Effect": "Deny", "NotPrincipal": {"AWS": [ALICE.arn, ACCT]}, "Action": "s3:*", "Resource": "*"},
    )
    decision = decide(request(ALICE), resource=bucket, boundary=policy(allow()))
    assert decision.decision == EXPLICIT_DENY


def test_not_principal_allow_grants_everyone_else() -> None:
    listed = {"AWS": [CAROL.arn, ACCT]}
    bucket = resource_policy({"Effect": "Allow", "NotPrincipal": listed, "Action": "s3:*", "Resource": "*"})
    assert allowed(request(ALICE), resource=bucket)
    assert not allowed(request(CAROL), resource=bucket)
    # Carol's request is also made as her account; unless that is listed too, it is covered.
    user_only = resource_policy(
        {"Effect": "Allow", "NotPrincipal": {"AWS": CAROL.arn}, "Action": "s3:*", "Resource": "*"}
    )
    assert allowed(request(CAROL), resource=user_only)


# -------------------------------------------------------------------- SCPs and endpoints


FULL_ACCESS = policy(allow(), kind="scp", name="FullAWSAccess")


def test_scp_must_allow() -> None:
    identity = [policy(allow())]
    deny_list = policy(deny("s3:Delete*"), kind="scp", name="DenyDeletes")
    assert allowed(request(), identity=identity, scps=[FULL_ACCESS, deny_list])
    decision = decide(request(action="s3:DeleteObject"), identity=identity, scps=[FULL_ACCESS, deny_list])
    assert decision.decision == EXPLICIT_DENY and decision.denying_policy_type == "service control"
    allow_list = policy(allow("ec2:*"), kind="scp")
    decision = decide(request(), identity=identity, scps=[allow_list])
    assert decision.decision == IMPLICIT_DENY and decision.denying_policy_type == "service control"


def test_scp_levels_must_each_allow() -> None:
    identity = [policy(allow())]
    s3_only = policy(allow("s3:*"), kind="scp")
    ec2_only = policy(allow("ec2:*"), kind="scp")
    assert not allowed(request(), identity=identity, scps=[[FULL_ACCESS], [ec2_only]])
    assert allowed(request(), identity=identity, scps=[[FULL_ACCESS], [ec2_only, s3_only]])


def test_scp_limits_resource_policy_grants_too() -> None:
    bucket = resource_policy(grant({"AWS": ALICE.arn}, "s3:*"))
    assert not allowed(request(), resource=bucket, scps=[policy(allow("ec2:*"), kind="scp")])


def test_endpoint_policy_must_allow() -> None:
    endpoint = policy(grant("*", "s3:GetObject", "arn:aws:s3:::bucket/*"), kind="endpoint", name="vpce")
    identity = [policy(allow())]
    assert allowed(request(), identity=identity, endpoint=endpoint)
    decision = decide(request(resource="arn:aws:s3:::other/k"), identity=identity, endpoint=endpoint)
    assert decision.decision == IMPLICIT_DENY and decision.denying_policy_type == "VPC endpoint"
    specific = policy(grant({"AWS": CAROL.arn}, "s3:*"), kind="endpoint")
    assert not allowed(request(), identity=identity, endpoint=specific)
    assert allowed(request(), identity=identity, endpoint=policy(allow("s3:*"), kind="endpoint"))


def test_explicit_deny_in_endpoint_policy() -> None:
    endpoint = policy(allow(), deny("s3:PutObject"), kind="endpoint")
    decision = decide(request(action="s3:PutObject"), identity=[policy(allow())], endpoint=endpoint)
    assert decision.decision == EXPLICIT_DENY and decision.denying_policy_type == "VPC endpoint"


# --------------------------------------------------------------------------------- messages


@pytest.mark.parametrize(
    ("policies", "suffix"),
    [
        ({}, "because no identity-based policy allows the s3:GetObject action"),
        ({"identity": [policy(deny())]}, "with an explicit deny in an identity-based policy"),
        (
            {"identity": [policy(allow())], "resource": resource_policy(grant("*", "s3:*", effect="Deny"))},
            "with an explicit deny in a resource-based policy",
        ),
        (
            {"identity": [policy(allow())], "boundary": policy(allow("ec2:*"))},
            "because no permissions boundary allows the s3:GetObject action",
        ),
        (
            {"identity": [policy(allow())], "session": [policy(allow("ec2:*"))]},
            "because no session policy allows the s3:GetObject action",
        ),
        (
            {"identity": [policy(allow())], "endpoint": policy(allow("ec2:*"), kind="endpoint")},
            "because no VPC endpoint policy allows the s3:GetObject action",
        ),
        (
            {"identity": [policy(allow())], "scps": [policy(allow("ec2:*"), kind="scp")]},
            "because no service control policy allows the s3:GetObject action",
        ),
        (
            {"identity": [policy(allow())], "scps": [policy(deny(), kind="scp")]},
            "with an explicit deny in a service control policy",
        ),
        (
            {"identity": [policy(allow())], "boundary": policy(deny())},
            "with an explicit deny in a permissions boundary",
        ),
    ],
)
def test_access_denied_messages(policies: dict[str, Any], suffix: str) -> None:
    req = request(ANALYST, action="s3:GetObject")
    decision = evaluate(req, PolicySet(**policies))
    assert not decision.allowed
    assert access_denied_message(req, decision) == (
        f"User: {SESSION_ARN} is not authorized to perform: s3:GetObject on resource: {BUCKET_KEY} {suffix}"
    )


def test_cross_account_message_names_resource_policy() -> None:
    req = request(BOB, resource_account=ACCT)
    message = access_denied_message(req, evaluate(req, PolicySet(identity=[policy(allow())])))
    assert message.endswith("because no resource-based policy allows the s3:GetObject action")


def test_anonymous_message() -> None:
    req = request(ANONYMOUS)
    assert access_denied_message(req, evaluate(req, PolicySet())).startswith(
        "User: anonymous is not authorized"
    )


# ------------------------------------------------------------------------------- callers


@pytest.mark.parametrize(
    ("arn", "kind", "role_arn"),
    [
        (f"arn:aws:iam::{ACCT}:user/path/alice", "user", None),
        (f"arn:aws:iam::{ACCT}:root", "root", None),
        (f"arn:aws:sts::{ACCT}:assumed-role/Analyst/s1", "assumed-role", f"arn:aws:iam::{ACCT}:role/Analyst"),
        (f"arn:aws:sts::{ACCT}:federated-user/fed", "federated", None),
    ],
)
def test_caller_from_arn(arn: str, kind: str, role_arn: str | None) -> None:
    caller = Caller.from_arn(arn)
    assert (caller.kind, caller.account, caller.role_arn) == (kind, ACCT, role_arn)


def test_caller_from_arn_keeps_explicit_role_path_and_rejects_garbage() -> None:
    assert Caller.from_arn(SESSION_ARN, role_arn=ROLE_ARN).role_arn == ROLE_ARN
    with pytest.raises(ValueError):
        Caller.from_arn("not-an-arn")
    with pytest.raises(ValueError):
        Caller.from_arn("arn:aws:s3:::bucket")
    with pytest.raises(ValueError, match="unknown caller kind"):
        Caller(arn="x", account=ACCT, kind="robot")


def test_username_derived_for_user_path_arns() -> None:
    caller = Caller.from_arn(f"arn:aws:iam::{ACCT}:user/division/team/dave")
    identity = [policy(allow("s3:*", "arn:aws:s3:::home/${aws:username}/*"))]
    assert allowed(request(caller, resource="arn:aws:s3:::home/dave/x"), identity=identity)
