"""Server-side response serialization for json, rest-json, query and rest-xml, driven by output shapes."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from botocore.model import OperationModel, ServiceModel, Shape

from stratum import jsonfast

from .errors import ServiceError
from .http import HttpResponse
from .timestamps import format_timestamp, to_epoch, to_iso8601, to_rfc822

# Characters XML 1.0 cannot carry, even as character references: a body holding one is not XML,
# and botocore's parser refuses the whole response.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


# Each control byte XML 1.0 refuses as 0, every other byte as 1: one bytes.translate and find (C
# loops, 0.7 ns a byte) tell whether the slow substitution is needed; the regular expression
# search over the text costs 5 ns a character (1 ms for a 1,000-key listing).
_CONTROL_BYTES = bytes(0 if b < 32 and b not in (9, 10, 13) else 1 for b in range(256))


def xml_bytes(text: str) -> bytes:
    """An XML body's bytes, with each character XML 1.0 cannot carry replaced by U+FFFD."""
    try:
        data = text.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return _NOT_XML.sub("\ufffd", text).encode()
    if data.translate(_CONTROL_BYTES).find(0) >= 0 or b"\xef\xbf\xbe" in data or b"\xef\xbf\xbf" in data:
        return _NOT_XML.sub("\ufffd", text).encode()
    return data


JSON_CONTENT_TYPE = {"json": "application/x-amz-json-1.1", "rest-json": "application/json"}


def serialize_response(service: ServiceModel, op: OperationModel, output: Any, request_id: str) -> HttpResponse:
    if isinstance(output, HttpResponse):  # providers may answer raw HTTP (e.g. sagemaker-runtime bodies)
        output.headers.setdefault("x-amzn-RequestId", request_id)
        return output
    output = output or {}
    protocol = service.resolved_protocol  # the one botocore picks from the model's "protocols"
    shape = op.output_shape
    if protocol == "json":
        body = _to_json(shape, output) if shape is not None else {}
        return HttpResponse(200, _json_headers(protocol, request_id), _dumps(body))
    if protocol == "query":
        return HttpResponse(200, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id},
                            _query_body(service, op, shape, output, request_id))
    return _rest_response(service, op, shape, output, request_id)


def _json_headers(protocol: str, request_id: str) -> dict[str, str]:
    return {"Content-Type": JSON_CONTENT_TYPE[protocol], "x-amzn-RequestId": request_id}


def _dumps(value: Any) -> bytes:
    return jsonfast.dumps_bytes(value)


# ----------------------------------------------------------------------------------------------- json
# Written as they are: no conversion, no recursion.
_AS_IS = frozenset({"string", "integer", "long", "boolean", "float", "double"})
# Structure shape -> {member name: (name on the wire, member shape, written as it is)}. Keyed by
# the shape object: botocore keeps each operation's shapes (and their members) once.
_MEMBERS: dict[Shape, dict[str, tuple[str, Shape, bool]]] = {}


def _members(shape: Shape) -> dict[str, tuple[str, Shape, bool]]:
    members = _MEMBERS.get(shape)
    if members is None:
        members = _MEMBERS[shape] = {
            name: (member.serialization.get("name", name), member, member.type_name in _AS_IS)
            for name, member in shape.members.items()}
    return members


def _to_json(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if value is None:
        return None
    if kind == "structure":
        # The value's own keys, not every member of the shape: outputs fill a few of many members.
        members = _members(shape)
        out: dict[str, Any] = {}
        for name, item in value.items():
            if item is None:
                continue
            entry = members.get(name)
            if entry is not None:
                wire, member, as_is = entry
                out[wire] = item if as_is else _to_json(member, item)
        return out
    if kind == "list":
        member = shape.member
        if member.type_name in _AS_IS:
            return list(value)
        return [_to_json(member, v) for v in value]
    if kind == "map":
        return {k: _to_json(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        if isinstance(value, datetime):
            fmt = shape.serialization.get("timestampFormat")
            return format_timestamp(value, fmt) if fmt else to_epoch(value)
        return value
    if kind == "blob":
        if isinstance(value, str):
            value = value.encode()
        return base64.b64encode(value).decode()
    return value


# ---------------------------------------------------------------------------------------------- query
def _query_body(service: ServiceModel, op: OperationModel, shape: Shape | None, output: Any, request_id: str) -> bytes:
    ns = service.metadata.get("xmlNamespace", "")
    name = op.name
    parts = [f'<{name}Response xmlns="{ns}">']
    if shape is not None:
        wrapper = shape.serialization.get("resultWrapper", f"{name}Result")
        parts.append(f"<{wrapper}>")
        _xml_members(shape, output, parts, timestamp_default="iso8601")
        parts.append(f"</{wrapper}>")
    parts.append(f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{name}Response>")
    return xml_bytes("".join(parts))


# ------------------------------------------------------------------------------------------------ xml
def _xml_scalar(shape: Shape, value: Any, timestamp_default: str) -> str:
    kind = shape.type_name
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "timestamp":
        if isinstance(value, datetime):
            fmt = shape.serialization.get("timestampFormat", timestamp_default)
            return str(format_timestamp(value, fmt))
        return escape(str(value))
    if kind == "blob":
        if isinstance(value, str):
            value = value.encode()
        return base64.b64encode(value).decode()
    return escape(str(value))


def _xml_members(shape: Shape, value: dict[str, Any], parts: list[str], timestamp_default: str) -> None:
    for name, member in shape.members.items():
        if member.serialization.get("location") or member.serialization.get("xmlAttribute"):
            continue
        item = value.get(name)
        if item is None:
            continue
        _xml_value(member, member.serialization.get("name", name), item, parts, timestamp_default)


def _xml_value(shape: Shape, tag: str, value: Any, parts: list[str], timestamp_default: str) -> None:
    kind = shape.type_name
    if kind == "list":
        member_tag = shape.member.serialization.get("name", "member")
        if shape.serialization.get("flattened"):
            for item in value:
                _xml_value(shape.member, shape.member.serialization.get("name", tag), item, parts, timestamp_default)
            return
        parts.append(f"<{tag}>")
        for item in value:
            _xml_value(shape.member, member_tag, item, parts, timestamp_default)
        parts.append(f"</{tag}>")
        return
    if kind == "map":
        key_tag = shape.key.serialization.get("name", "key")
        value_tag = shape.value.serialization.get("name", "value")
        flattened = shape.serialization.get("flattened")
        if not flattened:
            parts.append(f"<{tag}>")
        for k, v in value.items():
            parts.append("<entry>" if not flattened else f"<{tag}>")
            parts.append(f"<{key_tag}>{escape(str(k))}</{key_tag}>")
            _xml_value(shape.value, value_tag, v, parts, timestamp_default)
            parts.append("</entry>" if not flattened else f"</{tag}>")
        if not flattened:
            parts.append(f"</{tag}>")
        return
    if kind == "structure":
        attrs = ""
        for name, member in shape.members.items():
            if member.serialization.get("xmlAttribute") and value.get(name) is not None:
                attr_name = member.serialization.get("name", name)
                if attr_name.startswith("xsi:"):
                    attrs += ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
                attrs += f' {attr_name}="{escape(str(value[name]))}"'
        parts.append(f"<{tag}{attrs}>")
        _xml_members(shape, value, parts, timestamp_default)
        parts.append(f"</{tag}>")
        return
    parts.append(f"<{tag}>{_xml_scalar(shape, value, timestamp_default)}</{tag}>")


# ----------------------------------------------------------------------------------------------- rest
def _header_text(shape: Shape, value: Any) -> str:
    kind = shape.type_name
    if kind == "timestamp" and isinstance(value, datetime):
        fmt = shape.serialization.get("timestampFormat", "rfc822")
        return str(format_timestamp(value, fmt))
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "string" and shape.serialization.get("jsonvalue"):
        return base64.b64encode(json.dumps(value).encode()).decode()
    if kind == "list":
        return ",".join(str(v) for v in value)
    return str(value)


# What an HTTP/1.1 header value may hold once written as ISO-8859-1: no line breaks (a CR LF would
# end the header and let a request's query string write headers of its own) and no other controls.
_NOT_HEADER_TEXT = re.compile("[^\t\x20-\x7e\x80-\xff]")


def _checked_header(protocol: str, text: str) -> str:
    """A response header's value; one that cannot be sent (a request echoed into a header, such as
    S3's response-content-type) is refused as S3 refuses metadata it cannot represent."""
    if _NOT_HEADER_TEXT.search(text) is not None:
        raise ServiceError("InvalidArgument" if protocol == "rest-xml" else "ValidationException",
                           "Header value cannot be represented using ISO-8859-1.", 400)
    return text


def _rest_response(service: ServiceModel, op: OperationModel, shape: Shape | None, output: dict[str, Any],
                   request_id: str) -> HttpResponse:
    protocol = service.protocol
    status = int(op.http.get("responseCode", 200))
    headers: dict[str, str] = {"x-amzn-RequestId": request_id}
    if protocol == "rest-xml":
        headers["x-amz-request-id"] = request_id
    body: bytes | Iterator[bytes] | AsyncIterator[bytes] = b""
    if shape is None:
        return HttpResponse(status, headers, body)
    body_members: dict[str, Any] = {}
    for name, member in shape.members.items():
        value = output.get(name)
        if value is None:
            continue
        loc = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if loc == "header":
            headers[wire] = _checked_header(protocol, _header_text(member, value))
        elif loc == "headers":
            for k, v in value.items():
                headers[f"{wire}{k}"] = _checked_header(protocol, str(v))
        elif loc == "statusCode":
            status = int(value)
        else:
            body_members[name] = value
    payload_name = shape.serialization.get("payload")
    if payload_name:
        member = shape.members[payload_name]
        value = output.get(payload_name)
        if value is None:
            pass
        elif member.type_name in ("blob", "string"):
            body = value.encode() if isinstance(value, str) else value
        elif protocol == "rest-json":
            body = _dumps(_to_json(member, value))
            headers.setdefault("Content-Type", "application/json")
        else:
            tag = member.serialization.get("name", payload_name)
            body = _xml_document(member, tag, value)
            headers.setdefault("Content-Type", "application/xml")
    elif protocol == "rest-json":
        body = _dumps({shape.members[n].serialization.get("name", n): _to_json(shape.members[n], v)
                       for n, v in body_members.items()})
        headers.setdefault("Content-Type", "application/json")
    elif body_members:
        tag = shape.serialization.get("name", shape.name)
        body = _xml_document(shape, tag, output)
        headers.setdefault("Content-Type", "application/xml")
    return HttpResponse(status, headers, body)


def _xml_document(shape: Shape, tag: str, value: Any) -> bytes:
    ns = shape.serialization.get("xmlNamespace")
    parts: list[str] = []
    _xml_value(shape, tag, value, parts, "iso8601")
    if ns and parts:
        uri = ns.get("uri") if isinstance(ns, dict) else ns
        first = parts[0]
        parts[0] = first[:-1] + f' xmlns="{uri}">' if first.endswith(">") else first
    return xml_bytes('<?xml version="1.0" encoding="UTF-8"?>\n' + "".join(parts))


# --------------------------------------------------------------------------------------------- errors
def serialize_error(service: ServiceModel | None, error: ServiceError, request_id: str, method: str = "POST"
                    ) -> HttpResponse:
    protocol = service.resolved_protocol if service is not None else "json"
    headers = {"x-amzn-RequestId": request_id, **error.headers}
    if protocol in ("json", "rest-json"):
        headers["x-amzn-ErrorType"] = error.code
        if service is not None and "awsQueryCompatible" in service.metadata:
            # Services that moved from query to JSON (CloudWatch) keep their query error codes here.
            headers.setdefault("x-amzn-query-error", f"{error.code};{'Sender' if error.sender_fault else 'Receiver'}")
        headers["Content-Type"] = JSON_CONTENT_TYPE[protocol]
        payload: dict[str, Any] = {"__type": error.code, "message": error.message}
        if protocol == "rest-json":
            payload = {"message": error.message}
        payload.update(_jsonable(error.fields))
        return HttpResponse(error.status, headers, _dumps(payload))
    if protocol == "smithy-rpc-v2-cbor":
        headers["Content-Type"] = "application/cbor"
        headers["smithy-protocol"] = "rpc-v2-cbor"
        return HttpResponse(error.status, headers, cbor_text_map({"__type": error.code, "message": error.message}))
    if protocol == "ec2":
        body = (f"<Response><Errors><Error><Code>{escape(error.code)}</Code><Message>{escape(error.message)}"
                f"</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>")
        headers["Content-Type"] = "text/xml"
        return HttpResponse(error.status, headers, xml_bytes(body))
    if protocol == "query":
        ns = service.metadata.get("xmlNamespace", "") if service is not None else ""
        fault = "Sender" if error.sender_fault else "Receiver"
        body = (f'<ErrorResponse xmlns="{ns}"><Error><Type>{fault}</Type><Code>{escape(error.code)}</Code>'
                f"<Message>{escape(error.message)}</Message></Error><RequestId>{request_id}</RequestId>"
                "</ErrorResponse>")
        headers["Content-Type"] = "text/xml"
        return HttpResponse(error.status, headers, xml_bytes(body))
    headers["x-amz-request-id"] = request_id
    headers["Content-Type"] = "application/xml"
    if method == "HEAD":
        return HttpResponse(error.status, headers, b"")
    extra = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in error.fields.items())
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>{extra}"
            f"<RequestId>{request_id}</RequestId></Error>")
    return HttpResponse(error.status, headers, xml_bytes(body))


def cbor_text_map(values: dict[str, str]) -> bytes:
    """A CBOR map of text strings (RFC 8949): all an rpc-v2-cbor error body needs."""
    out = bytearray(_cbor_head(5, len(values)))
    for key, value in values.items():
        for text in (key, value):
            data = text.encode("utf-8", "replace")
            out += _cbor_head(3, len(data)) + data
    return bytes(out)


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | info]) + n.to_bytes(size, "big")
    raise ValueError("CBOR length too large")


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in fields.items():
        out[k] = to_iso8601(v) if isinstance(v, datetime) else v
    return out


__all__ = ["serialize_response", "serialize_error", "to_rfc822"]
