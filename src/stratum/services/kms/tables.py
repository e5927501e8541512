"""KMS keys, their key material (one row per rotation) and aliases.

Key material is never stored in the clear: each version is sealed with AES-256-GCM under the
server's master key (see ``crypto``), bound to its key id and version so rows cannot be swapped.
"""

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from stratum.store.schema import JsonType, UtcDateTime, metadata

kms_keys = Table(
    "kms_keys", metadata,
    # Key ids are UUIDs, unique across accounts and regions: a ciphertext names its key by id alone.
    Column("key_id", String(36), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("arn", String(256), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("key_usage", String(32), nullable=False),
    Column("key_spec", String(32), nullable=False),
    Column("origin", String(32), nullable=False),
    Column("key_manager", String(16), nullable=False),  # CUSTOMER | AWS (service-managed, e.g. aws/s3)
    Column("state", String(32), nullable=False),  # Enabled | Disabled | PendingDeletion
    Column("policy", Text, nullable=False),  # the key policy (its only name is "default")
    Column("rotation_enabled", Boolean, nullable=False, default=False),
    Column("rotation_period_days", Integer, nullable=True),
    Column("next_rotation_at", UtcDateTime, nullable=True),
    Column("current_version", Integer, nullable=False, default=1),
    Column("deletion_date", UtcDateTime, nullable=True),
    Column("pending_window_days", Integer, nullable=True),
    Column("tags", JsonType, nullable=False, default=list),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_kms_keys_account_region", "account_id", "region", "key_id"),
)

kms_key_materials = Table(
    "kms_key_materials", metadata,
    Column("key_id", String(36), ForeignKey("kms_keys.key_id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("material_id", String(64), nullable=False),  # KeyMaterialId as the API reports it
    Column("sealed", LargeBinary, nullable=False),  # nonce || AES-GCM(master key, material)
    Column("rotation_type", String(16), nullable=True),  # None for the original; AUTOMATIC | ON_DEMAND
    Column("created_at", UtcDateTime, nullable=False),
)

kms_aliases = Table(
    "kms_aliases", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("alias_name", String(256), primary_key=True),  # "alias/..."
    Column("target_key_id", String(36), ForeignKey("kms_keys.key_id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
