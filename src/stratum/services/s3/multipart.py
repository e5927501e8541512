"""Multipart uploads: create, upload (and copy) parts, complete, abort, list uploads and parts.

Parts are separate blobs until CompleteMultipartUpload concatenates them into one object blob (so
reads stay a single sequential file); the part blobs are removed once the completion is committed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import delete, insert, select

from stratum.protocol.errors import ServiceError
from stratum.server.context import RequestContext, blocking

from . import catalog, checksums
from .base import SSE_DEFAULT, STANDARD
from .catalog import Bucket, NewObject
from .errors import bad_digest, invalid_argument, malformed_xml, no_such_bucket, no_such_upload
from .listing import Cursor, encoder, marker_cursor, paginate
from .naming import canonical_id, owner
from .objects import ObjectOps, object_fields, reject_sse_c
from .sse import Encryption
from .tables import s3_multipart_parts, s3_multipart_uploads
from .uploads import UploadBody

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_NUMBER = 10000
_COPY_RANGE_RE = re.compile(r"bytes=(\d+)-(\d+)")


@dataclass(frozen=True)
class Upload:
    upload_id: str
    bucket: str
    key: str
    account_id: str
    initiator_arn: str
    initiator_id: str
    created_at: datetime
    content_type: str | None
    headers: dict[str, Any]
    metadata: dict[str, str]
    checksum_algorithm: str | None
    checksum_type: str | None
    encryption: dict[str, Any] | None = None

    @property
    def sse(self) -> Encryption | None:
        return Encryption.from_row(self.encryption)

    def sse_fields(self) -> dict[str, Any]:
        sse = self.sse
        return sse.response_fields() if sse else {"ServerSideEncryption": self.headers.get("ServerSideEncryption",
                                                                                            SSE_DEFAULT)}


@dataclass(frozen=True)
class Part:
    upload_id: str
    part_number: int
    size: int
    etag: str
    checksums: dict[str, str] | None
    last_modified: datetime
    storage_path: str


def _invalid_part(upload_id: str, part_number: int, etag: str) -> ServiceError:
    return ServiceError("InvalidPart", "One or more of the specified parts could not be found.  The part may not "
                        "have been uploaded, or the specified entity tag may not match the part's entity tag.", 400,
                        fields={"UploadId": upload_id, "PartNumber": part_number, "ETag": etag})


def _copy_range(value: str, size: int) -> tuple[int, int]:
    """x-amz-copy-source-range: exactly "bytes=first-last" inside the source object."""
    m = _COPY_RANGE_RE.fullmatch(value.strip())
    if m is None or int(m.group(1)) > int(m.group(2)) or int(m.group(2)) >= size:
        raise invalid_argument(f"Range specified is not valid for source object of size: {size}",
                               "x-amz-copy-source-range", value)
    first, last = int(m.group(1)), int(m.group(2))
    return first, last - first + 1


def _check_part_number(number: int) -> None:
    if not 1 <= number <= MAX_PART_NUMBER:
        raise invalid_argument("Part number must be an integer between 1 and 10000, inclusive", "partNumber",
                               str(number))


def _concat(read_part: Any, parts: Sequence[Part], hasher: checksums.Hasher | None) -> Iterator[bytes]:
    for part in parts:
        for chunk in read_part(part):
            if hasher is not None:
                hasher.update(chunk)
            yield chunk


class MultipartOps(ObjectOps):
    # ---------------------------------------------------------------------------------- lookups
    def _upload(self, bucket: Bucket, key: str, upload_id: str) -> Upload:
        with self.app.db.read() as conn:
            row = conn.execute(select(s3_multipart_uploads).where(
                s3_multipart_uploads.c.upload_id == upload_id)).mappings().first()
        if row is None or row["bucket"] != bucket.name or row["key"] != key:
            raise no_such_upload(upload_id)
        return Upload(**{**row, "headers": row["headers"] or {}, "metadata": row["metadata"] or {}})

    def _writable_upload(self, ctx: RequestContext, bucket: Bucket, key: str, upload_id: str,
                         context: dict[str, Any] | None = None) -> Upload:
        """The upload, once s3:PutObject is authorized. A part is authorized with the encryption
        condition keys of the request that created its upload, since parts carry no SSE headers."""
        try:
            upload: Upload | None = self._upload(bucket, key, upload_id)
        except ServiceError:
            upload = None
        sse = upload.sse if upload is not None else None
        inherited = dict(sse.condition_keys) if sse is not None else {}
        self.authorize(ctx, "s3:PutObject", bucket, key, context={**inherited, **(context or {})})
        if upload is None:
            raise no_such_upload(upload_id)
        return upload

    def _upload_key(self, ctx: RequestContext, bucket: Bucket, upload: Upload) -> bytes | None:
        """The upload's data key, unwrapped as the caller (SSE-KMS: kms:Decrypt, as S3 requires)."""
        sse = upload.sse
        return self.sse.data_key(ctx, bucket, sse) if sse is not None else None

    def _parts(self, upload_id: str) -> list[Part]:
        with self.app.db.read() as conn:
            rows = conn.execute(select(s3_multipart_parts).where(s3_multipart_parts.c.upload_id == upload_id)
                                .order_by(s3_multipart_parts.c.part_number)).mappings().all()
        return [Part(**r) for r in rows]

    # ----------------------------------------------------------------------------------- create
    @blocking
    def create_multipart_upload(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        key = params["Key"]
        self.check_key(key)
        reject_sse_c(params)
        self.authorize(ctx, "s3:PutObject", bucket, key)
        algorithm = (params.get("ChecksumAlgorithm") or "").upper() or None
        ctype = params.get("ChecksumType")
        if algorithm is not None and not checksums.supported(algorithm):
            raise invalid_request_checksum(algorithm)
        if ctype is not None and algorithm is None:
            raise ServiceError("InvalidRequest", "The x-amz-checksum-type header can only be used with the "
                               "x-amz-checksum-algorithm header.", 400)
        if algorithm is not None and ctype is None:
            ctype = checksums.FULL_OBJECT if algorithm == "CRC64NVME" else checksums.COMPOSITE
        content_type, headers, metadata = object_fields(params)
        # One data key for the whole upload (KMS GenerateDataKey as the initiator): every part and the
        # completed object are encrypted under it.
        encryption, _data_key = self.sse.new_key(ctx, bucket, key, params)
        upload_id = catalog.new_id(64)
        with self.app.db.begin() as conn:
            if catalog.lock_bucket(conn, bucket.name) is None:
                raise no_such_bucket(bucket.name)
            conn.execute(insert(s3_multipart_uploads).values(
                upload_id=upload_id, bucket=bucket.name, key=key, account_id=ctx.account_id,
                initiator_arn=ctx.identity.arn, initiator_id=ctx.identity.principal_id, created_at=catalog.now(),
                content_type=content_type, headers=headers, metadata=metadata, checksum_algorithm=algorithm,
                checksum_type=ctype, encryption=encryption.to_row(with_conditions=True)))
        out: dict[str, Any] = {"Bucket": bucket.name, "Key": key, "UploadId": upload_id,
                               **encryption.response_fields(with_context=True)}
        if algorithm:
            out["ChecksumAlgorithm"] = algorithm
            out["ChecksumType"] = ctype
        return out

    # ------------------------------------------------------------------------------------ parts
    def _store_part(self, bucket: Bucket, upload: Upload, number: int, chunks: Any, data_key: bytes | None,
                    body: UploadBody | None = None) -> Part:
        """Write a part blob, then record it (replacing an earlier upload of the same number).
        ``body``: the request body ``chunks`` come from, whose checksum (verified) is the part's."""
        # The upload's algorithm is computed here unless the request carries (and verifies) it.
        carried = body.checksums.algorithm if body is not None else None
        needed = upload.checksum_algorithm if upload.checksum_algorithm != carried else None
        hasher = checksums.Hasher(needed) if needed else None
        path = self.store.new_part_path(bucket.name, upload.upload_id, number)
        blob = self.write_blob(path, _hashing(chunks, hasher), data_key)
        sums = body.result() if body is not None else {}
        if hasher is not None:
            sums[hasher.algorithm] = hasher.b64()
        part = Part(upload.upload_id, number, blob.size, blob.md5, sums or None, catalog.now(), path)
        old: list[str] = []
        try:
            with self.app.db.begin() as conn:
                catalog.lock_upload(conn, upload.upload_id)
                exists = conn.execute(select(s3_multipart_uploads.c.upload_id).where(
                    s3_multipart_uploads.c.upload_id == upload.upload_id)).first()
                if exists is None:
                    raise no_such_upload(upload.upload_id)
                where = (s3_multipart_parts.c.upload_id == upload.upload_id) & \
                    (s3_multipart_parts.c.part_number == number)
                old = [r.storage_path for r in conn.execute(select(s3_multipart_parts.c.storage_path).where(where))]
                conn.execute(delete(s3_multipart_parts).where(where))
                conn.execute(insert(s3_multipart_parts).values(**part.__dict__))
        except BaseException:
            self.store.delete(path)
            raise
        self.delete_blobs(old)
        return part

    @blocking
    def upload_part(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        key = params["Key"]
        _check_part_number(params["PartNumber"])
        reject_sse_c(params)
        upload = self._writable_upload(ctx, bucket, key, params["UploadId"])
        body = UploadBody(ctx)
        data_key = self._upload_key(ctx, bucket, upload)
        part = self._store_part(bucket, upload, params["PartNumber"], body.pieces(), data_key, body)
        return {"ETag": f'"{part.etag}"', **upload.sse_fields(), **_part_checksums(part)}

    @blocking
    def upload_part_copy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        key = params["Key"]
        _check_part_number(params["PartNumber"])
        reject_sse_c(params)
        src_bucket, src = self.copy_source(ctx, params)
        upload = self._writable_upload(ctx, bucket, key, params["UploadId"],
                                       context={"s3:x-amz-copy-source": params["CopySource"]})
        first, length = 0, src.size
        if params.get("CopySourceRange"):
            first, length = _copy_range(params["CopySourceRange"], src.size)
        data_key = self._upload_key(ctx, bucket, upload)
        chunks = self.object_bytes(ctx, src_bucket, src, first, length)
        part = self._store_part(bucket, upload, params["PartNumber"], chunks, data_key)
        out: dict[str, Any] = {"CopyPartResult": {"ETag": f'"{part.etag}"', "LastModified": part.last_modified,
                                                  **{k: v for k, v in _part_checksums(part).items()
                                                     if k != "ChecksumType"}}}
        if src_bucket.versioning is not None or src.version_id != catalog.NULL_VERSION:
            out["CopySourceVersionId"] = src.version_id
        return out

    # --------------------------------------------------------------------------------- complete
    @blocking
    def complete_multipart_upload(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        key = params["Key"]
        reject_sse_c(params)
        upload = self._writable_upload(ctx, bucket, key, params["UploadId"])
        data_key = self._upload_key(ctx, bucket, upload)
        requested = (params.get("MultipartUpload") or {}).get("Parts") or []
        if not requested:
            raise malformed_xml()
        stored = {p.part_number: p for p in self._parts(upload.upload_id)}
        chosen: list[Part] = []
        previous = 0
        for item in requested:
            number, etag = item.get("PartNumber"), (item.get("ETag") or "").strip().strip('"')
            if number is None:
                raise malformed_xml()
            if number <= previous:
                raise ServiceError("InvalidPartOrder", "The list of parts was not in ascending order. Parts must be "
                                   "ordered by part number.", 400, fields={"UploadId": upload.upload_id})
            previous = number
            part = stored.get(number)
            if part is None or part.etag != etag:
                raise _invalid_part(upload.upload_id, number, etag)
            for alg, value in checksums.from_params(item).items():
                if (part.checksums or {}).get(alg) != value:
                    raise _invalid_part(upload.upload_id, number, etag)
            chosen.append(part)
        for part in chosen[:-1]:
            if part.size < MIN_PART_SIZE:
                raise ServiceError("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size",
                                   400, fields={"ProposedSize": part.size, "MinSizeAllowed": MIN_PART_SIZE,
                                                "PartNumber": part.part_number, "ETag": part.etag})
        etag = hashlib.md5(b"".join(bytes.fromhex(p.etag) for p in chosen), usedforsecurity=False).hexdigest()
        etag = f"{etag}-{len(chosen)}"
        sums = self._final_checksum(upload, chosen)
        hasher = checksums.Hasher(upload.checksum_algorithm) \
            if upload.checksum_algorithm and upload.checksum_type == checksums.FULL_OBJECT else None
        try:
            parts = _concat(lambda p: self.read_blob(p.storage_path, p.size, data_key), chosen, hasher)
            blob = self.write_blob(self.store.new_object_path(bucket.name), parts, data_key)
        except FileNotFoundError:  # a concurrent complete/abort removed the parts
            raise no_such_upload(upload.upload_id) from None
        if hasher is not None:
            sums = {hasher.algorithm: hasher.b64(), "type": checksums.FULL_OBJECT}
            expected = params.get(f"Checksum{hasher.algorithm}")
            if expected is not None and expected != sums[hasher.algorithm]:
                self.store.delete(blob.path)
                raise bad_digest(hasher.algorithm)
        new = NewObject(key, blob.size, etag, blob.path, bucket.account_id, upload.content_type, upload.headers,
                        upload.metadata, sums, [p.size for p in chosen],
                        encryption=upload.sse.to_row() if upload.sse else None)
        part_paths: list[str] = []
        obsolete: list[str] = []
        try:
            with self.app.db.begin() as conn:
                current = catalog.lock_bucket(conn, bucket.name)
                if current is None:
                    raise no_such_upload(upload.upload_id)
                catalog.lock_key(conn, bucket.name, key)
                catalog.lock_upload(conn, upload.upload_id)
                if conn.execute(select(s3_multipart_uploads.c.upload_id).where(
                        s3_multipart_uploads.c.upload_id == upload.upload_id)).first() is None:
                    raise no_such_upload(upload.upload_id)
                version, obsolete = catalog.put_version(conn, current, new)
                # Parts not named in the request are discarded with the upload, as in S3.
                part_paths = catalog.delete_uploads(conn, [upload.upload_id])
        except BaseException:
            self.store.delete(blob.path)
            raise
        self.delete_blobs(obsolete + part_paths)
        self.store.prune_dir(f"{bucket.name}/_mpu/{upload.upload_id}")
        location = f"{ctx.http.scheme}://{ctx.http.host}/{bucket.name}/{quote(key, safe='/')}"
        return {"Location": location, "Bucket": bucket.name, "Key": key, "ETag": version.quoted_etag,
                **upload.sse_fields(), **checksums.output_fields(version.checksums),
                **self.version_header(current, version)}

    @staticmethod
    def _final_checksum(upload: Upload, parts: Sequence[Part]) -> dict[str, str] | None:
        alg = upload.checksum_algorithm
        if alg is None or upload.checksum_type == checksums.FULL_OBJECT:
            return None  # FULL_OBJECT is computed while concatenating
        values = [(p.checksums or {}).get(alg) for p in parts]
        if any(v is None for v in values):
            return None
        return {alg: checksums.composite(alg, [v for v in values if v]), "type": checksums.COMPOSITE}

    # ------------------------------------------------------------------------------------ abort
    @blocking
    def abort_multipart_upload(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        key = params["Key"]
        self.authorize(ctx, "s3:AbortMultipartUpload", bucket, key)
        upload = self._upload(bucket, key, params["UploadId"])
        with self.app.db.begin() as conn:
            catalog.lock_upload(conn, upload.upload_id)
            paths = catalog.delete_uploads(conn, [upload.upload_id])
        self.delete_blobs(paths)
        self.store.prune_dir(f"{bucket.name}/_mpu/{upload.upload_id}")
        return {}

    # ---------------------------------------------------------------------------------- listing
    @blocking
    def list_multipart_uploads(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        self.authorize(ctx, "s3:ListBucketMultipartUploads", bucket,
                       context={"s3:prefix": params.get("Prefix"), "s3:delimiter": params.get("Delimiter")})
        prefix = params.get("Prefix") or ""
        delimiter = params.get("Delimiter") or None
        enc = encoder(params.get("EncodingType"))
        limit = params.get("MaxUploads", 1000)
        if limit < 0:
            raise invalid_argument("Argument max-uploads must be an integer between 0 and 2147483647",
                                   "max-uploads", str(limit))
        limit = min(limit, 1000)
        with self.app.db.read() as conn:
            rows = conn.execute(select(s3_multipart_uploads).where(s3_multipart_uploads.c.bucket == bucket.name)
                                ).mappings().all()
        uploads = sorted((Upload(**r) for r in rows if r["key"].startswith(prefix)),
                         key=lambda u: (u.key, u.created_at, u.upload_id))
        # In-memory rows get a descending pseudo id so the engine's (key, below_id) cursor walks
        # uploads of one key oldest-first, like S3.
        indexed = [_IndexedUpload(u, len(uploads) - i) for i, u in enumerate(uploads)]
        key_marker = params.get("KeyMarker") or ""
        id_marker = params.get("UploadIdMarker") or ""
        cursor: Cursor | None = None
        if key_marker and id_marker:
            pid = next((x.id for x in indexed if x.key == key_marker and x.upload.upload_id == id_marker), None)
            cursor = Cursor(key_marker, below_id=pid) if pid is not None else Cursor(key_marker)
        elif key_marker:
            cursor = marker_cursor(key_marker, prefix, delimiter)

        def fetch(cur: Cursor, n: int) -> list[_IndexedUpload]:
            return [x for x in indexed if _after(cur, x)][:n]

        page = paginate(fetch, prefix=prefix, delimiter=delimiter, cursor=cursor, max_items=limit,
                        row_cursor=lambda x: Cursor(x.key, below_id=x.id))
        out: dict[str, Any] = {
            "Bucket": bucket.name, "KeyMarker": enc(key_marker), "UploadIdMarker": id_marker, "Prefix": enc(prefix),
            "MaxUploads": limit, "IsTruncated": page.truncated,
            "Uploads": [self._upload_entry(x.upload, enc) for x in page.rows] or None,
            "CommonPrefixes": [{"Prefix": enc(p)} for p in page.prefixes] or None,
        }
        if delimiter:
            out["Delimiter"] = enc(delimiter)
        if params.get("EncodingType"):
            out["EncodingType"] = params["EncodingType"]
        if page.truncated:
            kind, last = page.items[-1]
            out["NextKeyMarker"] = enc(last.key if kind == "row" else last)
            if kind == "row":
                out["NextUploadIdMarker"] = last.upload.upload_id
        return out

    @staticmethod
    def _upload_entry(upload: Upload, enc: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "UploadId": upload.upload_id, "Key": enc(upload.key), "Initiated": upload.created_at,
            "StorageClass": upload.headers.get("StorageClass", STANDARD), "Owner": owner(upload.account_id),
            "Initiator": {"ID": upload.initiator_arn, "DisplayName": upload.initiator_arn.rpartition("/")[2]},
        }
        if upload.checksum_algorithm:
            entry["ChecksumAlgorithm"] = upload.checksum_algorithm
            entry["ChecksumType"] = upload.checksum_type
        return entry

    @blocking
    def list_parts(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        key = params["Key"]
        self.authorize(ctx, "s3:ListMultipartUploadParts", bucket, key)
        upload = self._upload(bucket, key, params["UploadId"])
        marker = params.get("PartNumberMarker") or 0
        limit = min(max(params.get("MaxParts", 1000), 0), 1000)
        parts = [p for p in self._parts(upload.upload_id) if p.part_number > marker]
        shown = parts[:limit]
        out: dict[str, Any] = {
            "Bucket": bucket.name, "Key": key, "UploadId": upload.upload_id, "PartNumberMarker": marker,
            "MaxParts": limit, "IsTruncated": len(parts) > limit, "StorageClass": upload.headers.get(
                "StorageClass", STANDARD),
            "Initiator": {"ID": upload.initiator_arn, "DisplayName": upload.initiator_arn.rpartition("/")[2]},
            "Owner": {"ID": canonical_id(upload.account_id)},
            "Parts": [{"PartNumber": p.part_number, "LastModified": p.last_modified, "ETag": f'"{p.etag}"',
                       "Size": p.size, **{k: v for k, v in _part_checksums(p).items() if k != "ChecksumType"}}
                      for p in shown] or None,
        }
        if shown:
            out["NextPartNumberMarker"] = shown[-1].part_number
        if upload.checksum_algorithm:
            out["ChecksumAlgorithm"] = upload.checksum_algorithm
            out["ChecksumType"] = upload.checksum_type
        return out


@dataclass(frozen=True)
class _IndexedUpload:
    upload: Upload
    id: int

    @property
    def key(self) -> str:
        return self.upload.key


def _after(cursor: Cursor, item: _IndexedUpload) -> bool:
    if cursor.below_id is not None:
        return item.key > cursor.key or (item.key == cursor.key and item.id < cursor.below_id)
    return item.key >= cursor.key if cursor.inclusive else item.key > cursor.key


def _hashing(chunks: Any, hasher: checksums.Hasher | None) -> Iterator[bytes]:
    for chunk in chunks:
        if hasher is not None:
            hasher.update(chunk)
        yield chunk


def _part_checksums(part: Part) -> dict[str, str]:
    return checksums.output_fields(part.checksums)


def invalid_request_checksum(algorithm: str) -> ServiceError:
    return ServiceError("InvalidRequest", f"Checksum algorithm {algorithm} is not supported.", 400)
