"""The contract between the engine and the code that runs one step.

The engine resolves a step's arguments (parameters, property references, Std:Join, Std:JsonGet),
calls the handler for its type in a worker thread, and records the result durably. Handlers for
job steps live with the jobs; Condition, Fail and Callback are run by the engine itself.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stratum.server.app_state import AppState


@dataclass
class StepRun:
    """Everything a step handler may use. Executions run in the pipeline owner's account."""

    app: AppState
    account_id: str
    region: str
    pipeline_name: str
    pipeline_arn: str
    execution_id: str
    execution_arn: str
    role_arn: str  # the execution role of the pipeline (or of the execution, when it overrides it)
    step_name: str
    step_type: str
    arguments: Any  # the step's Arguments with every expression resolved to concrete values
    raw: dict[str, Any]  # the step as written in the definition
    attempt: int  # 1-based; retries (RetryPolicies) increase it
    stop_event: threading.Event  # set when the execution is stopped: stop the work, return Stopped
    # Set by the engine:
    #   "job_name": a deterministic name for the resource the step creates, unique per
    #       (execution, step, attempt): "pipelines-<execution id>-<step>-<hash>" (at most 63 chars);
    #   "resume": True when the step was already running before a server restart (or is re-run
    #       after RetryPipelineExecution): a resource named job_name may exist: attach to it and
    #       wait for it instead of creating another; create it if it does not exist;
    #   "metadata": the step's Metadata recorded so far (on resume), e.g. the job ARN;
    #   "shutdown": a threading.Event set when the server shuts down: return promptly (any result
    #       is discarded and the step is resumed after the restart);
    #   "step_fields": the step's top-level fields other than Arguments (FunctionArn, ...), resolved.
    extra: dict[str, Any] = field(default_factory=dict)
    # Records ListPipelineExecutionSteps Metadata while the step runs (e.g. the job ARN as soon as
    # the job exists), durably and at once; see set_metadata.
    publish_metadata: Callable[[dict[str, Any]], None] | None = None

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        """Record the step's Metadata now (StepResult.metadata replaces it at the end)."""
        if self.publish_metadata is not None:
            self.publish_metadata(metadata)


@dataclass
class StepResult:
    status: str  # "Succeeded" | "Failed" | "Stopped"
    # What {"Get": "Steps.<name>.<path>"} reads: the Describe* response of the resource the step
    # created (DescribeProcessingJob, DescribeTrainingJob, DescribeModelPackage, ...), or for
    # Lambda/Callback steps {"OutputParameters": {...}}.
    properties: dict[str, Any] = field(default_factory=dict)
    # ListPipelineExecutionSteps "Metadata", e.g. {"ProcessingJob": {"Arn": "..."}}.
    metadata: dict[str, Any] = field(default_factory=dict)
    failure_reason: str | None = None
    # For RetryPolicies: "SageMaker.JOB_INTERNAL_ERROR", "SageMaker.CAPACITY_ERROR",
    # "SageMaker.RESOURCE_LIMIT", "Step.SERVICE_FAULT", "Step.THROTTLING".
    error_type: str | None = None


StepHandler = Callable[[StepRun], StepResult]

# Step type -> "module:function". Imported lazily so the engine does not import every service.
STEP_HANDLERS: dict[str, str] = {
    "Processing": "stratum.jobs.steps:run_processing_step",
    "Training": "stratum.jobs.steps:run_training_step",
    "Transform": "stratum.jobs.steps:run_transform_step",
    "Tuning": "stratum.jobs.steps:run_tuning_step",
    "Model": "stratum.services.sagemaker.registry.steps:run_model_step",
    "RegisterModel": "stratum.services.sagemaker.registry.steps:run_register_model_step",
    "Lambda": "stratum.engine.lambda_step:run_lambda_step",
    # Callback steps hold no thread while they wait: the engine runs them itself (callback_step).
}

_resolved: dict[str, StepHandler] = {}
_lock = threading.Lock()


def step_handler(step_type: str) -> StepHandler | None:
    with _lock:
        if step_type in _resolved:
            return _resolved[step_type]
        target = STEP_HANDLERS.get(step_type)
        if target is None:
            return None
        module_name, _, func_name = target.partition(":")
        handler: StepHandler = getattr(importlib.import_module(module_name), func_name)
        _resolved[step_type] = handler
        return handler
