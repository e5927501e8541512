"""Bucket and object-version rows: the queries and the versioning state machine.

All functions take an open connection; callers own the transaction. Functions that drop a version
return the blob paths that became unreferenced so the caller deletes them *after* the commit (a
rolled-back transaction must never lose bytes).
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, text, update

from .listing import Cursor, successor
from .tables import s3_buckets, s3_multipart_parts, s3_multipart_uploads, s3_objects

NULL_VERSION = "null"
_VERSION_ALPHABET = string.ascii_letters + string.digits + "._"


@dataclass(frozen=True)
class Bucket:
    name: str
    account_id: str
    region: str
    created_at: datetime
    versioning: str | None
    policy: str | None
    encryption: dict[str, Any] | None = None  # default encryption configuration (None: SSE-S3)


@dataclass(frozen=True)
class ObjectVersion:
    id: int
    bucket: str
    key: str
    version_id: str
    is_latest: bool
    delete_marker: bool
    size: int
    etag: str | None
    content_type: str | None
    headers: dict[str, Any]
    metadata: dict[str, str]
    checksums: dict[str, str] | None
    parts: list[int] | None
    owner_account: str
    last_modified: datetime
    storage_path: str | None
    encryption: dict[str, Any] | None = None  # see sse.Encryption

    @property
    def quoted_etag(self) -> str:
        return f'"{self.etag}"'


@dataclass
class NewObject:
    """What a write supplies for a new version (the version id is decided by the bucket's state)."""

    key: str
    size: int
    etag: str
    storage_path: str
    owner_account: str
    content_type: str | None = None
    headers: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    checksums: dict[str, str] | None = None
    parts: list[int] | None = None
    encryption: dict[str, Any] | None = None


def now() -> datetime:
    # S3 keeps millisecond precision; truncating here keeps listings and headers consistent.
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def new_id(length: int) -> str:
    """Version and upload ids: URL-safe, and never starting with punctuation (a leading "-" or "."
    would read as an option or a hidden name in CLI arguments)."""
    first = secrets.choice(string.ascii_letters + string.digits)
    return first + "".join(secrets.choice(_VERSION_ALPHABET) for _ in range(length - 1))


def new_version_id() -> str:
    return new_id(32)


def valid_version_id(version_id: str) -> bool:
    return version_id == NULL_VERSION or (len(version_id) == 32 and all(c in _VERSION_ALPHABET for c in version_id))


# ------------------------------------------------------------------------------------------ buckets
def get_bucket(conn: Connection, name: str) -> Bucket | None:
    row = conn.execute(select(s3_buckets).where(s3_buckets.c.name == name)).mappings().first()
    return Bucket(**row) if row is not None else None


def lock_bucket(conn: Connection, name: str, *, exclusive: bool = False) -> Bucket | None:
    """Read the bucket inside a write transaction, locked against concurrent deletion (shared) or
    against all other writers (exclusive). SQLite needs nothing: its write transactions are serial."""
    q = select(s3_buckets).where(s3_buckets.c.name == name).with_for_update(read=not exclusive)
    row = conn.execute(q).mappings().first()
    return Bucket(**row) if row is not None else None


def lock_name(conn: Connection, name: str) -> None:
    """Serialize writers of one key (or one multipart upload) on PostgreSQL, where two concurrent
    transactions would otherwise both see "no latest version" and both insert one."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"), {"name": name})


def lock_key(conn: Connection, bucket: str, key: str) -> None:
    lock_name(conn, f"s3-object:{bucket}/{key}")


def lock_upload(conn: Connection, upload_id: str) -> None:
    lock_name(conn, f"s3-upload:{upload_id}")


def bucket_has_objects(conn: Connection, name: str) -> bool:
    return conn.execute(select(s3_objects.c.id).where(s3_objects.c.bucket == name).limit(1)).first() is not None


# ------------------------------------------------------------------------------------------ objects
def _version(row: Any) -> ObjectVersion:
    data = dict(row)
    data["headers"] = data["headers"] or {}
    data["metadata"] = data["metadata"] or {}
    return ObjectVersion(**data)


def get_version(conn: Connection, bucket: str, key: str, version_id: str | None = None) -> ObjectVersion | None:
    """The latest version (which may be a delete marker) or the given version."""
    q = select(s3_objects).where(s3_objects.c.bucket == bucket, s3_objects.c.key == key)
    if version_id is None:
        q = q.where(s3_objects.c.is_latest.is_(True))
    else:
        q = q.where(s3_objects.c.version_id == version_id)
    row = conn.execute(q).mappings().first()
    return _version(row) if row is not None else None


def _insert(conn: Connection, bucket: str, key: str, version_id: str, *, delete_marker: bool,
            obj: NewObject | None, owner_account: str) -> ObjectVersion:
    values: dict[str, Any] = {
        "bucket": bucket, "key": key, "version_id": version_id, "is_latest": True,
        "delete_marker": delete_marker, "size": 0, "etag": None, "content_type": None, "headers": {},
        "metadata": {}, "checksums": None, "parts": None, "owner_account": owner_account,
        "last_modified": now(), "storage_path": None, "encryption": None,
    }
    if obj is not None:
        values.update(size=obj.size, etag=obj.etag, content_type=obj.content_type, headers=obj.headers or {},
                      metadata=obj.metadata or {}, checksums=obj.checksums or None, parts=obj.parts,
                      storage_path=obj.storage_path, encryption=obj.encryption)
    result = conn.execute(insert(s3_objects).values(**values))
    return ObjectVersion(id=result.inserted_primary_key[0], **values)


def _demote(conn: Connection, bucket: str, key: str) -> None:
    conn.execute(update(s3_objects).where(s3_objects.c.bucket == bucket, s3_objects.c.key == key,
                                          s3_objects.c.is_latest.is_(True)).values(is_latest=False))


def _drop_null_version(conn: Connection, bucket: str, key: str) -> list[str]:
    """Unversioned and suspended buckets keep at most one "null" version per key: replace it."""
    old = get_version(conn, bucket, key, NULL_VERSION)
    if old is None:
        return []
    conn.execute(delete(s3_objects).where(s3_objects.c.id == old.id))
    return [old.storage_path] if old.storage_path else []


def put_version(conn: Connection, bucket: Bucket, obj: NewObject) -> tuple[ObjectVersion, list[str]]:
    """Make ``obj`` the latest version of its key. Returns it and the blob paths it made obsolete."""
    obsolete: list[str] = []
    if bucket.versioning == "Enabled":
        version_id = new_version_id()
    else:
        version_id = NULL_VERSION
        obsolete = _drop_null_version(conn, bucket.name, obj.key)
    _demote(conn, bucket.name, obj.key)
    version = _insert(conn, bucket.name, obj.key, version_id, delete_marker=False, obj=obj,
                      owner_account=obj.owner_account)
    return version, obsolete


@dataclass
class DeleteResult:
    version_id: str | None = None  # the version removed or the delete marker created
    delete_marker: bool = False  # a marker was created, or the removed version was a marker
    obsolete: list[str] | None = None


def delete_key(conn: Connection, bucket: Bucket, key: str, version_id: str | None, owner_account: str
               ) -> DeleteResult:
    """DeleteObject semantics for the bucket's versioning state."""
    if version_id is not None:
        row = get_version(conn, bucket.name, key, version_id)
        if row is None:
            return DeleteResult(version_id=version_id)
        conn.execute(delete(s3_objects).where(s3_objects.c.id == row.id))
        if row.is_latest:
            _promote_newest(conn, bucket.name, key)
        return DeleteResult(version_id, row.delete_marker, [row.storage_path] if row.storage_path else [])
    if bucket.versioning is None:
        return DeleteResult(obsolete=_drop_null_version(conn, bucket.name, key))
    obsolete: list[str] = []
    if bucket.versioning == "Enabled":
        marker_id = new_version_id()
    else:  # Suspended: the marker takes the "null" version's place
        marker_id = NULL_VERSION
        obsolete = _drop_null_version(conn, bucket.name, key)
    _demote(conn, bucket.name, key)
    _insert(conn, bucket.name, key, marker_id, delete_marker=True, obj=None, owner_account=owner_account)
    return DeleteResult(marker_id, True, obsolete)


def _promote_newest(conn: Connection, bucket: str, key: str) -> None:
    newest = conn.execute(select(func.max(s3_objects.c.id)).where(
        s3_objects.c.bucket == bucket, s3_objects.c.key == key)).scalar()
    if newest is not None:
        conn.execute(update(s3_objects).where(s3_objects.c.id == newest).values(is_latest=True))


# ------------------------------------------------------------------------------------------ listing
def _prefix_bounds(q: Any, prefix: str) -> Any:
    if prefix:
        q = q.where(s3_objects.c.key >= prefix)
        upper = successor(prefix)
        if upper is not None:
            q = q.where(s3_objects.c.key < upper)
    return q


def _cursor_clause(cursor: Cursor) -> Any:
    key = s3_objects.c.key
    if cursor.below_id is not None:
        return or_(key > cursor.key, and_(key == cursor.key, s3_objects.c.id < cursor.below_id))
    return key >= cursor.key if cursor.inclusive else key > cursor.key


def list_latest(conn: Connection, bucket: str, prefix: str, cursor: Cursor, limit: int) -> Sequence[ObjectVersion]:
    q = select(s3_objects).where(s3_objects.c.bucket == bucket, s3_objects.c.is_latest.is_(True),
                                 s3_objects.c.delete_marker.is_(False), _cursor_clause(cursor))
    q = _prefix_bounds(q, prefix).order_by(s3_objects.c.key).limit(limit)
    return [_version(r) for r in conn.execute(q).mappings()]


def list_versions(conn: Connection, bucket: str, prefix: str, cursor: Cursor, limit: int) -> Sequence[ObjectVersion]:
    q = select(s3_objects).where(s3_objects.c.bucket == bucket, _cursor_clause(cursor))
    q = _prefix_bounds(q, prefix).order_by(s3_objects.c.key, s3_objects.c.id.desc()).limit(limit)
    return [_version(r) for r in conn.execute(q).mappings()]


# ---------------------------------------------------------------------------------------- multipart
def upload_part_paths(conn: Connection, upload_ids: Sequence[str]) -> list[str]:
    if not upload_ids:
        return []
    return [r.storage_path for r in conn.execute(select(s3_multipart_parts.c.storage_path).where(
        s3_multipart_parts.c.upload_id.in_(list(upload_ids))))]


def delete_uploads(conn: Connection, upload_ids: Sequence[str]) -> list[str]:
    """Remove uploads and their parts; returns the part blob paths to delete after commit."""
    paths = upload_part_paths(conn, upload_ids)
    if upload_ids:
        ids = list(upload_ids)
        conn.execute(delete(s3_multipart_parts).where(s3_multipart_parts.c.upload_id.in_(ids)))
        conn.execute(delete(s3_multipart_uploads).where(s3_multipart_uploads.c.upload_id.in_(ids)))
    return paths
