"""Which service a request is for, and in which region: from X-Amz-Target, the SigV4 credential scope,
or (unsigned requests) the shape of the request."""

from __future__ import annotations

import re
from functools import cache
from urllib.parse import unquote_plus

from botocore.model import ServiceModel

from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpRequest
from stratum.protocol.parser import match_route
from stratum.protocol.service_models import (
    SERVED_SERVICES,
    KnownService,
    known_by_signing_name,
    known_service,
    service_index,
    target_prefixes,
)

_SCOPE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")

# SigV4 signing name -> service, for the services without an X-Amz-Target.
_SIGNING_NAMES = {
    "sts": "sts", "iam": "iam", "s3": "s3", "ram": "ram", "events": "events", "kms": "kms",
    "organizations": "organizations", "sagemaker": "sagemaker-runtime", "monitoring": "cloudwatch",
    "logs": "logs", "lambda": "lambda", "sqs": "sqs",
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
        if service is not None:
            return service, region
        known = known_service(target_prefix=prefix)
        if known is not None:
            raise UnservedService(known, request)
        # An unknown target on a request signed for a served service without targets (S3, IAM,
        # STS, RAM) is a header that protocol ignores; for the others it names no operation.
        signed_for = _SIGNING_NAMES.get(scope[1]) if scope else None
        if signed_for is None or signed_for == "sagemaker-runtime" or service_index(signed_for).target_prefix:
            raise ServiceError("UnknownOperationException", f"Unknown target {target!r}", 400)
        return signed_for, region
    if scope:
        service = _SIGNING_NAMES.get(scope[1])
        if service is None:
            known = _unserved_sibling(request, scope[1], fallback=True)
            if known is None:
                raise ServiceError("InvalidSignatureException",
                                   f"Credential should be scoped to a valid service: '{scope[1]}' is unknown", 400)
            raise UnservedService(known, request)
        if _not_for(service, request):
            # Another service signing with the same name (iam-toolbox as "iam", eventbridgev2 as
            # "events", sagemaker-a2i-runtime as "sagemaker"): answered as that one if it is known.
            known = _unserved_sibling(request, scope[1], fallback=False)
            if known is not None:
                raise UnservedService(known, request)
            if _request_protocol(request) == "query" and service_index(service).protocol == "json":
                raise UnsupportedProtocol(service, request)
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


class ForeignProtocolError(ServiceError):
    """An error answered in the protocol the request was sent in, not in one Stratum serves for
    it, so the client raises a ClientError that says why instead of failing to parse the answer."""

    service_model: ServiceModel


class UnservedService(ForeignProtocolError):
    """A request for a service in botocore's data that Stratum does not serve."""

    def __init__(self, known: KnownService, request: HttpRequest) -> None:
        super().__init__("NotImplemented", f"The service '{known.name}' is not served by Stratum "
                         f"(it serves {', '.join(SERVED_SERVICES)}).", 501, sender_fault=False)
        self.service_model = known.error_model(_wire_protocol(request, known))


class UnsupportedProtocol(ForeignProtocolError):
    """A served service reached in a protocol it has left: SQS over the query protocol, which SDKs
    older than 2023 speak; botocore's model, and so Stratum, has only its JSON protocol."""

    def __init__(self, service: str, request: HttpRequest) -> None:
        shown = _request_protocol(request) or "another"
        super().__init__("UnsupportedProtocol", f"Stratum serves {service} over its JSON protocol only; this "
                         f"request uses the {shown} protocol (an AWS SDK or CLI released before 2023?).", 400)
        known = known_service(signing_name=service)
        assert known is not None
        self.service_model = known.error_model(_wire_protocol(request, known))


def _not_for(service: str, request: HttpRequest) -> bool:
    """Whether a request signed for ``service`` cannot be one of its operations by its shape."""
    index = service_index(service)
    protocol = index.protocol
    if protocol == "rest-xml":  # S3: any path names a bucket; any body may be an object's
        return False
    if request.headers.get("smithy-protocol", "").lower() == "rpc-v2-cbor":
        return True
    if protocol in ("query", "json"):
        return _request_protocol(request) != protocol
    first = request.path.lstrip("/").partition("/")[0]
    return first not in _first_segments(service)


@cache
def _first_segments(service: str) -> frozenset[str]:
    """The literal first path segments of a REST service's request URIs."""
    return frozenset(route.operation.http["requestUri"].lstrip("/").partition("/")[0].partition("?")[0]
                     for route in service_index(service).routes)


def _unserved_sibling(request: HttpRequest, signing_name: str, *, fallback: bool) -> KnownService | None:
    """The service Stratum does not serve that a request signed as ``signing_name`` is for: among
    those sharing the name, one speaking the request's protocol and, for REST requests, the first
    whose operations' paths match it (bedrock, bedrock-agent and bedrock-runtime all sign as
    "bedrock"); with ``fallback``, any of them rather than none. Loads those models: only ever on
    this error path."""
    shown = _request_protocol(request)
    candidates = [k for k in known_by_signing_name(signing_name) if k.name not in SERVED_SERVICES]
    if shown is not None:
        speaking = [k for k in candidates if shown in k.protocols or (shown == "query" and "ec2" in k.protocols)]
        if shown == "query" and len(speaking) > 1:
            # Query services sharing a signing name (elb and elbv2 as "elasticloadbalancing") are
            # told apart by the API version every query request carries.
            version = _query_value(request, "Version")
            speaking.sort(key=lambda k: k.metadata.get("apiVersion") != version)
        if speaking or not fallback:
            return speaking[0] if speaking else None
    rest = [k for k in candidates if {"rest-json", "rest-xml"} & set(k.protocols)]
    for known in rest:
        try:
            match_route(service_index(known.name), request)
        except Exception:  # ServiceError: no route; anything botocore raises loading a model
            continue
        return known
    if not fallback:
        return None
    return rest[0] if rest else (candidates[0] if candidates else None)


def _request_protocol(request: HttpRequest) -> str | None:
    """The protocol a request's shape shows, where it shows one (REST requests do not)."""
    headers = request.headers
    if headers.get("smithy-protocol", "").lower() == "rpc-v2-cbor":
        return "smithy-rpc-v2-cbor"
    if "x-amz-target" in headers:
        return "json"
    form = "x-www-form-urlencoded" in headers.get("content-type", "") and b"Action=" in request.body
    if form or request.query_value("Action") is not None:
        return "query"
    return None


def _query_value(request: HttpRequest, name: str) -> str | None:
    """A parameter of a query-protocol request, from its form body or its URL."""
    found = re.search(rb"(?:^|&)" + name.encode() + rb"=([^&]*)", request.body)
    if found:
        return unquote_plus(found.group(1).decode("utf-8", "replace"))
    return request.query_value(name)


def _wire_protocol(request: HttpRequest, known: KnownService) -> str:
    """The protocol the client spoke: a service may offer several (CloudWatch: CBOR, JSON, query)."""
    shown = _request_protocol(request)
    if shown == "query" and "ec2" in known.protocols:
        return "ec2"
    if shown is not None:
        return shown
    rest = [p for p in known.protocols if p in ("rest-json", "rest-xml")]
    return rest[0] if rest else "rest-json"
