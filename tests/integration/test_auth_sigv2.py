"""SigV2 query authentication (boto3's default S3 presigned URLs) against a running server."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from isolation_testing import error_code, http
from stratum_testing import REGION, StratumServer


def _presigner(server: StratumServer, style: str, **creds: Any) -> Any:
    if not creds:
        ak, sk = server.creds("dev")
        creds = {"aws_access_key_id": ak, "aws_secret_access_key": sk}
    # Virtual-hosted URLs name the bucket in the host ("<bucket>.localhost"), which the request
    # below sends to the server's address with that Host header.
    endpoint = server.endpoint_url if style == "path" else f"http://localhost:{server.port}"
    return boto3.session.Session(region_name=REGION, **creds).client(
        "s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": style}))


def _send(server: StratumServer, method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    parts = urlsplit(url)
    target = f"{server.endpoint_url}{parts.path}" + (f"?{parts.query}" if parts.query else "")
    return http(method, target, body, {"Host": parts.netloc})


@pytest.fixture(scope="module")
def bucket(server: StratumServer) -> str:
    name = f"sigv2-{uuid.uuid4().hex[:10]}"
    s3 = server.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="dir/a b+c.txt", Body=b"hello")
    return name


@pytest.mark.parametrize("style", ["path", "virtual"])
def test_bucket_level_presigned_urls(server: StratumServer, bucket: str, style: str) -> None:
    s3 = _presigner(server, style)
    assert "AWSAccessKeyId=" in s3.generate_presigned_url("list_objects", Params={"Bucket": bucket})  # SigV2
    listing = [("list_objects", {"Bucket": bucket}), ("list_objects", {"Bucket": bucket, "Prefix": "dir/"}),
               ("list_objects_v2", {"Bucket": bucket}), ("get_bucket_location", {"Bucket": bucket}),
               ("list_object_versions", {"Bucket": bucket}), ("get_bucket_versioning", {"Bucket": bucket})]
    for operation, params in listing:
        status, body = _send(server, "GET", s3.generate_presigned_url(operation, Params=params))
        assert status == 200, (operation, params, body[:300])
        if operation.startswith("list_objects"):
            assert b"<Key>dir/a%20b%2Bc.txt</Key>" in body or b"<Key>dir/a b+c.txt</Key>" in body
    assert _send(server, "HEAD", s3.generate_presigned_url("head_bucket", Params={"Bucket": bucket}))[0] == 200
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "dir/a b+c.txt"})
    assert _send(server, "GET", url) == (200, b"hello")
    key = f"up-{style}"
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key})
    assert _send(server, "PUT", url, b"uploaded")[0] == 200
    assert server.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read() == b"uploaded"


def test_bucket_level_presigned_urls_still_check_the_signature(server: StratumServer, bucket: str) -> None:
    ak, _ = server.creds("dev")
    forged = _presigner(server, "path", aws_access_key_id=ak, aws_secret_access_key="x" * 40)
    status, body = _send(server, "GET", forged.generate_presigned_url("list_objects", Params={"Bucket": bucket}))
    assert (status, error_code(body)) == (403, "SignatureDoesNotMatch")
    # Signed for one bucket, used for another: the bucket is part of what is signed.
    s3 = _presigner(server, "path")
    url = s3.generate_presigned_url("list_objects", Params={"Bucket": bucket})
    other = f"sigv2-{uuid.uuid4().hex[:10]}"
    server.client("s3").create_bucket(Bucket=other)
    status, body = _send(server, "GET", url.replace(f"/{bucket}?", f"/{other}?"))
    assert (status, error_code(body)) == (403, "SignatureDoesNotMatch")
    # A sub-resource is signed too: a ?location URL does not list the bucket.
    url = s3.generate_presigned_url("get_bucket_location", Params={"Bucket": bucket})
    status, body = _send(server, "GET", url.replace("?location&", "?"))
    assert (status, error_code(body)) == (403, "SignatureDoesNotMatch")


def test_expires_is_honoured(server: StratumServer, bucket: str) -> None:
    s3 = _presigner(server, "path")
    url = s3.generate_presigned_url("list_objects", Params={"Bucket": bucket}, ExpiresIn=1)
    assert _send(server, "GET", url)[0] == 200
    time.sleep(2.1)
    status, body = _send(server, "GET", url)
    assert (status, error_code(body)) == (403, "AccessDenied") and b"Request has expired" in body


def test_a_deactivated_key_and_a_session_token_on_a_user_key_are_refused(server: StratumServer,
                                                                          bucket: str) -> None:
    iam = server.client("iam")
    user = f"sigv2-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")
    key = iam.create_access_key(UserName=user)["AccessKey"]
    creds = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
    s3 = _presigner(server, "path", **creds)
    assert _send(server, "GET", s3.generate_presigned_url("list_objects", Params={"Bucket": bucket}))[0] == 200
    tokened = _presigner(server, "path", aws_session_token="not-a-session", **creds)
    status, body = _send(server, "GET", tokened.generate_presigned_url("list_objects", Params={"Bucket": bucket}))
    assert (status, error_code(body)) == (403, "InvalidAccessKeyId")
    iam.update_access_key(UserName=user, AccessKeyId=key["AccessKeyId"], Status="Inactive")
    status, body = _send(server, "GET", s3.generate_presigned_url("list_objects", Params={"Bucket": bucket}))
    assert (status, error_code(body)) == (403, "InvalidAccessKeyId")
