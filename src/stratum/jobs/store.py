"""Job and model rows: names, ARNs, lookups and paginated listings (one indexed query each)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, exists, insert, select, update

from stratum.jobs.tables import sagemaker_jobs as jobs_t
from stratum.jobs.tables import sagemaker_models as models_t
from stratum.services.sagemaker.paging import listing_scope, named_listing, page_window, sql_page
from stratum.store.claims import JOB
from stratum.store.tables import stratum_claims as claims_t

# kind -> (ARN resource type, API noun for messages)
ARN_TYPES = {"processing": "processing-job", "training": "training-job", "transform": "transform-job",
             "tuning": "hyper-parameter-tuning-job"}
ACTIVE = ("InProgress", "Stopping")
FINAL = ("Completed", "Failed", "Stopped")


def now() -> datetime:
    return datetime.now(UTC)


def job_arn(kind: str, region: str, account: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:{ARN_TYPES[kind]}/{name.lower()}"


def model_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:model/{name.lower()}"


def insert_job(conn: Connection, values: dict[str, Any]) -> None:
    row = conn.execute(insert(jobs_t).values(**values).returning(*jobs_t.c)).one()
    _state_changed(conn, row)


def get_job(conn: Connection, account: str, region: str, kind: str, name: str, lock: bool = False) -> Row[Any] | None:
    query = select(jobs_t).where((jobs_t.c.account_id == account) & (jobs_t.c.region == region)
                                 & (jobs_t.c.kind == kind) & (jobs_t.c.name_key == name.lower()))
    return conn.execute(query.with_for_update() if lock else query).first()


def get_job_by_id(conn: Connection, job_id: str, lock: bool = False) -> Row[Any] | None:
    query = select(jobs_t).where(jobs_t.c.job_id == job_id)
    return conn.execute(query.with_for_update() if lock else query).first()


def update_job(conn: Connection, job_id: str, **values: Any) -> None:
    values.setdefault("last_modified_at", now())
    statement = update(jobs_t).where(jobs_t.c.job_id == job_id).values(**values)
    if "status" not in values:
        conn.execute(statement)
        return
    row = conn.execute(statement.returning(*jobs_t.c)).first()
    if row is not None:
        _state_changed(conn, row)


def _state_changed(conn: Connection, row: Row[Any]) -> None:
    """A job's status was written: its state-change event goes in the same transaction, rendered
    from the row as the write left it (RETURNING, so no second read)."""
    from stratum.jobs import events  # events renders the job as Describe does (jobs.views)

    events.state_changed(conn, row, now())


def unclaimed_active_jobs(conn: Connection) -> list[Row[Any]]:
    """InProgress/Stopping jobs no server claims (recorded before claims existed)."""
    claimed = (select(claims_t.c.item_id)
               .where((claims_t.c.kind == JOB) & (claims_t.c.account_id == jobs_t.c.account_id)
                      & (claims_t.c.region == jobs_t.c.region) & (claims_t.c.item_id == jobs_t.c.job_id)))
    return list(conn.execute(select(jobs_t.c.job_id, jobs_t.c.account_id, jobs_t.c.region)
                             .where(jobs_t.c.status.in_(ACTIVE) & ~exists(claimed))))


def stop_requested(conn: Connection, job_ids: list[str]) -> list[str]:
    """Those of ``job_ids`` whose stop was requested (StopXJob may reach any server)."""
    return [r.job_id for r in conn.execute(select(jobs_t.c.job_id).where(
        jobs_t.c.job_id.in_(job_ids) & jobs_t.c.stop_requested & jobs_t.c.status.in_(ACTIVE)))]


def children(conn: Connection, parent_arn: str) -> list[Row[Any]]:
    return list(conn.execute(select(jobs_t).where(jobs_t.c.parent_arn == parent_arn)
                             .order_by(jobs_t.c.created_at, jobs_t.c.name_key)))



# SageMaker cuts the page (MaxResults, NextToken) out of the listing before it applies NameContains
# to it, and for ListTrainingJobs StatusEquals too (as its documentation says): a page may be short,
# even empty, and still carry a NextToken. The other filters select the listing itself.
_PAGE_FILTERS = {"training": ("NameContains", "StatusEquals")}


def list_jobs(conn: Connection, account: str, region: str, kind: str, params: dict[str, Any],
              default_order: str = "Ascending", default_sort: str = "CreationTime"
              ) -> tuple[list[Row[Any]], str | None]:
    scope = listing_scope(kind, (account, region), params)
    offset, limit = page_window(params, scope)
    c = jobs_t.c
    page_filters = _PAGE_FILTERS.get(kind, ("NameContains",))
    query = select(jobs_t).where((c.account_id == account) & (c.region == region) & (c.kind == kind))
    if params.get("StatusEquals") and "StatusEquals" not in page_filters:
        query = query.where(c.status == params["StatusEquals"])
    for member, column, op in (("CreationTimeAfter", c.created_at, "gt"), ("CreationTimeBefore", c.created_at, "lt"),
                               ("LastModifiedTimeAfter", c.last_modified_at, "gt"),
                               ("LastModifiedTimeBefore", c.last_modified_at, "lt")):
        if params.get(member) is not None:
            query = query.where(column > params[member] if op == "gt" else column < params[member])
    sort = {"Name": c.name_key, "Status": c.status}.get(params.get("SortBy") or default_sort, c.created_at)
    descending = (params.get("SortOrder") or default_order) == "Descending"
    keys = [sort, c.job_id]
    query = query.order_by(*[k.desc() if descending else k.asc() for k in keys]).limit(limit + 1).offset(offset)
    rows, token = sql_page(list(conn.execute(query)), offset, limit, scope)
    contains = (params.get("NameContains") or "").lower()
    status = params.get("StatusEquals") if "StatusEquals" in page_filters else None
    return [r for r in rows if contains in r.name_key and (not status or r.status == status)], token


# ------------------------------------------------------------------------------------------ models
def insert_model(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(insert(models_t).values(**values))


def get_model(conn: Connection, account: str, region: str, name: str) -> Row[Any] | None:
    return conn.execute(select(models_t).where((models_t.c.account_id == account) & (models_t.c.region == region)
                                               & (models_t.c.name_key == name.lower()))).first()


def delete_model(conn: Connection, account: str, region: str, name: str) -> None:
    from sqlalchemy import delete

    conn.execute(delete(models_t).where((models_t.c.account_id == account) & (models_t.c.region == region)
                                        & (models_t.c.name_key == name.lower())))


def list_models(conn: Connection, account: str, region: str, params: dict[str, Any]
                ) -> tuple[list[Row[Any]], str | None]:
    return named_listing(conn, models_t, "models", account, region, params)


def job_alive(db: Any, job_id: str) -> bool:
    """Whether a job still runs (the container-credentials endpoint serves its token only then)."""
    with db.read() as conn:
        return conn.execute(select(jobs_t.c.job_id).where(
            (jobs_t.c.job_id == job_id) & jobs_t.c.status.in_(ACTIVE))).first() is not None
