"""Loads botocore service models once and indexes them for routing.

Everything about operation names, shapes and HTTP bindings comes from botocore's JSON models, so the
server accepts exactly what the real clients send.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

import botocore.session
from botocore.model import OperationModel, ServiceModel

# The services Stratum serves. Order matters only for documentation.
SERVED_SERVICES = ("sagemaker", "sagemaker-runtime", "sts", "iam", "s3", "ram", "events", "kms", "organizations",
                   "logs")


@cache
def _botocore_session() -> botocore.session.Session:
    return botocore.session.get_session()


@cache
def service_model(name: str) -> ServiceModel:
    return _botocore_session().get_service_model(name)


@dataclass
class RestRoute:
    operation: OperationModel
    method: str
    regex: re.Pattern[str]
    literal_query: dict[str, str | None]  # query keys fixed by the requestUri ("?uploads", "?list-type=2")
    required_query: tuple[str, ...]  # wire names of required querystring members
    required_headers: tuple[str, ...]  # lower-cased wire names of required header members


@dataclass
class ServiceIndex:
    name: str
    model: ServiceModel
    protocol: str
    target_prefix: str | None
    routes: list[RestRoute] = field(default_factory=list)

    def operation(self, name: str) -> OperationModel | None:
        try:
            return self.model.operation_model(name)
        except Exception:  # botocore raises OperationNotFoundError
            return None


def _compile_uri(uri: str) -> tuple[re.Pattern[str], dict[str, str | None]]:
    path, _, query = uri.partition("?")
    literal_query: dict[str, str | None] = {}
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        literal_query[key] = value if eq else None
    pattern = ""
    for token in re.split(r"(\{[^}]+\})", path):
        if token.startswith("{"):
            name = token[1:-1]
            if name.endswith("+"):
                pattern += f"(?P<{_group(name[:-1])}>.+)"
            else:
                pattern += f"(?P<{_group(name)}>[^/]+)"
        else:
            pattern += re.escape(token)
    # S3 accepts "/bucket" and "/bucket/" alike.
    if pattern.endswith("/"):
        pattern = pattern[:-1] + "/?"
    else:
        pattern += "/?"
    return re.compile(f"^{pattern}$"), literal_query


def _group(name: str) -> str:
    return re.sub(r"\W", "_", name)


def uri_group(name: str) -> str:
    return _group(name)


@cache
def service_index(name: str) -> ServiceIndex:
    model = service_model(name)
    index = ServiceIndex(name, model, model.protocol, model.metadata.get("targetPrefix"))
    if model.protocol in ("rest-json", "rest-xml"):
        for op_name in model.operation_names:
            op = model.operation_model(op_name)
            regex, literal = _compile_uri(op.http["requestUri"])
            req_q: list[str] = []
            req_h: list[str] = []
            shape = op.input_shape
            if shape is not None:
                for member_name in shape.required_members:
                    member = shape.members[member_name]
                    loc = member.serialization.get("location")
                    wire = member.serialization.get("name", member_name)
                    if loc == "querystring":
                        req_q.append(wire)
                    elif loc == "header":
                        req_h.append(wire.lower())
            index.routes.append(RestRoute(op, op.http["method"], regex, literal, tuple(req_q), tuple(req_h)))
    return index


@cache
def target_prefixes() -> dict[str, str]:
    """X-Amz-Target prefix -> service name, for the JSON-protocol services."""
    out: dict[str, str] = {}
    for name in SERVED_SERVICES:
        prefix = service_model(name).metadata.get("targetPrefix")
        if prefix:
            out[prefix] = name
    return out
