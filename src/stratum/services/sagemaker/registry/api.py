"""SageMaker API: the model registry (model package groups, model packages and group policies).

Lookups follow SageMaker: a plain name means the caller's account, an ARN the owner's. Every
handler authorizes on the resource's ARN with its tags (a version takes its group's) and with the
group's resource policy, which is what lets another account read a group or register versions
into it (hub and spoke). A missing resource is authorized first, so a caller without permission
cannot probe which groups exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row

from stratum.policy import MalformedPolicyDocument, parse_policy
from stratum.protocol.errors import ServiceError
from stratum.server.context import Provider, RequestContext
from stratum.services.sagemaker import errors, idempotency
from stratum.services.sagemaker import tags as tagging
from stratum.services.sagemaker.paging import page_window, slice_page
from stratum.services.sagemaker.registry import errors as registry_errors
from stratum.services.sagemaker.registry import search_tags as _search_tags  # noqa: F401  (registers sources)
from stratum.services.sagemaker.registry import store, views
from stratum.services.sagemaker.registry.refs import (
    GroupRef,
    group_arn,
    package_pattern_arn,
    parse_group,
    parse_package,
    unversioned_package_arn,
    versioned_package_arn,
)

_ACTION = "sagemaker:"


def _now() -> datetime:
    return datetime.now(UTC)


def user_context(ctx: RequestContext) -> dict[str, Any]:
    """CreatedBy / LastModifiedBy."""
    return {"IamIdentity": {"Arn": ctx.identity.arn, "PrincipalId": ctx.identity.principal_id}}


def _approval_context(params: dict[str, Any]) -> dict[str, Any]:
    """sagemaker:ModelApprovalStatus, so policies can reserve approval to some principals."""
    status = params.get("ModelApprovalStatus")
    return {"sagemaker:ModelApprovalStatus": status} if status else {}


def _policy_error(exc: MalformedPolicyDocument) -> ServiceError:
    return errors.validation(f"The resource policy is not valid: {exc}")


def lookup_package(ctx: RequestContext, conn: Connection, operation: str, value: str, *, lock: bool = False,
                   extra: dict[str, Any] | None = None) -> Row[Any]:
    """The model package ``value`` names (name, "<group>/<n>" or ARN), authorized for ``operation``
    with its group's tags and resource policy (the cross-account grant). CreateModel uses it too:
    a container given by ModelPackageName needs sagemaker:DescribeModelPackage on the package."""
    ref = parse_package(value, ctx.account_id, ctx.region)
    if ref is None:
        raise registry_errors.package_not_found(value)
    if ref.region != ctx.region:
        raise registry_errors.package_not_found(ref.arn)
    row = store.get_package(conn, ref, lock=lock)
    group = None
    if row is not None and row.group_id is not None:
        group = store.get_group_by_id(conn, row.group_id)
    elif row is None and ref.version is not None:
        # A version that does not exist is still governed by its group's policy.
        group = store.get_group(conn, GroupRef(ref.account_id, ref.region, ref.name))
    tags = group.tags if group is not None else (row.tags if row is not None else None)
    policy = group.resource_policy if group is not None else None
    context = {**(tagging.resource_tag_context(tags) or {}), **(extra or {})}
    ctx.authorize(_ACTION + operation, row.arn if row is not None else ref.arn, resource_account=ref.account_id,
                  resource_policy=policy, context=context or None)
    if row is None:
        raise registry_errors.package_not_found(ref.arn)
    return row


class RegistryApi(Provider):
    """Operations are methods named after the API operation in snake_case (see Provider)."""

    # ------------------------------------------------------------------------------------ plumbing
    @contextmanager
    def _registry_write(self) -> Iterator[Connection]:
        with self.app.db.begin() as conn:
            yield conn

    @contextmanager
    def _registry_read(self) -> Iterator[Connection]:
        with self.app.db.read() as conn:
            yield conn

    @staticmethod
    def _registry_authorize(ctx: RequestContext, operation: str, arn: str, owner: str,
                            tags: list[dict[str, str]] | None = None, policy: str | None = None,
                            extra: dict[str, Any] | None = None) -> None:
        context = {**(tagging.resource_tag_context(tags) or {}), **(extra or {})}
        ctx.authorize(_ACTION + operation, arn, resource_account=owner, resource_policy=policy,
                      context=context or None)

    @staticmethod
    def _group_ref(ctx: RequestContext, value: str) -> GroupRef:
        ref = parse_group(value, ctx.account_id, ctx.region)
        if ref is None:
            raise registry_errors.group_not_found(value)
        if ref.region != ctx.region:
            raise registry_errors.group_not_found(ref.arn)
        return ref

    def _group(self, ctx: RequestContext, conn: Connection, operation: str, value: str,
               lock: bool = False) -> Row[Any]:
        ref = self._group_ref(ctx, value)
        row = store.get_group(conn, ref, lock=lock)
        if row is None:
            self._registry_authorize(ctx, operation, ref.arn, ref.account_id)
            raise registry_errors.group_not_found(ref.arn)
        self._registry_authorize(ctx, operation, row.arn, row.account_id, row.tags, row.resource_policy)
        return row

    @staticmethod
    def _package(ctx: RequestContext, conn: Connection, operation: str, value: str, lock: bool = False,
                 extra: dict[str, Any] | None = None) -> Row[Any]:
        return lookup_package(ctx, conn, operation, value, lock=lock, extra=extra)

    # -------------------------------------------------------------------------------------- groups
    def create_model_package_group(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["ModelPackageGroupName"]
        arn = group_arn(ctx.region, ctx.account_id, name)
        tags = params.get("Tags") or []
        tagging.authorize_create(ctx, "CreateModelPackageGroup", arn, tags)
        with self._registry_write() as conn:
            row = store.create_group(
                conn, account=ctx.account_id, region=ctx.region, name=name,
                description=params.get("ModelPackageGroupDescription"), tags=tagging.merged([], tags),
                managed=params.get("ManagedConfiguration"), created_by=user_context(ctx), now=_now())
        return {"ModelPackageGroupArn": row.arn}

    def describe_model_package_group(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._registry_read() as conn:
            row = self._group(ctx, conn, "DescribeModelPackageGroup", params["ModelPackageGroupName"])
        return views.group_description(row)

    def list_model_package_groups(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(_ACTION + "ListModelPackageGroups", "*")
        if params.get("CrossAccountFilterOption") == "CrossAccount":
            return self._shared_groups(ctx, params)
        with self._registry_read() as conn:
            rows, token = store.list_groups(conn, ctx.account_id, ctx.region, params)
        return {"ModelPackageGroupSummaryList": [views.group_summary(r) for r in rows], "NextToken": token}

    def _shared_groups(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """Groups of other accounts whose resource policy lets the caller describe them."""
        scope = {"k": "shared-model-package-groups", "o": (ctx.account_id, ctx.region),
                 **{k: v for k, v in params.items() if k not in ("NextToken", "MaxResults")}}
        offset, limit = page_window(params, scope)
        with self._registry_read() as conn:
            candidates = store.policy_groups(conn, ctx.account_id, ctx.region, params)
        visible = []
        for row in candidates:
            _, decision = ctx.app.authorizer.check(
                ctx, _ACTION + "DescribeModelPackageGroup", row.arn, resource_account=row.account_id,
                resource_policy=row.resource_policy, context=tagging.resource_tag_context(row.tags))
            if decision.allowed:
                visible.append(row)
        page, token = slice_page(visible, offset, limit, scope)
        return {"ModelPackageGroupSummaryList": [views.group_summary(r) for r in page], "NextToken": token}

    def delete_model_package_group(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._registry_write() as conn:
            row = self._group(ctx, conn, "DeleteModelPackageGroup", params["ModelPackageGroupName"], lock=True)
            store.delete_group(conn, row)
        return {}

    # ------------------------------------------------------------------------------ group policies
    def put_model_package_group_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        document = params["ResourcePolicy"]
        with self._registry_write() as conn:
            row = self._group(ctx, conn, "PutModelPackageGroupPolicy", params["ModelPackageGroupName"], lock=True)
            try:
                # The same parser and rules as every other resource policy: a Principal in each
                # statement, known condition operators, well-formed ARNs.
                parse_policy(document, kind="resource")
            except MalformedPolicyDocument as exc:
                raise _policy_error(exc) from None
            store.set_group_policy(conn, row, document)
        return {"ModelPackageGroupArn": row.arn}

    def get_model_package_group_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._registry_read() as conn:
            row = self._group(ctx, conn, "GetModelPackageGroupPolicy", params["ModelPackageGroupName"])
        if not row.resource_policy:
            raise registry_errors.no_group_policy(row.arn)
        return {"ResourcePolicy": row.resource_policy}

    def delete_model_package_group_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._registry_write() as conn:
            row = self._group(ctx, conn, "DeleteModelPackageGroupPolicy", params["ModelPackageGroupName"],
                              lock=True)
            store.set_group_policy(conn, row, None)
        return {}

    # ------------------------------------------------------------------------------------ packages
    def create_model_package(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        group_value = params.get("ModelPackageGroupName")
        store.check_create_request(params, versioned=bool(group_value))
        tags = params.get("Tags") or []
        tagging.check_tags(tags)
        extra = {**_approval_context(params), **tagging.request_tag_context(tags)}
        # boto3 fills ClientToken in; the shared ledger keys on ClientRequestToken.
        token_params = {k: v for k, v in params.items() if k != "ClientToken"}
        token_params["ClientRequestToken"] = params.get("ClientToken")
        now = _now()
        with self._registry_write() as conn:
            group = None
            if group_value:
                ref = self._group_ref(ctx, group_value)
                group = store.get_group(conn, ref, lock=True)
                if group is None:
                    first = versioned_package_arn(ref.region, ref.account_id, ref.name, 1)
                    self._registry_authorize(ctx, "CreateModelPackage", first, ref.account_id, extra=extra)
                    raise registry_errors.group_missing_for_create()
                # Authorized on the ARN the version will get, so a policy on model-package/<group>/*
                # (the documented cross-account grant) covers it.
                self._registry_authorize(ctx, "CreateModelPackage", store.next_version_arn(group),
                                         group.account_id, group.tags, group.resource_policy, extra)
                owner = group.account_id
            else:
                owner = ctx.account_id
                arn = unversioned_package_arn(ctx.region, owner, params["ModelPackageName"])
                self._registry_authorize(ctx, "CreateModelPackage", arn, owner, extra=extra)
                if tags:
                    self._registry_authorize(ctx, "AddTags", arn, owner, extra=extra)
            replay = idempotency.recall(conn, ctx.account_id, ctx.region, "CreateModelPackage", token_params, now)
            if replay is not None:
                return replay
            row = store.create_package(conn, account=owner, region=ctx.region, group=group,
                                       request={**params, "Tags": tagging.merged([], tags)},
                                       created_by=user_context(ctx), now=now)
            result = {"ModelPackageArn": row.arn}
            idempotency.remember(conn, ctx.account_id, ctx.region, "CreateModelPackage", token_params, result, now)
        return result

    def describe_model_package(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._registry_read() as conn:
            row = self._package(ctx, conn, "DescribeModelPackage", params["ModelPackageName"])
        return views.package_description(row)

    def batch_describe_model_package(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        summaries: dict[str, Any] = {}
        failures: dict[str, Any] = {}
        with self._registry_read() as conn:
            for arn in params["ModelPackageArnList"]:
                ref = parse_package(arn, ctx.account_id, ctx.region)
                if ref is not None and ref.version is None:
                    failures[arn] = {"ErrorCode": "ValidationException",
                                     "ErrorResponse": f"{arn} is not a versioned model package."}
                    continue
                try:
                    row = self._package(ctx, conn, "BatchDescribeModelPackage", arn)
                except ServiceError as exc:
                    failures[arn] = {"ErrorCode": exc.code, "ErrorResponse": exc.message}
                    continue
                summaries[arn] = views.batch_summary(row)
        if not ctx.authorized:
            # No entry was authorized: a caller without the permission at all is refused outright.
            ctx.authorize(_ACTION + "BatchDescribeModelPackage", "*")
        return {"ModelPackageSummaries": summaries, "BatchDescribeModelPackageErrorMap": failures}

    def list_model_packages(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        group_value = params.get("ModelPackageGroupName")
        owner = ctx.account_id
        with self._registry_read() as conn:
            group = None
            if group_value:
                ref = self._group_ref(ctx, group_value)
                owner = ref.account_id
                group = store.get_group(conn, ref)
                if group is None:
                    self._registry_authorize(ctx, "ListModelPackages",
                                             package_pattern_arn(ref.region, ref.account_id, ref.name), owner)
                else:
                    # The documented cross-account grant puts ListModelPackages on
                    # model-package/<group>/*: authorize on that pattern.
                    self._registry_authorize(ctx, "ListModelPackages",
                                             package_pattern_arn(group.region, group.account_id, group.name),
                                             owner, group.tags, group.resource_policy)
            else:
                ctx.authorize(_ACTION + "ListModelPackages", "*")
            rows, token = store.list_packages(conn, owner, ctx.region, params, group, bool(group_value))
        return {"ModelPackageSummaryList": [views.package_summary(r) for r in rows], "NextToken": token}

    def update_model_package(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._registry_write() as conn:
            row = self._package(ctx, conn, "UpdateModelPackage", params["ModelPackageArn"], lock=True,
                                extra=_approval_context(params))
            store.update_package(conn, row, params, user_context(ctx), _now())
        return {"ModelPackageArn": row.arn}

    def delete_model_package(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._registry_write() as conn:
            row = self._package(ctx, conn, "DeleteModelPackage", params["ModelPackageName"], lock=True)
            store.delete_package(conn, row)
        return {}

