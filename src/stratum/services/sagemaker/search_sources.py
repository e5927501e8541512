"""Which records Search looks at for each Resource type.

A source loads one account's records for a region as Search model dicts. Resource types
without a registered source have no records in Stratum yet, so Search returns nothing for them.
Later resources (TrainingJob, ModelPackage, ...) register theirs here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from sqlalchemy import Connection, Row, or_, select

from stratum.protocol.service_models import service_model
from stratum.services.ram import access as ram_access
from stratum.services.sagemaker import listing, views
from stratum.services.sagemaker.arns import parse_pipeline_ref
from stratum.services.sagemaker.search import SearchSchema
from stratum.services.sagemaker.tables import PIPELINE_COLUMNS
from stratum.services.sagemaker.tables import sagemaker_pipeline_executions as executions_t
from stratum.services.sagemaker.tables import sagemaker_pipeline_versions as versions_t
from stratum.services.sagemaker.tables import sagemaker_pipelines as pipelines_t

Loader = Callable[[Connection, str, str], list[dict[str, Any]]]


def _shared_pipeline_arns(conn: Connection, account: str, region: str) -> list[str]:
    """Pipelines of other accounts that AWS RAM shares with ``account`` with sagemaker:Search allowed."""
    return ram_access.shared_resource_arns(conn, account, region, "sagemaker:Pipeline", "sagemaker:Search")


def _shared_pipelines(conn: Connection, account: str, region: str) -> list[Row[Any]]:
    refs = [ref for ref in (parse_pipeline_ref(arn, "", "") for arn in _shared_pipeline_arns(conn, account, region))
            if ref is not None]
    if not refs:
        return []
    return list(conn.execute(select(*PIPELINE_COLUMNS).where((pipelines_t.c.region == region) & or_(*[
        (pipelines_t.c.account_id == ref.account_id) & (pipelines_t.c.name_key == ref.name_key)
        for ref in refs]))).all())


def _shared_executions(conn: Connection, account: str, region: str) -> list[Row[Any]]:
    arns = _shared_pipeline_arns(conn, account, region)
    if not arns:
        return []
    owners = sorted({arn.split(":")[4] for arn in arns})
    return list(conn.execute(
        select(executions_t, versions_t.c.display_name.label("version_display_name"))
        .outerjoin(versions_t, (versions_t.c.pipeline_id == executions_t.c.pipeline_id)
                   & (versions_t.c.version_id == executions_t.c.pipeline_version_id))
        .where(executions_t.c.account_id.in_(owners) & (executions_t.c.region == region)
               & executions_t.c.pipeline_arn.in_(arns))).all())


# Resource -> (SearchRecord member and model shape name, loader of the account's own records)
SOURCES: dict[str, tuple[str, Loader]] = {
    "Pipeline": ("Pipeline", lambda conn, account, region: [
        views.pipeline_record(r) for r in listing.pipeline_rows(conn, account, region)]),
    "PipelineExecution": ("PipelineExecution", lambda conn, account, region: [
        views.execution_record(r) for r in listing.execution_rows(conn, account, region)]),
    "PipelineVersion": ("PipelineVersion", lambda conn, account, region: [
        views.version_record(r) for r in listing.version_rows(conn, account, region)]),
}

# Resource -> loader of what other accounts make discoverable to the account (RAM shares). As in
# SageMaker, Search returns these only with CrossAccountFilterOption=CrossAccount, and then only
# these; SameAccount (or no option) is the account's own records.
SHARED_SOURCES: dict[str, Loader] = {
    "Pipeline": lambda conn, account, region: [
        views.pipeline_record(r) for r in _shared_pipelines(conn, account, region)],
    "PipelineExecution": lambda conn, account, region: [
        views.execution_record(r) for r in _shared_executions(conn, account, region)],
}


def register(resource: str, record_member: str, loader: Loader) -> None:
    SOURCES[resource] = (record_member, loader)


@cache
def schema(resource: str) -> SearchSchema:
    """Property types for ``resource`` from the SearchRecord member's shape."""
    member = service_model("sagemaker").shape_for("SearchRecord").members[SOURCES[resource][0]]  # type: ignore[attr-defined]
    return SearchSchema(member, resource)
