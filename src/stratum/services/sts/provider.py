"""STS: GetCallerIdentity and AssumeRole with trust-policy evaluation and expiring credentials."""

from __future__ import annotations

from typing import Any

from stratum.policy import MalformedPolicyDocument, parse_policy
from stratum.protocol.errors import ServiceError
from stratum.server.context import Provider, RequestContext
from stratum.services.iam import store as iam
from stratum.services.sts.sessions import ROLE_ARN, create_session

ROLE_CHAINING_MAX_SECONDS = 3600


def _validation(message: str) -> ServiceError:
    return ServiceError("ValidationError", message, 400)


class StsProvider(Provider):
    service = "sts"

    def get_caller_identity(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        # AWS answers GetCallerIdentity even when every policy denies it.
        ctx.skip_authorization("sts:GetCallerIdentity needs no permission")
        ident = ctx.identity
        return {"UserId": ident.principal_id, "Account": ident.account_id, "Arn": ident.arn}

    def assume_role(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        role_arn_param = params["RoleArn"]
        m = ROLE_ARN.match(role_arn_param)
        if m is None:
            raise _validation(f"{role_arn_param} is invalid")
        account_id, role_name = m.group(1), m.group(2)
        session_name = params["RoleSessionName"]
        with ctx.app.db.read() as conn:
            try:
                role = iam.get_role(conn, account_id, role_name)
            except ServiceError:
                role = None
        if role is None or role["arn"] != role_arn_param:
            # AWS does not reveal whether the role exists: an unknown role is an AccessDenied.
            raise ServiceError("AccessDenied", f"User: {ctx.identity.arn} is not authorized to perform: "
                               f"sts:AssumeRole on resource: {role_arn_param}", 403)
        condition_keys: dict[str, Any] = {}
        if params.get("ExternalId") is not None:
            condition_keys["sts:ExternalId"] = params["ExternalId"]
        if params.get("SourceIdentity") is not None:
            condition_keys["sts:SourceIdentity"] = params["SourceIdentity"]
        session_tags = {t["Key"]: t["Value"] for t in params.get("Tags") or []}
        for key, value in session_tags.items():
            condition_keys[f"aws:RequestTag/{key}"] = value
        if session_tags:
            condition_keys["aws:TagKeys"] = list(session_tags)
        condition_keys["sts:RoleSessionName"] = session_name
        # The trust policy must always allow (like a KMS key policy): naming the caller's account
        # root there delegates to the caller's identity policies.
        ctx.authorize("sts:AssumeRole", role["arn"], resource_account=account_id,
                      resource_policy=role["assume_role_policy"], context=condition_keys,
                      resource_policy_required=True)
        duration = int(params.get("DurationSeconds") or 3600)
        max_duration = int(role["max_session_duration"])
        if ctx.identity.kind == "assumed-role":
            max_duration = min(max_duration, ROLE_CHAINING_MAX_SECONDS)
        if duration < 900 or duration > max_duration:
            raise _validation("The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                              if duration > max_duration else
                              f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed to "
                              "satisfy constraint: Member must have value greater than or equal to 900")
        session_policy = params.get("Policy")
        if session_policy is not None:
            try:
                parse_policy(session_policy, kind="session")
            except MalformedPolicyDocument as exc:
                raise ServiceError("MalformedPolicyDocument", str(exc), 400) from None
        policy_arns = [p["arn"] for p in params.get("PolicyArns") or []]
        with ctx.app.db.read() as conn:
            for arn in policy_arns:
                if not iam.policy_exists(conn, arn, account_id):
                    raise ServiceError("InvalidParameterValue", f"Policy {arn} does not exist or is not attachable.", 400)
        with ctx.app.db.begin() as conn:
            credentials = create_session(conn, role, session_name, duration, source_arn=ctx.identity.arn,
                                         session_policy=session_policy, policy_arns=policy_arns,
                                         tags=session_tags)
        packed = 0
        if session_policy or policy_arns:
            packed = min(100, (len(session_policy or "") + 100 * len(policy_arns)) * 100 // 2048)
        out: dict[str, Any] = {
            "Credentials": credentials,
            "AssumedRoleUser": {"AssumedRoleId": f"{role['role_id']}:{session_name}",
                                "Arn": f"arn:aws:sts::{account_id}:assumed-role/{role['name']}/{session_name}"},
        }
        if packed:
            out["PackedPolicySize"] = packed
        if params.get("SourceIdentity"):
            out["SourceIdentity"] = params["SourceIdentity"]
        return out
