"""Notebook instances, their lifecycle configurations and code repositories.

As with the other SageMaker tables every row carries its owner's account and region; the request
members a Describe echoes are kept in one JSON column (``config``).
"""

from sqlalchemy import Boolean, Column, Integer, String, Table, Text, UniqueConstraint

from stratum.store.schema import JsonType, UtcDateTime, metadata

sagemaker_notebook_instances = Table(
    "sagemaker_notebook_instances", metadata,
    # Surrogate key: an instance deleted and created again under its name gets a new volume.
    Column("instance_id", String(32), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("name", String(63), nullable=False),
    Column("name_key", String(63), nullable=False),  # ARNs lower-case the name
    Column("arn", String(2048), nullable=False),
    Column("status", String(32), nullable=False),
    Column("failure_reason", Text, nullable=True),
    Column("instance_type", String(64), nullable=False),
    Column("role_arn", String(2048), nullable=False),
    Column("lifecycle_config_name", String(63), nullable=True),
    Column("volume_size", Integer, nullable=False),
    # KmsKeyId, PlatformIdentifier, DefaultCodeRepository, AdditionalCodeRepositories,
    # DirectInternetAccess, RootAccess, InstanceMetadataServiceConfiguration, SubnetId, ...
    Column("config", JsonType, nullable=False, default=dict),
    Column("tags", JsonType, nullable=False, default=list),
    # OnCreate ran (and the code repositories were cloned): it never runs again.
    Column("created_once", Boolean, nullable=False, default=False),
    # The JupyterLab server of an InService instance: pid, host, port, token, marker.
    Column("process", JsonType, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_modified_at", UtcDateTime, nullable=False),
    UniqueConstraint("account_id", "region", "name_key"),
)

sagemaker_notebook_lifecycle_configs = Table(
    "sagemaker_notebook_lifecycle_configs", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("name_key", String(63), primary_key=True),
    Column("name", String(63), nullable=False),
    Column("arn", String(2048), nullable=False),
    Column("on_create", JsonType, nullable=False, default=list),  # [{"Content": base64}]
    Column("on_start", JsonType, nullable=False, default=list),
    Column("tags", JsonType, nullable=False, default=list),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_modified_at", UtcDateTime, nullable=False),
)

sagemaker_code_repositories = Table(
    "sagemaker_code_repositories", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("name_key", String(63), primary_key=True),
    Column("name", String(63), nullable=False),
    Column("arn", String(2048), nullable=False),
    Column("git_config", JsonType, nullable=False),
    Column("tags", JsonType, nullable=False, default=list),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_modified_at", UtcDateTime, nullable=False),
)
