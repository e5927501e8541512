"""S3 through the AWS CLI (high-level `aws s3` transfers and `aws s3api`), as users run it."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

from stratum_testing import StratumServer

MB = 1024 * 1024


def _data(size: int, seed: bytes) -> bytes:
    block = hashlib.sha256(seed).digest() * (MB // 32)
    return (block * (size // len(block) + 1))[:size]


def test_cli_cp_multipart_ls_sync_rm(server: StratumServer, tmp_path: Path) -> None:
    bucket = f"cli-{uuid.uuid4().hex[:12]}"
    out = server.aws_cli("s3", "mb", f"s3://{bucket}")
    assert f"make_bucket: {bucket}" in out.stdout

    big = tmp_path / "big.bin"
    big.write_bytes(_data(20 * MB, b"big"))
    # 20 MB is above the CLI's 8 MB multipart threshold: CreateMultipartUpload + 3 parts.
    server.aws_cli("s3", "cp", str(big), f"s3://{bucket}/data/big.bin")
    head = json.loads(server.aws_cli("s3api", "head-object", "--bucket", bucket, "--key", "data/big.bin").stdout)
    assert head["ContentLength"] == 20 * MB
    assert head["ETag"].endswith('-3"')

    down = tmp_path / "down.bin"
    server.aws_cli("s3", "cp", f"s3://{bucket}/data/big.bin", str(down))
    assert hashlib.sha256(down.read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()

    tree = tmp_path / "tree"
    for rel, content in {"a.txt": b"a", "sub/b.txt": b"bb", "sub/deeper/c.txt": b"ccc",
                         "with space.txt": b"s"}.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(content)
    sync = server.aws_cli("s3", "sync", str(tree), f"s3://{bucket}/tree/")
    assert sync.stdout.count("upload:") == 4
    # A second sync has nothing to do (sizes and timestamps match what ListObjectsV2 reports).
    assert "upload:" not in server.aws_cli("s3", "sync", str(tree), f"s3://{bucket}/tree/").stdout

    listing = server.aws_cli("s3", "ls", f"s3://{bucket}/tree/").stdout
    assert "PRE sub/" in listing and "a.txt" in listing and "with space.txt" in listing
    recursive = server.aws_cli("s3", "ls", "--recursive", f"s3://{bucket}/").stdout
    assert "tree/sub/deeper/c.txt" in recursive and "data/big.bin" in recursive
    assert bucket in server.aws_cli("s3", "ls").stdout

    back = tmp_path / "back"
    server.aws_cli("s3", "sync", f"s3://{bucket}/tree/", str(back))
    assert (back / "sub/deeper/c.txt").read_bytes() == b"ccc"
    assert (back / "with space.txt").read_bytes() == b"s"

    rm = server.aws_cli("s3", "rm", "--recursive", f"s3://{bucket}/")
    assert rm.stdout.count("delete:") == 5
    server.aws_cli("s3", "rb", f"s3://{bucket}")
    missing = server.aws_cli("s3api", "head-bucket", "--bucket", bucket, check=False)
    assert missing.returncode != 0 and "404" in missing.stderr


def test_cli_s3api(server: StratumServer, tmp_path: Path) -> None:
    bucket = f"api-{uuid.uuid4().hex[:12]}"
    server.aws_cli("s3api", "create-bucket", "--bucket", bucket)
    body = tmp_path / "body.json"
    body.write_text('{"hello": "world"}')
    put = json.loads(server.aws_cli("s3api", "put-object", "--bucket", bucket, "--key", "cfg/app.json",
                                    "--body", str(body), "--content-type", "application/json",
                                    "--metadata", "team=ml").stdout)
    assert put["ETag"] == f'"{hashlib.md5(body.read_bytes()).hexdigest()}"'
    listed = json.loads(server.aws_cli("s3api", "list-objects-v2", "--bucket", bucket, "--prefix", "cfg/").stdout)
    assert [o["Key"] for o in listed["Contents"]] == ["cfg/app.json"]
    out = tmp_path / "out.json"
    got = json.loads(server.aws_cli("s3api", "get-object", "--bucket", bucket, "--key", "cfg/app.json",
                                    str(out)).stdout)
    assert got["ContentType"] == "application/json" and got["Metadata"] == {"team": "ml"}
    assert out.read_text() == '{"hello": "world"}'
    location = json.loads(server.aws_cli("s3api", "get-bucket-location", "--bucket", bucket).stdout)
    assert location["LocationConstraint"] is None
    missing = server.aws_cli("s3api", "get-object", "--bucket", bucket, "--key", "nope", os.devnull, check=False)
    assert missing.returncode != 0 and "NoSuchKey" in missing.stderr
    server.aws_cli("s3api", "delete-object", "--bucket", bucket, "--key", "cfg/app.json")
    server.aws_cli("s3api", "delete-bucket", "--bucket", bucket)
