"""The documents the hosting API answers with, from endpoint and endpoint config rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def config_description(row: Row[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"EndpointConfigName": row.name, "EndpointConfigArn": row.arn}
    request = dict(row.request)
    variants = []
    for pv in request.pop("ProductionVariants"):
        pv = dict(pv)
        if not pv.get("ServerlessConfig"):
            pv.setdefault("InitialVariantWeight", 1.0)
        variants.append(pv)
    out["ProductionVariants"] = variants
    out.update(request)
    out["CreationTime"] = row.created_at
    return out


def config_summary(row: Row[Any]) -> dict[str, Any]:
    return {"EndpointConfigName": row.name, "EndpointConfigArn": row.arn, "CreationTime": row.created_at}


def _images(variant: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**image, "ResolutionTime": _time(image["ResolutionTime"])} for image in variant["DeployedImages"]]


def _status(variant: dict[str, Any]) -> list[dict[str, Any]]:
    status = variant.get("Status")
    if not status:
        return []
    return [{**status, "StartTime": _time(status["StartTime"])}]


def variant_summary(variant: dict[str, Any], pending: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"VariantName": variant["VariantName"], "DeployedImages": _images(variant),
                           "CurrentWeight": variant["CurrentWeight"], "DesiredWeight": variant["DesiredWeight"]}
    serverless = variant.get("ServerlessConfig")
    if serverless:
        out["CurrentServerlessConfig"] = serverless
        out["DesiredServerlessConfig"] = serverless
    else:
        out["CurrentInstanceCount"] = variant["CurrentInstanceCount"]
        out["DesiredInstanceCount"] = variant["DesiredInstanceCount"]
    if pending:
        if variant.get("InstanceType"):
            out["InstanceType"] = variant["InstanceType"]
        if variant.get("AcceleratorType"):
            out["AcceleratorType"] = variant["AcceleratorType"]
    status = _status(variant)
    if status or pending:
        out["VariantStatus"] = status
    return out


def capture_summary(capture: dict[str, Any] | None) -> dict[str, Any] | None:
    if not capture:
        return None
    enabled = bool(capture.get("EnableCapture", True))
    out = {"EnableCapture": enabled, "CaptureStatus": "Started" if enabled else "Stopped",
           "CurrentSamplingPercentage": int(capture.get("InitialSamplingPercentage", 0)),
           "DestinationS3Uri": capture["DestinationS3Uri"]}
    if capture.get("KmsKeyId"):
        out["KmsKeyId"] = capture["KmsKeyId"]
    return out


def endpoint_description(row: Row[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"EndpointName": row.name, "EndpointArn": row.arn, "EndpointConfigName": row.config_name}
    serving = row.serving
    pending = row.pending
    shown = serving
    if serving is None and pending is not None:
        shown = pending  # Creating (or Failed creating): the variants being launched
    if shown is not None:
        out["ProductionVariants"] = [variant_summary(v) for v in shown["Variants"]]
        capture = capture_summary(shown.get("DataCaptureConfig"))
        if capture:
            out["DataCaptureConfig"] = capture
        if shown.get("AsyncInferenceConfig"):
            out["AsyncInferenceConfig"] = shown["AsyncInferenceConfig"]
    last = (pending or {}).get("DeploymentConfig") or (serving or {}).get("DeploymentConfig")
    if last:
        out["LastDeploymentConfig"] = last
    out["EndpointStatus"] = row.status
    if row.failure_reason:
        out["FailureReason"] = row.failure_reason
    out["CreationTime"] = row.created_at
    out["LastModifiedTime"] = row.last_modified_at
    if serving is not None and pending is not None:
        out["PendingDeploymentSummary"] = {
            "EndpointConfigName": pending["ConfigName"],
            "ProductionVariants": [variant_summary(v, pending=True) for v in pending["Variants"]],
            "StartTime": _time(pending["StartTime"])}
    return out


def endpoint_summary(row: Row[Any]) -> dict[str, Any]:
    return {"EndpointName": row.name, "EndpointArn": row.arn, "CreationTime": row.created_at,
            "LastModifiedTime": row.last_modified_at, "EndpointStatus": row.status}


def endpoint_record(row: Row[Any]) -> dict[str, Any]:
    """The Search record of an endpoint (the Endpoint shape)."""
    out = {k: v for k, v in endpoint_description(row).items()
           if k in ("EndpointName", "EndpointArn", "EndpointConfigName", "ProductionVariants", "DataCaptureConfig",
                    "EndpointStatus", "FailureReason", "CreationTime", "LastModifiedTime")}
    out["Tags"] = list(row.tags or [])
    return out
