"""Function code: zip archives stored once by content under the data directory
(``lambda/code/<sha256>.zip``), read from a ZipFile parameter or from S3 as the caller, and
unpacked once per archive into the task roots execution environments run in."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stratum.protocol.errors import ServiceError
from stratum.services.lambda_.names import invalid

if TYPE_CHECKING:
    from stratum.server.context import RequestContext

MAX_ZIP_BYTES = 50 * 1024 * 1024  # Lambda's limit for a direct upload
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024


def code_root(data_dir: Path) -> Path:
    return Path(data_dir) / "lambda" / "code"


def zip_path(data_dir: Path, sha_hex: str) -> Path:
    return code_root(data_dir) / f"{sha_hex}.zip"


def sha256_b64(sha_hex: str) -> str:
    """CodeSha256 as the API shows it: the base64 of the digest."""
    return base64.b64encode(bytes.fromhex(sha_hex)).decode()


def check_zip(data: bytes) -> None:
    if len(data) > MAX_ZIP_BYTES:
        raise ServiceError("RequestEntityTooLargeException",
                           f"Request must be smaller than {MAX_ZIP_BYTES} bytes for the CreateFunction operation",
                           413, fields={"Type": "User"})
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(i.file_size for i in archive.infolist())
            bad = archive.testzip()
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise invalid("Could not unzip uploaded file. Please check your file, then try to upload again.") from None
    if bad is not None:
        raise invalid("Could not unzip uploaded file. Please check your file, then try to upload again.")
    if total > MAX_UNZIPPED_BYTES:
        raise invalid(f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes")


def store_zip(data_dir: Path, data: bytes) -> tuple[str, int]:
    """Keep the archive (once per content); returns (sha256 hex, size)."""
    check_zip(data)
    sha = hashlib.sha256(data).hexdigest()
    target = zip_path(data_dir, sha)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    return sha, len(data)


def unzipped_size(data_dir: Path, sha_hex: str) -> int:
    with zipfile.ZipFile(zip_path(data_dir, sha_hex)) as archive:
        return sum(i.file_size for i in archive.infolist())


def code_from_params(ctx: RequestContext, code: dict[str, Any]) -> bytes:
    """The archive a Code (or UpdateFunctionCode) parameter names: ZipFile bytes, or an S3 object
    read with the caller's permissions."""
    if code.get("ImageUri"):
        raise invalid("Container image functions are not supported by Stratum: use a .zip file archive.")
    zipped = code.get("ZipFile")
    bucket, key = code.get("S3Bucket"), code.get("S3Key")
    if zipped is not None and (bucket or key):
        raise invalid("Please do not provide other FunctionCode properties when providing a ZipFile")
    if zipped is not None:
        return bytes(zipped)
    if not bucket or not key:
        raise invalid("Please provide a source for function code.")
    return _read_s3(ctx, bucket, key, code.get("S3ObjectVersion"))


def _read_s3(ctx: RequestContext, bucket_name: str, key: str, version: str | None) -> bytes:
    from stratum.services.s3 import catalog
    from stratum.services.s3.access import read_bytes
    from stratum.services.s3.naming import object_arn

    message = ("Error occurred while GetObject. S3 Error Code: NoSuchKey. S3 Error Message: The specified key "
               "does not exist.")
    with ctx.app.db.read() as conn:
        bucket = catalog.get_bucket(conn, bucket_name)
        if bucket is None:
            raise invalid("Error occurred while GetObject. S3 Error Code: NoSuchBucket. S3 Error Message: "
                          "The specified bucket does not exist")
        ctx.authorize("s3:GetObjectVersion" if version else "s3:GetObject", object_arn(bucket_name, key),
                      resource_account=bucket.account_id, resource_policy=bucket.policy,
                      context={"s3:VersionId": version} if version else None)
        obj = catalog.get_version(conn, bucket_name, key, version) if (
            version is None or catalog.valid_version_id(version)) else None
        if obj is None or obj.delete_marker or not obj.storage_path:
            raise invalid(message)
        if obj.size > MAX_ZIP_BYTES * 5:
            raise invalid(f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes")
        return read_bytes(ctx.app, bucket, obj, ctx=ctx)


def task_root(data_dir: Path, sha_hex: str) -> Path:
    """The archive unpacked (once; shared by every environment of every version with this code)."""
    return _unpacked(Path(data_dir) / "lambda" / "tasks" / sha_hex, [zip_path(data_dir, sha_hex)])


def layers_root(data_dir: Path, digests: list[str]) -> Path:
    """What Lambda puts in /opt for a function's layers: their archives unpacked in order into one
    directory, a later layer's files replacing an earlier one's (once per list of layers)."""
    key = hashlib.sha256(",".join(digests).encode()).hexdigest()
    return _unpacked(Path(data_dir) / "lambda" / "opt" / key, [zip_path(data_dir, d) for d in digests])


def _unpacked(root: Path, archives: list[Path]) -> Path:
    if root.is_dir():
        return root
    staging = Path(tempfile.mkdtemp(dir=root.parent if root.parent.is_dir() else _mk(root.parent), prefix=".unpack-"))
    inside = str(staging.resolve()) + os.sep
    for path in archives:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                target = (staging / info.filename).resolve()
                if not str(target).startswith(inside) and target != staging.resolve():
                    continue  # a member outside the root is skipped, as unzip -: would refuse it
                archive.extract(info, staging)
                mode = (info.external_attr >> 16) & 0o777
                if mode and not info.is_dir():
                    os.chmod(target, mode | 0o400)
    try:
        os.rename(staging, root)
    except OSError:  # another environment unpacked it first
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def zip_directory(path: Path | None) -> bytes:
    """A directory as a zip archive (``stratum lambda register --path``), without caches; no
    directory is an empty archive."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(Path(path).rglob("*")) if path is not None else []:
            if "__pycache__" in file.parts or not file.is_file():
                continue
            archive.write(file, file.relative_to(path).as_posix())  # type: ignore[arg-type]
    return buffer.getvalue()
