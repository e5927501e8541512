"""What CreateModel looks up for its caller (stratum.jobs.models.ModelAccess): the model package
of a container, as the caller's DescribeModelPackage would find it, and the model data, which
SageMaker reads as the model's execution role (its policies and the bucket's policy apply).

The pipeline Model step uses the same lookups with the pipeline's role as the caller
(``role_context``).
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from stratum.auth.identity import Identity
from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpRequest
from stratum.server.context import RequestContext
from stratum.services.iam import store as iam

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

SESSION_NAME = "SageMaker"
_ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/(?:[\x21-\x7e]*/)?([\w+=,.@-]{1,64})$")
_S3_URL = re.compile(r"^s3://([^/]+)/(.+)$")


def role_context(app: AppState, role_arn: str, region: str, service: str, operation: str,
                 http: HttpRequest | None = None) -> RequestContext | None:
    """A request context for a session of ``role_arn`` as SageMaker assumes it (session name
    "SageMaker"), or None when the role does not exist."""
    match = _ROLE_ARN.match(role_arn)
    if match is None:
        return None
    account, name = match.groups()
    with app.db.read() as conn:
        try:
            role = iam.get_role(conn, account, name)
        except ServiceError:
            return None
    if role["arn"] != role_arn:
        return None
    identity = Identity(account_id=account, arn=f"arn:aws:sts::{account}:assumed-role/{name}/{SESSION_NAME}",
                        kind="assumed-role", principal_id=f"{role['role_id']}:{SESSION_NAME}", role_name=name,
                        role_arn=role_arn, session_name=SESSION_NAME)
    request = http or HttpRequest(method="POST", raw_path="/", query_string="", headers={})
    return RequestContext(app, str(uuid.uuid4()), service, operation, region, identity, request)


def validation(message: str) -> ServiceError:
    return ServiceError("ValidationException", message, 400)


class RequestModelAccess:
    """ModelAccess for a caller's request context."""

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx

    def describe_package(self, name: str) -> dict[str, Any]:
        from stratum.services.sagemaker.registry import views
        from stratum.services.sagemaker.registry.api import lookup_package

        with self.ctx.app.db.read() as conn:
            row = lookup_package(self.ctx, conn, "DescribeModelPackage", name)
        return views.package_description(row)

    def check_model_data(self, url: str, role_arn: str | None) -> None:
        match = _S3_URL.match(url)
        if match is None:
            raise validation(f"Could not find model data at {url}.")
        s3 = self.ctx.app.providers.get("s3")
        if s3 is None:
            return
        reader = role_context(self.ctx.app, role_arn, self.ctx.region, "s3", "HeadObject") if role_arn else None
        if reader is None:
            # No role to read as (none given, or it vanished): at least the object must exist.
            reader = self.ctx
        try:
            s3.read_target(reader, {"Bucket": match.group(1), "Key": match.group(2)}, "HEAD")  # type: ignore[attr-defined]
        except ServiceError as exc:
            if exc.status == 404:
                raise validation(f"Could not find model data at {url}.") from None
            raise validation(
                f"Could not access model data at {url}. Please ensure that the role \"{role_arn}\" exists and that "
                "its trust relationship policy allows the action \"sts:AssumeRole\" for the service principal "
                "\"sagemaker.amazonaws.com\". Also ensure that the role has \"s3:GetObject\" permissions and that "
                f"the object is located in {self.ctx.region}.") from None
