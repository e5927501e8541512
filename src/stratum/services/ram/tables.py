"""RAM records: resource shares, what they share (resources), with whom (principals), under which
managed permission, the invitations principals outside the organization answer, and the
clientToken ledger.

Associations are never deleted: a removed resource or principal stays listed as DISASSOCIATED, as
GetResourceShareAssociations shows it in AWS, and re-adding it flips the same row back.
"""

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text

from stratum.store.schema import JsonType, UtcDateTime, metadata

ram_resource_shares = Table(
    "ram_resource_shares", metadata,
    Column("arn", String(256), primary_key=True),  # arn:aws:ram:<region>:<owner>:resource-share/<uuid>
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("name", String(256), nullable=False),
    Column("status", String(16), nullable=False),  # ACTIVE | DELETED
    Column("status_message", Text, nullable=True),
    Column("allow_external_principals", Boolean, nullable=False),
    Column("feature_set", String(32), nullable=False, default="STANDARD"),
    Column("tags", JsonType, nullable=False, default=list),  # [{"key": ..., "value": ...}]
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_ram_resource_shares_owner", "account_id", "region", "created_at"),
)

ram_share_resources = Table(
    "ram_share_resources", metadata,
    Column("share_arn", String(256), primary_key=True),
    Column("resource_arn", String(1024), primary_key=True),
    Column("resource_type", String(64), nullable=False),  # sagemaker:Pipeline
    Column("status", String(16), nullable=False),  # ASSOCIATED | DISASSOCIATED
    Column("status_message", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # Access checks start from the resource a consumer addresses.
    Index("ix_ram_share_resources_resource", "resource_arn"),
)

ram_share_principals = Table(
    "ram_share_principals", metadata,
    Column("share_arn", String(256), primary_key=True),
    # A 12-digit account id or an organization ARN, as the owner gave it.
    Column("principal", String(256), primary_key=True),
    # Outside the owner's organization (AWS's "external" flag).
    Column("external", Boolean, nullable=False),
    # ASSOCIATING (invitation pending) | ASSOCIATED | DISASSOCIATED | FAILED
    Column("status", String(16), nullable=False),
    Column("status_message", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_ram_share_principals_principal", "principal"),
)

ram_share_permissions = Table(
    "ram_share_permissions", metadata,
    Column("share_arn", String(256), primary_key=True),
    # One managed permission per resource type and share, as in RAM.
    Column("resource_type", String(64), primary_key=True),
    Column("permission_arn", String(256), nullable=False),
    Column("permission_version", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

ram_invitations = Table(
    "ram_invitations", metadata,
    Column("arn", String(256), primary_key=True),  # arn:aws:ram:<region>:<owner>:resource-share-invitation/<uuid>
    Column("share_arn", String(256), nullable=False),
    Column("region", String(32), nullable=False),
    Column("sender_account_id", String(12), nullable=False),
    Column("receiver_account_id", String(12), nullable=False),
    # PENDING | ACCEPTED | REJECTED; EXPIRED is derived from created_at when read (see invitations).
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_ram_invitations_receiver", "receiver_account_id", "region", "created_at"),
    Index("ix_ram_invitations_share", "share_arn", "receiver_account_id"),
)

ram_client_tokens = Table(
    "ram_client_tokens", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("operation", String(64), primary_key=True),
    Column("token", String(256), primary_key=True),
    # Hash of the request minus the token: a reused token with different input is a mismatch.
    Column("fingerprint", String(64), nullable=False),
    Column("result", JsonType, nullable=False),
    Column("created_at", UtcDateTime, nullable=False, index=True),
)
