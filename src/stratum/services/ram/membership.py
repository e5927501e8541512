"""Which organization an account belongs to, and whether RAM sharing is enabled there.

Inside an organization that enabled sharing with AWS Organizations, principals get access without
an invitation; everyone else (another organization, no organization, or sharing not enabled)
answers an invitation first. "External" means outside the owner's organization.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from stratum.services.organizations.tables import accounts, organizations


@dataclass(frozen=True)
class Membership:
    account_id: str
    exists: bool
    organization_id: str | None = None
    management_account_id: str | None = None
    sharing_enabled: bool = False

    @property
    def organization_arn(self) -> str | None:
        if self.organization_id is None:
            return None
        return f"arn:aws:organizations::{self.management_account_id}:organization/{self.organization_id}"

    def same_organization(self, other: Membership) -> bool:
        return self.organization_id is not None and self.organization_id == other.organization_id

    def shares_without_invitation(self, other: Membership) -> bool:
        """Whether a share from this account reaches ``other`` without an invitation."""
        return self.same_organization(other) and self.sharing_enabled


_MEMBERSHIP = (select(accounts.c.id, accounts.c.organization_id, organizations.c.management_account_id,
                      organizations.c.ram_sharing_enabled)
               .select_from(accounts.outerjoin(organizations, organizations.c.id == accounts.c.organization_id)))


def membership(conn: Connection, account_id: str) -> Membership:
    row = conn.execute(_MEMBERSHIP.where(accounts.c.id == account_id)).first()
    if row is None:
        return Membership(account_id, exists=False)
    if row.organization_id is None or row.management_account_id is None:
        return Membership(account_id, exists=True)
    return Membership(account_id, True, row.organization_id, row.management_account_id,
                      bool(row.ram_sharing_enabled))


def enable_sharing(conn: Connection, organization_id: str) -> None:
    conn.execute(update(organizations).where(organizations.c.id == organization_id).values(ram_sharing_enabled=True))
