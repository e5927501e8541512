"""Turns (identity, action, resource) into a policy decision using the pure evaluator.

Gathers the caller's identity policies (inline + attached managed), permissions boundary and session
policies from the store (cached briefly), fills the global condition keys from the real request, and
raises the service's AccessDenied error in AWS's wording.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from stratum.auth.identity import Identity
from stratum.policy import (
    AuthzRequest,
    Caller,
    Policy,
    PolicySet,
    access_denied_message,
    evaluate,
    parse_policy,
)
from stratum.protocol.errors import ServiceError
from stratum.services.iam.tables import (
    iam_attachments,
    iam_inline_policies,
    iam_policies,
    iam_policy_versions,
    iam_roles,
    iam_users,
)

if TYPE_CHECKING:
    from stratum.server.app_state import AppState
    from stratum.server.context import RequestContext

# Service -> (error code, HTTP status) used for AccessDenied, as each AWS service answers it.
ACCESS_DENIED = {
    "sts": ("AccessDenied", 403),
    "iam": ("AccessDenied", 403),
    "s3": ("AccessDenied", 403),
    "organizations": ("AccessDeniedException", 400),
}


@lru_cache(maxsize=4096)
def cached_policy(document: str, kind: str, name: str | None = None) -> Policy:
    return parse_policy(document, kind=kind, name=name)


class Authorizer:
    def __init__(self, app: AppState) -> None:
        self.app = app
        self._cache: dict[tuple[str, str, str], tuple[float, tuple[tuple[Policy, ...], Policy | None]]] = {}
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    # -------------------------------------------------------------------------------- policy lookup
    def principal_policies(self, account_id: str, principal_type: str, name: str
                           ) -> tuple[tuple[Policy, ...], Policy | None]:
        """Identity policies and permissions boundary of a user or role."""
        key = (account_id, principal_type, name)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.app.settings.credential_cache_seconds:
            return hit[1]
        result = self._load_principal_policies(account_id, principal_type, name)
        with self._lock:
            self._cache[key] = (now, result)
        return result

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
            policies.extend(self._managed(conn, arns))
            table = iam_users if principal_type == "user" else iam_roles
            boundary_arn = conn.execute(select(table.c.permissions_boundary).where(
                (table.c.account_id == account_id) & (table.c.name == name))).scalar()
            boundary = None
            if boundary_arn:
                found = self._managed(conn, [boundary_arn], kind="boundary")
                boundary = found[0] if found else None
        return tuple(policies), boundary

    def _managed(self, conn: Any, arns: list[str], kind: str = "identity") -> list[Policy]:
        if not arns:
            return []
        rows = conn.execute(
            select(iam_policies.c.arn, iam_policies.c.name, iam_policy_versions.c.document)
            .join(iam_policy_versions, (iam_policy_versions.c.policy_arn == iam_policies.c.arn)
                  & (iam_policy_versions.c.version_id == iam_policies.c.default_version))
            .where(iam_policies.c.arn.in_(arns)))
        return [cached_policy(r.document, kind, r.arn) for r in rows]

    def managed_documents(self, arns: tuple[str, ...], kind: str) -> list[Policy]:
        with self.app.db.read() as conn:
            return self._managed(conn, list(arns), kind)

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
                session.extend(self.managed_documents(identity.session_policy_arns, "session"))
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
        if ctx.http.vpce_id:
            keys["aws:SourceVpce"] = ctx.http.vpce_id
        for k, v in ident.tags.items():
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
        request = AuthzRequest(caller=caller, action=action, resource=resource,
                               resource_account=resource_account, context=self.request_context(ctx, context))
        decision = evaluate(request, self.policy_set(ident, policy, resource_policy_required))
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


def _dump(doc: dict[str, Any]) -> str:
    import json

    return json.dumps(doc, sort_keys=True)
