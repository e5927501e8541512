"""SageMaker API: Execution-engine operations: RetryPipelineExecution, SendPipelineExecutionStepSuccess/Failure."""

from __future__ import annotations

from stratum.server.context import Provider


class EngineApi(Provider):
    """Operations are methods named after the API operation in snake_case (see Provider)."""
