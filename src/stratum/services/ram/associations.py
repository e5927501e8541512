"""Read-only views of what shares hold: the resource policies RAM keeps for shared resources
(GetResourcePolicies) and the managed permissions associated with shares (ListPermissionAssociations)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, select

from stratum.services.ram import errors
from stratum.services.ram.permissions import PERMISSIONS, RESOURCE_TYPES, actions_of
from stratum.services.ram.queries import shares_for
from stratum.services.ram.shares import share_permissions
from stratum.services.ram.tables import ram_resource_shares as shares_t
from stratum.services.ram.tables import ram_share_permissions as permissions_t
from stratum.services.ram.tables import ram_share_principals as principals_t
from stratum.services.ram.tables import ram_share_resources as resources_t

_ORG_PRINCIPAL = ":organization/"
_OU_PRINCIPAL = ":ou/"


def _principal_statement(principal: str) -> dict[str, Any]:
    """How a RAM principal value appears in a resource policy: an account as itself, an organization
    or OU as everyone in it (aws:PrincipalOrgID / aws:PrincipalOrgPaths)."""
    if _ORG_PRINCIPAL in principal:
        return {"Principal": {"AWS": "*"},
                "Condition": {"StringEquals": {"aws:PrincipalOrgID": principal.rpartition("/")[2]}}}
    if _OU_PRINCIPAL in principal:
        org_id, _, ou_id = principal.rpartition(":ou/")[2].partition("/")
        return {"Principal": {"AWS": "*"},
                "Condition": {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": f"{org_id}/*/{ou_id}/*"}}}
    return {"Principal": {"AWS": f"arn:aws:iam::{principal}:root"}}


def resource_policies(conn: Connection, owner: str, region: str, resource_arns: list[str],
                      principal: str | None) -> list[str]:
    """One policy per shared resource of ``owner`` (in request order), with a statement per share
    and principal that reaches it."""
    out: list[str] = []
    for arn in dict.fromkeys(resource_arns):
        if not arn.startswith("arn:"):
            raise errors.malformed_arn(f"The specified resource ARN {arn} is not valid. Verify the ARN and try again.")
        query = (select(shares_t.c.arn, principals_t.c.principal, permissions_t.c.permission_arn)
                 .select_from(resources_t.join(shares_t, shares_t.c.arn == resources_t.c.share_arn)
                              .join(principals_t, principals_t.c.share_arn == shares_t.c.arn)
                              .join(permissions_t, (permissions_t.c.share_arn == shares_t.c.arn)
                                    & (permissions_t.c.resource_type == resources_t.c.resource_type)))
                 .where((resources_t.c.resource_arn == arn) & (resources_t.c.status == "ASSOCIATED")
                        & (shares_t.c.account_id == owner) & (shares_t.c.region == region)
                        & (shares_t.c.status == "ACTIVE") & (principals_t.c.status == "ASSOCIATED"))
                 .order_by(shares_t.c.created_at, principals_t.c.created_at))
        if principal:
            query = query.where(principals_t.c.principal == principal)
        statements = []
        for row in conn.execute(query):
            resource_type = next((t for t in RESOURCE_TYPES.values() if t.matches(arn)), None)
            covered = resource_type.covered(arn) if resource_type else [arn]
            statements.append({"Sid": "RAM" + row.arn.rpartition("/")[2].replace("-", ""), "Effect": "Allow",
                               **_principal_statement(row.principal), "Action": list(actions_of(row.permission_arn)),
                               "Resource": covered})
        if statements:
            out.append(json.dumps({"Version": "2012-10-17", "Statement": statements}))
    return out


def permission_associations(conn: Connection, caller: str, region: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """AssociatedPermission entries of the caller's shares (resourceOwner SELF, the default) or of
    the shares it received (OTHER-ACCOUNTS), filtered as ListPermissionAssociations asks."""
    found = []
    for share in shares_for(conn, caller, region, params.get("resourceOwner") or "SELF"):
        if params.get("resourceShareArn") and share["arn"] != params["resourceShareArn"]:
            continue
        for row in share_permissions(conn, share["arn"]):
            permission = PERMISSIONS.get(row["permission_arn"])
            if permission is None:
                continue
            entry = {"arn": permission.arn, "permissionVersion": str(row["permission_version"]),
                     "defaultVersion": row["permission_version"] == permission.version,
                     "resourceType": row["resource_type"], "status": share_status(share),
                     "featureSet": share.get("feature_set") or "STANDARD", "lastUpdatedTime": row["updated_at"],
                     "resourceShareArn": share["arn"]}
            if _matches(entry, params):
                found.append(entry)
    return found


def share_status(share: dict[str, Any]) -> str:
    return {"ACTIVE": "ASSOCIATED", "DELETED": "DISASSOCIATED", "FAILED": "FAILED"}.get(share["status"], "ASSOCIATING")


def _matches(entry: dict[str, Any], params: dict[str, Any]) -> bool:
    if params.get("permissionArn") and entry["arn"] != params["permissionArn"]:
        return False
    if params.get("permissionVersion") is not None and entry["permissionVersion"] != str(params["permissionVersion"]):
        return False
    if params.get("associationStatus") and entry["status"] != params["associationStatus"]:
        return False
    if params.get("resourceType") and entry["resourceType"].lower() != params["resourceType"].lower():
        return False
    if params.get("featureSet") and entry["featureSet"] != params["featureSet"]:
        return False
    return params.get("defaultVersion") is None or entry["defaultVersion"] == params["defaultVersion"]
