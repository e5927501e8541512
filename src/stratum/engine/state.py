"""In-memory state of the executions the engine is running, rebuilt from the database on load.

Loading is the same after a server restart, after RetryPipelineExecution and for an execution found
by the poll: finished step rows stay finished (their properties feed Steps.X references), running
rows are resumed, and rows RetryPipelineExecution queued again (status Starting, no StartTime) run
again. An execution StartPipelineExecution has just recorded has no step rows yet: ``fresh`` builds
its state from what the API committed (NewExecution) instead of reading it back.
Only the dispatcher (callbacks on its event loop) mutates an ExecState; workers read it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row

from stratum.engine import records
from stratum.engine.expressions import EvalContext
from stratum.engine.graph import FAILED, RUNNING, SKIPPED, STOPPED, SUCCEEDED, Progress
from stratum.engine.records import ACTIVE_STEP_STATUSES, ExecKey
from stratum.services.sagemaker.arns import parse_execution_arn
from stratum.services.sagemaker.pipelines.definition import PipelineDefinition, StepSpec
from stratum.store.claims import EXECUTION, ClaimKey

# How a step's run begins (see runner.begin).
NEW = "new"  # no row yet: insert it (Starting), if the execution is still Executing
RERUN = "rerun"  # row queued by RetryPipelineExecution (Starting, no StartTime): start it again
RESUME = "resume"  # row was running when the server stopped: carry on without a new transition
RETRY = "retry"  # a RetryPolicies attempt after a failed one: the row stays Executing

# Step types the engine decides itself; every other type goes to a handler in a worker thread.
ENGINE_TYPES = frozenset({"Condition", "Fail", "Callback"})
# Those the dispatcher may run itself (see scheduler): no I/O but the database (and Std:JsonGet).
INLINE_TYPES = frozenset({"Condition", "Fail"})

GENERIC_FAILURE = "Step failure: One or multiple steps failed."
MAX_EXECUTION_REASON = 1300  # DescribePipelineExecution.FailureReason


@dataclass
class StepState:
    spec: StepSpec
    seq: int
    mode: str
    attempt: int = 1
    metadata: Any = None  # the row's Metadata when resumed
    retries: dict[int, int] = field(default_factory=dict)
    first_started: float | None = None  # monotonic time of the first attempt (ExpireAfterMin)
    waiting: bool = False  # a Callback step waiting for its token
    ends_execution: bool = False  # launched as the execution's last step (see runner.run_step)
    timings: dict[str, float] = field(default_factory=dict)
    decided: Any = None  # a Condition or Fail step's result as start_in evaluated it (runner.decide)
    started_at: datetime | None = None  # when this run of the step started (for its status events)
    # Made on first use: most steps are never stopped, and a Condition or Fail step never hands
    # the event to a handler; an Event (a Condition over a Lock) is the costliest part of a step.
    _stop_event: threading.Event | None = field(default=None, repr=False)

    @property
    def stop_event(self) -> threading.Event:
        """Set when the execution is stopped; handed to the step's handler."""
        event = self._stop_event
        if event is None:
            with _STOP_EVENT_LOCK:  # the dispatcher and the step's worker thread may both ask
                event = self._stop_event
                if event is None:
                    event = self._stop_event = threading.Event()
        return event

    @property
    def stop_requested(self) -> bool:
        event = self._stop_event
        return event is not None and event.is_set()


_STOP_EVENT_LOCK = threading.Lock()


@dataclass
class ExecState:
    key: ExecKey
    arn: str
    pipeline_arn: str
    pipeline_name: str
    pipeline_name_key: str
    pipeline_id: str
    role_arn: str
    defn: PipelineDefinition
    parameters: dict[str, Any]
    created_at: datetime
    experiment: dict[str, Any]
    max_parallel: int
    progress: Progress
    step_names: frozenset[str]
    steps: dict[str, StepState] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    next_seq: int = 1
    running: int = 0
    stopping: bool = False
    failed: bool = False
    fail_message: str | None = None
    finalizing: bool = False
    # A step launched as the execution's last one writes the execution's end in its own
    # transaction (see runner.run_step): ``ending`` from its launch, ``ended`` the status it wrote.
    ending: bool = False
    ended: str | None = None
    abort_reason: str | None = None  # the execution cannot run at all (e.g. selective execution)
    lost: bool = False  # another server took over its claim: nothing more is done for it here
    loaded_at: float = field(default_factory=time.monotonic)
    # Filled by load: steps to resume at once, Callback steps already waiting, steps to mark Stopped.
    resume: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    stop_now: list[str] = field(default_factory=list)
    # Selective execution: steps taking the source execution's result (a row still to be written).
    reused: list[tuple[str, Row[Any]]] = field(default_factory=list)
    source_arn: str | None = None

    def new_step(self, name: str) -> StepState:
        st = StepState(self.defn.steps[name], self.next_seq, NEW)
        self.next_seq += 1
        self.steps[name] = st
        return st

    def step(self, name: str) -> StepState:
        return self.steps.get(name) or self.new_step(name)

    def property_file(self, step: str, name: str) -> tuple[str, str] | None:
        spec = self.defn.steps.get(step)
        for entry in (spec.raw.get("PropertyFiles") or []) if spec else []:
            if isinstance(entry, dict) and entry.get("PropertyFileName") == name:
                return str(entry.get("OutputName", "")), str(entry.get("FilePath", ""))
        return None

    def eval_context(self, job_name: str | None, step_type: str, read_s3: Any) -> EvalContext:
        execution: dict[str, Any] = {
            "PipelineName": self.pipeline_name, "PipelineArn": self.pipeline_arn,
            "PipelineExecutionId": self.key.execution_id, "PipelineExecutionArn": self.arn,
            "StartDateTime": iso(self.created_at), "CurrentDateTime": iso(datetime.now(UTC)),
        }
        if step_type == "Training" and job_name:
            execution["TrainingJobName"] = job_name
        if step_type == "Processing" and job_name:
            execution["ProcessingJobName"] = job_name
        return EvalContext(parameters=self.parameters, execution=execution, experiment=self.experiment,
                           step_properties=self.properties.get, step_names=self.step_names,
                           property_files=self.property_file, read_s3=read_s3)


def claim_of(key: ExecKey) -> ClaimKey:
    """The claim a server holds while it runs the execution (and so all of its steps)."""
    return ClaimKey(EXECUTION, key.account_id, key.region, key.execution_id)


class Abandon:
    """Handed to step handlers as extra["shutdown"]: set when the server shuts down or when it
    lost the execution's claim; either way the handler returns promptly and its result is dropped."""

    __slots__ = ("shutdown", "ex")

    def __init__(self, shutdown: threading.Event, ex: ExecState) -> None:
        self.shutdown = shutdown
        self.ex = ex

    def is_set(self) -> bool:
        return self.ex.lost or self.shutdown.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if left <= 0:
                return False
            self.shutdown.wait(left)
        return True


def iso(when: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as Execution.StartDateTime/CurrentDateTime read."""
    w = when.astimezone(UTC)
    return (f"{w.year:04d}-{w.month:02d}-{w.day:02d}T{w.hour:02d}:{w.minute:02d}:{w.second:02d}."
            f"{w.microsecond // 1000:03d}Z")


def _parallelism(configs: tuple[Any, ...], default: int) -> int:
    """MaxParallelExecutionSteps: the execution's ParallelismConfiguration, else the pipeline's."""
    for config in configs:
        if isinstance(config, dict) and isinstance(config.get("MaxParallelExecutionSteps"), int):
            return max(1, int(config["MaxParallelExecutionSteps"]))
    return default


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs several times more
class NewExecution:
    """What StartPipelineExecution has just committed, for the engine to run the execution without
    reading it back (same values as the execution row ``load`` would read; no selective execution)."""

    key: ExecKey
    arn: str
    pipeline_arn: str
    pipeline_name: str
    pipeline_name_key: str
    pipeline_id: str
    role_arn: str  # the execution's RoleArn, else the pipeline's
    defn: PipelineDefinition
    parameters: dict[str, Any]  # resolved
    created_at: datetime
    experiment_config: dict[str, Any] | None
    parallelism: Any  # the execution's ParallelismConfiguration
    pipeline_parallelism: Any


def _new_state(key: ExecKey, *, arn: str, pipeline_arn: str, pipeline_name: str, pipeline_name_key: str,
               pipeline_id: str, role_arn: str, defn: PipelineDefinition, parameters: dict[str, Any],
               created_at: datetime, experiment_config: dict[str, Any] | None, max_parallel: int,
               stopping: bool) -> ExecState:
    order = defn.topological_order()
    branches = {n: (s.if_steps, s.else_steps) for n, s in defn.steps.items() if s.type == "Condition"}
    experiment = dict(experiment_config or {})
    experiment.setdefault("ExperimentName", pipeline_name)
    experiment.setdefault("TrialName", key.execution_id)
    return ExecState(
        key=key, arn=arn, pipeline_arn=pipeline_arn, pipeline_name=pipeline_name,
        pipeline_name_key=pipeline_name_key, pipeline_id=pipeline_id, role_arn=role_arn, defn=defn,
        parameters=dict(parameters), created_at=created_at, experiment=experiment, max_parallel=max_parallel,
        progress=Progress(defn.dag, order, branches), step_names=frozenset(defn.steps), stopping=stopping)


def fresh(new: NewExecution, default_parallelism: int) -> ExecState:
    """The state of an execution that has just been recorded: no step has run yet."""
    ex = _new_state(new.key, arn=new.arn, pipeline_arn=new.pipeline_arn, pipeline_name=new.pipeline_name,
                    pipeline_name_key=new.pipeline_name_key, pipeline_id=new.pipeline_id, role_arn=new.role_arn,
                    defn=new.defn, parameters=new.parameters, created_at=new.created_at,
                    experiment_config=new.experiment_config,
                    max_parallel=_parallelism((new.parallelism, new.pipeline_parallelism), default_parallelism),
                    stopping=False)
    ex.progress.start()
    return ex


def load(conn: Connection, key: ExecKey, definition_of: Any, default_parallelism: int) -> ExecState | None:
    """Build the state of an active execution, or None if it is not active (any more)."""
    row = records.load_execution(conn, key)
    if row is None or row.status not in records.ACTIVE_EXECUTION_STATUSES:
        return None
    defn: PipelineDefinition = definition_of(conn, row.pipeline_id, row.pipeline_version_id)
    ex = _new_state(key, arn=row.arn, pipeline_arn=row.pipeline_arn, pipeline_name=row.pipeline_name,
                    pipeline_name_key=row.pipeline_name_key, pipeline_id=row.pipeline_id,
                    role_arn=row.role_arn or row.pipeline_role_arn, defn=defn,
                    parameters=row.resolved_parameters or {}, created_at=row.created_at,
                    experiment_config=row.experiment_config,
                    max_parallel=_parallelism((row.parallelism, row.pipeline_parallelism), default_parallelism),
                    stopping=row.status == "Stopping")

    rows = records.load_steps(conn, key)
    states: dict[str, str] = {}
    outcomes: dict[str, bool] = {}
    for r in rows:  # ordered by seq: a later row of the same step wins
        ex.next_seq = max(ex.next_seq, int(r.seq) + 1)
        if r.step_name not in defn.steps:
            continue
        st = StepState(defn.steps[r.step_name], int(r.seq), RESUME, attempt=int(r.attempt_count or 1),
                       metadata=r.step_metadata)
        ex.steps[r.step_name] = st
        if r.status == "Succeeded":
            states[r.step_name] = SUCCEEDED
            ex.properties[r.step_name] = r.outputs or {}
            if isinstance(r.outputs, dict) and isinstance(r.outputs.get("Outcome"), bool):
                outcomes[r.step_name] = r.outputs["Outcome"]
        elif r.status == "Failed":
            states[r.step_name] = FAILED
            ex.failed = True
            if st.spec.type == "Fail" and ex.fail_message is None:
                ex.fail_message = r.failure_reason or ""
        elif r.status == "Stopped":
            states[r.step_name] = STOPPED
            if not ex.stopping:
                ex.failed = True  # stopped while the execution itself was not: it cannot succeed
        elif r.status in ACTIVE_STEP_STATUSES:
            if r.status == "Starting" and r.started_at is None:
                st.mode = RERUN  # queued by RetryPipelineExecution; scheduled like any ready step
                continue
            states[r.step_name] = RUNNING
            if st.spec.type == "Callback" and _has_token(r.step_metadata):
                st.waiting = True
                ex.waiting.append(r.step_name)
            elif ex.stopping and st.spec.type not in _HANDLER_STOPPABLE:
                ex.stop_now.append(r.step_name)  # the loader records them Stopped
                states[r.step_name] = STOPPED
            else:
                ex.resume.append(r.step_name)

    if row.selective_execution:
        _apply_selection(conn, ex, row.selective_execution, states, outcomes)
    ex.progress.restore(states, outcomes)
    ex.running = len(ex.resume) + len(ex.waiting)
    return ex


# Types whose resumed run can honour a stop themselves (job handlers stop their job); the
# engine's own Condition/Fail and Lambda (whose process died with the server) just stop.
_HANDLER_STOPPABLE = frozenset({"Processing", "Training", "Transform", "Tuning", "Model", "RegisterModel",
                                "Callback"})


def _has_token(metadata: Any) -> bool:
    callback = metadata.get("Callback") if isinstance(metadata, dict) else None
    return isinstance(callback, dict) and bool(callback.get("CallbackToken"))


def ancestors(defn: PipelineDefinition, names: set[str]) -> set[str]:
    seen: set[str] = set()
    stack = [d for n in names for d in defn.dag.get(n, ())]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(defn.dag.get(name, ()))
    return seen


def _apply_selection(conn: Connection, ex: ExecState, config: dict[str, Any], states: dict[str, str],
                     outcomes: dict[str, bool]) -> None:
    """SelectiveExecutionConfig: only the selected steps run; the steps they depend on reuse the
    source execution's results (shown with SelectiveExecutionResult), everything else is left out."""
    selected = {s["StepName"] for s in config.get("SelectedSteps") or [] if s.get("StepName") in ex.defn.steps}
    needed = ancestors(ex.defn, selected) - selected
    for name in ex.defn.steps:
        if name not in selected and name not in needed:
            states.setdefault(name, SKIPPED)
    missing = [n for n in ex.defn.topological_order() if n in needed and states.get(n) != SUCCEEDED]
    if not missing:
        return
    source_arn = config.get("SourcePipelineExecutionArn")
    source = parse_execution_arn(source_arn) if isinstance(source_arn, str) else None
    if source is None:
        ex.abort_reason = (f"SelectiveExecutionConfig: the selected steps depend on step '{missing[0]}', which is "
                           "not selected, and no SourcePipelineExecutionArn was given to reuse its results.")
        return
    source_key = ExecKey(source.account_id, source.region, source.execution_id)
    source_rows = {r.step_name: r for r in records.load_steps(conn, source_key)}
    reused: list[tuple[str, Row[Any]]] = []
    for name in missing:
        r = source_rows.get(name)
        if r is None or r.status != "Succeeded":
            ex.abort_reason = (f"SelectiveExecutionConfig: step '{name}', which the selected steps depend on, did not "
                               f"succeed in source pipeline execution {source_arn}.")
            return
        reused.append((name, r))
    ex.source_arn = source_arn
    for name, r in reused:
        ex.new_step(name).mode = RESUME
        ex.reused.append((name, r))
        states[name] = SUCCEEDED
        ex.properties[name] = r.outputs or {}
        if isinstance(r.outputs, dict) and isinstance(r.outputs.get("Outcome"), bool):
            outcomes[name] = r.outputs["Outcome"]
