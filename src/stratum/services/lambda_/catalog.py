"""Functions, versions and aliases in the database. A version's ``config`` is its
FunctionConfiguration as the API shows it, less the fields derived from where it is stored
(FunctionName, FunctionArn, Version)."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from stratum.services.lambda_.names import LATEST, VERSION, FunctionRef, conflict, function_arn, not_found
from stratum.services.lambda_.tables import lambda_aliases, lambda_functions, lambda_versions


def now() -> datetime:
    return datetime.now(UTC)


def last_modified(at: datetime) -> str:
    """LastModified as Lambda writes it: 2024-01-01T12:00:00.000+0000."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


def revision() -> str:
    return str(uuid.uuid4())


def _where_function(t: Any, account: str, region: str, name: str, column: str = "function_name") -> Any:
    return (t.c.account_id == account) & (t.c.region == region) & (t.c[column] == name)


def function_not_found(ref: FunctionRef, qualifier: str | None = None) -> Exception:
    arn = function_arn(ref.region, ref.account_id, ref.name, qualifier)
    return not_found(f"Function not found: {arn}")


# ---------------------------------------------------------------------------------------- functions
def create_function(conn: Connection, ref: FunctionRef, config: dict[str, Any], sha: str,
                    tags: dict[str, str], at: datetime) -> None:
    try:
        with conn.begin_nested():
            conn.execute(insert(lambda_functions).values(
                account_id=ref.account_id, region=ref.region, name=ref.name, tags=tags, policy=[],
                policy_revision=revision(), last_version=0, created_at=at))
    except IntegrityError:
        raise conflict(f"Function already exist: {ref.name}") from None
    conn.execute(insert(lambda_versions).values(
        account_id=ref.account_id, region=ref.region, function_name=ref.name, version=LATEST, config=config,
        code_sha256=sha))


def get_function(conn: Connection, ref: FunctionRef, *, lock: bool = False) -> dict[str, Any]:
    query = select(lambda_functions).where(_where_function(lambda_functions, ref.account_id, ref.region,
                                                           ref.name, "name"))
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise function_not_found(ref)
    return dict(row)


def update_function(conn: Connection, ref: FunctionRef, **values: Any) -> None:
    conn.execute(update(lambda_functions).where(
        _where_function(lambda_functions, ref.account_id, ref.region, ref.name, "name")).values(**values))


def delete_function(conn: Connection, ref: FunctionRef) -> None:
    for table in (lambda_versions, lambda_aliases):
        conn.execute(delete(table).where(_where_function(table, ref.account_id, ref.region, ref.name)))
    conn.execute(delete(lambda_functions).where(
        _where_function(lambda_functions, ref.account_id, ref.region, ref.name, "name")))


def list_functions(conn: Connection, account: str, region: str) -> list[dict[str, Any]]:
    rows = conn.execute(select(lambda_versions).where(
        (lambda_versions.c.account_id == account) & (lambda_versions.c.region == region)
        & (lambda_versions.c.version == LATEST)).order_by(lambda_versions.c.function_name)).mappings()
    return [dict(r) for r in rows]


# ----------------------------------------------------------------------------------------- versions
def get_version(conn: Connection, ref: FunctionRef, version: str) -> dict[str, Any] | None:
    row = conn.execute(select(lambda_versions).where(
        _where_function(lambda_versions, ref.account_id, ref.region, ref.name)
        & (lambda_versions.c.version == version))).mappings().first()
    return dict(row) if row else None


def list_versions(conn: Connection, ref: FunctionRef) -> list[dict[str, Any]]:
    rows = [dict(r) for r in conn.execute(select(lambda_versions).where(
        _where_function(lambda_versions, ref.account_id, ref.region, ref.name))).mappings()]
    return sorted(rows, key=lambda r: -1 if r["version"] == LATEST else int(r["version"]))


def resolve(conn: Connection, ref: FunctionRef) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The version a (qualified) reference runs, and the alias it went through (if any)."""
    qualifier = ref.qualifier or LATEST
    alias = None
    if qualifier != LATEST and not VERSION.fullmatch(qualifier):
        alias = get_alias(conn, ref, qualifier)
        if alias is None:
            raise function_not_found(ref, qualifier)
        qualifier = weighted_version(alias)
    row = get_version(conn, ref, qualifier)
    if row is None:
        raise function_not_found(ref, ref.qualifier)
    return row, alias


def weighted_version(alias: dict[str, Any], draw: float | None = None) -> str:
    """The version an alias runs this time: one of its RoutingConfig's AdditionalVersionWeights
    with that probability, else its FunctionVersion."""
    weights = ((alias.get("routing_config") or {}).get("AdditionalVersionWeights") or {})
    point = random.random() if draw is None else draw
    for version, weight in sorted(weights.items()):
        if point < float(weight):
            return str(version)
        point -= float(weight)
    return str(alias["function_version"])


def set_latest(conn: Connection, ref: FunctionRef, config: dict[str, Any], sha: str) -> None:
    conn.execute(update(lambda_versions).where(
        _where_function(lambda_versions, ref.account_id, ref.region, ref.name)
        & (lambda_versions.c.version == LATEST)).values(config=config, code_sha256=sha))


def publish(conn: Connection, ref: FunctionRef, description: str | None, at: datetime) -> dict[str, Any]:
    """Publish $LATEST as a new version; the last published version when nothing changed since
    (as Lambda does)."""
    function = get_function(conn, ref, lock=True)
    latest = get_version(conn, ref, LATEST)
    assert latest is not None
    if function["last_version"]:
        previous = get_version(conn, ref, str(function["last_version"]))
        if previous is not None and _same(previous, latest):
            return previous
    number = str(function["last_version"] + 1)
    config = dict(latest["config"])
    config.update({"RevisionId": revision(), "LastModified": last_modified(at)})
    if description is not None:
        config["Description"] = description
    conn.execute(insert(lambda_versions).values(
        account_id=ref.account_id, region=ref.region, function_name=ref.name, version=number, config=config,
        code_sha256=latest["code_sha256"]))
    update_function(conn, ref, last_version=int(number))
    row = get_version(conn, ref, number)
    assert row is not None
    return row


_VOLATILE = {"RevisionId", "LastModified", "Description", "State", "LastUpdateStatus"}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["code_sha256"] != b["code_sha256"]:
        return False
    strip = lambda c: {k: v for k, v in c.items() if k not in _VOLATILE}  # noqa: E731
    return bool(strip(a["config"]) == strip(b["config"]))


def delete_version(conn: Connection, ref: FunctionRef, version: str) -> None:
    using = conn.execute(select(lambda_aliases.c.name).where(
        _where_function(lambda_aliases, ref.account_id, ref.region, ref.name)
        & (lambda_aliases.c.function_version == version))).scalars().all()
    if using:
        raise conflict(f"Unable to delete version because the following aliases reference it: {list(using)}")
    conn.execute(delete(lambda_versions).where(
        _where_function(lambda_versions, ref.account_id, ref.region, ref.name)
        & (lambda_versions.c.version == version)))


# ------------------------------------------------------------------------------------------ aliases
def get_alias(conn: Connection, ref: FunctionRef, name: str) -> dict[str, Any] | None:
    row = conn.execute(select(lambda_aliases).where(
        _where_function(lambda_aliases, ref.account_id, ref.region, ref.name)
        & (lambda_aliases.c.name == name))).mappings().first()
    return dict(row) if row else None


def create_alias(conn: Connection, ref: FunctionRef, name: str, version: str, description: str,
                 routing: dict[str, Any] | None) -> dict[str, Any]:
    try:
        with conn.begin_nested():
            conn.execute(insert(lambda_aliases).values(
                account_id=ref.account_id, region=ref.region, function_name=ref.name, name=name,
                function_version=version, description=description, routing_config=routing, revision_id=revision()))
    except IntegrityError:
        raise conflict(f"Alias already exists: {function_arn(ref.region, ref.account_id, ref.name, name)}") from None
    alias = get_alias(conn, ref, name)
    assert alias is not None
    return alias


def update_alias(conn: Connection, ref: FunctionRef, name: str, **values: Any) -> dict[str, Any]:
    conn.execute(update(lambda_aliases).where(
        _where_function(lambda_aliases, ref.account_id, ref.region, ref.name)
        & (lambda_aliases.c.name == name)).values(revision_id=revision(), **values))
    alias = get_alias(conn, ref, name)
    assert alias is not None
    return alias


def delete_alias(conn: Connection, ref: FunctionRef, name: str) -> None:
    conn.execute(delete(lambda_aliases).where(
        _where_function(lambda_aliases, ref.account_id, ref.region, ref.name) & (lambda_aliases.c.name == name)))


def list_aliases(conn: Connection, ref: FunctionRef) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(lambda_aliases).where(
        _where_function(lambda_aliases, ref.account_id, ref.region, ref.name)).order_by(lambda_aliases.c.name))
        .mappings()]
