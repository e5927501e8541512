"""Which records Search looks at for each Resource type.

A source loads one account's records for a region as Search model dicts. Resource types
without a registered source have no records in Stratum yet, so Search returns nothing for them.
Later resources (TrainingJob, ModelPackage, ...) register theirs here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from sqlalchemy import Connection

from stratum.protocol.service_models import service_model
from stratum.services.sagemaker import listing, views
from stratum.services.sagemaker.search import SearchSchema

Loader = Callable[[Connection, str, str], list[dict[str, Any]]]

# Resource -> (SearchRecord member and model shape name, loader)
SOURCES: dict[str, tuple[str, Loader]] = {
    "Pipeline": ("Pipeline", lambda conn, account, region: [
        views.pipeline_record(r) for r in listing.pipeline_rows(conn, account, region)]),
    "PipelineExecution": ("PipelineExecution", lambda conn, account, region: [
        views.execution_record(r) for r in listing.execution_rows(conn, account, region)]),
    "PipelineVersion": ("PipelineVersion", lambda conn, account, region: [
        views.version_record(r) for r in listing.version_rows(conn, account, region)]),
}


def register(resource: str, record_member: str, loader: Loader) -> None:
    SOURCES[resource] = (record_member, loader)


@cache
def schema(resource: str) -> SearchSchema:
    """Property types for ``resource`` from the SearchRecord member's shape."""
    member = service_model("sagemaker").shape_for("SearchRecord").members[SOURCES[resource][0]]  # type: ignore[attr-defined]
    return SearchSchema(member, resource)
