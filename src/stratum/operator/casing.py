"""Spec <-> API conversion. ACK spells fields in lowerCamelCase with its own initialisms (``roleARN``,
``s3URI``, ``modelDataURL``, ``kmsKeyID``); the API spells them in UpperCamelCase (``RoleArn``). Both
sides differ only in letter case, so keys are matched case-insensitively against the target's schema:
the botocore input shape going to the API, the CRD's OpenAPI schema coming back."""

from __future__ import annotations

import datetime as dt
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StructureShape

# The few fields whose ACK name is not a recasing of the API name (generator.yaml `renames`).
RENAMES_TO_API: dict[str, str] = {}


def lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _plain(name: str) -> str:
    """The key compared: ACK spells fields named like a Go keyword with a trailing underscore
    (``type_`` for ``Type``)."""
    return name.rstrip("_").lower()


def to_api(value: Any, shape: Shape | None) -> Any:
    """A spec value (ACK keys) as the API input ``shape`` spells it; keys the shape lacks are dropped
    (the API would refuse them and ACK never sends them)."""
    if shape is None:
        return value
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        members = {name.lower(): name for name in shape.members}
        out: dict[str, Any] = {}
        for key, item in value.items():
            api_key = RENAMES_TO_API.get(key) or members.get(_plain(key))
            if api_key is None or item is None:
                continue
            out[api_key] = to_api(item, shape.members[api_key])
        return out
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [to_api(v, shape.member) for v in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {k: to_api(v, shape.value) for k, v in value.items()}
    if shape.type_name == "timestamp" and isinstance(value, str):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


def to_k8s(value: Any, schema: dict[str, Any] | None) -> Any:
    """An API output value as the CRD's OpenAPI ``schema`` spells it (keys matched case-insensitively;
    keys the schema does not declare are dropped, as the API server would prune them)."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if schema is None:
        return value
    if isinstance(value, dict):
        props = schema.get("properties")
        if props is None:  # a free-form map (additionalProperties): keys kept as they are
            extra = schema.get("additionalProperties")
            return {k: to_k8s(v, extra if isinstance(extra, dict) else None) for k, v in value.items()}
        names = {_plain(name): name for name in props}
        out: dict[str, Any] = {}
        for key, item in value.items():
            k8s_key = names.get(key.lower())
            if k8s_key is not None and item is not None:
                out[k8s_key] = to_k8s(item, props[k8s_key])
        return out
    if isinstance(value, list):
        return [to_k8s(v, schema.get("items")) for v in value]
    if schema.get("type") == "string" and not isinstance(value, str):
        return str(value)
    return value
