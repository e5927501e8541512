"""Object operations: put/get/head/delete (single and batch) and server-side copy."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpResponse
from stratum.protocol.serializer import serialize_response
from stratum.protocol.service_models import service_model
from stratum.protocol.timestamps import to_rfc822
from stratum.server.context import RequestContext, blocking

from . import catalog, checksums
from .base import SSE_DEFAULT, STANDARD, STORED_HEADERS, S3Base
from .catalog import Bucket, DeleteResult, NewObject, ObjectVersion
from .errors import (
    access_denied,
    delete_marker_not_allowed,
    invalid_argument,
    invalid_request,
    malformed_xml,
    no_such_bucket,
    no_such_key,
    no_such_version,
    precondition_failed,
)
from .ranges import content_range, parse_range
from .sse import Encryption
from .uploads import UploadBody

INLINE_LIMIT = 256 * 1024  # smaller bodies are answered from memory, larger ones are streamed
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
MAX_METADATA_BYTES = 2048  # user metadata: sum of UTF-8 key and value lengths
_LEGACY_SSE_HEADERS = ("ServerSideEncryption", "SSEKMSKeyId")
_RESPONSE_OVERRIDES = {
    "ResponseCacheControl": "CacheControl", "ResponseContentDisposition": "ContentDisposition",
    "ResponseContentEncoding": "ContentEncoding", "ResponseContentLanguage": "ContentLanguage",
    "ResponseContentType": "ContentType", "ResponseExpires": "Expires",
}


# ------------------------------------------------------------------------------------- helpers
def object_fields(params: dict[str, Any]) -> tuple[str | None, dict[str, Any], dict[str, str]]:
    """(Content-Type, stored headers, user metadata) from PutObject-style input members."""
    headers: dict[str, Any] = {}
    for name in STORED_HEADERS:
        value = params.get(name)
        if value is None:
            continue
        if name == "Expires" and isinstance(value, datetime):
            value = to_rfc822(value)
        if name == "ContentEncoding":
            # aws-chunked only describes this request's framing; S3 does not store it.
            value = ",".join(t.strip() for t in value.split(",") if t.strip() and t.strip() != "aws-chunked")
            if not value:
                continue
        if name == "StorageClass" and value == STANDARD:
            continue
        headers[name] = value
    # Encryption is not a stored header: it is decided per write and kept in the row's encryption
    # record (see sse.py).
    metadata = dict(params.get("Metadata") or {})
    size = sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise ServiceError("MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size.", 400,
                           fields={"Size": size, "MaxSizeAllowed": MAX_METADATA_BYTES})
    return params.get("ContentType"), headers, metadata


def encryption_fields(obj: ObjectVersion) -> dict[str, Any]:
    """ServerSideEncryption / SSEKMSKeyId / BucketKeyEnabled of a stored object."""
    encryption = Encryption.from_row(obj.encryption)
    if encryption is not None:
        return encryption.response_fields()
    # Written before encryption at rest: report what the request asked for, as was stored then.
    return {"ServerSideEncryption": obj.headers.get("ServerSideEncryption", SSE_DEFAULT),
            **({"SSEKMSKeyId": obj.headers["SSEKMSKeyId"]} if "SSEKMSKeyId" in obj.headers else {})}


def reject_sse_c(params: dict[str, Any]) -> None:
    if params.get("SSECustomerAlgorithm") or params.get("CopySourceSSECustomerAlgorithm"):
        raise ServiceError("NotImplemented", "Server-side encryption with customer-provided keys (SSE-C) is not "
                           "supported by this server.", 501)


def etag_matches(condition: str, etag: str | None) -> bool:
    if etag is None:
        return False
    for item in condition.split(","):
        item = item.strip()
        if item == "*":
            return True
        if item.startswith("W/"):
            item = item[2:]
        if item.strip('"') == etag:
            return True
    return False


def _seconds(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def read_conditions(params: dict[str, Any], obj: ObjectVersion, prefix: str = "") -> str | None:
    """Evaluate If-Match/If-None-Match/If-(Un)Modified-Since the way S3 does: "412" raises, "304"
    is returned (the caller answers Not Modified)."""
    if_match = params.get(f"{prefix}IfMatch")
    if_none = params.get(f"{prefix}IfNoneMatch")
    modified = _seconds(obj.last_modified)
    if if_match is not None:
        if not etag_matches(if_match, obj.etag):
            raise precondition_failed("If-Match")
    elif params.get(f"{prefix}IfUnmodifiedSince") is not None and modified > params[f"{prefix}IfUnmodifiedSince"]:
        raise precondition_failed("If-Unmodified-Since")
    if if_none is not None:
        if etag_matches(if_none, obj.etag):
            return "304"
    elif params.get(f"{prefix}IfModifiedSince") is not None and modified <= params[f"{prefix}IfModifiedSince"]:
        return "304"
    return None


def parse_copy_source(value: str) -> tuple[str, str, str | None]:
    """x-amz-copy-source: "bucket/url-encoded-key[?versionId=...]" (a leading "/" is allowed)."""
    path, _, query = value.partition("?")
    version = None
    if query:
        version = (parse_qs(query).get("versionId") or [None])[0]
    decoded = unquote(path)
    bucket, _, key = decoded.lstrip("/").partition("/")
    if not bucket or not key or "\x00" in decoded:  # %00: a NUL no bucket or key holds (nor can PostgreSQL)
        raise invalid_argument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
                               "x-amz-copy-source", value)
    return bucket, key, version


def _tee(chunks: Iterable[bytes], hasher: checksums.Hasher | None) -> Iterator[bytes]:
    for chunk in chunks:
        if hasher is not None:
            hasher.update(chunk)
        yield chunk


class ObjectOps(S3Base):
    # --------------------------------------------------------------------------------- writing
    def commit_version(self, bucket_name: str, new: NewObject, *, if_match: str | None = None,
                       if_none_match: str | None = None) -> tuple[ObjectVersion, Bucket]:
        """Record a blob already written durably as the key's newest version. On any failure the
        blob is removed again; blobs the new version replaced are removed only after the commit."""
        try:
            with self.app.db.begin() as conn:
                bucket = catalog.lock_bucket(conn, bucket_name)
                if bucket is None:
                    raise no_such_bucket(bucket_name)
                catalog.lock_key(conn, bucket_name, new.key)
                if if_match is not None or if_none_match is not None:
                    current = catalog.get_version(conn, bucket_name, new.key)
                    live = current if current is not None and not current.delete_marker else None
                    if if_none_match is not None and live is not None and etag_matches(if_none_match, live.etag):
                        raise precondition_failed("If-None-Match")
                    if if_match is not None:
                        if live is None:
                            raise no_such_key(new.key)
                        if not etag_matches(if_match, live.etag):
                            raise precondition_failed("If-Match")
                version, obsolete = catalog.put_version(conn, bucket, new)
        except BaseException:
            self.store.delete(new.storage_path)
            raise
        self.delete_blobs(obsolete)
        return version, bucket

    def delete_one(self, bucket_name: str, key: str, version_id: str | None) -> DeleteResult:
        with self.app.db.begin() as conn:
            bucket = catalog.lock_bucket(conn, bucket_name)
            if bucket is None:
                raise no_such_bucket(bucket_name)
            catalog.lock_key(conn, bucket_name, key)
            result = catalog.delete_key(conn, bucket, key, version_id, bucket.account_id)
        self.delete_blobs(result.obsolete)
        return result

    @blocking
    def put_object(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        key = params["Key"]
        self.check_key(key)
        reject_sse_c(params)
        self.authorize(ctx, "s3:PutObject", bucket, key)
        body = UploadBody(ctx)
        content_type, headers, metadata = object_fields(params)
        encryption, data_key = self.sse.new_key(ctx, bucket, key, params)
        # Streamed to a temporary file; a body failing any check raises before it becomes the blob.
        blob = self.write_blob(self.store.new_object_path(bucket.name), body.pieces(), data_key)
        sums = body.result()
        if sums:
            sums["type"] = checksums.FULL_OBJECT
        new = NewObject(key, blob.size, blob.md5, blob.path, bucket.account_id, content_type, headers, metadata,
                        sums or None, encryption=encryption.to_row())
        version, bucket = self.commit_version(bucket.name, new, if_match=params.get("IfMatch"),
                                              if_none_match=params.get("IfNoneMatch"))
        return {"ETag": version.quoted_etag, **encryption.response_fields(with_context=True),
                **checksums.output_fields(version.checksums), **self.version_header(bucket, version)}

    # --------------------------------------------------------------------------------- reading
    def read_target(self, ctx: RequestContext, params: dict[str, Any], method: str) -> tuple[Bucket, ObjectVersion]:
        bucket = self.bucket(ctx, params)
        key = params["Key"]
        version_id = params.get("VersionId")
        if version_id is not None and not catalog.valid_version_id(version_id):
            raise invalid_argument("Invalid version id specified", "versionId", version_id)
        action = "s3:GetObjectVersion" if version_id else "s3:GetObject"
        self.authorize(ctx, action, bucket, key, context={"s3:VersionId": version_id})
        return bucket, self.load_version(ctx, bucket, key, version_id, method)

    def load_version(self, ctx: RequestContext, bucket: Bucket, key: str, version_id: str | None,
                     method: str) -> ObjectVersion:
        with self.app.db.read() as conn:
            obj = catalog.get_version(conn, bucket.name, key, version_id)
        if obj is None:
            if version_id is not None:
                raise no_such_version(key, version_id)
            raise self.missing_key(ctx, bucket, key)
        if obj.delete_marker:
            if version_id is not None:
                raise delete_marker_not_allowed(method, version_id)
            raise self.missing_key(ctx, bucket, key, headers={"x-amz-delete-marker": "true",
                                                              "x-amz-version-id": obj.version_id})
        return obj

    def object_output(self, bucket: Bucket, obj: ObjectVersion, params: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ETag": obj.quoted_etag, "LastModified": obj.last_modified, "AcceptRanges": "bytes",
            "ContentType": obj.content_type or DEFAULT_CONTENT_TYPE,
            **encryption_fields(obj), "Metadata": obj.metadata or None,
        }
        for name in STORED_HEADERS:
            if name in obj.headers:
                out[name] = obj.headers[name]
        out.update(self.version_header(bucket, obj))
        for param, member in _RESPONSE_OVERRIDES.items():
            if params.get(param) is not None:
                out[member] = params[param]
        return out

    def _read(self, ctx: RequestContext, params: dict[str, Any], method: str) -> dict[str, Any] | HttpResponse:
        reject_sse_c(params)
        bucket, obj = self.read_target(ctx, params, method)
        if read_conditions(params, obj) == "304":
            return HttpResponse(304, {"ETag": obj.quoted_etag, "Last-Modified": to_rfc822(obj.last_modified),
                                      "x-amz-request-id": ctx.request_id}, b"")
        out = self.object_output(bucket, obj, params)
        first, last, partial = 0, obj.size - 1, False
        part = params.get("PartNumber")
        if part is not None:
            if params.get("Range"):
                raise invalid_request("Cannot specify both Range header and partNumber query parameter")
            sizes = obj.parts or [obj.size]
            if not 1 <= part <= len(sizes):
                raise ServiceError("InvalidPartNumber", "The requested partnumber is not satisfiable", 416,
                                   fields={"PartNumberRequested": part, "ActualPartCount": len(sizes)})
            first = sum(sizes[: part - 1])
            last = first + sizes[part - 1] - 1
            partial = len(sizes) > 1
            out["PartsCount"] = len(sizes)
        else:
            rng = parse_range(params.get("Range"), obj.size)
            if rng is not None:
                (first, last), partial = rng, True
        length = max(0, last - first + 1)
        out["ContentLength"] = length
        if partial:
            out["ContentRange"] = content_range(first, last, obj.size)
        elif params.get("ChecksumMode") == "ENABLED":
            out.update(checksums.output_fields(obj.checksums))
        if method == "GET":
            out["Body"] = self._body(ctx, bucket, obj, first, length)
        if not partial:
            return out
        # 206 is not modeled as an output member: serialize here and adjust the status.
        op = service_model("s3").operation_model(ctx.operation)
        response = serialize_response(service_model("s3"), op, out, ctx.request_id)
        response.status = 206
        return response

    def _body(self, ctx: RequestContext, bucket: Bucket, obj: ObjectVersion, first: int, length: int
              ) -> bytes | Iterator[bytes]:
        try:
            chunks = self.object_bytes(ctx, bucket, obj, first, length)
            return b"".join(chunks) if length <= INLINE_LIMIT else chunks
        except FileNotFoundError:  # replaced or deleted between the row lookup and the open
            raise self.missing_key(ctx, bucket, obj.key) from None

    @blocking
    def get_object(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any] | HttpResponse:
        return self._read(ctx, params, "GET")

    @blocking
    def head_object(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any] | HttpResponse:
        return self._read(ctx, params, "HEAD")

    # -------------------------------------------------------------------------------- deleting
    @blocking
    def delete_object(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        key = params["Key"]
        version_id = params.get("VersionId")
        if version_id is not None and not catalog.valid_version_id(version_id):
            raise invalid_argument("Invalid version id specified", "versionId", version_id)
        action = "s3:DeleteObjectVersion" if version_id else "s3:DeleteObject"
        self.authorize(ctx, action, bucket, key, context={"s3:VersionId": version_id})
        if params.get("IfMatch") is not None:
            with self.app.db.read() as conn:
                current = catalog.get_version(conn, bucket.name, key, version_id)
            if current is None or current.delete_marker:
                raise no_such_key(key)
            if not etag_matches(params["IfMatch"], current.etag):
                raise precondition_failed("If-Match")
        result = self.delete_one(bucket.name, key, version_id)
        out: dict[str, Any] = {}
        if result.delete_marker:
            out["DeleteMarker"] = True
        if result.version_id is not None:
            out["VersionId"] = result.version_id
        return out

    @blocking
    def delete_objects(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        headers = ctx.http.headers
        has_checksum = "content-md5" in headers or any(
            h.startswith(checksums.HEADER_PREFIX) and checksums.supported(h[len(checksums.HEADER_PREFIX):])
            for h in headers)
        if not has_checksum:
            raise invalid_request("Missing required header for this request: Content-MD5 OR x-amz-checksum-*")
        checksums.verify_request(headers, ctx.http.body)
        spec = params.get("Delete") or {}
        objects = spec.get("Objects") or []
        if not objects or len(objects) > 1000 or any(not o.get("Key") for o in objects):
            raise malformed_xml()
        quiet = bool(spec.get("Quiet"))
        deleted: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item in objects:
            key, version_id = item["Key"], item.get("VersionId")
            ident = {"Key": key, **({"VersionId": version_id} if version_id else {})}
            if version_id and not catalog.valid_version_id(version_id):
                errors.append({**ident, "Code": "NoSuchVersion", "Message": "The specified version does not exist."})
                continue
            action = "s3:DeleteObjectVersion" if version_id else "s3:DeleteObject"
            if not self.allowed(ctx, action, bucket, key, context={"s3:VersionId": version_id}):
                errors.append({**ident, "Code": "AccessDenied", "Message": "Access Denied"})
                continue
            result = self.delete_one(bucket.name, key, version_id)
            if quiet:
                continue
            entry = dict(ident)
            if result.delete_marker:
                entry["DeleteMarker"] = True
                entry["DeleteMarkerVersionId"] = result.version_id
            deleted.append(entry)
        # Each key was authorized (s3:DeleteObject / s3:DeleteObjectVersion) above; refusals are
        # reported per key in <Error> entries, as S3 does, rather than failing the whole request.
        ctx.skip_authorization("DeleteObjects authorizes every key individually")
        return {"Deleted": deleted or None, "Errors": errors or None}

    # --------------------------------------------------------------------------------- copying
    def copy_source(self, ctx: RequestContext, params: dict[str, Any]) -> tuple[Bucket, ObjectVersion]:
        """Resolve and authorize (s3:GetObject[Version]) the x-amz-copy-source object."""
        src_name, src_key, src_version = parse_copy_source(params["CopySource"])
        src_bucket = self.load_bucket(src_name)
        if src_bucket is None:
            raise no_such_bucket(src_name)
        expected = params.get("ExpectedSourceBucketOwner")
        if expected is not None and expected != src_bucket.account_id:
            raise access_denied()
        if src_version is not None and not catalog.valid_version_id(src_version):
            raise invalid_argument("Invalid version id specified", "x-amz-copy-source", params["CopySource"])
        self.authorize(ctx, "s3:GetObjectVersion" if src_version else "s3:GetObject", src_bucket, src_key,
                       context={"s3:VersionId": src_version})
        try:
            src = self.load_version(ctx, src_bucket, src_key, src_version, "GET")
        except ServiceError as exc:
            if exc.code == "MethodNotAllowed":
                raise invalid_request("The source of a copy request may not specifically refer to a delete "
                                      "marker by version id.") from None
            raise
        conditions = {k[len("CopySource"):]: v for k, v in params.items() if k.startswith("CopySourceIf")}
        if read_conditions(conditions, src) == "304":  # copy conditions all fail with 412
            raise precondition_failed("x-amz-copy-source-If-None-Match")
        return src_bucket, src

    @blocking
    def copy_object(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        key = params["Key"]
        self.check_key(key)
        reject_sse_c(params)
        directive = params.get("MetadataDirective") or "COPY"
        src_bucket, src = self.copy_source(ctx, params)
        self.authorize(ctx, "s3:PutObject", bucket, key,
                       context={"s3:x-amz-copy-source": params["CopySource"],
                                "s3:x-amz-metadata-directive": directive})
        changes = any(params.get(n) for n in ("StorageClass", "WebsiteRedirectLocation", "ServerSideEncryption",
                                              "SSEKMSKeyId", "ChecksumAlgorithm"))
        if (src_bucket.name, src.key) == (bucket.name, key) and src.is_latest and directive == "COPY" and not changes:
            raise invalid_request("This copy request is illegal because it is trying to copy an object to itself "
                                  "without changing the object's metadata, storage class, website redirect "
                                  "location or encryption attributes.")
        if directive == "REPLACE":
            content_type, headers, metadata = object_fields(params)
        else:
            content_type, metadata = src.content_type, dict(src.metadata)
            headers = {k: v for k, v in src.headers.items() if k not in _LEGACY_SSE_HEADERS}
            for name, value in object_fields(params)[1].items():
                if name in ("StorageClass", "WebsiteRedirectLocation"):
                    headers[name] = value
        algorithm = params.get("ChecksumAlgorithm")
        if algorithm is None and src.checksums and src.checksums.get("type", checksums.FULL_OBJECT) == \
                checksums.FULL_OBJECT:
            algorithm = next((a for a in src.checksums if a in checksums.ALGORITHMS), None)
        hasher = checksums.Hasher(algorithm) if algorithm else None
        # The copy is decrypted as the caller (kms:Decrypt on the source key) and encrypted as the
        # request or the target bucket's default says, never inheriting the source's encryption.
        encryption, data_key = self.sse.new_key(ctx, bucket, key, params)
        source = self.object_bytes(ctx, src_bucket, src)
        blob = self.write_blob(self.store.new_object_path(bucket.name), _tee(source, hasher), data_key)
        sums = {hasher.algorithm: hasher.b64(), "type": checksums.FULL_OBJECT} if hasher else None
        new = NewObject(key, blob.size, blob.md5, blob.path, bucket.account_id, content_type, headers, metadata,
                        sums, encryption=encryption.to_row())
        version, bucket = self.commit_version(bucket.name, new)
        result = {"ETag": version.quoted_etag, "LastModified": version.last_modified,
                  **checksums.output_fields(version.checksums)}
        out: dict[str, Any] = {"CopyObjectResult": result, **encryption.response_fields(with_context=True),
                               **self.version_header(bucket, version)}
        if src_bucket.versioning is not None or src.version_id != catalog.NULL_VERSION:
            out["CopySourceVersionId"] = src.version_id
        return out
