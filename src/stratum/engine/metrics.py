"""The CloudWatch metrics SageMaker publishes for pipelines (namespace
``AWS/Sagemaker/ModelBuildingPipeline``): per pipeline (dimension PipelineName) ExecutionStarted,
ExecutionSucceeded / ExecutionFailed / ExecutionStopped and ExecutionDuration; per step
(PipelineName, StepName) StepStarted, StepSucceeded / StepFailed / StepStopped and StepDuration.

They are written in the transaction that records the execution's end (engine.ending), each at
its own time (a step's start, a step's end...), from the execution's rows: exact, and never lost or
counted twice by a crash, since the end and its metrics commit together. Counts of an execution
still running appear when it ends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stratum.services.cloudwatch.datapoints import MetricRef

NAMESPACE = "AWS/Sagemaker/ModelBuildingPipeline"
ENDED = {"Succeeded", "Failed", "Stopped"}


def _count(at: datetime) -> dict[str, Any]:
    return _point(at, 1.0, "Count")


def _point(at: datetime, value: float, unit: str) -> dict[str, Any]:
    return {"timestamp": at, "unit": unit, "sample_count": 1.0, "sum": value, "minimum": value, "maximum": value,
            "values": [[value, 1.0]], "storage_resolution": 60}


def _millis(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds() * 1000.0)


def execution_metrics(execution: Any, steps: list[Any]) -> dict[MetricRef, list[dict[str, Any]]]:
    """The datapoints of one ended execution (its row with ``pipeline_name``, and its step rows)."""
    batch: dict[MetricRef, list[dict[str, Any]]] = {}

    def add(name: str, dimensions: tuple[tuple[str, str], ...], point: dict[str, Any]) -> None:
        ref = MetricRef(execution.account_id, execution.region, NAMESPACE, name, dimensions)
        batch.setdefault(ref, []).append(point)

    pipeline = (("PipelineName", execution.pipeline_name),)
    add("ExecutionStarted", pipeline, _count(execution.created_at))
    if execution.status in ENDED and execution.ended_at is not None:
        add(f"Execution{execution.status}", pipeline, _count(execution.ended_at))
        duration = _millis(execution.created_at, execution.ended_at)
        if duration is not None:
            add("ExecutionDuration", pipeline, _point(execution.ended_at, duration, "Milliseconds"))
    for step in steps:
        dims = (("PipelineName", execution.pipeline_name), ("StepName", step.step_name))
        if step.started_at is not None:
            add("StepStarted", dims, _count(step.started_at))
        if step.status in ENDED and step.ended_at is not None:
            add(f"Step{step.status}", dims, _count(step.ended_at))
            duration = _millis(step.started_at, step.ended_at)
            if duration is not None:
                add("StepDuration", dims, _point(step.ended_at, duration, "Milliseconds"))
    return batch
