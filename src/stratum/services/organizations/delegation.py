"""Delegated administrators: member accounts a service's administration is handed to, which may
then read the organization (Describe*/List*) as the management account does."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from stratum.services.organizations.structure import Organization, now
from stratum.services.organizations.tables import organization_delegated_administrators as delegated_t


def is_delegated_administrator(conn: Connection, org: Organization, account_id: str) -> bool:
    return conn.execute(select(delegated_t.c.account_id).where(
        (delegated_t.c.account_id == account_id) & (delegated_t.c.organization_id == org.id))).first() is not None


def register(conn: Connection, org: Organization, account_id: str, principal: str) -> bool:
    """False when the account already administers ``principal``."""
    present = conn.execute(select(delegated_t.c.account_id).where(
        (delegated_t.c.account_id == account_id) & (delegated_t.c.service_principal == principal))).first()
    if present is not None:
        return False
    conn.execute(insert(delegated_t).values(account_id=account_id, service_principal=principal,
                                            organization_id=org.id, delegated_at=now()))
    return True


def deregister(conn: Connection, account_id: str, principal: str) -> bool:
    result = conn.execute(delete(delegated_t).where((delegated_t.c.account_id == account_id)
                                                    & (delegated_t.c.service_principal == principal)))
    return bool(result.rowcount)


def administrators(conn: Connection, org: Organization, principal: str | None) -> list[tuple[str, datetime]]:
    """(account id, first delegation date) of every delegated administrator, or of one service's."""
    query = select(delegated_t.c.account_id, delegated_t.c.delegated_at).where(delegated_t.c.organization_id == org.id)
    if principal:
        query = query.where(delegated_t.c.service_principal == principal)
    first: dict[str, datetime] = {}
    for account_id, at in conn.execute(query.order_by(delegated_t.c.delegated_at)):
        first.setdefault(account_id, at)
    return list(first.items())


def services_of(conn: Connection, account_id: str) -> list[tuple[str, datetime]]:
    return [(r.service_principal, r.delegated_at) for r in conn.execute(
        select(delegated_t.c.service_principal, delegated_t.c.delegated_at)
        .where(delegated_t.c.account_id == account_id).order_by(delegated_t.c.service_principal))]
