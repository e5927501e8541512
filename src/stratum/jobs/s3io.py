"""S3 transfers of a job, made as its execution role through the Stratum endpoint (boto3), exactly
as a SageMaker container's data would move: the role's policies and the bucket policies apply."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from botocore.config import Config


class JobDataError(Exception):
    """Input or output data problem; the message becomes the job's FailureReason."""


def split_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise JobDataError(f"ClientError: {uri} is not a valid S3 URI")
    return parsed.netloc, parsed.path.lstrip("/")


def join_uri(base: str, *parts: str) -> str:
    uri = base.rstrip("/")
    for part in parts:
        if part:
            uri += "/" + part.strip("/")
    return uri


MULTIPART_THRESHOLD = 64 * 1024 * 1024  # larger files go through s3transfer's multipart upload
_session_lock = threading.Lock()
_session: Any = None


def _botocore_session() -> Any:
    global _session
    if _session is None:
        import botocore.session

        session = botocore.session.get_session()
        # Credentials are given per client; nothing may come from the server's own environment.
        session.set_config_variable("profile", None)
        _session = session
    return _session


class S3:
    """A lazily created S3 client with the job's role session. With ``kms_key_id`` (the job's output
    KmsKeyId) every upload is SSE-KMS with that key, as SageMaker writes a job's outputs: the key
    is used as the role, and bucket policies on the encryption headers see it."""

    def __init__(self, endpoint_url: str, region: str, credentials: dict[str, str],
                 kms_key_id: str | None = None) -> None:
        self._args = {"endpoint_url": endpoint_url, "region": region, "credentials": credentials}
        self._client: Any = None
        self._encryption: dict[str, str] = (
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {})

    @property
    def client(self) -> Any:
        if self._client is None:
            creds = self._args["credentials"]
            # One botocore session per process: its loader keeps the S3 model parsed, so a job's
            # client costs milliseconds instead of re-reading the model (credentials are per client).
            with _session_lock:
                self._client = _botocore_session().create_client(
                    "s3", region_name=self._args["region"], endpoint_url=self._args["endpoint_url"],
                    aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                    aws_session_token=creds["SessionToken"],
                    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"},
                                  connect_timeout=10, read_timeout=300))
        return self._client

    def _call(self, what: str, func: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return func(**kwargs)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise JobDataError(f"ClientError: {what}: {err.get('Code')}: {err.get('Message')}") from None
        except BotoCoreError as exc:
            raise JobDataError(f"ClientError: {what}: {exc}") from None

    def list_objects(self, uri: str) -> Iterator[tuple[str, str]]:
        """(bucket, key) of every object under the prefix ``uri`` (an exact key is its own prefix)."""
        bucket, prefix = split_uri(uri)
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(f"listing {uri}", self.client.list_objects_v2, **kwargs)
            for obj in page.get("Contents") or []:
                if not obj["Key"].endswith("/"):
                    yield bucket, obj["Key"]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def download_prefix(self, uri: str, target: Path) -> list[Path]:
        """Mirror the objects under ``uri`` into ``target``, keyed by their path below the prefix."""
        _, prefix = split_uri(uri)
        files = []
        for bucket, key in self.list_objects(uri):
            dest = target / relative_key(prefix, key)
            self.download(bucket, key, dest)
            files.append(dest)
        return files

    def download(self, bucket: str, key: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        body = self._call(f"downloading s3://{bucket}/{key}", self.client.get_object, Bucket=bucket, Key=key)["Body"]
        tmp = dest.with_name(dest.name + ".part")
        with open(tmp, "wb") as f:
            for chunk in body.iter_chunks(1 << 20):
                f.write(chunk)
        os.replace(tmp, dest)

    def get_bytes(self, uri: str) -> bytes:
        bucket, key = split_uri(uri)
        return bytes(self._call(f"downloading {uri}", self.client.get_object, Bucket=bucket, Key=key)["Body"].read())

    def upload_file(self, path: Path, uri: str) -> None:
        bucket, key = split_uri(uri)
        if path.stat().st_size > MULTIPART_THRESHOLD:
            self._call(f"uploading to {uri}", self.client.upload_file, Filename=str(path), Bucket=bucket, Key=key,
                       ExtraArgs=dict(self._encryption) or None)
            return
        with open(path, "rb") as body:
            self._call(f"uploading to {uri}", self.client.put_object, Bucket=bucket, Key=key, Body=body,
                       **self._encryption)

    def put_bytes(self, data: bytes, uri: str, content_type: str | None = None) -> None:
        bucket, key = split_uri(uri)
        extra = {"ContentType": content_type} if content_type else {}
        extra.update(self._encryption)
        self._call(f"uploading to {uri}", self.client.put_object, Bucket=bucket, Key=key, Body=data, **extra)

    def upload_dir(self, directory: Path, uri: str) -> int:
        count = 0
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                self.upload_file(path, join_uri(uri, path.relative_to(directory).as_posix()))
                count += 1
        return count


def relative_key(prefix: str, key: str) -> str:
    """Where an object under an S3 prefix lands below the local directory, as SageMaker does it."""
    rest = key[len(prefix):]
    if not rest:
        return key.rsplit("/", 1)[-1]
    if rest.startswith("/") or prefix.endswith("/") or not prefix:
        return rest.lstrip("/")
    # The prefix ends inside a path component ("data/tr" for "data/train/a.csv"): keep the component.
    return prefix.rsplit("/", 1)[-1] + rest


def has_files(directory: Path) -> bool:
    return directory.is_dir() and any(p.is_file() for p in directory.rglob("*"))
