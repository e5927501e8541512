"""What active resource shares grant a consumer account, for the services that own the resources.

A share grants a consumer access to a resource while all of these hold: the share is ACTIVE, the
resource is ASSOCIATED with it, and the consumer's account (or its organization, with sharing
enabled) is an ASSOCIATED principal — an invitation accepted, or none needed. Services turn that
into a resource policy (``resource_policy``) so the policy evaluator applies its cross-account rule:
the consumer's identity policies AND the share's managed permission must both allow. Nothing is
cached: removing a principal or deleting a share takes effect on the next request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from stratum.services.organizations.structure import account_ou_arns
from stratum.services.ram.membership import membership
from stratum.services.ram.permissions import RESOURCE_TYPES, actions_of
from stratum.services.ram.tables import ram_resource_shares as shares_t
from stratum.services.ram.tables import ram_share_permissions as permissions_t
from stratum.services.ram.tables import ram_share_principals as principals_t
from stratum.services.ram.tables import ram_share_resources as resources_t


@dataclass(frozen=True)
class Grant:
    share_arn: str
    owner_account: str
    resource_arn: str
    resource_type: str
    permission_arn: str

    @property
    def actions(self) -> tuple[str, ...]:
        return actions_of(self.permission_arn)


_GRANTS = (
    select(shares_t.c.arn, shares_t.c.account_id, resources_t.c.resource_arn, resources_t.c.resource_type,
           permissions_t.c.permission_arn)
    .select_from(resources_t
                 .join(shares_t, shares_t.c.arn == resources_t.c.share_arn)
                 .join(principals_t, principals_t.c.share_arn == shares_t.c.arn)
                 .join(permissions_t, (permissions_t.c.share_arn == shares_t.c.arn)
                       & (permissions_t.c.resource_type == resources_t.c.resource_type)))
    .where((resources_t.c.status == "ASSOCIATED") & (shares_t.c.status == "ACTIVE")
           & (principals_t.c.status == "ASSOCIATED"))
    .order_by(shares_t.c.created_at, shares_t.c.arn)
)


def principal_keys(conn: Connection, consumer: str) -> list[str]:
    """The principal values that name ``consumer``: its account id, and its organization and every
    OU that holds it while that organization shares through RAM."""
    member = membership(conn, consumer)
    keys = [consumer]
    if member.organization_arn and member.sharing_enabled:
        keys.append(member.organization_arn)
        keys.extend(account_ou_arns(conn, consumer))
    return keys


def grants(conn: Connection, consumer: str, resource_arn: str) -> list[Grant]:
    """Every active share that gives ``consumer`` access to ``resource_arn`` (owned by someone else)."""
    rows = conn.execute(_GRANTS.where((resources_t.c.resource_arn == resource_arn)
                                      & principals_t.c.principal.in_(principal_keys(conn, consumer))
                                      & (shares_t.c.account_id != consumer))).all()
    return [Grant(r.arn, r.account_id, r.resource_arn, r.resource_type, r.permission_arn) for r in rows]


def is_shared_with(conn: Connection, consumer: str, resource_arn: str) -> bool:
    return bool(grants(conn, consumer, resource_arn))


def policy_for(consumer: str, found: list[Grant]) -> dict[str, Any] | None:
    """The resource policy RAM's managed permissions amount to for this consumer."""
    if not found:
        return None
    statements = []
    for grant in found:
        resource_type = RESOURCE_TYPES.get(grant.resource_type)
        covered = resource_type.covered(grant.resource_arn) if resource_type else [grant.resource_arn]
        statements.append({"Sid": "RAM" + grant.share_arn.rpartition("/")[2].replace("-", ""), "Effect": "Allow",
                           "Principal": {"AWS": consumer}, "Action": list(grant.actions), "Resource": covered})
    return {"Version": "2012-10-17", "Statement": statements}


def resource_policy(conn: Connection, consumer: str, resource_arn: str) -> dict[str, Any] | None:
    """The share-derived resource policy of ``resource_arn`` as seen by ``consumer`` (None: not shared)."""
    return policy_for(consumer, grants(conn, consumer, resource_arn))


def shared_resource_arns(conn: Connection, consumer: str, region: str, resource_type: str,
                         action: str | None = None) -> list[str]:
    """ARNs of the resources of one type shared with ``consumer`` in ``region`` (whose permission
    allows ``action``, when given), e.g. the pipelines Search in the consumer account includes."""
    rows = conn.execute(_GRANTS.where((resources_t.c.resource_type == resource_type) & (shares_t.c.region == region)
                                      & principals_t.c.principal.in_(principal_keys(conn, consumer))
                                      & (shares_t.c.account_id != consumer))).all()
    out: list[str] = []
    for r in rows:
        if action is not None and action not in actions_of(r.permission_arn):
            continue
        if r.resource_arn not in out:
            out.append(r.resource_arn)
    return out


def resource_deleted(conn: Connection, resource_arn: str, now: datetime) -> None:
    """The owning service deleted a shared resource: its associations end, so a new resource created
    later under the same ARN is not shared by accident."""
    conn.execute(update(resources_t).where((resources_t.c.resource_arn == resource_arn)
                                           & (resources_t.c.status == "ASSOCIATED"))
                 .values(status="DISASSOCIATED", status_message="The resource was deleted.", updated_at=now))
