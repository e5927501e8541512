"""SageMaker models (CreateModel / DescribeModel / ListModels / DeleteModel).

A model's containers are resolved when it is created, as SageMaker does: a container given by
``ModelPackageName`` takes the package's InferenceSpecification container(s) (Image, ModelDataUrl,
Environment) — several when the package is an inference pipeline — which needs
sagemaker:DescribeModelPackage on the package (across accounts, through its group's resource
policy) and, for a versioned package, ModelApprovalStatus Approved. Every ModelDataUrl must exist
and be readable by the model's execution role. The resolution is stored with the model:
DescribeModel shows the request as given (``ModelPackageName`` only), ``containers_of`` returns
what runs.

``create_model`` and ``describe_model`` are also the entry points of the pipeline Model step and
of transform jobs: they take plain account/region arguments; the caller's rights come in through
a ``ModelAccess`` (the API's request context, or the pipeline's role).
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError

from stratum.jobs import store, views
from stratum.protocol.errors import ServiceError
from stratum.store.db import Database

REQUEST_KEYS = ("PrimaryContainer", "Containers", "InferenceExecutionConfig", "ExecutionRoleArn", "VpcConfig",
                "EnableNetworkIsolation")
# Where the row keeps the resolved containers (never part of a DescribeModel response).
RESOLVED = "StratumResolvedContainers"
MAX_CONTAINERS = 15
ENVIRONMENT_LIMIT = 32 * 1024


def validation(message: str) -> ServiceError:
    return ServiceError("ValidationException", message, 400)


def model_not_found(arn: str) -> ServiceError:
    return validation(f'Could not find model "{arn}".')


class ModelAccess(Protocol):
    """What creating a model looks up on behalf of its caller."""

    def describe_package(self, name: str) -> dict[str, Any]:
        """DescribeModelPackage of ``name`` as the caller (raises its AccessDenied / not-found error)."""

    def check_model_data(self, url: str, role_arn: str | None) -> None:
        """Raise ValidationException unless ``url`` exists and ``role_arn`` may read it."""


def _given(request: dict[str, Any]) -> list[dict[str, Any]]:
    primary = request.get("PrimaryContainer")
    return [primary] if primary else list(request.get("Containers") or [])


def check_request(request: dict[str, Any]) -> None:
    """The checks that need no lookup (shape validation has already run)."""
    primary, containers = request.get("PrimaryContainer"), request.get("Containers")
    if primary and containers:
        raise validation("Specify either PrimaryContainer or Containers, not both.")
    if not primary and not containers:
        raise validation("Either PrimaryContainer or Containers must be specified.")
    if containers and len(containers) > MAX_CONTAINERS:
        raise validation(f"A model can have at most {MAX_CONTAINERS} containers.")
    for container in _given(request):
        if not container.get("Image") and not container.get("ModelPackageName"):
            raise validation("Each container needs an Image (or a ModelPackageName).")
        if container.get("Mode") == "MultiModel" and containers and len(containers) > 1:
            raise validation("MultiModel mode is not supported for models with multiple containers.")
    mode = (request.get("InferenceExecutionConfig") or {}).get("Mode")
    if mode and not containers:
        raise validation("InferenceExecutionConfig applies to models with Containers only.")
    environment = sum(len(k) + len(v) for c in _given(request) for k, v in (c.get("Environment") or {}).items())
    if environment > ENVIRONMENT_LIMIT:
        raise validation("The combined length of the Environment keys and values of a model's containers must "
                         f"not exceed {ENVIRONMENT_LIMIT} bytes.")
    if containers:
        _check_hostnames(containers, mode or "Serial")


def _check_hostnames(containers: list[dict[str, Any]], mode: str) -> None:
    names = [c.get("ContainerHostname") for c in containers]
    given = [n for n in names if n]
    if mode == "Direct" and len(given) != len(names):
        raise validation("ContainerHostname must be specified for every container when the "
                         "InferenceExecutionConfig mode is Direct.")
    if given and len(given) != len(names):
        raise validation("If ContainerHostname is specified for any container of an inference pipeline, it must "
                         "be specified for every container.")
    if len({n.lower() for n in given}) != len(given):
        raise validation("ContainerHostname values must be unique among the containers of a model.")


def _package_containers(package: dict[str, Any], container: dict[str, Any]) -> list[dict[str, Any]]:
    arn = package["ModelPackageArn"]
    wanted = container.get("InferenceSpecificationName")
    spec = package.get("InferenceSpecification")
    if wanted:
        spec = next((s for s in package.get("AdditionalInferenceSpecifications") or [] if s.get("Name") == wanted),
                    None)
        if spec is None:
            raise validation(f"Inference specification {wanted} was not found in model package {arn}.")
    if not spec or not spec.get("Containers"):
        raise validation(f"Model package {arn} has no InferenceSpecification containers to create a model from.")
    return list(spec["Containers"])


def _resolve_package(container: dict[str, Any], access: ModelAccess) -> list[dict[str, Any]]:
    package = access.describe_package(container["ModelPackageName"])
    arn = package["ModelPackageArn"]
    status = package.get("ModelApprovalStatus")
    # Versioned packages (model registry) must be Approved to be deployed; unversioned ones
    # (Marketplace-style) have no approval status.
    if package.get("ModelPackageGroupName") and status != "Approved":
        raise validation(f"Model package {arn} has ModelApprovalStatus {status}: a model package version must be "
                         "Approved to create a model from it.")
    resolved = []
    for spec in _package_containers(package, container):
        env = {**(spec.get("Environment") or {}), **(container.get("Environment") or {})}
        one = {"Image": spec.get("Image"), "ModelDataUrl": spec.get("ModelDataUrl") or container.get("ModelDataUrl"),
               "Environment": env, "ContainerHostname": container.get("ContainerHostname") or spec.get(
                   "ContainerHostname"), "Mode": container.get("Mode") or "SingleModel",
               "ImageConfig": container.get("ImageConfig"), "ModelPackageName": arn}
        resolved.append({k: v for k, v in one.items() if v is not None})
    return resolved


def resolve_containers(request: dict[str, Any], access: ModelAccess) -> list[dict[str, Any]]:
    """The containers the model runs, in order: packages expanded, model data checked as the
    execution role. Raises the ValidationException / AccessDenied SageMaker answers CreateModel with."""
    resolved: list[dict[str, Any]] = []
    for container in _given(request):
        if container.get("ModelPackageName"):
            resolved.extend(_resolve_package(container, access))
        else:
            one = {k: container[k] for k in ("ContainerHostname", "Image", "ImageConfig", "ModelDataUrl",
                                              "ModelDataSource", "Environment", "MultiModelConfig")
                   if container.get(k) is not None}
            one["Mode"] = container.get("Mode") or "SingleModel"
            resolved.append(one)
    role = request.get("ExecutionRoleArn")
    for one in resolved:
        url = one.get("ModelDataUrl")
        # A MultiModel container's ModelDataUrl is a prefix the models are loaded from on demand.
        if url and one["Mode"] != "MultiModel":
            access.check_model_data(url, role)
    if len(resolved) > MAX_CONTAINERS:
        raise validation(f"A model can have at most {MAX_CONTAINERS} containers.")
    if len(resolved) > 1:
        # A package that is an inference pipeline makes the model one: the containers get the
        # names SageMaker gives by position when none were given.
        if not all(c.get("ContainerHostname") for c in resolved):
            for i, one in enumerate(resolved):
                one["ContainerHostname"] = f"container-{i + 1}"
        _check_hostnames(resolved, (request.get("InferenceExecutionConfig") or {}).get("Mode") or "Serial")
    return resolved


def create_model(db: Database, account: str, region: str, request: dict[str, Any],
                 tags: list[dict[str, str]] | None = None, access: ModelAccess | None = None) -> dict[str, Any]:
    """Store a model; returns {"ModelArn": ...}. Raises ValidationException for a taken name.

    Without ``access`` nothing is looked up: containers given by ModelPackageName stay unresolved
    (for callers that have resolved them already or never run the model)."""
    check_request(request)
    name = request["ModelName"]
    arn = store.model_arn(region, account, name)
    body = {k: request[k] for k in REQUEST_KEYS if request.get(k) is not None}
    with db.read() as conn:
        if store.get_model(conn, account, region, name) is not None:
            raise validation(f'Cannot create already existing model "{arn}".')
    if access is not None:
        body[RESOLVED] = resolve_containers(request, access)
    try:
        with db.begin() as conn:
            if store.get_model(conn, account, region, name) is not None:
                raise validation(f'Cannot create already existing model "{arn}".')
            store.insert_model(conn, {"account_id": account, "region": region, "name_key": name.lower(),
                                      "name": name, "arn": arn, "request": body, "tags": tags or [],
                                      "created_at": store.now()})
    except IntegrityError:
        raise validation(f'Cannot create already existing model "{arn}".') from None
    return {"ModelArn": arn}


def describe_model(db: Database, account: str, region: str, name: str) -> dict[str, Any]:
    """The DescribeModel response with the resolved containers under ``RESOLVED`` (for
    ``containers_of``; strip it with ``public`` before showing it); raises "Could not find model"."""
    with db.read() as conn:
        row = store.get_model(conn, account, region, name)
    if row is None:
        raise model_not_found(store.model_arn(region, account, name))
    return runtime_description(row)


def runtime_description(row: Row[Any]) -> dict[str, Any]:
    """DescribeModel of a stored row plus its resolved containers."""
    out = views.model_description(row)
    out[RESOLVED] = containers_of(row)
    return out


def public(description: dict[str, Any]) -> dict[str, Any]:
    """A description as DescribeModel shows it."""
    return {k: v for k, v in description.items() if k != RESOLVED}


def containers_of(model: dict[str, Any] | Row[Any]) -> list[dict[str, Any]]:
    """The containers a model runs, in order, each as the runtime needs it: Image, ModelDataUrl,
    Environment, ContainerHostname, Mode — resolved (a ModelPackageName container has its
    package's image and model data). ``model`` is ``describe_model``'s result or a stored row.
    Hosting and batch transform both start model servers from this list."""
    source: Any = model.request if isinstance(model, Row) else model
    resolved = source.get(RESOLVED)
    if resolved is not None:
        return [dict(c) for c in resolved]
    # A model stored before resolution was recorded, or a bare DescribeModel response.
    return [dict(c) for c in _given(source)]
