"""Rows and catalog entries rendered in the RAM API's output shapes."""

from __future__ import annotations

from typing import Any

from stratum.services.ram.permissions import ManagedPermission


def share_view(share: dict[str, Any]) -> dict[str, Any]:
    return {"resourceShareArn": share["arn"], "name": share["name"], "owningAccountId": share["account_id"],
            "allowExternalPrincipals": bool(share["allow_external_principals"]), "status": share["status"],
            "statusMessage": share.get("status_message"), "tags": list(share.get("tags") or []),
            "creationTime": share["created_at"], "lastUpdatedTime": share["updated_at"],
            "featureSet": share.get("feature_set") or "STANDARD"}


def _permission_common(permission: ManagedPermission) -> dict[str, Any]:
    return {"arn": permission.arn, "version": str(permission.version), "defaultVersion": True,
            "name": permission.name, "resourceType": permission.resource_type,
            "creationTime": permission.created_at, "lastUpdatedTime": permission.created_at,
            "isResourceTypeDefault": permission.is_resource_type_default, "permissionType": "AWS_MANAGED",
            "featureSet": "STANDARD"}


def permission_summary(permission: ManagedPermission, status: str = "ATTACHABLE") -> dict[str, Any]:
    return {**_permission_common(permission), "status": status}


def permission_detail(permission: ManagedPermission) -> dict[str, Any]:
    return {**_permission_common(permission), "permission": permission.template, "status": "ATTACHABLE"}
