"""SageMaker API: the pipeline control plane (pipelines, versions, executions), tags and Search.

Each handler resolves the resource the caller names, authorizes the action on its ARN (with the
resource's tags as condition keys), then reads or writes in one transaction. Execution itself is
the engine's job: StartPipelineExecution only records an execution in status Executing.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row

from stratum.auth import passrole
from stratum.engine.records import ExecKey
from stratum.engine.scheduler import PipelineEngine
from stratum.engine.state import NewExecution
from stratum.protocol.errors import ServiceError
from stratum.server.context import Provider, RequestContext
from stratum.services.ram import access as ram_access
from stratum.services.sagemaker import errors, idempotency, listing, views
from stratum.services.sagemaker import tags as tagging
from stratum.services.sagemaker.arns import ExecutionRef, PipelineRef, pipeline_arn
from stratum.services.sagemaker.hosting.api import HostingApi
from stratum.services.sagemaker.jobs.api import JobsApi
from stratum.services.sagemaker.notebooks.api import NotebooksApi
from stratum.services.sagemaker.paging import page_window, slice_page
from stratum.services.sagemaker.pipelines import records as pl
from stratum.services.sagemaker.pipelines.executions_api import EngineApi
from stratum.services.sagemaker.registry.api import RegistryApi
from stratum.services.sagemaker.s3source import read_definition
from stratum.services.sagemaker.search import compile_expression, sort_records
from stratum.services.sagemaker.search_sources import SHARED_SOURCES, SOURCES, schema

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

ACTION = "sagemaker:"


def check_pass_role(ctx: RequestContext, role_arn: str, resource_arn: str | None = None) -> None:
    """iam:PassRole for the pipeline's RoleArn (iam:PassedToService sagemaker.amazonaws.com).

    A pipeline's role is only assumed when a step runs, so its existence is not checked here.
    """
    passrole.check_pass_role(ctx, role_arn, passrole.SAGEMAKER, associated_resource_arn=resource_arn,
                             validate_role=False)


def _now() -> datetime:
    return datetime.now(UTC)


def _actor(ctx: RequestContext) -> pl.Actor:
    return pl.Actor(ctx.identity.arn, ctx.identity.principal_id)


class SageMakerProvider(EngineApi, JobsApi, RegistryApi, HostingApi, NotebooksApi, Provider):
    service = "sagemaker"

    def __init__(self, app: AppState) -> None:
        super().__init__(app)
        # Runs the executions this API records; started and stopped with the server.
        self.engine = PipelineEngine(app)
        app.add_background(self.engine)

    # ------------------------------------------------------------------------------------ plumbing
    def _write(self) -> AbstractContextManager[Connection]:
        return self.app.db.begin()

    def _read(self) -> AbstractContextManager[Connection]:
        return self.app.db.read()

    @staticmethod
    def _authorize(ctx: RequestContext, operation: str, arn: str, owner: str,
                   tags: list[dict[str, str]] | None = None, extra: dict[str, Any] | None = None,
                   conn: Connection | None = None) -> None:
        context = tagging.resource_tag_context(tags)
        if extra:
            context = {**(context or {}), **extra}
        policy = None
        if conn is not None and owner != ctx.account_id:
            # Another account's pipeline (or execution): what AWS RAM shares grant the caller's
            # account is the resource policy, read now so a revoked share denies at once.
            policy = ram_access.resource_policy(conn, ctx.account_id, arn.partition("/execution/")[0])
        ctx.authorize(ACTION + operation, arn, resource_account=owner, context=context, resource_policy=policy)

    def _pipeline(self, ctx: RequestContext, conn: Connection, operation: str, name_or_arn: str,
                  lock: bool = False) -> Row[Any]:
        """Look up a pipeline and authorize ``operation`` on it.

        A missing pipeline is still authorized first (without tags), so a caller without the
        permission learns nothing about which pipelines exist.
        """
        ref = pl.resolve_pipeline(ctx.account_id, ctx.region, name_or_arn, conn)
        row = pl.get_pipeline(conn, ref, lock=lock)
        self._authorize_found(ctx, operation, ref, row, conn)
        assert row is not None
        return row

    def _pipeline_version(self, ctx: RequestContext, conn: Connection, operation: str, name_or_arn: str,
                          version_id: int | None, alias: str | None, for_start: bool = False) -> Row[Any]:
        ref = pl.resolve_pipeline(ctx.account_id, ctx.region, name_or_arn, conn)
        try:
            row = pl.get_pipeline_version(conn, ref, version_id, alias, for_start=for_start)
        except ServiceError:
            self._authorize(ctx, operation, ref.arn, ref.account_id, conn=conn)
            raise
        self._authorize_found(ctx, operation, ref, row, conn)
        assert row is not None
        return row

    def _authorize_found(self, ctx: RequestContext, operation: str, ref: PipelineRef, row: Row[Any] | None,
                         conn: Connection | None = None) -> None:
        if row is None:
            self._authorize(ctx, operation, ref.arn, ref.account_id, conn=conn)
            raise errors.pipeline_not_found(ref.arn)
        self._authorize(ctx, operation, row.arn, row.account_id, row.tags, conn=conn)

    def _execution(self, ctx: RequestContext, conn: Connection, operation: str, arn: str,
                   with_definition: bool = False, lock: bool = False) -> Row[Any]:
        ref: ExecutionRef = pl.resolve_execution(ctx.account_id, ctx.region, arn, conn)
        row = (pl.get_execution_with_definition(conn, ref) if with_definition
               else pl.get_execution(conn, ref, lock=lock))
        if row is None:
            self._authorize(ctx, operation, ref.arn, ref.account_id, conn=conn)
            raise errors.execution_not_found(ref.arn)
        self._authorize(ctx, operation, row.arn, row.account_id, row.tags, conn=conn)
        return row

    def _definition_text(self, ctx: RequestContext, params: dict[str, Any], required: bool) -> str | None:
        inline = params.get("PipelineDefinition")
        location = params.get("PipelineDefinitionS3Location")
        if inline is not None and location is not None:
            raise errors.validation("Specify either PipelineDefinition or PipelineDefinitionS3Location, not both.")
        if location is not None:
            with self._read() as conn:
                inline = read_definition(ctx, conn, location)
        if inline is None and required:
            raise errors.validation("Either PipelineDefinition or PipelineDefinitionS3Location must be specified.")
        if inline is not None and ctx.prechecked and location is None:
            ctx.replay_precheck()  # the parser process ran check_inline_definition
        elif inline is not None:
            pl.validate_definition(inline)
        return inline

    # ----------------------------------------------------------------------------------- pipelines
    def create_pipeline(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["PipelineName"]
        arn = pipeline_arn(ctx.region, ctx.account_id, name)
        tags = params.get("Tags") or []
        tagging.authorize_create(ctx, "CreatePipeline", arn, tags)
        check_pass_role(ctx, params["RoleArn"], arn)
        definition = self._definition_text(ctx, params, required=True)
        assert definition is not None
        now = _now()
        with self._write() as conn:
            replay = idempotency.recall(conn, ctx.account_id, ctx.region, "CreatePipeline", params, now)
            if replay is not None:
                return replay
            arn = pl.create_pipeline(
                conn, account=ctx.account_id, region=ctx.region, name=name, definition=definition,
                role_arn=params["RoleArn"], display_name=params.get("PipelineDisplayName"),
                description=params.get("PipelineDescription"), tags=tagging.merged([], tags),
                parallelism=params.get("ParallelismConfiguration"),
                aliases=list(params.get("PipelineVersionAliases") or []), actor=_actor(ctx), now=now)
            result = {"PipelineArn": arn}
            idempotency.remember(conn, ctx.account_id, ctx.region, "CreatePipeline", params, result, now)
        return result

    def describe_pipeline(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._read() as conn:
            row = self._pipeline_version(ctx, conn, "DescribePipeline", params["PipelineName"],
                                         params.get("PipelineVersionId"), params.get("PipelineVersionAlias"))
        return views.pipeline_description(row)

    def update_pipeline(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        definition = self._definition_text(ctx, params, required=False)
        if params.get("RoleArn"):
            check_pass_role(ctx, params["RoleArn"])
        with self._write() as conn:
            row = self._pipeline(ctx, conn, "UpdatePipeline", params["PipelineName"], lock=True)
            version = pl.update_pipeline(
                conn, row, definition=definition, role_arn=params.get("RoleArn"),
                display_name=params.get("PipelineDisplayName"), description=params.get("PipelineDescription"),
                parallelism=params.get("ParallelismConfiguration"),
                aliases=params.get("PipelineVersionAliases"), actor=_actor(ctx), now=_now())
        return {"PipelineArn": row.arn, "PipelineVersionId": version}

    def delete_pipeline(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        now = _now()
        with self._write() as conn:
            ref = pl.resolve_pipeline(ctx.account_id, ctx.region, params["PipelineName"], conn)
            row = pl.get_pipeline(conn, ref, lock=True)
            self._authorize(ctx, "DeletePipeline", row.arn if row else ref.arn, ref.account_id,
                            row.tags if row else None, conn=conn)
            # A retried delete of a pipeline that is already gone answers like the first call.
            replay = idempotency.recall(conn, ctx.account_id, ctx.region, "DeletePipeline", params, now)
            if replay is not None:
                return replay
            if row is None:
                raise errors.pipeline_not_found(ref.arn)
            pl.delete_pipeline(conn, row)
            ram_access.resource_deleted(conn, row.arn, now)
            result = {"PipelineArn": row.arn}
            idempotency.remember(conn, ctx.account_id, ctx.region, "DeletePipeline", params, result, now)
        return result

    def list_pipelines(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "ListPipelines", "*")
        with self._read() as conn:
            rows, token = listing.list_pipelines(conn, ctx.account_id, ctx.region, params)
        return {"PipelineSummaries": [views.pipeline_summary(r) for r in rows], "NextToken": token}

    def list_pipeline_versions(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._read() as conn:
            row = self._pipeline(ctx, conn, "ListPipelineVersions", params["PipelineName"])
            rows, token = listing.list_versions(conn, row, params)
        return {"PipelineVersionSummaries": [views.version_summary(r, row.arn) for r in rows], "NextToken": token}

    def update_pipeline_version(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        operations = params.get("PipelineVersionAliasOperations") or {}
        with self._write() as conn:
            row = self._pipeline(ctx, conn, "UpdatePipelineVersion", params["PipelineArn"], lock=True)
            pl.update_pipeline_version(
                conn, row, int(params["PipelineVersionId"]), display_name=params.get("PipelineVersionDisplayName"),
                description=params.get("PipelineVersionDescription"), add_aliases=list(operations.get("Add") or []),
                remove_aliases=list(operations.get("Remove") or []), actor=_actor(ctx), now=_now())
        return {"PipelineArn": row.arn, "PipelineVersionId": int(params["PipelineVersionId"])}

    # ---------------------------------------------------------------------------------- executions
    def start_pipeline_execution(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("RoleArn"):
            check_pass_role(ctx, params["RoleArn"])
        now = _now()
        selective = params.get("SelectiveExecutionConfig")
        token = params.get("ClientRequestToken")
        fingerprint = idempotency.fingerprint(params) if token else None
        # What the engine was handed for the row last about to be inserted, and whether it already
        # decided that execution's first steps (start_in) in this transaction.
        new: NewExecution | None = None
        ran = False

        def forget_last() -> None:
            # The last execution start_in decided was not recorded after all.
            if ran and new is not None:
                self.engine.forget(new.key)

        try:
            with self._write() as conn:
                row = self._pipeline_version(ctx, conn, "StartPipelineExecution", params["PipelineName"],
                                             params.get("PipelineVersionId"), params.get("PipelineVersionAlias"),
                                             for_start=True)
                defn = pl.parsed_version(conn, row.pipeline_id, row.version_id)

                def hand_over(started: pl.StartedExecution, values: dict[str, Any]) -> list[Callable[[], object]] | None:
                    # The engine runs the execution from what is being written (a selective
                    # execution reuses another execution's steps, which the engine reads after the
                    # commit). First steps it decides at once (Condition, Fail) go in this commit.
                    nonlocal new, ran
                    forget_last()  # an earlier attempt's row was not inserted (its token was taken)
                    new = NewExecution(
                        key=ExecKey(row.account_id, row.region, started.execution_id), arn=started.arn,
                        pipeline_arn=row.arn, pipeline_name=row.name, pipeline_name_key=row.name_key,
                        pipeline_id=row.pipeline_id, role_arn=params.get("RoleArn") or row.pipeline_role_arn,
                        defn=defn, parameters=started.resolved_parameters, created_at=now,
                        experiment_config=started.experiment_config,
                        parallelism=params.get("ParallelismConfiguration"),
                        pipeline_parallelism=row.pipeline_parallelism)
                    writes = self.engine.start_in(conn, new, values)
                    ran = writes is not None
                    return writes

                started = pl.start_execution_once(
                    conn, row, defn, token=token, fingerprint=fingerprint, supplied=params.get("PipelineParameters"),
                    display_name=params.get("PipelineExecutionDisplayName"),
                    description=params.get("PipelineExecutionDescription"),
                    parallelism=params.get("ParallelismConfiguration"), selective=selective,
                    role_arn=params.get("RoleArn"), mlflow_experiment_name=params.get("MlflowExperimentName"),
                    actor=_actor(ctx), now=now, before_insert=None if selective else hand_over)
                if isinstance(started, str):
                    forget_last()
                    return {"PipelineExecutionArn": started}  # a retry: the first request's answer
        except BaseException:
            forget_last()
            raise
        if not ran:
            self.engine.execution_started(row.account_id, row.region, started.execution_id, new)
        return {"PipelineExecutionArn": started.arn}

    def describe_pipeline_execution(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._read() as conn:
            row = self._execution(ctx, conn, "DescribePipelineExecution", params["PipelineExecutionArn"])
        return views.execution_description(row)

    def list_pipeline_executions(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._read() as conn:
            row = self._pipeline(ctx, conn, "ListPipelineExecutions", params["PipelineName"])
            alias = params.get("PipelineVersionAlias")
            version = pl.version_for_alias(conn, row, alias) if alias else None
            rows, token = listing.list_executions(conn, row, params, version)
        return {"PipelineExecutionSummaries": [views.execution_summary(r) for r in rows], "NextToken": token}

    def list_pipeline_parameters_for_execution(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["PipelineExecutionArn"]
        with self._read() as conn:
            row = self._execution(ctx, conn, "ListPipelineParametersForExecution", arn)
        scope = {"k": "parameters", "e": row.arn}
        offset, limit = page_window(params, scope)
        page, token = slice_page(list(row.parameters or []), offset, limit, scope)
        return {"PipelineParameters": page, "NextToken": token}

    def describe_pipeline_definition_for_execution(self, ctx: RequestContext, params: dict[str, Any]
                                                   ) -> dict[str, Any]:
        with self._read() as conn:
            row = self._execution(ctx, conn, "DescribePipelineDefinitionForExecution",
                                  params["PipelineExecutionArn"], with_definition=True)
        return {"PipelineDefinition": row.definition, "CreationTime": row.version_created_at}

    def update_pipeline_execution(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._write() as conn:
            row = self._execution(ctx, conn, "UpdatePipelineExecution", params["PipelineExecutionArn"], lock=True)
            pl.update_execution(conn, row, display_name=params.get("PipelineExecutionDisplayName"),
                                description=params.get("PipelineExecutionDescription"),
                                parallelism=params.get("ParallelismConfiguration"), actor=_actor(ctx), now=_now())
        return {"PipelineExecutionArn": row.arn}

    def list_pipeline_execution_steps(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = params.get("PipelineExecutionArn")
        if not arn:
            # Optional in the model, but there is nothing to list without it.
            ctx.authorize(ACTION + "ListPipelineExecutionSteps", "*")
            raise errors.validation("PipelineExecutionArn is required.")
        with self._read() as conn:
            row = self._execution(ctx, conn, "ListPipelineExecutionSteps", arn)
            rows, token = listing.list_steps(conn, row, params)
        return {"PipelineExecutionSteps": [views.step_summary(r) for r in rows], "NextToken": token}

    def stop_pipeline_execution(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        now = _now()
        with self._write() as conn:
            row = self._execution(ctx, conn, "StopPipelineExecution", params["PipelineExecutionArn"], lock=True)
            replay = idempotency.recall(conn, row.account_id, row.region, "StopPipelineExecution", params, now)
            if replay is not None:
                return replay
            pl.stop_execution(conn, row, _actor(ctx), now)
            result = {"PipelineExecutionArn": row.arn}
            idempotency.remember(conn, row.account_id, row.region, "StopPipelineExecution", params, result, now)
        self.engine.execution_stopping(row.account_id, row.region, row.execution_id)
        return result

    # ---------------------------------------------------------------------------------------- tags
    def _tag_target(self, ctx: RequestContext, conn: Connection, operation: str, arn: str,
                    extra: dict[str, Any] | None = None, lock: bool = False) -> tagging.TagTarget:
        try:
            target = tagging.locate(conn, ctx.account_id, ctx.region, arn, lock=lock)
        except ServiceError:
            # Like the other lookups: a resource the caller cannot see is simply missing, and a
            # missing one in its own account is still authorized first.
            owner = arn.split(":")[4] if arn.count(":") >= 5 else ""
            if pl.is_visible(ctx.account_id, owner):
                self._authorize(ctx, operation, arn, owner, extra=extra)
            raise
        self._authorize(ctx, operation, target.arn, target.owner_account, target.tags, extra)
        return target

    def add_tags(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        tags = params["Tags"]
        with self._write() as conn:
            target = self._tag_target(ctx, conn, "AddTags", params["ResourceArn"],
                                      tagging.request_tag_context(tags), lock=True)
            tagging.add_tags(conn, target, tags)
        return {"Tags": tags}

    def delete_tags(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        keys = params["TagKeys"]
        with self._write() as conn:
            target = self._tag_target(ctx, conn, "DeleteTags", params["ResourceArn"],
                                      tagging.request_tag_context(None, keys), lock=True)
            tagging.delete_tags(conn, target, keys)
        return {}

    def list_tags(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._read() as conn:
            target = self._tag_target(ctx, conn, "ListTags", params["ResourceArn"])
        scope = {"k": "tags", "a": target.arn}
        offset, limit = page_window(params, scope, default=50)
        page, token = slice_page(target.tags, offset, limit, scope)
        return {"Tags": page, "NextToken": token}

    # -------------------------------------------------------------------------------------- search
    def search(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "Search", "*")
        resource = params["Resource"]
        source = SOURCES.get(resource)
        if source is None:
            # A resource type Stratum does not keep yet: there is nothing of it to find.
            return {"Results": [], "TotalHits": {"Value": 0, "Relation": "EqualTo"}}
        record_member, loader = source
        if params.get("CrossAccountFilterOption") == "CrossAccount":
            shared = SHARED_SOURCES.get(resource)
            loader = shared if shared is not None else (lambda conn, account, region: [])
        resource_schema = schema(resource)
        predicate = compile_expression(params.get("SearchExpression"), resource_schema)
        scope = {"k": "search", "o": (ctx.account_id, ctx.region),
                 **{k: v for k, v in params.items() if k not in ("NextToken", "MaxResults")}}
        offset, limit = page_window(params, scope)
        with self._read() as conn:
            records = loader(conn, ctx.account_id, ctx.region)
        matched = sort_records([r for r in records if predicate(r)], resource_schema, params.get("SortBy"),
                               params.get("SortOrder"))
        page, token = slice_page(matched, offset, limit, scope)
        return {"Results": [{record_member: r} for r in page], "NextToken": token,
                "TotalHits": {"Value": len(matched), "Relation": "EqualTo"}}
