"""S3 buckets, object versions and in-progress multipart uploads.

Object bytes live in the blob store (``objectstore``); these rows are the source of truth for what
exists. A blob not referenced by a row is garbage (a crashed upload), never a visible object.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from stratum.store.schema import JsonType, UtcDateTime, metadata

# S3 lists keys in UTF-8 binary order. SQLite's default BINARY collation already compares that way;
# PostgreSQL needs the "C" collation or listings would follow the database locale.
KeyString = String(1024).with_variant(String(1024, collation="C"), "postgresql")

s3_buckets = Table(
    "s3_buckets", metadata,
    Column("name", String(63), primary_key=True),  # bucket names are global across accounts
    Column("account_id", String(12), nullable=False, index=True),
    Column("region", String(32), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("versioning", String(16), nullable=True),  # None (never enabled) | "Enabled" | "Suspended"
    Column("policy", Text, nullable=True),
    Column("encryption", JsonType, nullable=True),  # default encryption rules; None = SSE-S3
)

# One row per object version. Unversioned buckets keep a single row per key with version_id "null";
# the autoincrement id doubles as the version order (a higher id is a newer version).
s3_objects = Table(
    "s3_objects", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("bucket", String(63), ForeignKey("s3_buckets.name"), nullable=False),
    Column("key", KeyString, nullable=False),
    Column("version_id", String(64), nullable=False),
    Column("is_latest", Boolean, nullable=False),
    Column("delete_marker", Boolean, nullable=False, default=False),
    Column("size", BigInteger, nullable=False, default=0),
    Column("etag", String(64), nullable=True),  # md5 hex (or "<md5-of-md5s>-N"), unquoted
    Column("content_type", String(1024), nullable=True),
    Column("headers", JsonType, nullable=False, default=dict),  # Content-Encoding, Cache-Control, ...
    Column("metadata", JsonType, nullable=False, default=dict),  # x-amz-meta-* (names lower-cased)
    Column("checksums", JsonType, nullable=True),  # {"CRC32": "<b64>", "type": "FULL_OBJECT"}
    Column("parts", JsonType, nullable=True),  # part sizes, for objects built by multipart upload
    Column("owner_account", String(12), nullable=False),
    Column("last_modified", UtcDateTime, nullable=False),
    Column("storage_path", String(512), nullable=True),  # relative to objects_dir; None for delete markers
    # How the blob is encrypted (algorithm, wrapped data key, KMS key and context); see sse.py.
    # None only for blobs written before encryption at rest (stored in the clear).
    Column("encryption", JsonType, nullable=True),
    UniqueConstraint("bucket", "key", "version_id"),
    Index("ix_s3_objects_listing", "bucket", "is_latest", "key"),
)

s3_multipart_uploads = Table(
    "s3_multipart_uploads", metadata,
    Column("upload_id", String(128), primary_key=True),
    Column("bucket", String(63), ForeignKey("s3_buckets.name"), nullable=False),
    Column("key", KeyString, nullable=False),
    Column("account_id", String(12), nullable=False),  # initiator's account
    Column("initiator_arn", String(2048), nullable=False),
    Column("initiator_id", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("content_type", String(1024), nullable=True),
    Column("headers", JsonType, nullable=False, default=dict),
    Column("metadata", JsonType, nullable=False, default=dict),
    Column("checksum_algorithm", String(16), nullable=True),  # "CRC32", "SHA256", ...
    Column("checksum_type", String(16), nullable=True),  # "COMPOSITE" | "FULL_OBJECT"
    Column("encryption", JsonType, nullable=True),  # the upload's data key; parts and the object share it
    Index("ix_s3_multipart_uploads_bucket_key", "bucket", "key"),
)

s3_multipart_parts = Table(
    "s3_multipart_parts", metadata,
    Column("upload_id", String(128), ForeignKey("s3_multipart_uploads.upload_id", ondelete="CASCADE"),
           primary_key=True),
    Column("part_number", Integer, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("etag", String(64), nullable=False),
    Column("checksums", JsonType, nullable=True),
    Column("last_modified", UtcDateTime, nullable=False),
    Column("storage_path", String(512), nullable=False),
)
