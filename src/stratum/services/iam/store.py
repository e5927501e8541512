"""IAM records: the operations the IAM provider, STS, bootstrap and the CLI share.

All functions take an open SQLAlchemy connection so callers decide the transaction boundary.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from stratum import ids
from stratum.protocol.errors import ServiceError
from stratum.services.iam.managed_policies import AWS_MANAGED, managed_policy_arn
from stratum.services.iam.tables import (
    iam_access_keys,
    iam_attachments,
    iam_policies,
    iam_policy_versions,
    iam_roles,
    iam_users,
)

AWS_OWNER = "aws"  # the account_id of AWS managed policies (arn:aws:iam::aws:policy/...)


def now() -> datetime:
    return datetime.now(UTC)


def no_such_entity(message: str) -> ServiceError:
    return ServiceError("NoSuchEntity", message, 404)


def already_exists(message: str) -> ServiceError:
    return ServiceError("EntityAlreadyExists", message, 409)


def normalize_path(path: str | None) -> str:
    return path or "/"


def user_arn(account_id: str, name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{account_id}:user{path}{name}"


def role_arn(account_id: str, name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{account_id}:role{path}{name}"


def ensure_aws_managed_policies(conn: Connection) -> None:
    existing = {r.arn for r in conn.execute(select(iam_policies.c.arn).where(iam_policies.c.account_id == AWS_OWNER))}
    ts = now()
    for name, (description, document) in AWS_MANAGED.items():
        arn = managed_policy_arn(name)
        if arn in existing:
            # A data directory made by an earlier release gets the document this release ships.
            conn.execute(update(iam_policy_versions).where(
                (iam_policy_versions.c.policy_arn == arn) & (iam_policy_versions.c.version_id == "v1")
                & (iam_policy_versions.c.document != document)).values(document=document))
            continue
        conn.execute(insert(iam_policies).values(
            arn=arn, account_id=AWS_OWNER, name=name, policy_id=ids.unique_id("ANPA"), path="/",
            description=description, default_version="v1", tags=[], created_at=ts, updated_at=ts))
        conn.execute(insert(iam_policy_versions).values(policy_arn=arn, version_id="v1", document=document,
                                                        created_at=ts))


def get_user(conn: Connection, account_id: str, name: str) -> dict[str, Any]:
    row = conn.execute(select(iam_users).where((iam_users.c.account_id == account_id) & (iam_users.c.name == name))
                       ).mappings().first()
    if row is None:
        raise no_such_entity(f"The user with name {name} cannot be found.")
    return dict(row)


def create_user(conn: Connection, account_id: str, name: str, path: str | None = None,
                tags: list[dict[str, str]] | None = None, permissions_boundary: str | None = None) -> dict[str, Any]:
    path = normalize_path(path)
    exists = conn.execute(select(iam_users.c.name).where((iam_users.c.account_id == account_id)
                                                         & (iam_users.c.name == name))).first()
    if exists:
        raise already_exists(f"User with name {name} already exists.")
    row = {"account_id": account_id, "name": name, "user_id": ids.unique_id("AIDA"), "path": path,
           "arn": user_arn(account_id, name, path), "permissions_boundary": permissions_boundary,
           "tags": tags or [], "created_at": now()}
    conn.execute(insert(iam_users).values(**row))
    return row


def get_role(conn: Connection, account_id: str, name: str) -> dict[str, Any]:
    row = conn.execute(select(iam_roles).where((iam_roles.c.account_id == account_id) & (iam_roles.c.name == name))
                       ).mappings().first()
    if row is None:
        raise no_such_entity(f"The role with name {name} cannot be found.")
    return dict(row)


def create_role(conn: Connection, account_id: str, name: str, trust_policy: str, *, path: str | None = None,
                description: str | None = None, max_session_duration: int = 3600,
                permissions_boundary: str | None = None, tags: list[dict[str, str]] | None = None) -> dict[str, Any]:
    path = normalize_path(path)
    exists = conn.execute(select(iam_roles.c.name).where((iam_roles.c.account_id == account_id)
                                                         & (iam_roles.c.name == name))).first()
    if exists:
        raise already_exists(f"Role with name {name} already exists.")
    row = {"account_id": account_id, "name": name, "role_id": ids.unique_id("AROA"), "path": path,
           "arn": role_arn(account_id, name, path), "assume_role_policy": trust_policy,
           "description": description, "max_session_duration": max_session_duration,
           "permissions_boundary": permissions_boundary, "tags": tags or [], "created_at": now()}
    conn.execute(insert(iam_roles).values(**row))
    return row


def visible_policies(account_id: str) -> Any:
    """The managed policies an account can see and attach: its own and AWS's. Every lookup of a
    policy by ARN goes through this, so another account's customer-managed policy is not found
    (NoSuchEntity), as on AWS, whatever ARN the caller names."""
    return iam_policies.c.account_id.in_((account_id, AWS_OWNER))


def get_policy(conn: Connection, account_id: str, arn: str) -> dict[str, Any]:
    row = conn.execute(select(iam_policies).where((iam_policies.c.arn == arn) & visible_policies(account_id))
                       ).mappings().first()
    if row is None:
        raise no_such_entity(f"Policy {arn} was not found.")
    return dict(row)


def policy_exists(conn: Connection, arn: str, account_id: str) -> bool:
    """Whether ``account_id`` can name the policy (its own or an AWS managed one)."""
    return conn.execute(select(iam_policies.c.arn).where((iam_policies.c.arn == arn)
                                                         & visible_policies(account_id))).first() is not None


def attach_policy(conn: Connection, account_id: str, principal_type: str, principal_name: str, policy_arn: str) -> None:
    if not policy_exists(conn, policy_arn, account_id):
        raise no_such_entity(f"Policy {policy_arn} does not exist or is not attachable.")
    already = conn.execute(select(iam_attachments.c.policy_arn).where(
        (iam_attachments.c.account_id == account_id) & (iam_attachments.c.principal_type == principal_type)
        & (iam_attachments.c.principal_name == principal_name) & (iam_attachments.c.policy_arn == policy_arn))).first()
    if not already:
        conn.execute(insert(iam_attachments).values(account_id=account_id, principal_type=principal_type,
                                                    principal_name=principal_name, policy_arn=policy_arn))


def detach_policy(conn: Connection, account_id: str, principal_type: str, principal_name: str, policy_arn: str) -> None:
    result = conn.execute(delete(iam_attachments).where(
        (iam_attachments.c.account_id == account_id) & (iam_attachments.c.principal_type == principal_type)
        & (iam_attachments.c.principal_name == principal_name) & (iam_attachments.c.policy_arn == policy_arn)))
    if result.rowcount == 0:
        raise no_such_entity(f"Policy {policy_arn} was not found.")


def create_access_key(conn: Connection, account_id: str, user_name: str) -> dict[str, Any]:
    get_user(conn, account_id, user_name)
    count = len(conn.execute(select(iam_access_keys.c.access_key_id).where(
        (iam_access_keys.c.account_id == account_id) & (iam_access_keys.c.user_name == user_name))).all())
    if count >= 2:
        raise ServiceError("LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: 2", 409)
    row = {"access_key_id": ids.access_key_id("AKIA"), "secret_access_key": ids.secret_access_key(),
           "account_id": account_id, "user_name": user_name, "status": "Active", "created_at": now()}
    conn.execute(insert(iam_access_keys).values(**row))
    return row


def policy_document_text(document: Any) -> str:
    return document if isinstance(document, str) else json.dumps(document)
