"""Temporary credentials for role sessions: minted by AssumeRole, and by Stratum itself when a
service (a SageMaker job, a pipeline step) acts with an execution role."""

from __future__ import annotations

import base64
import re
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, insert

from stratum import ids
from stratum.policy import AuthzRequest, Caller, PolicySet, evaluate, parse_policy
from stratum.protocol.errors import ServiceError
from stratum.services.iam import store as iam
from stratum.services.iam.tables import sts_sessions
from stratum.store.db import Database

ROLE_ARN = re.compile(r"^arn:aws:iam::(\d{12}):role/(?:.*/)?([\w+=,.@-]+)$")


def create_session(conn: Connection, role: dict[str, Any], session_name: str, duration_seconds: int, *,
                   source_arn: str, session_policy: str | None = None, policy_arns: list[str] | None = None,
                   tags: dict[str, str] | None = None) -> dict[str, Any]:
    """Store a new session of ``role`` and return its Credentials shape."""
    issued = iam.now()
    expiration = issued + timedelta(seconds=duration_seconds)
    access_key = ids.access_key_id("ASIA")
    secret = ids.secret_access_key()
    token = base64.b64encode(b"stratum-session:" + secrets.token_bytes(180)).decode()
    conn.execute(insert(sts_sessions).values(
        access_key_id=access_key, secret_access_key=secret, session_token=token, account_id=role["account_id"],
        role_name=role["name"], role_arn=role["arn"], role_id=role["role_id"], session_name=session_name,
        session_policy=session_policy, session_policy_arns=policy_arns or [], source_arn=source_arn,
        tags=tags or {}, created_at=issued, expiration=expiration))
    return {"AccessKeyId": access_key, "SecretAccessKey": secret, "SessionToken": token, "Expiration": expiration}


def issue_service_role_session(db: Database, role_arn: str, session_name: str, *,
                               service: str = "sagemaker.amazonaws.com", duration_seconds: int = 3600
                               ) -> dict[str, Any]:
    """Credentials of ``role_arn`` for work a service does on a customer's behalf.

    As on AWS, the role's trust policy must allow the service principal; otherwise the work
    fails with AccessDenied naming the role.
    """
    m = ROLE_ARN.match(role_arn)
    if m is None:
        raise ServiceError("ValidationException", f"{role_arn} is not a valid role ARN", 400)
    with db.begin() as conn:
        try:
            role = iam.get_role(conn, m.group(1), m.group(2))
        except ServiceError:
            raise ServiceError("AccessDenied", f"Role {role_arn} does not exist or cannot be assumed "
                               f"by {service}", 403) from None
        trust = parse_policy(role["assume_role_policy"], kind="trust")
        caller = Caller(arn=service, account="", kind="service", service=service)
        decision = evaluate(AuthzRequest(caller=caller, action="sts:AssumeRole", resource=role["arn"],
                                         resource_account=role["account_id"]),
                            PolicySet(resource=trust, resource_policy_required=True))
        if not decision.allowed:
            raise ServiceError("AccessDenied", f"{service} is not authorized to assume role {role_arn}: "
                               "its trust policy does not allow the service principal", 403)
        return create_session(conn, role, session_name[:64], min(duration_seconds, role["max_session_duration"]),
                              source_arn=service)
