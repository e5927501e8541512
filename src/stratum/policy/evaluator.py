"""The IAM authorization decision (IAM User Guide: "Policy evaluation logic").

Order of evaluation:

1. an applicable ``Deny`` in any policy -> ``explicitDeny``;
2. every SCP level and the VPC endpoint policy (when given) must allow;
3. same account: the identity policies (capped by the permissions boundary and session
   policies) *or* the resource policy must allow. How far a resource-policy grant reaches
   depends on how it names the caller: naming the user or the role *session* is a direct
   grant that boundaries/session policies do not limit; naming the *role* is limited by
   them; naming the *account* only delegates to the account's IAM policies;
4. cross account: the identity side *and* the resource policy must both allow.

``resource_policy_required`` (KMS key policies, role trust policies) makes step 3 require
a resource-policy grant; a grant to the account then enables the identity policies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from stratum.policy.context import AuthzRequest, Caller, EvalContext
from stratum.policy.document import Policy, Statement
from stratum.policy.principals import ACCOUNT, DIRECT, NO_MATCH, ROLE

ALLOWED: Final = "allowed"
EXPLICIT_DENY: Final = "explicitDeny"
IMPLICIT_DENY: Final = "implicitDeny"

IDENTITY_BASED: Final = "identity-based"
RESOURCE_BASED: Final = "resource-based"
PERMISSIONS_BOUNDARY: Final = "permissions boundary"
SESSION: Final = "session"
VPC_ENDPOINT: Final = "VPC endpoint"
SERVICE_CONTROL: Final = "service control"

# How each policy type reads in an AccessDenied message.
_PHRASES: Final = {
    IDENTITY_BASED: "identity-based policy",
    RESOURCE_BASED: "resource-based policy",
    PERMISSIONS_BOUNDARY: "permissions boundary",
    SESSION: "session policy",
    VPC_ENDPOINT: "VPC endpoint policy",
    SERVICE_CONTROL: "service control policy",
}

# Callers with no identity policies of their own: only a resource policy can grant them
# access, and the account comparison does not apply to them.
_ACCOUNTLESS_KINDS: Final = frozenset({"service", "anonymous"})


@dataclass(frozen=True, slots=True)
class MatchedStatement:
    """A statement that contributed to a decision; ``statement_index`` is 0-based."""

    policy_name: str | None
    policy_type: str
    statement_index: int
    sid: str | None
    effect: str


@dataclass(slots=True)
class PolicySet:
    """Every policy that applies to one request.

    ``scps`` is a list of SCP levels (root, OU..., account); each level must allow. An
    element may be a single policy or a sequence of policies attached at the same level
    (those are ORed). All bare ``Policy`` elements together form one level.
    """

    identity: Sequence[Policy] = ()
    resource: Policy | None = None
    boundary: Policy | None = None
    session: Sequence[Policy] = ()
    endpoint: Policy | None = None
    scps: Sequence[Policy | Sequence[Policy]] = ()
    resource_policy_required: bool = False

    def uses_context(self) -> bool:
        """Whether evaluating these policies can read the request context (see Policy.uses_context);
        when not, a request without context gets the same decision."""
        if any(p.uses_context for p in self.identity) or any(p.uses_context for p in self.session):
            return True
        for single in (self.resource, self.boundary, self.endpoint):
            if single is not None and single.uses_context:
                return True
        for level in self.scps:
            for p in (level,) if isinstance(level, Policy) else level:
                if p.uses_context:
                    return True
        return False


@dataclass(slots=True)
class Decision:
    allowed: bool
    decision: str
    denying_policy_type: str | None = None
    matched: list[MatchedStatement] = field(default_factory=list)


class _Run:
    """Per-request state shared by the helpers below."""

    __slots__ = ("action", "resource", "caller", "ctx", "boundary_attached")

    def __init__(self, request: AuthzRequest, boundary_attached: bool) -> None:
        self.action = request.action.lower()
        self.resource = request.resource
        self.caller: Caller = request.caller
        self.ctx = EvalContext(request)
        self.boundary_attached = boundary_attached

    def strength(self, statement: Statement) -> int:
        """How the statement names the caller when it applies to this request, else NO_MATCH."""
        principal = statement.principal
        if principal is None:
            strength = DIRECT  # identity-style policies are attached to the caller already
        elif statement.not_principal:
            # Documented AWS quirk: Deny+NotPrincipal always denies principals that have a
            # permissions boundary, whatever NotPrincipal lists.
            quirk = self.boundary_attached and not statement.is_allow
            if not quirk and principal.excludes(self.caller):
                return NO_MATCH
            strength = DIRECT
        else:
            strength = principal.strength(self.caller)
            if strength == NO_MATCH:
                return NO_MATCH
        resources = statement.resources
        if resources is not None and resources.matches(self.resource, self.ctx) == statement.not_resource:
            return NO_MATCH
        ctx = self.ctx
        for clause in statement.conditions:
            if not clause.evaluate(ctx):
                return NO_MATCH
        return strength


def _matched(policy: Policy, policy_type: str, statement: Statement) -> MatchedStatement:
    return MatchedStatement(policy.name, policy_type, statement.index, statement.sid, statement.effect)


def _all_policies(policies: PolicySet) -> Iterable[tuple[str, Policy]]:
    for policy in policies.identity:
        yield IDENTITY_BASED, policy
    if policies.resource is not None:
        yield RESOURCE_BASED, policies.resource
    if policies.boundary is not None:
        yield PERMISSIONS_BOUNDARY, policies.boundary
    for policy in policies.session:
        yield SESSION, policy
    if policies.endpoint is not None:
        yield VPC_ENDPOINT, policies.endpoint
    for level in _scp_levels(policies.scps):
        for policy in level:
            yield SERVICE_CONTROL, policy


def _scp_levels(scps: Sequence[Policy | Sequence[Policy]]) -> list[Sequence[Policy]]:
    flat = [p for p in scps if isinstance(p, Policy)]
    grouped = [p for p in scps if not isinstance(p, Policy)]
    return ([flat] if flat else []) + grouped


def _explicit_denies(run: _Run, policies: PolicySet) -> list[MatchedStatement]:
    found: list[MatchedStatement] = []
    for policy_type, policy in _all_policies(policies):
        for statement in policy.candidates(run.action)[0]:
            if run.strength(statement) != NO_MATCH:
                found.append(_matched(policy, policy_type, statement))
    return found


def _first_allow(run: _Run, policies: Iterable[Policy], policy_type: str) -> MatchedStatement | None:
    for policy in policies:
        for statement in policy.candidates(run.action)[1]:
            if run.strength(statement) != NO_MATCH:
                return _matched(policy, policy_type, statement)
    return None


def _resource_allow(run: _Run, policy: Policy | None) -> tuple[int, MatchedStatement | None]:
    """The most specific grant to the caller in the resource policy."""
    best, best_statement = NO_MATCH, None
    if policy is None:
        return best, None
    for statement in policy.candidates(run.action)[1]:
        strength = run.strength(statement)
        if strength > best:
            best, best_statement = strength, statement
            if strength == DIRECT:
                break
    if best_statement is None:
        return NO_MATCH, None
    return best, _matched(policy, RESOURCE_BASED, best_statement)


class _Limits:
    """Permissions boundary and session policies, evaluated lazily and at most once."""

    __slots__ = ("run", "policies", "_result")

    def __init__(self, run: _Run, policies: PolicySet) -> None:
        self.run = run
        self.policies = policies
        self._result: tuple[str | None, list[MatchedStatement]] | None = None

    def check(self) -> tuple[str | None, list[MatchedStatement]]:
        """(policy type that failed to allow or None, allow statements that passed)."""
        if self._result is None:
            self._result = self._compute()
        return self._result

    def _compute(self) -> tuple[str | None, list[MatchedStatement]]:
        matched: list[MatchedStatement] = []
        boundary = self.policies.boundary
        if boundary is not None:
            hit = _first_allow(self.run, (boundary,), PERMISSIONS_BOUNDARY)
            if hit is None:
                return PERMISSIONS_BOUNDARY, matched
            matched.append(hit)
        if self.policies.session:
            hit = _first_allow(self.run, self.policies.session, SESSION)
            if hit is None:
                return SESSION, matched
            matched.append(hit)
        return None, matched


def _allow(matched: list[MatchedStatement]) -> Decision:
    return Decision(True, ALLOWED, None, matched)


def _implicit(policy_type: str) -> Decision:
    return Decision(False, IMPLICIT_DENY, policy_type, [])


def evaluate(request: AuthzRequest, policies: PolicySet) -> Decision:
    """Decide whether ``request`` is allowed under ``policies``."""
    run = _Run(request, boundary_attached=policies.boundary is not None)
    denies = _explicit_denies(run, policies)
    if denies:
        return Decision(False, EXPLICIT_DENY, denies[0].policy_type, denies)

    guardrails: list[MatchedStatement] = []
    for level in _scp_levels(policies.scps):
        hit = _first_allow(run, level, SERVICE_CONTROL)
        if hit is None:
            return _implicit(SERVICE_CONTROL)
        guardrails.append(hit)
    if policies.endpoint is not None:
        hit = _first_allow(run, (policies.endpoint,), VPC_ENDPOINT)
        if hit is None:
            return _implicit(VPC_ENDPOINT)
        guardrails.append(hit)

    caller = request.caller
    same_account = (
        caller.kind in _ACCOUNTLESS_KINDS
        or request.resource_account is None
        or request.resource_account == caller.account
    )
    if same_account:
        return _same_account(run, policies, guardrails)
    return _cross_account(run, policies, guardrails)


def _identity_allow(run: _Run, policies: PolicySet) -> tuple[bool, list[MatchedStatement]]:
    kind = run.caller.kind
    if kind == "root":
        return True, []  # the account root user implicitly has every identity permission
    if kind in _ACCOUNTLESS_KINDS:
        return False, []  # no IAM identity, so identity policies cannot describe the caller
    hit = _first_allow(run, policies.identity, IDENTITY_BASED)
    return hit is not None, [hit] if hit is not None else []


def _same_account(run: _Run, policies: PolicySet, guardrails: list[MatchedStatement]) -> Decision:
    strength, resource_hit = _resource_allow(run, policies.resource)
    resource_matched = [resource_hit] if resource_hit is not None else []
    if strength == DIRECT:
        return _allow(guardrails + resource_matched)
    if policies.resource_policy_required and strength == NO_MATCH:
        return _implicit(RESOURCE_BASED)

    limits = _Limits(run, policies)
    if strength == ROLE:
        failed, limit_matched = limits.check()
        if failed is None:
            return _allow(guardrails + limit_matched + resource_matched)
    identity_ok, identity_matched = _identity_allow(run, policies)
    if not identity_ok:
        if strength == ROLE:
            return _implicit(limits.check()[0] or IDENTITY_BASED)
        return _implicit(IDENTITY_BASED)
    failed, limit_matched = limits.check()
    if failed is not None:
        return _implicit(failed)
    # A key-policy grant to the account (ACCOUNT) is what lets identity policies apply.
    extra = resource_matched if strength == ACCOUNT and policies.resource_policy_required else []
    return _allow(guardrails + identity_matched + limit_matched + extra)


def _cross_account(run: _Run, policies: PolicySet, guardrails: list[MatchedStatement]) -> Decision:
    identity_ok, identity_matched = _identity_allow(run, policies)
    if not identity_ok:
        return _implicit(IDENTITY_BASED)
    failed, limit_matched = _Limits(run, policies).check()
    if failed is not None:
        return _implicit(failed)
    strength, resource_hit = _resource_allow(run, policies.resource)
    if strength == NO_MATCH or resource_hit is None:
        return _implicit(RESOURCE_BASED)
    return _allow(guardrails + identity_matched + limit_matched + [resource_hit])


def access_denied_message(request: AuthzRequest, decision: Decision) -> str:
    """AWS-style AccessDenied text for a denied decision."""
    caller = request.caller
    who = "anonymous" if caller.kind == "anonymous" else caller.arn
    base = f"User: {who} is not authorized to perform: {request.action} on resource: {request.resource}"
    if decision.allowed:
        return base  # callers should not ask, but a message is more useful than an exception
    phrase = _PHRASES.get(decision.denying_policy_type or IDENTITY_BASED, "identity-based policy")
    if decision.decision == EXPLICIT_DENY:
        article = "an" if phrase[0] in "aeiou" else "a"
        return f"{base} with an explicit deny in {article} {phrase}"
    return f"{base} because no {phrase} allows the {request.action} action"
