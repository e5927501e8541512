"""Parsing and validation of IAM policy JSON documents into pre-compiled :class:`Policy` objects."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from stratum.policy.conditions import Clause, parse_conditions
from stratum.policy.errors import MalformedPolicyDocument
from stratum.policy.matching import ActionMatcher, ResourceMatcher
from stratum.policy.principals import PrincipalSpec, parse_principal

__all__ = ["MalformedPolicyDocument", "Policy", "Statement", "parse_policy", "POLICY_KINDS"]

VERSION_2012: Final = "2012-10-17"
VERSION_2008: Final = "2008-10-17"
POLICY_KINDS: Final = frozenset({"identity", "resource", "trust", "boundary", "session", "endpoint", "scp"})

_TOP_LEVEL_FIELDS: Final = frozenset({"Version", "Id", "Statement"})
_STATEMENT_FIELDS: Final = frozenset(
    {
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    }
)
# Principal rules per kind: identity-style policies are attached to the principal already.
_PRINCIPAL_FORBIDDEN: Final = frozenset({"identity", "boundary", "session", "scp"})
_PRINCIPAL_REQUIRED: Final = frozenset({"resource", "trust"})
# Resource rules per kind: a trust policy's resource is the role itself; other resource-based
# policies may omit it (ECR-style) and then cover the resource they are attached to.
_RESOURCE_FORBIDDEN: Final = frozenset({"trust"})
_RESOURCE_OPTIONAL: Final = frozenset({"resource"})
# Bound per-policy action caches; real workloads use a few hundred distinct actions.
_ACTION_CACHE_LIMIT: Final = 4096

_Candidates = tuple[tuple["Statement", ...], tuple["Statement", ...]]


@dataclass(frozen=True, slots=True)
class Statement:
    """One compiled statement; ``index`` is 0-based within its policy."""

    index: int
    sid: str | None
    effect: str
    actions: ActionMatcher
    not_action: bool
    resources: ResourceMatcher | None
    not_resource: bool
    principal: PrincipalSpec | None
    not_principal: bool
    conditions: tuple[Clause, ...]

    @property
    def is_allow(self) -> bool:
        return self.effect == "Allow"

    def matches_action(self, action: str) -> bool:
        """``action`` must already be lower-case."""
        return self.actions.matches(action) != self.not_action


@dataclass(frozen=True, slots=True, eq=False)
class Policy:
    """A parsed, validated and pre-compiled policy document.

    Instances are immutable apart from an internal per-action cache and are safe to share
    between requests and threads.
    """

    statements: tuple[Statement, ...]
    kind: str = "identity"
    version: str = VERSION_2008
    id: str | None = None
    name: str | None = None
    document: Mapping[str, Any] = field(default_factory=dict, repr=False)
    _by_action: dict[str, _Candidates] = field(default_factory=dict, init=False, repr=False)
    # Whether evaluating the policy can read the request context: a Condition, or a policy
    # variable in Resource/NotResource. When no policy of a request does, the context is not built.
    uses_context: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "uses_context", any(
            s.conditions or (s.resources is not None and s.resources.templates) for s in self.statements))

    def candidates(self, action: str) -> _Candidates:
        """(deny statements, allow statements) whose Action/NotAction covers ``action``.

        ``action`` must be lower-case. Cached because a server sees few distinct actions.
        """
        cached = self._by_action.get(action)
        if cached is None:
            matching = [s for s in self.statements if s.matches_action(action)]
            cached = (
                tuple(s for s in matching if not s.is_allow),
                tuple(s for s in matching if s.is_allow),
            )
            if len(self._by_action) >= _ACTION_CACHE_LIMIT:
                self._by_action.clear()
            self._by_action[action] = cached
        return cached

    def to_json(self) -> str:
        return json.dumps(self.document)


def parse_policy(
    doc: str | bytes | Mapping[str, Any], *, kind: str = "identity", name: str | None = None
) -> Policy:
    """Parse and validate a policy document.

    ``kind`` selects the structural rules: ``identity``/``boundary``/``session``/``scp``
    policies may not name a principal; ``resource`` and ``trust`` policies must name one in
    every statement; ``endpoint`` policies may do either.
    Raises :class:`MalformedPolicyDocument` with an IAM-style message.
    """
    if kind not in POLICY_KINDS:
        raise ValueError(f"unknown policy kind {kind!r}; expected one of {sorted(POLICY_KINDS)}")
    document = _load(doc)
    unknown = sorted(set(document) - _TOP_LEVEL_FIELDS)
    if unknown:
        raise MalformedPolicyDocument(f"Unknown field {unknown[0]}")
    version = _parse_version(document)
    policy_id = document.get("Id")
    if policy_id is not None and not isinstance(policy_id, str):
        raise MalformedPolicyDocument("Id must be a string")
    raw_statements = _statement_list(document)
    statements = tuple(
        _parse_statement(raw, index, kind=kind, variables=version == VERSION_2012)
        for index, raw in enumerate(raw_statements)
    )
    _check_unique_sids(statements)
    return Policy(
        statements=statements, kind=kind, version=version, id=policy_id, name=name, document=document
    )


def _load(doc: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(doc, str | bytes):
        try:
            loaded = json.loads(doc)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the reader's stack
            raise MalformedPolicyDocument("Syntax errors in policy.") from None
    else:
        loaded = doc
    if not isinstance(loaded, Mapping):
        raise MalformedPolicyDocument("Syntax errors in policy.")
    return dict(loaded)


def _parse_version(document: Mapping[str, Any]) -> str:
    version = document.get("Version", VERSION_2008)
    if version not in (VERSION_2012, VERSION_2008):
        raise MalformedPolicyDocument("The policy must contain a valid version string")
    return str(version)


def _statement_list(document: Mapping[str, Any]) -> list[Any]:
    if "Statement" not in document:
        raise MalformedPolicyDocument("Missing required field Statement")
    raw = document["Statement"]
    statements = raw if isinstance(raw, list) else [raw]
    if not statements:
        raise MalformedPolicyDocument("Policy must contain at least one statement.")
    return statements


def _parse_statement(raw: Any, index: int, *, kind: str, variables: bool) -> Statement:
    where = f"Statement {index + 1}: "  # 1-based, as a human counts statements
    if not isinstance(raw, dict):
        raise MalformedPolicyDocument(f"{where}Statement must be an object")
    unknown = sorted(set(raw) - _STATEMENT_FIELDS)
    if unknown:
        raise MalformedPolicyDocument(f"{where}Unknown field {unknown[0]}")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise MalformedPolicyDocument(f"{where}Sid must be a string")
    effect = raw.get("Effect")
    if effect is None:
        raise MalformedPolicyDocument(f"{where}Missing required field Effect")
    if effect not in ("Allow", "Deny"):
        raise MalformedPolicyDocument(f"{where}Invalid effect: {effect}")
    principal, not_principal = _parse_principal_element(raw, kind, where)
    action_key, action_values = _exactly_one(
        raw, "Action", "NotAction", where, "Policy statement must contain actions."
    )
    _check_actions(action_values, where)
    resources, not_resource = _parse_resource_element(raw, kind, where, variables)
    conditions = (
        parse_conditions(raw["Condition"], variables=variables, where=where) if "Condition" in raw else ()
    )
    return Statement(
        index=index,
        sid=sid or None,
        effect=effect,
        actions=ActionMatcher(action_values),
        not_action=action_key == "NotAction",
        resources=resources,
        not_resource=not_resource,
        principal=principal,
        not_principal=not_principal,
        conditions=conditions,
    )


def _parse_principal_element(
    raw: Mapping[str, Any], kind: str, where: str
) -> tuple[PrincipalSpec | None, bool]:
    present = [k for k in ("Principal", "NotPrincipal") if k in raw]
    if present and kind in _PRINCIPAL_FORBIDDEN:
        raise MalformedPolicyDocument(f"{where}Policy document should not specify a principal.")
    if len(present) > 1:
        raise MalformedPolicyDocument(f"{where}Principal and NotPrincipal cannot both be specified")
    if not present:
        if kind in _PRINCIPAL_REQUIRED:
            raise MalformedPolicyDocument(f"{where}Missing required field Principal")
        return None, False
    key = present[0]
    return parse_principal(raw[key], where), key == "NotPrincipal"


def _parse_resource_element(
    raw: Mapping[str, Any], kind: str, where: str, variables: bool
) -> tuple[ResourceMatcher | None, bool]:
    if kind in _RESOURCE_FORBIDDEN:
        for key in ("Resource", "NotResource"):
            if key in raw:
                raise MalformedPolicyDocument(f"{where}Has prohibited field {key}")
        return None, False
    if kind in _RESOURCE_OPTIONAL and "Resource" not in raw and "NotResource" not in raw:
        return None, False
    key, values = _exactly_one(
        raw, "Resource", "NotResource", where, "Policy statement must contain resources."
    )
    for value in values:
        if value != "*" and not value.startswith("arn:"):
            raise MalformedPolicyDocument(f'{where}Resource {value} must be in ARN format or "*".')
    return ResourceMatcher(values, variables=variables), key == "NotResource"


def _exactly_one(
    raw: Mapping[str, Any], key: str, not_key: str, where: str, missing: str
) -> tuple[str, list[str]]:
    present = [k for k in (key, not_key) if k in raw]
    if not present:
        raise MalformedPolicyDocument(f"{where}{missing}")
    if len(present) > 1:
        raise MalformedPolicyDocument(f"{where}{key} and {not_key} cannot both be specified")
    found = present[0]
    value = raw[found]
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) and v for v in values):
        raise MalformedPolicyDocument(f"{where}{found} must be a string or list of strings")
    if not values:
        raise MalformedPolicyDocument(f"{where}{missing}")
    return found, values


def _check_actions(actions: list[str], where: str) -> None:
    for action in actions:
        if action == "*":
            continue
        vendor, sep, name = action.partition(":")
        if not sep or not vendor or not name:
            raise MalformedPolicyDocument(
                f"{where}Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
            )


def _check_unique_sids(statements: tuple[Statement, ...]) -> None:
    seen: set[str] = set()
    for statement in statements:
        if statement.sid is None:
            continue
        if statement.sid in seen:
            raise MalformedPolicyDocument("Statement IDs (SID) in a single policy must be unique.")
        seen.add(statement.sid)
