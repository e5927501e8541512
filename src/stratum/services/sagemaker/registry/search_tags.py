"""Plugs the registry into the SageMaker-wide features that are extended by registration:
Search (resources "ModelPackageGroup" and "ModelPackage") and AddTags/ListTags/DeleteTags
(groups and unversioned packages; a version carries its group's tags)."""

from __future__ import annotations

from sqlalchemy import Connection, select

from stratum.services.sagemaker import search_sources
from stratum.services.sagemaker import tags as tagging
from stratum.services.sagemaker.errors import validation
from stratum.services.sagemaker.registry import store, views
from stratum.services.sagemaker.registry.refs import parse_group, parse_package
from stratum.services.sagemaker.registry.tables import sagemaker_model_package_groups as groups_t
from stratum.services.sagemaker.registry.tables import sagemaker_model_packages as packages_t


def _group_records(conn: Connection, account: str, region: str) -> list[dict[str, object]]:
    return [views.group_record(r) for r in store.group_rows(conn, account, region)]


def _package_records(conn: Connection, account: str, region: str) -> list[dict[str, object]]:
    return [views.package_record(r, tags) for r, tags in store.package_rows(conn, account, region)]


search_sources.register("ModelPackageGroup", "ModelPackageGroup", _group_records)
search_sources.register("ModelPackage", "ModelPackage", _package_records)


@tagging.register
def _group_tags(conn: Connection, arn: str, lock: bool) -> tagging.TagTarget | None:
    if ":model-package-group/" not in arn:
        return None
    ref = parse_group(arn, "", "")
    if ref is None:
        return None
    where = ((groups_t.c.account_id == ref.account_id) & (groups_t.c.region == ref.region)
             & (groups_t.c.name_key == ref.name_key))
    query = select(groups_t.c.arn, groups_t.c.tags).where(where)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise tagging.not_found(arn)
    return tagging.TagTarget(row.arn, ref.account_id, list(row.tags or []), groups_t, where)


@tagging.register
def _package_tags(conn: Connection, arn: str, lock: bool) -> tagging.TagTarget | None:
    if ":model-package/" not in arn:
        return None
    ref = parse_package(arn, "", "")
    if ref is None:
        return None
    if ref.version is not None:
        raise validation(f"Model package version {arn} uses the tags of its model package group; "
                         "tag the group instead.")
    where = ((packages_t.c.account_id == ref.account_id) & (packages_t.c.region == ref.region)
             & (packages_t.c.resource_key == ref.resource_key))
    query = select(packages_t.c.arn, packages_t.c.tags).where(where)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise tagging.not_found(arn)
    return tagging.TagTarget(row.arn, ref.account_id, list(row.tags or []), packages_t, where)
