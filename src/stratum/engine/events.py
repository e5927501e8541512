"""SageMaker's pipeline events, as AWS sends them to EventBridge (source ``aws.sagemaker``):
"SageMaker Model Building Pipeline Execution Status Change" and "... Execution Step Status
Change", in their documented shapes.

Each is written to the SageMaker event outbox (``sagemaker_registry_events``) in the transaction
that records the change, so the event bus delivers every change once, in order, and never one
that was rolled back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert

from stratum.services.sagemaker.registry.tables import sagemaker_registry_events as outbox_t

EXECUTION_STATUS = "SageMaker Model Building Pipeline Execution Status Change"
STEP_STATUS = "SageMaker Model Building Pipeline Execution Step Status Change"


def _time(at: datetime | None) -> str | None:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at is not None else None


def _camel(value: Any) -> Any:
    """Step metadata as the event carries it: {"processingJob": {"arn": ...}} for the API's
    {"ProcessingJob": {"Arn": ...}}."""
    if isinstance(value, dict):
        return {(k[:1].lower() + k[1:]): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _put(conn: Connection, account: str, region: str, detail_type: str, resources: list[str],
         detail: dict[str, Any], now: datetime) -> None:
    conn.execute(insert(outbox_t).values(
        account_id=account, region=region, source="aws.sagemaker", detail_type=detail_type, resources=resources,
        detail={k: v for k, v in detail.items() if v is not None}, created_at=now, dispatched_at=None))


def execution_status(conn: Connection, *, account: str, region: str, pipeline_arn: str, execution_arn: str,
                     display_name: str | None, description: str | None, current: str, previous: str | None,
                     started: datetime | None, ended: datetime | None, now: datetime) -> None:
    _put(conn, account, region, EXECUTION_STATUS, [pipeline_arn, execution_arn], {
        "pipelineExecutionDisplayName": display_name, "currentPipelineExecutionStatus": current,
        "previousPipelineExecutionStatus": previous, "executionStartTime": _time(started),
        "executionEndTime": _time(ended), "pipelineExecutionDescription": description,
        "pipelineArn": pipeline_arn, "pipelineExecutionArn": execution_arn}, now)


def execution_row_status(conn: Connection, row: Any, previous: str | None, now: datetime) -> None:
    """The event of an execution row's current status (a row with pipeline_arn, arn, status...)."""
    execution_status(conn, account=row.account_id, region=row.region, pipeline_arn=row.pipeline_arn,
                     execution_arn=row.arn, display_name=row.display_name, description=row.description,
                     current=row.status, previous=previous, started=row.created_at, ended=row.ended_at, now=now)


def step_status(conn: Connection, *, account: str, region: str, pipeline_arn: str, execution_arn: str,
                step_name: str, step_type: str, current: str, previous: str | None, started: datetime | None,
                ended: datetime | None, metadata: Any, now: datetime, failure_reason: str | None = None,
                cache_hit: dict[str, Any] | None = None) -> None:
    _put(conn, account, region, STEP_STATUS, [pipeline_arn, execution_arn], {
        "metadata": _camel(metadata) if metadata else {}, "stepStartTime": _time(started),
        "stepEndTime": _time(ended), "stepName": step_name, "stepType": step_type,
        "previousStepStatus": previous, "currentStepStatus": current, "failureReason": failure_reason,
        "cacheHitResult": _camel(cache_hit) if cache_hit else None,
        "pipelineArn": pipeline_arn, "pipelineExecutionArn": execution_arn}, now)
