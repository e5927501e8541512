"""Requests for the fuzz suite, generated from the botocore models with a seeded generator.

Each case is one signed HTTP request for one operation, built from a ``random.Random`` seeded by
(run seed, service, operation, case number), so any case can be rebuilt from what a failure
prints. A case is one of:

- ``plausible``: the required members (and a few optional ones) with values that satisfy the
  model's enums, lengths, ranges and patterns, so that the request reaches the operation's code;
- ``hostile``: the same, with hostile values of the right type (huge strings, NUL, lone
  surrogates, controls, extreme numbers, long lists, bad enums, missing required members);
- ``mutated``: a plausible request changed on the wire (wrong JSON types, deep nesting, numbers and
  timestamps out of range, bad percent-escapes in the path, hostile query strings and headers);
- ``garbage``: a body or headers that belong to no protocol.

The answer is read with botocore's own parser for the service's protocol.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, quote_plus

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest, prepare_request_dict
from botocore.credentials import Credentials
from botocore.model import OperationModel, Shape
from botocore.serialize import create_serializer

try:  # Python 3.11 moved the regular-expression parser
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_parse  # type: ignore[no-redef]

KINDS = ("mutated", "garbage", "plausible", "hostile")
REGION = "us-east-1"

DEEP = 3000  # nesting beyond any reader's recursion limit
HUGE = 70_000  # characters: beyond every string member's maximum
MAX_BODY = 2_000_000  # bytes: a request body the generator drew larger is drawn again

HOSTILE_STRINGS = [
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "\u2603", "\r\n", "a\r\nX-Injected: yes", "\t\x01\x1f\x7f",
    "%00", "%", "%ED%A0%80", "../../../etc/passwd", "' OR '1'='1", "${jndi:ldap://x}", "\u202e\ufeff\uffff",
    "arn:aws:iam::000000000000:role/x", "arn:aws:sagemaker:us-east-1:123456789012:pipeline/\x00",
    "a" * 2049, "A" * HUGE, "\u00e9" * 5000, "*?*?*?*?a", "<a>&amp;</a>", '{"a":', "null", "1e400", "NaN",
]
HOSTILE_INTS = [0, -1, 1, 2**31, -(2**31) - 1, 2**63, -(2**63) - 1, 10**30]
HOSTILE_FLOATS = [0.0, -1.0, 1e308, -1e308, 5e-324, 1e-7]
# Timestamps as they appear on the wire, beyond what a datetime holds or not timestamps at all.
HOSTILE_TIMESTAMPS_JSON = ["1e20", "-1e20", "1e400", '"inf"', '"-inf"', '"NaN"', '"9999-12-31T23:59:59-12:00"',
                           '"0001-01-01T00:00:00+14:00"', '"x"', "true", "[]", "{}", "null", '""']
HOSTILE_TIMESTAMPS_TEXT = ["1e20", "inf", "NaN", "9999-12-31T23:59:59-12:00", "Fri, 31 Dec 9999 23:59:59 -1200",
                           "0001-01-01T00:00:00+14:00", "x", "", "99999999999999999999999"]
HOSTILE_JSON = ["{}", "[]", "1", "-1", "1e20", "1e400", "-1e400", "true", "null", '"\\ud800"', '"\\u0000"',
                '"x"', '"inf"', "18446744073709551616", "1.5", '"' + "a" * HUGE + '"',
                "[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP]
GARBAGE_BODIES = [b"\xff\xfe\xfd", b"{", b"[]", b"null", b'{"a": NaN}', b"\x00" * 64, b"<xml>", b"a=b&c",
                  b"{" * 100_000, b'"' + b"\xed\xa0\x80" + b'"', b"<" * 5000,
                  b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxxxx"><!ENTITY y "&x;&x;&x;&x;&x;&x;'
                  b'&x;&x;&x;&x;">]><a>&y;&y;&y;</a>']
BAD_HEADERS = [("Date", "Fri, 31 Dec 9999 23:59:59 -1200"), ("Content-Type", "\u2603/x"),
               ("Content-Encoding", "gzip"), ("Content-MD5", "not-base64"), ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
               ("Range", "bytes=99999999999999999999999-"), ("If-Modified-Since", "Fri, 31 Dec 9999 23:59:59 -1200"),
               ("x-amz-meta-a", "\u00e9\u2603"), ("Expect", "100-continue"), ("X-Amz-Target", "\u2603.x"),
               ("x-amz-checksum-crc32", "%%%"), ("x-amz-copy-source", "b/%00"), ("x-amz-tagging", "a=%ZZ")]


@dataclass
class Case:
    service: str
    operation: str
    number: int
    kind: str
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------ values
class Values:
    """Values for shapes: plausible (the model's constraints met) or hostile (right type, bad value)."""

    def __init__(self, rng: random.Random, hostile: bool, known: dict[str, list[str]] | None = None) -> None:
        self.rng = rng
        self.hostile = hostile
        self.long_used = False
        # Member name -> names of resources that exist (made before the run): requests that name
        # them get past the lookups into the operations' own code.
        self.known = known or {}

    def structure(self, shape: Shape, depth: int = 0) -> dict[str, Any]:
        out: dict[str, Any] = {}
        required = set(shape.required_members)
        for name, member in shape.members.items():
            if name in required:
                # A missing required member; not one in the URI, query or headers, which would make
                # the request another operation's (ListParts without uploadId is a GetObject).
                if self.hostile and self.rng.random() < 0.15 and not member.serialization.get("location"):
                    continue
            elif depth > 4 or self.rng.random() > (0.35 if depth == 0 else 0.15):
                continue
            existing = self.known.get(name)
            if existing and member.type_name == "string" and self.rng.random() < 0.7:
                out[name] = self.rng.choice(existing)
            elif name in required and member.serialization.get("location") and member.type_name != "string":
                # Plausible, for the same reason: an empty header list is no header at all.
                out[name] = Values(self.rng, hostile=False).value(member, depth + 1)
            else:
                out[name] = self.value(member, depth + 1)
        return out

    def value(self, shape: Shape, depth: int) -> Any:
        kind = shape.type_name
        rng = self.rng
        hostile = self.hostile and rng.random() < 0.5
        if kind == "structure":
            return self.structure(shape, depth)
        if kind == "list":
            n = self._count(shape, hostile, depth)
            return [self.value(shape.member, depth + 1) for _ in range(n)]
        if kind == "map":
            n = self._count(shape, hostile, depth)
            return {str(self.value(shape.key, depth + 1)): self.value(shape.value, depth + 1) for _ in range(n)}
        if kind == "string":
            return rng.choice(HOSTILE_STRINGS) if hostile else self.string(shape)
        if kind in ("integer", "long"):
            if hostile:
                return rng.choice(HOSTILE_INTS)
            lo, hi = shape.metadata.get("min", 0), shape.metadata.get("max", 100)
            return rng.randint(int(lo), int(max(lo, min(hi, lo + 1000))))
        if kind in ("float", "double"):
            return rng.choice(HOSTILE_FLOATS) if hostile else round(rng.uniform(0, 1), 3)
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "timestamp":
            days = rng.choice([-36500 * 20, 36500 * 70, -1, 1]) if hostile else rng.randint(-30, 30)
            try:
                return datetime.now(UTC) + timedelta(days=days)
            except OverflowError:
                return datetime(9999, 12, 31, tzinfo=UTC)
        if kind == "blob":
            return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 16, 5000] if hostile else [1, 16])))
        return None

    def _count(self, shape: Shape, hostile: bool, depth: int) -> int:
        lo = int(shape.metadata.get("min", 0))
        if hostile:
            # One long collection per request at most (nested ones would multiply into gigabytes).
            long = 300 if depth <= 2 and not self.long_used else lo + 3
            n = self.rng.choice([0, lo, long])
            self.long_used = self.long_used or n == 300
            return n
        return self.rng.randint(lo, max(lo, min(int(shape.metadata.get("max", 2)), lo + 2)))

    def string(self, shape: Shape) -> str:
        meta = shape.metadata
        enum = meta.get("enum")
        if enum:
            return str(self.rng.choice(enum))
        lo, hi = int(meta.get("min", 1)), int(meta.get("max", 40))
        pattern = meta.get("pattern")
        if pattern:
            for _ in range(4):
                text = regex_example(pattern, self.rng)
                if text is not None and lo <= len(text) <= hi:
                    return text
        n = max(lo, min(hi, self.rng.randint(4, 20)))
        return "fz" + "".join(self.rng.choice(string.ascii_lowercase + string.digits) for _ in range(max(0, n - 2)))


def regex_example(pattern: str, rng: random.Random) -> str | None:
    """A string matching ``pattern`` (Python syntax), or None for what Python's parser refuses."""
    import re

    try:
        parsed = sre_parse.parse(pattern)
        compiled = re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return None
    for _ in range(3):
        out: list[str] = []
        try:
            _emit(parsed, rng, out)
        except _Unsupported:
            return None
        text = "".join(out)
        if compiled.fullmatch(text) or compiled.match(text):
            return text
    return None


class _Unsupported(Exception):
    pass


def _emit(items: Any, rng: random.Random, out: list[str]) -> None:
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append("a" if arg != ord("a") else "b")
        elif name == "ANY":
            out.append(rng.choice(string.ascii_letters))
        elif name == "IN":
            out.append(_from_class(arg, rng))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            lo, hi, sub = arg
            hi = lo + 3 if hi == sre_parse.MAXREPEAT else hi
            for _ in range(rng.randint(lo, max(lo, min(hi, lo + 3)))):
                _emit(sub, rng, out)
        elif name == "SUBPATTERN":
            _emit(arg[-1], rng, out)
        elif name == "ATOMIC_GROUP":
            _emit(arg, rng, out)
        elif name == "BRANCH":
            _emit(rng.choice(arg[1]), rng, out)
        elif name in ("AT", "ASSERT", "ASSERT_NOT"):
            continue
        else:
            raise _Unsupported(name)


def _from_class(items: Any, rng: random.Random) -> str:
    choices: list[str] = []
    negate = False
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            choices.append(chr(arg))
        elif name == "RANGE":
            lo, hi = arg
            choices.append(chr(rng.randint(lo, min(hi, lo + 200))))
        elif name == "CATEGORY":
            category = str(arg)
            choices.append({"CATEGORY_DIGIT": "7", "CATEGORY_SPACE": " ", "CATEGORY_WORD": "w",
                            "CATEGORY_NOT_DIGIT": "x", "CATEGORY_NOT_SPACE": "s",
                            "CATEGORY_NOT_WORD": "-"}.get(category, "a"))
    if negate:
        for candidate in "aZ0-_":
            if candidate not in choices:
                return candidate
        return "~"
    if not choices:
        raise _Unsupported("empty class")
    return rng.choice(choices)


# ----------------------------------------------------------------------------------- requests
def build_case(endpoint: str, creds: tuple[str, str], service: str, op: OperationModel, seed: str,
               number: int, known: dict[str, list[str]] | None = None) -> Case | None:
    """The case ``number`` for ``op``; None when this draw cannot be serialized at all."""
    rng = random.Random(f"{seed}:{service}:{op.name}:{number}")
    kind = KINDS[number % len(KINDS)]
    protocol = op.service_model.resolved_protocol  # what botocore speaks (cloudwatch: json, not cbor)
    values = Values(rng, hostile=kind == "hostile", known=known)
    params = values.structure(op.input_shape) if op.input_shape is not None else {}
    request = _serialize(endpoint, protocol, op, params)
    if request is None:  # a hostile value botocore cannot write (a surrogate in a URI), or too big
        params = Values(rng, hostile=False, known=known).structure(op.input_shape) if op.input_shape else {}
        request = _serialize(endpoint, protocol, op, params)
        if request is None:
            return None
    method: str = request["method"]
    url: str = request["url"]
    headers = {k: str(v) for k, v in request["headers"].items()}
    body = request["body"]
    if isinstance(body, dict):  # the query protocol: a form
        body = "&".join(f"{quote_plus(str(k))}={_form_value(v)}" for k, v in body.items()).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
    elif isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    elif body is None:
        body = b""
    elif not isinstance(body, bytes):
        body = bytes(body.read()) if hasattr(body, "read") else bytes(body)
    case = Case(service, op.name, number, kind, method, url, headers, body)
    if kind == "mutated":
        for _ in range(rng.randint(1, 3)):
            _mutate(case, op, rng)
    elif kind == "garbage":
        _garbage(case, rng)
    try:
        _sign(case, creds, op)
    except UnicodeError:  # a lone surrogate botocore's serializer left in the URL: no request has it
        return None
    return case


def _serialize(endpoint: str, protocol: str, op: OperationModel, params: dict[str, Any]) -> dict[str, Any] | None:
    try:
        request: dict[str, Any] = create_serializer(protocol, include_validation=False).serialize_to_request(params, op)
        request["host_prefix"] = None
        prepare_request_dict(request, endpoint)
    except Exception:  # botocore refuses the value (UnicodeEncodeError, TypeError, ValueError...)
        return None
    body = request["body"]
    if isinstance(body, bytes | str) and len(body) > MAX_BODY:
        return None
    return request


def _form_value(value: Any) -> str:
    return quote_plus(str(value).encode("utf-8", "surrogatepass"))


def _mutate(case: Case, op: OperationModel, rng: random.Random) -> None:
    protocol = op.service_model.resolved_protocol  # what botocore speaks (cloudwatch: json, not cbor)
    choice = rng.random()
    if choice < 0.5 and protocol in ("json", "rest-json") and case.body.strip().startswith(b"{"):
        _mutate_json(case, op, rng)
    elif choice < 0.5 and protocol == "query":
        _mutate_form(case, op, rng)
    elif choice < 0.5 and protocol == "rest-xml" and case.body.startswith(b"<"):
        case.body = rng.choice([b"<a>" * DEEP, case.body[: len(case.body) // 2], case.body.replace(b">", b">&#0;", 1),
                                case.body + b"<extra/>", GARBAGE_BODIES[-1]])
        case.notes.append("xml body")
    elif choice < 0.75:
        _mutate_url(case, op, rng)
    else:
        name, value = rng.choice(BAD_HEADERS)
        case.headers[name] = value
        case.notes.append(f"header {name}")


def _json_paths(shape: Shape, prefix: tuple[str, ...], depth: int = 0) -> list[tuple[tuple[str, ...], Shape]]:
    out: list[tuple[tuple[str, ...], Shape]] = []
    if shape.type_name != "structure" or depth > 3:
        return out
    for name, member in shape.members.items():
        if member.serialization.get("location"):
            continue
        wire = member.serialization.get("name", name)
        out.append(((*prefix, wire), member))
        out.extend(_json_paths(member, (*prefix, wire), depth + 1))
    return out


def _mutate_json(case: Case, op: OperationModel, rng: random.Random) -> None:
    try:
        doc = json.loads(case.body)
    except (ValueError, RecursionError):  # an earlier mutation nested it deeply
        return
    if not isinstance(doc, dict):
        return
    shape = op.input_shape
    payload = shape.serialization.get("payload") if shape is not None else None
    paths = _json_paths(shape.members[payload] if payload else shape, ()) if shape is not None else []
    if not paths or rng.random() < 0.1:
        doc["Unknown" + str(rng.randrange(100))] = "x"
        case.body = json.dumps(doc).encode()
        case.notes.append("unknown member")
        return
    path, member = rng.choice(paths)
    if member.type_name == "timestamp":
        raw = rng.choice(HOSTILE_TIMESTAMPS_JSON)
    else:
        raw = rng.choice(HOSTILE_JSON)
    if rng.random() < 0.1 and shape is not None and shape.required_members and path[0] in doc:
        del doc[path[0]]
        case.body = json.dumps(doc).encode()
        case.notes.append(f"dropped {path[0]}")
        return
    target = doc
    for key in path[:-1]:
        nxt = target.get(key) if isinstance(target, dict) else None
        if not isinstance(nxt, dict):
            nxt = {}
            target[key] = nxt
        target = nxt
    target[path[-1]] = "@@RAW@@"
    case.body = json.dumps(doc).replace('"@@RAW@@"', raw, 1).encode()
    case.notes.append(f"{'.'.join(path)} = {raw[:40]}")


def _mutate_form(case: Case, op: OperationModel, rng: random.Random) -> None:
    pairs = [p.split("=", 1) for p in case.body.decode("latin-1").split("&") if "=" in p]
    hostile = [quote_plus(s.encode("utf-8", "surrogatepass")) for s in HOSTILE_STRINGS[:20]] + [
        quote_plus(t) for t in HOSTILE_TIMESTAMPS_TEXT] + ["%ZZ", "%", "%ED%A0%80", "%00"]
    choice = rng.random()
    if choice < 0.6 and len(pairs) > 2:
        i = rng.randrange(2, len(pairs))  # Action and Version stay
        pairs[i][1] = rng.choice(hostile)
        case.notes.append(f"{pairs[i][0]} hostile")
    elif choice < 0.8:
        pairs.append([rng.choice(["Tags.member.99999.Key", "PolicyArn", "Foo", "Action", "MaxItems", "Marker"]),
                      rng.choice(hostile + ["99999999999999999999"])])
        case.notes.append(f"added {pairs[-1][0]}")
    elif len(pairs) > 2:
        removed = pairs.pop(rng.randrange(2, len(pairs)))
        case.notes.append(f"dropped {removed[0]}")
    case.body = "&".join(f"{k}={v}" for k, v in pairs).encode("latin-1")


def _mutate_url(case: Case, op: OperationModel, rng: random.Random) -> None:
    base, _, query = case.url.partition("?")
    scheme_host, _, path = base.partition("//")[2].partition("/")
    segments = path.split("/")
    choice = rng.random()
    evil = rng.choice(["%00", "%ED%A0%80", "%E2%98%83", "%", "%ZZ", "..", "%2F..%2F", "a" * 3000, "%0D%0A", "%FF"])
    if choice < 0.4 and segments and segments[0]:
        i = rng.randrange(len(segments))
        segments[i] = segments[i] + evil if rng.random() < 0.5 else evil
        case.notes.append(f"path segment {i} {evil[:20]}")
    elif choice < 0.8:
        extra = rng.choice(["response-content-type", "response-expires", "max-keys", "partNumber", "versionId",
                            "list-type", "prefix", "MaxResults", "nextToken", "uploadId", "X-Amz-Date", "Action"])
        query = (query + "&" if query else "") + f"{extra}={evil}"
        case.notes.append(f"query {extra}={evil[:20]}")
    else:
        for member in (op.input_shape.members.values() if op.input_shape is not None else ()):
            if member.serialization.get("location") == "querystring" and member.type_name != "map":
                wire = member.serialization.get("name")
                value = rng.choice([quote(t) for t in HOSTILE_TIMESTAMPS_TEXT] + ["-1", "99999999999999999999", evil])
                query = (query + "&" if query else "") + f"{wire}={value}"
                case.notes.append(f"query member {wire}={value[:20]}")
                break
    case.url = f"http://{scheme_host}/{'/'.join(segments)}" + (f"?{query}" if query else "")


def _garbage(case: Case, rng: random.Random) -> None:
    case.body = rng.choice(GARBAGE_BODIES)
    case.notes.append(f"garbage body {case.body[:16]!r}")
    if rng.random() < 0.3:
        name, value = rng.choice(BAD_HEADERS)
        case.headers[name] = value
        case.notes.append(f"header {name}")
    if rng.random() < 0.2:
        case.headers["Content-Type"] = rng.choice(["text/plain", "application/json", "application/xml",
                                                   "application/x-www-form-urlencoded", "multipart/form-data"])


def _sign(case: Case, creds: tuple[str, str], op: OperationModel) -> None:
    # Header values go out as bytes: a non-Latin-1 value is written as its UTF-8 bytes, which is
    # also how the server reads them back (Latin-1), so the signature covers what is received.
    # http.client refuses to send a line break or NUL inside a header: those go in other places.
    for name, value in list(case.headers.items()):
        value = value.replace("\r", "").replace("\n", "").replace("\x00", "")
        case.headers[name] = value.encode("utf-8", "surrogatepass").decode("latin-1")
    # Content-Length is the body's (a ContentLength member drawn at random would leave the server
    # waiting, as any HTTP server does, for bytes that never come).
    for name in ("Authorization", "X-Amz-Date", "Content-Length"):
        case.headers.pop(name, None)
    request = AWSRequest(method=case.method, url=case.url, data=case.body, headers=case.headers)
    model = op.service_model
    signing_name = model.signing_name or model.endpoint_prefix
    signer = S3SigV4Auth if model.service_name == "s3" else SigV4Auth
    signer(Credentials(*creds), signing_name, REGION).add_auth(request)
    case.headers = dict(request.headers.items())
