"""Model registry records: groups, packages, group policies and the state-change outbox.

Every function takes an open connection, so the provider owns the transaction and authorizes
between the lookup and the write; the pipeline steps call the same functions.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from stratum.services.sagemaker import errors
from stratum.services.sagemaker.paging import listing_scope, page_window, sql_page
from stratum.services.sagemaker.registry import errors as registry_errors
from stratum.services.sagemaker.registry import views
from stratum.services.sagemaker.registry.refs import (
    GroupRef,
    PackageRef,
    group_arn,
    unversioned_package_arn,
    versioned_package_arn,
)
from stratum.services.sagemaker.registry.tables import sagemaker_model_package_groups as groups_t
from stratum.services.sagemaker.registry.tables import sagemaker_model_packages as packages_t
from stratum.services.sagemaker.registry.tables import sagemaker_registry_events as events_t

COMPLETED = "Completed"
DEFAULT_APPROVAL = "PendingManualApproval"
MAX_CUSTOMER_METADATA = 50
MAX_ADDITIONAL_SPECIFICATIONS = 15
STATE_CHANGE = "SageMaker Model Package State Change"

# CreateModelPackage members DescribeModelPackage returns as given (the rest have columns).
DOCUMENT_MEMBERS = (
    "ModelPackageRegistrationType", "SourceAlgorithmSpecification", "ValidationSpecification",
    "CertifyForMarketplace", "MetadataProperties", "ModelMetrics", "Domain", "Task", "SamplePayloadUrl",
    "DriftCheckBaselines", "AdditionalInferenceSpecifications", "SkipModelValidation", "SourceUri",
    "SecurityConfig", "ModelCard", "ModelLifeCycle", "ManagedStorageType",
)
# UpdateModelPackage members that replace the stored value.
_REPLACEABLE = ("SourceUri", "ModelCard", "ModelLifeCycle", "ModelPackageRegistrationType")

Page = tuple[list[Row[Any]], str | None]


def _new_id() -> str:
    return uuid.uuid4().hex



# ------------------------------------------------------------------------------------------ groups
_GROUP = select(groups_t).where((groups_t.c.account_id == bindparam("account"))
                                & (groups_t.c.region == bindparam("region"))
                                & (groups_t.c.name_key == bindparam("name_key")))
_GROUP_FOR_UPDATE = _GROUP.with_for_update()
_GROUP_BY_ID = select(groups_t).where(groups_t.c.group_id == bindparam("group_id"))


def get_group(conn: Connection, ref: GroupRef, *, lock: bool = False) -> Row[Any] | None:
    """The group row, or None; ``lock`` for read-modify-write (version numbering, policy)."""
    return conn.execute(_GROUP_FOR_UPDATE if lock else _GROUP,
                        {"account": ref.account_id, "region": ref.region, "name_key": ref.name_key}).first()


def get_group_by_id(conn: Connection, group_id: str) -> Row[Any] | None:
    return conn.execute(_GROUP_BY_ID, {"group_id": group_id}).first()


def create_group(conn: Connection, *, account: str, region: str, name: str, description: str | None,
                 tags: list[dict[str, str]], managed: dict[str, Any] | None, created_by: dict[str, Any] | None,
                 now: datetime) -> Row[Any]:
    ref = GroupRef(account, region, name)
    if get_group(conn, ref) is not None:
        raise registry_errors.group_exists(ref.arn)
    group_id = _new_id()
    try:
        conn.execute(insert(groups_t).values(
            group_id=group_id, account_id=account, region=region, name_key=ref.name_key, name=name,
            arn=group_arn(region, account, name), description=description, status=COMPLETED,
            managed_configuration=managed, tags=tags, resource_policy=None, last_version=0, created_at=now,
            created_by=created_by))
    except IntegrityError:
        # A concurrent create won the (account, region, name) race.
        raise registry_errors.group_exists(ref.arn) from None
    row = get_group_by_id(conn, group_id)
    assert row is not None
    return row


def delete_group(conn: Connection, group: Row[Any]) -> None:
    """SageMaker refuses to delete a group that still holds versions."""
    holds = conn.execute(select(packages_t.c.package_id).where(packages_t.c.group_id == group.group_id)
                         .limit(1)).first()
    if holds is not None:
        raise registry_errors.group_not_empty(group.arn)
    conn.execute(delete(groups_t).where(groups_t.c.group_id == group.group_id))


def set_group_policy(conn: Connection, group: Row[Any], document: str | None) -> None:
    conn.execute(update(groups_t).where(groups_t.c.group_id == group.group_id).values(resource_policy=document))


def list_groups(conn: Connection, account: str, region: str, params: dict[str, Any]) -> Page:
    scope = listing_scope("model-package-groups", (account, region), params)
    offset, limit = page_window(params, scope)
    query = select(groups_t).where((groups_t.c.account_id == account) & (groups_t.c.region == region))
    query = _filter_common(query, groups_t, params)
    key = groups_t.c.name_key if params.get("SortBy") == "Name" else groups_t.c.created_at
    query = query.order_by(*_ordered([key, groups_t.c.group_id], params))
    rows = conn.execute(query.limit(limit + 1).offset(offset)).all()
    return sql_page(rows, offset, limit, scope)


def policy_groups(conn: Connection, caller_account: str, region: str, params: dict[str, Any]) -> list[Row[Any]]:
    """Groups of other accounts that carry a resource policy, filtered and sorted like a listing;
    the provider keeps those whose policy lets the caller see them."""
    query = select(groups_t).where((groups_t.c.account_id != caller_account) & (groups_t.c.region == region)
                                   & groups_t.c.resource_policy.is_not(None))
    query = _filter_common(query, groups_t, params)
    key = groups_t.c.name_key if params.get("SortBy") == "Name" else groups_t.c.created_at
    return list(conn.execute(query.order_by(*_ordered([key, groups_t.c.group_id], params))).all())


def _filter_common(query: Any, table: Any, params: dict[str, Any]) -> Any:
    contains = params.get("NameContains")
    if contains:
        # NameContains allows only [a-zA-Z0-9-]: no LIKE wildcards can sneak in.
        query = query.where(table.c.name_key.like(f"%{contains.lower()}%"))
    if params.get("CreationTimeAfter") is not None:
        query = query.where(table.c.created_at > params["CreationTimeAfter"])
    if params.get("CreationTimeBefore") is not None:
        query = query.where(table.c.created_at < params["CreationTimeBefore"])
    return query


def _ordered(columns: list[Any], params: dict[str, Any]) -> list[Any]:
    descending = params.get("SortOrder", "Ascending") == "Descending"
    return [c.desc() if descending else c.asc() for c in columns]


# ---------------------------------------------------------------------------------------- packages
_PACKAGE = select(packages_t).where((packages_t.c.account_id == bindparam("account"))
                                    & (packages_t.c.region == bindparam("region"))
                                    & (packages_t.c.resource_key == bindparam("key")))
_PACKAGE_FOR_UPDATE = _PACKAGE.with_for_update()
_PACKAGE_BY_ID = select(packages_t).where(packages_t.c.package_id == bindparam("package_id"))


def get_package(conn: Connection, ref: PackageRef, *, lock: bool = False) -> Row[Any] | None:
    return conn.execute(_PACKAGE_FOR_UPDATE if lock else _PACKAGE,
                        {"account": ref.account_id, "region": ref.region, "key": ref.resource_key}).first()


def _package_by_id(conn: Connection, package_id: str) -> Row[Any]:
    row = conn.execute(_PACKAGE_BY_ID, {"package_id": package_id}).first()
    assert row is not None
    return row


def next_version_arn(group: Row[Any]) -> str:
    """The ARN the next version of ``group`` gets (read with the group row locked)."""
    return versioned_package_arn(group.region, group.account_id, group.name, int(group.last_version) + 1)


def check_create_request(request: dict[str, Any], versioned: bool) -> None:
    """CreateModelPackage rules the input shape cannot express."""
    if request.get("ModelPackageName") and request.get("ModelPackageGroupName"):
        raise errors.validation("Both ModelPackageName and ModelPackageGroupName are provided in the input. "
                                "Cannot determine which one to use.")
    if not request.get("ModelPackageName") and not request.get("ModelPackageGroupName"):
        raise errors.validation("Missing ARN.")
    if versioned and request.get("Tags"):
        raise errors.validation("Tags cannot be specified for a versioned model package: it uses the tags of "
                                "its model package group.")
    _check_additional_specifications(request.get("AdditionalInferenceSpecifications") or [])


def _check_additional_specifications(specs: list[dict[str, Any]]) -> None:
    if len(specs) > MAX_ADDITIONAL_SPECIFICATIONS:
        raise errors.validation(f"A model package can have at most {MAX_ADDITIONAL_SPECIFICATIONS} "
                                "AdditionalInferenceSpecifications.")
    names = [s.get("Name") for s in specs]
    if len(set(names)) != len(names):
        raise errors.validation("AdditionalInferenceSpecifications names must be unique.")


def create_package(conn: Connection, *, account: str, region: str, group: Row[Any] | None,
                   request: dict[str, Any], created_by: dict[str, Any] | None, now: datetime) -> Row[Any]:
    """Insert a package: the next version of ``group`` (read locked), or an unversioned package
    named by request["ModelPackageName"]. Records the state-change event."""
    document = {k: request[k] for k in DOCUMENT_MEMBERS if request.get(k) is not None}
    document.setdefault("CertifyForMarketplace", False)
    if group is not None:
        version = int(group.last_version) + 1
        moved = conn.execute(update(groups_t).where((groups_t.c.group_id == group.group_id)
                                                    & (groups_t.c.last_version == group.last_version))
                             .values(last_version=version))
        if moved.rowcount != 1:
            raise errors.conflict(f"Another model package version was created in {group.arn} at the same time; "
                                  "retry the request.")
        name, key = group.name, f"{group.name_key}/{version}"
        arn = versioned_package_arn(region, account, group.name, version)
        approval = request.get("ModelApprovalStatus") or DEFAULT_APPROVAL
        tags: list[dict[str, str]] = []
        group_id, group_name = group.group_id, group.name
    else:
        name = request["ModelPackageName"]
        key, version, approval = name.lower(), None, None
        arn = unversioned_package_arn(region, account, name)
        tags = list(request.get("Tags") or [])
        group_id = group_name = None
        if get_package(conn, PackageRef(account, region, name, None)) is not None:
            raise registry_errors.package_exists(arn)
    package_id = _new_id()
    try:
        conn.execute(insert(packages_t).values(
            package_id=package_id, account_id=account, region=region, resource_key=key, arn=arn, name=name,
            name_key=name.lower(), group_id=group_id, group_name=group_name, version=version,
            description=request.get("ModelPackageDescription"), status=COMPLETED, approval_status=approval,
            approval_description=None, inference_specification=request.get("InferenceSpecification"),
            customer_metadata=request.get("CustomerMetadataProperties") or None, document=document, tags=tags,
            created_at=now, created_by=created_by, last_modified_at=now, last_modified_by=created_by))
    except IntegrityError:
        raise registry_errors.package_exists(arn) from None
    row = _package_by_id(conn, package_id)
    record_state_change(conn, row, now)
    return row


def update_package(conn: Connection, row: Row[Any], params: dict[str, Any], modified_by: dict[str, Any] | None,
                   now: datetime) -> Row[Any]:
    """Apply an UpdateModelPackage to a (locked) package row; records an event when the approval
    status or the lifecycle stage changes."""
    if params.get("InferenceSpecification") is not None and params.get("SourceUri") is not None:
        raise errors.validation("InferenceSpecification and SourceUri cannot be updated in the same request.")
    values: dict[str, Any] = {}
    status = params.get("ModelApprovalStatus")
    if status is not None:
        if row.version is None:
            raise errors.validation("ModelApprovalStatus can only be set on a versioned model package.")
        values["approval_status"] = status
    if params.get("ApprovalDescription") is not None:
        values["approval_description"] = params["ApprovalDescription"]
    added = params.get("CustomerMetadataProperties") or {}
    removed = list(params.get("CustomerMetadataPropertiesToRemove") or [])
    if added or removed:
        both = sorted(set(added) & set(removed))
        if both:
            raise errors.validation(f"Customer metadata key '{both[0]}' cannot be both added and removed "
                                    "in the same request.")
        metadata = {k: v for k, v in (row.customer_metadata or {}).items() if k not in set(removed)}
        metadata.update(added)
        if len(metadata) > MAX_CUSTOMER_METADATA:
            raise errors.validation(f"A model package can have at most {MAX_CUSTOMER_METADATA} "
                                    "CustomerMetadataProperties.")
        values["customer_metadata"] = metadata or None
    if params.get("InferenceSpecification") is not None:
        values["inference_specification"] = params["InferenceSpecification"]
    document = dict(row.document or {})
    additions = params.get("AdditionalInferenceSpecificationsToAdd") or []
    if additions:
        combined = list(document.get("AdditionalInferenceSpecifications") or []) + list(additions)
        _check_additional_specifications(combined)
        document["AdditionalInferenceSpecifications"] = combined
    for member in _REPLACEABLE:
        if params.get(member) is not None:
            document[member] = params[member]
    values.update(document=document, last_modified_at=now, last_modified_by=modified_by)
    conn.execute(update(packages_t).where(packages_t.c.package_id == row.package_id).values(**values))
    updated = _package_by_id(conn, row.package_id)
    lifecycle_changed = (row.document or {}).get("ModelLifeCycle") != document.get("ModelLifeCycle")
    if updated.approval_status != row.approval_status or lifecycle_changed:
        record_state_change(conn, updated, now)
    return updated


def delete_package(conn: Connection, row: Row[Any]) -> None:
    conn.execute(delete(packages_t).where(packages_t.c.package_id == row.package_id))


def list_packages(conn: Connection, account: str, region: str, params: dict[str, Any],
                  group: Row[Any] | None, group_given: bool) -> Page:
    """ListModelPackages: one group's versions, or the account's packages of ModelPackageType
    (Unversioned when not given, as documented)."""
    scope = listing_scope("model-packages", (account, region), params)
    offset, limit = page_window(params, scope)
    kind = params.get("ModelPackageType")
    if group_given:
        if group is None or kind == "Unversioned":
            return [], None
        query = select(packages_t).where(packages_t.c.group_id == group.group_id)
    else:
        query = select(packages_t).where((packages_t.c.account_id == account) & (packages_t.c.region == region))
        kind = kind or "Unversioned"
        if kind == "Versioned":
            query = query.where(packages_t.c.version.is_not(None))
        elif kind == "Unversioned":
            query = query.where(packages_t.c.version.is_(None))
    if params.get("ModelApprovalStatus"):
        query = query.where(packages_t.c.approval_status == params["ModelApprovalStatus"])
    query = _filter_common(query, packages_t, params)
    if params.get("SortBy") == "Name":
        keys = [packages_t.c.name_key, packages_t.c.version, packages_t.c.package_id]
    else:
        keys = [packages_t.c.created_at, packages_t.c.version, packages_t.c.package_id]
    rows = conn.execute(query.order_by(*_ordered(keys, params)).limit(limit + 1).offset(offset)).all()
    return sql_page(rows, offset, limit, scope)


# ------------------------------------------------------------------------------------------ events
def record_state_change(conn: Connection, package: Row[Any], now: datetime) -> None:
    """Queue a "SageMaker Model Package State Change" event in the caller's transaction."""
    conn.execute(insert(events_t).values(
        account_id=package.account_id, region=package.region, source="aws.sagemaker", detail_type=STATE_CHANGE,
        resources=[package.arn], detail=views.event_detail(package), created_at=now, dispatched_at=None))


def pending_events(conn: Connection, limit: int = 100) -> list[Row[Any]]:
    """Undelivered events, oldest first (for the event bus)."""
    return list(conn.execute(select(events_t).where(events_t.c.dispatched_at.is_(None))
                             .order_by(events_t.c.event_id).limit(limit)).all())


def mark_dispatched(conn: Connection, event_ids: list[int], now: datetime) -> None:
    conn.execute(update(events_t).where(events_t.c.event_id.in_(event_ids)).values(dispatched_at=now))


# ------------------------------------------------------------------------------------ search rows
def group_rows(conn: Connection, account: str, region: str) -> list[Row[Any]]:
    return list(conn.execute(select(groups_t).where((groups_t.c.account_id == account)
                                                    & (groups_t.c.region == region))).all())


def package_rows(conn: Connection, account: str, region: str) -> list[tuple[Row[Any], list[dict[str, str]]]]:
    """Packages with the tags that apply to them (a version's are its group's)."""
    group_tags = {g.group_id: list(g.tags or []) for g in group_rows(conn, account, region)}
    rows = conn.execute(select(packages_t).where((packages_t.c.account_id == account)
                                                 & (packages_t.c.region == region))).all()
    return [(r, group_tags.get(r.group_id, []) if r.group_id else list(r.tags or [])) for r in rows]
