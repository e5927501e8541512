"""Who may invoke a function: the caller's IAM policies and the function's resource policy, for an
authenticated identity (a user, a role session) or an AWS service principal (EventBridge invoking
a rule's target, with the rule as aws:SourceArn)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from stratum import ids
from stratum.auth.identity import Identity
from stratum.auth.service_principal import service_allowed
from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpRequest

if TYPE_CHECKING:
    from stratum.server.app_state import AppState
    from stratum.server.context import RequestContext

INVOKE = "lambda:InvokeFunction"


@dataclass(frozen=True)
class ServicePrincipal:
    """An AWS service acting on its own (``events.amazonaws.com``), allowed only by the function's
    resource policy; ``source_arn`` / ``source_account`` are its aws:SourceArn / aws:SourceAccount."""

    service: str
    source_arn: str | None = None
    source_account: str | None = None


Invoker = Identity | ServicePrincipal


def context_for(app: AppState, identity: Identity, region: str, operation: str = "Invoke") -> RequestContext:
    """A request context for a call Stratum makes as ``identity`` (no HTTP request behind it)."""
    from stratum.server.context import RequestContext

    return RequestContext(app, ids.request_id(), "lambda", operation, region, identity,
                          HttpRequest("POST", "/", "", {}))


def authorize(app: AppState, caller: Invoker | RequestContext, action: str, resource: str, resource_account: str,
              policy: str | None, region: str) -> None:
    """Raise AccessDeniedException unless ``caller`` may ``action`` the function ``resource``."""
    from stratum.server.context import RequestContext

    if isinstance(caller, ServicePrincipal):
        allowed = service_allowed(caller.service, action, resource, resource_account, policy,
                                  source_arn=caller.source_arn, source_account=caller.source_account)
        if not allowed:
            raise ServiceError("AccessDeniedException", f"{caller.service} is not authorized to perform: {action} "
                               f"on resource: {resource} because no resource-based policy allows the {action} "
                               "action", 403)
        return
    ctx = caller if isinstance(caller, RequestContext) else context_for(app, caller, region)
    ctx.authorize(action, resource, resource_account=resource_account, resource_policy=policy)


def role_identity(app: AppState, role_arn: str, session_name: str) -> Identity:
    """The identity of a session of ``role_arn`` Stratum acts as (a pipeline's role running a
    Lambda step). A role that does not exist is AccessDeniedException."""
    from stratum.services.iam import store as iam
    from stratum.services.sts.sessions import ROLE_ARN

    m = ROLE_ARN.match(role_arn)
    if m is None:
        raise ServiceError("AccessDeniedException", f"{role_arn} is not a valid role ARN", 403)
    with app.db.read() as conn:
        try:
            role = iam.get_role(conn, m.group(1), m.group(2))
        except ServiceError:
            raise ServiceError("AccessDeniedException", f"Role {role_arn} does not exist", 403) from None
    return Identity(account_id=role["account_id"],
                    arn=f"arn:aws:sts::{role['account_id']}:assumed-role/{role['name']}/{session_name}",
                    kind="assumed-role", principal_id=f"{role['role_id']}:{session_name}",
                    role_name=role["name"], role_arn=role["arn"], session_name=session_name)
