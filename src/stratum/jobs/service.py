"""The job service: creates job rows, launches and supervises runs on the executor, records every
transition durably, stops jobs, and after a crash fails the jobs that were left running.

Each job is claimed (stratum.store.claims) by the server that creates it, in the transaction that
records it, and only that server runs it and records its transitions. Several servers may share
one database: a server whose claim on a job was taken over stops it and writes nothing more; the
server that takes over the claim of a dead server's job fails the job as a restart does (its
process, orphaned, is killed when it runs on the same machine).

Per job, a supervisor thread mints the execution role's session, resolves the image to a runtime,
submits a JobSpec to the executor and records the RunResult. The service is a background service
of the server (started and stopped with it); ``get_service(app)`` returns the one of an app.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
import weakref
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError

from stratum.jobs import images, logs, metrics, store
from stratum.jobs.executors import build_executor
from stratum.jobs.executors.base import Executor, JobHandle
from stratum.jobs.process import kill_orphan
from stratum.jobs.spec import JobSpec, RunResult, Transition
from stratum.protocol.errors import ServiceError
from stratum.server import container_credentials
from stratum.store.claims import JOB, ClaimKey, LeaseLost

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

log = logging.getLogger("stratum.jobs")

RESTART_REASON = "Stratum restarted while the job was running"
DEFAULT_MAX_RUNTIME = 86400
SESSION_NAME = "SageMaker"
KINDS_WITH_PROCESS = ("processing", "training", "transform")

_services: weakref.WeakKeyDictionary[Any, JobService] = weakref.WeakKeyDictionary()
_services_lock = threading.Lock()


def get_service(app: AppState) -> JobService:
    """The job service of ``app``, created (and registered as a background service) on first use."""
    with _services_lock:
        service = _services.get(app)
        if service is None:
            service = JobService(app)
            _services[app] = service
            app.add_background(service)
        return service


def _epoch(value: datetime | None = None) -> float:
    return (value or datetime.now(UTC)).timestamp()


class _DbReporter:
    """Live progress of one job into its row."""

    def __init__(self, service: JobService, job_id: str, kind: str) -> None:
        self.service = service
        self.job_id = job_id
        self.kind = kind

    def transition(self, status: str, message: str) -> None:
        if self.kind != "training":
            return
        try:
            self._transition(status, message)
        except LeaseLost:
            self.service._lose(self.job_id)

    def _transition(self, status: str, message: str) -> None:
        with self.service.owned(self.job_id) as conn:
            row = store.get_job_by_id(conn, self.job_id, lock=True)
            if row is None or row.status not in store.ACTIVE:
                return
            now = time.time()
            transitions = _closed(list(row.transitions or []), now)
            transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
            store.update_job(conn, self.job_id, secondary_status=status if row.status != "Stopping" else "Stopping",
                             transitions=transitions)

    def process_started(self, pid: int, marker: str) -> None:
        try:
            with self.service.owned(self.job_id) as conn:
                store.update_job(conn, self.job_id, process={"pid": pid, "marker": marker,
                                                              "host": socket.gethostname()})
        except LeaseLost:
            self.service._lose(self.job_id)


def _closed(transitions: list[dict[str, Any]], at: float) -> list[dict[str, Any]]:
    if transitions and transitions[-1].get("EndTime") is None:
        transitions[-1] = {**transitions[-1], "EndTime": at}
    return transitions


def _merge_transitions(recorded: list[dict[str, Any]], ran: list[Transition]) -> list[dict[str, Any]]:
    """The server's own transitions (Starting, Stopping) interleaved with the runner's, by time."""
    merged = [t for t in recorded if t["Status"] in ("Starting", "Stopping")]
    merged += [{"Status": t.status, "StartTime": t.start, "StatusMessage": t.message} for t in ran]
    merged.sort(key=lambda t: t["StartTime"])
    for i, t in enumerate(merged):
        end = merged[i + 1]["StartTime"] if i + 1 < len(merged) else (ran[-1].end if ran else None)
        t["EndTime"] = end if end is not None else t["StartTime"]
    return merged


class JobService:
    name = "sagemaker-jobs"

    def __init__(self, app: AppState) -> None:
        self.app = app
        self.settings = app.settings
        self.db = app.db
        self.node = app.claims.server_id  # recorded with each job: which server ran it
        self._executor: Executor | None = None
        self._executor_lock = threading.Lock()
        self._lock = threading.Lock()
        self._handles: dict[str, JobHandle] = {}
        self._stopping: set[str] = set()
        self._done: dict[str, threading.Event] = {}
        self._tuners: dict[str, Any] = {}
        self._started: dict[str, float] = {}  # job id -> monotonic time this server claimed it
        self._keys: dict[str, ClaimKey] = {}
        self._recovered = False
        self._closed = False
        self._supervisors: set[threading.Thread] = set()
        self.claims = app.claims
        self._check_claims = not self.db.is_sqlite  # SQLite: one server per database
        self._sweeper: threading.Thread | None = None
        self._sweep_stop = threading.Event()

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.app.renewer.start()
        self.app.renewer.listen(self._claims_renewed)
        self.recover()
        self.executor()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="jobs-sweeper", daemon=True)
        self._sweeper.start()

    def stop(self) -> None:
        """Server shutdown: kill what runs here; the next start records those jobs as failed.
        Supervisors still starting a job give up; all are waited for, so none touches the
        database after the server closes it."""
        self._sweep_stop.set()
        if self._sweeper is not None:
            self._sweeper.join(5)
        with self._lock:
            self._closed = True
            handles = list(self._handles.values())
            tuners = list(self._tuners.values())
            supervisors = list(self._supervisors)
        for tuner in tuners:
            tuner.abandon()
        for handle in handles:
            handle.kill()
        deadline = time.monotonic() + 10
        for handle in handles:
            handle.wait(max(0.0, deadline - time.monotonic()))
        for thread in supervisors:
            thread.join(max(0.0, deadline + 5 - time.monotonic()))
        if self._executor is not None:
            self._executor.shutdown()

    def _shutting_down(self) -> bool:
        """Set from the signal on (before requests drain), so a job the server's going away makes
        fail is not recorded with that failure: it is left for the next start's recovery."""
        started = getattr(self.app, "shutting_down", None)
        return self._closed or (started is not None and started.is_set())

    def executor(self) -> Executor:
        with self._executor_lock:
            if self._executor is None:
                executor = build_executor(self.settings)
                executor.start()
                self._executor = executor
            return self._executor

    def recover(self) -> None:
        """Fail the jobs a server left InProgress/Stopping when it died (at start: a previous run
        of this server; later: another server of the database whose lease expired). They cannot be
        re-attached: local processes were orphaned (killed here if still alive and on this
        machine), Ray tasks died with their driver."""
        if self._recovered:
            return
        self._recovered = True
        self.take_over(reap_dead=True)

    def take_over(self, reap_dead: bool = False) -> int:
        """Claim and fail the jobs whose server is gone; returns how many were failed."""
        taken = [key for key, _former in self.claims.take_over(JOB, reap_dead)]
        with self.db.read() as conn:
            unclaimed = store.unclaimed_active_jobs(conn)
        for row in unclaimed:  # recorded before claims existed
            key = ClaimKey(JOB, row.account_id, row.region, row.job_id)
            if self.claims.acquire(key):
                taken.append(key)
        failed = 0
        for key in taken:
            with self._lock:
                if key.item_id in self._handles or key.item_id in self._tuners:
                    continue  # ours already (a claim renewed late): it runs here
            if self._fail_abandoned(key):
                failed += 1
        return failed

    def _fail_abandoned(self, key: ClaimKey) -> bool:
        host = socket.gethostname()
        now = store.now()
        with self.db.begin() as conn:
            row = store.get_job_by_id(conn, key.item_id, lock=True)
            if row is not None and row.status in store.ACTIVE:
                proc = row.process or {}
                if proc.get("pid") and proc.get("host") == host:
                    kill_orphan(int(proc["pid"]), str(proc.get("marker")))
                values: dict[str, Any] = {"status": "Failed", "failure_reason": RESTART_REASON, "ended_at": now,
                                          "process": None}
                if row.kind == "training":
                    transitions = _closed(list(row.transitions or []), now.timestamp())
                    transitions.append({"Status": "Failed", "StartTime": now.timestamp(),
                                        "EndTime": now.timestamp(), "StatusMessage": RESTART_REASON})
                    values.update(secondary_status="Failed", transitions=transitions)
                store.update_job(conn, row.job_id, **values)
                log.warning("job %s (%s) was running when its server stopped: marked Failed", row.name, row.kind)
            self.claims.release(conn, key)
        return row is not None and row.status in store.ACTIVE

    # ------------------------------------------------------------------------------- claims
    def owned(self, job_id: str) -> Any:
        """A write transaction for a transition of a job this server runs: on PostgreSQL it first
        checks the job's claim (LeaseLost if another server took it over)."""
        key = self._keys.get(job_id)
        if key is None or not self._check_claims:
            return self.db.begin()
        return self.claims.owned(self.db, key)

    def _claims_renewed(self, held: set[ClaimKey], started: float) -> None:
        """After each renewal: stop running the jobs whose claim this server no longer holds."""
        with self._lock:
            mine = [(job_id, key) for job_id, key in self._keys.items() if self._started.get(job_id, started) < started]
        for job_id, key in mine:
            if key not in held:
                self._lose(job_id)

    def _lose(self, job_id: str) -> None:
        with self._lock:
            handle = self._handles.get(job_id)
            tuner = self._tuners.get(job_id)
            self._keys.pop(job_id, None)
        log.warning("server %s lost its claim on job %s: stopping it here", self.claims.server_id, job_id)
        if tuner is not None:
            tuner.abandon()
        if handle is not None:
            handle.kill()

    def _sweep_loop(self) -> None:
        """Take over the jobs of servers that are gone, and act on stop requests another server
        recorded for jobs running here."""
        interval = max(0.5, min(self.claims.lease / 3, 2.0))
        while not self._sweep_stop.wait(interval):
            try:
                self.take_over()
                self._stop_requested_elsewhere()
            except Exception:
                log.exception("jobs sweep failed")

    def _stop_requested_elsewhere(self) -> None:
        with self._lock:
            running = list(self._handles) + list(self._tuners)
        if not running:
            return
        with self.db.read() as conn:
            asked = store.stop_requested(conn, running)
        for job_id in asked:
            with self._lock:
                if job_id in self._stopping:
                    continue
                self._stopping.add(job_id)
                handle = self._handles.get(job_id)
                tuner = self._tuners.get(job_id)
            if handle is not None:
                handle.kill()
            if tuner is not None:
                tuner.request_stop()

    # ------------------------------------------------------------------------------- creation
    def create(self, *, kind: str, account: str, region: str, name: str, request: dict[str, Any],
               tags: list[dict[str, str]], role_arn: str | None, parent_arn: str | None = None,
               context: dict[str, Any] | None = None, launch: bool = True) -> Row[Any]:
        now = store.now()
        arn = store.job_arn(kind, region, account, name)
        transitions = []
        if kind == "training":
            transitions = [{"Status": "Starting", "StartTime": now.timestamp(),
                            "StatusMessage": "Launching requested ML instances"}]
        job_id = uuid.uuid4().hex
        values = {"job_id": job_id, "account_id": account, "region": region, "kind": kind, "name": name,
                  "name_key": name.lower(), "arn": arn, "status": "InProgress",
                  "secondary_status": "Starting" if kind == "training" else None, "request": request,
                  "tags": tags, "role_arn": role_arn, "context": context, "transitions": transitions,
                  "parent_arn": parent_arn, "stop_requested": False, "node": self.node, "created_at": now,
                  "last_modified_at": now}
        key = ClaimKey(JOB, account, region, job_id)
        try:
            with self.db.begin() as conn:
                if store.get_job(conn, account, region, kind, name) is not None:
                    raise _in_use(kind, arn)
                store.insert_job(conn, values)
                self.claims.insert(conn, key)  # this server runs it
                row = store.get_job_by_id(conn, job_id)
        except IntegrityError:
            raise _in_use(kind, arn) from None
        assert row is not None
        with self._lock:
            self._keys[job_id] = key
            self._started[job_id] = time.monotonic()
        if launch:
            self.launch(row)
        return row

    def launch(self, row: Row[Any]) -> None:
        if row.kind == "tuning":
            from stratum.jobs.tuning import TuningRunner

            tuner = TuningRunner(self, row)
            with self._lock:
                self._tuners[row.job_id] = tuner
            tuner.start()
            return
        thread = threading.Thread(target=self._supervise, args=(row,), name=f"job-{row.name}", daemon=True)
        with self._lock:
            if self._closed:
                return  # shutting down: the row stays InProgress and the next start fails it
            self._supervisors.add(thread)
        thread.start()

    # ----------------------------------------------------------------------------- supervising
    def _supervise(self, row: Row[Any]) -> None:
        try:
            try:
                result = self._run(row)
            except LeaseLost:
                result = None
            except Exception as exc:
                log.exception("supervising job %s failed", row.name)
                result = RunResult(status="Failed",
                                   failure_reason=f"InternalServerError: {type(exc).__name__}: {exc}")
            finally:
                with self._lock:
                    self._handles.pop(row.job_id, None)
            try:
                if result is not None and (result.status == "Completed" or not self._shutting_down()):
                    self._finish(row.job_id, result)
            except LeaseLost:
                log.warning("job %s: its claim was taken over, its result is not recorded here", row.name)
        finally:
            with self._lock:
                self._supervisors.discard(threading.current_thread())
                self._keys.pop(row.job_id, None)
                self._started.pop(row.job_id, None)
            self._signal_done(row.job_id)

    def _run(self, row: Row[Any]) -> RunResult | None:
        """The job's result, or None when the server shuts down before the job could start."""
        if self._shutting_down():
            return None
        if self._stop_requested(row.job_id):
            return RunResult(status="Stopped", secondary_status="Stopped" if row.kind == "training" else None)
        image = _image_of(row)
        try:
            runtime = images.resolve(image, getattr(self.settings, "job_images_file", None))
        except images.UnsupportedImage as exc:
            return _failed(row, f"ClientError: {exc}")
        role = row.role_arn or ""
        try:
            from stratum.services.sts.sessions import issue_service_role_session

            duration = max(3600, int(_max_runtime(row) or 0) + 900)
            credentials = issue_service_role_session(self.db, role, SESSION_NAME, duration_seconds=min(duration, 43200))
        except ServiceError as exc:
            return _failed(row, f"ClientError: Could not assume role {role}. Please ensure that the role exists and "
                                f"allows principal 'sagemaker.amazonaws.com' to assume the role. ({exc.message})")
        log_file = logs.log_path(self.settings.data_dir, row.account_id, row.region, row.kind, row.name)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        logs.register_job_stream(self.db, row, log_file, self.settings.data_dir)
        spec = JobSpec(
            job_id=row.job_id, kind=row.kind, name=row.name, arn=row.arn, account_id=row.account_id,
            region=row.region, request=row.request, runtime=runtime.kind, image=image,
            job_dir=str(logs.work_dir(self.settings.data_dir, row.job_id)), log_path=str(log_file),
            endpoint_url=self.settings.endpoint_url,
            credentials={k: credentials[k] for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")},
            credentials_token=container_credentials.token(self.settings.master_key_path, "job", row.job_id, role,
                                                          SESSION_NAME),
            max_runtime=_max_runtime(row), isolation=getattr(self.settings, "job_isolation", "auto") or "auto",
            keep_job_dir=bool(getattr(self.settings, "keep_job_dirs", False)), context=row.context or {},
            python=runtime.python)
        if self._shutting_down():
            return None
        with self.owned(row.job_id) as conn:
            store.update_job(conn, row.job_id, started_at=store.now())
        handle = self.executor().submit(spec, _DbReporter(self, row.job_id, row.kind))
        with self._lock:
            self._handles[row.job_id] = handle
            # stop() may have taken its list of handles just before this one joined it.
            stop_now = row.job_id in self._stopping or self._closed
        if stop_now:
            handle.kill()
        with metrics.publishing(self.db, spec):
            result = handle.wait()
        assert result is not None
        return result

    def _stop_requested(self, job_id: str) -> bool:
        with self.db.read() as conn:
            row = store.get_job_by_id(conn, job_id)
        return row is None or bool(row.stop_requested)

    def _finish(self, job_id: str, result: RunResult) -> None:
        ended = datetime.fromtimestamp(result.ended_at, UTC)
        with self.owned(job_id) as conn:
            key = self._keys.get(job_id)
            if key is not None:
                self.claims.release(conn, key)  # nothing left to run
            row = store.get_job_by_id(conn, job_id, lock=True)
            if row is None or row.status not in store.ACTIVE:
                return
            status = result.status
            if row.status == "Stopping" and status == "Completed" and row.kind != "training":
                status = "Stopped"
            values: dict[str, Any] = {"status": status, "failure_reason": result.failure_reason,
                                      "exit_message": result.exit_message, "ended_at": ended, "process": None}
            if row.started_at is None:
                values["started_at"] = ended
            if row.kind == "training":
                transitions = (_merge_transitions(list(row.transitions or []), result.transitions)
                               if result.transitions else _closed(list(row.transitions or []), result.ended_at))
                if not result.transitions and status != "InProgress":
                    transitions.append({"Status": result.secondary_status or status, "StartTime": result.ended_at,
                                        "EndTime": result.ended_at,
                                        "StatusMessage": result.failure_reason or f"Training job {status.lower()}"})
                values.update(secondary_status=result.secondary_status or status, transitions=transitions,
                              metrics=result.metrics,
                              result={"ModelArtifacts": result.model_artifacts} if result.model_artifacts else None)
            store.update_job(conn, job_id, **values)
        log.info("job %s finished: %s", job_id, result.status)

    # -------------------------------------------------------------------------------- waiting
    def _event(self, job_id: str) -> threading.Event:
        with self._lock:
            event = self._done.get(job_id)
            if event is None:
                event = self._done[job_id] = threading.Event()
            return event

    def _signal_done(self, job_id: str) -> None:
        with self._lock:
            event = self._done.pop(job_id, None)
        if event is not None:
            event.set()

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 1.0) -> Row[Any] | None:
        """Block until the job is no longer InProgress/Stopping (its final row) or ``timeout``."""
        end = None if timeout is None else time.monotonic() + timeout
        event: threading.Event | None = None
        while True:
            with self.db.read() as conn:
                row = store.get_job_by_id(conn, job_id)
            if row is None or row.status not in store.ACTIVE:
                return row
            if event is None:
                event = self._event(job_id)
                continue  # re-read: the job may have finished before the event existed
            remaining = poll if end is None else min(poll, end - time.monotonic())
            if remaining <= 0:
                return None
            # The event fires when this node finishes the job; the poll covers other nodes and recovery.
            event.wait(remaining)
            if event.is_set():
                event = self._event(job_id)

    # -------------------------------------------------------------------------------- stopping
    def stop_job(self, row: Row[Any]) -> None:
        """StopXJob: InProgress -> Stopping, then the run ends Stopped."""
        with self.db.begin() as conn:
            current = store.get_job_by_id(conn, row.job_id, lock=True)
            if current is None or current.status not in store.ACTIVE:
                raise ServiceError("ValidationException", f"The request was rejected because the job is in status "
                                   f"{current.status if current else 'unknown'}.", 400)
            if current.status == "Stopping":
                return
            values: dict[str, Any] = {"status": "Stopping", "stop_requested": True}
            if current.kind == "training":
                now = time.time()
                transitions = _closed(list(current.transitions or []), now)
                transitions.append({"Status": "Stopping", "StartTime": now, "StatusMessage": "Stopping the training job"})
                values.update(secondary_status="Stopping", transitions=transitions)
            store.update_job(conn, row.job_id, **values)
        with self._lock:
            self._stopping.add(row.job_id)
            handle = self._handles.get(row.job_id)
            tuner = self._tuners.get(row.job_id)
        if handle is not None:
            handle.kill()
        if tuner is not None:
            tuner.request_stop()

    def stop_by_id(self, job_id: str) -> None:
        with self.db.read() as conn:
            row = store.get_job_by_id(conn, job_id)
        if row is not None and row.status == "InProgress":
            try:
                self.stop_job(row)
            except ServiceError:
                pass

    def forget_tuner(self, job_id: str) -> None:
        with self._lock:
            self._tuners.pop(job_id, None)
            key = self._keys.pop(job_id, None)
            self._started.pop(job_id, None)
        if key is not None and not self._closed:
            with self.db.begin() as conn:  # the tuning job has ended (or was given up): nothing to hold
                self.claims.release(conn, key)



def _image_of(row: Row[Any]) -> str:
    req = row.request
    if row.kind == "processing":
        return str(req["AppSpecification"]["ImageUri"])
    if row.kind == "training":
        return str((req.get("AlgorithmSpecification") or {}).get("TrainingImage") or "")
    from stratum.jobs.models import containers_of

    containers = containers_of((row.context or {}).get("Model") or {})
    return str((containers[0] if containers else {}).get("Image") or "")


def _max_runtime(row: Row[Any]) -> float | None:
    if row.kind == "transform":
        return None
    condition = row.request.get("StoppingCondition") or {}
    return float(condition.get("MaxRuntimeInSeconds") or DEFAULT_MAX_RUNTIME)


def _failed(row: Row[Any], reason: str) -> RunResult:
    return RunResult(status="Failed", failure_reason=reason,
                     secondary_status="Failed" if row.kind == "training" else None)


_NOUNS = {"processing": "Processing job", "training": "Training job", "transform": "Transform job",
          "tuning": "Hyperparameter tuning job"}


def _in_use(kind: str, arn: str) -> ServiceError:
    return ServiceError("ResourceInUse", f"{_NOUNS[kind]} names must be unique within an AWS account and region, "
                        f"and a {_NOUNS[kind].lower()} with this name already exists ({arn})", 400)
