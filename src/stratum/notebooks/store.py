"""Reading and writing notebook instances, lifecycle configurations and code repositories."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from stratum.notebooks.tables import sagemaker_code_repositories as repos_t
from stratum.notebooks.tables import sagemaker_notebook_instances as instances_t
from stratum.notebooks.tables import sagemaker_notebook_lifecycle_configs as configs_t

# Statuses in which the instance's server (the claim's owner) has work to do or a process to keep.
LIVE = ("Pending", "InService", "Stopping", "Updating", "Deleting")


def now() -> datetime:
    return datetime.now(UTC)


def instance_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:notebook-instance/{name.lower()}"


def config_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:notebook-instance-lifecycle-config/{name.lower()}"


def repository_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:code-repository/{name.lower()}"


# ------------------------------------------------------------------------------------- instances
def get_instance(conn: Connection, account: str, region: str, name: str, lock: bool = False) -> Row[Any] | None:
    c = instances_t.c
    query = select(instances_t).where((c.account_id == account) & (c.region == region) & (c.name_key == name.lower()))
    return conn.execute(query.with_for_update() if lock else query).first()


def get_instance_by_id(conn: Connection, instance_id: str, lock: bool = False) -> Row[Any] | None:
    query = select(instances_t).where(instances_t.c.instance_id == instance_id)
    return conn.execute(query.with_for_update() if lock else query).first()



def insert_instance(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(instances_t).values(**values))


def update_instance(conn: Connection, instance_id: str, **values: Any) -> None:
    conn.execute(update(instances_t).where(instances_t.c.instance_id == instance_id).values(**values))


def delete_instance(conn: Connection, instance_id: str) -> None:
    conn.execute(delete(instances_t).where(instances_t.c.instance_id == instance_id))


def list_instances(conn: Connection, account: str, region: str) -> list[Row[Any]]:
    c = instances_t.c
    return list(conn.execute(select(instances_t).where((c.account_id == account) & (c.region == region))))


def live_instances(conn: Connection) -> list[Row[Any]]:
    return list(conn.execute(select(instances_t).where(instances_t.c.status.in_(LIVE))))


def statuses(conn: Connection, instance_ids: list[str]) -> dict[str, str]:
    c = instances_t.c
    return {r.instance_id: r.status for r in conn.execute(select(c.instance_id, c.status)
                                                           .where(c.instance_id.in_(instance_ids)))}


# ------------------------------------------------------------------------------ lifecycle configs
def get_config(conn: Connection, account: str, region: str, name: str, lock: bool = False) -> Row[Any] | None:
    c = configs_t.c
    query = select(configs_t).where((c.account_id == account) & (c.region == region) & (c.name_key == name.lower()))
    return conn.execute(query.with_for_update() if lock else query).first()


def insert_config(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(configs_t).values(**values))


def update_config(conn: Connection, row: Row[Any], **values: Any) -> None:
    c = configs_t.c
    conn.execute(update(configs_t).where((c.account_id == row.account_id) & (c.region == row.region)
                                         & (c.name_key == row.name_key)).values(**values))


def delete_config(conn: Connection, row: Row[Any]) -> None:
    c = configs_t.c
    conn.execute(delete(configs_t).where((c.account_id == row.account_id) & (c.region == row.region)
                                         & (c.name_key == row.name_key)))


def list_configs(conn: Connection, account: str, region: str) -> list[Row[Any]]:
    c = configs_t.c
    return list(conn.execute(select(configs_t).where((c.account_id == account) & (c.region == region))))


# --------------------------------------------------------------------------------- repositories
def get_repository(conn: Connection, account: str, region: str, name: str) -> Row[Any] | None:
    c = repos_t.c
    return conn.execute(select(repos_t).where((c.account_id == account) & (c.region == region)
                                              & (c.name_key == name.lower()))).first()


def insert_repository(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(repos_t).values(**values))


def list_repositories(conn: Connection, account: str, region: str) -> list[Row[Any]]:
    c = repos_t.c
    return list(conn.execute(select(repos_t).where((c.account_id == account) & (c.region == region))))


def instance_alive(db: Any, instance_id: str) -> bool:
    """Whether the instance runs (the container-credentials endpoint serves its token only then)."""
    with db.read() as conn:
        return conn.execute(select(instances_t.c.instance_id).where(
            (instances_t.c.instance_id == instance_id)
            & instances_t.c.status.in_(("Pending", "InService", "Stopping")))).first() is not None
