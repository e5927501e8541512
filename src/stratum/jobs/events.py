"""SageMaker's job events, as AWS sends them to EventBridge (source ``aws.sagemaker``): "SageMaker
Training Job State Change", "... Processing Job ...", "... Transform Job ..." and "SageMaker
HyperParameter Tuning Job State Change", whose detail is the job's Describe output (times in epoch
milliseconds, as in AWS's examples).

Written to the SageMaker event outbox in the transaction that changes the job's status (see
store.insert_job / update_job), so each change reaches the event bus once, and only if it
committed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert

from stratum.jobs import views
from stratum.services.sagemaker.registry.tables import sagemaker_registry_events as outbox_t

DETAIL_TYPES = {"training": "SageMaker Training Job State Change",
                "processing": "SageMaker Processing Job State Change",
                "transform": "SageMaker Transform Job State Change",
                "tuning": "SageMaker HyperParameter Tuning Job State Change"}


def _millis(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: _millis(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_millis(v) for v in value]
    return value


def state_changed(conn: Connection, row: Row[Any], now: datetime) -> None:
    """Queue the job's state-change event (``row`` as it now is) in the caller's transaction."""
    detail_type = DETAIL_TYPES.get(row.kind)
    if detail_type is None:
        return
    conn.execute(insert(outbox_t).values(
        account_id=row.account_id, region=row.region, source="aws.sagemaker", detail_type=detail_type,
        resources=[row.arn], detail=_millis(views.describe(row)), created_at=now, dispatched_at=None))
