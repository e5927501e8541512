"""Checking a Create*Job request and working out what its run needs (execution role, captured
context), shared by the API handlers and the pipeline step handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stratum.jobs import models, store, tuning, validation, views
from stratum.store.db import Database

NAME_PARAM = {"processing": "ProcessingJobName", "training": "TrainingJobName", "transform": "TransformJobName",
              "tuning": "HyperParameterTuningJobName"}


@dataclass
class Prepared:
    role_arn: str | None
    context: dict[str, Any] | None = None
    # Transform jobs run with the model's role, which was passed when the model was created.
    passes_role: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def prepare(db: Database, kind: str, account: str, region: str, request: dict[str, Any]) -> Prepared:
    """Raise the ValidationException SageMaker would; return the run's role and context."""
    if kind == "processing":
        validation.check_processing(request)
        return Prepared(request["RoleArn"])
    if kind == "training":
        validation.check_training(request)
        return Prepared(request["RoleArn"])
    if kind == "tuning":
        tuning.check_request(request)
        definition = tuning.definition_of(request)
        validation.check_training({**definition, "HyperParameters": definition.get("StaticHyperParameters")})
        return Prepared(definition.get("RoleArn"))
    validation.check_transform(request)
    with db.read() as conn:
        model = store.get_model(conn, account, region, request["ModelName"])
    if model is None:
        raise models.model_not_found(store.model_arn(region, account, request["ModelName"]))
    description = views.jsonable(models.runtime_description(model))
    return Prepared(model.request.get("ExecutionRoleArn"), {"Model": description}, passes_role=False)
