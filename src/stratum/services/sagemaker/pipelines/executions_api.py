"""SageMaker API: Execution-engine operations: RetryPipelineExecution, SendPipelineExecutionStepSuccess/Failure.

Each writes its change in one transaction and then tells the engine in-process; the engine also
finds the change by itself (it polls), so nothing is lost if the notice is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from stratum.engine import callback_step, records
from stratum.engine.records import ExecKey
from stratum.server.context import Provider, RequestContext
from stratum.services.sagemaker import errors, idempotency
from stratum.services.sagemaker.arns import ExecutionRef
from stratum.services.sagemaker.pipelines import records as pl
from stratum.services.sagemaker.tables import sagemaker_pipeline_execution_steps as steps_t
from stratum.services.sagemaker.tables import sagemaker_pipeline_executions as executions_t

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row

    from stratum.engine.scheduler import PipelineEngine

RETRYABLE_STATUSES = ("Failed", "Stopped")
MAX_STEP_REASON = 1024


def _now() -> datetime:
    return datetime.now(UTC)


class EngineApi(Provider):
    """Operations are methods named after the API operation in snake_case (see Provider)."""

    engine: PipelineEngine

    # Provided by SageMakerProvider (the class this mixin is part of).
    def _execution(self, ctx: RequestContext, conn: Connection, operation: str, arn: str,
                   with_definition: bool = False, lock: bool = False) -> Row[Any]:
        raise NotImplementedError

    def _authorize(self, ctx: RequestContext, operation: str, arn: str, owner: str,
                   tags: list[dict[str, str]] | None = None, extra: dict[str, Any] | None = None) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------- retry
    def retry_pipeline_execution(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        now = _now()
        with self.app.db.begin() as conn:
            row = self._execution(ctx, conn, "RetryPipelineExecution", params["PipelineExecutionArn"], lock=True)
            replay = idempotency.recall(conn, row.account_id, row.region, "RetryPipelineExecution", params, now)
            if replay is not None:
                return replay
            if row.status not in RETRYABLE_STATUSES:
                raise errors.validation(f"Pipeline execution '{row.arn}' is in status {row.status}. Only a Failed or "
                                        "Stopped pipeline execution can be retried.")
            where = ((steps_t.c.account_id == row.account_id) & (steps_t.c.region == row.region)
                     & (steps_t.c.execution_id == row.execution_id))
            # Failed and stopped steps run again: queued as Starting without a StartTime, which the
            # engine reads as "start me" (a started row would be resumed instead).
            conn.execute(update(steps_t).where(where & steps_t.c.status.in_(RETRYABLE_STATUSES)).values(
                status="Starting", attempt_count=steps_t.c.attempt_count + 1, started_at=None, ended_at=None,
                failure_reason=None, step_metadata=None, outputs=None, cache_hit_result=None, last_modified_at=now))
            changes: dict[str, Any] = {"status": "Executing", "failure_reason": None, "ended_at": None,
                                       "last_modified_at": now,
                                       "last_modified_by": {"IamIdentity": {"Arn": ctx.identity.arn,
                                                                            "PrincipalId": ctx.identity.principal_id}}}
            if params.get("ParallelismConfiguration"):
                changes["parallelism"] = params["ParallelismConfiguration"]
            conn.execute(update(executions_t).where(
                (executions_t.c.account_id == row.account_id) & (executions_t.c.region == row.region)
                & (executions_t.c.execution_id == row.execution_id)).values(**changes))
            result = {"PipelineExecutionArn": row.arn}
            idempotency.remember(conn, row.account_id, row.region, "RetryPipelineExecution", params, result, now)
        self.engine.execution_started(row.account_id, row.region, row.execution_id)
        return result

    # ---------------------------------------------------------------------------------- callbacks
    def send_pipeline_execution_step_success(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._complete_callback(ctx, params, "SendPipelineExecutionStepSuccess")

    def send_pipeline_execution_step_failure(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._complete_callback(ctx, params, "SendPipelineExecutionStepFailure")

    def _complete_callback(self, ctx: RequestContext, params: dict[str, Any], operation: str) -> dict[str, Any]:
        token = params["CallbackToken"]
        now = _now()
        with self.app.db.begin() as conn:
            found = callback_step.find(conn, token)
            row = None
            if found is not None and found.region == ctx.region:
                ref = ExecutionRef(found.account_id, found.region, found.pipeline_name_key, found.execution_id)
                row = pl.get_execution(conn, ref, lock=True)
            if found is None or row is None:
                ctx.authorize("sagemaker:" + operation, "*")
                raise errors.not_found(f"Callback token '{token}' does not exist.")
            self._authorize(ctx, operation, row.arn, row.account_id, row.tags)
            replay = idempotency.recall(conn, row.account_id, row.region, operation, params, now)
            if replay is not None:
                return replay
            key = ExecKey(row.account_id, row.region, row.execution_id)
            step = records.load_step(conn, key, int(found.seq))
            if (step is None or step.status not in ("Executing", "Stopping")
                    or callback_step.token_of(step.step_metadata) != token):
                status = step.status if step is not None else "unknown"
                raise errors.conflict(f"Step '{found.step_name}' of pipeline execution '{row.arn}' is not waiting for "
                                      f"callback token '{token}' (step status: {status}).")
            if operation == "SendPipelineExecutionStepSuccess":
                try:
                    outputs, metadata = callback_step.success_values(found, step.step_metadata,
                                                                     params.get("OutputParameters"))
                except ValueError as exc:
                    raise errors.validation(str(exc)) from None
                records.update_step(conn, key, int(found.seq), now, status="Succeeded", ended_at=now,
                                    outputs=outputs, step_metadata=metadata, failure_reason=None)
            else:
                reason = params.get("FailureReason") or ""
                records.update_step(conn, key, int(found.seq), now, status="Failed", ended_at=now,
                                    failure_reason=reason[:MAX_STEP_REASON])
            result = {"PipelineExecutionArn": row.arn}
            idempotency.remember(conn, row.account_id, row.region, operation, params, result, now)
        self.engine.callback_completed(row.account_id, row.region, row.execution_id, int(found.seq))
        return result
