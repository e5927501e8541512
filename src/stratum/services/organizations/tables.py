"""Organization and member accounts: the tenants every other record belongs to."""

from sqlalchemy import Boolean, Column, String, Table, UniqueConstraint

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

# Organizational units. The root is not stored: its id derives from the organization's id
# (structure.root_id), so organizations created before OUs existed have one too.
organizational_units = Table(
    "organizational_units", metadata,
    Column("id", String(68), primary_key=True),  # ou-<root suffix>-<8..32>
    Column("organization_id", String(34), nullable=False),
    Column("parent_id", String(68), nullable=False),  # r-... or ou-...
    Column("name", String(128), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("parent_id", "name", name="uq_organizational_units_parent_name"),
)

# The OU an account sits in; an account without a row sits in the root.
organization_account_parents = Table(
    "organization_account_parents", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("parent_id", String(68), nullable=False, index=True),
)

# Trusted access of AWS services (EnableAWSServiceAccess). RAM's is also the organization's
# ram_sharing_enabled flag, which RAM's EnableSharingWithAwsOrganization sets.
organization_service_access = Table(
    "organization_service_access", metadata,
    Column("organization_id", String(34), primary_key=True),
    Column("service_principal", String(128), primary_key=True),
    Column("enabled_at", UtcDateTime, nullable=False),
)

# CreateAccount requests and their outcome (DescribeCreateAccountStatus).
organization_create_account_requests = Table(
    "organization_create_account_requests", metadata,
    Column("id", String(36), primary_key=True),  # car-...
    Column("organization_id", String(34), nullable=False),
    Column("account_name", String(64), nullable=False),
    Column("account_id", String(12), nullable=True),
    Column("state", String(16), nullable=False),
    Column("failure_reason", String(64), nullable=True),
    Column("requested_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime, nullable=True),
)

# Member accounts registered as delegated administrators for a service: they may call the
# Organizations read operations (Describe*/List*) that are otherwise the management account's.
organization_delegated_administrators = Table(
    "organization_delegated_administrators", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("service_principal", String(128), primary_key=True),
    Column("organization_id", String(34), nullable=False),
    Column("delegated_at", UtcDateTime, nullable=False),
)
