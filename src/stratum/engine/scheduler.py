"""The pipeline engine: a background service that runs every active pipeline execution.

One dispatcher owns the in-memory state of the executions and decides what runs next; worker
threads do the work and the database writes. The dispatcher is a sequence of callbacks on an
asyncio event loop: in the server, the loop that answers requests (started from the lifespan);
elsewhere (tests, benchmarks), a loop in a thread of its own. On the server's loop it shares one
thread with the request path instead of a second busy thread handing the interpreter lock back and
forth with it, which cost more CPU than the dispatcher's own work. Steps run concurrently up to
the execution's MaxParallelExecutionSteps. The dispatcher learns about executions from the API
in-process (StartPipelineExecution, Stop, Retry, callbacks) and, as a safety net and at start-up,
by polling the executions table for Executing/Stopping rows: a restarted server picks up every
execution where its rows left it.

Worker pools: ``fast`` for the engine's own work (Condition, Fail, Callback, loads, transitions),
``steps`` for handler steps (Lambda, jobs), which may block for a long time. On SQLite, whose
writers take turns anyway, the dispatcher runs Condition and Fail steps itself (a transaction and
no other I/O, like a request): handing each to a worker and its outcome back cost more CPU than
the step.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from stratum.engine import ending, events, records, runner
from stratum.engine.graph import FAILED, STOPPED, SUCCEEDED
from stratum.engine.pool import WorkerPool
from stratum.engine.records import ExecKey
from stratum.engine.runner import Outcome
from stratum.engine.state import (
    ENGINE_TYPES,
    GENERIC_FAILURE,
    INLINE_TYPES,
    MAX_EXECUTION_REASON,
    ExecState,
    NewExecution,
    StepState,
    claim_of,
    fresh,
)
from stratum.store.claims import EXECUTION, LeaseLost

if TYPE_CHECKING:
    from stratum.server.app_state import AppState
    from stratum.services.sagemaker.pipelines.definition import StepSpec

log = logging.getLogger("stratum.engine")

_PURGE_EVERY = 15  # polls


class PipelineEngine:
    name = "pipeline-engine"

    def __init__(self, app: AppState, *, workers: int | None = None, step_threads: int | None = None,
                 poll_seconds: float | None = None, default_parallelism: int | None = None) -> None:
        settings = app.settings
        self.app = app
        self.log = log
        self.workers = workers or settings.engine_workers
        self.step_threads = step_threads or settings.engine_step_threads
        self.poll_seconds = poll_seconds or settings.engine_poll_seconds
        self.default_parallelism = default_parallelism or settings.engine_default_parallelism
        self.closing = threading.Event()
        self.shutdown_event = threading.Event()  # handed to handlers as extra["shutdown"]
        self._inline = app.db.is_sqlite
        # Claims (stratum.store.claims): this server runs an execution only while it holds its
        # claim. Each transition checks it on PostgreSQL; SQLite has one server per database, so a
        # claim there cannot move while this server lives.
        self.claims = app.claims
        self._check_claims = not app.db.is_sqlite
        self._claimed_at_start: set[ExecKey] = set()  # claimed by start_in, in the start's transaction
        self._reap: set[ExecKey] = set()  # found by the first poll held by a server known dead
        # While start_in runs: the caller's transaction, the execution row it is about to insert
        # and the step rows to write once that row is in.
        self._start_conn: Connection | None = None
        self._start_row: dict[str, Any] | None = None
        self._start_writes: list[Callable[[], object]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread_id: int | None = None
        self._own_thread: threading.Thread | None = None  # when not started on a running loop
        self._early: list[tuple[Any, ...]] = []  # events posted before start()
        self._early_lock = threading.Lock()
        self._poll_handle: asyncio.TimerHandle | None = None
        self._executions: dict[ExecKey, ExecState] = {}
        self._loading: set[ExecKey] = set()
        self._stop_while_loading: set[ExecKey] = set()
        self._load_when_finalized: set[ExecKey] = set()  # RetryPipelineExecution racing our finalize
        self._polling = False
        self._polls = 0
        self._fast: WorkerPool | None = None
        self._steps: WorkerPool | None = None
        # Optional hook for benchmarks: called by the dispatcher with (execution, step state) when a
        # step's outcome has been processed; timings are time.perf_counter() values.
        self.on_step_done: Callable[[ExecState, StepState], None] | None = None
        self.on_execution_done: Callable[[ExecKey, str], None] | None = None

    # ------------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start on the running event loop when called from one (the server's lifespan), else on a
        loop in a thread of its own."""
        if self._loop is not None:
            return
        self._load_functions_file()
        self.app.renewer.start()
        self._fast = WorkerPool("engine", self.workers)
        self._steps = WorkerPool("engine-step", self.step_threads)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            self._own_thread = threading.Thread(target=self._run_own_loop, args=(loop, ready),
                                                name="pipeline-engine", daemon=True)
            self._own_thread.start()
            ready.wait()
        else:
            self._loop_thread_id = threading.get_ident()
        with self._early_lock:
            self._loop = loop
            early, self._early = self._early, []
        for event in early:
            self._post(*event)
        self._post("poll")  # at once: executions a previous run left active are resumed

    def _run_own_loop(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        self._loop_thread_id = threading.get_ident()
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            loop.close()

    def stop(self) -> None:
        """Shut down without touching executions: running steps are resumed after the restart."""
        loop = self._loop
        if loop is None:
            return
        self.closing.set()
        self.shutdown_event.set()
        on_loop = threading.get_ident() == self._loop_thread_id
        if self._poll_handle is not None:
            if on_loop:
                self._poll_handle.cancel()
            else:
                self._call_on_loop(self._poll_handle.cancel)
        if self._own_thread is not None:
            self._call_on_loop(loop.stop)
            self._own_thread.join(5)
            self._own_thread = None
        for pool in (self._steps, self._fast):
            if pool is not None:
                pool.shutdown(timeout=5)
        self._loop = None

    def _load_functions_file(self) -> None:
        path = self.app.settings.functions_file
        if not path:
            return
        from stratum.engine.functions import FunctionError, load_file

        try:
            with self.app.db.begin() as conn:
                specs = load_file(conn, Path(path), self.app.settings.region)
            log.info("registered %d Lambda functions from %s", len(specs), path)
        except FunctionError as exc:
            log.error("functions file not loaded: %s", exc)

    def tx(self, ex: ExecState | None = None) -> AbstractContextManager[Connection]:
        """A write transaction for one transition (within start_in: the caller's transaction).

        With ``ex``, the transaction first checks that this server still holds the execution's
        claim and raises LeaseLost if not: nothing is written for an execution another server took.
        """
        conn = self._start_conn
        if conn is not None and threading.get_ident() == self._loop_thread_id:
            return nullcontext(conn)
        if ex is None or not self._check_claims:
            return self.app.db.begin()
        return self.claims.owned(self.app.db, claim_of(ex.key))

    def release_claim(self, conn: Connection, ex: ExecState) -> None:
        """In the transaction that records the execution's end: nothing left to run."""
        self.claims.release(conn, claim_of(ex.key))

    # -------------------------------------------------------------------------------- notifications
    def start_in(self, conn: Connection, new: NewExecution,
                 row: dict[str, Any]) -> list[Callable[[], object]] | None:
        """Decide an execution's first steps inside the transaction that records it, when every one
        of them is a step the dispatcher decides itself (Condition, Fail, no object store read):
        one commit for the start and those decisions instead of two.

        ``row``: the execution's row (status Executing), which the caller inserts after this call.
        If a decided step ends the execution, ``row`` is changed to record that end, so the row is
        written once, already finished. Returns the step rows' writes, to run right after the row's
        insert in the same transaction; if the row is not inserted after all (its
        ClientRequestToken was taken), or the transaction does not commit, call forget(new.key).

        Only on SQLite and on the dispatcher's own thread (the server's event loop, where requests
        run); None when it does not apply: the caller then calls execution_started after its
        commit, as for any other execution. The steps' outcomes are handled after the caller
        returns, as always.
        """
        if self._loop is None or self.closing.is_set():
            return None  # not running: the execution is claimed and loaded like any other
        writes = self._start_inline(conn, new, row)
        if row.get("status", "Executing") == "Executing":
            # Claimed in the transaction that records it: no other server can pick it up between
            # the commit and this server's dispatcher running it.
            self.claims.insert(conn, claim_of(new.key))
            if writes is None:  # the caller posts it with execution_started after its commit
                self._claimed_at_start.add(new.key)
        return writes

    def _start_inline(self, conn: Connection, new: NewExecution,
                      row: dict[str, Any]) -> list[Callable[[], object]] | None:
        if (not self._inline or threading.get_ident() != self._loop_thread_id
                or new.key in self._executions or new.key in self._loading):
            return None
        try:
            ex = fresh(new, self.default_parallelism)
        except Exception:
            return None  # execution_started's own path reports it
        steps = ex.defn.steps
        ready = ex.progress.ready_names()
        if not ready or not all(self._runs_inline(steps[name]) for name in ready):
            return None
        for name in ready:
            # Evaluated now: a step whose expressions fail takes the regular path, which needs the
            # execution's row, so such an execution is left to execution_started.
            st = ex.step(name)
            st.decided = runner.decide(self, ex, st)
            if st.decided is None:
                return None
        writes: list[Callable[[], object]] = []
        self._start_conn, self._start_row, self._start_writes = conn, row, writes
        try:
            self._loaded(new.key, ex)
        finally:
            self._start_conn, self._start_row, self._start_writes = None, None, []
        return writes

    def starting(self) -> tuple[dict[str, Any], list[Callable[[], object]]] | None:
        """Within start_in, for the step it runs: the execution row not inserted yet, and where to
        put the step's own writes (they run once the row is in)."""
        row = self._start_row
        if row is None or threading.get_ident() != self._loop_thread_id:
            return None
        return row, self._start_writes

    def forget(self, key: ExecKey) -> None:
        """The execution start_in was given does not exist after all: its row was not inserted, or
        the transaction did not commit."""
        self._executions.pop(key, None)
        self._claimed_at_start.discard(key)

    def execution_started(self, account_id: str, region: str, execution_id: str,
                          new: NewExecution | None = None) -> None:
        """An execution became Executing (StartPipelineExecution, RetryPipelineExecution).

        ``new``: what StartPipelineExecution committed, so the execution runs without being read back.
        """
        key = ExecKey(account_id, region, execution_id)
        if new is None:
            self._post("load", key)
        else:
            self._post("new", key, new)

    def execution_stopping(self, account_id: str, region: str, execution_id: str) -> None:
        self._post("stop", ExecKey(account_id, region, execution_id))

    def callback_completed(self, account_id: str, region: str, execution_id: str, seq: int) -> None:
        self._post("callback", ExecKey(account_id, region, execution_id), seq)

    # ----------------------------------------------------------------------------------- dispatcher
    def _post(self, *event: Any) -> None:
        """Hand an event to the dispatcher, from any thread; events are handled in posting order."""
        if self.closing.is_set():
            return  # stopped (or stopping): nothing more is handled, so nothing is kept
        loop = self._loop
        if loop is None:
            with self._early_lock:
                if self._loop is None:
                    self._early.append(event)
                    return
                loop = self._loop
        if threading.get_ident() == self._loop_thread_id:
            loop.call_soon(self._dispatch, event)
        else:
            self._call_on_loop(self._dispatch, event)

    def _call_on_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop is closed: the server is shutting down and the event is moot

    def _dispatch(self, event: tuple[Any, ...]) -> None:
        if self.closing.is_set():
            return
        try:
            self._handle(event)
        except Exception:
            log.exception("pipeline engine: handling %r failed", event)

    def _poll(self) -> None:
        """Look for active executions now and every poll_seconds: the safety net behind the
        in-process notifications, and how a restart finds what was running."""
        assert self._loop is not None
        self._poll_handle = self._loop.call_later(self.poll_seconds, self._dispatch, ("poll",))
        if not self._polling:
            self._polling = True
            self._submit_fast(self._poll_job, time.monotonic())

    def _handle(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "poll":
            self._poll()
            return
        key = event[1]
        if kind == "load":
            self._load(key)
        elif kind == "new":
            self._new(key, event[2])
        elif kind == "loaded":
            self._loaded(key, event[2])
        elif kind == "stop":
            ex = self._executions.get(key)
            if ex is not None:
                self._stop(ex)
            elif key in self._loading:
                self._stop_while_loading.add(key)  # the load may have read the row before the stop
            else:
                self._load(key)  # a Stopping execution is loaded (and stopped) like any other
        elif kind == "done":
            self._done(key, event[2], event[3])
        elif kind == "retry":
            self._retry_due(key, event[2])
        elif kind == "callback":
            self._callback(key, event[2])
        elif kind == "finalized":
            self._finalized(key)
        elif kind == "polled":
            self._polled(event[2], event[3], event[4])
        elif kind == "lost":
            self._lost(key)

    def _submit_fast(self, fn: Callable[..., Any], *args: Any) -> None:
        assert self._fast is not None
        self._fast.submit(fn, *args)

    # -------------------------------------------------------------------------------------- loading
    def _new(self, key: ExecKey, new: NewExecution) -> None:
        if key in self._executions or key in self._loading:
            self._claimed_at_start.discard(key)
            return  # a poll found it first: that load covers it (and any stop that came meanwhile)
        if key not in self._claimed_at_start:
            # Not claimed in its start's transaction: claimed first (by a worker), then run.
            self._loading.add(key)
            self._submit_fast(self._claim_new_job, key, new)
            return
        self._claimed_at_start.discard(key)
        try:
            ex = fresh(new, self.default_parallelism)
        except Exception:
            log.exception("preparing pipeline execution %s failed; loading it", key)
            self._load(key)
            return
        self._loaded(key, ex)

    def _claim_new_job(self, key: ExecKey, new: NewExecution) -> None:
        ex: ExecState | None = None
        try:
            if self.claims.acquire(claim_of(key)):
                ex = fresh(new, self.default_parallelism)
        except Exception:
            log.exception("claiming pipeline execution %s failed", key)
        self._post("loaded", key, ex)

    def _load(self, key: ExecKey) -> None:
        ex = self._executions.get(key)
        if ex is not None and (ex.finalizing or ex.ending):
            # Finishing (its end may be committed already, and RetryPipelineExecution may have
            # reopened it since): load it again once the current run is forgotten.
            self._load_when_finalized.add(key)
            return
        if ex is not None or key in self._loading:
            return
        self._loading.add(key)
        self._submit_fast(self._load_job, key)

    def _load_job(self, key: ExecKey) -> None:
        ex: ExecState | None = None
        try:
            from stratum.services.sagemaker.pipelines.records import parsed_version

            reap = key in self._reap
            self._reap.discard(key)
            if self.claims.acquire(claim_of(key), reap_dead=reap):
                with self.app.db.read() as conn:
                    ex = _state_load(conn, key, parsed_version, self.default_parallelism)
                if ex is not None:
                    self._prepare(ex)
                else:  # not active (any more): nothing to hold
                    with self.app.db.begin() as conn:
                        self.claims.release(conn, claim_of(key))
        except LeaseLost:
            ex = None
        except Exception:
            log.exception("loading pipeline execution %s failed", key)
            ex = None
        self._post("loaded", key, ex)

    def _prepare(self, ex: ExecState) -> None:
        """Writes a freshly loaded execution needs before it runs."""
        t = runner.now()
        if ex.reused:
            with self.tx(ex) as conn:
                for name, src in ex.reused:
                    st = ex.steps[name]
                    records.insert_step(conn, ex.key, seq=st.seq, name=name, step_type=src.step_type,
                                        display_name=src.display_name, description=src.description,
                                        status="Succeeded", now=src.started_at or t, ended_at=src.ended_at or t,
                                        outputs=src.outputs, step_metadata=src.step_metadata,
                                        selective_execution_result={"SourcePipelineExecutionArn": ex.source_arn})
            ex.reused = []
        for name in ex.stop_now:
            runner.stop_step(self, ex, ex.steps[name])

    def _loaded(self, key: ExecKey, ex: ExecState | None) -> None:
        self._loading.discard(key)
        stop = key in self._stop_while_loading
        self._stop_while_loading.discard(key)
        if ex is None or key in self._executions:
            return
        self._executions[key] = ex
        ex.stopping = ex.stopping or stop
        if ex.abort_reason is not None:
            ex.failed, ex.fail_message = True, ex.abort_reason
            self._finalize(ex)
            return
        for name in ex.resume:
            st = ex.steps[name]
            if ex.stopping:
                st.stop_event.set()
            self._launch(ex, st)
        for name in ex.waiting:
            # A callback may have arrived between the load's read and now.
            self._submit_fast(self._callback_job, ex, ex.steps[name])
        if ex.stopping:
            self._stop(ex)
        self._pump(ex)

    # ------------------------------------------------------------------------------------ scheduling
    def _pump(self, ex: ExecState) -> None:
        if ex.finalizing:
            return
        progress = ex.progress
        if not ex.stopping and not ex.failed:
            launch: list[StepState] = []
            while ex.running < ex.max_parallel:
                name = progress.pop_ready()
                if name is None:
                    break
                progress.mark_running(name)
                ex.running += 1
                launch.append(ex.step(name))
            if len(launch) == 1 and ex.running == 1 and not progress.has_ready():
                st = launch[0]
                # A Fail step that is all there is left to run ends the execution: the thread that
                # runs it writes the step and the execution's end in one transaction.
                st.ends_execution = ex.ending = st.spec.type == "Fail"
            for st in launch:
                self._launch(ex, st)
        if ex.running == 0 and (ex.stopping or ex.failed or not progress.has_ready()):
            self._finalize(ex)

    def _runs_inline(self, spec: StepSpec) -> bool:
        """Whether the dispatcher runs this step itself (SQLite; Condition and Fail steps that do
        not read the object store) rather than handing it to a worker thread."""
        return self._inline and spec.type in INLINE_TYPES and not spec.uses_json_get

    def _launch(self, ex: ExecState, st: StepState) -> None:
        st.timings["launch"] = time.perf_counter()
        if self._runs_inline(st.spec):
            self._step_job(ex, st)  # its outcome comes back through the queue, like a worker's
            return
        pool = self._fast if st.spec.type in ENGINE_TYPES else self._steps
        assert pool is not None
        pool.submit(self._step_job, ex, st)

    def _step_job(self, ex: ExecState, st: StepState) -> None:
        st.timings["picked"] = time.perf_counter()
        try:
            try:
                outcome = runner.run_step(self, ex, st)
            except LeaseLost:
                raise
            except Exception as exc:
                log.exception("step %s of %s failed in the engine", st.spec.name, ex.arn)
                outcome = self._internal_failure(ex, st, exc)
        except LeaseLost:
            self._post("lost", ex.key)
            return
        self._post("done", ex.key, st.spec.name, outcome)

    def _internal_failure(self, ex: ExecState, st: StepState, exc: Exception) -> Outcome:
        try:
            return runner.finish(self, ex, st, runner.StepResult(
                status="Failed", failure_reason=f"Internal error in the Stratum pipeline engine: {exc}"))
        except LeaseLost:
            raise
        except Exception:
            log.exception("recording the failure of step %s of %s failed", st.spec.name, ex.arn)
            return Outcome("Failed", reason=str(exc))

    def _done(self, key: ExecKey, name: str, outcome: Outcome) -> None:
        ex = self._executions.get(key)
        if ex is None or ex.progress.state.get(name) != "Running":
            return  # an outcome for a step that is not running (a duplicate callback check)
        st = ex.steps[name]
        kind = outcome.kind
        st.ends_execution = False
        if outcome.ended is not None:
            ex.ended = outcome.ended
        if kind == "Waiting":
            st.waiting = True
            if ex.stopping:
                self._submit_fast(self._mark_stopping_job, ex, [st])
            # The callback may already have arrived (before this event): look once.
            self._submit_fast(self._callback_job, ex, st)
            return
        if kind == "Retry":
            assert self._loop is not None
            self._loop.call_later(outcome.delay, self._dispatch, ("retry", key, name))
            return
        if kind == "Abandoned":
            return
        ex.running -= 1
        st.waiting = False
        st.timings["processed"] = time.perf_counter()
        if kind == "Halted":
            # The execution stopped (or vanished) before this step could start: it never ran.
            ex.progress.state[name] = "Pending"
            ex.stopping = True
        elif kind == "Succeeded":
            ex.properties[name] = outcome.outputs or {}
            ex.progress.finish(name, SUCCEEDED, outcome.condition)
        elif kind == "Failed":
            ex.progress.finish(name, FAILED)
            ex.failed = True
            if outcome.fail_step and ex.fail_message is None:
                ex.fail_message = outcome.reason or ""
        else:
            ex.progress.finish(name, STOPPED)
            if not ex.stopping:
                ex.failed = True
        if self.on_step_done is not None and kind != "Halted":
            self.on_step_done(ex, st)
        self._pump(ex)

    def _retry_due(self, key: ExecKey, name: str) -> None:
        ex = self._executions.get(key)
        if ex is None:
            return
        st = ex.steps[name]
        if ex.stopping:
            self._submit_fast(self._stop_step_job, ex, st)
        else:
            self._launch(ex, st)

    def _stop_step_job(self, ex: ExecState, st: StepState) -> None:
        try:
            outcome = runner.stop_step(self, ex, st)
        except LeaseLost:
            self._post("lost", ex.key)
            return
        self._post("done", ex.key, st.spec.name, outcome)

    # -------------------------------------------------------------------------------------- stopping
    def _stop(self, ex: ExecState) -> None:
        if ex.finalizing:
            return
        ex.stopping = True
        running = [st for name, st in ex.steps.items() if ex.progress.state.get(name) == "Running"]
        for st in running:
            st.stop_event.set()
        if running:
            self._submit_fast(self._mark_stopping_job, ex, running)
        self._pump(ex)

    def _mark_stopping_job(self, ex: ExecState, steps: list[StepState]) -> None:
        for st in steps:
            if self.closing.is_set():
                return
            try:
                with self.tx(ex) as conn:
                    t = runner.now()
                    if records.update_step(conn, ex.key, st.seq, t, only_if=("Starting", "Executing"),
                                           status="Stopping"):
                        events.step_status(conn, account=ex.key.account_id, region=ex.key.region,
                                           pipeline_arn=ex.pipeline_arn, execution_arn=ex.arn, step_name=st.spec.name,
                                           step_type=st.spec.type, current="Stopping", previous="Executing",
                                           started=st.started_at, ended=None, metadata=st.metadata, now=t)
            except LeaseLost:
                self._post("lost", ex.key)
                return

    # -------------------------------------------------------------------------------------- callbacks
    def _callback(self, key: ExecKey, seq: int) -> None:
        ex = self._executions.get(key)
        if ex is None:
            self._load(key)
            return
        st = next((s for s in ex.steps.values() if s.seq == seq), None)
        if st is not None and st.waiting:
            self._submit_fast(self._callback_job, ex, st)

    def _callback_job(self, ex: ExecState, st: StepState) -> None:
        try:
            outcome = runner.callback_outcome(self, ex, st)
        except LeaseLost:
            self._post("lost", ex.key)
            return
        if outcome is not None:
            self._post("done", ex.key, st.spec.name, outcome)

    # ------------------------------------------------------------------------------------ finalizing
    def _finalize(self, ex: ExecState) -> None:
        ex.finalizing = True
        if ex.ended is not None:
            # The last step's transaction has recorded the execution's end already.
            if self.on_execution_done is not None:
                self.on_execution_done(ex.key, ex.ended)
            self._finalized(ex.key)
            return
        if ex.stopping:
            status, reason = "Stopped", None
        elif ex.failed:
            status = "Failed"
            reason = (ex.fail_message if ex.fail_message is not None else GENERIC_FAILURE)[:MAX_EXECUTION_REASON]
        else:
            status, reason = "Succeeded", None
        self._submit_fast(self._finalize_job, ex, status, reason)

    def _finalize_job(self, ex: ExecState, status: str, reason: str | None) -> None:
        if self.closing.is_set():
            return
        try:
            with self.tx(ex) as conn:
                t = runner.now()
                if records.finish_execution(conn, ex.key, status, reason, t):
                    ending.execution_ended(conn, ex.key, t)
                self.release_claim(conn, ex)
        except LeaseLost:
            self._post("lost", ex.key)
            return
        except Exception:
            log.exception("finishing pipeline execution %s failed", ex.arn)
        if self.on_execution_done is not None:
            self.on_execution_done(ex.key, status)
        self._post("finalized", ex.key)

    def _finalized(self, key: ExecKey) -> None:
        self._executions.pop(key, None)
        if key in self._load_when_finalized:
            self._load_when_finalized.discard(key)
            self._load(key)

    # --------------------------------------------------------------------------------------- polling
    def _poll_job(self, started: float) -> None:
        try:
            self._polls += 1
            if self._polls % _PURGE_EVERY == 0:
                # Claims left on executions that are not active: a start whose row was not
                # inserted after all (its ClientRequestToken was taken).
                self.claims.purge(EXECUTION, records.is_active)
            with self.app.db.read() as conn:
                active = records.active_executions(conn)
        except Exception:
            log.exception("pipeline engine: polling for executions failed")
            active = None
        self._post("polled", None, started, active, self._polls == 1)

    def _polled(self, started: float, active: list[records.ActiveExecution] | None, first: bool) -> None:
        self._polling = False
        if active is None:
            return
        statuses = {a.key: a.status for a in active}
        me = self.claims.server_id
        now = time.time()
        for key, status, parallelism, owner, expires_at in active:
            ex = self._executions.get(key)
            if owner != me and owner is not None and first and self.claims.is_dead(owner):
                self._reap.add(key)  # a restart: what its dead predecessor ran resumes at once
            elif owner != me and owner is not None and not self.claims.claimable(owner, expires_at, now):
                # Another live server runs it. If this one still runs it too, its claim was taken
                # over (this server stalled past its lease): stop acting on it.
                if ex is not None and ex.loaded_at < started and not ex.finalizing:
                    self._lost(key)
                continue
            if ex is None:
                self._load(key)  # unclaimed, claimable, or ours but not running here: claimed and loaded
            elif status == "Stopping" and not ex.stopping:
                self._stop(ex)
            elif isinstance(parallelism, dict) and isinstance(parallelism.get("MaxParallelExecutionSteps"), int):
                # UpdatePipelineExecution may change the limit of a running execution.
                limit = max(1, parallelism["MaxParallelExecutionSteps"])
                if limit != ex.max_parallel:
                    ex.max_parallel = limit
                    self._pump(ex)
            if ex is not None and not ex.finalizing:
                # SendPipelineExecutionStep* may have reached another server, which cannot tell
                # this one: look at every waiting Callback step.
                for st in ex.steps.values():
                    if st.waiting:
                        self._submit_fast(self._callback_job, ex, st)
        for key, ex in list(self._executions.items()):
            # Gone from the active list although loaded before the poll began: stopped at once by
            # the API, or deleted with its pipeline. Nothing more may be written for it.
            if key not in statuses and ex.loaded_at < started and not ex.finalizing:
                ex.stopping = True
                if ex.running == 0:
                    self._executions.pop(key, None)

    def _lost(self, key: ExecKey) -> None:
        """This server no longer holds the execution's claim (another server took it over after
        its lease expired): forget it without writing anything; its handlers are told to give up
        (their outcomes are ignored) and the new owner resumes the execution from its rows."""
        ex = self._executions.pop(key, None)
        if ex is None:
            return
        ex.lost = True
        log.warning("server %s lost its claim on pipeline execution %s: no longer running it here",
                    self.claims.server_id, ex.arn)

    # --------------------------------------------------------------------------------------- queries
    def active_count(self) -> int:
        return len(self._executions)



def _state_load(conn: Connection, key: ExecKey, definition_of: Any, default_parallelism: int) -> ExecState | None:
    from stratum.engine.state import load

    return load(conn, key, definition_of, default_parallelism)
