"""Log groups and streams in the database, and where each stream's files are."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from stratum.protocol.errors import ServiceError
from stratum.services.logs.eventstore import index_path, now_ms
from stratum.services.logs.tables import logs_groups, logs_streams


def group_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:logs:{region}:{account}:log-group:{name}"


def stream_arn(region: str, account: str, group: str, stream: str) -> str:
    return f"{group_arn(region, account, group)}:log-stream:{stream}"


def not_found(what: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", f"The specified {what} does not exist.", 400)


def invalid(message: str) -> ServiceError:
    return ServiceError("InvalidParameterException", message, 400)


def stream_path(account: str, region: str, group: str, stream: str) -> str:
    """Relative data path of a stream made through the API (names may hold any character)."""
    g = hashlib.sha256(group.encode()).hexdigest()[:32]
    s = hashlib.sha256(stream.encode()).hexdigest()[:32]
    return f"logs/{account}/{region}/{g}/{s}.log"


def get_group(conn: Connection, account: str, region: str, name: str) -> dict[str, Any] | None:
    row = conn.execute(select(logs_groups).where(
        (logs_groups.c.account_id == account) & (logs_groups.c.region == region)
        & (logs_groups.c.name == name))).mappings().first()
    return dict(row) if row else None


def create_group(conn: Connection, account: str, region: str, name: str, *, tags: dict[str, str] | None = None,
                 kms_key_id: str | None = None, log_group_class: str | None = None) -> bool:
    """False when it exists already."""
    try:
        with conn.begin_nested():
            conn.execute(insert(logs_groups).values(
                account_id=account, region=region, name=name, created_at=now_ms(), retention_days=None,
                kms_key_id=kms_key_id, log_group_class=log_group_class or "STANDARD", tags=tags or {}))
    except IntegrityError:
        return False
    return True


def list_groups(conn: Connection, account: str, region: str, prefix: str | None = None) -> list[dict[str, Any]]:
    query = select(logs_groups).where((logs_groups.c.account_id == account) & (logs_groups.c.region == region))
    if prefix:
        query = query.where(logs_groups.c.name.startswith(prefix, autoescape=True))
    return [dict(r) for r in conn.execute(query.order_by(logs_groups.c.name)).mappings()]


def update_group(conn: Connection, account: str, region: str, name: str, **values: Any) -> None:
    conn.execute(update(logs_groups).where(
        (logs_groups.c.account_id == account) & (logs_groups.c.region == region)
        & (logs_groups.c.name == name)).values(**values))


def delete_group(conn: Connection, account: str, region: str, name: str) -> list[str]:
    """Delete the group and its streams; returns the streams' data paths (to remove after commit)."""
    streams = list_streams(conn, account, region, name)
    conn.execute(delete(logs_streams).where(
        (logs_streams.c.account_id == account) & (logs_streams.c.region == region)
        & (logs_streams.c.group_name == name)))
    conn.execute(delete(logs_groups).where(
        (logs_groups.c.account_id == account) & (logs_groups.c.region == region) & (logs_groups.c.name == name)))
    return [s["path"] for s in streams]


def get_stream(conn: Connection, account: str, region: str, group: str, name: str) -> dict[str, Any] | None:
    row = conn.execute(select(logs_streams).where(
        (logs_streams.c.account_id == account) & (logs_streams.c.region == region)
        & (logs_streams.c.group_name == group) & (logs_streams.c.name == name))).mappings().first()
    return dict(row) if row else None


def create_stream(conn: Connection, account: str, region: str, group: str, name: str,
                  path: str | None = None) -> bool:
    try:
        with conn.begin_nested():
            conn.execute(insert(logs_streams).values(
                account_id=account, region=region, group_name=group, name=name, created_at=now_ms(),
                path=path or stream_path(account, region, group, name)))
    except IntegrityError:
        return False
    return True


def list_streams(conn: Connection, account: str, region: str, group: str,
                 prefix: str | None = None) -> list[dict[str, Any]]:
    query = select(logs_streams).where(
        (logs_streams.c.account_id == account) & (logs_streams.c.region == region)
        & (logs_streams.c.group_name == group))
    if prefix:
        query = query.where(logs_streams.c.name.startswith(prefix, autoescape=True))
    return [dict(r) for r in conn.execute(query.order_by(logs_streams.c.name)).mappings()]


def delete_stream(conn: Connection, account: str, region: str, group: str, name: str) -> None:
    conn.execute(delete(logs_streams).where(
        (logs_streams.c.account_id == account) & (logs_streams.c.region == region)
        & (logs_streams.c.group_name == group) & (logs_streams.c.name == name)))


def remove_files(data_dir: Path, paths: list[str]) -> None:
    for rel in paths:
        data = Path(data_dir) / rel
        for p in (data, index_path(data)):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
