"""iam:PassRole: may the caller hand this role to a service that will act with it?

Every API that takes a role ARN for a service to assume later (a pipeline's RoleArn, a job's
RoleArn, a model's ExecutionRoleArn...) asks this before storing it. As on AWS the decision is the
ordinary policy evaluation of ``iam:PassRole`` on the role's ARN, with the condition keys
``iam:PassedToService`` and, when the resource being created is known, ``iam:AssociatedResourceArn``.
Passing a role of another account is denied (no resource policy can grant iam:PassRole).

Where the service would assume the role straight away (jobs, models) it also checks that the role
exists and trusts the service, failing with SageMaker's own wording.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from stratum.policy import AuthzRequest, Caller, PolicySet, evaluate, parse_policy
from stratum.protocol.errors import ServiceError
from stratum.services.iam import store as iam

if TYPE_CHECKING:
    from stratum.server.context import RequestContext

SAGEMAKER = "sagemaker.amazonaws.com"
_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/(?:[\x21-\x7e]*/)?([\w+=,.@-]{1,64})$")


def check_pass_role(ctx: RequestContext, role_arn: str, service: str = SAGEMAKER, *,
                    associated_resource_arn: str | None = None, validate_role: bool = True) -> None:
    """Raise unless the caller may pass ``role_arn`` to ``service``.

    ``validate_role`` also requires the role to exist and to trust ``service`` (SageMaker checks
    this when a job or model is created; a pipeline's role is only assumed when it runs).
    Errors: AccessDenied (the service's code) naming iam:PassRole, or ValidationException.
    """
    match = _ROLE_ARN.match(role_arn)
    if match is None:
        raise ServiceError("ValidationException", f"{role_arn} is not a valid role ARN.", 400)
    context: dict[str, Any] = {"iam:PassedToService": service}
    if associated_resource_arn:
        context["iam:AssociatedResourceArn"] = associated_resource_arn
    ctx.authorize("iam:PassRole", role_arn, resource_account=match.group(1), context=context)
    if validate_role and not _assumable(ctx, role_arn, match.group(1), match.group(2), service,
                                        associated_resource_arn):
        raise ServiceError("ValidationException",
                           f"Could not assume role {role_arn}. Please ensure that the role exists and allows "
                           f"principal '{service}' to assume the role.", 400)


def _assumable(ctx: RequestContext, role_arn: str, account_id: str, name: str, service: str,
               associated_resource_arn: str | None) -> bool:
    with ctx.app.db.read() as conn:
        try:
            role = iam.get_role(conn, account_id, name)
        except ServiceError:
            return False
    if role["arn"] != role_arn:  # same name, different path: not the role the caller named
        return False
    trust = parse_policy(role["assume_role_policy"], kind="trust")
    # What the service reports when it assumes the role (confused-deputy conditions).
    context: dict[str, Any] = {"aws:SourceAccount": ctx.account_id}
    if associated_resource_arn:
        context["aws:SourceArn"] = associated_resource_arn
    caller = Caller(arn=service, account="", kind="service", service=service)
    decision = evaluate(AuthzRequest(caller=caller, action="sts:AssumeRole", resource=role_arn,
                                     resource_account=account_id, context=context),
                        PolicySet(resource=trust, resource_policy_required=True))
    return decision.allowed
