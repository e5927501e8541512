"""S3 uploads are streamed to disk: the server's memory stays bounded whatever the object's size, and
a body that fails any check (payload hash, chunk signature, trailing checksum, Content-MD5,
x-amz-checksum-*) leaves no object and no partial file.

Driven with boto3 and the AWS CLI; the aws-chunked signed framings, which botocore never sends, are
built here from the AWS documentation and sent over raw HTTP with a botocore-signed header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import os
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from stratum_testing import REGION, StratumServer

from stratum.auth.chunked import crc32c

MB = 1024 * 1024
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _name(prefix: str = "b") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    resp = exc.value.response
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def s3(server: StratumServer) -> Any:
    return server.client("s3")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = _name()
    s3.create_bucket(Bucket=name)
    return name


# ------------------------------------------------------------------------------------------ helpers
def _proc_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def _reset_peak(pid: int) -> int:
    """Reset the process's peak RSS (VmHWM) to its current RSS; returns that RSS in kB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _proc_kb(pid, "VmRSS")


def _write_file(path: Path, size: int) -> str:
    """A file of ``size`` pseudo-random bytes written 1 MiB at a time; returns its SHA-256."""
    digest = hashlib.sha256()
    block = os.urandom(MB)
    with open(path, "wb") as fh:
        for i in range(size // MB):
            piece = i.to_bytes(8, "big") + block[8:]  # no two blocks alike
            fh.write(piece)
            digest.update(piece)
    return digest.hexdigest()


def _sha256_stream(chunks: Iterator[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def _leftovers(server: StratumServer) -> list[Path]:
    return [p for p in (server.data_dir / "objects").rglob("*") if ".tmp-" in p.name]


def _absent(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        return exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    return False


# --------------------------------------------------------------------------------- bounded memory
@pytest.mark.slow
def test_large_put_object_streams_with_bounded_server_memory(server: StratumServer, s3: Any, bucket: str,
                                                              tmp_path: Path) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    size = 300 * MB
    src = tmp_path / "big.bin"
    digest = _write_file(src, size)
    base = _reset_peak(pid)
    with open(src, "rb") as fh:  # boto3 signs the payload's SHA-256 and sends a CRC32 header
        put = s3.put_object(Bucket=bucket, Key="big", Body=fh)
    grown_mb = (_proc_kb(pid, "VmHWM") - base) / 1024
    assert grown_mb < 64, f"server peak RSS grew by {grown_mb:.0f} MB for a {size // MB} MB upload"
    crc = 0
    with open(src, "rb") as fh:
        while block := fh.read(MB):
            crc = zlib.crc32(block, crc)
    assert put["ChecksumCRC32"] == base64.b64encode(crc.to_bytes(4, "big")).decode()

    base = _reset_peak(pid)
    got = s3.get_object(Bucket=bucket, Key="big")
    assert got["ContentLength"] == size
    assert _sha256_stream(got["Body"].iter_chunks(MB)) == digest
    ranged = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={100 * MB}-{250 * MB - 1}")
    assert ranged["ContentLength"] == 150 * MB
    with open(src, "rb") as fh:
        fh.seek(100 * MB)
        assert _sha256_stream(ranged["Body"].iter_chunks(MB)) == _sha256_stream(
            iter(lambda: fh.read(MB) if fh.tell() < 250 * MB else b"", b""))
    grown_mb = (_proc_kb(pid, "VmHWM") - base) / 1024
    assert grown_mb < 64, f"server peak RSS grew by {grown_mb:.0f} MB reading a {size // MB} MB object"
    s3.delete_object(Bucket=bucket, Key="big")


@pytest.mark.slow
def test_aws_cli_multipart_copy_streams_with_bounded_server_memory(server: StratumServer, s3: Any, bucket: str,
                                                                   tmp_path: Path) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    size = 200 * MB
    src = tmp_path / "cli.bin"
    digest = _write_file(src, size)
    base = _reset_peak(pid)
    # 8 MiB parts, 10 at a time: UploadPart bodies arrive concurrently.
    server.aws_cli("s3", "cp", str(src), f"s3://{bucket}/cli.bin")
    grown_mb = (_proc_kb(pid, "VmHWM") - base) / 1024
    assert grown_mb < 64, f"server peak RSS grew by {grown_mb:.0f} MB for a {size // MB} MB multipart upload"
    head = s3.head_object(Bucket=bucket, Key="cli.bin")
    assert head["ContentLength"] == size and head["ETag"].endswith('-25"')
    back = tmp_path / "back.bin"
    server.aws_cli("s3", "cp", f"s3://{bucket}/cli.bin", str(back))
    with open(back, "rb") as fh:
        assert _sha256_stream(iter(lambda: fh.read(MB), b"")) == digest
    s3.delete_object(Bucket=bucket, Key="cli.bin")


# ---------------------------------------------------------------------------- checksums with boto3
@pytest.mark.parametrize("algorithm", ["CRC32", "SHA1", "SHA256"])  # botocore needs awscrt for CRC32C
def test_put_object_flexible_checksums_header_and_trailer(s3: Any, bucket: str, algorithm: str) -> None:
    body = os.urandom(3 * MB + 123)
    put = s3.put_object(Bucket=bucket, Key=f"h-{algorithm}", Body=body, ChecksumAlgorithm=algorithm)
    value = put[f"Checksum{algorithm}"]

    def use_trailer(params: dict[str, Any], **_: Any) -> None:
        request_algorithm = params["context"].get("checksum", {}).get("request_algorithm")
        if isinstance(request_algorithm, dict):
            request_algorithm["in"] = "trailer"

    s3.meta.events.register("before-call.s3.PutObject", use_trailer)
    try:
        put = s3.put_object(Bucket=bucket, Key=f"t-{algorithm}", Body=body, ChecksumAlgorithm=algorithm)
    finally:
        s3.meta.events.unregister("before-call.s3.PutObject", use_trailer)
    assert put[f"Checksum{algorithm}"] == value
    for key in (f"h-{algorithm}", f"t-{algorithm}"):
        got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert got[f"Checksum{algorithm}"] == value
        assert got["Body"].read() == body


def _plain_client(server: StratumServer) -> Any:
    """boto3 without its default CRC32, so that the payload hash is the check that catches tampering."""
    import boto3
    from botocore.config import Config

    ak, sk = server.creds()
    return boto3.client("s3", endpoint_url=server.endpoint_url, region_name=REGION, aws_access_key_id=ak,
                        aws_secret_access_key=sk,
                        config=Config(request_checksum_calculation="when_required", retries={"max_attempts": 1},
                                      s3={"addressing_style": "path"}))


def _flip_a_bit(request: Any, **_: Any) -> None:
    """before-send: change the signed body (same length, one bit)."""
    body = request.body
    data = bytearray(body.read() if hasattr(body, "read") else body)
    data[len(data) // 2] ^= 1
    request.body = bytes(data)


def test_bad_digests_leave_no_object_and_no_partial_file(server: StratumServer, s3: Any, bucket: str) -> None:
    body = os.urandom(2 * MB)
    cases = {
        "md5": ({"ContentMD5": base64.b64encode(hashlib.md5(b"other").digest()).decode()}, "BadDigest"),
        "sha256": ({"ChecksumSHA256": base64.b64encode(hashlib.sha256(b"other").digest()).decode()}, "BadDigest"),
        "crc32": ({"ChecksumCRC32": base64.b64encode(b"\0\0\0\0").decode()}, "BadDigest"),
    }
    for key, (extra, code) in cases.items():
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        assert _error(exc) == (code, 400), key
        assert _absent(s3, bucket, key)

    # The body changed after boto3 signed its SHA-256.
    plain = _plain_client(server)
    plain.meta.events.register("before-send.s3.PutObject", _flip_a_bit)
    with pytest.raises(ClientError) as exc:
        plain.put_object(Bucket=bucket, Key="tampered", Body=body)
    assert _error(exc) == ("XAmzContentSHA256Mismatch", 400)
    fields = exc.value.response["Error"]
    assert fields["ClientComputedContentSHA256"] == hashlib.sha256(body).hexdigest()
    assert fields["S3ComputedContentSHA256"] not in (fields["ClientComputedContentSHA256"], None)
    assert _absent(s3, bucket, "tampered")
    assert not _leftovers(server)
    # A trailing checksum that does not match the body.
    trailer_bad = _unsigned_trailer_body(body, "x-amz-checksum-crc32", base64.b64encode(b"\0\0\0\1").decode())
    status, text = _raw_put(server, bucket, "trailer-bad", trailer_bad, {
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "content-encoding": "aws-chunked",
        "x-amz-trailer": "x-amz-checksum-crc32", "x-amz-decoded-content-length": str(len(body))})
    assert (status, "<Code>BadDigest</Code>" in text) == (400, True), text
    assert _absent(s3, bucket, "trailer-bad")
    assert not _leftovers(server)


def test_upload_part_tampered_or_bad_checksum_is_not_recorded(server: StratumServer, s3: Any, bucket: str) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA256")["UploadId"]
    part1 = os.urandom(5 * MB)
    part2 = os.urandom(MB)
    first = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=part1,
                           ChecksumAlgorithm="SHA256")
    assert first["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(part1).digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=2, Body=part2,
                       ChecksumSHA256=base64.b64encode(hashlib.sha256(b"x").digest()).decode())
    assert _error(exc) == ("BadDigest", 400)

    plain = _plain_client(server)
    plain.meta.events.register("before-send.s3.UploadPart", _flip_a_bit)
    with pytest.raises(ClientError) as exc:
        plain.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=2, Body=part2)
    assert _error(exc) == ("XAmzContentSHA256Mismatch", 400)
    parts = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1]
    assert not _leftovers(server)
    second = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=2, Body=part2,
                            ChecksumAlgorithm="SHA256")
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": first["ETag"], "ChecksumSHA256": first["ChecksumSHA256"]},
        {"PartNumber": 2, "ETag": second["ETag"], "ChecksumSHA256": second["ChecksumSHA256"]}]})
    assert done["ETag"].endswith('-2"')
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == part1 + part2


def test_presigned_put_streams_and_round_trips(server: StratumServer, s3: Any, bucket: str) -> None:
    import boto3
    from botocore.config import Config

    ak, sk = server.creds()
    v4 = boto3.client("s3", endpoint_url=server.endpoint_url, region_name=REGION, aws_access_key_id=ak,
                      aws_secret_access_key=sk, config=Config(signature_version="s3v4",
                                                              s3={"addressing_style": "path"}))
    body = os.urandom(4 * MB + 7)
    # boto3's default presigned form (SigV2 query) and the SigV4 one.
    for client, marker in ((s3, "Signature="), (v4, "X-Amz-Signature=")):
        url = client.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": marker}, ExpiresIn=300)
        assert marker in url
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        path = url.split(str(server.port), 1)[1]
        conn.request("PUT", path, body=_pieces(body, 100_000), headers={"Content-Length": str(len(body))})
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        assert resp.getheader("ETag") == f'"{hashlib.md5(body).hexdigest()}"'
        conn.close()
        assert s3.get_object(Bucket=bucket, Key=marker)["Body"].read() == body


def test_sse_kms_and_sse_s3_uploads_stream_and_read_back(s3: Any, bucket: str) -> None:
    body = os.urandom(3 * MB + 5)
    s3.put_object(Bucket=bucket, Key="kms", Body=body, ServerSideEncryption="aws:kms")
    got = s3.get_object(Bucket=bucket, Key="kms", Range="bytes=65530-2000000")
    assert got["ServerSideEncryption"] == "aws:kms"
    assert got["Body"].read() == body[65530:2000001]
    assert s3.get_object(Bucket=bucket, Key="kms")["Body"].read() == body


def test_refused_upload_is_answered_before_its_body(server: StratumServer, s3: Any, bucket: str,
                                                    tmp_path: Path) -> None:
    """boto3 sends file bodies with Expect: 100-continue; a refused upload is answered at once, the
    body is not sent, and the client's next request on the pool works."""
    src = tmp_path / "refused.bin"
    _write_file(src, 8 * MB)
    other = server.client("s3", "test")
    with open(src, "rb") as fh, pytest.raises(ClientError) as exc:
        other.put_object(Bucket=bucket, Key="refused", Body=fh)
    assert _error(exc) == ("AccessDenied", 403)
    with open(src, "rb") as fh, pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=_name("missing"), Key="k", Body=fh)
    assert _error(exc) == ("NoSuchBucket", 404)
    s3.put_object(Bucket=bucket, Key="after", Body=b"fine")
    assert s3.get_object(Bucket=bucket, Key="after")["Body"].read() == b"fine"
    assert _absent(s3, bucket, "refused")


# ------------------------------------------------------------------------- aws-chunked, signed
def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def _unsigned_trailer_body(payload: bytes, name: str, value: str, chunk: int = 64 * 1024) -> bytes:
    out = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in _pieces(payload, chunk))
    return out + b"0\r\n" + f"{name}:{value}\r\n\r\n".encode()


def _raw_put(server: StratumServer, bucket: str, key: str, body: bytes, headers: dict[str, str],
             *, sign: bool = True) -> tuple[int, str]:
    """PUT ``body`` as is, signed by botocore over the given headers (x-amz-content-sha256 kept)."""
    url = f"{server.endpoint_url}/{bucket}/{key}"
    request = AWSRequest("PUT", url, headers={**headers, "Content-Length": str(len(body))})
    if sign:
        ak, sk = server.creds()
        SigV4Auth(Credentials(ak, sk), "s3", REGION).add_auth(request)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("PUT", f"/{bucket}/{key}", body=_pieces(body, 256 * 1024), headers=dict(request.headers))
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def _signed_chunked(server: StratumServer, bucket: str, key: str, payload: bytes, *, trailer: tuple[str, str] | None,
                    tamper_chunk: int | None = None, chunk: int = 64 * 1024) -> tuple[int, str]:
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER) as the AWS documentation describes it."""
    ak, sk = server.creds()
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailer else "")
    chunks = [payload[i:i + chunk] for i in range(0, len(payload), chunk)] + [b""]
    headers = {"x-amz-content-sha256": mode, "content-encoding": "aws-chunked",
               "x-amz-decoded-content-length": str(len(payload))}
    if trailer:
        headers["x-amz-trailer"] = trailer[0]
    request = AWSRequest("PUT", f"{server.endpoint_url}/{bucket}/{key}", headers=headers)
    SigV4Auth(Credentials(ak, sk), "s3", REGION).add_auth(request)
    auth = request.headers["Authorization"]
    seed = auth.rsplit("Signature=", 1)[1]
    amz_date = request.headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
    key_bytes = _signing_key(sk, amz_date[:8])
    out = bytearray()
    previous = seed
    for i, data in enumerate(chunks):
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, EMPTY_SHA256,
                             hashlib.sha256(data).hexdigest()])
        previous = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        sent = data
        if tamper_chunk == i:
            sent = bytes([data[0] ^ 1]) + data[1:]
        out += f"{len(data):x};chunk-signature={previous}\r\n".encode() + sent + (b"\r\n" if data else b"")
    if trailer:
        canonical = f"{trailer[0]}:{trailer[1]}\n"
        to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, previous,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        trailer_sig = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
        out += f"{trailer[0]}:{trailer[1]}\r\nx-amz-trailer-signature:{trailer_sig}\r\n\r\n".encode()
    else:
        out += b"\r\n"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("PUT", f"/{bucket}/{key}", body=_pieces(bytes(out), 100_000),
                     headers={**dict(request.headers), "Content-Length": str(len(out))})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def _signing_key(secret: str, date: str) -> bytes:
    key = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def test_signed_aws_chunked_uploads_and_tampering(server: StratumServer, s3: Any, bucket: str) -> None:
    payload = os.urandom(2 * MB + 1000)
    status, text = _signed_chunked(server, bucket, "signed", payload, trailer=None)
    assert status == 200, text
    assert s3.get_object(Bucket=bucket, Key="signed")["Body"].read() == payload

    sha = base64.b64encode(hashlib.sha256(payload).digest()).decode()
    status, text = _signed_chunked(server, bucket, "signed-trailer", payload,
                                   trailer=("x-amz-checksum-sha256", sha))
    assert status == 200, text
    got = s3.get_object(Bucket=bucket, Key="signed-trailer", ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"] == sha and got["Body"].read() == payload

    status, text = _signed_chunked(server, bucket, "tampered", payload, trailer=None, tamper_chunk=5)
    assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in text, text
    other = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    status, text = _signed_chunked(server, bucket, "bad-trailer", payload, trailer=("x-amz-checksum-sha256", other))
    assert status == 400 and "<Code>BadDigest</Code>" in text, text
    for key in ("tampered", "bad-trailer"):
        assert _absent(s3, bucket, key)
    assert not _leftovers(server)


def test_unsigned_trailer_with_undeclared_or_missing_trailer_is_refused(server: StratumServer, s3: Any,
                                                                        bucket: str) -> None:
    payload = os.urandom(300_000)
    crc = base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode()
    base = {"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "content-encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(payload))}
    status, text = _raw_put(server, bucket, "ok", _unsigned_trailer_body(payload, "x-amz-checksum-crc32", crc),
                            {**base, "x-amz-trailer": "x-amz-checksum-crc32"})
    assert status == 200, text
    assert s3.head_object(Bucket=bucket, Key="ok", ChecksumMode="ENABLED")["ChecksumCRC32"] == crc
    status, text = _raw_put(server, bucket, "undeclared",
                            _unsigned_trailer_body(payload, "x-amz-checksum-crc32", crc), base)
    assert status == 400 and "MalformedTrailerError" in text, text
    status, text = _raw_put(server, bucket, "short", _unsigned_trailer_body(payload, "x-amz-checksum-crc32", crc),
                            {**base, "x-amz-trailer": "x-amz-checksum-crc32",
                             "x-amz-decoded-content-length": str(len(payload) + 1)})
    assert status == 400 and "IncompleteBody" in text, text
    assert _absent(s3, bucket, "undeclared") and _absent(s3, bucket, "short")
    # CRC-32C (checked against the catalogue's values in the unit tests) in a trailer and a header.
    c32c = base64.b64encode(crc32c(payload).to_bytes(4, "big")).decode()
    status, text = _raw_put(server, bucket, "c32c", _unsigned_trailer_body(payload, "x-amz-checksum-crc32c", c32c),
                            {**base, "x-amz-trailer": "x-amz-checksum-crc32c"})
    assert status == 200, text
    status, text = _raw_put(server, bucket, "c32c-header", payload, {
        "x-amz-content-sha256": hashlib.sha256(payload).hexdigest(), "x-amz-checksum-crc32c": c32c})
    assert status == 200, text
    for key in ("c32c", "c32c-header"):
        got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert got["ChecksumCRC32C"] == c32c and got["Body"].read() == payload
    assert not _leftovers(server)


# ----------------------------------------------------------------------- buffered bodies are capped
def test_oversized_buffered_body_is_refused_in_the_service_format(server: StratumServer) -> None:
    runtime = server.client("sagemaker-runtime")
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(EndpointName="nowhere", Body=b"x" * (40 * MB), ContentType="text/csv")
    assert _error(exc) == ("RequestEntityTooLarge", 413)
    s3 = server.client("s3")
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_policy(Bucket=_name(), Policy="{" + " " * (40 * MB) + "}")
    assert _error(exc) == ("MaxMessageLengthExceeded", 400)


def test_slow_uploads_do_not_stall_other_requests(server: StratumServer, s3: Any, bucket: str) -> None:
    """Each streamed upload holds a thread while its client sends; a dozen clients trickling their
    bodies must not starve the threads every other blocking handler (GetObject...) runs on."""
    import socket
    import time

    s3.put_object(Bucket=bucket, Key="small", Body=b"still served")
    size = 256 * 1024
    ak, sk = server.creds()
    sockets = []
    try:
        for i in range(12):
            request = AWSRequest("PUT", f"{server.endpoint_url}/{bucket}/slow-{i}", headers={
                "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": str(size)})
            SigV4Auth(Credentials(ak, sk), "s3", REGION).add_auth(request)
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            head = f"PUT /{bucket}/slow-{i} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in request.headers.items()) + "\r\n"
            sock.sendall(head.encode() + b"x" * 1024)  # the rest of the body comes later
            sockets.append(sock)
        time.sleep(0.5)  # every upload handler is now waiting for its body
        started = time.monotonic()
        assert s3.get_object(Bucket=bucket, Key="small")["Body"].read() == b"still served"
        assert s3.head_object(Bucket=bucket, Key="small")["ContentLength"] == 12
        assert time.monotonic() - started < 5
        for sock in sockets:
            sock.sendall(b"x" * (size - 1024))
        for sock in sockets:
            assert sock.recv(4096).startswith(b"HTTP/1.1 200"), "upload failed"
    finally:
        for sock in sockets:
            sock.close()
    assert s3.head_object(Bucket=bucket, Key="slow-11")["ContentLength"] == size


@pytest.fixture
def impatient_server(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
                     ) -> Iterator[StratumServer]:
    from stratum_testing import BACKENDS, close_server, make_server

    monkeypatch.setenv("STRATUM_BODY_IDLE_TIMEOUT", "1")
    srv = make_server(tmp_path_factory, BACKENDS[0])
    srv.start()
    yield srv
    close_server(srv)


@pytest.mark.slow  # starts a server of its own
def test_silent_upload_times_out_and_frees_its_thread(impatient_server: StratumServer) -> None:
    import socket
    import time

    server = impatient_server
    s3 = server.client("s3")
    bucket = _name()
    s3.create_bucket(Bucket=bucket)
    ak, sk = server.creds()
    request = AWSRequest("PUT", f"{server.endpoint_url}/{bucket}/silent", headers={
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "Content-Length": "100000"})
    SigV4Auth(Credentials(ak, sk), "s3", REGION).add_auth(request)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        head = f"PUT /{bucket}/silent HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in request.headers.items()) + "\r\n"
        started = time.monotonic()
        sock.sendall(head.encode() + b"x" * 1000)  # then nothing more
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        assert time.monotonic() - started < 10
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b"<Code>RequestTimeout</Code>" in answer and b"connection: close" in answer.lower()
    assert _absent(s3, bucket, "silent")
    assert not _leftovers(server)
