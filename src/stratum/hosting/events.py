"""SageMaker's "SageMaker Endpoint State Change" event (source ``aws.sagemaker``), as AWS's example
shows it: the endpoint's name, ARN, config, variants with their weights and instance counts, the
status in upper case (``IN_SERVICE``), times in epoch milliseconds and the tags as a map.

Written to the SageMaker event outbox in the transaction that changes the endpoint's status (the
control plane's and the supervisor's writes alike), so each change reaches the event bus once.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from stratum.hosting.tables import sagemaker_endpoints as endpoints_t
from stratum.services.sagemaker.registry.tables import sagemaker_registry_events as outbox_t

STATE_CHANGE = "SageMaker Endpoint State Change"


def _millis(at: datetime | None) -> int | None:
    return int(at.timestamp() * 1000) if at is not None else None


def _upper(status: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", status).upper()


def detail(row: Any) -> dict[str, Any]:
    shown = row.serving or row.pending or {}
    variants = []
    for v in shown.get("Variants") or []:
        item = {"VariantName": v["VariantName"], "CurrentWeight": v.get("CurrentWeight"),
                "DesiredWeight": v.get("DesiredWeight"), "CurrentInstanceCount": v.get("CurrentInstanceCount"),
                "DesiredInstanceCount": v.get("DesiredInstanceCount")}
        variants.append({k: value for k, value in item.items() if value is not None})
    out: dict[str, Any] = {
        "EndpointName": row.name, "EndpointArn": row.arn, "EndpointConfigName": row.config_name,
        "ProductionVariants": variants, "EndpointStatus": _upper(row.status),
        "CreationTime": _millis(row.created_at), "LastModifiedTime": _millis(row.last_modified_at),
        "Tags": {t["Key"]: t["Value"] for t in row.tags or []}}
    if row.failure_reason:
        out["FailureReason"] = row.failure_reason
    return out


def state_changed(conn: Connection, endpoint_id: str, now: datetime) -> None:
    """Queue the endpoint's state-change event (as it now is) in the caller's transaction."""
    row = conn.execute(select(endpoints_t).where(endpoints_t.c.endpoint_id == endpoint_id)).first()
    if row is None:
        return
    conn.execute(insert(outbox_t).values(
        account_id=row.account_id, region=row.region, source="aws.sagemaker", detail_type=STATE_CHANGE,
        resources=[row.arn], detail=detail(row), created_at=now, dispatched_at=None))
