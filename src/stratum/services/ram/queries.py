"""The read side of RAM: GetResourceShares, GetResourceShareAssociations, ListResources and
ListPrincipals, for the owner (SELF) and for the accounts a share reaches (OTHER-ACCOUNTS).

Results are small (shares of one account and region), so each listing is one or two queries whose
rows are filtered and paged in memory.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, exists, select

from stratum.services.ram import errors
from stratum.services.ram.access import principal_keys
from stratum.services.ram.membership import membership
from stratum.services.ram.permissions import find_resource_type
from stratum.services.ram.shares import association_view, check_share_arn
from stratum.services.ram.tables import ram_resource_shares as shares_t
from stratum.services.ram.tables import ram_share_permissions as permissions_t
from stratum.services.ram.tables import ram_share_principals as principals_t
from stratum.services.ram.tables import ram_share_resources as resources_t

OWNERS = ("SELF", "OTHER-ACCOUNTS")


def check_owner(value: str) -> None:
    if value not in OWNERS:
        raise errors.invalid_parameter(f"{value} is not a valid resource owner. Specify either SELF or "
                                       "OTHER-ACCOUNTS and try again.")


def _check_share_arns(arns: list[str] | None) -> list[str] | None:
    for arn in arns or []:
        check_share_arn(arn)
    return arns or None


def received_shares(conn: Connection, consumer: str, region: str) -> list[dict[str, Any]]:
    """ACTIVE shares of other accounts with ``consumer`` (or its organization) ASSOCIATED."""
    # EXISTS rather than a join + DISTINCT: PostgreSQL cannot compare the JSON tags column.
    reaches = exists().where((principals_t.c.share_arn == shares_t.c.arn)
                             & principals_t.c.principal.in_(principal_keys(conn, consumer))
                             & (principals_t.c.status == "ASSOCIATED"))
    rows = conn.execute(
        select(shares_t)
        .where((shares_t.c.region == region) & (shares_t.c.status == "ACTIVE") & (shares_t.c.account_id != consumer)
               & reaches)
        .order_by(shares_t.c.created_at, shares_t.c.arn)).mappings()
    return [dict(r) for r in rows]


def owned_shares(conn: Connection, owner: str, region: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(shares_t).where((shares_t.c.account_id == owner) & (shares_t.c.region == region))
                        .order_by(shares_t.c.created_at, shares_t.c.arn)).mappings()
    return [dict(r) for r in rows]


def shares_for(conn: Connection, caller: str, region: str, owner: str) -> list[dict[str, Any]]:
    return owned_shares(conn, caller, region) if owner == "SELF" else received_shares(conn, caller, region)


def _permissions_by_share(conn: Connection, share_arns: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {arn: [] for arn in share_arns}
    if share_arns:
        for r in conn.execute(select(permissions_t).where(permissions_t.c.share_arn.in_(share_arns))).mappings():
            out[r["share_arn"]].append(dict(r))
    return out


def _tags_match(tags: list[dict[str, str]], filters: list[dict[str, Any]]) -> bool:
    values = {t["key"]: t.get("value", "") for t in tags}
    for f in filters:
        key = f.get("tagKey")
        if key is not None and key not in values:
            return False
        wanted = f.get("tagValues") or []
        if wanted:
            candidates = [values[key]] if key is not None else list(values.values())
            if not any(v in wanted for v in candidates):
                return False
    return True


def get_resource_shares(conn: Connection, caller: str, region: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    owner = params["resourceOwner"]
    check_owner(owner)
    wanted = _check_share_arns(params.get("resourceShareArns"))
    shares = shares_for(conn, caller, region, owner)
    if wanted:
        shares = [s for s in shares if s["arn"] in wanted]
    if params.get("resourceShareStatus"):
        shares = [s for s in shares if s["status"] == params["resourceShareStatus"]]
    if params.get("name"):
        shares = [s for s in shares if s["name"] == params["name"]]
    if params.get("tagFilters"):
        shares = [s for s in shares if _tags_match(s["tags"] or [], params["tagFilters"])]
    permission_arn = params.get("permissionArn")
    if permission_arn:
        by_share = _permissions_by_share(conn, [s["arn"] for s in shares])
        version = params.get("permissionVersion")
        shares = [s for s in shares if any(
            p["permission_arn"] == permission_arn and (version is None or p["permission_version"] == version)
            for p in by_share[s["arn"]])]
    return shares


def get_associations(conn: Connection, owner: str, region: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    kind = params["associationType"]
    if kind == "PRINCIPAL" and params.get("resourceArn"):
        raise errors.invalid_parameter("You cannot specify a resource ARN when the association type is PRINCIPAL.")
    if kind == "RESOURCE" and params.get("principal"):
        raise errors.invalid_parameter("You cannot specify a principal when the association type is RESOURCE.")
    wanted = _check_share_arns(params.get("resourceShareArns"))
    shares = {s["arn"]: s for s in owned_shares(conn, owner, region) if not wanted or s["arn"] in wanted}
    if not shares:
        return []
    table = resources_t if kind == "RESOURCE" else principals_t
    query = select(table).where(table.c.share_arn.in_(list(shares)))
    if kind == "RESOURCE" and params.get("resourceArn"):
        query = query.where(resources_t.c.resource_arn == params["resourceArn"])
    if kind == "PRINCIPAL" and params.get("principal"):
        query = query.where(principals_t.c.principal == params["principal"])
    if params.get("associationStatus"):
        query = query.where(table.c.status == params["associationStatus"])
    rows = conn.execute(query.order_by(table.c.created_at)).mappings()
    return [association_view(shares[r["share_arn"]], dict(r), kind) for r in rows]


def _resource_type_filter(value: str | None, code: str = "resource") -> str | None:
    if not value:
        return None
    found = find_resource_type(value)
    if found is None:
        if code == "resource":
            raise errors.invalid_resource_type(f"The resource type {value} is not valid.")
        raise errors.invalid_parameter(f"The resource type {value} is not valid.")
    return found.name


def list_resources(conn: Connection, caller: str, region: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    owner = params["resourceOwner"]
    check_owner(owner)
    principal = params.get("principal")
    if principal and owner != "SELF":
        raise errors.invalid_parameter("You can specify a principal only when the resource owner is SELF.")
    resource_type = _resource_type_filter(params.get("resourceType"))
    if params.get("resourceRegionScope") == "GLOBAL":
        return []  # every shareable type in Stratum is regional
    wanted = _check_share_arns(params.get("resourceShareArns"))
    shares = {s["arn"]: s for s in shares_for(conn, caller, region, owner)
              if s["status"] == "ACTIVE" and (not wanted or s["arn"] in wanted)}
    if principal:
        with_principal = {r.share_arn for r in conn.execute(select(principals_t.c.share_arn).where(
            (principals_t.c.principal == principal) & principals_t.c.status.in_(("ASSOCIATED", "ASSOCIATING"))))}
        shares = {arn: s for arn, s in shares.items() if arn in with_principal}
    if not shares:
        return []
    query = select(resources_t).where(resources_t.c.share_arn.in_(list(shares))
                                      & (resources_t.c.status == "ASSOCIATED"))
    if resource_type:
        query = query.where(resources_t.c.resource_type == resource_type)
    if params.get("resourceArns"):
        query = query.where(resources_t.c.resource_arn.in_(params["resourceArns"]))
    return [{"arn": r["resource_arn"], "type": r["resource_type"], "resourceShareArn": r["share_arn"],
             "status": "AVAILABLE", "creationTime": r["created_at"], "lastUpdatedTime": r["updated_at"],
             "resourceRegionScope": "REGIONAL"}
            for r in conn.execute(query.order_by(resources_t.c.created_at, resources_t.c.resource_arn)).mappings()]


def list_principals(conn: Connection, caller: str, region: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    owner = params["resourceOwner"]
    check_owner(owner)
    resource_type = _resource_type_filter(params.get("resourceType"), "parameter")
    wanted = _check_share_arns(params.get("resourceShareArns"))
    shares = {s["arn"]: s for s in shares_for(conn, caller, region, owner)
              if s["status"] == "ACTIVE" and (not wanted or s["arn"] in wanted)}
    if (params.get("resourceArn") or resource_type) and shares:
        query = select(resources_t.c.share_arn).where(resources_t.c.share_arn.in_(list(shares))
                                                      & (resources_t.c.status == "ASSOCIATED"))
        if params.get("resourceArn"):
            query = query.where(resources_t.c.resource_arn == params["resourceArn"])
        if resource_type:
            query = query.where(resources_t.c.resource_type == resource_type)
        keep = {r.share_arn for r in conn.execute(query)}
        shares = {arn: s for arn, s in shares.items() if arn in keep}
    if not shares:
        return []
    filter_ids = set(params.get("principals") or [])
    if owner == "OTHER-ACCOUNTS":
        # The accounts that share with the caller, one entry per share.
        me = membership(conn, caller)
        out = []
        for s in shares.values():
            if filter_ids and s["account_id"] not in filter_ids:
                continue
            out.append({"id": s["account_id"], "resourceShareArn": s["arn"], "creationTime": s["created_at"],
                        "lastUpdatedTime": s["updated_at"],
                        "external": not me.same_organization(membership(conn, s["account_id"]))})
        return out
    query = select(principals_t).where(principals_t.c.share_arn.in_(list(shares))
                                       & principals_t.c.status.in_(("ASSOCIATED", "ASSOCIATING")))
    if filter_ids:
        query = query.where(principals_t.c.principal.in_(sorted(filter_ids)))
    return [{"id": r["principal"], "resourceShareArn": r["share_arn"], "creationTime": r["created_at"],
             "lastUpdatedTime": r["updated_at"], "external": bool(r["external"])}
            for r in conn.execute(query.order_by(principals_t.c.created_at, principals_t.c.principal)).mappings()]


def share_permissions_visible(conn: Connection, caller: str, share: dict[str, Any]) -> bool:
    """ListResourceSharePermissions: the owner, and any account the share reaches."""
    if share["account_id"] == caller:
        return True
    return conn.execute(select(principals_t.c.principal).where(
        (principals_t.c.share_arn == share["arn"]) & principals_t.c.principal.in_(principal_keys(conn, caller))
        & (principals_t.c.status == "ASSOCIATED"))).first() is not None
