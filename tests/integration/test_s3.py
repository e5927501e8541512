"""S3 against a running server with boto3 (and raw HTTP where clients would hide the wire)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import urllib.error
import urllib.request
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError
from stratum_testing import StratumServer

MB = 1024 * 1024


def _name(prefix: str = "b") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, dict[str, Any]]:
    resp = exc.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"], resp["Error"]


@pytest.fixture
def s3(server: StratumServer) -> Any:
    return server.client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = _name()
    s3.create_bucket(Bucket=name)
    return name


def _anonymous(server: StratumServer) -> Any:
    from botocore import UNSIGNED

    return boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1",
                        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))


# ------------------------------------------------------------------------------------------- buckets
def test_bucket_lifecycle(server: StratumServer, s3: Any) -> None:
    name = _name()
    resp = s3.create_bucket(Bucket=name)
    assert resp["Location"] == f"/{name}"
    assert s3.head_bucket(Bucket=name)["BucketRegion"] == "us-east-1"
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] is None  # us-east-1 is empty
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.list_buckets()["Owner"]["ID"]

    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert _error(exc)[:2] == ("BucketAlreadyOwnedByYou", 409)
    other = server.client("s3", "test")
    with pytest.raises(ClientError) as exc:
        other.create_bucket(Bucket=name)
    code, status, err = _error(exc)
    assert (code, status, err["BucketName"]) == ("BucketAlreadyExists", 409, name)
    # ListBuckets shows only the caller's account's buckets.
    assert name not in [b["Name"] for b in other.list_buckets()["Buckets"]]

    s3.put_object(Bucket=name, Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert _error(exc)[:2] == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket=name, Key="k")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert _error(exc)[1] == 404
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=name)
    code, status, err = _error(exc)
    assert (code, status, err["BucketName"]) == ("NoSuchBucket", 404, name)


@pytest.mark.parametrize("bad", ["ab", "Upper-case", "a..b", "-start", "end-", "192.168.1.1", "xn--punycode",
                                 "a" * 64, "under_score"])
def test_invalid_bucket_names(s3: Any, bad: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=bad)
    code, status, err = _error(exc)
    assert (code, status, err["BucketName"]) == ("InvalidBucketName", 400, bad)


def test_location_constraint(server: StratumServer) -> None:
    ak, sk = server.creds("dev")
    east = server.client("s3")
    with pytest.raises(ClientError) as exc:
        east.create_bucket(Bucket=_name(), CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert _error(exc)[0] == "IllegalLocationConstraintException"
    west = boto3.client("s3", endpoint_url=server.endpoint_url, region_name="eu-west-1", aws_access_key_id=ak,
                        aws_secret_access_key=sk, config=Config(s3={"addressing_style": "path"}))
    name = _name()
    west.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert west.get_bucket_location(Bucket=name)["LocationConstraint"] == "eu-west-1"
    assert west.head_bucket(Bucket=name)["BucketRegion"] == "eu-west-1"
    with pytest.raises(ClientError) as exc:
        west.create_bucket(Bucket=_name())  # no constraint outside us-east-1
    assert _error(exc)[0] == "IllegalLocationConstraintException"
    west.delete_bucket(Bucket=name)


# ------------------------------------------------------------------------------------------- objects
def test_put_get_head_metadata_and_checksums(s3: Any, bucket: str) -> None:
    body = b"hello, stratum\n" * 100
    put = s3.put_object(Bucket=bucket, Key="dir/obj.txt", Body=body, ContentType="text/plain",
                        ContentEncoding="identity", ContentDisposition="attachment; filename=obj.txt",
                        CacheControl="max-age=60", ContentLanguage="en", Metadata={"Owner": "team-a", "n": "1"})
    md5 = hashlib.md5(body).hexdigest()
    assert put["ETag"] == f'"{md5}"'
    # boto3 sends a CRC32 by default; S3 echoes it.
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert put["ChecksumCRC32"] == crc

    got = s3.get_object(Bucket=bucket, Key="dir/obj.txt")
    assert got["Body"].read() == body
    assert got["ETag"] == f'"{md5}"'
    assert got["ContentLength"] == len(body)
    assert got["ContentType"] == "text/plain"
    assert got["ContentEncoding"] == "identity"
    assert got["ContentDisposition"] == "attachment; filename=obj.txt"
    assert got["CacheControl"] == "max-age=60"
    assert got["ContentLanguage"] == "en"
    assert got["Metadata"] == {"owner": "team-a", "n": "1"}
    assert abs(got["LastModified"] - datetime.now(UTC)) < timedelta(minutes=1)
    assert got["AcceptRanges"] == "bytes"

    head = s3.head_object(Bucket=bucket, Key="dir/obj.txt", ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(body)
    assert head["ChecksumCRC32"] == crc
    assert head["Metadata"]["owner"] == "team-a"

    # A checksum that does not match the body is refused.
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"abc", ChecksumSHA256=base64.b64encode(b"\0" * 32).decode())
    assert _error(exc)[0] == "BadDigest"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"abc", ContentMD5=base64.b64encode(b"\0" * 16).decode())
    assert _error(exc)[0] == "BadDigest"
    sha = base64.b64encode(hashlib.sha256(b"abc").digest()).decode()
    s3.put_object(Bucket=bucket, Key="sha", Body=b"abc", ChecksumSHA256=sha)
    assert s3.get_object(Bucket=bucket, Key="sha", ChecksumMode="ENABLED")["ChecksumSHA256"] == sha

    # Default content type and empty objects.
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    empty = s3.get_object(Bucket=bucket, Key="empty")
    assert empty["Body"].read() == b""
    assert empty["ContentLength"] == 0
    assert empty["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'


def test_overwrite_and_large_streamed_body(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"first")
    big = bytes(range(256)) * (3 * MB // 256)  # above the in-memory response threshold
    s3.put_object(Bucket=bucket, Key="k", Body=big)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == big


def test_ranges(s3: Any, bucket: str) -> None:
    body = bytes(range(100))
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    for header, expected, content_range in [
        ("bytes=10-19", body[10:20], "bytes 10-19/100"),
        ("bytes=90-", body[90:], "bytes 90-99/100"),
        ("bytes=-5", body[95:], "bytes 95-99/100"),
        ("bytes=95-500", body[95:], "bytes 95-99/100"),
    ]:
        got = s3.get_object(Bucket=bucket, Key="r", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["ContentRange"] == content_range
        assert got["ContentLength"] == len(expected)
        assert got["Body"].read() == expected
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=100-")
    code, status, err = _error(exc)
    assert (code, status) == ("InvalidRange", 416)
    assert err["ActualObjectSize"] == "100"
    # Unparseable ranges are ignored, as S3 does.
    assert s3.get_object(Bucket=bucket, Key="r", Range="items=1-2")["Body"].read() == body


def test_conditional_get(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"data")["ETag"]
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"data"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0000"')
    assert _error(exc)[:2] == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert _error(exc)[1] == 304
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="c", Body=b"again", IfNoneMatch="*")
    assert _error(exc)[:2] == ("PreconditionFailed", 412)


def test_missing_keys_and_buckets(server: StratumServer, s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="nope/missing.txt")
    code, status, err = _error(exc)
    assert (code, status, err["Key"]) == ("NoSuchKey", 404, "nope/missing.txt")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="nope")
    assert _error(exc)[1] == 404
    missing = _name("missing")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=missing, Key="k")
    code, status, err = _error(exc)
    assert (code, status, err["BucketName"]) == ("NoSuchBucket", 404, missing)
    # Deleting a key that does not exist succeeds (204).
    assert s3.delete_object(Bucket=bucket, Key="never")["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_delete_objects(s3: Any, bucket: str) -> None:
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"d/{i}", Body=b"x")
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d/0"}, {"Key": "d/1"}, {"Key": "zz"}]})
    assert sorted(d["Key"] for d in resp["Deleted"]) == ["d/0", "d/1", "zz"]
    assert "Errors" not in resp
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d/2"}], "Quiet": True})
    assert "Deleted" not in quiet
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["d/3", "d/4"]


def test_copy_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src key+1", Body=b"copy me", ContentType="text/csv", Metadata={"a": "1"})
    other = _name()
    s3.create_bucket(Bucket=other)
    resp = s3.copy_object(Bucket=other, Key="dst", CopySource={"Bucket": bucket, "Key": "src key+1"})
    assert resp["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(b"copy me").hexdigest()}"'
    got = s3.get_object(Bucket=other, Key="dst")
    assert (got["Body"].read(), got["ContentType"], got["Metadata"]) == (b"copy me", "text/csv", {"a": "1"})

    s3.copy_object(Bucket=bucket, Key="replaced", CopySource=f"{bucket}/src key+1", MetadataDirective="REPLACE",
                   ContentType="application/json", Metadata={"b": "2"})
    got = s3.head_object(Bucket=bucket, Key="replaced")
    assert (got["ContentType"], got["Metadata"]) == ("application/json", {"b": "2"})

    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="src key+1", CopySource={"Bucket": bucket, "Key": "src key+1"})
    assert _error(exc)[0] == "InvalidRequest"
    # Changing metadata in place is allowed.
    s3.copy_object(Bucket=bucket, Key="src key+1", CopySource={"Bucket": bucket, "Key": "src key+1"},
                   MetadataDirective="REPLACE", Metadata={"c": "3"})
    assert s3.head_object(Bucket=bucket, Key="src key+1")["Metadata"] == {"c": "3"}
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "absent"})
    assert _error(exc)[0] == "NoSuchKey"


# ------------------------------------------------------------------------------------------- listing
def test_list_objects_v2(s3: Any, bucket: str) -> None:
    keys = ["a.txt", "photos/2024/jan.jpg", "photos/2024/feb.jpg", "photos/2025/mar.jpg", "photos/top.jpg",
            "space key.txt", "plus+key", "unicodé/ü.txt", "z/"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    full = s3.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in full["Contents"]] == sorted(keys, key=lambda k: k.encode())
    assert full["KeyCount"] == len(keys) and not full["IsTruncated"]
    first = full["Contents"][0]
    assert first["Size"] == len(first["Key"].encode()) and first["StorageClass"] == "STANDARD"
    assert first["ETag"] == f'"{hashlib.md5(first["Key"].encode()).hexdigest()}"'

    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["photos/", "unicodé/", "z/"]
    assert [o["Key"] for o in top["Contents"]] == ["a.txt", "plus+key", "space key.txt"]
    nested = s3.list_objects_v2(Bucket=bucket, Prefix="photos/", Delimiter="/")
    assert [p["Prefix"] for p in nested["CommonPrefixes"]] == ["photos/2024/", "photos/2025/"]
    assert [o["Key"] for o in nested["Contents"]] == ["photos/top.jpg"]
    assert nested["Prefix"] == "photos/"

    # Pagination with MaxKeys / ContinuationToken walks keys and common prefixes alike.
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        kw: dict[str, Any] = {"Bucket": bucket, "Delimiter": "/", "MaxKeys": 2}
        if token:
            kw["ContinuationToken"] = token
        page = s3.list_objects_v2(**kw)
        pages += 1
        assert page["KeyCount"] <= 2
        seen += [o["Key"] for o in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert sorted(seen) == sorted(["a.txt", "plus+key", "space key.txt", "photos/", "unicodé/", "z/"])
    assert pages == 3

    paginated = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 3}) for o in p.get("Contents", [])]
    assert paginated == [o["Key"] for o in full["Contents"]]
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="photos/2025/mar.jpg")
    assert [o["Key"] for o in after["Contents"]][0] == "photos/top.jpg"
    assert s3.list_objects_v2(Bucket=bucket, MaxKeys=0)["KeyCount"] == 0
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=bucket, ContinuationToken="garbage!")
    assert _error(exc)[0] == "InvalidArgument"


def test_list_objects_v1(s3: Any, bucket: str) -> None:
    for k in ["a", "b/1", "b/2", "c", "d"]:
        s3.put_object(Bucket=bucket, Key=k, Body=b"")
    page = s3.list_objects(Bucket=bucket, MaxKeys=2)
    assert [o["Key"] for o in page["Contents"]] == ["a", "b/1"] and page["IsTruncated"]
    assert page["Contents"][0]["Owner"]["ID"]
    page = s3.list_objects(Bucket=bucket, Marker="b/1")
    assert [o["Key"] for o in page["Contents"]] == ["b/2", "c", "d"]
    page = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert [o["Key"] for o in page["Contents"]] == ["a"] and page["CommonPrefixes"] == [{"Prefix": "b/"}]
    assert page["NextMarker"] == "b/"
    page = s3.list_objects(Bucket=bucket, Delimiter="/", Marker=page["NextMarker"])
    assert [o["Key"] for o in page["Contents"]] == ["c", "d"] and "CommonPrefixes" not in page
    keys = [o["Key"] for p in s3.get_paginator("list_objects").paginate(Bucket=bucket, PaginationConfig={"PageSize": 2})
            for o in p["Contents"]]
    assert keys == ["a", "b/1", "b/2", "c", "d"]


# ----------------------------------------------------------------------------------------- multipart
def test_multipart_upload(s3: Any, bucket: str) -> None:
    part1 = b"a" * (5 * MB)
    part2 = b"b" * 1000
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp/obj", ContentType="application/x-test",
                                    Metadata={"k": "v"})
    upload_id = up["UploadId"]
    listed = s3.list_multipart_uploads(Bucket=bucket)
    assert [u["UploadId"] for u in listed["Uploads"]] == [upload_id]
    e1 = s3.upload_part(Bucket=bucket, Key="mp/obj", UploadId=upload_id, PartNumber=1, Body=part1)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="mp/obj", UploadId=upload_id, PartNumber=2, Body=part2)["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key="mp/obj", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == [(1, e1, len(part1)), (2, e2, len(part2))]

    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="mp/obj", UploadId=upload_id, MultipartUpload={
            "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
    assert _error(exc)[0] == "InvalidPartOrder"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="mp/obj", UploadId=upload_id, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": '"0123"'}]})
    assert _error(exc)[0] == "InvalidPart"

    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp/obj", UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    digest = hashlib.md5(bytes.fromhex(e1.strip('"')) + bytes.fromhex(e2.strip('"'))).hexdigest()
    assert done["ETag"] == f'"{digest}-2"'
    got = s3.get_object(Bucket=bucket, Key="mp/obj")
    assert got["Body"].read() == part1 + part2
    assert (got["ETag"], got["ContentType"], got["Metadata"]) == (f'"{digest}-2"', "application/x-test", {"k": "v"})
    second = s3.get_object(Bucket=bucket, Key="mp/obj", PartNumber=2)
    assert second["PartsCount"] == 2 and second["Body"].read() == part2
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)

    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="mp/obj", UploadId=upload_id, PartNumber=3, Body=b"late")
    code, status, err = _error(exc)
    assert (code, status, err["UploadId"]) == ("NoSuchUpload", 404, upload_id)


def test_multipart_small_parts_abort_and_copy(s3: Any, bucket: str) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="small")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="small", UploadId=up, PartNumber=1, Body=b"tiny")["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="small", UploadId=up, PartNumber=2, Body=b"tiny")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="small", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert _error(exc)[0] == "EntityTooSmall"
    s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId=up)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="small", UploadId=up)
    assert _error(exc)[0] == "NoSuchUpload"

    source = bytes(range(256)) * (6 * MB // 256)
    s3.put_object(Bucket=bucket, Key="source", Body=source)
    up = s3.create_multipart_upload(Bucket=bucket, Key="assembled")["UploadId"]
    c1 = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=up, PartNumber=1,
                             CopySource={"Bucket": bucket, "Key": "source"}, CopySourceRange=f"bytes=0-{5 * MB - 1}")
    c2 = s3.upload_part_copy(Bucket=bucket, Key="assembled", UploadId=up, PartNumber=2,
                             CopySource={"Bucket": bucket, "Key": "source"},
                             CopySourceRange=f"bytes={5 * MB}-{len(source) - 1}")
    s3.complete_multipart_upload(Bucket=bucket, Key="assembled", UploadId=up, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": c1["CopyPartResult"]["ETag"]},
        {"PartNumber": 2, "ETag": c2["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="assembled")["Body"].read() == source


def test_transfer_manager_upload_download(s3: Any, bucket: str, tmp_path: Path) -> None:
    data = hashlib.sha256(b"seed").digest() * (12 * MB // 32 + 7)
    src = tmp_path / "up.bin"
    src.write_bytes(data)
    cfg = TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB)
    s3.upload_file(str(src), bucket, "big/file.bin", Config=cfg)
    head = s3.head_object(Bucket=bucket, Key="big/file.bin")
    assert head["ContentLength"] == len(data) and head["ETag"].endswith('-3"')
    # s3transfer asked for CRC32 checksums: the object carries the composite checksum.
    assert s3.head_object(Bucket=bucket, Key="big/file.bin", ChecksumMode="ENABLED")["ChecksumCRC32"].endswith("-3")
    dst = tmp_path / "down.bin"
    s3.download_file(bucket, "big/file.bin", str(dst), Config=cfg)
    assert dst.read_bytes() == data


# ------------------------------------------------------------------------------------------ presign
def test_presigned_get_and_put(server: StratumServer, s3: Any, bucket: str) -> None:
    v4 = server.session().client("s3", endpoint_url=server.endpoint_url,
                                 config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    put_url = v4.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre/signed.txt"},
                                        ExpiresIn=300)
    assert "X-Amz-Signature=" in put_url
    req = urllib.request.Request(put_url, data=b"via presigned put", method="PUT")
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 200
    # boto3's default presigner for S3 still uses query-string auth v2 (AWSAccessKeyId/Signature).
    for client in (v4, s3):
        get_url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre/signed.txt"},
                                                ExpiresIn=300)
        with urllib.request.urlopen(get_url) as resp:
            assert resp.read() == b"via presigned put"
        tampered = get_url.replace("pre/signed.txt", "pre/other.txt")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(tampered)
        assert err.value.code == 403
        assert b"<Code>SignatureDoesNotMatch</Code>" in err.value.read()
    # A v2 presigned PUT signs Content-Type too, so send none (urllib would add one).
    v2_put = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre/v2.txt"}, ExpiresIn=300)
    target = v2_put.split(str(server.port), 1)[1]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("PUT", target, body=b"v2 put")
    assert conn.getresponse().status == 200
    conn.close()
    assert s3.get_object(Bucket=bucket, Key="pre/v2.txt")["Body"].read() == b"v2 put"


# ---------------------------------------------------------------------------------- policy and access
def test_bucket_policy_and_cross_account_access(server: StratumServer, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="shared/data.csv", Body=b"1,2,3")
    other = server.client("s3", "test")
    with pytest.raises(ClientError) as exc:
        other.get_object(Bucket=bucket, Key="shared/data.csv")
    assert _error(exc)[:2] == ("AccessDenied", 403)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_policy(Bucket=bucket)
    code, status, err = _error(exc)
    assert (code, status, err["BucketName"]) == ("NoSuchBucketPolicy", 404, bucket)

    with pytest.raises(ClientError) as exc:
        s3.put_bucket_policy(Bucket=bucket, Policy="not json")
    code, _, err = _error(exc)
    assert code == "MalformedPolicy"
    assert err["Message"] == "Policies must be valid JSON and the first byte must be '{'"
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::some-other-bucket/*"}]}))
    assert _error(exc)[0] == "MalformedPolicy"

    # 20 KB, counted without insignificant whitespace: indentation does not count, content does.
    def statements(n: int) -> list[dict[str, Any]]:
        return [{"Sid": f"S{i:04d}", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                 "Resource": f"arn:aws:s3:::{bucket}/prefix-{i:04d}/*"} for i in range(n)]

    fits = next(n for n in range(400, 0, -1)
                if len(json.dumps({"Version": "2012-10-17", "Statement": statements(n)}, separators=(",", ":")))
                <= 20 * 1024)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": statements(fits)},
                                                          indent=8))
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17",
                                                               "Statement": statements(fits + 1)}))
    assert _error(exc)[:2] == ("PolicyTooLarge", 400)
    s3.delete_bucket_policy(Bucket=bucket)

    test_account = server.account_id("test")
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "ReadShared", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{test_account}:root"},
        "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/shared/*"}]})
    s3.put_bucket_policy(Bucket=bucket, Policy=policy)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == json.loads(policy)
    assert other.get_object(Bucket=bucket, Key="shared/data.csv")["Body"].read() == b"1,2,3"
    # Only what the policy grants: no listing, no writes, and a missing key is AccessDenied (the
    # caller may not list the bucket, so S3 does not reveal whether the key exists).
    for call in (lambda: other.list_objects_v2(Bucket=bucket),
                 lambda: other.put_object(Bucket=bucket, Key="shared/x", Body=b"x"),
                 lambda: other.get_object(Bucket=bucket, Key="shared/absent")):
        with pytest.raises(ClientError) as exc:
            call()
        assert _error(exc)[:2] == ("AccessDenied", 403)
    with pytest.raises(ClientError) as exc:
        other.get_bucket_policy(Bucket=bucket)
    assert _error(exc)[0] in ("AccessDenied", "MethodNotAllowed")
    s3.delete_bucket_policy(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        other.get_object(Bucket=bucket, Key="shared/data.csv")
    assert _error(exc)[0] == "AccessDenied"


def test_anonymous_access_needs_public_policy(server: StratumServer, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="public/index.html", Body=b"<h1>hi</h1>", ContentType="text/html")
    anon = _anonymous(server)
    with pytest.raises(ClientError) as exc:
        anon.get_object(Bucket=bucket, Key="public/index.html")
    assert _error(exc)[:2] == ("AccessDenied", 403)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/public/*"}]}))
    assert anon.get_object(Bucket=bucket, Key="public/index.html")["Body"].read() == b"<h1>hi</h1>"
    with urllib.request.urlopen(f"{server.endpoint_url}/{bucket}/public/index.html") as resp:
        assert resp.read() == b"<h1>hi</h1>" and resp.headers["Content-Type"] == "text/html"
    with pytest.raises(ClientError) as exc:
        anon.put_object(Bucket=bucket, Key="public/x", Body=b"x")
    assert _error(exc)[0] == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        anon.list_buckets()
    assert _error(exc)[0] == "AccessDenied"

    # Virtual-hosted-style addressing: the bucket comes from the Host header.
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/public/index.html", headers={"Host": f"{bucket}.localhost:{server.port}"})
    resp = conn.getresponse()
    assert (resp.status, resp.read()) == (200, b"<h1>hi</h1>")
    conn.close()


# --------------------------------------------------------------------------------------- versioning
def test_versioning(s3: Any, bucket: str) -> None:
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="pre", Body=b"before versioning")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"

    v1 = s3.put_object(Bucket=bucket, Key="doc", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="doc", Body=b"two")["VersionId"]
    assert v1 != v2 and v1 != "null"
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"two"
    old = s3.get_object(Bucket=bucket, Key="doc", VersionId=v1)
    assert (old["Body"].read(), old["VersionId"]) == (b"one", v1)
    assert s3.head_object(Bucket=bucket, Key="doc", VersionId=v1)["ContentLength"] == 3

    deleted = s3.delete_object(Bucket=bucket, Key="doc")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="doc")
    assert _error(exc)[:2] == ("NoSuchKey", 404)
    assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-delete-marker"] == "true"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="doc", VersionId=marker)
    assert _error(exc)[:2] == ("MethodNotAllowed", 405)
    assert "doc" not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]

    versions = s3.list_object_versions(Bucket=bucket, Prefix="doc")
    assert [(v["VersionId"], v["IsLatest"]) for v in versions["Versions"]] == [(v2, False), (v1, False)]
    assert [(m["VersionId"], m["IsLatest"]) for m in versions["DeleteMarkers"]] == [(marker, True)]
    everything = s3.list_object_versions(Bucket=bucket)
    assert ("pre", "null") in [(v["Key"], v["VersionId"]) for v in everything["Versions"]]
    paged = s3.list_object_versions(Bucket=bucket, MaxKeys=1)
    assert paged["IsTruncated"] and paged["NextKeyMarker"] == "doc"
    rest = s3.list_object_versions(Bucket=bucket, KeyMarker=paged["NextKeyMarker"],
                                   VersionIdMarker=paged["NextVersionIdMarker"])
    assert [v["VersionId"] for v in rest["Versions"]][:2] == [v2, v1]

    # Removing the delete marker brings the object back; deleting a version removes it for good.
    removed = s3.delete_object(Bucket=bucket, Key="doc", VersionId=marker)
    assert removed["DeleteMarker"] is True and removed["VersionId"] == marker
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"two"
    s3.delete_object(Bucket=bucket, Key="doc", VersionId=v2)
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"one"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="doc", VersionId=v2)
    assert _error(exc)[:2] == ("NoSuchVersion", 404)

    # Suspended: writes replace the "null" version instead of adding versions.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.put_object(Bucket=bucket, Key="doc", Body=b"three")["VersionId"] == "null"
    s3.put_object(Bucket=bucket, Key="doc", Body=b"four")
    ids = [v["VersionId"] for v in s3.list_object_versions(Bucket=bucket, Prefix="doc")["Versions"]]
    assert ids == ["null", v1]

    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=bucket)
    assert _error(exc)[0] == "BucketNotEmpty"
    batch = [{"Key": v["Key"], "VersionId": v["VersionId"]}
             for v in s3.list_object_versions(Bucket=bucket).get("Versions", [])]
    s3.delete_objects(Bucket=bucket, Delete={"Objects": batch})
    s3.delete_bucket(Bucket=bucket)


def test_concurrent_writes_to_one_key(s3: Any, bucket: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def put(i: int) -> None:
        s3.put_object(Bucket=bucket, Key="hot", Body=f"writer {i}".encode())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(24)))
    versions = s3.list_object_versions(Bucket=bucket, Prefix="hot").get("Versions", [])
    assert [v["VersionId"] for v in versions] == ["null"]  # unversioned: one version survives
    assert s3.get_object(Bucket=bucket, Key="hot")["Body"].read().startswith(b"writer ")

    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(24)))
    versions = s3.list_object_versions(Bucket=bucket, Prefix="hot")["Versions"]
    assert len(versions) == 25
    assert sum(v["IsLatest"] for v in versions) == 1 and versions[0]["IsLatest"]


def test_streaming_trailer_checksum_upload(s3: Any, bucket: str) -> None:
    """What boto3 sends over HTTPS: an aws-chunked body with the CRC32 in a trailer."""

    def use_trailer(params: dict[str, Any], **_: Any) -> None:
        algorithm = params["context"].get("checksum", {}).get("request_algorithm")
        if isinstance(algorithm, dict):
            algorithm["in"] = "trailer"

    sent: dict[str, str] = {}

    def capture(request: Any, **_: Any) -> None:
        sent.update({k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})

    s3.meta.events.register("before-call.s3.PutObject", use_trailer)
    s3.meta.events.register("before-send.s3.PutObject", capture)
    body = b"streamed with a trailing checksum\n" * 1000
    put = s3.put_object(Bucket=bucket, Key="chunked", Body=body, ContentEncoding="gzip")
    assert sent["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert sent["x-amz-trailer"] == "x-amz-checksum-crc32"
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert put["ChecksumCRC32"] == crc
    s3.meta.events.unregister("before-call.s3.PutObject", use_trailer)
    s3.meta.events.unregister("before-send.s3.PutObject", capture)
    head = s3.head_object(Bucket=bucket, Key="chunked", ChecksumMode="ENABLED")
    assert (head["ContentLength"], head["ChecksumCRC32"]) == (len(body), crc)
    assert head["ContentEncoding"] == "gzip"  # "aws-chunked" framing is not stored
    assert s3.get_object(Bucket=bucket, Key="chunked")["Body"].read() == body


def test_policy_conditions_and_explicit_deny(server: StratumServer, s3: Any, bucket: str) -> None:
    for key in ("shared/a", "shared/b", "private/c", "protected/d"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    test_root = f"arn:aws:iam::{server.account_id('test')}:root"
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "ListSharedOnly", "Effect": "Allow", "Principal": {"AWS": test_root}, "Action": "s3:ListBucket",
         "Resource": f"arn:aws:s3:::{bucket}", "Condition": {"StringLike": {"s3:prefix": "shared/*"}}},
        {"Sid": "Protect", "Effect": "Deny", "Principal": "*", "Action": ["s3:DeleteObject", "s3:PutObject"],
         "Resource": f"arn:aws:s3:::{bucket}/protected/*"},
    ]}))
    other = server.client("s3", "test")
    listed = other.list_objects_v2(Bucket=bucket, Prefix="shared/")
    assert [o["Key"] for o in listed["Contents"]] == ["shared/a", "shared/b"]
    for kwargs in ({}, {"Prefix": "private/"}):
        with pytest.raises(ClientError) as exc:
            other.list_objects_v2(Bucket=bucket, **kwargs)
        assert _error(exc)[0] == "AccessDenied"

    # An explicit Deny in the bucket policy binds the owner's admin too.
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="protected/d", Body=b"y")
    assert _error(exc)[:2] == ("AccessDenied", 403)
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "protected/d"}, {"Key": "private/c"}]})
    assert [d["Key"] for d in result["Deleted"]] == ["private/c"]
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("protected/d", "AccessDenied")]
    assert s3.get_object(Bucket=bucket, Key="protected/d")["Body"].read() == b"x"


def test_copy_from_version(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="src", Body=b"v1")["VersionId"]
    s3.put_object(Bucket=bucket, Key="src", Body=b"v2")
    copied = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1})
    assert copied["CopySourceVersionId"] == v1 and copied["VersionId"] not in (v1, "null")
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"v1"


def test_iam_user_with_scoped_identity_policy(server: StratumServer, s3: Any, bucket: str) -> None:
    iam = server.client("iam")
    user = _name("s3user")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="scoped", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "arn:aws:s3:::*"},
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": f"arn:aws:s3:::{bucket}/in/*"},
        ]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    limited = server.client("s3", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    assert bucket in [b["Name"] for b in limited.list_buckets()["Buckets"]]
    limited.put_object(Bucket=bucket, Key="in/file", Body=b"ok")
    assert limited.get_object(Bucket=bucket, Key="in/file")["Body"].read() == b"ok"
    for call in (lambda: limited.put_object(Bucket=bucket, Key="out/file", Body=b"no"),
                 lambda: limited.list_objects_v2(Bucket=bucket),
                 lambda: limited.delete_object(Bucket=bucket, Key="in/file"),
                 lambda: limited.create_bucket(Bucket=_name())):
        with pytest.raises(ClientError) as exc:
            call()
        assert _error(exc)[:2] == ("AccessDenied", 403)
