"""Which service a request is for, and in which region: from X-Amz-Target, the SigV4 credential scope,
or (unsigned requests) the shape of the request."""

from __future__ import annotations

import re

from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpRequest
from stratum.protocol.service_models import service_index, target_prefixes

_SCOPE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")

# SigV4 signing name -> service, for the services without an X-Amz-Target.
_SIGNING_NAMES = {
    "sts": "sts", "iam": "iam", "s3": "s3", "ram": "ram", "events": "events", "kms": "kms",
    "organizations": "organizations", "sagemaker": "sagemaker-runtime", "logs": "logs",
}


def credential_scope(request: HttpRequest) -> tuple[str, str] | None:
    """(region, signing service) from the Authorization header or a presigned URL."""
    auth = request.headers.get("authorization")
    if auth:
        m = _SCOPE.search(auth)
        if m:
            return m.group(3), m.group(4)
        return None
    cred = request.query_value("X-Amz-Credential")
    if cred:
        parts = cred.split("/")
        if len(parts) == 5:
            return parts[2], parts[3]
    return None


def route_service(request: HttpRequest, default_region: str) -> tuple[str, str]:
    scope = credential_scope(request)
    region = scope[0] if scope else default_region
    target = request.headers.get("x-amz-target")
    if target:
        prefix = target.rpartition(".")[0]
        service = target_prefixes().get(prefix)
        if service is None:
            raise ServiceError("UnknownOperationException", f"Unknown target {target!r}", 400)
        return service, region
    if scope:
        service = _SIGNING_NAMES.get(scope[1])
        if service is None:
            raise ServiceError("InvalidSignatureException",
                               f"Credential should be scoped to a valid service: '{scope[1]}' is not served", 400)
        return service, region
    # Unsigned: a query-protocol form (sts/iam) or anything else is S3 (anonymous access is S3's).
    content_type = request.headers.get("content-type", "")
    if request.method == "POST" and "x-www-form-urlencoded" in content_type and b"Action=" in request.body:
        action = re.search(rb"(?:^|&)Action=([A-Za-z]+)", request.body)
        name = action.group(1).decode() if action else ""
        if service_index("iam").operation(name) is not None and service_index("sts").operation(name) is None:
            return "iam", region
        return "sts", region
    return "s3", region
