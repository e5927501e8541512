"""Resource shares on the owner's side: create, update, delete, and (dis)associate resources,
principals and managed permissions. No HTTP and no authorization here: every function takes an
open connection, so the provider decides the transaction and authorizes between lookup and write.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from stratum.services.organizations.tables import organizational_units
from stratum.services.ram import errors, invitations
from stratum.services.ram.membership import Membership, membership
from stratum.services.ram.permissions import PERMISSIONS, ManagedPermission, default_permission
from stratum.services.ram.resources import locate
from stratum.services.ram.tables import ram_resource_shares as shares_t
from stratum.services.ram.tables import ram_share_permissions as permissions_t
from stratum.services.ram.tables import ram_share_principals as principals_t
from stratum.services.ram.tables import ram_share_resources as resources_t

SHARE_ARN = re.compile(r"arn:aws[a-z-]*:ram:([a-z0-9-]+):([0-9]{12}):resource-share/([0-9a-fA-F-]{36})")
_ACCOUNT = re.compile(r"[0-9]{12}")
_ORGANIZATION = re.compile(r"arn:aws[a-z-]*:organizations::([0-9]{12}):organization/(o-[a-z0-9]{10,32})")
_OU = re.compile(r"arn:aws[a-z-]*:organizations::([0-9]{12}):ou/(o-[a-z0-9]{10,32})/(ou-[a-z0-9]{4,32}-[a-z0-9]{8,32})")
_IAM_OR_SERVICE = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/.+|[a-z0-9.-]+\.amazonaws\.com")
MAX_TAGS = 50


def new_share_arn(region: str, account: str) -> str:
    return f"arn:aws:ram:{region}:{account}:resource-share/{uuid.uuid4()}"


def check_share_arn(arn: str) -> None:
    if SHARE_ARN.fullmatch(arn) is None:
        raise errors.malformed_arn(f"The specified resource share ARN {arn} is not valid. "
                                   "Verify the ARN and try again.")


def get_share(conn: Connection, arn: str, *, lock: bool = False) -> dict[str, Any] | None:
    query = select(shares_t).where(shares_t.c.arn == arn)
    row = conn.execute(query.with_for_update() if lock else query).mappings().first()
    return dict(row) if row else None


def owned_share(conn: Connection, owner: str, region: str, arn: str, *, active: bool = True,
                lock: bool = False) -> dict[str, Any]:
    """A share of ``owner`` in ``region``; anyone else's share looks exactly like a missing one."""
    check_share_arn(arn)
    share = get_share(conn, arn, lock=lock)
    if share is None or share["account_id"] != owner or share["region"] != region:
        raise errors.share_not_found(arn)
    if active and share["status"] != "ACTIVE":
        raise errors.share_not_found(arn)
    return share


def check_tags(tags: list[dict[str, str]]) -> None:
    if any(not t.get("key") for t in tags):  # the model leaves key optional; RAM requires one
        raise errors.invalid_parameter("Each tag must have a key.")
    keys = [t["key"] for t in tags]
    if len(set(keys)) != len(keys):
        raise errors.invalid_parameter("The tag keys must be unique.")
    for key in keys:
        if key.lower().startswith("aws:"):
            raise errors.invalid_parameter(f"The tag key {key} uses the reserved prefix aws:.")


def merged_tags(existing: list[dict[str, str]], new: list[dict[str, str]]) -> list[dict[str, str]]:
    values = {t["key"]: t.get("value", "") for t in existing}
    for tag in new:
        values[tag["key"]] = tag.get("value", "")
    if len(values) > MAX_TAGS:
        raise errors.tag_limit(f"A resource share can have at most {MAX_TAGS} tags.")
    return [{"key": k, "value": v} for k, v in values.items()]


# ------------------------------------------------------------------------------------------- shares
def create_share(conn: Connection, *, arn: str, owner: str, region: str, name: str, allow_external: bool,
                 tags: list[dict[str, str]], now: datetime) -> dict[str, Any]:
    check_tags(tags)
    conn.execute(insert(shares_t).values(
        arn=arn, account_id=owner, region=region, name=name, status="ACTIVE", status_message=None,
        allow_external_principals=allow_external, feature_set="STANDARD", tags=merged_tags([], tags),
        created_at=now, updated_at=now))
    share = get_share(conn, arn)
    assert share is not None
    return share


def update_share(conn: Connection, share: dict[str, Any], *, name: str | None, allow_external: bool | None,
                 now: datetime) -> dict[str, Any]:
    changes: dict[str, Any] = {"updated_at": now}
    if name is not None:
        changes["name"] = name
    if allow_external is not None:
        if not allow_external and _has_external_principals(conn, share["arn"]):
            raise errors.not_permitted(
                f"The resource share {share['arn']} has principals outside your organization; disassociate them "
                "before setting allowExternalPrincipals to false.")
        changes["allow_external_principals"] = allow_external
    conn.execute(update(shares_t).where(shares_t.c.arn == share["arn"]).values(**changes))
    return {**share, **changes}


def delete_share(conn: Connection, share: dict[str, Any], now: datetime) -> None:
    """Mark the share DELETED and every association DISASSOCIATED: access ends with this commit."""
    conn.execute(update(shares_t).where(shares_t.c.arn == share["arn"]).values(status="DELETED", updated_at=now))
    for table in (resources_t, principals_t):
        conn.execute(update(table).where((table.c.share_arn == share["arn"]) & (table.c.status != "DISASSOCIATED"))
                     .values(status="DISASSOCIATED", updated_at=now))
    invitations.withdraw(conn, share["arn"], None)


def set_tags(conn: Connection, share: dict[str, Any], tags: list[dict[str, str]], now: datetime) -> None:
    conn.execute(update(shares_t).where(shares_t.c.arn == share["arn"]).values(tags=tags, updated_at=now))


def _has_external_principals(conn: Connection, share_arn: str) -> bool:
    return conn.execute(select(principals_t.c.principal).where(
        (principals_t.c.share_arn == share_arn) & principals_t.c.external
        & principals_t.c.status.in_(("ASSOCIATING", "ASSOCIATED")))).first() is not None


# ---------------------------------------------------------------------------------------- resources
def association_view(share: dict[str, Any], row: dict[str, Any], kind: str) -> dict[str, Any]:
    """A ResourceShareAssociation; ``row`` is a ram_share_resources or ram_share_principals row."""
    out = {"resourceShareArn": share["arn"], "resourceShareName": share["name"],
           "associatedEntity": row["resource_arn"] if kind == "RESOURCE" else row["principal"],
           "associationType": kind, "status": row["status"], "statusMessage": row.get("status_message"),
           "creationTime": row["created_at"], "lastUpdatedTime": row["updated_at"]}
    out["external"] = bool(row.get("external", False))
    return out


def _upsert(conn: Connection, table: Any, key_column: str, share_arn: str, key: str,
            values: dict[str, Any], now: datetime) -> dict[str, Any]:
    where = (table.c.share_arn == share_arn) & (table.c[key_column] == key)
    existing = conn.execute(select(table).where(where)).mappings().first()
    if existing is None:
        row = {"share_arn": share_arn, key_column: key, "created_at": now, "updated_at": now, **values}
        conn.execute(insert(table).values(**row))
        return row
    conn.execute(update(table).where(where).values(updated_at=now, **values))
    return {**existing, **values, "updated_at": now}


def add_resources(conn: Connection, share: dict[str, Any], arns: list[str], now: datetime) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for arn in dict.fromkeys(arns):
        found = locate(conn, arn, share["account_id"], share["region"])
        current = conn.execute(select(resources_t).where(
            (resources_t.c.share_arn == share["arn"]) & (resources_t.c.resource_arn == found.arn))).mappings().first()
        if current is not None and current["status"] == "ASSOCIATED":
            out.append(association_view(share, dict(current), "RESOURCE"))
            continue
        row = _upsert(conn, resources_t, "resource_arn", share["arn"], found.arn,
                      {"resource_type": found.resource_type.name, "status": "ASSOCIATED", "status_message": None},
                      now)
        _ensure_permission(conn, share, found.resource_type.name, now)
        out.append(association_view(share, row, "RESOURCE"))
    return out


def remove_resources(conn: Connection, share: dict[str, Any], arns: list[str], now: datetime) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for arn in dict.fromkeys(arns):
        current = conn.execute(select(resources_t).where(
            (resources_t.c.share_arn == share["arn"]) & (resources_t.c.resource_arn == arn)
            & (resources_t.c.status == "ASSOCIATED"))).mappings().first()
        if current is None:
            raise errors.unknown_resource(f"The resource {arn} is not associated with resource share "
                                          f"{share['arn']}.")
        row = _upsert(conn, resources_t, "resource_arn", share["arn"], arn,
                      {"status": "DISASSOCIATED", "status_message": None}, now)
        out.append(association_view(share, row, "RESOURCE"))
    return out


# --------------------------------------------------------------------------------------- principals
def _ou_exists(conn: Connection, owner: Membership, ou_id: str) -> bool:
    return conn.execute(select(organizational_units.c.id).where(
        (organizational_units.c.id == ou_id)
        & (organizational_units.c.organization_id == owner.organization_id))).first() is not None


def _check_principal(conn: Connection, principal: str, owner: Membership) -> str:
    """Validate one principal value; returns its kind ("account", or "organization" for the
    organization or one of its OUs)."""
    if _ACCOUNT.fullmatch(principal):
        if principal == owner.account_id:
            raise errors.invalid_parameter(f"The principal {principal} is the owner of the resource share; "
                                           "a resource share cannot be shared with its own account.")
        return "account"
    m = _ORGANIZATION.fullmatch(principal)
    if m is not None:
        if owner.organization_id != m.group(2) or owner.management_account_id != m.group(1):
            raise errors.unknown_resource(f"Organization {m.group(2)} could not be found.")
        if not owner.sharing_enabled:
            raise errors.not_permitted("Sharing with your organization is not enabled. Call "
                                       "EnableSharingWithAwsOrganization from the management account first.")
        return "organization"
    m = _OU.fullmatch(principal)
    if m is not None:
        if owner.organization_id != m.group(2) or owner.management_account_id != m.group(1) or not _ou_exists(
                conn, owner, m.group(3)):
            raise errors.unknown_resource(f"OrganizationalUnit {m.group(3)} could not be found.")
        if not owner.sharing_enabled:
            raise errors.not_permitted("Sharing with your organization is not enabled. Call "
                                       "EnableSharingWithAwsOrganization from the management account first.")
        return "organization"
    if _IAM_OR_SERVICE.fullmatch(principal):
        raise errors.invalid_parameter(f"The principal {principal} is not supported for resource type "
                                       "sagemaker:Pipeline: share with AWS account IDs or your organization.")
    raise errors.invalid_parameter(f"Principal ID {principal} is malformed. Verify the ID and try again.")


def add_principals(conn: Connection, share: dict[str, Any], principals: list[str],
                   now: datetime) -> list[dict[str, Any]]:
    """Associate principals: straight to ASSOCIATED inside an organization that shares through RAM,
    otherwise ASSOCIATING with an invitation the principal accepts or rejects."""
    owner = membership(conn, share["account_id"])
    out: list[dict[str, Any]] = []
    for principal in dict.fromkeys(principals):
        kind = _check_principal(conn, principal, owner)
        consumer = membership(conn, principal) if kind == "account" else owner
        external = kind == "account" and not owner.same_organization(consumer)
        if external and not share["allow_external_principals"]:
            raise errors.not_permitted(
                f"The principal {principal} is not in your organization, and resource share {share['arn']} "
                "does not allow external principals (allowExternalPrincipals is false).")
        current = conn.execute(select(principals_t).where(
            (principals_t.c.share_arn == share["arn"]) & (principals_t.c.principal == principal))).mappings().first()
        if current is not None and current["status"] in ("ASSOCIATED", "ASSOCIATING"):
            out.append(association_view(share, dict(current), "PRINCIPAL"))
            continue
        direct = kind == "organization" or owner.shares_without_invitation(consumer)
        row = _upsert(conn, principals_t, "principal", share["arn"], principal,
                      {"external": external, "status": "ASSOCIATED" if direct else "ASSOCIATING",
                       "status_message": None}, now)
        if not direct:
            invitations.invite(conn, share, principal, now)
        out.append(association_view(share, row, "PRINCIPAL"))
    return out


def remove_principals(conn: Connection, share: dict[str, Any], principals: list[str],
                      now: datetime) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for principal in dict.fromkeys(principals):
        current = conn.execute(select(principals_t).where(
            (principals_t.c.share_arn == share["arn"]) & (principals_t.c.principal == principal)
            & principals_t.c.status.in_(("ASSOCIATED", "ASSOCIATING")))).mappings().first()
        if current is None:
            raise errors.unknown_resource(f"The principal {principal} is not associated with resource share "
                                          f"{share['arn']}.")
        row = _upsert(conn, principals_t, "principal", share["arn"], principal,
                      {"status": "DISASSOCIATED", "status_message": None}, now)
        invitations.withdraw(conn, share["arn"], principal)
        out.append(association_view(share, {**row, "external": current["external"]}, "PRINCIPAL"))
    return out


# -------------------------------------------------------------------------------------- permissions
def find_permission(arn: str, version: int | None = None) -> ManagedPermission:
    if not arn.startswith("arn:") or arn.count(":") < 5:
        raise errors.malformed_arn(f"The specified permission ARN {arn} is not valid. Verify the ARN and try again.")
    permission = PERMISSIONS.get(arn)
    if permission is None:
        raise errors.unknown_resource(f"Permission {arn} could not be found.")
    if version is not None and version != permission.version:
        raise errors.unknown_resource(f"Version {version} of permission {arn} could not be found.")
    return permission


def share_permissions(conn: Connection, share_arn: str) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(permissions_t).where(permissions_t.c.share_arn == share_arn)
                                          .order_by(permissions_t.c.resource_type)).mappings()]


def set_permission(conn: Connection, share: dict[str, Any], permission: ManagedPermission, *, replace: bool,
                   now: datetime) -> None:
    where = (permissions_t.c.share_arn == share["arn"]) & (permissions_t.c.resource_type == permission.resource_type)
    current = conn.execute(select(permissions_t.c.permission_arn).where(where)).scalar()
    if current == permission.arn:
        conn.execute(update(permissions_t).where(where).values(permission_version=permission.version, updated_at=now))
        return
    if current is not None:
        if not replace:
            raise errors.invalid_parameter(
                f"Resource share {share['arn']} already has permission {current} for resource type "
                f"{permission.resource_type}. Set replace to true to replace it.")
        conn.execute(update(permissions_t).where(where).values(
            permission_arn=permission.arn, permission_version=permission.version, updated_at=now))
        return
    conn.execute(insert(permissions_t).values(share_arn=share["arn"], resource_type=permission.resource_type,
                                              permission_arn=permission.arn, permission_version=permission.version,
                                              created_at=now, updated_at=now))


def _ensure_permission(conn: Connection, share: dict[str, Any], resource_type: str, now: datetime) -> None:
    """A resource type shared without a chosen permission gets the type's default one."""
    exists = conn.execute(select(permissions_t.c.permission_arn).where(
        (permissions_t.c.share_arn == share["arn"]) & (permissions_t.c.resource_type == resource_type))).first()
    if exists is not None:
        return
    default = default_permission(resource_type)
    if default is None:
        raise errors.invalid_parameter(f"Resource type {resource_type} has no default permission; "
                                       "specify permissionArns.")
    set_permission(conn, share, default, replace=False, now=now)


def check_permission_list(arns: list[str]) -> list[ManagedPermission]:
    """permissionArns of CreateResourceShare: known, and at most one per resource type."""
    found = [find_permission(arn) for arn in dict.fromkeys(arns)]
    types = [p.resource_type for p in found]
    if len(set(types)) != len(types):
        raise errors.invalid_parameter("You can associate only one permission per resource type with a "
                                       "resource share.")
    return found
