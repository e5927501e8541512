"""AddTags / ListTags / DeleteTags over the SageMaker resources that keep tags in a JSON column.

Resource kinds register a resolver (ARN -> TagTarget); pipelines and pipeline executions are
here, later resources (training jobs, models, ...) add theirs with ``register``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Table, select, update

from stratum.services.sagemaker.arns import parse_execution_arn, parse_pipeline_ref
from stratum.services.sagemaker.errors import validation
from stratum.services.sagemaker.pipelines.records import is_visible
from stratum.services.sagemaker.tables import sagemaker_pipeline_executions as executions_t
from stratum.services.sagemaker.tables import sagemaker_pipelines as pipelines_t

if TYPE_CHECKING:
    from stratum.server.context import RequestContext

MAX_TAGS = 50


@dataclass
class TagTarget:
    arn: str
    owner_account: str
    tags: list[dict[str, str]]
    table: Table
    where: Any  # SQL condition selecting exactly this resource's row


# (connection, ARN, lock) -> the target, None if the ARN is not this resolver's kind, or raises
# not_found. ``lock`` asks for the row to be locked for a read-modify-write of its tags.
Resolver = Callable[[Connection, str, bool], "TagTarget | None"]
_RESOLVERS: list[Resolver] = []


def register(resolver: Resolver) -> Resolver:
    _RESOLVERS.append(resolver)
    return resolver


def not_found(arn: str) -> Exception:
    # AddTags/ListTags declare no ResourceNotFound; the service answers ValidationException.
    return validation(f"Resource '{arn}' does not exist.")


def locate(conn: Connection, caller_account: str, region: str, arn: str, *, lock: bool = False) -> TagTarget:
    """The taggable resource an ARN names, as visible to the caller."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[3] != region or not is_visible(caller_account, parts[4]):
        raise not_found(arn)
    for resolver in _RESOLVERS:
        target = resolver(conn, arn, lock)
        if target is not None:
            return target
    raise not_found(arn)


@register
def _pipeline_execution(conn: Connection, arn: str, lock: bool) -> TagTarget | None:
    ref = parse_execution_arn(arn)
    if ref is None:
        return None
    where = ((executions_t.c.account_id == ref.account_id) & (executions_t.c.region == ref.region)
             & (executions_t.c.execution_id == ref.execution_id)
             & (executions_t.c.pipeline_name_key == ref.pipeline_key))
    query = select(executions_t.c.arn, executions_t.c.tags).where(where)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise not_found(arn)
    return TagTarget(row.arn, ref.account_id, list(row.tags or []), executions_t, where)


@register
def _pipeline(conn: Connection, arn: str, lock: bool) -> TagTarget | None:
    if not arn.startswith("arn:") or "/execution/" in arn:
        return None
    ref = parse_pipeline_ref(arn, "", "")
    if ref is None:
        return None
    where = ((pipelines_t.c.account_id == ref.account_id) & (pipelines_t.c.region == ref.region)
             & (pipelines_t.c.name_key == ref.name_key))
    query = select(pipelines_t.c.arn, pipelines_t.c.tags).where(where)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise not_found(arn)
    return TagTarget(row.arn, ref.account_id, list(row.tags or []), pipelines_t, where)


def check_tags(tags: list[dict[str, str]]) -> None:
    """Rules the shape validation cannot express (duplicates, the reserved aws: prefix)."""
    keys = [t["Key"] for t in tags]
    if len(set(keys)) != len(keys):
        raise validation("Tag keys must be unique; the request repeats a key.")
    for key in keys:
        if key.lower().startswith("aws:"):
            raise validation(f"Tag key '{key}' uses the reserved prefix 'aws:'.")


def merged(existing: list[dict[str, str]], new: list[dict[str, str]]) -> list[dict[str, str]]:
    """Existing tags with ``new`` applied: same key overwrites, order of first appearance kept."""
    values = {t["Key"]: t["Value"] for t in existing}
    for tag in new:
        values[tag["Key"]] = tag["Value"]
    if len(values) > MAX_TAGS:
        raise validation(f"A resource can have at most {MAX_TAGS} tags; this request would give it {len(values)}.")
    return [{"Key": k, "Value": v} for k, v in values.items()]


def add_tags(conn: Connection, target: TagTarget, tags: list[dict[str, str]]) -> None:
    check_tags(tags)
    conn.execute(update(target.table).where(target.where).values(tags=merged(target.tags, tags)))


def delete_tags(conn: Connection, target: TagTarget, keys: list[str]) -> None:
    drop = set(keys)
    conn.execute(update(target.table).where(target.where)
                 .values(tags=[t for t in target.tags if t["Key"] not in drop]))


def resource_tag_context(tags: list[dict[str, str]] | None) -> dict[str, Any] | None:
    """aws:ResourceTag/* (and SageMaker's own sagemaker:ResourceTag/*) condition keys."""
    if not tags:
        return None
    ctx: dict[str, Any] = {}
    for tag in tags:
        ctx[f"aws:ResourceTag/{tag['Key']}"] = tag["Value"]
        ctx[f"sagemaker:ResourceTag/{tag['Key']}"] = tag["Value"]
    return ctx


def authorize_found(ctx: RequestContext, action: str, row: Any, arn: str,
                    missing: Callable[[str], Exception]) -> Any:
    """A resource looked up by name for ``action``: authorized on its ARN with its tags. A missing
    one (``row`` None, ``arn`` the ARN it would have) is authorized too before ``missing(arn)`` is
    raised, so a caller without the permission does not learn whether it exists."""
    ctx.authorize(action, row.arn if row is not None else arn,
                  context=resource_tag_context(row.tags if row is not None else None))
    if row is None:
        raise missing(arn)
    return row


def authorize_create(ctx: RequestContext, operation: str, arn: str, tags: list[dict[str, str]],
                     extra: dict[str, Any] | None = None) -> None:
    """Creating a resource: ``sagemaker:<operation>`` and, when the request tags it,
    ``sagemaker:AddTags`` too (as in SageMaker), both with aws:RequestTag/* and aws:TagKeys."""
    check_tags(tags)
    request_tags = request_tag_context(tags)
    ctx.authorize("sagemaker:" + operation, arn, resource_account=ctx.account_id,
                  context={**(extra or {}), **request_tags})
    if tags:
        ctx.authorize("sagemaker:AddTags", arn, resource_account=ctx.account_id, context=request_tags)


def request_tag_context(tags: list[dict[str, str]] | None, keys: list[str] | None = None) -> dict[str, Any]:
    """aws:RequestTag/* and aws:TagKeys for calls that add or remove tags."""
    ctx: dict[str, Any] = {}
    for tag in tags or []:
        ctx[f"aws:RequestTag/{tag['Key']}"] = tag["Value"]
    tag_keys = keys if keys is not None else [t["Key"] for t in tags or []]
    if tag_keys:
        ctx["aws:TagKeys"] = list(tag_keys)
    return ctx
