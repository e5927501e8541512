"""Pipeline step handlers for Processing, Training, Transform and Tuning steps.

A step's Arguments are the Create*Job request without the job name. The job is named
deterministically per (execution, step, attempt) — the engine's ``extra["job_name"]``, else
"pipelines-<execution id>-<step>-<hash>" — so a handler resumed after a restart finds its job and
waits for it instead of starting another. The job runs with the request's own RoleArn (the
pipeline's role when the step does not name one); the step ends with the Describe*Job response as
its properties.
"""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Any

from sqlalchemy import Row

from stratum.engine.handlers import StepResult, StepRun
from stratum.jobs import requests, store, views
from stratum.jobs.requests import NAME_PARAM
from stratum.jobs.service import RESTART_REASON, get_service
from stratum.protocol.errors import ServiceError
from stratum.protocol.service_models import service_model
from stratum.protocol.validate import validate_input

OPERATION = {"processing": "CreateProcessingJob", "training": "CreateTrainingJob", "transform": "CreateTransformJob",
             "tuning": "CreateHyperParameterTuningJob"}
METADATA_KEY = {"processing": "ProcessingJob", "training": "TrainingJob", "transform": "TransformJob",
                "tuning": "TuningJob"}
NAME_LIMIT = {"processing": 63, "training": 63, "transform": 63, "tuning": 32}
INTERNAL_ERROR = "SageMaker.JOB_INTERNAL_ERROR"
_NOT_NAME = re.compile(r"[^a-zA-Z0-9-]+")
_WAIT_SLICE = 0.5


def job_name_for(run: StepRun, kind: str) -> str:
    """A name unique per (execution, step, attempt) and stable across restarts."""
    limit = NAME_LIMIT[kind]
    name = str(run.extra.get("job_name") or "")
    if not name:
        digest = hashlib.sha256(f"{run.execution_arn}|{run.step_name}|{run.attempt}".encode()).hexdigest()[:10]
        step = _NOT_NAME.sub("-", run.step_name).strip("-") or "step"
        head = f"pipelines-{run.execution_id}-"
        step = step[:max(1, 63 - len(head) - len(digest) - 1)].strip("-") or "s"
        name = f"{head}{step}-{digest}"
    if len(name) > limit:
        name = "pipelines-" + hashlib.sha256(name.encode()).hexdigest()[:limit - 10]
    return name


def _request(run: StepRun, kind: str, name: str) -> dict[str, Any]:
    request = {k: v for k, v in dict(run.arguments or {}).items() if v is not None}
    request[NAME_PARAM[kind]] = name
    if kind in ("processing", "training") and not request.get("RoleArn"):
        request["RoleArn"] = run.role_arn
    if kind == "tuning":
        for definition in ([request.get("TrainingJobDefinition")] if request.get("TrainingJobDefinition")
                           else request.get("TrainingJobDefinitions") or []):
            definition.setdefault("RoleArn", run.role_arn)
    validate_input(service_model("sagemaker").operation_model(OPERATION[kind]).input_shape, request)
    return request


def _failed(reason: str, error_type: str | None = None) -> StepResult:
    return StepResult("Failed", failure_reason=reason, error_type=error_type)


def run_job_step(run: StepRun, kind: str) -> StepResult:
    service = get_service(run.app)
    name = job_name_for(run, kind)
    try:
        request = _request(run, kind, name)
        with run.app.db.read() as conn:
            row = store.get_job(conn, run.account_id, run.region, kind, name)
        if row is None:
            prepared = requests.prepare(run.app.db, kind, run.account_id, run.region, request)
            body = {k: v for k, v in request.items() if k not in ("Tags", NAME_PARAM[kind])}
            try:
                row = service.create(kind=kind, account=run.account_id, region=run.region, name=name, request=body,
                                     tags=list(request.get("Tags") or []), role_arn=prepared.role_arn,
                                     context=prepared.context)
            except ServiceError as exc:
                if exc.code != "ResourceInUse":
                    raise
                with run.app.db.read() as conn:  # created meanwhile by an earlier run of this step
                    row = store.get_job(conn, run.account_id, run.region, kind, name)
                if row is None:
                    raise
    except ServiceError as exc:
        return _failed(f"{exc.code}: {exc.message}", "Step.SERVICE_FAULT" if exc.status >= 500 else None)
    metadata = {METADATA_KEY[kind]: {"Arn": row.arn}}
    run.set_metadata(metadata)
    final = _wait(run, service, row)
    if final is None:  # the server is shutting down: the engine resumes the step after the restart
        return _failed("Stratum is shutting down; the step resumes after the restart", INTERNAL_ERROR)
    properties = views.jsonable(views.describe(final))
    status = final.status
    if status == "Completed":
        return StepResult("Succeeded", properties=properties, metadata=metadata)
    if status == "Stopped" and run.stop_event.is_set():
        return StepResult("Stopped", properties=properties, metadata=metadata,
                          failure_reason=final.failure_reason)
    reason = final.failure_reason or f"{METADATA_KEY[kind]} {final.name} ended with status {status}" + (
        f" ({final.secondary_status})" if final.secondary_status and final.secondary_status != status else "")
    internal = reason.startswith("InternalServerError") or reason == RESTART_REASON
    return StepResult("Failed", properties=properties, metadata=metadata, failure_reason=reason,
                      error_type=INTERNAL_ERROR if internal else None)


def _wait(run: StepRun, service: Any, row: Row[Any]) -> Row[Any] | None:
    shutdown: threading.Event | None = run.extra.get("shutdown")
    stop_sent = False
    while True:
        final = service.wait(row.job_id, timeout=_WAIT_SLICE, poll=_WAIT_SLICE)
        if final is not None:
            return final
        if shutdown is not None and shutdown.is_set():
            return None
        if run.stop_event.is_set() and not stop_sent:
            service.stop_by_id(row.job_id)
            stop_sent = True


def run_processing_step(run: StepRun) -> StepResult:
    return run_job_step(run, "processing")


def run_training_step(run: StepRun) -> StepResult:
    return run_job_step(run, "training")


def run_transform_step(run: StepRun) -> StepResult:
    return run_job_step(run, "transform")


def run_tuning_step(run: StepRun) -> StepResult:
    return run_job_step(run, "tuning")
