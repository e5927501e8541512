"""Registry rows -> SageMaker output shapes (None members are dropped by the serializer)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row


def group_description(row: Row[Any]) -> dict[str, Any]:
    return {
        "ModelPackageGroupName": row.name,
        "ModelPackageGroupArn": row.arn,
        "ModelPackageGroupDescription": row.description,
        "CreationTime": row.created_at,
        "CreatedBy": row.created_by or {},
        "ModelPackageGroupStatus": row.status,
        "ManagedConfiguration": row.managed_configuration,
    }


def group_summary(row: Row[Any]) -> dict[str, Any]:
    return {
        "ModelPackageGroupName": row.name,
        "ModelPackageGroupArn": row.arn,
        "ModelPackageGroupDescription": row.description,
        "CreationTime": row.created_at,
        "ModelPackageGroupStatus": row.status,
        "ManagedConfiguration": row.managed_configuration,
    }


def group_record(row: Row[Any]) -> dict[str, Any]:
    """The Search "ModelPackageGroup" model."""
    return {
        "ModelPackageGroupName": row.name,
        "ModelPackageGroupArn": row.arn,
        "ModelPackageGroupDescription": row.description,
        "CreationTime": row.created_at,
        "CreatedBy": row.created_by,
        "ModelPackageGroupStatus": row.status,
        "Tags": list(row.tags or []),
    }


def _status_details() -> dict[str, Any]:
    # Stratum runs no validation profiles or image scans, so there is nothing to report.
    return {"ValidationStatuses": [], "ImageScanStatuses": []}


def package_description(row: Row[Any]) -> dict[str, Any]:
    """DescribeModelPackage."""
    document = row.document or {}
    return {
        "ModelPackageName": row.name,
        "ModelPackageGroupName": row.group_name,
        "ModelPackageVersion": row.version,
        "ModelPackageArn": row.arn,
        "ModelPackageDescription": row.description,
        "CreationTime": row.created_at,
        "InferenceSpecification": row.inference_specification,
        "ModelPackageStatus": row.status,
        "ModelPackageStatusDetails": _status_details(),
        "ModelApprovalStatus": row.approval_status,
        "CreatedBy": row.created_by,
        "LastModifiedTime": row.last_modified_at,
        "LastModifiedBy": row.last_modified_by,
        "ApprovalDescription": row.approval_description,
        "CustomerMetadataProperties": row.customer_metadata or None,
        **document,
    }


def package_summary(row: Row[Any]) -> dict[str, Any]:
    """ListModelPackages."""
    document = row.document or {}
    return {
        "ModelPackageName": row.name,
        "ModelPackageGroupName": row.group_name,
        "ModelPackageVersion": row.version,
        "ModelPackageArn": row.arn,
        "ModelPackageDescription": row.description,
        "CreationTime": row.created_at,
        "ModelPackageStatus": row.status,
        "ModelApprovalStatus": row.approval_status,
        "ModelLifeCycle": document.get("ModelLifeCycle"),
        "ModelPackageRegistrationType": document.get("ModelPackageRegistrationType"),
    }


def batch_summary(row: Row[Any]) -> dict[str, Any]:
    """BatchDescribeModelPackage (InferenceSpecification is a required member there)."""
    return {
        "ModelPackageGroupName": row.group_name,
        "ModelPackageVersion": row.version,
        "ModelPackageArn": row.arn,
        "ModelPackageDescription": row.description,
        "CreationTime": row.created_at,
        "InferenceSpecification": row.inference_specification or {"Containers": []},
        "ModelPackageStatus": row.status,
        "ModelApprovalStatus": row.approval_status,
        "ModelPackageRegistrationType": (row.document or {}).get("ModelPackageRegistrationType"),
    }


def package_record(row: Row[Any], tags: list[dict[str, str]]) -> dict[str, Any]:
    """The Search "ModelPackage" model."""
    record = package_description(row)
    record["Tags"] = tags
    return {k: v for k, v in record.items() if v is not None}


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_detail(row: Row[Any]) -> dict[str, Any]:
    """The event's detail: the package as DescribeModelPackage shows it, times as ISO-8601 text
    (the documented example), without the caller identities."""
    detail = package_description(row)
    detail.pop("CreatedBy", None)
    detail.pop("LastModifiedBy", None)
    for key in ("CreationTime", "LastModifiedTime"):
        if isinstance(detail.get(key), datetime):
            detail[key] = _iso(detail[key])
    return {k: v for k, v in detail.items() if v is not None}
