"""Shared plumbing for the S3 operation mixins: bucket lookup, authorization and response helpers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from stratum.protocol.errors import ServiceError
from stratum.server.context import Provider, RequestContext

from . import blobcrypt, catalog
from .catalog import Bucket, ObjectVersion
from .errors import access_denied, no_such_bucket, no_such_key
from .naming import MAX_KEY_BYTES, bucket_arn, object_arn
from .objectstore import BlobInfo, ObjectStore
from .sse import Encryption, ServerSideEncryption

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

# Object headers kept per version, by output member name (PutObject/CopyObject/CreateMultipartUpload
# input members of the same name).
STORED_HEADERS = ("CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage", "Expires",
                  "WebsiteRedirectLocation", "StorageClass")
STANDARD = "STANDARD"
SSE_DEFAULT = "AES256"  # S3 encrypts every object at rest (SSE-S3) and says so


class S3Base(Provider):
    service = "s3"

    def __init__(self, app: AppState) -> None:
        super().__init__(app)
        self.store = ObjectStore(app.settings.objects_dir)
        self.sse = ServerSideEncryption(app)

    # ------------------------------------------------------------------------------- lookups
    def load_bucket(self, name: str) -> Bucket | None:
        with self.app.db.read() as conn:
            return catalog.get_bucket(conn, name)

    def bucket(self, ctx: RequestContext, params: dict[str, Any], name_param: str = "Bucket") -> Bucket:
        """The bucket named by the request. NoSuchBucket comes before any authorization decision,
        as in S3 (bucket names are global, so existence is not a secret)."""
        name = params[name_param]
        found = self.load_bucket(name)
        if found is None:
            raise no_such_bucket(name)
        expected = params.get("ExpectedBucketOwner")
        if expected is not None and expected != found.account_id:
            raise access_denied()
        return found

    # ---------------------------------------------------------------------------- authorization
    def s3_context(self, ctx: RequestContext, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = ctx.http.headers
        keys: dict[str, Any] = {}
        if "authorization" in headers:
            keys["s3:authType"] = "REST-HEADER"
            keys["s3:signatureversion"] = "AWS4-HMAC-SHA256"
        elif ctx.http.query_value("X-Amz-Signature") is not None:
            keys["s3:authType"] = "REST-QUERY-STRING"
            keys["s3:signatureversion"] = "AWS4-HMAC-SHA256"
        sha = headers.get("x-amz-content-sha256")
        if sha:
            keys["s3:x-amz-content-sha256"] = sha
        sse = headers.get("x-amz-server-side-encryption")
        if sse:
            keys["s3:x-amz-server-side-encryption"] = sse
        kms_key = headers.get("x-amz-server-side-encryption-aws-kms-key-id")
        if kms_key:
            keys["s3:x-amz-server-side-encryption-aws-kms-key-id"] = kms_key
        acl = headers.get("x-amz-acl")
        if acl:
            keys["s3:x-amz-acl"] = acl
        if extra:
            keys.update({k: v for k, v in extra.items() if v is not None})
        return keys

    def authorize(self, ctx: RequestContext, action: str, bucket: Bucket, key: str | None = None,
                  context: dict[str, Any] | None = None) -> None:
        ctx.authorize(action, bucket_arn(bucket.name) if key is None else object_arn(bucket.name, key),
                      resource_account=bucket.account_id, resource_policy=bucket.policy,
                      context=self.s3_context(ctx, context))

    def allowed(self, ctx: RequestContext, action: str, bucket: Bucket, key: str | None = None,
                context: dict[str, Any] | None = None) -> bool:
        """A decision without raising (per-key checks in DeleteObjects, NoSuchKey vs AccessDenied)."""
        _request, decision = self.app.authorizer.check(
            ctx, action, bucket_arn(bucket.name) if key is None else object_arn(bucket.name, key),
            resource_account=bucket.account_id, resource_policy=bucket.policy,
            context=self.s3_context(ctx, context))
        return bool(decision.allowed)

    def missing_key(self, ctx: RequestContext, bucket: Bucket, key: str, *,
                    headers: dict[str, str] | None = None) -> ServiceError:
        """S3 only admits that a key is absent to callers allowed to list the bucket."""
        if not self.allowed(ctx, "s3:ListBucket", bucket):
            return access_denied()
        err = no_such_key(key)
        if headers:
            err.headers.update(headers)
        return err

    # ---------------------------------------------------------------------------------- helpers
    @staticmethod
    def check_key(key: str) -> None:
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise ServiceError("KeyTooLongError", "Your key is too long", 400,
                               fields={"MaxSizeAllowed": MAX_KEY_BYTES, "Size": len(key.encode("utf-8"))})

    @staticmethod
    def version_header(bucket: Bucket, version: ObjectVersion) -> dict[str, str]:
        """x-amz-version-id is sent once a bucket has had versioning configured."""
        if bucket.versioning is None and version.version_id == catalog.NULL_VERSION:
            return {}
        return {"VersionId": version.version_id}

    # ------------------------------------------------------------------------------- object bytes
    def write_blob(self, path: str, chunks: Iterable[bytes], data_key: bytes | None) -> BlobInfo:
        """Store ``chunks`` encrypted under ``data_key`` (in the clear only for uploads that predate
        encryption at rest); size and MD5 are the plaintext's, as the object reports them."""
        if data_key is None:
            return self.store.put_stream(path, chunks)
        stats = blobcrypt.PlainStats()
        blob = self.store.put_stream(path, blobcrypt.seal(chunks, data_key, stats), digest=False)
        return BlobInfo(blob.path, stats.size, stats.md5)

    def read_blob(self, path: str, size: int, data_key: bytes | None, first: int = 0, length: int | None = None
                  ) -> Iterator[bytes]:
        """Plaintext of a stored blob. The file is opened now (see ObjectStore.get)."""
        if data_key is None:
            return self.store.get(path, first, length)
        return blobcrypt.open_range(self.store.open(path), data_key, size, first, length)

    def object_key(self, ctx: RequestContext | None, bucket: Bucket, obj: ObjectVersion) -> bytes | None:
        """The object's data key, unwrapped as the caller (SSE-KMS: KMS Decrypt via S3)."""
        encryption = Encryption.from_row(obj.encryption)
        return self.sse.data_key(ctx, bucket, encryption) if encryption is not None else None

    def object_bytes(self, ctx: RequestContext | None, bucket: Bucket, obj: ObjectVersion, first: int = 0,
                     length: int | None = None) -> Iterator[bytes]:
        """An object's plaintext for a caller already authorized to read it (s3:GetObject)."""
        if obj.storage_path is None:
            return iter(())
        data_key = self.object_key(ctx, bucket, obj)  # even for no bytes: reading needs kms:Decrypt
        if obj.size == 0 or length == 0:
            return iter(())
        return self.read_blob(obj.storage_path, obj.size, data_key, first, length)

    def delete_blobs(self, paths: list[str] | None) -> None:
        if paths:
            self.store.delete_many(paths)
