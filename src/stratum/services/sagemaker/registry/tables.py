"""Model registry tables: groups, packages and the model-package state-change outbox.

Like the pipeline tables, every row carries its owner's account and region, and nested API shapes
are JSON columns so a Describe is a single indexed row read.
"""

from sqlalchemy import Column, Index, Integer, String, Table, Text, UniqueConstraint

from stratum.store.schema import JsonType, UtcDateTime, metadata

sagemaker_model_package_groups = Table(
    "sagemaker_model_package_groups", metadata,
    # Surrogate key: a group deleted and re-created under the same name starts a new history.
    Column("group_id", String(32), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    # Lower-cased name: package ARNs lower-case the group name, so "Churn" and "churn" would
    # share every version ARN; they are one group.
    Column("name_key", String(63), nullable=False),
    Column("name", String(63), nullable=False),
    Column("arn", String(2048), nullable=False),
    Column("description", Text, nullable=True),
    Column("status", String(16), nullable=False),
    Column("managed_configuration", JsonType, nullable=True),
    Column("tags", JsonType, nullable=False, default=list),
    # PutModelPackageGroupPolicy document, as given.
    Column("resource_policy", Text, nullable=True),
    # Highest version number handed out; versions are never reused, even after a delete.
    Column("last_version", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", JsonType, nullable=True),
    UniqueConstraint("account_id", "region", "name_key"),
    Index("ix_sagemaker_model_package_groups_created", "account_id", "region", "created_at"),
)

sagemaker_model_packages = Table(
    "sagemaker_model_packages", metadata,
    Column("package_id", String(32), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    # What follows "model-package/" in the ARN: "<group>/<version>" or "<name>", lower-cased.
    Column("resource_key", String(80), nullable=False),
    Column("arn", String(2048), nullable=False),
    # ModelPackageName: the given name, or the group's name for a versioned package.
    Column("name", String(63), nullable=False),
    Column("name_key", String(63), nullable=False),
    Column("group_id", String(32), nullable=True),
    Column("group_name", String(63), nullable=True),
    Column("version", Integer, nullable=True),
    Column("description", Text, nullable=True),
    Column("status", String(16), nullable=False),
    Column("approval_status", String(32), nullable=True),
    Column("approval_description", Text, nullable=True),
    Column("inference_specification", JsonType, nullable=True),
    Column("customer_metadata", JsonType, nullable=True),
    # The other DescribeModelPackage members exactly as the caller gave them (ModelMetrics,
    # MetadataProperties, DriftCheckBaselines, Domain, Task, SourceUri, ModelCard, ...).
    Column("document", JsonType, nullable=False, default=dict),
    # Unversioned packages only: versioned ones take their group's tags.
    Column("tags", JsonType, nullable=False, default=list),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", JsonType, nullable=True),
    Column("last_modified_at", UtcDateTime, nullable=False),
    Column("last_modified_by", JsonType, nullable=True),
    UniqueConstraint("account_id", "region", "resource_key"),
    Index("ix_sagemaker_model_packages_group", "group_id", "version"),
    Index("ix_sagemaker_model_packages_created", "account_id", "region", "created_at"),
)

# "SageMaker Model Package State Change" events, written in the same transaction as the change
# (an outbox): the event bus delivers rows whose dispatched_at is still empty and stamps them.
sagemaker_registry_events = Table(
    "sagemaker_registry_events", metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("source", String(64), nullable=False),
    Column("detail_type", String(128), nullable=False),
    Column("resources", JsonType, nullable=False),
    Column("detail", JsonType, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("dispatched_at", UtcDateTime, nullable=True),
    Index("ix_sagemaker_registry_events_pending", "dispatched_at", "event_id"),
)
