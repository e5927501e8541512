"""Organization and member accounts: the tenants every other record belongs to."""

from sqlalchemy import Boolean, Column, String, Table

from stratum.store.schema import UtcDateTime, metadata

organizations = Table(
    "organizations", metadata,
    Column("id", String(34), primary_key=True),  # o-xxxxxxxxxx
    Column("management_account_id", String(12), nullable=False),
    Column("feature_set", String(16), nullable=False, default="ALL"),
    Column("ram_sharing_enabled", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False),
)

accounts = Table(
    "accounts", metadata,
    Column("id", String(12), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("email", String(128), nullable=False),
    Column("organization_id", String(34), nullable=True),
    Column("status", String(16), nullable=False, default="ACTIVE"),
    Column("created_at", UtcDateTime, nullable=False),
)
