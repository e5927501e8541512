"""Real-time hosting: endpoint configs, endpoints and the instances (model-server processes) behind them.

An endpoint's variants are kept as JSON documents on its row: ``serving`` holds the deployment
that takes traffic (its variants with weights, counts and the models they run, captured when the
deployment began), ``pending`` the one an UpdateEndpoint is bringing up. Each model-server
process is an instance row, so any server sharing the database can route to it.
"""

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text, UniqueConstraint

from stratum.store.schema import JsonType, UtcDateTime, metadata

sagemaker_endpoint_configs = Table(
    "sagemaker_endpoint_configs", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("name_key", String(64), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("arn", String(2048), nullable=False),
    # The CreateEndpointConfig request minus name and tags, echoed by Describe.
    Column("request", JsonType, nullable=False),
    Column("tags", JsonType, nullable=False, default=list),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_sagemaker_endpoint_configs_created", "account_id", "region", "created_at"),
)

sagemaker_endpoints = Table(
    "sagemaker_endpoints", metadata,
    Column("endpoint_id", String(32), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("name_key", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("arn", String(2048), nullable=False),
    # Creating | InService | Updating | SystemUpdating | RollingBack | Deleting | Failed
    Column("status", String(16), nullable=False),
    Column("failure_reason", Text, nullable=True),
    Column("config_name", String(64), nullable=False),
    # {"ConfigName", "Deployment", "Variants": [...], "DataCaptureConfig", "AsyncInferenceConfig", ...}
    Column("serving", JsonType, nullable=True),
    Column("pending", JsonType, nullable=True),
    # Bumped by every change the supervisor must act on.
    Column("generation", Integer, nullable=False, default=0),
    Column("tags", JsonType, nullable=False, default=list),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_modified_at", UtcDateTime, nullable=False),
    UniqueConstraint("account_id", "region", "name_key"),
    Index("ix_sagemaker_endpoints_listing", "account_id", "region", "created_at"),
    Index("ix_sagemaker_endpoints_status", "status"),
)

sagemaker_endpoint_instances = Table(
    "sagemaker_endpoint_instances", metadata,
    # One row per model-server process: an instance runs one per container of the model.
    Column("instance_id", String(32), primary_key=True),
    Column("container", String(64), primary_key=True),  # ContainerHostname
    Column("endpoint_id", String(32), nullable=False),
    Column("deployment", Integer, nullable=False),
    Column("variant", String(64), nullable=False),
    Column("position", Integer, nullable=False),  # the container's index in the model
    Column("url", String(256), nullable=True),
    Column("pid", Integer, nullable=True),
    Column("marker", String(64), nullable=True),  # in the process's environment, to recognise it
    Column("host", String(256), nullable=True),
    Column("owner", String(512), nullable=False),  # the server id that runs it
    # Pending | InService | Restarting | Draining | Failed
    Column("status", String(16), nullable=False),
    Column("drain_until", Float, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_sagemaker_endpoint_instances_endpoint", "endpoint_id"),
)


