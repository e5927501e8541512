"""SigV2 query authentication against URLs boto3 presigns (its default for S3)."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config

from stratum.auth.sigv2 import check_expires, parse_query_v2, verify_query_v2
from stratum.auth.sigv4 import SigV4Error
from stratum.services.s3.provider import virtual_host_bucket

AK, SK = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@functools.cache
def _client(style: str, token: str | None = None) -> Any:
    endpoint = "http://127.0.0.1:4747" if style == "path" else "http://localhost:4747"
    return _SESSION.client("s3", endpoint_url=endpoint, aws_access_key_id=AK, aws_secret_access_key=SK,
                           aws_session_token=token, config=Config(s3={"addressing_style": style}))


_SESSION = boto3.session.Session(region_name="us-east-1")


def _verify(method: str, url: str, secret: str = SK) -> None:
    """What the server does: the path-style path (bucket from the Host for virtual hosts)."""
    parts = urlsplit(url)
    bucket = virtual_host_bucket(parts.netloc)
    path = f"/{bucket}{parts.path}" if bucket else parts.path
    info = parse_query_v2(parts.query)
    verify_query_v2(info, secret, method, path, parts.query, {})


BUCKET_LEVEL = [("list_objects", {}), ("list_objects", {"Prefix": "a b/", "Delimiter": "/"}),
                ("list_objects_v2", {}), ("get_bucket_location", {}), ("get_bucket_versioning", {}),
                ("get_bucket_policy", {}), ("list_multipart_uploads", {}), ("list_object_versions", {})]


@pytest.mark.parametrize("style", ["path", "virtual"])
@pytest.mark.parametrize(("operation", "extra"), BUCKET_LEVEL)
def test_bucket_level_urls_verify(style: str, operation: str, extra: dict[str, str]) -> None:
    url = _client(style).generate_presigned_url(operation, Params={"Bucket": "bkt", **extra})
    assert "AWSAccessKeyId=" in url
    _verify("GET", url)
    with pytest.raises(SigV4Error) as exc:
        _verify("GET", url, secret="x" * 40)
    assert exc.value.code == "SignatureDoesNotMatch"


@pytest.mark.parametrize("style", ["path", "virtual"])
def test_object_and_root_urls_verify(style: str) -> None:
    s3 = _client(style)
    _verify("HEAD", s3.generate_presigned_url("head_bucket", Params={"Bucket": "bkt"}))
    _verify("GET", s3.generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": "dir/a b+c.txt",
                                                                   "VersionId": "v/1"}))
    _verify("DELETE", s3.generate_presigned_url("delete_object", Params={"Bucket": "bkt", "Key": "k"}))
    _verify("GET", s3.generate_presigned_url("list_buckets"))


def test_the_bucket_and_sub_resources_are_signed() -> None:
    url = _client("path").generate_presigned_url("get_bucket_location", Params={"Bucket": "bkt"})
    for forged in (url.replace("/bkt?", "/other?"), url.replace("?location&", "?")):
        with pytest.raises(SigV4Error) as exc:
            _verify("GET", forged)
        assert exc.value.code == "SignatureDoesNotMatch"


def test_session_token_is_part_of_the_signature() -> None:
    url = _client("path", "TOKEN").generate_presigned_url("list_objects", Params={"Bucket": "b"})
    assert parse_query_v2(urlsplit(url).query).security_token == "TOKEN"
    _verify("GET", url)
    with pytest.raises(SigV4Error):
        _verify("GET", url.replace("x-amz-security-token=TOKEN", "x-amz-security-token=OTHER"))


def test_expires() -> None:
    url = _client("path").generate_presigned_url("list_objects", Params={"Bucket": "b"}, ExpiresIn=60)
    info = parse_query_v2(urlsplit(url).query)
    check_expires(info, info.expires)
    with pytest.raises(SigV4Error) as exc:
        check_expires(info, info.expires + 1)
    assert (exc.value.code, exc.value.message) == ("AccessDenied", "Request has expired")
