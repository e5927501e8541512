"""Turns (identity, action, resource) into a policy decision using the pure evaluator.

Gathers the caller's identity policies (inline + attached managed), permissions boundary and session
policies from the store (cached briefly), fills the global condition keys from the real request, and
raises the service's AccessDenied error in AWS's wording.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from stratum.auth.identity import Identity
from stratum.policy import (
    AuthzRequest,
    Caller,
    Decision,
    Policy,
    PolicySet,
    access_denied_message,
    evaluate,
    parse_policy,
)
from stratum.protocol.errors import ServiceError
from stratum.server.listeners import VpcEndpoint, endpoint_index
from stratum.services.iam.store import visible_policies
from stratum.services.iam.tables import (
    iam_attachments,
    iam_inline_policies,
    iam_policies,
    iam_policy_versions,
    iam_roles,
    iam_users,
)
from stratum.services.organizations.tables import accounts
from stratum.store.refreshed import RefreshedCache

if TYPE_CHECKING:
    from stratum.server.app_state import AppState
    from stratum.server.context import RequestContext

# Service -> (error code, HTTP status) used for AccessDenied, as each AWS service answers it.
ACCESS_DENIED = {
    "sts": ("AccessDenied", 403),
    "iam": ("AccessDenied", 403),
    "s3": ("AccessDenied", 403),
    "organizations": ("AccessDeniedException", 400),
    "ram": ("AccessDeniedException", 403),
    "cloudwatch": ("AccessDenied", 403),
    "lambda": ("AccessDeniedException", 403),  # its query-compatible code, as boto3 reports it
    "sqs": ("AccessDenied", 403),
}


@lru_cache(maxsize=4096)
def cached_policy(document: str, kind: str, name: str | None = None) -> Policy:
    return parse_policy(document, kind=kind, name=name)


class Authorizer:
    def __init__(self, app: AppState) -> None:
        self.app = app
        def ttl() -> float:
            return float(self.app.settings.credential_cache_seconds)

        # (account, "user" | "role", name) -> (identity policies, permissions boundary)
        self._cache: RefreshedCache[tuple[str, str, str], tuple[tuple[Policy, ...], Policy | None]] = \
            RefreshedCache(ttl)
        self._facts: RefreshedCache[tuple[str, ...], Any] = RefreshedCache(ttl)
        self._decisions: dict[tuple[Any, ...], Decision] = {}

    def invalidate(self, account_id: str | None = None) -> None:
        """Forget cached principal policies and facts (of ``account_id``'s principals only, when
        given). Decisions need no forgetting: they are keyed by the very policy objects."""
        if account_id is None:
            self._cache.invalidate()
            self._facts.invalidate()
            self._decisions.clear()
            return
        self._cache.invalidate(lambda key, _value: key[0] == account_id)
        self._facts.invalidate(lambda key, _value: account_id in key[1:2])

    def _fact(self, key: tuple[str, ...], load: Callable[[], Any]) -> Any:
        """A small cached lookup (organization of an account, tags of a role), same TTL as policies."""
        return self._facts.get(key, load)

    def organization_of(self, account_id: str) -> str | None:
        """aws:PrincipalOrgID / aws:ResourceOrgID: the organization an account belongs to."""
        def load() -> str | None:
            with self.app.db.read() as conn:
                return conn.execute(select(accounts.c.organization_id).where(accounts.c.id == account_id)).scalar()
        return self._fact(("org", account_id), load) if account_id else None

    def role_tags(self, account_id: str, role_name: str) -> dict[str, str]:
        def load() -> dict[str, str]:
            with self.app.db.read() as conn:
                tags = conn.execute(select(iam_roles.c.tags).where(
                    (iam_roles.c.account_id == account_id) & (iam_roles.c.name == role_name))).scalar()
            return {t["Key"]: t["Value"] for t in tags or []}
        return self._fact(("role-tags", account_id, role_name), load)

    def endpoint(self, vpce_id: str | None) -> VpcEndpoint | None:
        if not vpce_id:
            return None
        return endpoint_index(self.app.settings).get(vpce_id)

    # -------------------------------------------------------------------------------- policy lookup
    def principal_policies(self, account_id: str, principal_type: str, name: str
                           ) -> tuple[tuple[Policy, ...], Policy | None]:
        """Identity policies and permissions boundary of a user or role."""
        return self._cache.get((account_id, principal_type, name),
                               lambda: self._load_principal_policies(account_id, principal_type, name))

    def _load_principal_policies(self, account_id: str, principal_type: str, name: str
                                 ) -> tuple[tuple[Policy, ...], Policy | None]:
        policies: list[Policy] = []
        with self.app.db.read() as conn:
            for row in conn.execute(select(iam_inline_policies.c.policy_name, iam_inline_policies.c.document).where(
                    (iam_inline_policies.c.account_id == account_id)
                    & (iam_inline_policies.c.principal_type == principal_type)
                    & (iam_inline_policies.c.principal_name == name))):
                policies.append(cached_policy(row.document, "identity", row.policy_name))
            arns = [r.policy_arn for r in conn.execute(select(iam_attachments.c.policy_arn).where(
                (iam_attachments.c.account_id == account_id)
                & (iam_attachments.c.principal_type == principal_type)
                & (iam_attachments.c.principal_name == name)))]
            policies.extend(self._managed(conn, account_id, arns))
            table = iam_users if principal_type == "user" else iam_roles
            boundary_arn = conn.execute(select(table.c.permissions_boundary).where(
                (table.c.account_id == account_id) & (table.c.name == name))).scalar()
            boundary = None
            if boundary_arn:
                found = self._managed(conn, account_id, [boundary_arn], kind="boundary")
                boundary = found[0] if found else None
        return tuple(policies), boundary

    def _managed(self, conn: Any, account_id: str, arns: list[str], kind: str = "identity") -> list[Policy]:
        """The default versions of the managed policies ``account_id`` can use: its own and AWS's
        (a stored reference to another account's policy grants nothing)."""
        if not arns:
            return []
        rows = conn.execute(
            select(iam_policies.c.arn, iam_policies.c.name, iam_policy_versions.c.document)
            .join(iam_policy_versions, (iam_policy_versions.c.policy_arn == iam_policies.c.arn)
                  & (iam_policy_versions.c.version_id == iam_policies.c.default_version))
            .where(iam_policies.c.arn.in_(arns) & visible_policies(account_id)))
        return [cached_policy(r.document, kind, r.arn) for r in rows]

    def managed_documents(self, account_id: str, arns: tuple[str, ...], kind: str) -> list[Policy]:
        with self.app.db.read() as conn:
            return self._managed(conn, account_id, list(arns), kind)

    def policy_set(self, identity: Identity, resource_policy: Policy | None = None,
                   resource_policy_required: bool = False) -> PolicySet:
        identity_policies: tuple[Policy, ...] = ()
        boundary = None
        session: list[Policy] = []
        if identity.kind == "user" and identity.user_name:
            identity_policies, boundary = self.principal_policies(identity.account_id, "user", identity.user_name)
        elif identity.kind == "assumed-role" and identity.role_name:
            identity_policies, boundary = self.principal_policies(identity.account_id, "role", identity.role_name)
            if identity.session_policy:
                session.append(cached_policy(identity.session_policy, "session", "session policy"))
            if identity.session_policy_arns:
                session.extend(self.managed_documents(identity.account_id, identity.session_policy_arns, "session"))
        return PolicySet(identity=identity_policies, resource=resource_policy, boundary=boundary,
                         session=tuple(session), resource_policy_required=resource_policy_required)

    # ------------------------------------------------------------------------------------ decision
    def request_context(self, ctx: RequestContext, extra: dict[str, Any] | None) -> dict[str, Any]:
        ident = ctx.identity
        now = datetime.now(UTC)
        keys: dict[str, Any] = {
            "aws:PrincipalArn": ident.role_arn or ident.arn,
            "aws:PrincipalAccount": ident.account_id,
            "aws:PrincipalType": {"user": "User", "root": "Account", "assumed-role": "AssumedRole"}.get(ident.kind, "Anonymous"),
            "aws:userid": ident.principal_id,
            "aws:SourceIp": ctx.http.client_ip,
            "aws:SecureTransport": ctx.http.scheme == "https",
            "aws:CurrentTime": now,
            "aws:EpochTime": int(now.timestamp()),
            "aws:RequestedRegion": ctx.region,
        }
        if ident.user_name:
            keys["aws:username"] = ident.user_name
        # Requests from customer credentials: never an AWS service principal, never forwarded by
        # a service (see forwarded_context for the calls Stratum makes on a caller's behalf).
        keys["aws:PrincipalIsAWSService"] = False
        keys["aws:ViaAWSService"] = False
        org = self.organization_of(ident.account_id)
        if org:
            keys["aws:PrincipalOrgID"] = org
        if ident.kind == "assumed-role":
            keys["aws:MultiFactorAuthPresent"] = False  # temporary credentials without MFA
        if ctx.http.vpce_id:
            # Through a VPC endpoint AWS reports the endpoint and the private address, never
            # a public aws:SourceIp.
            keys["aws:SourceVpce"] = ctx.http.vpce_id
            keys["aws:VpcSourceIp"] = keys.pop("aws:SourceIp")
            endpoint = self.endpoint(ctx.http.vpce_id)
            if endpoint is not None and endpoint.vpc_id:
                keys["aws:SourceVpc"] = endpoint.vpc_id
        tags = dict(ident.tags)
        if ident.kind == "assumed-role" and ident.role_name:
            # A role's tags are principal tags of its sessions; session tags win on a clash.
            tags = {**self.role_tags(ident.account_id, ident.role_name), **tags}
        for k, v in tags.items():
            keys[f"aws:PrincipalTag/{k}"] = v
        keys.update(ctx.extra_context)
        if extra:
            keys.update(extra)
        return keys

    def check(self, ctx: RequestContext, action: str, resource: str, *, resource_account: str | None = None,
              resource_policy: str | dict[str, Any] | None = None, context: dict[str, Any] | None = None,
              resource_policy_required: bool = False):  # type: ignore[no-untyped-def]
        ident = ctx.identity
        policy = None
        if resource_policy is not None:
            doc = resource_policy if isinstance(resource_policy, str) else _dump(resource_policy)
            policy = cached_policy(doc, "resource", "resource policy")
        caller = Caller(arn=ident.arn, account=ident.account_id,
                        kind=ident.kind if ident.kind != "anonymous" else "anonymous",
                        role_arn=ident.role_arn, service=None)
        policies = self.policy_set(ident, policy, resource_policy_required)
        keys: dict[str, Any] = {}
        if ctx.http.vpce_id or policies.uses_context():
            # Built only when it can matter: a Condition or a policy variable can read it, or the
            # request came through a VPC endpoint (whose policy then applies). Otherwise the
            # evaluation never looks at it, and building it costs more than the evaluation.
            keys = self.request_context(ctx, context)
            if resource_account and "aws:ResourceOrgID" not in keys:
                resource_org = self.organization_of(resource_account)
                if resource_org:
                    keys["aws:ResourceOrgID"] = resource_org
            if keys.get("aws:SourceVpce") is not None:
                # The endpoint policy applies to what arrives through the endpoint (not to calls
                # a service forwards on the caller's behalf, whose context drops aws:SourceVpce).
                endpoint = self.endpoint(ctx.http.vpce_id)
                policies.endpoint = endpoint.policy if endpoint is not None else None
        request = AuthzRequest(caller=caller, action=action, resource=resource,
                               resource_account=resource_account, context=keys)
        if keys:
            return request, evaluate(request, policies)
        # Without a context the decision is a pure function of the caller, the action, the
        # resource and the very policy objects (compared by identity: the same parsed document is
        # one object, and the key keeps it alive), so it is remembered.
        key = (caller.arn, caller.kind, caller.account, caller.role_arn, action, resource, resource_account,
               policies.identity, policies.resource, policies.boundary, policies.session,
               policies.resource_policy_required)
        decision = self._decisions.get(key)
        if decision is None:
            decision = evaluate(request, policies)
            if len(self._decisions) >= 4096:
                self._decisions.clear()
            self._decisions[key] = decision
        return request, decision

    def authorize(self, ctx: RequestContext, action: str, resource: str, **kwargs: Any) -> None:
        request, decision = self.check(ctx, action, resource, **kwargs)
        if decision.allowed:
            return
        code, status = ACCESS_DENIED.get(ctx.service, ("AccessDeniedException", 400))
        message = access_denied_message(request, decision)
        if ctx.identity.is_anonymous:
            message = "Access Denied" if ctx.service == "s3" else message
        raise ServiceError(code, message, status)


def tag_condition_keys(tags: list[dict[str, str]] | dict[str, str] | None,
                       removed_keys: list[str] | None = None) -> dict[str, Any]:
    """aws:RequestTag/* and aws:TagKeys for a request that sets tags (``tags``, as a Key/Value
    list or a mapping) or removes them (``removed_keys``)."""
    pairs = list(tags.items()) if isinstance(tags, dict) else [(t["Key"], t["Value"]) for t in tags or []]
    keys: dict[str, Any] = {f"aws:RequestTag/{k}": v for k, v in pairs}
    tag_keys = list(removed_keys) if removed_keys is not None else [k for k, _ in pairs]
    if tag_keys:
        keys["aws:TagKeys"] = tag_keys
    return keys


# Services whose forwarded requests AWS lists in aws:CalledVia (IAM User Guide, "aws:CalledVia").
CALLED_VIA_SERVICES = frozenset({"athena.amazonaws.com", "cloudformation.amazonaws.com",
                                 "dynamodb.amazonaws.com", "kms.amazonaws.com"})


def forwarded_context(service_principal: str, called_via: tuple[str, ...] = ()) -> dict[str, Any]:
    """Context overrides for a call a service makes with the caller's credentials (a forward
    access session, e.g. SageMaker reading a pipeline definition from S3 as the caller).

    Pass as ``context=`` to ``ctx.authorize``. As on AWS such a call has aws:ViaAWSService true and
    no network origin (aws:SourceIp / aws:SourceVpce / aws:SourceVpc are absent, and the endpoint
    policy does not apply); aws:CalledVia lists the forwarding services AWS reports there.
    """
    chain = [s for s in (*called_via, service_principal) if s in CALLED_VIA_SERVICES]
    keys: dict[str, Any] = {"aws:ViaAWSService": True, "aws:SourceIp": None, "aws:VpcSourceIp": None,
                            "aws:SourceVpce": None, "aws:SourceVpc": None}
    if chain:
        keys.update({"aws:CalledVia": chain, "aws:CalledViaFirst": chain[0], "aws:CalledViaLast": chain[-1]})
    return keys


def _dump(doc: dict[str, Any]) -> str:
    import json

    return json.dumps(doc, sort_keys=True)
