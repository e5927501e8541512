"""Pipeline step handlers for the "RegisterModel" and "Model" step types.

RegisterModel: the step's Arguments are a CreateModelPackage request (as the SDK's RegisterModel /
ModelStep(register) compiles it). As in SageMaker, a missing group in the pipeline's own account is
created; a group in another account must exist and its resource policy must let the pipeline's
role create versions in it. The version records GeneratedBy = the execution ARN.

Model: the Arguments are a CreateModel request without ModelName; the name is derived from the
execution and step ("pipelines-<execution id>-<step>-<suffix>"), so a step re-run after a crash
finds the model it already created instead of making a second one.

Both run once per execution step: a step re-run after the result was committed but before the
engine recorded it gets the same resource back.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from stratum.engine.handlers import StepResult, StepRun
from stratum.policy import AuthzRequest, Caller, PolicySet, evaluate
from stratum.protocol.errors import ServiceError
from stratum.protocol.service_models import service_model
from stratum.protocol.validate import validate_input
from stratum.services.sagemaker import idempotency
from stratum.services.sagemaker import tags as tagging
from stratum.services.sagemaker.registry import errors as registry_errors
from stratum.services.sagemaker.registry import store, views
from stratum.services.sagemaker.registry.refs import parse_group, parse_package

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_NOT_NAME_CHARS = re.compile(r"[^a-zA-Z0-9]+")
MODEL_NAME_MAX = 63


def _now() -> datetime:
    return datetime.now(UTC)


def _failed(exc: ServiceError) -> StepResult:
    error_type = "Step.SERVICE_FAULT" if exc.status >= 500 else None
    return StepResult("Failed", failure_reason=f"{exc.code}: {exc.message}", error_type=error_type)


def jsonable(value: Any) -> Any:
    """Step properties are stored as JSON: timestamps become ISO-8601 text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def _role_user_context(run: StepRun) -> dict[str, Any]:
    """Who registered the version: the pipeline's role, as SageMaker assumes it."""
    role_name = run.role_arn.rsplit("/", 1)[-1]
    return {"IamIdentity": {"Arn": f"arn:aws:sts::{run.account_id}:assumed-role/{role_name}/SageMaker"}}


def _step_token(run: StepRun, kind: str) -> str:
    """A ledger token for this execution step (at most 128 characters)."""
    return hashlib.sha256(f"{kind}|{run.execution_arn}|{run.step_name}".encode()).hexdigest()


def role_allows(run: StepRun, action: str, resource: str, owner: str, resource_policy: str | None,
                context: dict[str, Any] | None = None) -> bool:
    """Whether the pipeline's role may act on a resource of another account (identity policies of
    the role and the resource's policy must both allow, as for any cross-account call)."""
    from stratum.auth.authorizer import cached_policy

    parts = run.role_arn.split(":")
    if len(parts) < 6 or not parts[5].startswith("role/"):
        return False
    role_account, role_name = parts[4], parts[5].rsplit("/", 1)[-1]
    identity, boundary = run.app.authorizer.principal_policies(role_account, "role", role_name)
    caller = Caller(arn=f"arn:aws:sts::{role_account}:assumed-role/{role_name}/SageMaker",
                    account=role_account, kind="assumed-role", role_arn=run.role_arn)
    request = AuthzRequest(caller=caller, action=action, resource=resource, resource_account=owner,
                           context={"aws:RequestedRegion": run.region, **(context or {})})
    policy = cached_policy(resource_policy, "resource", "resource policy") if resource_policy else None
    return evaluate(request, PolicySet(identity=identity, resource=policy, boundary=boundary)).allowed


# ------------------------------------------------------------------------------------- RegisterModel
def _register_request(run: StepRun) -> dict[str, Any]:
    request = {k: v for k, v in dict(run.arguments or {}).items() if v is not None}
    # The SDK drops these from definitions (the service sets them); ignore them if present.
    request.pop("CertifyForMarketplace", None)
    request.pop("ClientToken", None)
    validate_input(service_model("sagemaker").operation_model("CreateModelPackage").input_shape, request)
    store.check_create_request(request, versioned=bool(request.get("ModelPackageGroupName")))
    tagging.check_tags(request.get("Tags") or [])
    metadata = dict(request.get("MetadataProperties") or {})
    metadata.setdefault("GeneratedBy", run.execution_arn)
    request["MetadataProperties"] = metadata
    return request


def run_register_model_step(run: StepRun) -> StepResult:
    try:
        request = _register_request(run)
        description = _register(run, request)
    except ServiceError as exc:
        return _failed(exc)
    return StepResult("Succeeded", properties=jsonable(description),
                      metadata={"RegisterModel": {"Arn": description["ModelPackageArn"]}})


def _register(run: StepRun, request: dict[str, Any]) -> dict[str, Any]:
    now = _now()
    token = {"ClientRequestToken": _step_token(run, "RegisterModel")}
    created_by = _role_user_context(run)
    with run.app.db.begin() as conn:
        replay = idempotency.recall(conn, run.account_id, run.region, "RegisterModelStep", token, now)
        if replay is not None:
            ref = parse_package(replay["ModelPackageArn"], run.account_id, run.region)
            row = store.get_package(conn, ref) if ref is not None else None
            if row is None:
                # Registered by an earlier run of this step and deleted since.
                raise registry_errors.package_not_found(replay["ModelPackageArn"])
            return views.package_description(row)
        group = None
        group_value = request.get("ModelPackageGroupName")
        if group_value:
            ref_group = parse_group(group_value, run.account_id, run.region)
            if ref_group is None or ref_group.region != run.region:
                raise registry_errors.group_missing_for_create()
            group = store.get_group(conn, ref_group, lock=True)
            if group is None:
                if ref_group.account_id != run.account_id:
                    raise registry_errors.group_missing_for_create()
                # SageMaker creates the group the first time a pipeline registers into it.
                group = store.create_group(conn, account=run.account_id, region=run.region, name=ref_group.name,
                                           description=None, tags=[], managed=None, created_by=created_by, now=now)
            if group.account_id != run.account_id:
                target = store.next_version_arn(group)
                context = tagging.resource_tag_context(group.tags) or {}
                if request.get("ModelApprovalStatus"):
                    context["sagemaker:ModelApprovalStatus"] = request["ModelApprovalStatus"]
                if not role_allows(run, "sagemaker:CreateModelPackage", target, group.account_id,
                                   group.resource_policy, context):
                    raise ServiceError("AccessDeniedException", f"{run.role_arn} is not authorized to perform: "
                                       f"sagemaker:CreateModelPackage on resource: {target}")
        owner = group.account_id if group is not None else run.account_id
        row = store.create_package(conn, account=owner, region=run.region, group=group, request=request,
                                   created_by=created_by, now=now)
        idempotency.remember(conn, run.account_id, run.region, "RegisterModelStep", token,
                             {"ModelPackageArn": row.arn}, now)
        return views.package_description(row)


# ---------------------------------------------------------------------------------------------- Model
def model_name_for(run: StepRun) -> str:
    """pipelines-<execution id>-<step name>-<10 characters>, within CreateModel's 63 characters;
    the suffix is derived from the execution step, so a re-run names the same model."""
    digest = int.from_bytes(hashlib.sha256(f"{run.execution_arn}|{run.step_name}".encode()).digest()[:8], "big")
    suffix = ""
    for _ in range(10):
        digest, r = divmod(digest, 36)
        suffix += _BASE36[r]
    step = _NOT_NAME_CHARS.sub("-", run.step_name).strip("-") or "Model"
    head = f"pipelines-{run.execution_id}-"
    room = MODEL_NAME_MAX - len(head) - len(suffix) - 1
    step = step[:max(room, 1)].strip("-") or "M"
    return f"{head}{step}-{suffix}"


def _model_access(run: StepRun) -> Any:
    """CreateModel's lookups made as the pipeline's role (SageMaker calls CreateModel with it)."""
    from stratum.services.sagemaker.jobs.model_access import RequestModelAccess, role_context

    ctx = role_context(run.app, run.role_arn, run.region, "sagemaker", "CreateModel")
    return RequestModelAccess(ctx) if ctx is not None else None


def run_model_step(run: StepRun) -> StepResult:
    # Imported here: the jobs package (models, endpoints) is not needed by the registry itself.
    from stratum.jobs import models

    request = {k: v for k, v in dict(run.arguments or {}).items() if v is not None}
    request.setdefault("ModelName", model_name_for(run))
    try:
        validate_input(service_model("sagemaker").operation_model("CreateModel").input_shape, request)
        try:
            description = models.describe_model(run.app.db, run.account_id, run.region, request["ModelName"])
        except ServiceError:
            description = None  # not created yet: the usual case
        if description is None:
            models.create_model(run.app.db, run.account_id, run.region, request, access=_model_access(run))
            description = models.describe_model(run.app.db, run.account_id, run.region, request["ModelName"])
    except ServiceError as exc:
        return _failed(exc)
    description = models.public(description)
    return StepResult("Succeeded", properties=jsonable(description),
                      metadata={"Model": {"Arn": description["ModelArn"]}})
