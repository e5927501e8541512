"""What an executor needs to run one job, and what comes back. Plain, picklable data: the same
objects travel to a thread of the local pool or to a Ray worker."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class JobSpec:
    job_id: str
    kind: str  # processing | training | transform
    name: str
    arn: str
    account_id: str
    region: str
    request: dict[str, Any]  # the Create*Job request
    runtime: str  # images.RUNTIMES
    image: str
    job_dir: str  # the per-job directory; <job_dir>/ml stands in for /opt/ml
    log_path: str
    endpoint_url: str  # the Stratum server the job's S3 traffic and boto3 calls go to
    credentials: dict[str, str]  # the execution role session: AccessKeyId, SecretAccessKey, SessionToken
    # The job's token for the container-credentials endpoint (its processes' renewable identity).
    credentials_token: str | None = None
    max_runtime: float | None = None  # seconds, from StoppingCondition
    isolation: str = "auto"  # how /opt/ml paths are remapped: auto | mountns | pathpatch
    stop_grace: float = 5.0  # seconds between SIGTERM and SIGKILL when stopping
    keep_job_dir: bool = False
    python: str | None = None  # the image's interpreter when not the server's (images.Runtime.python)
    context: dict[str, Any] = field(default_factory=dict)  # e.g. the Model of a transform job


@dataclass
class Transition:
    status: str
    start: float
    message: str = ""
    end: float | None = None


@dataclass
class RunResult:
    status: str  # Completed | Failed | Stopped
    failure_reason: str | None = None
    exit_message: str | None = None
    secondary_status: str | None = None
    transitions: list[Transition] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)  # {"MetricName", "Value", "Timestamp"}
    model_artifacts: str | None = None
    started_at: float | None = None
    ended_at: float = field(default_factory=time.time)
    log_text: str | None = None  # set when the log could not be written where the server reads it


class Reporter(Protocol):
    """Live progress from a runner; the local executor records it as it happens."""

    def transition(self, status: str, message: str) -> None: ...

    def process_started(self, pid: int, marker: str) -> None: ...


class NullReporter:
    def transition(self, status: str, message: str) -> None:
        pass

    def process_started(self, pid: int, marker: str) -> None:
        pass
