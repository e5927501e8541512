"""Accounts of the organization: creation (with an administrator user and access key), lookup, and the
identity used by the opt-in permissive mode."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select

from stratum import ids
from stratum.auth.identity import Identity
from stratum.protocol.errors import ServiceError
from stratum.services.iam import store as iam
from stratum.services.iam.managed_policies import managed_policy_arn
from stratum.services.iam.tables import iam_access_keys, iam_users
from stratum.services.organizations.tables import accounts, organizations

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

ADMIN_USER = "admin"
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Organizations' Email shape (6-64 characters): the CLI and bootstrap files are held to it as the API is.
_EMAIL = re.compile(r"^[^\s@]+@[^\s@]+\.[^\s@]+$")


@dataclass
class AdminKey:
    account_id: str
    account_name: str
    access_key_id: str
    secret_access_key: str


def ensure_organization(conn: Connection, management_account_id: str, ram_sharing: bool = False) -> str:
    row = conn.execute(select(organizations.c.id)).first()
    if row:
        return str(row.id)
    org_id = "o-" + ids.lower_id(10)
    conn.execute(insert(organizations).values(id=org_id, management_account_id=management_account_id,
                                              feature_set="ALL", ram_sharing_enabled=ram_sharing,
                                              created_at=iam.now()))
    return org_id


def find_account(conn: Connection, name_or_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(accounts).where((accounts.c.id == name_or_id) | (accounts.c.name == name_or_id))
                       ).mappings().first()
    return dict(row) if row else None


def list_accounts(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(accounts).order_by(accounts.c.created_at, accounts.c.name)).mappings()]


def create_account(conn: Connection, name: str, account_id: str | None = None, email: str | None = None,
                   organization_id: str | None = None) -> AdminKey:
    """Create an account with an administrator user (AdministratorAccess) and one access key."""
    if not _ACCOUNT_NAME.match(name):
        raise ServiceError("ValidationException", f"Invalid account name {name!r}", 400)
    if account_id is not None and not _ACCOUNT_ID.match(account_id):
        raise ServiceError("ValidationException", f"Account id must be 12 digits, got {account_id!r}", 400)
    if email is not None and not (6 <= len(email) <= 64 and _EMAIL.match(email)):
        raise ServiceError("ValidationException", f"Invalid email address {email!r}", 400)
    if find_account(conn, name) is not None:
        raise ServiceError("DuplicateAccountException", f"An account named {name!r} already exists", 400)
    account_id = account_id or ids.account_id()
    if find_account(conn, account_id) is not None:
        raise ServiceError("DuplicateAccountException", f"Account {account_id} already exists", 400)
    conn.execute(insert(accounts).values(id=account_id, name=name, email=email or f"{name}@stratum.local",
                                         organization_id=organization_id, status="ACTIVE", created_at=iam.now()))
    iam.ensure_aws_managed_policies(conn)
    iam.create_user(conn, account_id, ADMIN_USER)
    iam.attach_policy(conn, account_id, "user", ADMIN_USER, managed_policy_arn("AdministratorAccess"))
    key = iam.create_access_key(conn, account_id, ADMIN_USER)
    return AdminKey(account_id, name, key["access_key_id"], key["secret_access_key"])


def admin_keys(conn: Connection) -> list[AdminKey]:
    """The first active administrator key of every account (for generated CLI profiles)."""
    out: list[AdminKey] = []
    for acct in list_accounts(conn):
        row = conn.execute(select(iam_access_keys).where(
            (iam_access_keys.c.account_id == acct["id"]) & (iam_access_keys.c.user_name == ADMIN_USER)
            & (iam_access_keys.c.status == "Active")).order_by(iam_access_keys.c.created_at)).mappings().first()
        if row:
            out.append(AdminKey(acct["id"], acct["name"], row["access_key_id"], row["secret_access_key"]))
    return out


def default_admin_identity(app: AppState) -> Identity:
    """Permissive mode: requests with unknown or no credentials act as the first account's admin."""
    with app.db.read() as conn:
        accts = list_accounts(conn)
        if not accts:
            raise ServiceError("UnrecognizedClientException", "No account exists yet", 400)
        acct = accts[0]
        user = conn.execute(select(iam_users).where((iam_users.c.account_id == acct["id"])
                                                    & (iam_users.c.name == ADMIN_USER))).mappings().first()
    if user is None:
        raise ServiceError("UnrecognizedClientException", "The default account has no administrator", 400)
    return Identity(account_id=acct["id"], arn=user["arn"], kind="user", principal_id=user["user_id"],
                    user_name=ADMIN_USER)
