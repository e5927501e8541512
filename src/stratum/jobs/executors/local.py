"""The default executor: each job's runner in a thread of a bounded pool; the runner starts the
job's process on this machine."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from stratum.jobs.executors.base import Executor, JobHandle, internal_failure
from stratum.jobs.runner import run_job
from stratum.jobs.spec import JobSpec, Reporter, RunResult


class LocalHandle(JobHandle):
    def __init__(self, future: Future[RunResult], cancel: threading.Event) -> None:
        self.future = future
        self.cancel = cancel

    def _result(self) -> RunResult:
        if self.future.cancelled():
            return RunResult(status="Stopped")
        try:
            return self.future.result()
        except BaseException as exc:  # the runner catches its own errors; this is a last resort
            return internal_failure(exc)

    def poll(self) -> RunResult | None:
        return self._result() if self.future.done() else None

    def wait(self, timeout: float | None = None) -> RunResult | None:
        try:
            self.future.result(timeout)
        except FutureTimeout:
            return None
        except BaseException:
            pass
        return self._result()

    def kill(self) -> None:
        self.cancel.set()
        self.future.cancel()  # not started yet (the pool is full): it never will be


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, workers: int = 16) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stratum-job")

    def submit(self, spec: JobSpec, reporter: Reporter) -> JobHandle:
        cancel = threading.Event()
        return LocalHandle(self.pool.submit(run_job, spec, reporter, cancel), cancel)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
