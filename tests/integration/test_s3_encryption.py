"""S3 server-side encryption against a running server: SSE-S3 by default, SSE-KMS with real keys and
key policies, bucket default encryption, multipart and ranged reads, copies, and bucket policies that
require encryption."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from stratum_testing import StratumServer

MB = 1024 * 1024
CHUNK = 64 * 1024  # the server's encryption chunk: ranges are tested across its boundaries


def _uid(prefix: str = "sse") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    resp = exc.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"], resp["Error"].get("Message", "")


def _payload(size: int, seed: str = "stratum") -> bytes:
    """Recognizable, non-repeating bytes (so a leak of any chunk would be found on disk)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}-{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def _blobs(server: StratumServer, bucket: str) -> list[Path]:
    root = server.data_dir / "objects" / bucket
    return [p for p in root.rglob("*") if p.is_file()]


def _assert_not_on_disk(server: StratumServer, bucket: str, plaintext: bytes) -> None:
    files = _blobs(server, bucket)
    assert files, "the object has no blob on disk"
    probes = [plaintext[i:i + 32] for i in range(0, len(plaintext), max(32, len(plaintext) // 16))]
    for path in files:
        data = path.read_bytes()
        assert not any(p in data for p in probes), f"plaintext found in {path}"


def _user(server: StratumServer, account: str, *statements: dict[str, Any]) -> dict[str, str]:
    iam = server.client("iam", account)
    name = _uid("u")
    iam.create_user(UserName=name)
    if statements:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": list(statements)}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


@pytest.fixture
def s3(server: StratumServer) -> Any:
    return server.client("s3")


@pytest.fixture
def kms(server: StratumServer) -> Any:
    return server.client("kms")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = _uid()
    s3.create_bucket(Bucket=name)
    return name


# ------------------------------------------------------------------------------------------ SSE-S3
def test_every_object_is_encrypted_at_rest(server: StratumServer, s3: Any, bucket: str) -> None:
    body = _payload(300 * 1024)
    put = s3.put_object(Bucket=bucket, Key="plain.bin", Body=body)
    assert put["ServerSideEncryption"] == "AES256"
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'  # the ETag is still the plaintext's MD5
    got = s3.get_object(Bucket=bucket, Key="plain.bin")
    assert got["Body"].read() == body and got["ServerSideEncryption"] == "AES256"
    assert got["ContentLength"] == len(body)
    assert s3.head_object(Bucket=bucket, Key="plain.bin")["ServerSideEncryption"] == "AES256"
    assert s3.list_objects_v2(Bucket=bucket)["Contents"][0]["Size"] == len(body)
    _assert_not_on_disk(server, bucket, body)
    (blob,) = _blobs(server, bucket)
    assert blob.stat().st_size > len(body)  # header and per-chunk tags

    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert s3.get_object(Bucket=bucket, Key="empty")["Body"].read() == b""
    explicit = s3.put_object(Bucket=bucket, Key="explicit", Body=b"x", ServerSideEncryption="AES256")
    assert explicit["ServerSideEncryption"] == "AES256"


def test_ranged_reads_across_encryption_chunks(s3: Any, bucket: str) -> None:
    body = _payload(5 * CHUNK + 123)
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    for first, last in ((0, 0), (CHUNK - 1, CHUNK), (CHUNK - 5, 3 * CHUNK + 7), (2 * CHUNK, 3 * CHUNK - 1),
                        (5 * CHUNK, len(body) - 1), (len(body) - 1, len(body) - 1), (100, len(body) - 1)):
        got = s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={first}-{last}")
        assert got["Body"].read() == body[first:last + 1], (first, last)
        assert got["ContentRange"] == f"bytes {first}-{last}/{len(body)}"
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-70000")["Body"].read() == body[-70000:]


# ----------------------------------------------------------------------------------------- SSE-KMS
def test_sse_kms_with_key_alias_and_aws_managed_key(server: StratumServer, s3: Any, kms: Any, bucket: str) -> None:
    key = kms.create_key()["KeyMetadata"]
    alias = f"alias/{_uid('s3key')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    body = _payload(200 * 1024, "kms")
    put = s3.put_object(Bucket=bucket, Key="k", Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"])
    assert (put["ServerSideEncryption"], put["SSEKMSKeyId"]) == ("aws:kms", key["Arn"])
    context = json.loads(base64.b64decode(put["SSEKMSEncryptionContext"]))
    assert context == {"aws:s3:arn": f"arn:aws:s3:::{bucket}/k"}
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == body
    assert (got["ServerSideEncryption"], got["SSEKMSKeyId"]) == ("aws:kms", key["Arn"])
    head = s3.head_object(Bucket=bucket, Key="k")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key["Arn"])
    _assert_not_on_disk(server, bucket, body)

    # An alias (or key id) is resolved to the key ARN, which is what S3 records and reports.
    by_alias = s3.put_object(Bucket=bucket, Key="a", Body=b"via alias", ServerSideEncryption="aws:kms",
                             SSEKMSKeyId=alias)
    assert by_alias["SSEKMSKeyId"] == key["Arn"]
    assert s3.get_object(Bucket=bucket, Key="a")["Body"].read() == b"via alias"

    # No key: the account's AWS managed key aws/s3, created on first use.
    managed = s3.put_object(Bucket=bucket, Key="m", Body=b"managed", ServerSideEncryption="aws:kms")
    described = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert managed["SSEKMSKeyId"] == described["Arn"] and described["KeyManager"] == "AWS"
    assert s3.get_object(Bucket=bucket, Key="m")["Body"].read() == b"managed"
    # It can only be used through S3, and nobody may manage it.
    with pytest.raises(ClientError) as exc:
        kms.encrypt(KeyId="alias/aws/s3", Plaintext=b"direct")
    assert exc.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:
        kms.disable_key(KeyId=described["KeyId"])
    assert exc.value.response["Error"]["Code"] == "AccessDeniedException"

    # Extra encryption context from the request is bound to the object, too.
    extra = base64.b64encode(json.dumps({"project": "churn"}).encode()).decode()
    with_context = s3.put_object(Bucket=bucket, Key="c", Body=b"ctx", ServerSideEncryption="aws:kms",
                                 SSEKMSKeyId=key["KeyId"], SSEKMSEncryptionContext=extra)
    assert json.loads(base64.b64decode(with_context["SSEKMSEncryptionContext"]))["project"] == "churn"
    assert s3.get_object(Bucket=bucket, Key="c")["Body"].read() == b"ctx"


def test_sse_request_errors(s3: Any, kms: Any, bucket: str) -> None:
    key = kms.create_key()["KeyMetadata"]
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="x", Body=b"x", SSEKMSKeyId=key["Arn"])
    assert _error(exc)[:2] == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="x", Body=b"x", ServerSideEncryption="aws:kms",
                      SSEKMSKeyId=str(uuid.uuid4()))
    assert _error(exc)[:2] == ("KMS.NotFoundException", 400)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="x", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"],
                      SSEKMSEncryptionContext="not base64 json")
    assert _error(exc)[:2] == ("InvalidArgument", 400)


def test_disabled_key_blocks_reads_and_writes(s3: Any, kms: Any, bucket: str) -> None:
    key = kms.create_key()["KeyMetadata"]
    s3.put_object(Bucket=bucket, Key="d", Body=b"guarded", ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"])
    kms.disable_key(KeyId=key["KeyId"])
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="d")
    code, status, message = _error(exc)
    assert (code, status) == ("KMS.DisabledException", 400) and key["Arn"] in message
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="e", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"])
    assert _error(exc)[0] == "KMS.DisabledException"
    assert s3.head_object(Bucket=bucket, Key="d")["SSEKMSKeyId"] == key["Arn"]  # metadata needs no key
    kms.enable_key(KeyId=key["KeyId"])
    assert s3.get_object(Bucket=bucket, Key="d")["Body"].read() == b"guarded"


def test_reader_without_kms_decrypt_is_denied(server: StratumServer, s3: Any, kms: Any, bucket: str) -> None:
    key = kms.create_key()["KeyMetadata"]  # default policy: the account's IAM policies decide
    s3.put_object(Bucket=bucket, Key="secret", Body=b"classified", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key["Arn"])
    s3.put_object(Bucket=bucket, Key="open", Body=b"public-ish")
    s3_read = {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}
    reader = server.client("s3", "dev", **_user(server, "dev", s3_read))
    assert reader.get_object(Bucket=bucket, Key="open")["Body"].read() == b"public-ish"  # SSE-S3 needs no grant
    assert reader.head_object(Bucket=bucket, Key="secret")["ServerSideEncryption"] == "aws:kms"
    with pytest.raises(ClientError) as exc:
        reader.get_object(Bucket=bucket, Key="secret")
    code, status, message = _error(exc)
    assert (code, status) == ("AccessDenied", 403)
    assert f"is not authorized to perform: kms:Decrypt on resource: {key['Arn']}" in message

    decrypt = {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key["Arn"],
               "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}}
    trusted = server.client("s3", "dev", **_user(server, "dev", s3_read, decrypt))
    assert trusted.get_object(Bucket=bucket, Key="secret")["Body"].read() == b"classified"
    # kms:ViaService is only set when S3 calls KMS: the same grant does not cover direct use.
    kms_direct = server.client("kms", "dev", **_user(server, "dev", decrypt))
    blob = kms.encrypt(KeyId=key["Arn"], Plaintext=b"direct")["CiphertextBlob"]
    with pytest.raises(ClientError) as exc:
        kms_direct.decrypt(CiphertextBlob=blob)
    assert exc.value.response["Error"]["Code"] == "AccessDeniedException"


def test_key_policy_without_root_denies_s3_readers(server: StratumServer, s3: Any, kms: Any, bucket: str) -> None:
    dev = server.account_id("dev")
    admin = f"arn:aws:iam::{dev}:user/admin"
    key = kms.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": admin}, "Action": "kms:*", "Resource": "*"}]}))["KeyMetadata"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"admins only", ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"])
    power = server.client("s3", "dev", **_user(server, "dev", {"Effect": "Allow", "Action": "*", "Resource": "*"}))
    with pytest.raises(ClientError) as exc:
        power.get_object(Bucket=bucket, Key="k")
    code, _status, message = _error(exc)
    assert code == "AccessDenied" and "because no resource-based policy allows the kms:Decrypt action" in message
    with pytest.raises(ClientError) as exc:  # nor may it write with that key (GenerateDataKey)
        power.put_object(Bucket=bucket, Key="w", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"])
    assert "kms:GenerateDataKey" in _error(exc)[2]


def test_multipart_upload_with_sse_kms(server: StratumServer, s3: Any, kms: Any, bucket: str) -> None:
    key = kms.create_key()["KeyMetadata"]
    body = _payload(12 * MB + 12345, "multipart")
    config = TransferConfig(multipart_threshold=5 * MB, multipart_chunksize=5 * MB, max_concurrency=2)
    s3.upload_fileobj(io.BytesIO(body), bucket, "big.bin", Config=config,
                      ExtraArgs={"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key["Arn"]})
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"], head["ContentLength"]) == (
        "aws:kms", key["Arn"], len(body))
    assert head["ETag"].endswith('-3"')
    assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == body
    for first, last in ((5 * MB - 10, 5 * MB + 10), (0, CHUNK), (len(body) - 1000, len(body) - 1)):
        got = s3.get_object(Bucket=bucket, Key="big.bin", Range=f"bytes={first}-{last}")
        assert got["Body"].read() == body[first:last + 1]
    part = s3.get_object(Bucket=bucket, Key="big.bin", PartNumber=2)
    assert part["Body"].read() == body[5 * MB:10 * MB] and part["PartsCount"] == 3
    _assert_not_on_disk(server, bucket, body[:MB])

    # The low-level calls report the upload's encryption on every step.
    upload = s3.create_multipart_upload(Bucket=bucket, Key="parts", ServerSideEncryption="aws:kms",
                                        SSEKMSKeyId=key["KeyId"])
    assert (upload["ServerSideEncryption"], upload["SSEKMSKeyId"]) == ("aws:kms", key["Arn"])
    uploaded = s3.upload_part(Bucket=bucket, Key="parts", UploadId=upload["UploadId"], PartNumber=1, Body=b"p1")
    assert uploaded["SSEKMSKeyId"] == key["Arn"]
    done = s3.complete_multipart_upload(Bucket=bucket, Key="parts", UploadId=upload["UploadId"],
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": uploaded["ETag"]}]})
    assert (done["ServerSideEncryption"], done["SSEKMSKeyId"]) == ("aws:kms", key["Arn"])
    assert s3.get_object(Bucket=bucket, Key="parts")["Body"].read() == b"p1"


def test_copy_reencrypts_to_target_settings(server: StratumServer, s3: Any, kms: Any, bucket: str) -> None:
    source_key = kms.create_key()["KeyMetadata"]
    target_key = kms.create_key()["KeyMetadata"]
    target = _uid()
    s3.create_bucket(Bucket=target)
    s3.put_bucket_encryption(Bucket=target, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": target_key["Arn"]}}]})
    body = _payload(100 * 1024, "copy")
    s3.put_object(Bucket=bucket, Key="src", Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=source_key["Arn"])

    copied = s3.copy_object(Bucket=target, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert (copied["ServerSideEncryption"], copied["SSEKMSKeyId"]) == ("aws:kms", target_key["Arn"])
    assert s3.get_object(Bucket=target, Key="dst")["Body"].read() == body
    to_s3 = s3.copy_object(Bucket=target, Key="dst2", CopySource={"Bucket": bucket, "Key": "src"},
                           ServerSideEncryption="AES256")
    assert to_s3["ServerSideEncryption"] == "AES256" and "SSEKMSKeyId" not in to_s3
    assert s3.get_object(Bucket=target, Key="dst2")["Body"].read() == body
    # Re-encrypting in place with another key is a legal self-copy.
    s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"},
                   ServerSideEncryption="aws:kms", SSEKMSKeyId=target_key["Arn"])
    assert s3.head_object(Bucket=bucket, Key="src")["SSEKMSKeyId"] == target_key["Arn"]
    _assert_not_on_disk(server, target, body)

    # A copier must be allowed to decrypt the source.
    blind = server.client("s3", "dev", **_user(server, "dev", {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                                                {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*"}))
    with pytest.raises(ClientError) as exc:
        blind.copy_object(Bucket=target, Key="dst3", CopySource={"Bucket": bucket, "Key": "src"},
                          ServerSideEncryption="AES256")
    assert _error(exc)[0] == "AccessDenied" and "kms:Decrypt" in _error(exc)[2]


# ---------------------------------------------------------------------------------- bucket settings
def test_bucket_default_encryption(s3: Any, kms: Any, bucket: str) -> None:
    default = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert default["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}

    key = kms.create_key()["KeyMetadata"]
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["Arn"]},
        "BucketKeyEnabled": True}]})
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["Arn"]}
    assert rule["BucketKeyEnabled"] is True

    put = s3.put_object(Bucket=bucket, Key="auto", Body=b"defaulted")
    assert (put["ServerSideEncryption"], put["SSEKMSKeyId"], put["BucketKeyEnabled"]) == ("aws:kms", key["Arn"], True)
    got = s3.get_object(Bucket=bucket, Key="auto")
    assert got["Body"].read() == b"defaulted" and got["BucketKeyEnabled"] is True
    # Headers still win over the default.
    assert s3.put_object(Bucket=bucket, Key="mine", Body=b"x", ServerSideEncryption="AES256")[
        "ServerSideEncryption"] == "AES256"

    s3.delete_bucket_encryption(Bucket=bucket)
    assert s3.put_object(Bucket=bucket, Key="after", Body=b"x")["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="auto")["Body"].read() == b"defaulted"  # old objects keep their key

    with pytest.raises(ClientError) as exc:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256", "KMSMasterKeyID": key["Arn"]}}]})
    assert _error(exc)[:2] == ("InvalidArgument", 400)


def test_bucket_policy_denying_unencrypted_uploads(server: StratumServer, s3: Any, kms: Any, bucket: str) -> None:
    key = kms.create_key()["KeyMetadata"]
    other_key = kms.create_key()["KeyMetadata"]
    objects = f"arn:aws:s3:::{bucket}/*"
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "DenyWithoutHeader", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
         "Resource": objects, "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}}},
        {"Sid": "DenyNotKms", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": objects,
         "Condition": {"StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}},
        {"Sid": "DenyOtherKeys", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": objects,
         "Condition": {"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption-aws-kms-key-id": key["Arn"]}}},
    ]}))
    for kwargs in ({}, {"ServerSideEncryption": "AES256"},
                   {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": other_key["Arn"]}):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key="k", Body=b"x", **kwargs)
        code, status, message = _error(exc)
        assert (code, status) == ("AccessDenied", 403), kwargs
        assert "explicit deny in a resource-based policy" in message
    ok = s3.put_object(Bucket=bucket, Key="k", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId=key["Arn"])
    assert ok["SSEKMSKeyId"] == key["Arn"]
    # Multipart parts carry no SSE headers; they are authorized with their upload's encryption.
    body = _payload(6 * MB, "policy")
    s3.upload_fileobj(io.BytesIO(body), bucket, "big", Config=TransferConfig(multipart_threshold=5 * MB),
                      ExtraArgs={"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key["Arn"]})
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == body
    with pytest.raises(ClientError) as exc:
        s3.create_multipart_upload(Bucket=bucket, Key="big2")
    assert _error(exc)[0] == "AccessDenied"


def test_cross_account_upload_with_shared_key(server: StratumServer, s3: Any, kms: Any, bucket: str) -> None:
    dev, test = server.account_id("dev"), server.account_id("test")
    key = kms.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{dev}:root"}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{test}:root"},
         "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"}]}))["KeyMetadata"]
    private = kms.create_key()["KeyMetadata"]
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{test}:root"},
         "Action": ["s3:PutObject", "s3:GetObject"], "Resource": f"arn:aws:s3:::{bucket}/*"}]}))
    remote = server.client("s3", "test")
    remote.put_object(Bucket=bucket, Key="from-test", Body=b"shared", ServerSideEncryption="aws:kms",
                      SSEKMSKeyId=key["Arn"])
    assert remote.get_object(Bucket=bucket, Key="from-test")["Body"].read() == b"shared"
    assert s3.get_object(Bucket=bucket, Key="from-test")["Body"].read() == b"shared"
    # An object under a key the other account may not use cannot be read by it.
    s3.put_object(Bucket=bucket, Key="private", Body=b"mine", ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=private["Arn"])
    with pytest.raises(ClientError) as exc:
        remote.get_object(Bucket=bucket, Key="private")
    assert _error(exc)[:2] == ("AccessDenied", 403)


def test_aws_cli_sse_kms_copy(server: StratumServer, kms: Any, bucket: str, tmp_path: Path) -> None:
    key = kms.create_key()["KeyMetadata"]
    src = tmp_path / "model.tar.gz"
    src.write_bytes(_payload(70 * 1024, "cli"))
    server.aws_cli("s3", "cp", str(src), f"s3://{bucket}/model.tar.gz", "--sse", "aws:kms",
                   "--sse-kms-key-id", key["Arn"])
    head = json.loads(server.aws_cli("s3api", "head-object", "--bucket", bucket, "--key", "model.tar.gz").stdout)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", key["Arn"])
    server.aws_cli("s3", "cp", f"s3://{bucket}/model.tar.gz", str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == src.read_bytes()


def test_sagemaker_reads_sse_kms_definition_as_the_caller(server: StratumServer, s3: Any, kms: Any,
                                                          bucket: str) -> None:
    """Services reading S3 objects on a caller's behalf decrypt as that caller (stratum.services.s3.access)."""
    dev = server.account_id("dev")
    key = kms.create_key()["KeyMetadata"]
    definition = json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": [
        {"Name": "Wait", "Type": "Fail", "Arguments": {"ErrorMessage": "stop"}}]})
    s3.put_object(Bucket=bucket, Key="def.json", Body=definition.encode(), ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key["Arn"])
    role = f"arn:aws:iam::{dev}:role/service-role/AmazonSageMaker-ExecutionRole"
    location = {"Bucket": bucket, "ObjectKey": "def.json"}
    name = _uid("p")
    server.client("sagemaker").create_pipeline(PipelineName=name, RoleArn=role, PipelineDefinitionS3Location=location)
    described = server.client("sagemaker").describe_pipeline(PipelineName=name)
    assert json.loads(described["PipelineDefinition"]) == json.loads(definition)

    no_decrypt = _user(server, "dev", {"Effect": "Allow", "Action": ["sagemaker:*", "s3:GetObject", "iam:PassRole"],
                                       "Resource": "*"})
    with pytest.raises(ClientError) as exc:
        server.client("sagemaker", "dev", **no_decrypt).create_pipeline(
            PipelineName=_uid("p"), RoleArn=role, PipelineDefinitionS3Location=location)
    assert exc.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "kms:Decrypt" in exc.value.response["Error"]["Message"]
