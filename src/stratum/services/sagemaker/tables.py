"""SageMaker pipelines: pipelines, their immutable definition versions, executions, execution steps,
and the ClientRequestToken ledger that makes Create/Start/Stop/Delete idempotent.

Every row carries the owner's account_id and region: accounts are tenants and a lookup is always
scoped to one. Nested API shapes (parallelism, selective execution, tags, user contexts) are JSON
columns so a Describe is one indexed row read, never a join fan-out.
"""

from sqlalchemy import Column, Index, Integer, String, Table, Text, UniqueConstraint, func, select, text

from stratum.store.schema import JsonType, UtcDateTime, metadata

sagemaker_pipelines = Table(
    "sagemaker_pipelines", metadata,
    # Surrogate key: versions and executions hang off it, so a pipeline deleted and re-created under
    # the same name never inherits the old one's history.
    Column("pipeline_id", String(32), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    # Lower-cased name: the ARN lower-cases it, so "MyPipe" and "mypipe" are the same pipeline.
    Column("name_key", String(256), nullable=False),
    Column("name", String(256), nullable=False),
    Column("arn", String(2048), nullable=False),
    Column("display_name", String(256), nullable=False),
    Column("description", Text, nullable=True),
    Column("role_arn", String(2048), nullable=False),
    Column("status", String(16), nullable=False, default="Active"),
    Column("parallelism", JsonType, nullable=True),
    Column("latest_version", Integer, nullable=False, default=1),
    Column("tags", JsonType, nullable=False, default=list),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", JsonType, nullable=True),
    Column("last_modified_at", UtcDateTime, nullable=False),
    Column("last_modified_by", JsonType, nullable=True),
    # LastRunTime is derived from the executions: see pipeline_last_run_at below.
    UniqueConstraint("account_id", "region", "name_key"),
    Index("ix_sagemaker_pipelines_created", "account_id", "region", "created_at"),
)

sagemaker_pipeline_versions = Table(
    "sagemaker_pipeline_versions", metadata,
    Column("pipeline_id", String(32), primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("definition", Text, nullable=False),
    Column("display_name", String(82), nullable=True),
    Column("description", Text, nullable=True),
    Column("aliases", JsonType, nullable=False, default=list),
    # LastExecutionPipelineExecutionArn is derived: see version_last_execution_arn below.
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", JsonType, nullable=True),
    Column("last_modified_at", UtcDateTime, nullable=False),
    Column("last_modified_by", JsonType, nullable=True),
)

# The statuses of an execution the engine still runs. The SQL condition is written out (not bound
# parameters) so SQLite can match a query's condition to the partial index below.
ACTIVE_EXECUTION_STATUSES = ("Executing", "Stopping")
ACTIVE_EXECUTIONS_SQL = "status IN ({})".format(", ".join(f"'{s}'" for s in ACTIVE_EXECUTION_STATUSES))

sagemaker_pipeline_executions = Table(
    "sagemaker_pipeline_executions", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("execution_id", String(16), primary_key=True),
    Column("pipeline_id", String(32), nullable=False),
    Column("pipeline_name_key", String(256), nullable=False),
    Column("pipeline_arn", String(2048), nullable=False),
    Column("arn", String(2048), nullable=False),
    Column("pipeline_version_id", Integer, nullable=False),
    Column("display_name", String(82), nullable=False),
    Column("description", Text, nullable=True),
    # Executing | Stopping | Stopped | Failed | Succeeded | CompletedWithFailures
    Column("status", String(32), nullable=False),
    Column("failure_reason", Text, nullable=True),
    # Typed values (for the engine) and the ListPipelineParametersForExecution rendering.
    Column("resolved_parameters", JsonType, nullable=False, default=dict),
    Column("parameters", JsonType, nullable=False, default=list),
    Column("parallelism", JsonType, nullable=True),
    Column("selective_execution", JsonType, nullable=True),
    Column("experiment_config", JsonType, nullable=True),
    Column("role_arn", String(2048), nullable=True),
    Column("mlflow_experiment_name", String(256), nullable=True),
    Column("tags", JsonType, nullable=False, default=list),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", JsonType, nullable=True),
    Column("last_modified_at", UtcDateTime, nullable=False),
    Column("last_modified_by", JsonType, nullable=True),
    Column("ended_at", UtcDateTime, nullable=True),
    # StartPipelineExecution's ClientRequestToken (scoped to the pipeline owner's account and
    # region) and the hash of the rest of its request: a retry finds the execution it started.
    Column("client_token", String(128), nullable=True),
    Column("client_token_fingerprint", String(64), nullable=True),
    Index("ix_sagemaker_pipeline_executions_pipeline", "pipeline_id", "created_at"),
    Index("ix_sagemaker_pipeline_executions_version", "pipeline_id", "pipeline_version_id", "created_at"),
    Index("ux_sagemaker_pipeline_executions_token", "account_id", "region", "client_token", unique=True),
    # The engine polls for the active executions: only those are indexed, so the index stays
    # small and an execution's end removes its entry instead of moving it to another page.
    Index("ix_sagemaker_pipeline_executions_active", "status",
          sqlite_where=text(ACTIVE_EXECUTIONS_SQL), postgresql_where=text(ACTIVE_EXECUTIONS_SQL)),
)

# A pipeline's last run and a version's last execution are read from the executions (one index
# seek each) rather than stored, so StartPipelineExecution writes only its execution row.
pipeline_last_run_at = (
    select(func.max(sagemaker_pipeline_executions.c.created_at))
    .where(sagemaker_pipeline_executions.c.pipeline_id == sagemaker_pipelines.c.pipeline_id)
    .scalar_subquery().label("last_run_at"))
version_last_execution_arn = (
    select(sagemaker_pipeline_executions.c.arn)
    .where((sagemaker_pipeline_executions.c.pipeline_id == sagemaker_pipeline_versions.c.pipeline_id)
           & (sagemaker_pipeline_executions.c.pipeline_version_id == sagemaker_pipeline_versions.c.version_id))
    .order_by(sagemaker_pipeline_executions.c.created_at.desc()).limit(1)
    .scalar_subquery().label("last_execution_arn"))
# select(*PIPELINE_COLUMNS) / select(*VERSION_COLUMNS): a whole row with its derived column.
PIPELINE_COLUMNS = (*sagemaker_pipelines.c, pipeline_last_run_at)
VERSION_COLUMNS = (*sagemaker_pipeline_versions.c, version_last_execution_arn)

# Filled by the execution engine (a later issue); ListPipelineExecutionSteps reads it already.
sagemaker_pipeline_execution_steps = Table(
    "sagemaker_pipeline_execution_steps", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("execution_id", String(16), primary_key=True),
    # Order of first start; a ForEach iteration or retried step gets its own row.
    Column("seq", Integer, primary_key=True),
    Column("step_name", String(256), nullable=False),
    Column("step_type", String(32), nullable=False),
    Column("display_name", String(256), nullable=True),
    Column("description", Text, nullable=True),
    # Starting | Executing | Stopping | Stopped | Failed | Succeeded
    Column("status", String(16), nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("ended_at", UtcDateTime, nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("attempt_count", Integer, nullable=False, default=1),
    Column("step_metadata", JsonType, nullable=True),
    Column("cache_hit_result", JsonType, nullable=True),
    Column("selective_execution_result", JsonType, nullable=True),
    Column("iteration_context", JsonType, nullable=True),
    # Step properties other steps read through {"Get": "Steps.X..."}.
    Column("outputs", JsonType, nullable=True),
    Column("last_modified_at", UtcDateTime, nullable=False),
)

sagemaker_request_tokens = Table(
    "sagemaker_request_tokens", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("operation", String(64), primary_key=True),
    Column("token", String(128), primary_key=True),
    # Hash of the request minus the token: a reused token with different input is a conflict.
    Column("fingerprint", String(64), nullable=False),
    Column("result", JsonType, nullable=False),
    Column("created_at", UtcDateTime, nullable=False, index=True),
)
