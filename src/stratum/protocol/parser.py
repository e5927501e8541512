"""Server-side request parsing: the inverse of botocore's serializers, for every protocol we serve.

Each parser turns an HttpRequest into (OperationModel, params) where params is a plain dict in the
API's own shape: blobs as bytes, timestamps as aware datetimes, numbers and booleans typed.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib
from typing import Any
from urllib.parse import parse_qsl, unquote
from xml.etree import ElementTree

from botocore.model import OperationModel, Shape

from stratum import jsonfast

from .errors import ServiceError
from .http import HttpRequest
from .service_models import RestRoute, ServiceIndex, uri_group
from .timestamps import parse_timestamp


def serialization_error(message: str) -> ServiceError:
    return ServiceError("SerializationException", message, 400)


def parse_request(index: ServiceIndex, request: HttpRequest) -> tuple[OperationModel, dict[str, Any]]:
    if index.protocol == "json":
        return _parse_json_protocol(index, request)
    if index.protocol == "query":
        return _parse_query_protocol(index, request)
    return _parse_rest_protocol(index, request)


# ----------------------------------------------------------------------------------------------- json
def _parse_json_protocol(index: ServiceIndex, request: HttpRequest) -> tuple[OperationModel, dict[str, Any]]:
    target = request.headers.get("x-amz-target", "")
    _, _, op_name = target.rpartition(".")
    op = index.operation(op_name) if op_name else None
    if op is None:
        raise ServiceError("UnknownOperationException", f"Unknown operation {target!r}", 400)
    body: Any = {}
    raw = request.body
    if raw[:2] == b"\x1f\x8b" and "gzip" in request.headers.get("content-encoding", ""):
        raw = _gunzip(raw)  # botocore compresses large bodies of operations with requestcompression
    if raw.strip():
        try:
            body = jsonfast.loads_text(raw)
        except ValueError as exc:
            raise serialization_error(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise serialization_error("Request body must be a JSON object")
    shape = op.input_shape
    return op, (_from_json(shape, body) if shape is not None else {})


def _gunzip(data: bytes) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        raise serialization_error("Request body is not valid gzip") from None


def _from_json(shape: Shape, value: Any) -> Any:
    """Convert JSON-decoded input to the shape's Python types; leaves mismatches for the validator."""
    kind = shape.type_name
    if value is None:
        return None
    if kind == "structure":
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        members = shape.members
        for key, item in value.items():
            member = members.get(key)
            if member is not None and item is not None:
                out[key] = _from_json(member, item)
        return out
    if kind == "list":
        if not isinstance(value, list):
            return value
        return [_from_json(shape.member, v) for v in value]
    if kind == "map":
        if not isinstance(value, dict):
            return value
        return {k: _from_json(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        try:
            return parse_timestamp(value)
        except ValueError:
            raise serialization_error(f"Invalid timestamp value {value!r}") from None
    if kind == "blob":
        if isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise serialization_error("Invalid base64 in blob member") from None
        return value
    return value


# ---------------------------------------------------------------------------------------------- query
def _parse_query_protocol(index: ServiceIndex, request: HttpRequest) -> tuple[OperationModel, dict[str, Any]]:
    flat: dict[str, str] = {}
    for k, v in request.query_pairs:
        flat[k] = v
    content_type = request.headers.get("content-type", "")
    if request.body and (not content_type or "x-www-form-urlencoded" in content_type):
        for k, v in parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True):
            flat[k] = v
    action = flat.get("Action")
    op = index.operation(action) if action else None
    if op is None:
        raise ServiceError("InvalidAction", f"Could not find operation {action} for version "
                           f"{flat.get('Version', index.model.api_version)}", 400)
    shape = op.input_shape
    params = _from_query(shape, _query_tree(flat)) if shape is not None else {}
    return op, params or {}


class _QueryNode:
    """One dotted-key prefix of a query request: its own value (if sent) and its children.

    ``Tags.member.1.Key=k`` becomes Tags -> member -> 1 -> Key(value k). Building the tree is one
    pass over the pairs and every lookup is a dict access, so parsing is linear in the request
    size (scanning every key for each list item was quadratic: 8,000 tags took over 10 s).
    """

    __slots__ = ("value", "children")

    def __init__(self) -> None:
        self.value: str | None = None
        self.children: dict[str, _QueryNode] = {}


def _query_tree(flat: dict[str, str]) -> _QueryNode:
    root = _QueryNode()
    for key, value in flat.items():
        node = root
        for part in key.split("."):
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = _QueryNode()
            node = child
        node.value = value
    return root


def _query_child(node: _QueryNode, dotted: str) -> _QueryNode | None:
    for part in dotted.split("."):
        found = node.children.get(part)
        if found is None:
            return None
        node = found
    return node


def _from_query(shape: Shape, node: _QueryNode) -> Any:
    kind = shape.type_name
    if kind == "structure":
        out: dict[str, Any] = {}
        for name, member in shape.members.items():
            child = _query_child(node, member.serialization.get("name", name))
            if child is None:
                continue
            if member.type_name in ("structure", "list", "map"):
                out[name] = _from_query(member, child)
            elif child.value is not None:
                out[name] = _query_scalar(member, child.value)
        return out
    if kind == "list":
        if node.value == "":  # an explicitly empty list
            return []
        member_name = shape.member.serialization.get("name", "member")
        base = node if shape.serialization.get("flattened") else _query_child(node, member_name)
        items: list[Any] = []
        if base is None:
            return items
        nested = shape.member.type_name in ("structure", "list", "map")
        i = 1
        while True:
            item = base.children.get(str(i))
            if item is None or (not nested and item.value is None):
                break
            items.append(_from_query(shape.member, item) if nested else _query_scalar(shape.member, item.value))
            i += 1
        return items
    if kind == "map":
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        entries = node if shape.serialization.get("flattened") else _query_child(node, "entry")
        result: dict[str, Any] = {}
        if entries is None:
            return result
        nested = shape.value.type_name in ("structure", "list", "map")
        i = 1
        while True:
            entry = entries.children.get(str(i))
            key_node = _query_child(entry, key_name) if entry is not None else None
            if entry is None or key_node is None or key_node.value is None:
                break
            value_node = _query_child(entry, value_name)
            if nested:
                result[key_node.value] = _from_query(shape.value, value_node or _QueryNode())
            else:
                text = value_node.value if value_node is not None and value_node.value is not None else ""
                result[key_node.value] = _query_scalar(shape.value, text)
            i += 1
        return result
    return _query_scalar(shape, node.value if node.value is not None else "")


def _query_scalar(shape: Shape, text: str) -> Any:
    return _scalar_from_text(shape, text)


def _scalar_from_text(shape: Shape, text: str) -> Any:
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("float", "double"):
            return float(text)
        if kind == "boolean":
            low = text.lower()
            if low not in ("true", "false"):
                raise ValueError(text)
            return low == "true"
        if kind == "timestamp":
            return parse_timestamp(text)
        if kind == "blob":
            return base64.b64decode(text)
    except (ValueError, binascii.Error):
        raise ServiceError("ValidationError" if kind != "timestamp" else "InvalidParameterValue",
                           f"Invalid value {text!r} for a parameter of type {kind}", 400) from None
    return text


# ----------------------------------------------------------------------------------------------- rest
def match_route(index: ServiceIndex, request: HttpRequest, path: str | None = None) -> tuple[RestRoute, dict[str, str]]:
    """Pick the operation for a REST request: method + path template, then the most specific query/header match."""
    raw_path = path or request.route_path or request.raw_path
    query = request.query
    best: tuple[int, int] | None = None
    chosen: tuple[RestRoute, dict[str, str]] | None = None
    for route in index.routes:
        if route.method != request.method:
            continue
        m = route.regex.match(raw_path)
        if m is None:
            continue
        ok = True
        for key, value in route.literal_query.items():
            if key not in query or (value is not None and value not in query[key]):
                ok = False
                break
        if not ok or any(q not in query for q in route.required_query):
            continue
        # A subresource in the query (?attributes, ?renameObject) names the operation by itself: a
        # required header it lacks is then a validation error, not a reason to pick GetObject.
        named = any(key != "x-id" for key in route.literal_query)
        if not named and any(h not in request.headers for h in route.required_headers):
            continue
        score = (len(route.literal_query), len(route.required_query) + len(route.required_headers))
        if best is None or score > best:
            best = score
            chosen = (route, m.groupdict())
    if chosen is None:
        raise ServiceError("UnknownOperationException",
                           f"No operation matches {request.method} {request.path}", 404)
    return chosen


def _parse_rest_protocol(index: ServiceIndex, request: HttpRequest, path: str | None = None
                         ) -> tuple[OperationModel, dict[str, Any]]:
    route, groups = match_route(index, request, path)
    op = route.operation
    shape = op.input_shape
    if shape is None:
        return op, {}
    return op, parse_rest_input(index, op, request, groups)


# Where each input member of a REST operation is read from, worked out once per operation: the
# member's serialization traits are the same on every request, and reading them member by member
# (a dozen members for InvokeEndpoint) cost more than the parsing itself.
_URI, _QUERY_MAP, _QUERY_LIST, _QUERY, _HEADER_TEXT, _HEADER, _HEADERS, _BODY = range(8)
_PLANS: dict[OperationModel, tuple[frozenset[str], tuple[tuple[str, Shape, int, str], ...]]] = {}


def _input_plan(index: ServiceIndex, op: OperationModel, shape: Shape
                ) -> tuple[frozenset[str], tuple[tuple[str, Shape, int, str], ...]]:
    """(the query keys the operation's requestUri fixes, (member, shape, location, wire key) in
    the model's order)."""
    plan = _PLANS.get(op)
    if plan is not None:
        return plan
    literal: frozenset[str] = frozenset()
    for route in index.routes:
        if route.operation is op:
            literal = frozenset(route.literal_query)
            break
    members = []
    for name, member in shape.members.items():
        ser = member.serialization
        loc = ser.get("location")
        wire = ser.get("name", name)
        if loc == "uri":
            members.append((name, member, _URI, uri_group(wire.rstrip("+"))))
        elif loc == "querystring":
            kind = {"map": _QUERY_MAP, "list": _QUERY_LIST}.get(member.type_name, _QUERY)
            members.append((name, member, kind, wire))
        elif loc == "header":
            text = member.type_name == "string" and not ser.get("jsonvalue")
            members.append((name, member, _HEADER_TEXT if text else _HEADER, wire.lower()))
        elif loc == "headers":
            members.append((name, member, _HEADERS, wire.lower()))
        elif loc != "statusCode":
            members.append((name, member, _BODY, name))
    if len(_PLANS) >= 4096:  # operations are a few hundred; models are loaded once
        _PLANS.clear()
    plan = _PLANS[op] = (literal, tuple(members))
    return plan


def parse_rest_input(index: ServiceIndex, op: OperationModel, request: HttpRequest,
                     groups: dict[str, str]) -> dict[str, Any]:
    shape = op.input_shape
    assert shape is not None
    params: dict[str, Any] = {}
    body_members: dict[str, Shape] = {}
    literal, members = _input_plan(index, op, shape)
    headers = request.headers
    for name, member, loc, wire in members:
        if loc == _HEADER_TEXT:
            value = headers.get(wire)
            if value is not None:
                params[name] = value
        elif loc == _HEADER:
            value = headers.get(wire)
            if value is not None:
                params[name] = _header_value(member, value)
        elif loc == _URI:
            raw = groups.get(wire)
            if raw is not None:
                params[name] = _scalar_from_text(member, unquote(raw))
        elif loc == _BODY:
            body_members[name] = member
        elif loc == _QUERY_MAP:
            extra = {k: v[0] for k, v in request.query.items() if k not in literal}
            if extra:
                params[name] = extra
        elif loc == _HEADERS:
            found = {k[len(wire):]: v for k, v in headers.items() if k.startswith(wire)}
            if found:
                params[name] = found
        elif wire in request.query:
            values = request.query[wire]
            if loc == _QUERY_LIST:
                params[name] = [_scalar_from_text(member.member, v) for v in values]
            else:
                params[name] = _scalar_from_text(member, values[0])
    payload_name = shape.serialization.get("payload")
    if payload_name:
        member = shape.members[payload_name]
        if member.type_name in ("blob", "string"):
            if request.body or payload_name in shape.required_members:
                params[payload_name] = request.body if member.type_name == "blob" else _body_text(index, request.body)
        elif request.body.strip():
            params[payload_name] = _parse_body(index, member, request.body, root=True)
    elif body_members and request.body.strip():
        parsed = _parse_body(index, shape, request.body, root=True)
        if not isinstance(parsed, dict):  # JSON null, a list, a number: no members to read
            raise serialization_error("Request body must be a JSON object")
        for name in body_members:
            if name in parsed:
                params[name] = parsed[name]
    return params


def _body_text(index: ServiceIndex, body: bytes) -> str:
    try:
        return body.decode()
    except UnicodeDecodeError:
        code = "InvalidArgument" if index.protocol == "rest-xml" else "SerializationException"
        raise ServiceError(code, "The request body is not valid UTF-8 text", 400) from None


def _header_value(shape: Shape, value: str) -> Any:
    kind = shape.type_name
    if kind == "string" and shape.serialization.get("jsonvalue"):
        try:
            return jsonfast.loads_text(base64.b64decode(value))
        except (ValueError, binascii.Error):
            raise serialization_error("Invalid JSON value header") from None
    if kind == "list":
        return [_scalar_from_text(shape.member, v.strip()) for v in value.split(",")]
    return _scalar_from_text(shape, value)


def _parse_body(index: ServiceIndex, shape: Shape, body: bytes, *, root: bool) -> Any:
    if index.protocol == "rest-json":
        try:
            data = jsonfast.loads_text(body)
        except ValueError as exc:
            raise serialization_error(f"Request body is not valid JSON: {exc}") from None
        return _from_json(shape, data)
    try:
        element = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise ServiceError("MalformedXML", "The XML you provided was not well-formed or did not "
                           "validate against our published schema", 400) from None
    return _from_xml(shape, element)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _from_xml(shape: Shape, element: ElementTree.Element) -> Any:
    kind = shape.type_name
    if kind == "structure":
        out: dict[str, Any] = {}
        children: dict[str, list[ElementTree.Element]] = {}
        for child in element:
            children.setdefault(_local(child.tag), []).append(child)
        for name, member in shape.members.items():
            wire = member.serialization.get("name", name)
            if member.serialization.get("xmlAttribute"):
                for attr, value in element.attrib.items():
                    if _local(attr) == wire.rpartition(":")[2]:
                        out[name] = value
                continue
            if member.type_name == "list" and member.serialization.get("flattened"):
                elems = children.get(wire, [])
                if elems:
                    out[name] = [_from_xml(member.member, e) for e in elems]
                continue
            elems = children.get(wire)
            if elems:
                out[name] = _from_xml(member, elems[0])
        return out
    if kind == "list":
        member_name = shape.member.serialization.get("name", "member")
        return [_from_xml(shape.member, e) for e in element if _local(e.tag) == member_name]
    if kind == "map":
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        result: dict[str, Any] = {}
        for entry in element:
            k = entry.find(key_name)
            v = entry.find(value_name)
            if k is not None:
                result[k.text or ""] = _from_xml(shape.value, v) if v is not None else None
        return result
    return _scalar_from_text(shape, element.text or "")
