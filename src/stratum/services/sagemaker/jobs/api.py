"""SageMaker API: Processing, Training, Transform and hyperparameter tuning jobs, and models.

Handlers authorize sagemaker:<Operation> on the job's ARN with the service's condition keys
(sagemaker:InstanceTypes, sagemaker:VpcSubnets, sagemaker:VpcSecurityGroupIds,
sagemaker:NetworkIsolation, ...) and iam:PassRole on the execution role, then record the job and
hand it to the job service (stratum.jobs.service), which runs it in the background.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row

from stratum.auth import passrole
from stratum.jobs import models, requests, store, tuning, validation, views
from stratum.jobs.requests import NAME_PARAM
from stratum.jobs.service import JobService, get_service
from stratum.jobs.tables import sagemaker_jobs as jobs_t
from stratum.jobs.tables import sagemaker_models as models_t
from stratum.protocol.errors import ServiceError
from stratum.server.context import Provider, RequestContext
from stratum.services.sagemaker import tags as tagging
from stratum.services.sagemaker.jobs.model_access import RequestModelAccess
from stratum.services.sagemaker.paging import page_window, slice_page

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

ACTION = "sagemaker:"
OPERATION_NOUN = {"processing": "ProcessingJob", "training": "TrainingJob", "transform": "TransformJob",
                  "tuning": "HyperParameterTuningJob"}
LIST_DEFAULTS = {"processing": ("Ascending", "CreationTime"), "training": ("Ascending", "CreationTime"),
                 "transform": ("Descending", "CreationTime"), "tuning": ("Ascending", "Name")}
LIST_MEMBER = {"processing": "ProcessingJobSummaries", "training": "TrainingJobSummaries",
               "transform": "TransformJobSummaries", "tuning": "HyperParameterTuningJobSummaries"}


def check_pass_role(ctx: RequestContext, role_arn: str | None, resource_arn: str) -> None:
    """iam:PassRole on the execution role; SageMaker also checks here that the role trusts it."""
    if role_arn:
        passrole.check_pass_role(ctx, role_arn, passrole.SAGEMAKER, associated_resource_arn=resource_arn)


def job_not_found(kind: str, name: str) -> ServiceError:
    if kind == "training":
        return ServiceError("ValidationException", "Requested resource not found.", 400)
    if kind == "tuning":
        return ServiceError("ResourceNotFound", f"Amazon SageMaker can't find a tuning job with name {name}", 400)
    return ServiceError("ValidationException", f"Could not find requested job with name {name}", 400)


class JobsApi(Provider):
    """Operations are methods named after the API operation in snake_case (see Provider)."""

    def __init__(self, app: AppState) -> None:
        super().__init__(app)
        # Registers the service for the server's start (crash recovery, executor) and stop.
        get_service(app)

    @property
    def _jobs(self) -> JobService:
        return get_service(self.app)

    # ----------------------------------------------------------------------------------- helpers
    def _create(self, ctx: RequestContext, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        prepared = requests.prepare(self.app.db, kind, ctx.account_id, ctx.region, params)
        name = params[NAME_PARAM[kind]]
        arn = store.job_arn(kind, ctx.region, ctx.account_id, name)
        tags = list(params.get("Tags") or [])
        tagging.authorize_create(ctx, "Create" + OPERATION_NOUN[kind], arn, tags,
                                 validation.condition_keys(params, kind))
        if prepared.passes_role:
            check_pass_role(ctx, prepared.role_arn, arn)
        request = {k: v for k, v in params.items() if k not in ("Tags", NAME_PARAM[kind])}
        row = self._jobs.create(kind=kind, account=ctx.account_id, region=ctx.region, name=name, request=request,
                                tags=tagging.merged([], tags), role_arn=prepared.role_arn, context=prepared.context)
        return {f"{OPERATION_NOUN[kind]}Arn": row.arn}

    def _lookup(self, ctx: RequestContext, kind: str, operation: str, name: str) -> Row[Any]:
        with self.app.db.read() as conn:
            row = store.get_job(conn, ctx.account_id, ctx.region, kind, name)
        return tagging.authorize_found(ctx, ACTION + operation, row, store.job_arn(kind, ctx.region, ctx.account_id, name),
                                       lambda _arn: job_not_found(kind, name))

    def _describe(self, ctx: RequestContext, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        row = self._lookup(ctx, kind, "Describe" + OPERATION_NOUN[kind], params[NAME_PARAM[kind]])
        return views.describe(row)

    def _stop(self, ctx: RequestContext, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        row = self._lookup(ctx, kind, "Stop" + OPERATION_NOUN[kind], params[NAME_PARAM[kind]])
        self._jobs.stop_job(row)
        return {}

    def _list(self, ctx: RequestContext, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "List" + OPERATION_NOUN[kind] + "s", "*")
        order, sort = LIST_DEFAULTS[kind]
        with self.app.db.read() as conn:
            rows, token = store.list_jobs(conn, ctx.account_id, ctx.region, kind, params, order, sort)
        out: dict[str, Any] = {LIST_MEMBER[kind]: [views.job_summary(r) for r in rows]}
        if token:
            out["NextToken"] = token
        return out

    # -------------------------------------------------------------------------------- processing
    def create_processing_job(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._create(ctx, "processing", params)

    def describe_processing_job(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._describe(ctx, "processing", params)

    def list_processing_jobs(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._list(ctx, "processing", params)

    def stop_processing_job(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._stop(ctx, "processing", params)

    # ---------------------------------------------------------------------------------- training
    def create_training_job(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._create(ctx, "training", params)

    def describe_training_job(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._describe(ctx, "training", params)

    def list_training_jobs(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._list(ctx, "training", params)

    def stop_training_job(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._stop(ctx, "training", params)

    # --------------------------------------------------------------------------------- transform
    def create_transform_job(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._create(ctx, "transform", params)

    def describe_transform_job(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._describe(ctx, "transform", params)

    def list_transform_jobs(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._list(ctx, "transform", params)

    def stop_transform_job(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._stop(ctx, "transform", params)

    # ------------------------------------------------------------------------------------ tuning
    def create_hyper_parameter_tuning_job(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._create(ctx, "tuning", params)

    def describe_hyper_parameter_tuning_job(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._describe(ctx, "tuning", params)

    def list_hyper_parameter_tuning_jobs(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._list(ctx, "tuning", params)

    def stop_hyper_parameter_tuning_job(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._stop(ctx, "tuning", params)

    def list_training_jobs_for_hyper_parameter_tuning_job(self, ctx: RequestContext, params: dict[str, Any]
                                                          ) -> dict[str, Any]:
        row = self._lookup(ctx, "tuning", "ListTrainingJobsForHyperParameterTuningJob",
                           params["HyperParameterTuningJobName"])
        with self.app.db.read() as conn:
            kids = store.children(conn, row.arn)
        summaries = [tuning.summary(k, row) for k in kids]
        if params.get("StatusEquals"):
            summaries = [s for s in summaries if s["TrainingJobStatus"] == params["StatusEquals"]]
        sort_by = params.get("SortBy") or "Name"
        descending = (params.get("SortOrder") or "Ascending") == "Descending"
        if sort_by == "FinalObjectiveMetricValue":
            scored = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]
            rest = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" not in s]
            scored.sort(key=lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"], reverse=descending)
            summaries = scored + rest  # jobs without an objective value come last, as in SageMaker
        else:
            key = {"Name": "TrainingJobName", "CreationTime": "CreationTime", "Status": "TrainingJobStatus"}[sort_by]
            summaries.sort(key=lambda s: s[key], reverse=descending)
        scope = {"k": "tuning-children", "a": row.arn,
                 **{k: v for k, v in params.items() if k not in ("NextToken", "MaxResults")}}
        offset, limit = page_window(params, scope)
        page, token = slice_page(summaries, offset, limit, scope)
        out: dict[str, Any] = {"TrainingJobSummaries": [views.tuning_summary_view(s) for s in page]}
        if token:
            out["NextToken"] = token
        return out

    # ------------------------------------------------------------------------------------ models
    def create_model(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = store.model_arn(ctx.region, ctx.account_id, params["ModelName"])
        tags = list(params.get("Tags") or [])
        tagging.authorize_create(ctx, "CreateModel", arn, tags, validation.condition_keys(params, "model"))
        check_pass_role(ctx, params.get("ExecutionRoleArn"), arn)
        return models.create_model(self.app.db, ctx.account_id, ctx.region, params, tagging.merged([], tags),
                                   access=RequestModelAccess(ctx))

    def _model(self, ctx: RequestContext, operation: str, name: str) -> Row[Any]:
        with self.app.db.read() as conn:
            row = store.get_model(conn, ctx.account_id, ctx.region, name)
        return tagging.authorize_found(ctx, ACTION + operation, row, store.model_arn(ctx.region, ctx.account_id, name),
                                       models.model_not_found)

    def describe_model(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return views.model_description(self._model(ctx, "DescribeModel", params["ModelName"]))

    def delete_model(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        row = self._model(ctx, "DeleteModel", params["ModelName"])
        with self.app.db.begin() as conn:
            store.delete_model(conn, row.account_id, row.region, row.name)
        return {}

    def list_models(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "ListModels", "*")
        with self.app.db.read() as conn:
            rows, token = store.list_models(conn, ctx.account_id, ctx.region, params)
        out: dict[str, Any] = {"Models": [{"ModelName": r.name, "ModelArn": r.arn, "CreationTime": r.created_at}
                                          for r in rows]}
        if token:
            out["NextToken"] = token
        return out


# ------------------------------------------------------------------------------ AddTags / ListTags
_ARN = re.compile(r"arn:aws[a-z\-]*:sagemaker:([a-z0-9\-]+):(\d{12}):"
                  r"(processing-job|training-job|transform-job|hyper-parameter-tuning-job|model)/([a-zA-Z0-9\-]+)$")
_KIND_OF = {"processing-job": "processing", "training-job": "training", "transform-job": "transform",
            "hyper-parameter-tuning-job": "tuning"}


@tagging.register
def _tag_target(conn: Connection, arn: str, lock: bool) -> tagging.TagTarget | None:
    m = _ARN.match(arn)
    if m is None:
        return None
    region, account, resource, name = m.groups()
    if resource == "model":
        where = ((models_t.c.account_id == account) & (models_t.c.region == region)
                 & (models_t.c.name_key == name.lower()))
        table = models_t
    else:
        where = ((jobs_t.c.account_id == account) & (jobs_t.c.region == region)
                 & (jobs_t.c.kind == _KIND_OF[resource]) & (jobs_t.c.name_key == name.lower()))
        table = jobs_t
    from sqlalchemy import select

    query = select(table.c.arn, table.c.tags).where(where)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise tagging.not_found(arn)
    return tagging.TagTarget(row.arn, account, list(row.tags or []), table, where)
