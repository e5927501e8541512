"""Describe* / List* response shapes built from job and model rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row

DEFAULT_STOPPING = {"MaxRuntimeInSeconds": 86400}


def ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def transitions(row: Row[Any]) -> list[dict[str, Any]]:
    return [_clean({"Status": t["Status"], "StartTime": ts(t["StartTime"]), "EndTime": ts(t.get("EndTime")),
                    "StatusMessage": t.get("StatusMessage") or None}) for t in row.transitions or []]


def metrics(row: Row[Any]) -> list[dict[str, Any]]:
    return [{"MetricName": m["MetricName"], "Value": m["Value"], "Timestamp": ts(m["Timestamp"])}
            for m in row.metrics or []]


def model_artifacts(row: Row[Any]) -> str:
    path = (row.request.get("OutputDataConfig") or {}).get("S3OutputPath", "")
    return f"{path.rstrip('/')}/{row.name}/output/model.tar.gz"


def processing_job(row: Row[Any]) -> dict[str, Any]:
    req = row.request
    out = {k: req[k] for k in ("ProcessingInputs", "ProcessingOutputConfig", "ProcessingResources",
                               "StoppingCondition", "AppSpecification", "Environment", "NetworkConfig", "RoleArn",
                               "ExperimentConfig") if req.get(k) is not None}
    out.update(_clean({
        "ProcessingJobName": row.name, "ProcessingJobArn": row.arn, "ProcessingJobStatus": row.status,
        "ExitMessage": row.exit_message, "FailureReason": row.failure_reason,
        "ProcessingEndTime": row.ended_at, "ProcessingStartTime": row.started_at,
        "LastModifiedTime": row.last_modified_at, "CreationTime": row.created_at,
        "TrainingJobArn": None,
    }))
    return out


def training_job(row: Row[Any]) -> dict[str, Any]:
    req = row.request
    out = {k: req[k] for k in ("HyperParameters", "AlgorithmSpecification", "RoleArn", "InputDataConfig",
                               "OutputDataConfig", "ResourceConfig", "VpcConfig", "EnableNetworkIsolation",
                               "EnableInterContainerTrafficEncryption", "EnableManagedSpotTraining",
                               "CheckpointConfig", "DebugHookConfig", "ExperimentConfig", "TensorBoardOutputConfig",
                               "Environment", "RetryStrategy") if req.get(k) is not None}
    start = row.started_at
    end = row.ended_at
    out.update(_clean({
        "TrainingJobName": row.name, "TrainingJobArn": row.arn, "TuningJobArn": row.parent_arn,
        "ModelArtifacts": {"S3ModelArtifacts": model_artifacts(row)},
        "TrainingJobStatus": row.status, "SecondaryStatus": row.secondary_status or "Starting",
        "FailureReason": row.failure_reason, "StoppingCondition": req.get("StoppingCondition") or DEFAULT_STOPPING,
        "CreationTime": row.created_at, "TrainingStartTime": start, "TrainingEndTime": end,
        "LastModifiedTime": row.last_modified_at, "SecondaryStatusTransitions": transitions(row),
        "FinalMetricDataList": metrics(row) if row.metrics is not None else None,
        "TrainingTimeInSeconds": int((end - start).total_seconds()) if start and end else None,
        "BillableTimeInSeconds": max(1, int((end - start).total_seconds())) if start and end else None,
    }))
    out.setdefault("EnableNetworkIsolation", False)
    out.setdefault("EnableInterContainerTrafficEncryption", False)
    out.setdefault("EnableManagedSpotTraining", False)
    return out


def transform_job(row: Row[Any]) -> dict[str, Any]:
    req = row.request
    out = {k: req[k] for k in ("ModelName", "MaxConcurrentTransforms", "ModelClientConfig", "MaxPayloadInMB",
                               "BatchStrategy", "Environment", "TransformInput", "TransformOutput",
                               "DataCaptureConfig", "TransformResources", "DataProcessing", "ExperimentConfig")
           if req.get(k) is not None}
    out.update(_clean({
        "TransformJobName": row.name, "TransformJobArn": row.arn, "TransformJobStatus": row.status,
        "FailureReason": row.failure_reason, "CreationTime": row.created_at,
        "TransformStartTime": row.started_at, "TransformEndTime": row.ended_at,
    }))
    return out


def tuning_job(row: Row[Any]) -> dict[str, Any]:
    req = row.request
    result = row.result or {}
    out = {k: req[k] for k in ("HyperParameterTuningJobConfig", "TrainingJobDefinition", "TrainingJobDefinitions",
                               "WarmStartConfig", "Autotune") if req.get(k) is not None}
    best = result.get("BestTrainingJob")
    out.update(_clean({
        "HyperParameterTuningJobName": row.name, "HyperParameterTuningJobArn": row.arn,
        "HyperParameterTuningJobStatus": row.status, "CreationTime": row.created_at,
        "HyperParameterTuningEndTime": row.ended_at, "LastModifiedTime": row.last_modified_at,
        "TrainingJobStatusCounters": result.get("TrainingJobStatusCounters") or empty_counters(),
        "ObjectiveStatusCounters": result.get("ObjectiveStatusCounters") or {"Succeeded": 0, "Pending": 0, "Failed": 0},
        "BestTrainingJob": tuning_summary_view(best) if best else None,
        "OverallBestTrainingJob": tuning_summary_view(best) if best else None,
        "FailureReason": row.failure_reason,
    }))
    return out


def empty_counters() -> dict[str, int]:
    return {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}


def tuning_summary_view(summary: dict[str, Any]) -> dict[str, Any]:
    """A stored HyperParameterTrainingJobSummary (epoch times) in the API shape."""
    out = dict(summary)
    for key in ("CreationTime", "TrainingStartTime", "TrainingEndTime"):
        if out.get(key) is not None:
            out[key] = ts(out[key])
    return _clean(out)


def job_summary(row: Row[Any]) -> dict[str, Any]:
    if row.kind == "processing":
        return _clean({"ProcessingJobName": row.name, "ProcessingJobArn": row.arn, "CreationTime": row.created_at,
                       "ProcessingEndTime": row.ended_at, "LastModifiedTime": row.last_modified_at,
                       "ProcessingJobStatus": row.status, "FailureReason": row.failure_reason,
                       "ExitMessage": row.exit_message})
    if row.kind == "training":
        return _clean({"TrainingJobName": row.name, "TrainingJobArn": row.arn, "CreationTime": row.created_at,
                       "TrainingEndTime": row.ended_at, "LastModifiedTime": row.last_modified_at,
                       "TrainingJobStatus": row.status, "SecondaryStatus": row.secondary_status})
    if row.kind == "transform":
        return _clean({"TransformJobName": row.name, "TransformJobArn": row.arn, "CreationTime": row.created_at,
                       "TransformEndTime": row.ended_at, "LastModifiedTime": row.last_modified_at,
                       "TransformJobStatus": row.status, "FailureReason": row.failure_reason})
    result = row.result or {}
    config = row.request.get("HyperParameterTuningJobConfig") or {}
    return _clean({"HyperParameterTuningJobName": row.name, "HyperParameterTuningJobArn": row.arn,
                   "HyperParameterTuningJobStatus": row.status, "Strategy": config.get("Strategy"),
                   "CreationTime": row.created_at, "HyperParameterTuningEndTime": row.ended_at,
                   "LastModifiedTime": row.last_modified_at,
                   "TrainingJobStatusCounters": result.get("TrainingJobStatusCounters") or empty_counters(),
                   "ObjectiveStatusCounters": result.get("ObjectiveStatusCounters")
                   or {"Succeeded": 0, "Pending": 0, "Failed": 0},
                   "ResourceLimits": config.get("ResourceLimits")})


DESCRIBE = {"processing": processing_job, "training": training_job, "transform": transform_job,
            "tuning": tuning_job}


def describe(row: Row[Any]) -> dict[str, Any]:
    return DESCRIBE[row.kind](row)


def model_description(row: Row[Any]) -> dict[str, Any]:
    req = row.request
    out = {k: req[k] for k in ("PrimaryContainer", "Containers", "InferenceExecutionConfig", "ExecutionRoleArn",
                               "VpcConfig") if req.get(k) is not None}
    out.update({"ModelName": row.name, "ModelArn": row.arn, "CreationTime": row.created_at,
                "EnableNetworkIsolation": bool(req.get("EnableNetworkIsolation", False))})
    return out


def jsonable(value: Any) -> Any:
    """A Describe* response with datetimes as ISO-8601 strings (for step properties stored as JSON)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value
