"""Server-side verification of AWS Signature Version 4 (header and presigned-URL forms).

The canonical request is rebuilt the way botocore builds it (``botocore.auth.SigV4Auth``,
``S3SigV4Auth``, ``SigV4QueryAuth``, ``S3SigV4QueryAuth``), because the clients we serve are
unmodified boto3 / AWS CLI and any divergence shows up as ``SignatureDoesNotMatch``.

Input conventions (the server adapts the ASGI scope to these):

* ``headers``: a mapping whose keys are **lower-case** header names; repeated headers joined
  with ``","``.  Values should be decoded from the wire bytes as latin-1 (what http.client
  uses to encode ``str`` header values), so that re-encoding the canonical request as UTF-8
  reproduces what the client hashed.  A value may also be a list of strings (one per
  occurrence); each is trimmed before joining, exactly like botocore.
* ``raw_path``: the path exactly as received (still percent-encoded, no query), e.g. the ASGI
  ``raw_path`` decoded as latin-1.
* ``query_string``: the raw query string (no leading ``?``), e.g. ASGI ``query_string``.

Streaming (``aws-chunked``) bodies are decoded by :mod:`stratum.auth.chunked` with the signing
key returned by :func:`verify`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from time import time as _time
from typing import NamedTuple
from urllib.parse import quote, unquote, unquote_to_bytes

__all__ = [
    "ALGORITHM",
    "HeaderMap",
    "EMPTY_SHA256",
    "MAX_PRESIGN_EXPIRES",
    "MAX_SKEW_SECONDS",
    "STREAMING_PAYLOAD",
    "STREAMING_PAYLOAD_TRAILER",
    "STREAMING_UNSIGNED_PAYLOAD_TRAILER",
    "UNSIGNED_PAYLOAD",
    "SignedRequestInfo",
    "SigV4Error",
    "check_clock",
    "credential_scope",
    "derive_signing_key",
    "parse_auth",
    "peek_scope",
    "verify",
]

# Lower-case header name -> value (or one value per occurrence of a repeated header).
HeaderMap = Mapping[str, str | Sequence[str]]

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_PAYLOAD_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_PAYLOAD_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
# Payload-hash values that are not a hex digest of the body, so the body cannot be checked
# against them here (streaming ones are checked chunk by chunk in chunked.py).
_SPECIAL_PAYLOAD_HASHES = frozenset(
    {UNSIGNED_PAYLOAD, STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER, STREAMING_UNSIGNED_PAYLOAD_TRAILER}
)

MAX_SKEW_SECONDS = 15 * 60
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600  # 604800, the SigV4 presign ceiling

_DEFAULT_STATUS = {
    "MissingAuthenticationToken": 403,
    "IncompleteSignature": 400,
    "SignatureDoesNotMatch": 403,
    "InvalidClientTokenId": 403,
    "RequestExpired": 400,
    "RequestTimeTooSkewed": 403,
    "AccessDenied": 403,
    "XAmzContentSHA256Mismatch": 400,
    "AuthorizationQueryParametersError": 400,
    "BadDigest": 400,
    "IncompleteBody": 400,
}

_SIGNATURE_MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)


class SigV4Error(Exception):
    """An authentication failure, carrying the AWS error code the server should return.

    ``status`` is the HTTP status AWS uses for that code.  On ``SignatureDoesNotMatch`` from
    :func:`verify`, ``canonical_request`` and ``string_to_sign`` hold what the server computed
    (S3 echoes them in its error body; handy in debug logs, never needed for correctness).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        canonical_request: str | None = None,
        string_to_sign: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else _DEFAULT_STATUS.get(code, 403)
        self.canonical_request = canonical_request
        self.string_to_sign = string_to_sign


class SignedRequestInfo(NamedTuple):  # immutable; a frozen dataclass costs 2 µs per request to build
    access_key: str
    date: str  # yyyymmdd from the credential scope
    region: str
    service: str  # signing name in the scope: "sagemaker", "s3", "sts", "iam", ...
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str  # yyyymmddTHHMMSSZ (X-Amz-Date, or the Date header converted)
    security_token: str | None  # X-Amz-Security-Token (header or query)
    presigned: bool
    expires: int | None  # X-Amz-Expires, presigned only
    # x-amz-content-sha256 as sent; "UNSIGNED-PAYLOAD" for presigned requests without that
    # header; "" when absent on a header-signed request (the body's SHA-256 is then used).
    payload_hash: str


def credential_scope(info: SignedRequestInfo) -> str:
    return f"{info.date}/{info.region}/{info.service}/aws4_request"


# --------------------------------------------------------------------------- parsing

_AMZ_DATE_RE = re.compile(r"\d{8}T\d{6}Z")
_DATE_RE = re.compile(r"\d{8}")
_CREDENTIAL_RE = re.compile(r"Credential=([^,\s]+)")
_QUERY_AUTH_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-SignedHeaders",
    "X-Amz-Expires",
)


def parse_auth(method: str, path: str, query_string: str, headers: HeaderMap) -> SignedRequestInfo | None:
    """Extract the SigV4 parameters of a request without checking the signature.

    Returns None when the request carries no authentication at all (no ``Authorization``
    header and no ``X-Amz-Algorithm`` query parameter); the caller then decides between
    anonymous access and ``MissingAuthenticationToken``.  ``method`` and ``path`` are accepted
    for symmetry with :func:`verify` and future checks; they do not affect parsing.
    """
    del method, path  # parsing depends only on the auth carriers
    authorization = headers.get("authorization")
    # Cheap substring test first: most requests have no query auth and we want to avoid
    # splitting the query string on the hot path.
    has_query_auth = bool(query_string) and "X-Amz-Algorithm=" in query_string
    if authorization is not None and has_query_auth:
        raise SigV4Error(
            "IncompleteSignature",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the "
            "Authorization header should be specified",
        )
    if authorization is not None:
        return _parse_authorization_header(_header_str(authorization), headers)
    if has_query_auth:
        return _parse_query_auth(query_string, headers)
    return None


def peek_scope(query_string: str, headers: HeaderMap) -> tuple[str, str, str] | None:
    """Best-effort ``(access_key, region, service)`` of a request; never raises.

    For routing decisions taken before (or regardless of) full validation, e.g. picking the
    error format of the service the client believes it is talking to.
    """
    credential: str | None = None
    authorization = headers.get("authorization")
    if authorization is not None:
        m = _CREDENTIAL_RE.search(_header_str(authorization))
        credential = m.group(1) if m else None
    elif query_string and "X-Amz-Credential=" in query_string:
        for piece in query_string.split("&"):
            if piece.startswith("X-Amz-Credential="):
                credential = unquote(piece[len("X-Amz-Credential=") :])
                break
    if not credential:
        return None
    parts = credential.rsplit("/", 4)
    if len(parts) != 5:
        return None
    return parts[0], parts[2], parts[3]


def _header_str(value: str | Sequence[str]) -> str:
    return value if isinstance(value, str) else ",".join(value)


def _parse_credential(credential: str) -> tuple[str, str, str, str] | str:
    """Split ``AKID/yyyymmdd/region/service/aws4_request``; returns an error text if malformed."""
    parts = credential.rsplit("/", 4)
    if len(parts) != 5 or not parts[0]:
        return f"Credential should have exactly 5 slash-separated components: '{credential}'."
    access_key, date, region, service, terminator = parts
    if terminator != "aws4_request":
        return f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
    if not _DATE_RE.fullmatch(date):
        return f"Credential should be scoped to a valid date (yyyymmdd), not '{date}'."
    if not region:
        return "Credential should be scoped to a valid region."
    if not service:
        return "Credential should be scoped to a valid service."
    return access_key, date, region, service


# The form every AWS SDK sends; anything else (other spacing, order, extra parameters) takes the
# general parser below, which accepts the same headers and tells what is wrong with the others.
_SDK_AUTHORIZATION_RE = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^,\s=]+), ?SignedHeaders=([^,\s=]+), ?Signature=([^,\s=]+)")


def _parse_authorization_header(value: str, headers: HeaderMap) -> SignedRequestInfo:
    m = _SDK_AUTHORIZATION_RE.fullmatch(value)
    if m is not None and ("x-amz-date" in headers or "date" in headers):
        credential, signed_headers, signature = m.groups()
        return _header_info(credential, signed_headers, signature, headers)
    stripped = value.strip()
    algorithm, _, rest = stripped.partition(" ")
    if algorithm != ALGORITHM:
        if algorithm == "AWS" or stripped.startswith("AWS "):
            msg = (
                "Signature Version 2 ('AWS <key>:<signature>') is not supported. "
                "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
            )
        elif algorithm.startswith("AWS4-ECDSA"):
            msg = (
                "Signature Version 4A (AWS4-ECDSA-P256-SHA256) is not supported. Please use AWS4-HMAC-SHA256."
            )
        else:
            msg = f"Unsupported authorization type '{algorithm}'. Please use AWS4-HMAC-SHA256."
        raise SigV4Error("IncompleteSignature", msg)

    params: dict[str, str] = {}
    for part in rest.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, val = part.partition("=")
        if not sep:
            raise SigV4Error(
                "IncompleteSignature",
                f"'{part}' not a valid key=value pair (missing equal-sign) in Authorization header: '{value}'.",
            )
        params[key.strip()] = val.strip()

    amz_date = headers.get("x-amz-date")
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not params.get(name)
    ]
    if amz_date is None and headers.get("date") is None:
        problems.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if problems:
        raise SigV4Error("IncompleteSignature", " ".join(problems) + f" Authorization={value}")
    return _header_info(params["Credential"], params["SignedHeaders"], params["Signature"], headers)


def _header_info(credential: str, signed_headers: str, signature: str, headers: HeaderMap) -> SignedRequestInfo:
    """The Authorization header's parameters, checked and joined with the request's date (the
    caller has made sure there is an X-Amz-Date or a Date header)."""
    amz_date = headers.get("x-amz-date")
    cred = _parse_credential(credential)
    if isinstance(cred, str):
        raise SigV4Error("IncompleteSignature", cred)
    access_key, date, region, service = cred

    if amz_date is not None:
        amz_date = _header_str(amz_date).strip()
        if not _valid_amz_date(amz_date):
            raise SigV4Error(
                "IncompleteSignature",
                f"Invalid X-Amz-Date '{amz_date}': must be in the ISO8601 basic format yyyyMMdd'T'HHmmss'Z'.",
            )
    else:
        amz_date = _http_date_to_amz(_header_str(headers["date"]))
    if amz_date[:8] != date:
        raise SigV4Error(
            "IncompleteSignature",
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{date}' != '{amz_date[:8]}', from '{amz_date}'.",
        )

    token = headers.get("x-amz-security-token")
    payload_hash = headers.get("x-amz-content-sha256")
    return SignedRequestInfo(
        access_key=access_key,
        date=date,
        region=region,
        service=service,
        signed_headers=tuple(signed_headers.split(";")),
        signature=signature,
        amz_date=amz_date,
        security_token=_header_str(token) if token is not None else None,
        presigned=False,
        expires=None,
        payload_hash=_header_str(payload_hash).strip() if payload_hash is not None else "",
    )


def _parse_query_auth(query_string: str, headers: HeaderMap) -> SignedRequestInfo:
    params: dict[str, str] = {}
    for piece in query_string.split("&"):
        key, _, val = piece.partition("=")
        if key.startswith("X-Amz-"):
            # First occurrence wins; AWS rejects duplicates but botocore never sends them.
            params.setdefault(key, unquote(val.replace("+", " ")))

    def fail(message: str) -> SigV4Error:
        return SigV4Error("AuthorizationQueryParametersError", message)

    if any(not params.get(name) for name in _QUERY_AUTH_PARAMS):
        raise fail(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
            "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise fail('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    cred = _parse_credential(params["X-Amz-Credential"])
    if isinstance(cred, str):
        raise fail(f"Error parsing the X-Amz-Credential parameter; {cred}")
    access_key, date, region, service = cred
    amz_date = params["X-Amz-Date"]
    if not _valid_amz_date(amz_date):
        raise fail("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    if amz_date[:8] != date:
        raise fail("Invalid credential date. Date is not the same as X-Amz-Date.")
    raw_expires = params["X-Amz-Expires"]
    if not raw_expires.isdigit() or not raw_expires.isascii():
        raise fail("X-Amz-Expires should be a number")
    expires = int(raw_expires)
    if expires < 1:
        raise fail("X-Amz-Expires must be non-negative")
    if expires > MAX_PRESIGN_EXPIRES:
        raise fail("X-Amz-Expires must be less than a week (in seconds) that is 604800")

    content_sha = headers.get("x-amz-content-sha256")
    return SignedRequestInfo(
        access_key=access_key,
        date=date,
        region=region,
        service=service,
        signed_headers=tuple(params["X-Amz-SignedHeaders"].split(";")),
        signature=params["X-Amz-Signature"],
        amz_date=amz_date,
        security_token=params.get("X-Amz-Security-Token"),
        presigned=True,
        expires=expires,
        payload_hash=_header_str(content_sha).strip() if content_sha is not None else UNSIGNED_PAYLOAD,
    )


def _valid_amz_date(value: str) -> bool:
    if not _AMZ_DATE_RE.fullmatch(value):
        return False
    try:
        _amz_date_epoch(value)
    except ValueError:
        return False
    return True


def _amz_date_epoch(value: str) -> float:
    """Seconds since the epoch of a yyyymmddTHHMMSSZ date; ValueError if there is no such date.
    Remembered: every request of the same second carries the same text, and each is read twice."""
    epoch = _EPOCHS.get(value)
    if epoch is None:
        epoch = _compute_amz_date_epoch(value)
        if len(_EPOCHS) >= 256:
            _EPOCHS.clear()
        _EPOCHS[value] = epoch
    return epoch


_EPOCHS: dict[str, float] = {}


def _compute_amz_date_epoch(value: str) -> float:
    # Hand-rolled: datetime.strptime costs ~10 µs, a third of the per-request budget.
    return datetime(
        int(value[0:4]),
        int(value[4:6]),
        int(value[6:8]),
        int(value[9:11]),
        int(value[11:13]),
        int(value[13:15]),
        tzinfo=UTC,
    ).timestamp()


def _http_date_to_amz(value: str) -> str:
    # botocore signs with the Date header (RFC 1123) instead of X-Amz-Date when the caller set
    # one; the string to sign still carries the compact ISO-8601 form.
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None:
        raise SigV4Error("IncompleteSignature", f"Date header '{value}' is not a valid HTTP date.")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    except OverflowError:  # "31 Dec 9999 23:59:59 -1200" is a year beyond 9999 in UTC
        raise SigV4Error("IncompleteSignature", f"Date header '{value}' is not a valid HTTP date.") from None


# --------------------------------------------------------------------------- signing key


@lru_cache(maxsize=1024)
def derive_signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request").

    Cached: four HMACs per request would otherwise be a third of verification time, and the
    key only changes once a day per (credential, region, service).
    """
    k = hmac.digest(("AWS4" + secret_key).encode("utf-8"), date.encode("utf-8"), "sha256")
    k = hmac.digest(k, region.encode("utf-8"), "sha256")
    k = hmac.digest(k, service.encode("utf-8"), "sha256")
    return hmac.digest(k, b"aws4_request", "sha256")


@lru_cache(maxsize=1024)
def _keyed_hmac(signing_key: bytes) -> hmac.HMAC:
    """An HMAC-SHA256 already keyed with a signing key, to be copied per signature: hmac.digest
    sets up OpenSSL's MAC from its name on every call, which costs more than the MAC itself."""
    return hmac.new(signing_key, digestmod=hashlib.sha256)


# --------------------------------------------------------------------------- canonicalization

_CANONICAL_PIECE_RE = re.compile(r"(?:[A-Za-z0-9\-_.~]|%[0-9A-F]{2})*")


def _normalize_url_path(path: str) -> str:
    """botocore.utils.normalize_url_path: RFC 3986 dot-segment removal plus '//' collapsing."""
    if not path:
        return "/"
    output: list[str] = []
    for segment in path.split("/"):
        if segment and segment != ".":
            if segment == "..":
                if output:
                    output.pop()
            else:
                output.append(segment)
    first = "/" if path[0] == "/" else ""
    last = "/" if path[-1] == "/" and output else ""
    return first + "/".join(output) + last


def _canonical_uris(raw_path: str, s3: bool) -> list[str]:
    """Candidate canonical URIs, most likely first."""
    if not raw_path:
        raw_path = "/"
    if s3:
        # S3 signs the path exactly as it goes on the wire (botocore S3SigV4Auth does not
        # normalize).  Second guess: a client whose HTTP stack re-encoded the path after signing.
        candidates = [raw_path]
        reencoded = quote(unquote_to_bytes(raw_path), safe="/~")
        if reencoded != raw_path:
            candidates.append(reencoded)
        return candidates
    if raw_path == "/":
        return ["/"]
    # Other services: botocore quotes the already-percent-encoded wire path once more
    # (SigV4Auth._normalize_url_path), hence the familiar "double encoding". Remembered: a
    # client calls the same few paths (an endpoint's /invocations) again and again.
    uri = _CANONICAL_URIS.get(raw_path)
    if uri is None:
        uri = quote(_normalize_url_path(raw_path), safe="/~")
        if len(raw_path) <= 512:
            if len(_CANONICAL_URIS) >= 1024:
                _CANONICAL_URIS.clear()
            _CANONICAL_URIS[raw_path] = uri
    return [uri]


_CANONICAL_URIS: dict[str, str] = {}


def _canonical_piece(piece: str) -> str:
    if _CANONICAL_PIECE_RE.fullmatch(piece):
        return piece
    # '+' in a query is a form-encoded space (urlencode / Go url.Values); SigV4 wants %20.
    return quote(unquote_to_bytes(piece.replace("+", " ")), safe="-_.~")


def _canonical_queries(query_string: str, presigned: bool) -> list[str]:
    """Candidate canonical query strings, most likely first."""
    if not query_string:
        return [""]
    pairs: list[tuple[str, str]] = []
    raw_pairs: list[tuple[str, str]] = []
    for piece in query_string.split("&"):
        key, _, value = piece.partition("=")
        if presigned and key == "X-Amz-Signature":
            continue
        raw_pairs.append((key, value))
        if piece:
            pairs.append((_canonical_piece(key), _canonical_piece(value)))
    pairs.sort()
    primary = "&".join([f"{k}={v}" for k, v in pairs])
    # botocore's own URL branch (SigV4Auth._canonical_query_string_url) sorts the raw pieces
    # without re-encoding them; only differs from the primary form for odd encodings.
    raw_pairs.sort()
    verbatim = "&".join([f"{k}={v}" for k, v in raw_pairs])
    return [primary] if verbatim == primary else [primary, verbatim]


def _canonical_headers(signed_headers: tuple[str, ...], headers: HeaderMap) -> str:
    lines = []
    for name in signed_headers:
        value = headers.get(name)
        if value is None:
            value = headers.get(name.lower(), "")
        if isinstance(value, str):
            # botocore's Trimall: strip and squeeze runs of whitespace to one space.
            value = " ".join(value.split())
        else:
            value = ",".join([" ".join(v.split()) for v in value])
        lines.append(f"{name}:{value}\n")
    return "".join(lines)


# --------------------------------------------------------------------------- verification


def _now_epoch(now: datetime | None) -> float:
    if now is None:
        return _time()
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)  # naive datetimes are taken as UTC, not local time
    return now.timestamp()


def _fmt_epoch(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%dT%H%M%SZ")


def check_clock(info: SignedRequestInfo, now: float, s3: bool) -> None:
    """The request time window: a header-signed request within 15 minutes of ``now``, a presigned
    one from 15 minutes before its X-Amz-Date until X-Amz-Expires after it."""
    signed_at = _amz_date_epoch(info.amz_date)
    if info.presigned:
        assert info.expires is not None
        if now > signed_at + info.expires:
            if s3:
                raise SigV4Error("AccessDenied", "Request has expired")
            raise SigV4Error(
                "RequestExpired",
                f"Request has expired: signed at {info.amz_date}, valid for {info.expires} seconds, "
                f"now {_fmt_epoch(now)}.",
            )
        if signed_at - now > MAX_SKEW_SECONDS:
            if s3:
                raise SigV4Error("AccessDenied", "Request is not valid yet")
            raise SigV4Error(
                "RequestExpired",
                f"Signature not yet current: {info.amz_date} is still later than "
                f"{_fmt_epoch(now + MAX_SKEW_SECONDS)} ({_fmt_epoch(now)} + 15 min.)",
            )
        return
    skew = signed_at - now
    if -MAX_SKEW_SECONDS <= skew <= MAX_SKEW_SECONDS:
        return
    if s3:
        raise SigV4Error(
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
        )
    if skew < 0:
        message = (
            f"Signature expired: {info.amz_date} is now earlier than "
            f"{_fmt_epoch(now - MAX_SKEW_SECONDS)} ({_fmt_epoch(now)} - 15 min.)"
        )
    else:
        message = (
            f"Signature not yet current: {info.amz_date} is still later than "
            f"{_fmt_epoch(now + MAX_SKEW_SECONDS)} ({_fmt_epoch(now)} + 15 min.)"
        )
    raise SigV4Error("RequestExpired", message)


def verify(
    info: SignedRequestInfo,
    secret_key: str,
    method: str,
    raw_path: str,
    query_string: str,
    headers: HeaderMap,
    body: bytes,
    *,
    now: datetime | None = None,
    s3: bool = False,
    clock_checked: bool = False,
    payload_follows: bool = False,
) -> bytes:
    """Check the request's signature, clock and body hash; return the derived signing key.

    ``s3`` selects S3 rules: path signed as sent, ``UNSIGNED-PAYLOAD`` for presigned URLs,
    S3 error codes.  When ``info.payload_hash`` starts with ``STREAMING-`` the body is not
    checked here: the caller must pass it through :func:`stratum.auth.chunked.decode_aws_chunked`
    with the returned key. ``clock_checked``: the caller has already applied :func:`check_clock`
    (the server's authenticator does, with its other credential checks). ``payload_follows``: the
    body has not been read (it is streamed), so a hex ``x-amz-content-sha256`` is not compared here
    but by :mod:`stratum.auth.payload` as the body is read; the request must then carry that header
    (the body's hash is part of what a request without it signs).
    """
    if not clock_checked:
        check_clock(info, _now_epoch(now), s3)

    payload_hash = info.payload_hash
    body_digest: str | None = None
    if info.presigned:
        if s3:
            # S3SigV4QueryAuth: a presigned URL cannot know its payload, unless the client added
            # the header (botocore's canonical_request prefers it when present).
            pass
        elif payload_hash == UNSIGNED_PAYLOAD and "x-amz-content-sha256" not in headers:
            # SigV4QueryAuth keeps the generic payload rule: the body's SHA-256.
            payload_hash = body_digest = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
    elif not payload_hash:
        if payload_follows:
            raise ValueError("a streamed body needs x-amz-content-sha256 to be verified")
        payload_hash = body_digest = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256

    signing_key = derive_signing_key(secret_key, info.date, info.region, info.service)
    scope = credential_scope(info)
    signed_headers_line = ";".join(info.signed_headers)
    canonical_headers = _canonical_headers(info.signed_headers, headers)
    method = method.upper()
    expected = info.signature.encode("ascii", "replace")

    uris = _canonical_uris(raw_path, s3)
    queries = _canonical_queries(query_string, info.presigned)
    first: tuple[str, str] | None = None
    matched = False
    # Almost always a single candidate pair; alternatives exist only for unusual encodings
    # and are tried only after the primary form failed.
    for uri in uris:
        for query in queries:
            canonical_request = (
                f"{method}\n{uri}\n{query}\n{canonical_headers}\n{signed_headers_line}\n{payload_hash}"
            )
            string_to_sign = (
                f"{ALGORITHM}\n{info.amz_date}\n{scope}\n"
                f"{hashlib.sha256(canonical_request.encode('utf-8')).hexdigest()}"
            )
            mac = _keyed_hmac(signing_key).copy()
            mac.update(string_to_sign.encode("utf-8"))
            signature = mac.hexdigest()
            if hmac.compare_digest(signature.encode("ascii"), expected):
                matched = True
                break
            if first is None:
                first = (canonical_request, string_to_sign)
        if matched:
            break
    if not matched:
        assert first is not None
        raise SigV4Error(
            "SignatureDoesNotMatch",
            _SIGNATURE_MISMATCH_MESSAGE,
            canonical_request=first[0],
            string_to_sign=first[1],
        )

    # Only now that the header is known authentic does a mismatch mean a corrupted/tampered body.
    if body_digest is None and payload_hash not in _SPECIAL_PAYLOAD_HASHES and not payload_follows:
        actual = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        if not hmac.compare_digest(actual.encode("ascii"), payload_hash.lower().encode("ascii", "replace")):
            raise SigV4Error(
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
    return signing_key
