"""S3 as an endpoint's execution role (its model's ExecutionRoleArn), the way SageMaker itself
writes capture files and asynchronous results: through this server's S3 API, so the role's
policies and the buckets' policies apply. Sessions are reused until shortly before they expire."""

from __future__ import annotations

import threading
import time

from stratum.hosting.routes import EndpointRoute
from stratum.jobs.s3io import S3
from stratum.protocol.errors import ServiceError
from stratum.store.db import Database

SESSION_NAME = "SageMaker"
SESSION_SECONDS = 3600


class RoleS3:
    def __init__(self, db: Database, endpoint_url: str) -> None:
        self.db = db
        self.endpoint_url = endpoint_url
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str, str | None], tuple[float, S3]] = {}

    def client(self, role_arn: str, region: str, kms_key_id: str | None = None) -> S3:
        """As the role; with ``kms_key_id`` every object written is SSE-KMS with that key (the
        config's KmsKeyId). Raises ServiceError (AccessDenied) when SageMaker cannot assume the role."""
        from stratum.services.sts.sessions import issue_service_role_session

        key = (role_arn, region, kms_key_id)
        with self._lock:
            found = self._clients.get(key)
            if found is not None and found[0] > time.monotonic():
                return found[1]
        creds = issue_service_role_session(self.db, role_arn, SESSION_NAME, duration_seconds=SESSION_SECONDS)
        s3 = S3(self.endpoint_url, region, {k: creds[k] for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")},
                kms_key_id)
        with self._lock:
            self._clients[key] = (time.monotonic() + SESSION_SECONDS - 300, s3)
        return s3


def execution_role(db: Database, route: EndpointRoute, variant: str) -> str | None:
    """The role SageMaker acts as for a variant: its model's ExecutionRoleArn, from the route when
    the route carries it (``extra["Variants"][variant]["ExecutionRoleArn"]`` or
    ``extra["ExecutionRoleArn"]``), else from the model the route names (a database read: called
    off the request path only)."""
    extra = route.extra
    info = (extra.get("Variants") or {}).get(variant) or {}
    role = info.get("ExecutionRoleArn") or extra.get("ExecutionRoleArn") or extra.get("execution_role_arn")
    if role:
        return str(role)
    model = info.get("ModelName")
    if not model:
        return None
    from stratum.jobs.models import describe_model

    try:
        found = describe_model(db, route.account_id, route.region, model).get("ExecutionRoleArn")
    except ServiceError:  # the model was deleted since the endpoint was created
        return None
    return str(found) if found else None
