"""Rows -> SageMaker output shapes. None values are dropped by the serializer, so optional fields
are passed through as they are."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row


def pipeline_description(row: Row[Any]) -> dict[str, Any]:
    """DescribePipeline, from a find_pipeline_version row."""
    return {
        "PipelineArn": row.arn,
        "PipelineName": row.name,
        "PipelineDisplayName": row.display_name,
        "PipelineDefinition": row.definition,
        "PipelineDescription": row.description,
        "RoleArn": row.role_arn,
        "PipelineStatus": row.status,
        "CreationTime": row.created_at,
        "LastModifiedTime": row.last_modified_at,
        "LastRunTime": row.last_run_at,
        "CreatedBy": row.created_by,
        "LastModifiedBy": row.last_modified_by,
        "ParallelismConfiguration": row.parallelism,
        "PipelineVersionDisplayName": row.version_display_name,
        "PipelineVersionDescription": row.version_description,
        "PipelineVersionAliases": row.version_aliases or None,
    }


def pipeline_summary(row: Row[Any]) -> dict[str, Any]:
    return {
        "PipelineArn": row.arn,
        "PipelineName": row.name,
        "PipelineDisplayName": row.display_name,
        "PipelineDescription": row.description,
        "RoleArn": row.role_arn,
        "CreationTime": row.created_at,
        "LastModifiedTime": row.last_modified_at,
        "LastExecutionTime": row.last_run_at,
    }


def pipeline_record(row: Row[Any]) -> dict[str, Any]:
    """The Search "Pipeline" model."""
    return {
        "PipelineArn": row.arn,
        "PipelineName": row.name,
        "PipelineDisplayName": row.display_name,
        "PipelineDescription": row.description,
        "RoleArn": row.role_arn,
        "PipelineStatus": row.status,
        "CreationTime": row.created_at,
        "LastModifiedTime": row.last_modified_at,
        "LastRunTime": row.last_run_at,
        "CreatedBy": row.created_by,
        "LastModifiedBy": row.last_modified_by,
        "ParallelismConfiguration": row.parallelism,
        "Tags": list(row.tags or []),
    }


def version_summary(row: Row[Any], pipeline_arn: str) -> dict[str, Any]:
    return {
        "PipelineArn": pipeline_arn,
        "PipelineVersionId": row.version_id,
        "CreationTime": row.created_at,
        "PipelineVersionDescription": row.description,
        "PipelineVersionDisplayName": row.display_name,
        "LastExecutionPipelineExecutionArn": row.last_execution_arn,
        "PipelineVersionAliases": row.aliases or None,
    }


def _execution_common(row: Row[Any]) -> dict[str, Any]:
    """Members DescribePipelineExecution and the Search "PipelineExecution" model share."""
    return {
        "PipelineArn": row.pipeline_arn,
        "PipelineExecutionArn": row.arn,
        "PipelineExecutionDisplayName": row.display_name,
        "PipelineExecutionStatus": row.status,
        "PipelineExecutionDescription": row.description,
        "PipelineExperimentConfig": row.experiment_config,
        "FailureReason": row.failure_reason,
        "CreationTime": row.created_at,
        "LastModifiedTime": row.last_modified_at,
        "CreatedBy": row.created_by,
        "LastModifiedBy": row.last_modified_by,
        "ParallelismConfiguration": row.parallelism,
        "SelectiveExecutionConfig": row.selective_execution,
        "PipelineVersionId": row.pipeline_version_id,
    }


def execution_description(row: Row[Any]) -> dict[str, Any]:
    return {
        **_execution_common(row),
        "MLflowConfig": ({"MlflowExperimentName": row.mlflow_experiment_name}
                         if row.mlflow_experiment_name else None),
        "RoleArn": row.role_arn,
    }


def execution_summary(row: Row[Any]) -> dict[str, Any]:
    return {
        "PipelineExecutionArn": row.arn,
        "StartTime": row.created_at,
        "PipelineExecutionStatus": row.status,
        "PipelineExecutionDescription": row.description,
        "PipelineExecutionDisplayName": row.display_name,
        "PipelineExecutionFailureReason": row.failure_reason,
    }


def execution_record(row: Row[Any]) -> dict[str, Any]:
    """The Search "PipelineExecution" model (row joined with its version's display name)."""
    return {
        **_execution_common(row),
        "PipelineParameters": list(row.parameters or []),
        "PipelineVersionDisplayName": row.version_display_name,
    }


def version_record(row: dict[str, Any]) -> dict[str, Any]:
    """The Search "PipelineVersion" model (listing.version_rows: version + pipeline ARN + last execution)."""
    return {
        "PipelineArn": row["pipeline_arn"],
        "PipelineVersionId": row["version_id"],
        "PipelineVersionDisplayName": row["display_name"],
        "PipelineVersionDescription": row["description"],
        "CreationTime": row["created_at"],
        "LastModifiedTime": row["last_modified_at"],
        "CreatedBy": row["created_by"],
        "LastModifiedBy": row["last_modified_by"],
        "LastExecutedPipelineExecutionArn": row["last_execution_arn"],
        "LastExecutedPipelineExecutionDisplayName": row["last_execution_display_name"],
        "LastExecutedPipelineExecutionStatus": row["last_execution_status"],
        "PipelineVersionAliases": row["aliases"] or None,
    }


def step_summary(row: Row[Any]) -> dict[str, Any]:
    return {
        "StepName": row.step_name,
        "StepDisplayName": row.display_name,
        "StepDescription": row.description,
        "StartTime": row.started_at,
        "EndTime": row.ended_at,
        "StepStatus": row.status,
        "CacheHitResult": row.cache_hit_result,
        "FailureReason": row.failure_reason,
        "Metadata": row.step_metadata,
        "AttemptCount": row.attempt_count,
        "SelectiveExecutionResult": row.selective_execution_result,
        "IterationContext": row.iteration_context,
    }
