"""IAM policy simulation (SimulatePrincipalPolicy / SimulateCustomPolicy), answered by the same
evaluator that authorizes every real request.

As in AWS's simulator, the request context holds only the ContextEntries given: nothing is filled
from the caller or the clock, and a key a relevant statement needs but nobody supplied is reported
in MissingContextValues. Matched statements point at their place in the policy text (StartPosition /
EndPosition: 1-based line, and the 1-based column just past the statement's opening and closing
braces, as AWS reports them).

The answer is what the server would decide for the same request: sts:GetCallerIdentity is always
allowed (AWS answers it whatever the policies say), and an action the server authorizes against a
resource policy that must allow it — a KMS key's key policy, a role's trust policy for
sts:AssumeRole — is simulated with that policy (the stored one, unless ResourcePolicy gives it).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import Connection, select

from stratum.policy import (
    ALLOWED,
    AuthzRequest,
    Caller,
    Decision,
    MalformedPolicyDocument,
    Policy,
    PolicySet,
    evaluate,
    parse_policy,
)
from stratum.policy.conditions import parse_date, parse_number
from stratum.protocol.errors import ServiceError
from stratum.services.iam import store
from stratum.services.iam.tables import (
    iam_attachments,
    iam_inline_policies,
    iam_policies,
    iam_policy_versions,
    iam_roles,
    iam_users,
)

NONE = "none"  # SourcePolicyType of policies passed in the request
AWS_MANAGED_PREFIX = "arn:aws:iam::aws:policy/"
# Keys the evaluator would otherwise derive from the caller or the clock; the simulator only
# knows what the request supplies, so they are blanked unless given as ContextEntries.
_DERIVED_KEYS = ("aws:PrincipalArn", "aws:PrincipalAccount", "aws:username", "aws:PrincipalType",
                 "aws:PrincipalServiceName", "aws:ResourceAccount", "aws:CurrentTime", "aws:EpochTime")
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_IAM_ARN = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):(user|role|group)/(?:.*/)?([\w+=,.@-]+)$")
_ACCOUNT_ARN = re.compile(r"^arn:aws[\w-]*:[\w-]*:[\w-]*:(\d{12}):")


def invalid(message: str) -> ServiceError:
    return ServiceError("InvalidInput", message, 400)


@dataclass
class SourcePolicy:
    """One policy taking part in a simulation, with what the response says about it."""

    text: str
    source_id: str
    source_type: str
    kind: str  # identity | boundary | resource | scp
    arn: str | None = None  # managed policies
    inline_of: tuple[str, str] | None = None  # (attachment type, entity name) of inline policies
    policy: Policy = field(init=False)
    _spans: list[tuple[tuple[int, int], tuple[int, int]]] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        try:
            self.policy = parse_policy(self.text, kind=self.kind, name=f"{self.kind}:{id(self)}")
        except MalformedPolicyDocument as exc:
            raise invalid(f"{self.source_id}: {exc}") from None

    def statement(self, index: int) -> dict[str, Any]:
        out: dict[str, Any] = {"SourcePolicyId": self.source_id, "SourcePolicyType": self.source_type}
        if self._spans is None:
            self._spans = statement_positions(self.text)
        if index < len(self._spans):
            (start_line, start_col), (end_line, end_col) = self._spans[index]
            out["StartPosition"] = {"Line": start_line, "Column": start_col}
            out["EndPosition"] = {"Line": end_line, "Column": end_col}
        return out

    def raw_statements(self) -> list[dict[str, Any]]:
        raw = self.policy.document.get("Statement", [])
        return [s for s in (raw if isinstance(raw, list) else [raw]) if isinstance(s, dict)]


@dataclass
class Simulation:
    caller: Caller
    identity: list[SourcePolicy]
    boundary: SourcePolicy | None = None
    resource_policy: SourcePolicy | None = None
    scps: list[list[SourcePolicy]] = field(default_factory=list)  # SCP levels, root first
    resource_owner: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    # Resource ARN -> (its stored resource policy, owner account), for the resources whose actions
    # need one (required_resource_policy) when the request gives no ResourcePolicy.
    stored: dict[str, tuple[SourcePolicy, str]] = field(default_factory=dict)

    def sources(self) -> Iterable[SourcePolicy]:
        yield from self.identity
        for extra in (self.boundary, self.resource_policy):
            if extra is not None:
                yield extra
        for level in self.scps:
            yield from level
        for policy, _owner in self.stored.values():
            yield policy


_ALWAYS_ALLOWED = frozenset({"sts:getcalleridentity"})
_TRUST_ACTIONS = frozenset({"sts:assumerole", "sts:assumerolewithsaml", "sts:assumerolewithwebidentity"})


def required_resource_policy(action: str, resource: str) -> bool:
    """Whether the server authorizes ``action`` on ``resource`` only if the resource's own policy
    allows it: KMS key operations (key policy) and assuming a role (trust policy)."""
    parts = resource.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return False
    lowered = action.lower()
    if parts[2] == "kms" and parts[5].startswith("key/"):
        return lowered.startswith("kms:")
    return parts[2] == "iam" and parts[5].startswith("role/") and lowered in _TRUST_ACTIONS


def stored_resource_policies(conn: Connection, actions: list[str], resources: list[str] | None
                             ) -> dict[str, tuple[SourcePolicy, str]]:
    """The stored key and trust policies of the resources the simulated actions need them for."""
    from stratum.services.kms.tables import kms_keys

    found: dict[str, tuple[SourcePolicy, str]] = {}
    for resource in resources or []:
        if resource in found or not any(required_resource_policy(a, resource) for a in actions):
            continue
        owner = resource.split(":")[4]
        if resource.split(":")[2] == "kms":
            text = conn.execute(select(kms_keys.c.policy).where(kms_keys.c.arn == resource)).scalar()
        else:
            text = conn.execute(select(iam_roles.c.assume_role_policy).where(
                (iam_roles.c.account_id == owner) & (iam_roles.c.arn == resource))).scalar()
        if text is not None:
            found[resource] = (SourcePolicy(str(text), resource, "resource", "resource"), owner)
    return found


# --------------------------------------------------------------------------------- the simulation
def simulate(sim: Simulation, actions: list[str], resources: list[str] | None) -> list[dict[str, Any]]:
    """One EvaluationResult per action and resource, in request order."""
    by_name = {s.policy.name: s for s in sim.sources()}
    results: list[dict[str, Any]] = []
    for action in actions:
        for resource in resources or ["*"]:
            decision, boundary_ok, orgs_ok = _decide(sim, action, resource)
            matched = [by_name[m.policy_name].statement(m.statement_index) for m in decision.matched
                       if m.policy_name in by_name]
            missing = _missing_keys(sim, action)
            result: dict[str, Any] = {"EvalActionName": action, "EvalResourceName": resource,
                                      "EvalDecision": decision.decision, "MatchedStatements": matched,
                                      "MissingContextValues": missing if not resources else []}
            if boundary_ok is not None:
                result["PermissionsBoundaryDecisionDetail"] = {"AllowedByPermissionsBoundary": boundary_ok}
            if orgs_ok is not None:
                result["OrganizationsDecisionDetail"] = {"AllowedByOrganizations": orgs_ok}
            if resources:
                specific: dict[str, Any] = {"EvalResourceName": resource, "EvalResourceDecision": decision.decision,
                                            "MatchedStatements": matched, "MissingContextValues": missing}
                if boundary_ok is not None:
                    specific["PermissionsBoundaryDecisionDetail"] = {"AllowedByPermissionsBoundary": boundary_ok}
                result["ResourceSpecificResults"] = [specific]
            results.append(result)
    return results


def _decide(sim: Simulation, action: str, resource: str) -> tuple[Decision, bool | None, bool | None]:
    if action.lower() in _ALWAYS_ALLOWED:
        return Decision(allowed=True, decision=ALLOWED), None, None
    resource_policy, owner = sim.resource_policy, sim.resource_owner
    required = required_resource_policy(action, resource)
    if required and resource_policy is None and resource in sim.stored:
        resource_policy, owner = sim.stored[resource]
    request = AuthzRequest(caller=sim.caller, action=action, resource=resource,
                           resource_account=owner, context=sim.context)
    policies = PolicySet(identity=tuple(s.policy for s in sim.identity),
                         resource=resource_policy.policy if resource_policy else None,
                         boundary=sim.boundary.policy if sim.boundary else None,
                         scps=_levels(sim), resource_policy_required=required)
    decision = evaluate(request, policies)
    # The per-layer details: would this layer alone let an otherwise all-powerful caller through?
    root = Caller(arn=f"arn:aws:iam::{sim.caller.account}:root", account=sim.caller.account, kind="root")
    alone = AuthzRequest(caller=root, action=action, resource=resource, context=sim.context)
    boundary_ok = (evaluate(alone, PolicySet(boundary=sim.boundary.policy)).decision == ALLOWED
                   if sim.boundary else None)
    orgs_ok = (evaluate(alone, PolicySet(scps=_levels(sim))).decision == ALLOWED
               if sim.scps else None)
    return decision, boundary_ok, orgs_ok


def _levels(sim: Simulation) -> list[tuple[Policy, ...]]:
    return [tuple(s.policy for s in level) for level in sim.scps]


def _missing_keys(sim: Simulation, action: str) -> list[str]:
    """Condition keys and policy variables of statements covering ``action`` that were not given."""
    given = {k.lower() for k, v in sim.context.items() if v is not None}
    found: dict[str, str] = {}
    lowered = action.lower()
    for source in sim.sources():
        raws = source.raw_statements()
        for statement in source.policy.statements:
            if not statement.matches_action(lowered) or statement.index >= len(raws):
                continue
            raw = raws[statement.index]
            for key in _keys_of(raw):
                if key.lower() not in given:
                    found.setdefault(key.lower(), key)
    return list(found.values())


def _keys_of(raw: dict[str, Any]) -> list[str]:
    keys: list[str] = []
    condition = raw.get("Condition")
    if isinstance(condition, dict):
        for block in condition.values():
            if isinstance(block, dict):
                keys.extend(str(k) for k in block)
    for part in ("Resource", "NotResource", "Condition"):
        for match in _VARIABLE.finditer(json.dumps(raw.get(part, ""))):
            name = match.group(1).split(",", 1)[0].strip()
            if ":" in name:  # ${*}, ${?} and ${$} are escapes, not keys
                keys.append(name)
    return keys


# ----------------------------------------------------------------------------------- the inputs
def context_from_entries(entries: list[dict[str, Any]] | None) -> dict[str, Any]:
    context: dict[str, Any] = {key: None for key in _DERIVED_KEYS}
    for entry in entries or []:
        name, kind = entry.get("ContextKeyName"), entry.get("ContextKeyType")
        values = entry.get("ContextKeyValues") or []
        if not name or not kind:
            raise invalid("ContextKeyName and ContextKeyType are required in every context entry.")
        base = kind[:-4] if kind.endswith("List") else kind
        converted = [_convert(name, base, v) for v in values]
        context[name] = converted if kind.endswith("List") or len(converted) != 1 else converted[0]
    return context


def _convert(name: str, kind: str, value: str) -> Any:
    bad = invalid(f"Invalid value {value!r} for context key {name} of type {kind}.")
    if kind == "numeric":
        number = parse_number(value)
        if number is None:
            raise bad
        return number
    if kind == "boolean":
        if value.lower() not in ("true", "false"):
            raise bad
        return value.lower() == "true"
    if kind == "date":
        stamp = parse_date(value)
        if stamp is None:
            raise bad
        try:
            return datetime.fromtimestamp(stamp, UTC)
        except (OverflowError, OSError, ValueError):  # an epoch beyond year 9999, or not a number
            raise bad from None
    if kind == "ip":
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise bad from None
    return value  # string, ip, binary (base64 text, decoded by the operator)


def input_policies(texts: list[str] | None, list_name: str, kind: str) -> list[SourcePolicy]:
    return [SourcePolicy(text, f"{list_name}.{i}", NONE, kind) for i, text in enumerate(texts or [], 1)]


def scp_levels(levels: list[dict[str, Any]] | None) -> list[list[SourcePolicy]]:
    """OrderedOrganizationPolicyInputList: one entry per level, root first; a level's SCPs are ORed."""
    out: list[list[SourcePolicy]] = []
    for i, level in enumerate(levels or [], 1):
        name = f"OrderedOrganizationPolicyInputList.{i}.ServiceControlPolicyInputList"
        policies = input_policies(level.get("ServiceControlPolicyInputList"), name, "scp")
        if not policies:
            raise invalid(f"{name} must contain at least one policy.")
        out.append(policies)
    return out


def caller_from_arn(arn: str) -> Caller:
    m = _IAM_ARN.match(arn)
    if m is None or m.group(2) == "group":
        raise invalid(f"CallerArn {arn} must be the ARN of an IAM user or role.")
    if m.group(2) == "user":
        return Caller(arn=arn, account=m.group(1), kind="user")
    session = f"arn:aws:sts::{m.group(1)}:assumed-role/{m.group(3)}/simulated"
    return Caller(arn=session, account=m.group(1), kind="assumed-role", role_arn=arn)


def owner_account(owner: str | None) -> str | None:
    if not owner:
        return None
    if re.fullmatch(r"\d{12}", owner):
        return owner
    m = _ACCOUNT_ARN.match(owner)
    if m is None:
        raise invalid(f"ResourceOwner {owner} must be an account ID or an ARN that names an account.")
    return m.group(1)


def principal_ref(arn: str) -> tuple[str, str, str]:
    """(account, "user"|"role", name) of a PolicySourceArn."""
    m = _IAM_ARN.match(arn)
    if m is None:
        raise invalid(f"PolicySourceArn {arn} is not the ARN of an IAM user, group or role.")
    return m.group(1), m.group(2), m.group(3)


def principal_policies(conn: Connection, account_id: str, kind: str, name: str, arn: str
                       ) -> tuple[list[SourcePolicy], SourcePolicy | None]:
    """The stored identity policies and permissions boundary of a user or role."""
    table = iam_users if kind == "user" else iam_roles
    row = conn.execute(select(table.c.arn, table.c.permissions_boundary).where(
        (table.c.account_id == account_id) & (table.c.name == name))).first()
    if row is None or row.arn != arn:
        noun = "user" if kind == "user" else "role"
        raise ServiceError("NoSuchEntity", f"The {noun} with name {name} cannot be found.", 404)
    policies = [SourcePolicy(r.document, r.policy_name, kind, "identity", inline_of=(kind, name))
                for r in conn.execute(select(iam_inline_policies.c.policy_name, iam_inline_policies.c.document)
                                      .where((iam_inline_policies.c.account_id == account_id)
                                             & (iam_inline_policies.c.principal_type == kind)
                                             & (iam_inline_policies.c.principal_name == name))
                                      .order_by(iam_inline_policies.c.policy_name))]
    attached = [r.policy_arn for r in conn.execute(select(iam_attachments.c.policy_arn).where(
        (iam_attachments.c.account_id == account_id) & (iam_attachments.c.principal_type == kind)
        & (iam_attachments.c.principal_name == name)).order_by(iam_attachments.c.policy_arn))]
    policies.extend(_managed(conn, account_id, attached, "identity"))
    boundary = _managed(conn, account_id, [row.permissions_boundary], "boundary") if row.permissions_boundary else []
    return policies, boundary[0] if boundary else None


def _managed(conn: Connection, account_id: str, arns: list[str], kind: str) -> list[SourcePolicy]:
    if not arns:
        return []
    rows = conn.execute(
        select(iam_policies.c.arn, iam_policies.c.name, iam_policy_versions.c.document)
        .join(iam_policy_versions, (iam_policy_versions.c.policy_arn == iam_policies.c.arn)
              & (iam_policy_versions.c.version_id == iam_policies.c.default_version))
        .where(iam_policies.c.arn.in_(arns) & store.visible_policies(account_id)).order_by(iam_policies.c.arn))
    return [SourcePolicy(r.document, r.name, "aws-managed" if r.arn.startswith(AWS_MANAGED_PREFIX)
                         else "user-managed", kind, arn=r.arn) for r in rows]


def excluded(source: SourcePolicy, identifiers: list[dict[str, Any]]) -> bool:
    """Does a PolicyExclusionList entry name this stored policy?"""
    for ident in identifiers:
        policy_type, policy_arn, inline = ident.get("PolicyType"), ident.get("PolicyArn"), \
            ident.get("InlinePolicyIdentifier")
        if policy_type is not None:
            kind = ("permission-boundary" if source.kind == "boundary" else
                    "inline" if source.inline_of else source.source_type)
            if policy_type == kind:
                return True
        elif policy_arn is not None:
            if source.arn is not None and _arn_pattern_matches(policy_arn, source.arn):
                return True
        elif inline is not None and source.inline_of is not None:
            attachment_type, entity = source.inline_of
            if (inline["PolicyName"] == source.source_id and inline["AttachmentType"] == attachment_type
                    and fnmatchcase(entity, inline["AttachmentName"])):
                return True
    return False


def check_exclusions(identifiers: list[dict[str, Any]]) -> None:
    for ident in identifiers:
        given = [k for k in ("PolicyType", "PolicyArn", "InlinePolicyIdentifier") if ident.get(k) is not None]
        if len(given) != 1:
            raise invalid("Each PolicyExclusionList entry must give exactly one of PolicyType, PolicyArn or "
                          "InlinePolicyIdentifier.")
        arn = ident.get("PolicyArn")
        if arn is not None and (not arn.startswith("arn:") or arn.count(":") < 5
                                or "*" in arn.split(":", 5)[4] or arn.split(":", 5)[5].count("*") > 1):
            raise invalid(f"PolicyArn {arn} is not a valid policy ARN pattern.")
        inline = ident.get("InlinePolicyIdentifier")
        if inline is not None and inline.get("AttachmentName", "").count("*") > 1:
            raise invalid("AttachmentName may contain at most one '*'.")


def _arn_pattern_matches(pattern: str, arn: str) -> bool:
    head, _, name = pattern.rpartition("/") if "/" in pattern else ("", "", pattern)
    arn_head, _, arn_name = arn.rpartition("/")
    return head == arn_head and fnmatchcase(arn_name, name)


# ------------------------------------------------------------------------------------ positions
def statement_positions(text: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) (line, column) of every statement, in AWS's convention; [] if unparseable."""
    try:
        spans = _statement_spans(text)
    except (IndexError, ValueError):
        return []
    return [(_line_column(text, start), _line_column(text, end - 1)) for start, end in spans]


def _line_column(text: str, index: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 2


def _statement_spans(text: str) -> list[tuple[int, int]]:
    i = _skip_ws(text, 0)
    if text[i] != "{":
        return []
    i += 1
    while True:
        i = _skip_ws(text, i)
        if text[i] == "}":
            return []
        key_end = _skip_string(text, i)
        key = json.loads(text[i:key_end])
        i = _skip_ws(text, key_end)
        if text[i] != ":":
            return []
        i = _skip_ws(text, i + 1)
        end = _skip_value(text, i)
        if key == "Statement":
            if text[i] == "{":
                return [(i, end)]
            if text[i] == "[":
                return _array_items(text, i)
            return []
        i = _skip_ws(text, end)
        if text[i] != ",":
            return []
        i += 1


def _array_items(text: str, i: int) -> list[tuple[int, int]]:
    items: list[tuple[int, int]] = []
    i = _skip_ws(text, i + 1)
    while text[i] != "]":
        end = _skip_value(text, i)
        items.append((i, end))
        i = _skip_ws(text, end)
        if text[i] == ",":
            i = _skip_ws(text, i + 1)
    return items


def _skip_ws(text: str, i: int) -> int:
    while text[i] in " \t\r\n\ufeff":
        i += 1
    return i


def _skip_string(text: str, i: int) -> int:
    if text[i] != '"':
        raise ValueError("expected a string")
    i += 1
    while text[i] != '"':
        i += 2 if text[i] == "\\" else 1
    return i + 1


def _skip_value(text: str, i: int) -> int:
    ch = text[i]
    if ch == '"':
        return _skip_string(text, i)
    if ch in "{[":
        depth = 0
        while True:
            ch = text[i]
            if ch == '"':
                i = _skip_string(text, i)
                continue
            if ch in "{[":
                depth += 1
            elif ch in "}]":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
    while text[i] not in ",}] \t\r\n":
        i += 1
    return i


# ------------------------------------------------------------------------------------- paging
def page(results: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    start = 0
    if params.get("Marker"):
        try:
            start = int(base64.b64decode(params["Marker"]).decode())
        except ValueError:
            raise invalid("Invalid Marker.") from None
    limit = int(params.get("MaxItems") or 100)
    out: dict[str, Any] = {"EvaluationResults": results[start:start + limit],
                           "IsTruncated": start + limit < len(results)}
    if out["IsTruncated"]:
        out["Marker"] = base64.b64encode(str(start + limit).encode()).decode()
    return out
