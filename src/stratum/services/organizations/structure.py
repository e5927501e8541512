"""The shape of an organization: its root, organizational units and where each account sits.

Ids and ARNs are AWS's: the root ``r-xxxx``, OUs ``ou-<root suffix>-<8 characters>``, ARNs under
the management account (``arn:aws:organizations::<management>:ou/<org id>/<ou id>``). The root is
derived from the organization id rather than stored, so every organization has exactly one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from stratum import ids
from stratum.services.organizations.tables import (
    accounts,
    organization_account_parents,
    organizational_units,
    organizations,
)

ROOT_NAME = "Root"


@dataclass(frozen=True)
class Organization:
    id: str
    management_account_id: str
    feature_set: str
    ram_sharing_enabled: bool
    created_at: datetime

    @property
    def arn(self) -> str:
        return f"arn:aws:organizations::{self.management_account_id}:organization/{self.id}"

    @property
    def root_id(self) -> str:
        return root_id(self.id)

    @property
    def root_arn(self) -> str:
        return f"arn:aws:organizations::{self.management_account_id}:root/{self.id}/{self.root_id}"

    def account_arn(self, account_id: str) -> str:
        return f"arn:aws:organizations::{self.management_account_id}:account/{self.id}/{account_id}"

    def ou_arn(self, ou_id: str) -> str:
        return f"arn:aws:organizations::{self.management_account_id}:ou/{self.id}/{ou_id}"


def root_id(organization_id: str) -> str:
    return "r-" + hashlib.sha256(organization_id.encode()).hexdigest()[:4]


def now() -> datetime:
    return datetime.now(UTC)


def organization_of(conn: Connection, account_id: str) -> Organization | None:
    """The organization ``account_id`` belongs to, or None."""
    row = conn.execute(select(organizations).join(accounts, accounts.c.organization_id == organizations.c.id)
                       .where(accounts.c.id == account_id)).mappings().first()
    if row is None:
        return None
    return Organization(row["id"], row["management_account_id"], row["feature_set"],
                        bool(row["ram_sharing_enabled"]), row["created_at"])


def members(conn: Connection, org: Organization) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(accounts).where(accounts.c.organization_id == org.id)
                                          .order_by(accounts.c.created_at, accounts.c.id)).mappings()]


def member(conn: Connection, org: Organization, account_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(accounts).where((accounts.c.id == account_id)
                                              & (accounts.c.organization_id == org.id))).mappings().first()
    return dict(row) if row else None


def unit(conn: Connection, org: Organization, ou_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(organizational_units).where(
        (organizational_units.c.id == ou_id) & (organizational_units.c.organization_id == org.id))).mappings().first()
    return dict(row) if row else None


def is_parent(conn: Connection, org: Organization, parent_id: str) -> bool:
    return parent_id == org.root_id or unit(conn, org, parent_id) is not None


def units_under(conn: Connection, org: Organization, parent_id: str) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(organizational_units).where(
        (organizational_units.c.organization_id == org.id) & (organizational_units.c.parent_id == parent_id))
        .order_by(organizational_units.c.created_at, organizational_units.c.id)).mappings()]


def parent_of_account(conn: Connection, org: Organization, account_id: str) -> str:
    parent = conn.execute(select(organization_account_parents.c.parent_id).where(
        organization_account_parents.c.account_id == account_id)).scalar()
    return str(parent) if parent else org.root_id


def accounts_under(conn: Connection, org: Organization, parent_id: str) -> list[dict[str, Any]]:
    return [a for a in members(conn, org) if parent_of_account(conn, org, a["id"]) == parent_id]


def ancestors(conn: Connection, org: Organization, parent_id: str) -> list[str]:
    """``parent_id`` and the OUs above it, nearest first, ending with the root."""
    chain = []
    current: str | None = parent_id
    while current is not None and current != org.root_id and len(chain) < 16:
        chain.append(current)
        row = unit(conn, org, current)
        current = row["parent_id"] if row else None
    chain.append(org.root_id)
    return chain


def path_of(conn: Connection, org: Organization, parent_id: str) -> str:
    """AWS's entity path: "o-x/r-x/ou-a/ou-b/"."""
    return "/".join([org.id, *reversed(ancestors(conn, org, parent_id))]) + "/"


def create_unit(conn: Connection, org: Organization, parent_id: str, name: str) -> dict[str, Any]:
    ou_id = f"ou-{org.root_id[2:]}-{ids.lower_id(8)}"
    row = {"id": ou_id, "organization_id": org.id, "parent_id": parent_id, "name": name, "created_at": now()}
    conn.execute(insert(organizational_units).values(**row))
    return row


def find_unit_named(conn: Connection, org: Organization, parent_id: str, name: str) -> dict[str, Any] | None:
    row = conn.execute(select(organizational_units).where(
        (organizational_units.c.organization_id == org.id) & (organizational_units.c.parent_id == parent_id)
        & (organizational_units.c.name == name))).mappings().first()
    return dict(row) if row else None


def rename_unit(conn: Connection, ou_id: str, name: str) -> None:
    conn.execute(update(organizational_units).where(organizational_units.c.id == ou_id).values(name=name))


def delete_unit(conn: Connection, ou_id: str) -> None:
    conn.execute(delete(organizational_units).where(organizational_units.c.id == ou_id))


def move_account(conn: Connection, org: Organization, account_id: str, parent_id: str) -> None:
    conn.execute(delete(organization_account_parents).where(organization_account_parents.c.account_id == account_id))
    if parent_id != org.root_id:
        conn.execute(insert(organization_account_parents).values(account_id=account_id, parent_id=parent_id))


def place_by_path(conn: Connection, org: Organization, account_id: str, path: str) -> str:
    """Put an account in the OU at ``path`` ("Workloads/Prod", OU names under the root), creating
    the OUs that are missing; returns the OU id (the bootstrap file's ``ou`` of an account)."""
    parent = org.root_id
    for name in [p.strip() for p in path.strip("/").split("/") if p.strip()]:
        found = find_unit_named(conn, org, parent, name)
        parent = (found or create_unit(conn, org, parent, name))["id"]
    move_account(conn, org, account_id, parent)
    return parent


def account_ou_arns(conn: Connection, account_id: str) -> list[str]:
    """The ARNs of every OU that holds ``account_id``, directly or through nested OUs."""
    org = organization_of(conn, account_id)
    if org is None:
        return []
    return [org.ou_arn(p) for p in ancestors(conn, org, parent_of_account(conn, org, account_id))
            if p != org.root_id]


def place_declared(conn: Connection, entries: list[dict[str, Any]]) -> None:
    """The bootstrap file's ``ou: Workloads/Prod`` of an account: OUs created under the root as
    needed, the account moved into the last one."""
    for entry in entries:
        path = entry.get("ou")
        if not path:
            continue
        if not isinstance(path, str):
            raise ValueError(f"account {entry.get('name')}: 'ou' must be a path of OU names such as Workloads/Prod")
        account_id = conn.execute(select(accounts.c.id).where(accounts.c.name == entry["name"])).scalar()
        org = organization_of(conn, str(account_id)) if account_id else None
        if org is not None:
            place_by_path(conn, org, str(account_id), path)
