"""One endpoint instance on this server: a model server per container of the variant's model,
started, watched and stopped here.

Booting (the model's artifacts from S3 as its execution role, code, launch, /ping) runs in a
thread of its own; the supervisor only looks at ``state`` and records what it sees, so the
database has one writer per endpoint. A model server that dies is started again on the same
/opt/ml (nothing is downloaded twice). After a restart of Stratum, a model server the previous
process left running is adopted (``Adopted``) when it still answers /ping.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stratum.hosting import modelserver
from stratum.jobs import contracts, images, process
from stratum.jobs import logs as job_logs
from stratum.jobs.contracts import Layout
from stratum.jobs.models import containers_of
from stratum.jobs.s3io import S3, JobDataError
from stratum.server import container_credentials

log = logging.getLogger("stratum.hosting")

SESSION_NAME = "SageMaker"
SESSION_SECONDS = 43200
STABLE_SECONDS = 60.0  # a model server up this long that dies is restarted at once
RESTART_DELAY_MAX = 30.0
PING_FAILURES = 3  # /ping misses in a row that make a model server be restarted


def container_hostnames(model: dict[str, Any]) -> list[str]:
    """Each container's ContainerHostname (``container-<n>`` when the model leaves it unset)."""
    return [c.get("ContainerHostname") or f"container-{i + 1}" for i, c in enumerate(containers_of(model))]


@dataclass
class Adopted:
    """A model server a previous process of this server started (not our child)."""

    pid: int
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def poll(self) -> int | None:
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return -1
        return -1 if stat.rpartition(")")[2].split()[0] in ("Z", "X") else None


@dataclass
class Plan:
    """What an instance runs: the account/region it belongs to, the model, where its files go."""

    account_id: str
    region: str
    endpoint_name: str
    variant: str
    model: dict[str, Any]
    work_dir: Path
    log_path: Path
    endpoint_url: str
    isolation: str
    images_file: Path | None
    master_key_path: Path  # signs the instance's container-credentials token


@dataclass
class LocalInstance:
    instance_id: str
    endpoint_id: str
    deployment: int
    variant: str
    plan: Plan
    # starting | ready | restarting | failed | stopped
    state: str = "starting"
    failure: str | None = None
    draining_until: float | None = None
    recorded: str | None = None  # the status last written to its rows
    servers: dict[str, Any] = field(default_factory=dict)  # hostname -> ModelServer | Adopted
    env: dict[str, dict[str, str]] = field(default_factory=dict)  # hostname -> environment
    runtimes: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    multi_model: set[str] = field(default_factory=set)  # containers in Mode MultiModel
    db: Any = None  # the server's database (role sessions)
    ping_failures: dict[str, int] = field(default_factory=dict)  # hostname -> /ping misses in a row
    _next_ping: float = 0.0
    _pinging: bool = False
    restarts: int = 0  # restarts in a row (a crash loop waits longer before each)
    ready_since: float | None = None
    _thread: threading.Thread | None = None
    _cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def hostnames(self) -> list[str]:
        return container_hostnames(self.plan.model)

    @property
    def marker(self) -> str:
        return f"endpoint-{self.instance_id}"

    def note(self, message: str) -> None:
        with contextlib.suppress(OSError):
            job_logs.append_line(self.plan.log_path, f"[stratum] {message}")

    # ------------------------------------------------------------------------------------ booting
    def start(self, db: Any) -> None:
        self.state = "starting"
        self._thread = threading.Thread(target=self._boot, args=(db,), name=f"instance-{self.instance_id}",
                                        daemon=True)
        self._thread.start()

    def _boot(self, db: Any) -> None:
        self.db = db
        try:
            self._prepare(db)
            for hostname in self.hostnames:
                self._launch(hostname)
            self._wait_all()
            self.ready_since = time.monotonic()
            self.state = "ready"
            self.note("all containers answer /ping: in service")
        except _Cancelled:
            pass
        except Exception as exc:  # every failure is the instance's, recorded as its FailureReason
            if not self._cancel.is_set():
                self.failure = _reason(exc, self)
                log.warning("instance %s of endpoint %s failed: %s", self.instance_id, self.plan.endpoint_name,
                            self.failure)
                self.note(f"failed: {self.failure}")
                self._kill_all()
                self.state = "failed"

    def _prepare(self, db: Any) -> None:
        model = self.plan.model
        role = model.get("ExecutionRoleArn")
        credentials: dict[str, str] | None = None
        if role:
            from stratum.protocol.errors import ServiceError
            from stratum.services.sts.sessions import issue_service_role_session

            try:
                session = issue_service_role_session(db, role, SESSION_NAME, duration_seconds=SESSION_SECONDS)
            except ServiceError as exc:
                raise JobDataError(f"Could not assume role {role}. Please ensure that the role exists and allows "
                                   f"principal 'sagemaker.amazonaws.com' to assume the role. ({exc.message})") from None
            credentials = {k: session[k] for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")}
        for hostname, container in zip(self.hostnames, containers_of(model), strict=True):
            self._check_cancel()
            image = str(container.get("Image") or "")
            try:
                runtime = images.resolve(image, self.plan.images_file)
            except images.UnsupportedImage as exc:
                raise JobDataError(str(exc)) from None
            self.runtimes[hostname] = runtime.kind
            layout = Layout(self.plan.work_dir / hostname)
            layout.ml.mkdir(parents=True, exist_ok=True)
            env_vars = {str(k): str(v) for k, v in (container.get("Environment") or {}).items()}
            if container.get("Mode") == "MultiModel":
                # ModelDataUrl is the prefix the models are loaded from on demand, not an archive.
                self.multi_model.add(hostname)
                container = {k: v for k, v in container.items() if k != "ModelDataUrl"}
            self.images[hostname] = image
            if credentials is None:
                if container.get("ModelDataUrl"):
                    raise JobDataError(f"the model has no ExecutionRoleArn to read {container['ModelDataUrl']}")
                env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
            else:
                s3 = S3(self.plan.endpoint_url, self.plan.region, credentials)
                env_vars = modelserver.prepare_container(s3, container, env_vars, layout, self.note)
                token = container_credentials.token(self.plan.master_key_path, "endpoint", self.instance_id,
                                                    str(role), SESSION_NAME)
                env = contracts.base_environment(self.plan.region, self.plan.endpoint_url, contracts.identity_environment(
                    self.plan.endpoint_url, credentials, token))
            for key, value in env_vars.items():
                env[key] = layout.remap(value)
            env["SAGEMAKER_CONTAINER_HOSTNAME"] = hostname
            self.env[hostname] = env

    def _launch(self, hostname: str) -> None:
        self._check_cancel()
        layout = Layout(self.plan.work_dir / hostname)
        server = modelserver.launch(runtime=self.runtimes[hostname], layout=layout, env=self.env[hostname],
                                    log_path=self.plan.log_path, marker=self.marker, isolation=self.plan.isolation,
                                    image=self.images.get(hostname), multi_model=hostname in self.multi_model)
        self.servers[hostname] = server
        self.note(f"started the model server of container {hostname} on port {server.port} (pid {server.pid})")

    def _wait_all(self) -> None:
        for hostname in self.hostnames:
            server = self.servers[hostname]
            try:
                modelserver.wait_ready(server, modelserver.PING_TIMEOUT, self._check_cancel)
            except modelserver.NotReady as exc:
                raise _NotReady(hostname, exc.exit_code) from None

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise _Cancelled()

    # ------------------------------------------------------------------------------------- health
    def dead(self) -> list[str]:
        """Containers whose model server exited, or stopped answering /ping (only meaningful once ready)."""
        exited = [h for h, s in self.servers.items() if (s.poll() if isinstance(s, Adopted) else s.proc.poll())
                  is not None]
        return exited or [h for h, n in self.ping_failures.items() if n >= PING_FAILURES]

    def check_health(self, interval: float) -> None:
        """Every ``interval`` seconds, GET /ping on each container (in a thread of its own, so a
        server that hangs holds nobody up); PING_FAILURES misses in a row make it dead()."""
        now = time.monotonic()
        if self.state != "ready" or now < self._next_ping or self._pinging:
            return
        self._next_ping = now + interval
        self._pinging = True
        timeout = max(1.0, min(5.0, interval))

        def probe() -> None:
            try:
                for hostname, server in list(self.servers.items()):
                    ok = modelserver.ping(server.url, timeout)
                    self.ping_failures[hostname] = 0 if ok else self.ping_failures.get(hostname, 0) + 1
            finally:
                self._pinging = False

        threading.Thread(target=probe, name=f"ping-{self.instance_id}", daemon=True).start()

    def restart(self, dead: list[str]) -> None:
        codes = {h: (self.servers[h].poll() if isinstance(self.servers[h], Adopted) else self.servers[h].proc.returncode)
                 for h in dead}
        hung = {h for h in dead if codes[h] is None}
        self.ping_failures.clear()
        if self.ready_since is not None and time.monotonic() - self.ready_since > STABLE_SECONDS:
            self.restarts = 0  # it had been running fine: this is not a crash loop
        delay = 0.0 if self.restarts == 0 else min(RESTART_DELAY_MAX, 0.5 * 2 ** (self.restarts - 1))
        self.restarts += 1
        for hostname, code in codes.items():
            message = (f"the model server of container {hostname} did not answer /ping {PING_FAILURES} times in a "
                       "row: restarting it" if hostname in hung else
                       f"the model server of container {hostname} exited with code {code}: restarting it")
            log.warning("endpoint %s instance %s: %s", self.plan.endpoint_name, self.instance_id, message)
            self.note(message)
        self.state = "restarting"
        self.ready_since = None
        self._thread = threading.Thread(target=self._relaunch, args=(dead, delay), name=f"restart-{self.instance_id}",
                                        daemon=True)
        self._thread.start()

    def _relaunch(self, dead: list[str], delay: float) -> None:
        try:
            if delay:
                self.note(f"waiting {delay:g} seconds before the restart (it crashed {self.restarts - 1} times "
                          "in a row)")
                if self._cancel.wait(delay):
                    return
            for hostname in dead:
                old = self.servers.get(hostname)
                if old is not None:
                    _kill(old, 0)
                if hostname not in self.env:
                    # Adopted after a restart of Stratum: its files are there, its environment
                    # (the role's credentials) is made again.
                    self._prepare(self.db)
                self._launch(hostname)
            self._wait_all()
            self.ready_since = time.monotonic()
            self.state = "ready"
            self.note("restarted: in service again")
        except _Cancelled:
            pass
        except Exception as exc:
            if not self._cancel.is_set():
                self.failure = _reason(exc, self)
                self.note(f"restart failed: {self.failure}")
                self._kill_all()
                self.state = "failed"

    # ----------------------------------------------------------------------------------- stopping
    def stop(self) -> None:
        self._cancel.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)
        self._kill_all()
        self.state = "stopped"
        with contextlib.suppress(OSError):
            job_logs.flush(self.plan.log_path)
        shutil.rmtree(self.plan.work_dir, ignore_errors=True)

    def _kill_all(self) -> None:
        for server in list(self.servers.values()):
            _kill(server, 1.0)


class _Cancelled(Exception):
    pass


class _NotReady(Exception):
    def __init__(self, hostname: str, exit_code: int | None) -> None:
        super().__init__(hostname)
        self.hostname = hostname
        self.exit_code = exit_code


def _kill(server: Any, grace: float) -> None:
    if isinstance(server, Adopted):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.pid, signal.SIGTERM)
        end = time.monotonic() + grace
        while time.monotonic() < end and server.poll() is None:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.pid, signal.SIGKILL)
        return
    process.kill_group(server.pid, grace, server.proc)


def last_lines(path: Path, count: int = 5) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines()
                 if ln.strip() and not ln.startswith("[stratum]")]
    except OSError:
        return ""
    return "\n".join(lines[-count:])


def _reason(exc: Exception, instance: LocalInstance) -> str:
    variant = instance.variant
    if isinstance(exc, _NotReady):
        which = "primary container" if len(instance.hostnames) == 1 else f"container {exc.hostname}"
        why = (f"the model server exited with code {exc.exit_code}" if exc.exit_code is not None
               else f"the model server did not answer /ping within {modelserver.PING_TIMEOUT:g} seconds")
        tail = last_lines(instance.plan.log_path)
        return (f"The {which} for production variant {variant} did not pass the ping health check. Please check "
                f"CloudWatch logs for this endpoint. ({why}{': ' + tail if tail else ''})")
    if isinstance(exc, JobDataError):
        message = str(exc)
        return message[len("ClientError: "):] if message.startswith("ClientError: ") else message
    return f"InternalServerError: {type(exc).__name__}: {exc}"
