"""Engine tables: callback tokens, and the step cache.

Step and execution state itself lives in the SageMaker tables (sagemaker_pipeline_executions,
sagemaker_pipeline_execution_steps) so the API reads what the engine writes, with no copy.
"""

from sqlalchemy import Column, Index, Integer, String, Table

from stratum.store.schema import JsonType, UtcDateTime, metadata

# One row per Callback step run: SendPipelineExecutionStepSuccess/Failure name only the token.
sagemaker_callback_tokens = Table(
    "sagemaker_callback_tokens", metadata,
    Column("token", String(10), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("execution_id", String(16), nullable=False),
    Column("pipeline_name_key", String(256), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("step_name", String(256), nullable=False),
    # The step's declared OutputParameters ([{OutputName, OutputType}]) to type the values sent back.
    Column("output_types", JsonType, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

# Successful runs of steps with CacheConfig.Enabled, by signature (type + resolved arguments).
sagemaker_step_cache = Table(
    "sagemaker_step_cache", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("pipeline_id", String(32), primary_key=True),
    Column("signature", String(64), primary_key=True),
    Column("execution_id", String(16), primary_key=True),
    Column("step_name", String(256), primary_key=True),
    Column("execution_arn", String(2048), nullable=False),
    Column("ended_at", UtcDateTime, nullable=False),
    Column("outputs", JsonType, nullable=True),
    Column("step_metadata", JsonType, nullable=True),
    # The newest entry within ExpireAfter wins: one range scan on this index.
    Index("ix_sagemaker_step_cache_lookup", "account_id", "region", "pipeline_id", "signature", "ended_at"),
)

