"""The server's Authorizer: the request context is built only when a policy can read it, and a
decision taken without one is remembered for exactly the same caller, action, resource and
policy objects."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from stratum.auth import authorizer as authorizer_module
from stratum.auth.authorizer import Authorizer
from stratum.auth.identity import Identity
from stratum.policy import PolicySet, parse_policy

ACCT = "111122223333"
PIPELINE = f"arn:aws:sagemaker:us-east-1:{ACCT}:pipeline/p"
ALLOW_ALL = parse_policy({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
DENY_START = parse_policy({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "*", "Resource": "*"},
    {"Effect": "Deny", "Action": "sagemaker:StartPipelineExecution", "Resource": "*"}]})
ONLY_TLS = parse_policy({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]})


def _ctx(vpce: str | None = None) -> Any:
    identity = Identity(account_id=ACCT, arn=f"arn:aws:iam::{ACCT}:user/alice", kind="user",
                        principal_id="AIDAEXAMPLE", user_name="alice")
    http = SimpleNamespace(vpce_id=vpce, client_ip="127.0.0.1", scheme="http")
    return SimpleNamespace(identity=identity, http=http, region="us-east-1", extra_context={}, service="sagemaker")


@pytest.fixture
def setup(monkeypatch: pytest.MonkeyPatch) -> tuple[Authorizer, list[Any], list[int], list[int]]:
    app = SimpleNamespace(settings=SimpleNamespace(credential_cache_seconds=2.0))
    auth = Authorizer(app)  # type: ignore[arg-type]
    current: list[Any] = [(ALLOW_ALL,)]
    evaluations, contexts = [0], [0]
    # What the store would return for alice: a fresh PolicySet holding the current policy objects.
    monkeypatch.setattr(auth, "policy_set", lambda identity, policy, required: PolicySet(identity=current[0]))
    monkeypatch.setattr(auth, "organization_of", lambda account: None)
    real_evaluate, real_context = authorizer_module.evaluate, auth.request_context

    def counted_evaluate(request: Any, policies: Any) -> Any:
        evaluations[0] += 1
        return real_evaluate(request, policies)

    def counted_context(ctx: Any, extra: Any) -> Any:
        contexts[0] += 1
        return real_context(ctx, extra)

    monkeypatch.setattr(authorizer_module, "evaluate", counted_evaluate)
    monkeypatch.setattr(auth, "request_context", counted_context)
    return auth, current, evaluations, contexts


def test_context_free_decision_is_remembered_for_the_same_policy_objects(setup: Any) -> None:
    auth, current, evaluations, contexts = setup
    for _ in range(3):
        _, decision = auth.check(_ctx(), "sagemaker:StartPipelineExecution", PIPELINE, resource_account=ACCT)
        assert decision.allowed
    assert (evaluations[0], contexts[0]) == (1, 0)
    # Another resource, another action: decided on their own.
    assert auth.check(_ctx(), "sagemaker:StartPipelineExecution", PIPELINE + "2", resource_account=ACCT)[1].allowed
    assert auth.check(_ctx(), "sagemaker:DescribePipeline", PIPELINE, resource_account=ACCT)[1].allowed
    assert evaluations[0] == 3
    # The user's policies changed (new objects from the store): the new policy decides.
    current[0] = (DENY_START,)
    _, decision = auth.check(_ctx(), "sagemaker:StartPipelineExecution", PIPELINE, resource_account=ACCT)
    assert not decision.allowed and decision.decision == "explicitDeny"
    auth.invalidate()
    current[0] = (ALLOW_ALL,)
    assert auth.check(_ctx(), "sagemaker:StartPipelineExecution", PIPELINE, resource_account=ACCT)[1].allowed


def test_a_policy_that_reads_the_context_is_evaluated_every_time(setup: Any) -> None:
    auth, current, evaluations, contexts = setup
    current[0] = (ONLY_TLS,)
    for _ in range(2):
        _, decision = auth.check(_ctx(), "sagemaker:StartPipelineExecution", PIPELINE, resource_account=ACCT)
        assert not decision.allowed  # aws:SecureTransport is false: the context was there
    assert (evaluations[0], contexts[0]) == (2, 2)


def test_a_request_through_a_vpc_endpoint_gets_its_context(setup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    auth, _current, evaluations, contexts = setup
    monkeypatch.setattr(auth, "endpoint", lambda vpce: None)
    for _ in range(2):
        request, decision = auth.check(_ctx("vpce-0123456789abcdef0"), "sagemaker:DescribePipeline", PIPELINE,
                                       resource_account=ACCT)
        assert decision.allowed
        assert request.context["aws:SourceVpce"] == "vpce-0123456789abcdef0"
    assert (evaluations[0], contexts[0]) == (2, 2)


def test_an_accounts_iam_write_forgets_only_that_accounts_principals(monkeypatch: pytest.MonkeyPatch) -> None:
    app = SimpleNamespace(settings=SimpleNamespace(credential_cache_seconds=60.0))
    auth = Authorizer(app)  # type: ignore[arg-type]
    loads: list[tuple[str, str, str]] = []

    def load(account: str, kind: str, name: str) -> Any:
        loads.append((account, kind, name))
        return (ALLOW_ALL,), None

    monkeypatch.setattr(auth, "_load_principal_policies", load)
    other = "444455556666"
    for account in (ACCT, other):
        auth.principal_policies(account, "user", "alice")
    auth.invalidate(other)  # e.g. PutRolePolicy in the other account
    for account in (ACCT, other):
        auth.principal_policies(account, "user", "alice")
    assert loads == [(ACCT, "user", "alice"), (other, "user", "alice"), (other, "user", "alice")]
    auth.invalidate()
    auth.principal_policies(ACCT, "user", "alice")
    assert loads[-1] == (ACCT, "user", "alice") and len(loads) == 4
