"""SigV4 verification against signatures produced by botocore itself and by AWS's published vectors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth, _host_from_url
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.utils import percent_encode

from stratum.auth.chunked import compute_checksum, crc32c, crc64nvme, decode_aws_chunked
from stratum.auth.sigv2 import is_query_v2, parse_query_v2, verify_query_v2
from stratum.auth.sigv4 import (
    EMPTY_SHA256,
    SignedRequestInfo,
    SigV4Error,
    credential_scope,
    derive_signing_key,
    parse_auth,
    peek_scope,
    verify,
)

AK = "AKIDEXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FQoGZXIvYXdzEXAMPLE//token+with/odd=chars"
ENDPOINT = "http://localhost:8080"


# --------------------------------------------------------------------------- helpers


@dataclass
class Wire:
    """A request as the server sees it: raw path/query, lower-case header names, body bytes."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


def _from_prepared(prepared: Any) -> Wire:
    parts = urlsplit(prepared.url)
    headers = {
        k.lower(): v.decode("latin-1") if isinstance(v, bytes) else str(v)
        for k, v in prepared.headers.items()
    }
    # botocore never sets Host itself: the HTTP client derives it from the URL, exactly as here.
    headers.setdefault("host", _host_from_url(prepared.url))
    body = prepared.body
    if body is None:
        body = b""
    elif hasattr(body, "read"):
        body = body.read()
    elif isinstance(body, str):
        body = body.encode("utf-8")
    return Wire(prepared.method, parts.path or "/", parts.query, headers, body)


def _from_url(method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Wire:
    parts = urlsplit(url)
    h = {"host": _host_from_url(url), **(headers or {})}
    return Wire(method, parts.path or "/", parts.query, h, body)


def _sign(
    auth: Any,
    method: str,
    url: str,
    *,
    data: bytes | str = b"",
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    context: dict[str, Any] | None = None,
) -> Wire:
    req = AWSRequest(method=method, url=url, data=data, headers=headers or {}, params=params or {})
    if context:
        req.context.update(context)
    auth.add_auth(req)
    return _from_prepared(req.prepare())


def _check(
    w: Wire, secret: str = SK, *, s3: bool = False, now: datetime | None = None
) -> tuple[SignedRequestInfo, bytes]:
    info = parse_auth(w.method, w.path, w.query, w.headers)
    assert info is not None
    key = verify(info, secret, w.method, w.path, w.query, w.headers, w.body, s3=s3, now=now)
    return info, key


def _error(w: Wire, secret: str = SK, *, s3: bool = False, now: datetime | None = None) -> SigV4Error:
    with pytest.raises(SigV4Error) as excinfo:
        _check(w, secret, s3=s3, now=now)
    return excinfo.value


def _creds(token: str | None = None) -> Credentials:
    return Credentials(AK, SK, token)


def _s3_url(bucket: str, key: str, query: str = "") -> str:
    # What botocore's rest serializer puts on the wire for a greedy {Key+} label.
    url = f"{ENDPOINT}/{bucket}/{percent_encode(key, safe='/~')}"
    return f"{url}?{query}" if query else url


class _Captured(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def _capture(request: Any, **_: Any) -> None:
    raise _Captured(request)


def _client(service: str, endpoint: str = ENDPOINT, token: str | None = None, **config: Any) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=AK, aws_secret_access_key=SK, aws_session_token=token, region_name="us-west-2"
    )
    client = session.client(service, endpoint_url=endpoint, config=Config(**config) if config else None)
    client.meta.events.register("before-send", _capture)
    return client


def _wire_of(call: Any, *args: Any, **kwargs: Any) -> Wire:
    with pytest.raises(_Captured) as excinfo:
        call(*args, **kwargs)
    return _from_prepared(excinfo.value.request)


# --------------------------------------------------------------------------- header auth, non-S3


def test_sigv4_json_post_sagemaker() -> None:
    body = b'{"ModelName": "my-model", "ExecutionRoleArn": "arn:aws:iam::123456789012:role/r"}'
    w = _sign(
        SigV4Auth(_creds(), "sagemaker", "us-east-1"),
        "POST",
        f"{ENDPOINT}/",
        data=body,
        headers={"X-Amz-Target": "SageMaker.CreateModel", "Content-Type": "application/x-amz-json-1.1"},
    )
    info, key = _check(w)
    assert (info.access_key, info.region, info.service) == (AK, "us-east-1", "sagemaker")
    assert "x-amz-target" in info.signed_headers and "host" in info.signed_headers
    assert info.date == info.amz_date[:8]
    assert info.payload_hash == "" and not info.presigned and info.security_token is None
    assert key == derive_signing_key(SK, info.date, "us-east-1", "sagemaker")
    assert credential_scope(info) == f"{info.date}/us-east-1/sagemaker/aws4_request"


def test_sigv4_query_protocol_post_with_session_token() -> None:
    w = _sign(
        SigV4Auth(_creds(TOKEN), "sts", "us-east-1"),
        "POST",
        f"{ENDPOINT}/",
        data="Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fr&RoleSessionName=s",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    info, _ = _check(w)
    assert info.security_token == TOKEN
    assert "x-amz-security-token" in info.signed_headers
    assert info.service == "sts"


@pytest.mark.parametrize(
    "path_and_query",
    [
        "/2015-03-31/functions/my%3Afunc/invocations?Qualifier=%24LATEST",
        "/a//b/./c/../d%20e/",
        "/restapis/abc/stages/prod%2Fv1",
        "/%E2%82%AC/caf%C3%A9?q=%C3%A9t%C3%A9&empty=&flag",
        "/tags/arn%3Aaws%3Asagemaker%3Aus-east-1%3A1%3Amodel%2Fm?tagKeys=a&tagKeys=b",
    ],
)
def test_sigv4_rest_paths_are_double_encoded_like_botocore(path_and_query: str) -> None:
    w = _sign(SigV4Auth(_creds(), "execute-api", "eu-west-1"), "GET", f"{ENDPOINT}{path_and_query}")
    info, _ = _check(w)
    assert info.service == "execute-api"


def test_form_encoded_plus_in_query_params() -> None:
    # AWSRequest.params are put on the wire with urlencode ('+' for space) but signed with %20.
    w = _sign(
        SigV4Auth(_creds(), "iam", "us-east-1"),
        "GET",
        f"{ENDPOINT}/",
        params={"Action": "ListUsers", "PathPrefix": "/a b+c/", "Marker": "x~y*z"},
    )
    assert "+" in w.query
    _check(w)


def test_date_header_instead_of_x_amz_date() -> None:
    # botocore signs with the Date header when the caller already set one.
    w = _sign(
        SigV4Auth(_creds(), "iam", "us-east-1"),
        "GET",
        f"{ENDPOINT}/?Action=ListUsers",
        headers={"Date": "Mon, 01 Jan 2001 00:00:00 GMT"},
    )
    assert "x-amz-date" not in w.headers and "date" in w.headers
    info, _ = _check(w)
    assert len(info.amz_date) == 16 and info.amz_date.endswith("Z")


def test_list_valued_headers_are_trimmed_then_joined() -> None:
    w = _sign(
        SigV4Auth(_creds(), "sagemaker", "us-east-1"),
        "POST",
        f"{ENDPOINT}/",
        data=b"{}",
        headers={"X-Amz-Target": "SageMaker.ListModels", "X-Custom": "a,b"},
    )
    w.headers["x-custom"] = [" a ", "b  "]  # type: ignore[assignment]
    _check(w)


def test_query_signed_verbatim_with_lowercase_escapes() -> None:
    # botocore signs a query already in the URL verbatim (no re-encoding): lower-case escapes
    # only verify through the verbatim fallback.
    w = _sign(SigV4Auth(_creds(), "execute-api", "us-east-1"), "GET", f"{ENDPOINT}/items?a=%2f&b=%c3%a9")
    _check(w)


def test_s3_path_unescaped_in_transit() -> None:
    # Signed over the escaped form, received with '!' unescaped by some HTTP stack.
    w = _sign(S3SigV4Auth(_creds(), "s3", "us-east-1"), "GET", f"{ENDPOINT}/bkt/a%21b")
    w.path = "/bkt/a!b"
    _check(w, s3=True)


# --------------------------------------------------------------------------- header auth, S3

S3_KEYS = [
    "a b/c+d=e.txt",
    "ünïcødé/файл €.txt",
    "tilde~under_score-dot.txt",
    "double//slash/../dots/./x",
    "trailing/",
    "percent%20literal&amp;?#hash",
    "*star!(paren)'quote",
]


@pytest.mark.parametrize("key", S3_KEYS)
def test_s3_header_auth_odd_keys(key: str) -> None:
    body = b"hello s3"
    w = _sign(S3SigV4Auth(_creds(), "s3", "us-east-1"), "PUT", _s3_url("bkt", key), data=body)
    info, _ = _check(w, s3=True)
    assert info.payload_hash == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(
    "query",
    ["uploads", "partNumber=1&uploadId=abc%2Bdef%3D%3D", "list-type=2&prefix=a%20b%2F&delimiter=%2F", "acl="],
)
def test_s3_header_auth_subresource_queries(query: str) -> None:
    w = _sign(S3SigV4Auth(_creds(TOKEN), "s3", "us-east-1"), "POST", _s3_url("bkt", "k y", query), data=b"")
    _check(w, s3=True)


def test_s3_unsigned_payload() -> None:
    w = _sign(
        S3SigV4Auth(_creds(), "s3", "us-east-1"),
        "PUT",
        "https://s3.example.com/bkt/key",
        data=b"streamed body",
        headers={"Content-MD5": base64.b64encode(hashlib.md5(b"streamed body").digest()).decode()},
        context={"has_streaming_input": True},
    )
    assert w.headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    info, _ = _check(w, s3=True)
    assert info.payload_hash == "UNSIGNED-PAYLOAD"


def test_s3_body_hash_mismatch() -> None:
    w = _sign(S3SigV4Auth(_creds(), "s3", "us-east-1"), "PUT", _s3_url("bkt", "k"), data=b"original")
    w.body = b"tampered"
    assert _error(w, s3=True).code == "XAmzContentSHA256Mismatch"


# --------------------------------------------------------------------------- presigned URLs


@pytest.mark.parametrize("method", ["GET", "PUT"])
@pytest.mark.parametrize("key", ["a b/c+d=e.txt", "ünï/x~y", "plain"])
def test_s3_presigned(method: str, key: str) -> None:
    auth = S3SigV4QueryAuth(_creds(TOKEN), "s3", "us-east-1", expires=120)
    w = _sign(auth, method, _s3_url("bkt", key, "versionId=v%2B1"), data=b"")
    w.body = b"any body, presigned payloads are unsigned" if method == "PUT" else b""
    info, _ = _check(w, s3=True)
    assert info.presigned and info.expires == 120 and info.security_token == TOKEN
    assert info.payload_hash == "UNSIGNED-PAYLOAD"

    later = datetime.now(UTC) + timedelta(seconds=125)
    err = _error(w, s3=True, now=later)
    assert (err.code, err.message) == ("AccessDenied", "Request has expired")


def test_non_s3_presigned_and_expiry() -> None:
    w = _sign(
        SigV4QueryAuth(_creds(), "sts", "us-east-1", expires=60),
        "GET",
        f"{ENDPOINT}/?Action=GetCallerIdentity&Version=2011-06-15",
    )
    info, _ = _check(w)
    assert info.presigned and info.service == "sts" and info.expires == 60
    assert _error(w, now=datetime.now(UTC) + timedelta(seconds=61)).code == "RequestExpired"
    # A presigned request may be used long after signing as long as it is within X-Amz-Expires.
    _check(w, now=datetime.now(UTC) + timedelta(seconds=59))


def test_presigned_query_parameter_errors() -> None:
    w = _sign(S3SigV4QueryAuth(_creds(), "s3", "us-east-1", expires=60), "GET", _s3_url("b", "k"))
    too_long = w.query.replace("X-Amz-Expires=60", "X-Amz-Expires=604801")
    not_number = w.query.replace("X-Amz-Expires=60", "X-Amz-Expires=soon")
    no_sig = "&".join(p for p in w.query.split("&") if not p.startswith("X-Amz-Signature="))
    bad_algo = w.query.replace("X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-HMAC-SHA1")
    for query in (too_long, not_number, no_sig, bad_algo):
        with pytest.raises(SigV4Error) as excinfo:
            parse_auth("GET", w.path, query, w.headers)
        assert excinfo.value.code == "AuthorizationQueryParametersError", query


# --------------------------------------------------------------------------- real boto3 clients


def test_boto3_sagemaker_sts_iam_clients() -> None:
    sm = _wire_of(
        _client("sagemaker", token=TOKEN).create_model,
        ModelName="m-1",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
        PrimaryContainer={"Image": "img:latest"},
        Tags=[{"Key": "k", "Value": "v w"}],
    )
    info, _ = _check(sm)
    assert info.service == "sagemaker" and info.security_token == TOKEN

    sts = _wire_of(_client("sts").get_caller_identity)
    assert _check(sts)[0].service == "sts"
    iam = _wire_of(_client("iam").list_users, PathPrefix="/team a/")
    assert _check(iam)[0].service == "iam"
    tags = _wire_of(
        _client("sagemaker").list_tags, ResourceArn="arn:aws:sagemaker:us-west-2:123456789012:model/m"
    )
    _check(tags)


@pytest.mark.parametrize("key", S3_KEYS)
def test_boto3_s3_put_object_http_header_checksum(key: str) -> None:
    w = _wire_of(
        _client("s3", s3={"addressing_style": "path"}).put_object, Bucket="bkt", Key=key, Body=b"data"
    )
    info, _ = _check(w, s3=True)
    assert info.payload_hash == hashlib.sha256(b"data").hexdigest()


def test_boto3_s3_put_object_https_aws_chunked_unsigned_trailer() -> None:
    payload = b"x" * 70_000
    client = _client("s3", endpoint="https://localhost:8443", s3={"addressing_style": "path"})
    w = _wire_of(client.put_object, Bucket="bkt", Key="big object.bin", Body=payload)
    assert w.headers["content-encoding"] == "aws-chunked"
    info, key = _check(w, s3=True)
    assert info.payload_hash == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    decoded, trailers = decode_aws_chunked(
        w.body,
        payload_hash=info.payload_hash,
        signing_key=key,
        seed_signature=info.signature,
        amz_date=info.amz_date,
        scope=credential_scope(info),
        decoded_length=int(w.headers["x-amz-decoded-content-length"]),
    )
    assert decoded == payload
    assert trailers == {"x-amz-checksum-crc32": compute_checksum("crc32", payload)}


def test_boto3_s3_list_objects_query_encoding() -> None:
    w = _wire_of(
        _client("s3").list_objects_v2, Bucket="bkt", Prefix="a b+c/é", Delimiter="/", StartAfter="x=y&z"
    )
    _check(w, s3=True)


@pytest.mark.parametrize("operation", ["get_object", "put_object"])
def test_boto3_s3_generate_presigned_url(operation: str) -> None:
    client = boto3.session.Session(
        aws_access_key_id=AK, aws_secret_access_key=SK, region_name="us-west-2"
    ).client("s3", endpoint_url=ENDPOINT, config=Config(signature_version="s3v4"))
    url = client.generate_presigned_url(
        operation, Params={"Bucket": "bkt", "Key": "dir/a b+c=d.txt"}, ExpiresIn=300
    )
    method = "GET" if operation == "get_object" else "PUT"
    info, _ = _check(_from_url(method, url, b"payload" if method == "PUT" else b""), s3=True)
    assert info.expires == 300 and info.region == "us-west-2"


@pytest.mark.parametrize("operation", ["get_object", "put_object"])
def test_boto3_s3_default_presign_is_sigv2_and_verifies(operation: str) -> None:
    client = boto3.session.Session(
        aws_access_key_id=AK, aws_secret_access_key=SK, region_name="us-west-2"
    ).client("s3", endpoint_url=ENDPOINT)
    url = client.generate_presigned_url(operation, Params={"Bucket": "b", "Key": "dir/a b+c.txt"})
    method = "GET" if operation == "get_object" else "PUT"
    w = _from_url(method, url)
    assert parse_auth(w.method, w.path, w.query, w.headers) is None  # not SigV4
    assert is_query_v2(w.query)
    info = parse_query_v2(w.query)
    assert info.access_key == AK
    verify_query_v2(info, SK, w.method, w.path, w.query, w.headers)
    with pytest.raises(SigV4Error) as excinfo:
        verify_query_v2(info, "wrong" + SK[5:], w.method, w.path, w.query, w.headers)
    assert excinfo.value.code == "SignatureDoesNotMatch"
    with pytest.raises(SigV4Error) as excinfo:
        verify_query_v2(info, SK, w.method, w.path.replace("a%20b", "zz"), w.query, w.headers)
    assert excinfo.value.code == "SignatureDoesNotMatch"
    with pytest.raises(SigV4Error) as excinfo:
        verify_query_v2(info, SK, w.method, w.path, w.query, w.headers, now=info.expires + 1)
    assert excinfo.value.code == "AccessDenied"


def test_boto3_sts_presigned_get() -> None:
    client = boto3.session.Session(
        aws_access_key_id=AK, aws_secret_access_key=SK, aws_session_token=TOKEN, region_name="us-west-2"
    ).client("sts", endpoint_url=ENDPOINT)
    url = client.generate_presigned_url("get_caller_identity", HttpMethod="GET", ExpiresIn=60)
    info, _ = _check(_from_url("GET", url))
    assert info.presigned and info.security_token == TOKEN


# --------------------------------------------------------------------------- negative cases


def _sagemaker_wire(token: str | None = None) -> Wire:
    return _sign(
        SigV4Auth(_creds(token), "sagemaker", "us-east-1"),
        "POST",
        f"{ENDPOINT}/?x=1",
        data=b'{"ModelName": "m"}',
        headers={"X-Amz-Target": "SageMaker.DescribeModel", "Content-Type": "application/x-amz-json-1.1"},
    )


def test_wrong_secret() -> None:
    err = _error(_sagemaker_wire(), secret="not-the-secret")
    assert err.code == "SignatureDoesNotMatch" and err.status == 403
    assert err.canonical_request is not None and err.canonical_request.startswith("POST\n/\nx=1\n")
    assert err.string_to_sign is not None and err.string_to_sign.startswith("AWS4-HMAC-SHA256\n")


def test_tampering_is_detected() -> None:
    w = _sagemaker_wire()
    cases = [
        replace(w, body=b'{"ModelName": "n"}'),
        replace(w, headers={**w.headers, "x-amz-target": "SageMaker.DeleteModel"}),
        replace(w, query="x=2"),
        replace(w, query="x=1&y=2"),
        replace(w, path="/other"),
        replace(w, method="PUT"),
        replace(w, headers={k: v for k, v in w.headers.items() if k != "content-type"}),
    ]
    for case in cases:
        assert _error(case).code == "SignatureDoesNotMatch", case
    # Unsigned headers may change freely (proxies add them).
    _check(replace(w, headers={**w.headers, "user-agent": "other", "x-forwarded-for": "1.2.3.4"}))


def test_tampered_session_token() -> None:
    w = _sagemaker_wire(TOKEN)
    w.headers["x-amz-security-token"] = TOKEN + "x"
    assert _error(w).code == "SignatureDoesNotMatch"


def test_clock_skew() -> None:
    w = _sagemaker_wire()
    now = datetime.now(UTC)
    assert _error(w, now=now + timedelta(minutes=16)).code == "RequestExpired"
    assert _error(w, now=now - timedelta(minutes=16)).code == "RequestExpired"
    _check(w, now=now + timedelta(minutes=14))
    _check(w, now=(now - timedelta(minutes=14)).replace(tzinfo=None))  # naive = UTC

    s3w = _sign(S3SigV4Auth(_creds(), "s3", "us-east-1"), "GET", _s3_url("b", "k"))
    assert _error(s3w, s3=True, now=now + timedelta(minutes=16)).code == "RequestTimeTooSkewed"


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256 Credential=AK/20200101/us-east-1/s3/aws4_request",
        "AWS4-HMAC-SHA256 Credential=AK/20200101/us-east-1/s3/aws4_request, SignedHeaders=host",
        "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=abc",
        "AWS4-HMAC-SHA256 Credential=AK/20200101/us-east-1/s3/aws5_request, SignedHeaders=host, Signature=ab",
        "AWS4-HMAC-SHA256 Credential=AK/2020-01-01/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab",
        "AWS4-HMAC-SHA256 Credential=AK/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab",
        "AWS4-HMAC-SHA256 Credential=AK/20200102/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab",
        "AWS4-HMAC-SHA256 garbage",
        "AWS AKIDEXAMPLE:c2lnbmF0dXJl",
        "AWS4-ECDSA-P256-SHA256 Credential=AK/20200101/s3/aws4_request, SignedHeaders=host, Signature=ab",
        "Bearer xyz",
    ],
)
def test_malformed_authorization(authorization: str) -> None:
    headers = {"authorization": authorization, "host": "h", "x-amz-date": "20200101T000000Z"}
    with pytest.raises(SigV4Error) as excinfo:
        parse_auth("GET", "/", "", headers)
    assert excinfo.value.code == "IncompleteSignature"
    assert excinfo.value.status == 400


def test_missing_date_and_bad_date() -> None:
    auth = (
        "AWS4-HMAC-SHA256 Credential=AK/20200101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab"
    )
    for headers in ({"authorization": auth}, {"authorization": auth, "x-amz-date": "20200101T250000Z"}):
        with pytest.raises(SigV4Error) as excinfo:
            parse_auth("GET", "/", "", headers)
        assert excinfo.value.code == "IncompleteSignature"


@pytest.mark.parametrize("spacing", [", ", ",", " , ", ",  "])
def test_authorization_header_spacing_and_order_do_not_change_the_parse(spacing: str) -> None:
    """The SDK form (", " between parameters) is read by a fast path; any other spacing or order
    takes the general parser: both must give the same result and accept the same signature."""
    w = _sagemaker_wire()
    sdk = w.headers["authorization"]
    algorithm, _, rest = sdk.partition(" ")
    parts = rest.split(", ")
    variants = [f"{algorithm} {spacing.join(parts)}", f"{algorithm} {spacing.join(reversed(parts))}",
                f"  {sdk}  "]
    expected = parse_auth(w.method, w.path, w.query, w.headers)
    for value in variants:
        got = parse_auth(w.method, w.path, w.query, {**w.headers, "authorization": value})
        assert got == expected
        assert got is not None
        verify(got, SK, w.method, w.path, w.query, w.headers, w.body)


def test_sdk_form_without_a_date_header_gets_the_general_message() -> None:
    auth = "AWS4-HMAC-SHA256 Credential=AK/20200101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=ab"
    with pytest.raises(SigV4Error) as excinfo:
        parse_auth("GET", "/", "", {"authorization": auth})
    assert excinfo.value.message == ("Authorization header requires existence of either a 'X-Amz-Date' or a "
                                     f"'Date' header. Authorization={auth}")


def test_sigv2_message_is_clear() -> None:
    with pytest.raises(SigV4Error) as excinfo:
        parse_auth("GET", "/", "", {"authorization": "AWS AKIDEXAMPLE:c2ln"})
    assert "Signature Version 2" in excinfo.value.message


def test_no_auth_returns_none() -> None:
    assert parse_auth("GET", "/", "", {"host": "h"}) is None
    assert parse_auth("GET", "/", "Action=ListUsers&X-Amz-Date=x", {"host": "h"}) is None


def test_both_auth_mechanisms_rejected() -> None:
    w = _sign(S3SigV4QueryAuth(_creds(), "s3", "us-east-1"), "GET", _s3_url("b", "k"))
    with pytest.raises(SigV4Error):
        parse_auth("GET", w.path, w.query, {**w.headers, "authorization": "AWS4-HMAC-SHA256 x=y"})


def test_peek_scope() -> None:
    w = _sagemaker_wire()
    assert peek_scope(w.query, w.headers) == (AK, "us-east-1", "sagemaker")
    p = _sign(S3SigV4QueryAuth(_creds(), "s3", "eu-west-3"), "GET", _s3_url("b", "k"))
    assert peek_scope(p.query, p.headers) == (AK, "eu-west-3", "s3")
    assert peek_scope("", {"authorization": "garbage"}) is None
    assert peek_scope("", {}) is None


# --------------------------------------------------------------------------- aws-chunked
#
# A reference encoder written from the AWS documentation ("Signature Calculations for the
# Authorization Header: Transferring Payload in Multiple Chunks" and "... Including Trailing
# Headers"), independent of the module under test; it is itself checked against the published
# example signatures below.


def _ref_hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _ref_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _ref_hmac(("AWS4" + secret).encode(), date)
    for part in (region, service, "aws4_request"):
        key = _ref_hmac(key, part)
    return key


def _ref_encode_signed(
    payload: bytes,
    sizes: list[int],
    key: bytes,
    seed: str,
    amz_date: str,
    scope: str,
    trailers: dict[str, str] | None = None,
) -> tuple[bytes, list[str]]:
    chunks, offset = [], 0
    for size in sizes:
        chunks.append(payload[offset : offset + size])
        offset += size
    assert offset == len(payload)
    chunks.append(b"")
    out, signatures, previous = b"", [], seed
    for chunk in chunks:
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                amz_date,
                scope,
                previous,
                hashlib.sha256(b"").hexdigest(),
                hashlib.sha256(chunk).hexdigest(),
            ]
        )
        previous = _ref_hmac(key, string_to_sign).hex()
        signatures.append(previous)
        out += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk
        if chunk:
            out += b"\r\n"
    if trailers is None:
        return out + b"\r\n", signatures
    canonical = "".join(f"{n}:{v}\n" for n, v in sorted(trailers.items()))
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256-TRAILER",
            amz_date,
            scope,
            previous,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    trailer_signature = _ref_hmac(key, string_to_sign).hex()
    signatures.append(trailer_signature)
    for name, value in trailers.items():
        out += f"{name}:{value}\r\n".encode()
    out += f"x-amz-trailer-signature:{trailer_signature}\r\n\r\n".encode()
    return out, signatures


def _ref_encode_unsigned(payload: bytes, sizes: list[int], trailers: dict[str, str]) -> bytes:
    out, offset = b"", 0
    for size in sizes:
        out += f"{size:x}\r\n".encode() + payload[offset : offset + size] + b"\r\n"
        offset += size
    out += b"0\r\n" + "".join(f"{n}:{v}\r\n" for n, v in trailers.items()).encode() + b"\r\n"
    return out


DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_DATE = "20130524T000000Z"
DOC_SCOPE = "20130524/us-east-1/s3/aws4_request"
DOC_NOW = datetime(2013, 5, 24, 0, 5, tzinfo=UTC)
DOC_PAYLOAD = b"a" * 66560


def _doc_request(payload_hash: str, signed_headers: str, seed: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        "host": "s3.amazonaws.com",
        "x-amz-date": DOC_DATE,
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "66560",
        "x-amz-content-sha256": payload_hash,
        "authorization": (
            f"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/{DOC_SCOPE},"
            f"SignedHeaders={signed_headers},Signature={seed}"
        ),
        **extra,
    }


def test_aws_doc_example_signed_chunks() -> None:
    seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    headers = _doc_request(
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        "x-amz-decoded-content-length;x-amz-storage-class",
        seed,
        {"content-length": "66824"},
    )
    ref_key = _ref_signing_key(DOC_SECRET, "20130524", "us-east-1", "s3")
    body, sigs = _ref_encode_signed(DOC_PAYLOAD, [65536, 1024], ref_key, seed, DOC_DATE, DOC_SCOPE)
    assert sigs == [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ]
    assert len(body) == 66824

    path = "/examplebucket/chunkObject.txt"
    info = parse_auth("PUT", path, "", headers)
    assert info is not None
    key = verify(info, DOC_SECRET, "PUT", path, "", headers, body, now=DOC_NOW, s3=True)
    assert key == ref_key
    decoded, trailers = decode_aws_chunked(
        body,
        payload_hash=info.payload_hash,
        signing_key=key,
        seed_signature=info.signature,
        amz_date=info.amz_date,
        scope=credential_scope(info),
        decoded_length=66560,
    )
    assert decoded == DOC_PAYLOAD and trailers == {}

    def decode(data: bytes, **overrides: Any) -> Any:
        kwargs: dict[str, Any] = {
            "payload_hash": info.payload_hash,
            "signing_key": key,
            "seed_signature": seed,
            "amz_date": DOC_DATE,
            "scope": DOC_SCOPE,
            **overrides,
        }
        return decode_aws_chunked(data, **kwargs)

    flipped = bytearray(body)
    flipped[66000] ^= 1  # inside the second chunk's data
    with pytest.raises(SigV4Error) as excinfo:
        decode(bytes(flipped))
    assert excinfo.value.code == "SignatureDoesNotMatch"
    with pytest.raises(SigV4Error) as excinfo:
        decode(body, seed_signature="0" * 64)
    assert excinfo.value.code == "SignatureDoesNotMatch"
    with pytest.raises(SigV4Error) as excinfo:
        decode(body[:-90])  # final chunk lost
    assert excinfo.value.code == "IncompleteBody"
    with pytest.raises(SigV4Error) as excinfo:
        decode(body, decoded_length=66561)
    assert excinfo.value.code == "IncompleteBody"


def test_aws_doc_example_signed_chunks_with_trailer() -> None:
    seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
    headers = _doc_request(
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
        "x-amz-storage-class;x-amz-trailer",
        seed,
        {"x-amz-trailer": "x-amz-checksum-crc32c"},
    )
    ref_key = _ref_signing_key(DOC_SECRET, "20130524", "us-east-1", "s3")
    trailers = {"x-amz-checksum-crc32c": "sOO8/Q=="}
    body, sigs = _ref_encode_signed(DOC_PAYLOAD, [65536, 1024], ref_key, seed, DOC_DATE, DOC_SCOPE, trailers)
    assert sigs == [
        "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
        "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
        "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
        "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435",
    ]
    path = "/examplebucket/chunkObject.txt"
    info = parse_auth("PUT", path, "", headers)
    assert info is not None
    key = verify(info, DOC_SECRET, "PUT", path, "", headers, body, now=DOC_NOW, s3=True)
    decoded, got = decode_aws_chunked(
        body,
        payload_hash=info.payload_hash,
        signing_key=key,
        seed_signature=seed,
        amz_date=DOC_DATE,
        scope=DOC_SCOPE,
        decoded_length=66560,
    )
    assert decoded == DOC_PAYLOAD and got == trailers

    # A tampered trailer value breaks the trailer signature before the checksum is even compared.
    forged = body.replace(b"sOO8/Q==", b"AAAAAA==")
    with pytest.raises(SigV4Error) as excinfo:
        decode_aws_chunked(
            forged,
            payload_hash=info.payload_hash,
            signing_key=key,
            seed_signature=seed,
            amz_date=DOC_DATE,
            scope=DOC_SCOPE,
        )
    assert excinfo.value.code == "SignatureDoesNotMatch"

    # Some SDKs put an extra CRLF after the 0-size chunk and omit the final one.
    variant = body.replace(b"f992\r\nx-amz", b"f992\r\n\r\nx-amz")[:-2]
    assert variant != body
    decoded, got = decode_aws_chunked(
        variant,
        payload_hash=info.payload_hash,
        signing_key=key,
        seed_signature=seed,
        amz_date=DOC_DATE,
        scope=DOC_SCOPE,
    )
    assert decoded == DOC_PAYLOAD and got == trailers


def test_signed_trailer_with_wrong_checksum_is_bad_digest() -> None:
    key = _ref_signing_key(SK, "20240101", "us-east-1", "s3")
    seed = "1" * 64
    payload = bytes(range(256)) * 100
    trailers = {"x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(b"other").digest()).decode()}
    body, _ = _ref_encode_signed(payload, [8192, 8192, 9216], key, seed, "20240101T000000Z", "s", trailers)
    with pytest.raises(SigV4Error) as excinfo:
        decode_aws_chunked(
            body,
            payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
            signing_key=key,
            seed_signature=seed,
            amz_date="20240101T000000Z",
            scope="s",
        )
    assert excinfo.value.code == "BadDigest"


@pytest.mark.parametrize("algorithm", ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"])
def test_unsigned_trailer(algorithm: str) -> None:
    payload = b"The quick brown fox jumps over the lazy dog" * 500
    checksum = compute_checksum(algorithm, payload)
    assert checksum is not None
    body = _ref_encode_unsigned(
        payload, [8192, 8192, len(payload) - 16384], {f"x-amz-checksum-{algorithm}": checksum}
    )
    decoded, trailers = decode_aws_chunked(
        body,
        payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        signing_key=None,
        seed_signature="",
        amz_date="",
        scope="",
        decoded_length=len(payload),
    )
    assert decoded == payload and trailers == {f"x-amz-checksum-{algorithm}": checksum}

    bad = _ref_encode_unsigned(
        payload, [len(payload)], {f"x-amz-checksum-{algorithm}": compute_checksum(algorithm, b"x") or ""}
    )
    with pytest.raises(SigV4Error) as excinfo:
        decode_aws_chunked(
            bad,
            payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            signing_key=None,
            seed_signature="",
            amz_date="",
            scope="",
        )
    assert excinfo.value.code == "BadDigest"


def test_unsigned_trailer_crc32_and_framing_errors() -> None:
    payload = b"hello world"
    crc = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode()
    # Byte-for-byte what botocore's AwsChunkedWrapper produced for this payload.
    body = b"b\r\nhello world\r\n0\r\nx-amz-checksum-crc32:" + crc.encode() + b"\r\n\r\n"
    kwargs: dict[str, Any] = {
        "payload_hash": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "signing_key": None,
        "seed_signature": "",
        "amz_date": "",
        "scope": "",
    }
    assert decode_aws_chunked(body, **kwargs) == (payload, {"x-amz-checksum-crc32": crc})
    for broken in (
        body[:5],  # truncated inside the first chunk
        b"zz\r\nhello world\r\n0\r\n\r\n",  # non-hex size
        b"b\r\nhello worldXX0\r\n\r\n",  # missing CRLF after the data
        b"b\r\nhello world\r\n",  # no final chunk
        b"b\r\nhello world\r\n0\r\nnot a header\r\n\r\n",
    ):
        with pytest.raises(SigV4Error) as excinfo:
            decode_aws_chunked(broken, **kwargs)
        assert excinfo.value.code == "IncompleteBody", broken


def test_signed_chunks_roundtrip_reference_encoder() -> None:
    key = _ref_signing_key(SK, "20240229", "eu-central-1", "s3")
    seed = hashlib.sha256(b"seed").hexdigest()
    payload = hashlib.sha256(b"x").digest() * 3000  # 96000 bytes
    body, _ = _ref_encode_signed(payload, [8192] * 11 + [5888], key, seed, "20240229T120000Z", "scope")
    decoded, trailers = decode_aws_chunked(
        body,
        payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        signing_key=derive_signing_key(SK, "20240229", "eu-central-1", "s3"),
        seed_signature=seed,
        amz_date="20240229T120000Z",
        scope="scope",
        decoded_length=len(payload),
    )
    assert decoded == payload and trailers == {}


def test_checksum_reference_values() -> None:
    # Standard "check" values of the CRC catalogue for b"123456789".
    assert crc32c(b"123456789") == 0xE3069283
    assert crc64nvme(b"123456789") == 0xAE8B14860A799888
    assert crc32c(b"56789", crc32c(b"1234")) == 0xE3069283
    assert (
        compute_checksum("crc32", b"hello world")
        == base64.b64encode(zlib.crc32(b"hello world").to_bytes(4, "big")).decode()
    )
    assert compute_checksum("xxhash64", b"") is None
    assert EMPTY_SHA256 == hashlib.sha256(b"").hexdigest()
