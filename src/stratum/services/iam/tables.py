"""IAM users, roles, managed and inline policies, attachments and long-term access keys; STS sessions."""

from sqlalchemy import Column, Integer, String, Table, Text, UniqueConstraint

from stratum.store.schema import JsonType, UtcDateTime, metadata

iam_users = Table(
    "iam_users", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("user_id", String(32), nullable=False, unique=True),
    Column("path", String(512), nullable=False, default="/"),
    Column("arn", String(2048), nullable=False),
    Column("permissions_boundary", String(2048), nullable=True),
    Column("tags", JsonType, nullable=False, default=list),
    Column("created_at", UtcDateTime, nullable=False),
)

iam_roles = Table(
    "iam_roles", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("role_id", String(32), nullable=False, unique=True),
    Column("path", String(512), nullable=False, default="/"),
    Column("arn", String(2048), nullable=False),
    Column("assume_role_policy", Text, nullable=False),
    Column("description", String(1000), nullable=True),
    Column("max_session_duration", Integer, nullable=False, default=3600),
    Column("permissions_boundary", String(2048), nullable=True),
    Column("tags", JsonType, nullable=False, default=list),
    Column("created_at", UtcDateTime, nullable=False),
)

# Managed policies: customer ones (account_id = owner) and AWS managed ones (account_id = "aws").
iam_policies = Table(
    "iam_policies", metadata,
    Column("arn", String(2048), primary_key=True),
    Column("account_id", String(12), nullable=False, index=True),
    Column("name", String(128), nullable=False),
    Column("policy_id", String(32), nullable=False, unique=True),
    Column("path", String(512), nullable=False, default="/"),
    Column("description", String(1000), nullable=True),
    Column("default_version", String(16), nullable=False, default="v1"),
    Column("tags", JsonType, nullable=False, default=list),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

iam_policy_versions = Table(
    "iam_policy_versions", metadata,
    Column("policy_arn", String(2048), primary_key=True),
    Column("version_id", String(16), primary_key=True),
    Column("document", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# principal_type: "user" | "role" | "group"
iam_inline_policies = Table(
    "iam_inline_policies", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("principal_type", String(8), primary_key=True),
    Column("principal_name", String(128), primary_key=True),
    Column("policy_name", String(128), primary_key=True),
    Column("document", Text, nullable=False),
)

iam_attachments = Table(
    "iam_attachments", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("principal_type", String(8), primary_key=True),
    Column("principal_name", String(128), primary_key=True),
    Column("policy_arn", String(2048), primary_key=True),
)

iam_access_keys = Table(
    "iam_access_keys", metadata,
    Column("access_key_id", String(32), primary_key=True),
    Column("secret_access_key", String(64), nullable=False),
    Column("account_id", String(12), nullable=False),
    Column("user_name", String(64), nullable=False),
    Column("status", String(16), nullable=False, default="Active"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    UniqueConstraint("account_id", "user_name", "access_key_id"),
)

sts_sessions = Table(
    "sts_sessions", metadata,
    Column("access_key_id", String(32), primary_key=True),
    Column("secret_access_key", String(64), nullable=False),
    Column("session_token", Text, nullable=False),
    Column("account_id", String(12), nullable=False),
    Column("role_name", String(64), nullable=False),
    Column("role_arn", String(2048), nullable=False),
    Column("role_id", String(32), nullable=False),
    Column("session_name", String(64), nullable=False),
    Column("session_policy", Text, nullable=True),
    Column("session_policy_arns", JsonType, nullable=False, default=list),
    Column("source_arn", String(2048), nullable=False),
    Column("tags", JsonType, nullable=False, default=dict),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expiration", UtcDateTime, nullable=False, index=True),
)
