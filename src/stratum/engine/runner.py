"""Running one step in a worker thread: its transitions, arguments, cache, handler and outcome.

Each transition is its own committed transaction: Starting (inserted only while the execution is
still Executing, under the execution row's lock, so it cannot race StopPipelineExecution), then
Executing, then Succeeded / Failed / Stopped with the step's properties and metadata.

Condition and Fail steps are decided in memory, without a handler, so nothing could observe them
Starting or Executing that is not equally true of the step not having begun: they are evaluated
first and recorded finished in one transaction (under the same guard). A Fail step launched as
the execution's last one also ends the execution in that transaction.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from stratum.engine import caching, callback_step, ending, events, records
from stratum.engine.expressions import ExpressionError, evaluate_conditions, resolve, to_text
from stratum.engine.handlers import StepResult, StepRun, step_handler
from stratum.engine.retries import RetryPolicyError, next_delay, parse_policies
from stratum.engine.s3files import read_object
from stratum.engine.state import (
    MAX_EXECUTION_REASON,
    NEW,
    RERUN,
    RESUME,
    RETRY,
    Abandon,
    ExecState,
    StepState,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from stratum.engine.scheduler import PipelineEngine

MAX_STEP_REASON = 1024  # PipelineExecutionStep.FailureReason
MAX_ERROR_MESSAGE = 3072  # FailStepMetadata.ErrorMessage

# Keys of a step that are structure, display or policy rather than inputs of its work.
_NOT_FIELDS = frozenset({"Name", "Type", "DependsOn", "Arguments", "DisplayName", "Description", "CacheConfig",
                         "RetryPolicies", "PropertyFiles"})
_JOB_NAME_CHARS = re.compile(r"[^a-zA-Z0-9]+")


@dataclass
class Outcome:
    kind: str  # Succeeded | Failed | Stopped | Waiting | Retry | Halted | Abandoned
    outputs: Any = None
    condition: bool | None = None
    reason: str | None = None
    fail_step: bool = False
    delay: float = 0.0
    status: str | None = None  # Halted: the execution's status at that moment
    ended: str | None = None  # the execution's end status, when this step's transaction wrote it


def now() -> datetime:
    return datetime.now(UTC)


def job_name(execution_id: str, step_name: str, attempt: int) -> str:
    """Deterministic per (execution, step, attempt), valid as any SageMaker job name (<= 63)."""
    digest = hashlib.sha256(f"{execution_id}/{step_name}/{attempt}".encode()).hexdigest()[:10]
    step = _JOB_NAME_CHARS.sub("-", step_name).strip("-")[:29].strip("-") or "step"
    return f"pipelines-{execution_id}-{step}-{digest}"


def jsonable(value: Any) -> Any:
    """Handler properties are Describe* responses: datetimes become ISO strings, as on the wire."""
    try:
        return json.loads(json.dumps(value, default=_json_default))
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str, skipkeys=True))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


# ----------------------------------------------------------------------------------------- the run
def run_step(eng: PipelineEngine, ex: ExecState, st: StepState) -> Outcome:
    if st.mode == NEW and st.spec.type in _DECIDED_AT_ONCE and not st.stop_requested:
        decided = _decide_at_once(eng, ex, st)
        if decided is not None:
            return decided
    timings = st.timings
    halted = _begin(eng, ex, st)
    if halted is not None:
        return halted
    timings["started"] = time.perf_counter()
    if st.first_started is None:
        st.first_started = time.monotonic()
    spec = st.spec
    if st.stop_requested and st.mode != RESUME:
        return finish(eng, ex, st, StepResult(status="Stopped"))
    name = job_name(ex.key.execution_id, spec.name, st.attempt)
    ctx = ex.eval_context(name, spec.type, partial(read_object, eng.app, ex.key.account_id))
    try:
        if spec.type == "Condition":
            _executing(eng, ex, st)
            outcome = evaluate_conditions((spec.arguments or {}).get("Conditions"), ctx)
            text = "True" if outcome else "False"
            return finish(eng, ex, st, StepResult(status="Succeeded", properties={"Outcome": outcome},
                                                  metadata={"Condition": {"Outcome": text}}))
        if spec.type == "Fail":
            _executing(eng, ex, st)
            raw = (spec.arguments or {}).get("ErrorMessage") if isinstance(spec.arguments, dict) else None
            message = "" if raw is None else to_text(resolve(raw, ctx))
            return finish(eng, ex, st, StepResult(status="Failed", failure_reason=message,
                                                  metadata={"Fail": {"ErrorMessage": message[:MAX_ERROR_MESSAGE]}}),
                          fail_step=True)
        arguments = resolve(spec.arguments, ctx)
        fields = resolve({k: v for k, v in spec.raw.items() if k not in _NOT_FIELDS}, ctx)
    except ExpressionError as exc:
        return finish(eng, ex, st, StepResult(status="Failed", failure_reason=str(exc)))

    try:
        policy = caching.cache_policy(spec.raw)
    except ValueError as exc:
        return finish(eng, ex, st, StepResult(status="Failed", failure_reason=f"CacheConfig ExpireAfter: {exc}"))
    signature = caching.signature(spec.type, arguments, spec.raw, fields) if policy else None
    if policy is not None and signature is not None and st.mode != RETRY:
        hit = _cache_lookup(eng, ex, policy, signature)
        if hit is not None:
            return _cached(eng, ex, st, hit)

    if spec.type == "Callback":
        return _begin_callback(eng, ex, st, arguments, fields)

    try:
        handler = step_handler(spec.type)
    except (ImportError, AttributeError) as exc:
        return finish(eng, ex, st, StepResult(
            status="Failed", failure_reason=f"No handler is available for step type {spec.type} in this Stratum "
                                            f"build: {exc}"))
    if handler is None:
        return finish(eng, ex, st, StepResult(
            status="Failed", failure_reason=f"Step type {spec.type} is not supported by Stratum."))
    _executing(eng, ex, st)
    run = StepRun(app=eng.app, account_id=ex.key.account_id, region=ex.key.region, pipeline_name=ex.pipeline_name,
                  pipeline_arn=ex.pipeline_arn, execution_id=ex.key.execution_id, execution_arn=ex.arn,
                  role_arn=ex.role_arn, step_name=spec.name, step_type=spec.type, arguments=arguments,
                  raw=spec.raw, attempt=st.attempt, stop_event=st.stop_event,
                  extra={"job_name": name, "resume": st.mode in (RESUME, RERUN), "metadata": st.metadata,
                         "shutdown": Abandon(eng.shutdown_event, ex), "step_fields": fields},
                  publish_metadata=partial(_publish, eng, ex, st))
    timings["handler"] = time.perf_counter()
    try:
        result = handler(run)
    except Exception as exc:  # a handler bug must not take the engine down
        eng.log.exception("%s step %s of %s: handler raised", spec.type, spec.name, ex.arn)
        result = StepResult(status="Failed", failure_reason=f"Internal error in the {spec.type} step handler: "
                                                           f"{type(exc).__name__}: {exc}")
    timings["handler_end"] = time.perf_counter()
    if not isinstance(result, StepResult) or result.status not in ("Succeeded", "Failed", "Stopped"):
        result = StepResult(status="Failed", failure_reason=f"The {spec.type} step handler returned {result!r}.")
    return finish(eng, ex, st, result, policy=policy, signature=signature)


_DECIDED_AT_ONCE = frozenset({"Condition", "Fail"})


def decide(eng: PipelineEngine, ex: ExecState, st: StepState) -> StepResult | None:
    """Evaluate a Condition or Fail step: its result, or None when its expressions cannot be
    evaluated (the regular path then records that failure, under the step's retry policies)."""
    spec = st.spec
    try:
        if spec.type == "Condition":
            ctx = ex.eval_context(None, spec.type, partial(read_object, eng.app, ex.key.account_id))
            outcome = evaluate_conditions((spec.arguments or {}).get("Conditions"), ctx)
            return StepResult(status="Succeeded", properties={"Outcome": outcome},
                              metadata={"Condition": {"Outcome": "True" if outcome else "False"}})
        raw = (spec.arguments or {}).get("ErrorMessage") if isinstance(spec.arguments, dict) else None
        if raw is None:
            message = ""
        elif isinstance(raw, str):
            message = raw  # a literal: no context to build
        else:
            ctx = ex.eval_context(None, spec.type, partial(read_object, eng.app, ex.key.account_id))
            message = to_text(resolve(raw, ctx))
    except ExpressionError:
        return None
    return StepResult(status="Failed", failure_reason=message,
                      metadata={"Fail": {"ErrorMessage": message[:MAX_ERROR_MESSAGE]}})


def _decide_at_once(eng: PipelineEngine, ex: ExecState, st: StepState) -> Outcome | None:
    """Run a new Condition or Fail step in one transaction: evaluate it (unless start_in did),
    then (only while the execution is Executing, as _begin) insert its row already finished; with
    ``st.ends_execution`` a Fail step also records the execution Failed. None when evaluation
    fails: the regular path then records that failure, under the step's retry policies."""
    timings = st.timings
    timings["started"] = time.perf_counter()
    if st.first_started is None:
        st.first_started = time.monotonic()
    spec = st.spec
    result, st.decided = st.decided or decide(eng, ex, st), None
    if result is None:
        return None
    if eng.closing.is_set():
        return Outcome("Abandoned")
    failed = result.status == "Failed"
    reason = (result.failure_reason or "") if failed else None
    # Built here from strings and a bool: already what jsonable would return.
    outputs = None if failed else dict(result.properties)
    end = failed and st.ends_execution
    t = now()
    st.started_at = t
    with eng.tx(ex) as conn:
        step_event = partial(_step_event, conn, ex, st, result.status, "Executing", t, ended=t,
                             metadata=result.metadata, reason=reason)
        step_row = partial(records.insert_step, conn, ex.key, seq=st.seq, name=spec.name, step_type=spec.type,
                           display_name=spec.raw.get("DisplayName"), description=spec.raw.get("Description"),
                           status=result.status, now=t, ended_at=t, outputs=outputs,
                           failure_reason=reason[:MAX_STEP_REASON] if reason is not None else None,
                           step_metadata=result.metadata)
        starting = eng.starting()
        if starting is not None:
            # StartPipelineExecution inserts the execution after this (start_in): it is Executing,
            # and its end, if this step ends it, goes into the row it inserts.
            row, writes = starting
            if end:
                row.update(status="Failed", failure_reason=(reason or "")[:MAX_EXECUTION_REASON], ended_at=t,
                           last_modified_at=t)
            writes.extend((step_row, step_event))
            if end:
                writes.append(partial(ending.execution_ended, conn, ex.key, t))
        else:
            if end:
                # The guard and the execution's end in one statement: Failed only from Executing.
                if not records.end_execution(conn, ex.key, "Failed", (reason or "")[:MAX_EXECUTION_REASON], t):
                    return Outcome("Halted", status=records.execution_status(conn, ex.key))
                eng.release_claim(conn, ex)
            else:
                status = records.execution_status(conn, ex.key, lock=True)
                if status != "Executing":
                    return Outcome("Halted", status=status)
            step_row()
            step_event()
            if end:
                ending.execution_ended(conn, ex.key, t)
    timings["done"] = time.perf_counter()
    condition = result.properties.get("Outcome") if spec.type == "Condition" else None
    return Outcome(result.status, outputs=outputs, reason=reason, fail_step=failed,
                   condition=condition if isinstance(condition, bool) else None, ended="Failed" if end else None)


def _step_event(conn: Connection, ex: ExecState, st: StepState, current: str, previous: str | None, t: datetime,
                *, ended: datetime | None = None, metadata: Any = None, reason: str | None = None,
                cache_hit: dict[str, Any] | None = None) -> None:
    """The step's "Execution Step Status Change" event, in the transaction of the change."""
    events.step_status(conn, account=ex.key.account_id, region=ex.key.region, pipeline_arn=ex.pipeline_arn,
                       execution_arn=ex.arn, step_name=st.spec.name, step_type=st.spec.type, current=current,
                       previous=previous, started=st.started_at, ended=ended,
                       metadata=metadata if metadata is not None else st.metadata, now=t, failure_reason=reason,
                       cache_hit=cache_hit)


def _begin(eng: PipelineEngine, ex: ExecState, st: StepState) -> Outcome | None:
    """The Starting transition; an Outcome when the step must not start."""
    if st.mode in (RESUME, RETRY):
        return None
    spec = st.spec
    with eng.tx(ex) as conn:
        status = records.execution_status(conn, ex.key, lock=True)
        if status != "Executing":
            return Outcome("Halted", status=status)
        t = now()
        if st.mode == NEW:
            records.insert_step(conn, ex.key, seq=st.seq, name=spec.name, step_type=spec.type,
                                display_name=spec.raw.get("DisplayName"), description=spec.raw.get("Description"),
                                status="Starting", now=t)
        else:  # RERUN: RetryPipelineExecution queued the row again
            records.update_step(conn, ex.key, st.seq, t, started_at=t)
        st.started_at = t
        _step_event(conn, ex, st, "Starting", None, t)
    return None


def _executing(eng: PipelineEngine, ex: ExecState, st: StepState) -> None:
    # Only from Starting: a stop may already have moved the row to Stopping.
    with eng.tx(ex) as conn:
        t = now()
        if records.update_step(conn, ex.key, st.seq, t, only_if=("Starting",), status="Executing"):
            _step_event(conn, ex, st, "Executing", "Starting", t)
    st.timings["executing"] = time.perf_counter()


def _publish(eng: PipelineEngine, ex: ExecState, st: StepState, metadata: dict[str, Any]) -> None:
    if eng.closing.is_set():
        return
    with eng.tx(ex) as conn:
        records.update_step(conn, ex.key, st.seq, now(), step_metadata=jsonable(metadata))
    st.metadata = metadata


def finish(eng: PipelineEngine, ex: ExecState, st: StepState, result: StepResult, *, fail_step: bool = False,
           policy: caching.CachePolicy | None = None, signature: str | None = None) -> Outcome:
    """Record the step's end (or schedule its retry) in one transaction."""
    if eng.closing.is_set():
        return Outcome("Abandoned")
    reason = (result.failure_reason or "") if result.status == "Failed" else None
    if result.status == "Failed" and not fail_step:
        retry = _retry_delay(st, result)
        if isinstance(retry, str):
            reason = f"{reason} (RetryPolicies: {retry})"
        elif retry is not None:
            index, delay = retry
            st.retries[index] = st.retries.get(index, 0) + 1
            st.attempt += 1
            with eng.tx(ex) as conn:
                records.update_step(conn, ex.key, st.seq, now(), attempt_count=st.attempt,
                                    step_metadata=jsonable(result.metadata) if result.metadata else st.metadata)
            st.mode = RETRY
            return Outcome("Retry", delay=delay, reason=reason)
    t = now()
    outputs = jsonable(result.properties) if result.status == "Succeeded" else None
    values: dict[str, Any] = {"status": result.status, "ended_at": t, "outputs": outputs,
                              "failure_reason": reason[:MAX_STEP_REASON] if reason is not None else None}
    if result.metadata:
        values["step_metadata"] = jsonable(result.metadata)
    with eng.tx(ex) as conn:
        records.update_step(conn, ex.key, st.seq, t, **values)
        _step_event(conn, ex, st, result.status, "Executing", t, ended=t, metadata=values.get("step_metadata"),
                    reason=values["failure_reason"])
        if result.status == "Succeeded" and policy is not None and signature is not None:
            caching.record(conn, account=ex.key.account_id, region=ex.key.region, pipeline_id=ex.pipeline_id,
                           sig=signature, execution_id=ex.key.execution_id, execution_arn=ex.arn,
                           step_name=st.spec.name, ended_at=t, outputs=outputs, metadata=values.get("step_metadata"))
    st.timings["done"] = time.perf_counter()
    outcome = result.properties.get("Outcome") if st.spec.type == "Condition" else None
    return Outcome(result.status, outputs=outputs, reason=reason, fail_step=fail_step,
                   condition=outcome if isinstance(outcome, bool) else None)


def _retry_delay(st: StepState, result: StepResult) -> tuple[int, float] | str | None:
    try:
        policies = parse_policies(st.spec.raw)
    except RetryPolicyError as exc:
        return str(exc)
    elapsed = time.monotonic() - (st.first_started or time.monotonic())
    return next_delay(policies, result.error_type, st.retries, elapsed)


# ------------------------------------------------------------------------------------------ caching
def _cache_lookup(eng: PipelineEngine, ex: ExecState, policy: caching.CachePolicy, signature: str
                  ) -> caching.CacheHit | None:
    with eng.app.db.read() as conn:
        return caching.lookup(conn, account=ex.key.account_id, region=ex.key.region, pipeline_id=ex.pipeline_id,
                              sig=signature, policy=policy, now=now(), own_execution=ex.key.execution_id)


def _cached(eng: PipelineEngine, ex: ExecState, st: StepState, hit: caching.CacheHit) -> Outcome:
    if eng.closing.is_set():
        return Outcome("Abandoned")
    t = now()
    with eng.tx(ex) as conn:
        cache_hit = {"SourcePipelineExecutionArn": hit.execution_arn}
        records.update_step(conn, ex.key, st.seq, t, status="Succeeded", ended_at=t, outputs=hit.outputs,
                            step_metadata=hit.metadata, cache_hit_result=cache_hit)
        _step_event(conn, ex, st, "Succeeded", "Executing", t, ended=t, metadata=hit.metadata, cache_hit=cache_hit)
    st.timings["done"] = time.perf_counter()
    return Outcome("Succeeded", outputs=hit.outputs or {})


# ----------------------------------------------------------------------------------------- callback
def _begin_callback(eng: PipelineEngine, ex: ExecState, st: StepState, arguments: Any, fields: dict[str, Any]
                    ) -> Outcome:
    if eng.closing.is_set():
        return Outcome("Abandoned")
    with eng.tx(ex) as conn:
        st.metadata = callback_step.begin(
            conn, ex.key, pipeline_name_key=ex.pipeline_name_key, seq=st.seq, step_name=st.spec.name,
            url=callback_step.queue_url(fields, arguments), declared_outputs=st.spec.raw.get("OutputParameters"),
            now=now())
    return Outcome("Waiting")


def callback_outcome(eng: PipelineEngine, ex: ExecState, st: StepState) -> Outcome | None:
    """The outcome SendPipelineExecutionStep* recorded for a waiting Callback step, or None if the
    row is still waiting."""
    with eng.app.db.read() as conn:
        row = records.load_step(conn, ex.key, st.seq)
    if row is None:
        return Outcome("Halted", status=None)
    if row.status not in ("Succeeded", "Failed", "Stopped"):
        return None
    if row.status == "Succeeded":
        try:
            policy = caching.cache_policy(st.spec.raw)
        except ValueError:
            policy = None
        if policy is not None and not eng.closing.is_set():
            ctx = ex.eval_context(None, st.spec.type, None)
            try:
                arguments = resolve(st.spec.arguments, ctx)
                fields = resolve({k: v for k, v in st.spec.raw.items() if k not in _NOT_FIELDS}, ctx)
            except ExpressionError:
                arguments = None
            if arguments is not None:
                with eng.tx(ex) as conn:
                    caching.record(conn, account=ex.key.account_id, region=ex.key.region,
                                   pipeline_id=ex.pipeline_id,
                                   sig=caching.signature(st.spec.type, arguments, st.spec.raw, fields),
                                   execution_id=ex.key.execution_id, execution_arn=ex.arn, step_name=st.spec.name,
                                   ended_at=row.ended_at or now(), outputs=row.outputs, metadata=row.step_metadata)
        return Outcome("Succeeded", outputs=row.outputs or {})
    return Outcome(row.status, reason=row.failure_reason)


def stop_step(eng: PipelineEngine, ex: ExecState, st: StepState, reason: str | None = None) -> Outcome:
    """Record a step that will not run (any more) as Stopped."""
    if eng.closing.is_set():
        return Outcome("Abandoned")
    t = now()
    with eng.tx(ex) as conn:
        records.update_step(conn, ex.key, st.seq, t, status="Stopped", ended_at=t, failure_reason=reason)
        _step_event(conn, ex, st, "Stopped", "Stopping", t, ended=t, reason=reason)
    return Outcome("Stopped")
