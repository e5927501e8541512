"""ListObjects (v1), ListObjectsV2 and ListObjectVersions on top of the listing engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select

from stratum.server.context import RequestContext, blocking

from . import catalog
from .base import STANDARD, S3Base
from .catalog import Bucket, ObjectVersion
from .errors import invalid_argument
from .listing import Cursor, decode_token, encode_token, encoder, marker_cursor, max_keys, paginate
from .naming import owner
from .tables import s3_objects


def _list_context(params: dict[str, Any]) -> dict[str, Any]:
    """The s3:prefix / s3:delimiter / s3:max-keys condition keys (only those the request sent)."""
    return {"s3:prefix": params.get("Prefix"), "s3:delimiter": params.get("Delimiter"),
            "s3:max-keys": params.get("MaxKeys")}


class ListOps(S3Base):
    def _fetch(self, bucket: str, prefix: str, versions: bool) -> Callable[[Cursor, int], Sequence[ObjectVersion]]:
        def fetch(cursor: Cursor, limit: int) -> Sequence[ObjectVersion]:
            with self.app.db.read() as conn:
                if versions:
                    return catalog.list_versions(conn, bucket, prefix, cursor, limit)
                return catalog.list_latest(conn, bucket, prefix, cursor, limit)
        return fetch

    @staticmethod
    def _entry(obj: ObjectVersion, enc: Callable[[str], str], with_owner: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"Key": enc(obj.key), "LastModified": obj.last_modified, "ETag": obj.quoted_etag,
                                 "Size": obj.size, "StorageClass": obj.headers.get("StorageClass", STANDARD)}
        if obj.checksums:
            entry["ChecksumAlgorithm"] = [a for a in obj.checksums if a != "type"]
            entry["ChecksumType"] = obj.checksums.get("type")
        if with_owner:
            entry["Owner"] = owner(obj.owner_account)
        return entry

    def _start(self, ctx: RequestContext, params: dict[str, Any], action: str) -> tuple[Bucket, str, str | None, int]:
        bucket = self.bucket(ctx, params)
        self.authorize(ctx, action, bucket, context=_list_context(params))
        return bucket, params.get("Prefix") or "", params.get("Delimiter") or None, max_keys(params.get("MaxKeys"))

    @blocking
    def list_objects_v2(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket, prefix, delimiter, limit = self._start(ctx, params, "s3:ListBucket")
        enc = encoder(params.get("EncodingType"))
        token, start_after = params.get("ContinuationToken"), params.get("StartAfter")
        if token is not None:
            cursor: Cursor | None = decode_token(token)
        elif start_after:
            cursor = marker_cursor(start_after, prefix, delimiter)
        else:
            cursor = None
        page = paginate(self._fetch(bucket.name, prefix, False), prefix=prefix, delimiter=delimiter,
                        cursor=cursor, max_items=limit, row_cursor=lambda r: Cursor(r.key))
        with_owner = bool(params.get("FetchOwner"))
        out: dict[str, Any] = {
            "Name": bucket.name, "Prefix": enc(prefix), "MaxKeys": params.get("MaxKeys", limit),
            "KeyCount": len(page.items), "IsTruncated": page.truncated,
            "Contents": [self._entry(o, enc, with_owner) for o in page.rows] or None,
            "CommonPrefixes": [{"Prefix": enc(p)} for p in page.prefixes] or None,
        }
        if delimiter:
            out["Delimiter"] = enc(delimiter)
        if params.get("EncodingType"):
            out["EncodingType"] = params["EncodingType"]
        if token is not None:
            out["ContinuationToken"] = token
        if start_after:
            out["StartAfter"] = enc(start_after)
        if page.truncated and page.next_cursor is not None:
            out["NextContinuationToken"] = encode_token(page.next_cursor)
        return out

    @blocking
    def list_objects(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket, prefix, delimiter, limit = self._start(ctx, params, "s3:ListBucket")
        enc = encoder(params.get("EncodingType"))
        marker = params.get("Marker") or ""
        cursor = marker_cursor(marker, prefix, delimiter) if marker else None
        page = paginate(self._fetch(bucket.name, prefix, False), prefix=prefix, delimiter=delimiter,
                        cursor=cursor, max_items=limit, row_cursor=lambda r: Cursor(r.key))
        out: dict[str, Any] = {
            # botocore does not url-decode Prefix in v1 responses, so it is echoed as sent.
            "Name": bucket.name, "Prefix": prefix, "Marker": enc(marker), "MaxKeys": params.get("MaxKeys", limit),
            "IsTruncated": page.truncated,
            "Contents": [self._entry(o, enc, True) for o in page.rows] or None,
            "CommonPrefixes": [{"Prefix": enc(p)} for p in page.prefixes] or None,
        }
        if delimiter:
            out["Delimiter"] = enc(delimiter)
            if page.truncated:  # without a delimiter clients continue from the last key themselves
                kind, last = page.items[-1]
                out["NextMarker"] = enc(last.key if kind == "row" else last)
        if params.get("EncodingType"):
            out["EncodingType"] = params["EncodingType"]
        return out

    @blocking
    def list_object_versions(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket, prefix, delimiter, limit = self._start(ctx, params, "s3:ListBucketVersions")
        enc = encoder(params.get("EncodingType"))
        key_marker = params.get("KeyMarker") or ""
        version_marker = params.get("VersionIdMarker") or ""
        cursor: Cursor | None = None
        if version_marker:
            if not key_marker:
                raise invalid_argument("A version-id marker cannot be specified without a key marker.",
                                       "version-id-marker", version_marker)
            with self.app.db.read() as conn:
                row_id = conn.execute(select(s3_objects.c.id).where(
                    s3_objects.c.bucket == bucket.name, s3_objects.c.key == key_marker,
                    s3_objects.c.version_id == version_marker)).scalar()
            if row_id is None:
                raise invalid_argument("Invalid version id specified", "version-id-marker", version_marker)
            cursor = Cursor(key_marker, below_id=row_id)
        elif key_marker:
            cursor = marker_cursor(key_marker, prefix, delimiter)
        page = paginate(self._fetch(bucket.name, prefix, True), prefix=prefix, delimiter=delimiter,
                        cursor=cursor, max_items=limit, row_cursor=lambda r: Cursor(r.key, below_id=r.id))
        versions, markers = [], []
        for obj in page.rows:
            common = {"Key": enc(obj.key), "VersionId": obj.version_id, "IsLatest": obj.is_latest,
                      "LastModified": obj.last_modified, "Owner": owner(obj.owner_account)}
            if obj.delete_marker:
                markers.append(common)
            else:
                entry = self._entry(obj, enc, True)
                entry.update(common)
                versions.append(entry)
        out: dict[str, Any] = {
            "Name": bucket.name, "Prefix": enc(prefix), "KeyMarker": enc(key_marker),
            "VersionIdMarker": version_marker, "MaxKeys": params.get("MaxKeys", limit),
            "IsTruncated": page.truncated, "Versions": versions or None, "DeleteMarkers": markers or None,
            "CommonPrefixes": [{"Prefix": enc(p)} for p in page.prefixes] or None,
        }
        if delimiter:
            out["Delimiter"] = enc(delimiter)
        if params.get("EncodingType"):
            out["EncodingType"] = params["EncodingType"]
        if page.truncated:
            kind, last = page.items[-1]
            if kind == "row":
                out["NextKeyMarker"] = enc(last.key)
                out["NextVersionIdMarker"] = last.version_id
            else:
                out["NextKeyMarker"] = enc(last)
        return out
