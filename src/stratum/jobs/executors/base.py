"""The executor interface: submit a JobSpec, get a handle to wait on, poll or kill."""

from __future__ import annotations

from abc import ABC, abstractmethod

from stratum.jobs.spec import JobSpec, Reporter, RunResult


class JobHandle(ABC):
    @abstractmethod
    def poll(self) -> RunResult | None:
        """The result if the job has finished, else None."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> RunResult | None:
        """Block until the job finishes (its result) or ``timeout`` passes (None)."""

    @abstractmethod
    def kill(self) -> None:
        """Ask the runner to stop: it kills the process tree and returns a Stopped result."""


class Executor(ABC):
    name: str = ""

    def start(self) -> None:  # noqa: B027 - optional hook
        """Connect to whatever runs the jobs (called once, when the server starts)."""

    @abstractmethod
    def submit(self, spec: JobSpec, reporter: Reporter) -> JobHandle: ...

    def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Release resources; running jobs have been killed by then."""


def internal_failure(exc: BaseException) -> RunResult:
    return RunResult(status="Failed", failure_reason=f"InternalServerError: {type(exc).__name__}: {exc}")
