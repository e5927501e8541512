"""Loads botocore service models once and indexes them for routing.

Everything about operation names, shapes and HTTP bindings comes from botocore's JSON models, so the
server accepts exactly what the real clients send.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel

# The services Stratum serves. Order matters only for documentation.
SERVED_SERVICES = ("sagemaker", "sagemaker-runtime", "sts", "iam", "s3", "ram", "events", "kms", "organizations",
                   "cloudwatch", "logs", "lambda", "sqs")


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
    index = ServiceIndex(name, model, model.resolved_protocol, model.metadata.get("targetPrefix"))
    if index.protocol in ("rest-json", "rest-xml"):
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


# --------------------------------------------------------------------- services Stratum does not serve
@dataclass(frozen=True)
class KnownService:
    """A service in botocore's data, by the metadata that routes a request to it."""

    name: str
    metadata: dict[str, Any]

    @property
    def signing_name(self) -> str:
        return str(self.metadata.get("signingName") or self.metadata.get("endpointPrefix") or self.name)

    @property
    def protocols(self) -> tuple[str, ...]:
        return tuple(self.metadata.get("protocols") or (self.metadata.get("protocol", ""),))

    def error_model(self, protocol: str) -> ServiceModel:
        """A model holding only this service's metadata, with ``protocol`` as its wire protocol:
        enough for the error serializer, without loading the full model (EC2's is 2 MB zipped)."""
        return ServiceModel({"metadata": {**self.metadata, "protocol": protocol, "protocols": [protocol]}, "operations": {}, "shapes": {}},
                            service_name=self.name)


def _read_metadata(path: Path) -> dict[str, Any] | None:
    # "metadata" is the first member of every service-2.json: the head of the file is enough.
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        head = f.read(16384).decode("utf-8", "replace")
    at = head.find('"metadata"')
    if at < 0:
        return None
    start = head.find("{", at)
    try:
        value, _ = json.JSONDecoder().raw_decode(head, start)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@cache
def known_services() -> tuple[KnownService, ...]:
    """Every service in botocore's data (latest API version), read once: about 0.3 s."""
    loader = _botocore_session().get_component("data_loader")
    found: list[KnownService] = []
    for name in loader.list_available_services("service-2"):
        try:
            version = loader.determine_latest_version(name, "service-2")
        except Exception:  # botocore's DataNotFoundError: a directory without a model
            continue
        for base in loader.search_paths:
            candidates = [Path(base, name, version, "service-2.json" + ext) for ext in ("", ".gz")]
            path = next((p for p in candidates if p.is_file()), None)
            if path is not None:
                metadata = _read_metadata(path)
                if metadata is not None:
                    found.append(KnownService(name, metadata))
                break
    return tuple(found)


@cache
def _known_by_signing_name() -> dict[str, tuple[KnownService, ...]]:
    out: dict[str, list[KnownService]] = {}
    for known in known_services():
        out.setdefault(known.signing_name, []).append(known)
    # Several services may share a signing name (ses: ses, sesv2, mailmanager): the one named by
    # it first, then the one whose endpoint prefix it is.
    return {name: tuple(sorted(found, key=lambda k: (k.name != name, k.metadata.get("endpointPrefix") != name)))
            for name, found in out.items()}


@cache
def _known_by_target_prefix() -> dict[str, KnownService]:
    return {k.metadata["targetPrefix"]: k for k in known_services() if k.metadata.get("targetPrefix")}


def known_by_signing_name(signing_name: str) -> tuple[KnownService, ...]:
    return _known_by_signing_name().get(signing_name, ())


def known_service(*, signing_name: str | None = None, target_prefix: str | None = None,
                  protocol: str | None = None) -> KnownService | None:
    """The botocore service a request names by its X-Amz-Target prefix or SigV4 signing name;
    among services sharing a signing name, the first that speaks ``protocol`` (the request's)."""
    if target_prefix:
        found = _known_by_target_prefix().get(target_prefix)
        if found is not None:
            return found
    candidates = _known_by_signing_name().get(signing_name or "", ())
    for known in candidates:
        if protocol is None or protocol in known.protocols:
            return known
    return candidates[0] if candidates else None
