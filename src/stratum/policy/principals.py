"""``Principal``/``NotPrincipal`` parsing and matching against a :class:`Caller`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from stratum.policy.context import Caller
from stratum.policy.errors import MalformedPolicyDocument

# How specifically a resource-policy statement named the caller. Same-account evaluation
# depends on it: a direct grant is not limited by boundaries/session policies, a grant to
# the role is, and a grant to the account only delegates to the account's IAM policies.
NO_MATCH: Final = 0
ACCOUNT: Final = 1
ROLE: Final = 2
DIRECT: Final = 3

_ACCOUNT_ID_RE: Final = re.compile(r"^\d{12}$")
_ROOT_ARN_RE: Final = re.compile(r"^arn:[a-z-]+:iam::(\d{12}):root$")
_IDENTITY_ARN_RE: Final = re.compile(r"^arn:[a-z-]+:(?:iam|sts)::\d{12}:.+$")
_PRINCIPAL_KEYS: Final = ("AWS", "Service", "Federated", "CanonicalUser")


@dataclass(frozen=True, slots=True)
class PrincipalSpec:
    """A parsed ``Principal`` value; account-root ARNs are normalised to account ids."""

    wildcard: bool = False
    arns: frozenset[str] = frozenset()
    accounts: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    federated: frozenset[str] = frozenset()
    canonical: frozenset[str] = frozenset()

    def strength(self, caller: Caller) -> int:
        """How specifically this principal names ``caller`` (``NO_MATCH`` if not at all)."""
        if self.wildcard:
            return DIRECT
        kind = caller.kind
        if kind == "user":
            if caller.arn in self.arns:
                return DIRECT
            return ACCOUNT if caller.account in self.accounts else NO_MATCH
        if kind == "assumed-role":
            if caller.arn in self.arns:
                return DIRECT
            if caller.role_arn is not None and caller.role_arn in self.arns:
                return ROLE
            return ACCOUNT if caller.account in self.accounts else NO_MATCH
        if kind == "root":
            return DIRECT if caller.account in self.accounts else NO_MATCH
        if kind == "service":
            return DIRECT if (caller.service or caller.arn) in self.services else NO_MATCH
        if kind == "federated":
            return DIRECT if caller.arn in self.federated or caller.arn in self.arns else NO_MATCH
        return NO_MATCH  # anonymous callers only match "*"

    def excludes(self, caller: Caller) -> bool:
        """``NotPrincipal`` test: is every identity the request is made as listed here?

        AWS evaluates a request from a role session as the session, its role and its
        account (a user: the user and its account), so ``NotPrincipal`` only exempts the
        caller when all of them are listed.
        """
        if self.wildcard:
            return True
        kind = caller.kind
        in_account = caller.account in self.accounts
        if kind == "user":
            return in_account and caller.arn in self.arns
        if kind == "assumed-role":
            return in_account and caller.arn in self.arns and caller.role_arn in self.arns
        if kind == "root":
            return in_account
        if kind == "service":
            return (caller.service or caller.arn) in self.services
        if kind == "federated":
            return caller.arn in self.federated
        return False


def parse_principal(value: Any, where: str) -> PrincipalSpec:
    """Parse a ``Principal``/``NotPrincipal`` element; ``where`` prefixes error messages."""
    if value == "*":
        return PrincipalSpec(wildcard=True)
    if not isinstance(value, dict) or not value:
        raise MalformedPolicyDocument(f"{where}Invalid principal in policy")
    buckets: dict[str, set[str]] = {
        k: set() for k in ("arns", "accounts", "services", "federated", "canonical")
    }
    wildcard = False
    for key, raw in value.items():
        if key not in _PRINCIPAL_KEYS:
            raise MalformedPolicyDocument(f'{where}Invalid principal in policy: "{key}"')
        for entry in _string_list(raw, key, where):
            if key == "AWS":
                wildcard |= _add_aws_principal(entry, buckets, where)
            elif key == "Service":
                buckets["services"].add(entry)
            elif key == "Federated":
                buckets["federated"].add(entry)
            else:
                buckets["canonical"].add(entry)
    return PrincipalSpec(
        wildcard=wildcard,
        arns=frozenset(buckets["arns"]),
        accounts=frozenset(buckets["accounts"]),
        services=frozenset(buckets["services"]),
        federated=frozenset(buckets["federated"]),
        canonical=frozenset(buckets["canonical"]),
    )


def _string_list(raw: Any, key: str, where: str) -> list[str]:
    values = raw if isinstance(raw, list) else [raw]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise MalformedPolicyDocument(f'{where}Invalid principal in policy: "{key}":{raw!r}')
    return values


def _add_aws_principal(entry: str, buckets: dict[str, set[str]], where: str) -> bool:
    """Record one ``AWS`` principal entry; returns True for the ``*`` wildcard."""
    if entry == "*":
        return True
    if _ACCOUNT_ID_RE.match(entry):
        buckets["accounts"].add(entry)
        return False
    root = _ROOT_ARN_RE.match(entry)
    if root:
        buckets["accounts"].add(root.group(1))
        return False
    # AWS rejects partial wildcards in principals ("user/*"); only a bare "*" is allowed.
    if not _IDENTITY_ARN_RE.match(entry) or "*" in entry or "?" in entry:
        raise MalformedPolicyDocument(f'{where}Invalid principal in policy: "AWS":"{entry}"')
    buckets["arns"].add(entry)
    return False
