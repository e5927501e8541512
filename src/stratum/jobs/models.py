"""SageMaker models (CreateModel / DescribeModel / ListModels / DeleteModel).

``create_model`` and ``describe_model`` are also the entry points of the pipeline Model step and
of transform jobs: they take plain account/region arguments and do no authorization.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from stratum.jobs import store, views
from stratum.protocol.errors import ServiceError
from stratum.store.db import Database

REQUEST_KEYS = ("PrimaryContainer", "Containers", "InferenceExecutionConfig", "ExecutionRoleArn", "VpcConfig",
                "EnableNetworkIsolation")


def validation(message: str) -> ServiceError:
    return ServiceError("ValidationException", message, 400)


def model_not_found(arn: str) -> ServiceError:
    return validation(f'Could not find model "{arn}".')


def check_request(request: dict[str, Any]) -> None:
    primary, containers = request.get("PrimaryContainer"), request.get("Containers")
    if primary and containers:
        raise validation("Specify either PrimaryContainer or Containers, not both.")
    if not primary and not containers:
        raise validation("Either PrimaryContainer or Containers must be specified.")
    if containers and len(containers) > 15:
        raise validation("A model can have at most 15 containers.")
    for container in [primary] if primary else containers or []:
        if not container.get("Image") and not container.get("ModelPackageName"):
            raise validation("Each container needs an Image (or a ModelPackageName).")
    mode = (request.get("InferenceExecutionConfig") or {}).get("Mode")
    if mode and not containers:
        raise validation("InferenceExecutionConfig applies to models with Containers only.")


def create_model(db: Database, account: str, region: str, request: dict[str, Any],
                 tags: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """Store a model; returns {"ModelArn": ...}. Raises ValidationException for a taken name."""
    check_request(request)
    name = request["ModelName"]
    arn = store.model_arn(region, account, name)
    body = {k: request[k] for k in REQUEST_KEYS if request.get(k) is not None}
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
    """The DescribeModel response; raises ValidationException "Could not find model"."""
    with db.read() as conn:
        row = store.get_model(conn, account, region, name)
    if row is None:
        raise model_not_found(store.model_arn(region, account, name))
    return views.model_description(row)


def containers_of(model: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers a model runs, in order (one for a PrimaryContainer model), each as the runtime
    needs it: Image, ModelDataUrl, Environment, ContainerHostname, Mode. Hosting and batch transform
    both start model servers from this list."""
    primary = model.get("PrimaryContainer")
    containers = [primary] if primary else list(model.get("Containers") or [])
    return [dict(c) for c in containers]
