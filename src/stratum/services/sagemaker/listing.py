"""The paginated List* queries: each page is one indexed query with LIMIT n+1 (the extra row only
says whether there is a next page)."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select

from stratum.services.sagemaker.paging import listing_scope, page_window, sql_page
from stratum.services.sagemaker.tables import PIPELINE_COLUMNS, VERSION_COLUMNS, pipeline_last_run_at
from stratum.services.sagemaker.tables import (
    sagemaker_pipeline_execution_steps as steps_t,
)
from stratum.services.sagemaker.tables import (
    sagemaker_pipeline_executions as executions_t,
)
from stratum.services.sagemaker.tables import (
    sagemaker_pipeline_versions as versions_t,
)
from stratum.services.sagemaker.tables import (
    sagemaker_pipelines as pipelines_t,
)

Page = tuple[list[Row[Any]], str | None]



def _ordered(columns: list[Any], descending: bool) -> list[Any]:
    return [c.desc() if descending else c.asc() for c in columns]


_SUMMARY_COLUMNS = (pipelines_t.c.pipeline_id, pipelines_t.c.arn, pipelines_t.c.name, pipelines_t.c.display_name,
                    pipelines_t.c.description, pipelines_t.c.role_arn, pipelines_t.c.created_at,
                    pipelines_t.c.last_modified_at, pipeline_last_run_at)


@cache
def _list_pipelines_statement(prefix: bool, after: bool, before: bool, by_name: bool, descending: bool) -> Any:
    """ListPipelines query for one combination of filters, built once (values are bind parameters)."""
    query = select(*_SUMMARY_COLUMNS).where((pipelines_t.c.account_id == bindparam("account"))
                                            & (pipelines_t.c.region == bindparam("region")))
    if prefix:
        query = query.where(pipelines_t.c.name_key.like(bindparam("prefix")))
    if after:
        query = query.where(pipelines_t.c.created_at > bindparam("after"))
    if before:
        query = query.where(pipelines_t.c.created_at < bindparam("before"))
    key = pipelines_t.c.name_key if by_name else pipelines_t.c.created_at
    return (query.order_by(*_ordered([key, pipelines_t.c.pipeline_id], descending))
            .limit(bindparam("limit")).offset(bindparam("offset")))


def list_pipelines(conn: Connection, account: str, region: str, params: dict[str, Any]) -> Page:
    scope = listing_scope("pipelines", (account, region), params)
    offset, limit = page_window(params, scope)
    if params.get("ManagedBy") == "AWS":
        return [], None  # Stratum has no service-managed pipelines
    prefix, after, before = params.get("PipelineNamePrefix"), params.get("CreatedAfter"), params.get("CreatedBefore")
    statement = _list_pipelines_statement(bool(prefix), after is not None, before is not None,
                                          params.get("SortBy") == "Name",
                                          params.get("SortOrder", "Descending") == "Descending")
    # Names are [a-zA-Z0-9-] only, so the prefix cannot contain LIKE wildcards.
    values = {"account": account, "region": region, "prefix": f"{prefix.lower()}%" if prefix else None,
              "after": after, "before": before, "limit": limit + 1, "offset": offset}
    rows = conn.execute(statement, {k: v for k, v in values.items() if v is not None}).all()
    return sql_page(rows, offset, limit, scope)


def list_executions(conn: Connection, pipeline: Row[Any], params: dict[str, Any],
                    version_id: int | None = None) -> Page:
    scope = listing_scope("executions", (pipeline.pipeline_id,), params)
    offset, limit = page_window(params, scope)
    query = select(executions_t).where((executions_t.c.account_id == pipeline.account_id)
                                       & (executions_t.c.region == pipeline.region)
                                       & (executions_t.c.pipeline_id == pipeline.pipeline_id))
    if version_id is not None:
        query = query.where(executions_t.c.pipeline_version_id == version_id)
    if params.get("CreatedAfter") is not None:
        query = query.where(executions_t.c.created_at > params["CreatedAfter"])
    if params.get("CreatedBefore") is not None:
        query = query.where(executions_t.c.created_at < params["CreatedBefore"])
    descending = params.get("SortOrder", "Descending") == "Descending"
    key = executions_t.c.arn if params.get("SortBy") == "PipelineExecutionArn" else executions_t.c.created_at
    query = query.order_by(*_ordered([key, executions_t.c.execution_id], descending))
    rows = conn.execute(query.limit(limit + 1).offset(offset)).all()
    return sql_page(rows, offset, limit, scope)


def list_versions(conn: Connection, pipeline: Row[Any], params: dict[str, Any]) -> Page:
    scope = listing_scope("versions", (pipeline.pipeline_id,), params)
    offset, limit = page_window(params, scope)
    query = select(*VERSION_COLUMNS).where(versions_t.c.pipeline_id == pipeline.pipeline_id)
    if params.get("CreatedAfter") is not None:
        query = query.where(versions_t.c.created_at > params["CreatedAfter"])
    if params.get("CreatedBefore") is not None:
        query = query.where(versions_t.c.created_at < params["CreatedBefore"])
    descending = params.get("SortOrder", "Descending") == "Descending"
    query = query.order_by(versions_t.c.version_id.desc() if descending else versions_t.c.version_id.asc())
    rows = conn.execute(query.limit(limit + 1).offset(offset)).all()
    return sql_page(rows, offset, limit, scope)


def list_steps(conn: Connection, execution: Row[Any], params: dict[str, Any]) -> Page:
    scope = listing_scope("steps", (execution.account_id, execution.region, execution.execution_id), params)
    offset, limit = page_window(params, scope)
    query = select(steps_t).where((steps_t.c.account_id == execution.account_id)
                                  & (steps_t.c.region == execution.region)
                                  & (steps_t.c.execution_id == execution.execution_id))
    descending = params.get("SortOrder", "Descending") == "Descending"
    query = query.order_by(steps_t.c.seq.desc() if descending else steps_t.c.seq.asc())
    rows = conn.execute(query.limit(limit + 1).offset(offset)).all()
    return sql_page(rows, offset, limit, scope)


# ------------------------------------------------------------------------------------ search sources
def pipeline_rows(conn: Connection, account: str, region: str) -> list[Row[Any]]:
    return conn.execute(select(*PIPELINE_COLUMNS).where(
        (pipelines_t.c.account_id == account) & (pipelines_t.c.region == region))).all()


def execution_rows(conn: Connection, account: str, region: str) -> list[Row[Any]]:
    """Executions with their version's display name (the Search model carries it)."""
    return conn.execute(
        select(executions_t, versions_t.c.display_name.label("version_display_name"))
        .outerjoin(versions_t, (versions_t.c.pipeline_id == executions_t.c.pipeline_id)
                   & (versions_t.c.version_id == executions_t.c.pipeline_version_id))
        .where((executions_t.c.account_id == account) & (executions_t.c.region == region))).all()


def version_rows(conn: Connection, account: str, region: str) -> list[dict[str, Any]]:
    """Versions with their pipeline's ARN and last execution's name and status (two queries)."""
    rows = conn.execute(
        select(*VERSION_COLUMNS, pipelines_t.c.arn.label("pipeline_arn"))
        .join(pipelines_t, pipelines_t.c.pipeline_id == versions_t.c.pipeline_id)
        .where((pipelines_t.c.account_id == account) & (pipelines_t.c.region == region))).all()
    last_ids = {r.last_execution_arn.rpartition("/")[2] for r in rows if r.last_execution_arn}
    last: dict[str, Row[Any]] = {}
    if last_ids:
        for e in conn.execute(select(executions_t.c.arn, executions_t.c.display_name, executions_t.c.status).where(
                (executions_t.c.account_id == account) & (executions_t.c.region == region)
                & executions_t.c.execution_id.in_(sorted(last_ids)))):
            last[e.arn] = e
    out: list[dict[str, Any]] = []
    for r in rows:
        execution = last.get(r.last_execution_arn or "")
        out.append({**r._mapping,
                    "last_execution_display_name": execution.display_name if execution else None,
                    "last_execution_status": execution.status if execution else None})
    return out
