"""Running notebook instances: the state machine behind the API's statuses.

The API records what the caller asked for (Pending, Stopping, Updating, Deleting) and hands the
instance to the server holding its claim (kind ``notebook``, see stratum.store.claims): that server
prepares the volume, runs the lifecycle scripts, starts JupyterLab and records InService (or
Failed with the reason), and later stops or deletes it. A server that starts (or takes over the
claims of a server that is gone) serves the InService instances again: their orphaned processes are
killed and JupyterLab starts anew on the same volume.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from stratum import sdkconfig
from stratum.jobs import logs as job_logs
from stratum.notebooks import processes, store, workspace
from stratum.server import container_credentials
from stratum.store.claims import ClaimKey, LeaseLost

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

log = logging.getLogger("stratum.notebooks")

NOTEBOOK = "notebook"  # claims kind
LOG_GROUP = "/aws/sagemaker/NotebookInstances"
PROXY_PREFIX = "/_stratum/notebooks/"
SESSION_NAME = "SageMaker"  # the role session name SageMaker uses for notebook instances
LIFECYCLE_TIMEOUT = float(os.environ.get("STRATUM_NOTEBOOK_LIFECYCLE_TIMEOUT", 300))
READY_TIMEOUT = 90.0
_SERVICE_ATTR = "_notebook_service"


def get_service(app: AppState) -> NotebookService:
    service = getattr(app, _SERVICE_ATTR, None)
    if service is None:
        service = NotebookService(app)
        setattr(app, _SERVICE_ATTR, service)
        app.add_background(service)
    return service


def base_path(account: str, region: str, name: str) -> str:
    return f"{PROXY_PREFIX}{account}/{region}/{name.lower()}"


def key_of(row: Any) -> ClaimKey:
    return ClaimKey(NOTEBOOK, row.account_id, row.region, row.instance_id)


class NotebookService:
    name = "sagemaker-notebooks"

    def __init__(self, app: AppState) -> None:
        self.app = app
        self.db = app.db
        self.settings = app.settings
        self.claims = app.claims
        self._lock = threading.Lock()
        self._workers: dict[str, threading.Thread] = {}
        self._again: set[str] = set()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}  # JupyterLab servers started here
        self._owned: set[str] = set()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._closed = False

    # ---------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self.app.renewer.start()
        self._take_over(reap_dead=True)
        self._sweeper = threading.Thread(target=self._sweep_loop, name="notebooks-sweeper", daemon=True)
        self._sweeper.start()

    def stop(self) -> None:
        """Server shutdown: JupyterLab servers and scripts started here end with it; the instances
        stay InService and the next start serves them again."""
        self._stop.set()
        with self._lock:
            self._closed = True
            workers = list(self._workers.values())
        for thread in workers:
            thread.join(10)
        if self._sweeper is not None:
            self._sweeper.join(5)
        with self.db.read() as conn:
            rows = [store.get_instance_by_id(conn, i) for i in list(self._owned)]
        for row in rows:
            if row is not None:
                self._kill(row)

    def endpoint_url(self) -> str:
        host = self.settings.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.settings.port}"

    # ----------------------------------------------------------------------------------- claims
    def _take_over(self, reap_dead: bool = False) -> None:
        taken = [key for key, _former in self.claims.take_over(NOTEBOOK, reap_dead)]
        with self.db.read() as conn:
            live = store.live_instances(conn)
        for row in live:  # a live instance nobody claims (its server released it): take it
            if row.instance_id not in self._owned and self.claims.acquire(key_of(row), reap_dead=reap_dead):
                taken.append(key_of(row))
        for key in taken:
            with self._lock:
                self._owned.add(key.item_id)
            self.kick(key.item_id)

    def _sweep_loop(self) -> None:
        interval = max(0.5, min(self.claims.lease / 3, 2.0))
        while not self._stop.wait(interval):
            try:
                self._take_over()
                self._follow_requests()
            except Exception:
                log.exception("notebook sweep failed")

    def _follow_requests(self) -> None:
        """Stop/Update/Delete recorded by another server for an instance running here."""
        with self._lock:
            owned = list(self._owned)
            busy = set(self._workers)
        if not owned:
            return
        with self.db.read() as conn:
            found = store.statuses(conn, owned)
        for instance_id in owned:
            status = found.get(instance_id)
            if instance_id in busy:
                continue
            if status is None or status in ("Stopping", "Updating", "Deleting", "Pending"):
                self.kick(instance_id)
            elif status == "InService":
                proc = self._procs.get(instance_id)
                if proc is None or proc.poll() is not None:  # JupyterLab exited: it is started again
                    self.kick(instance_id)
            elif status in ("Stopped", "Failed"):
                with self._lock:
                    self._owned.discard(instance_id)

    def adopt(self, instance_id: str) -> None:
        """The API just claimed this instance for this server."""
        with self._lock:
            self._owned.add(instance_id)
        self.kick(instance_id)

    # ----------------------------------------------------------------------------------- workers
    def kick(self, instance_id: str) -> None:
        with self._lock:
            if self._closed:
                return
            if instance_id in self._workers:
                self._again.add(instance_id)
                return
            thread = threading.Thread(target=self._work, args=(instance_id,), name=f"notebook-{instance_id[:8]}",
                                      daemon=True)
            self._workers[instance_id] = thread
        thread.start()

    def _work(self, instance_id: str) -> None:
        try:
            while True:
                try:
                    self._step(instance_id)
                except LeaseLost:
                    log.warning("notebook instance %s: claim lost, leaving it to its new server", instance_id)
                    with self._lock:
                        self._owned.discard(instance_id)
                except Exception:
                    log.exception("notebook instance %s: transition failed", instance_id)
                with self._lock:
                    if instance_id not in self._again or self._closed:
                        self._workers.pop(instance_id, None)
                        return
                    self._again.discard(instance_id)
        finally:
            with self._lock:
                self._workers.pop(instance_id, None)

    def _owned_tx(self, row: Any) -> Any:
        if self.db.is_sqlite:
            return self.db.begin()
        return self.claims.owned(self.db, key_of(row))

    def _step(self, instance_id: str) -> None:
        with self.db.read() as conn:
            row = store.get_instance_by_id(conn, instance_id)
        if row is None:
            self._release(instance_id)
            return
        if row.status == "Pending":
            self._launch(row)
        elif row.status == "InService":
            proc = self._procs.get(instance_id)
            if proc is None or proc.poll() is not None:
                self._relaunch(row)
        elif row.status == "Stopping":
            self._kill(row)
            with self._owned_tx(row) as conn:
                store.update_instance(conn, instance_id, status="Stopped", process=None,
                                      last_modified_at=store.now())
            self._release(instance_id, row)
        elif row.status == "Updating":
            with self._owned_tx(row) as conn:
                store.update_instance(conn, instance_id, status="Stopped", last_modified_at=store.now())
            self._release(instance_id, row)
        elif row.status == "Deleting":
            self._kill(row)
            shutil.rmtree(workspace.layout(self.settings.data_dir, instance_id).root, ignore_errors=True)
            with self._owned_tx(row) as conn:
                store.delete_instance(conn, instance_id)
                self.claims.release(conn, key_of(row))
            with self._lock:
                self._owned.discard(instance_id)
        else:  # Stopped, Failed: nothing runs
            self._release(instance_id, row)

    def _release(self, instance_id: str, row: Any = None) -> None:
        with self._lock:
            self._owned.discard(instance_id)
        if row is not None:
            with self.db.begin() as conn:
                self.claims.release(conn, key_of(row))

    # ------------------------------------------------------------------------------------ start
    def _launch(self, row: Any) -> None:
        lay = workspace.layout(self.settings.data_dir, row.instance_id)
        token = self._credentials_token(row)
        with self._owned_tx(row) as conn:
            store.update_instance(conn, row.instance_id, process={"host": socket.gethostname(), "sessions": []})
        try:
            config = row.config or {}
            workspace.prepare(lay, name=row.name, arn=row.arn, root_access=config.get("RootAccess", "Enabled") == "Enabled")
            workspace.aws_config(lay, row.region, self.endpoint_url())
            self._sdk_defaults(lay, row)
            env = self._environment(row, token)
            lifecycle = self._lifecycle_config(row)
            if not row.created_once:
                self._clone_repositories(row, lay)
                if lifecycle and lifecycle.on_create:
                    self._run_hook(row, lay, env, "OnCreate", lifecycle.on_create[0]["Content"], lifecycle.arn)
                with self._owned_tx(row) as conn:
                    store.update_instance(conn, row.instance_id, created_once=True)
            if lifecycle and lifecycle.on_start:
                self._run_hook(row, lay, env, "OnStart", lifecycle.on_start[0]["Content"], lifecycle.arn)
            port = self._start_jupyter(row, lay, env)
        except _LaunchFailed as exc:
            self._kill(self._reread(row))
            if self._closed:
                return  # the server is going away (it killed the scripts): the next start launches it
            with self._owned_tx(row) as conn:
                store.update_instance(conn, row.instance_id, status="Failed", failure_reason=exc.reason,
                                      process=None, last_modified_at=store.now())
            self._release(row.instance_id, row)
            return
        with self._owned_tx(row) as conn:
            current = store.get_instance_by_id(conn, row.instance_id, lock=True)
            if current is None or current.status != "Pending":
                pass
            else:
                process = dict(current.process or {})
                process["port"] = port
                store.update_instance(conn, row.instance_id, status="InService", failure_reason=None,
                                      process=process, last_modified_at=store.now())
        if current is None or current.status != "Pending":
            self.kick(row.instance_id)

    def _relaunch(self, row: Any) -> None:
        """An InService instance whose JupyterLab is not running here (after a restart)."""
        self._kill(row)
        lay = workspace.layout(self.settings.data_dir, row.instance_id)
        token = self._credentials_token(row)
        with self._owned_tx(row) as conn:
            store.update_instance(conn, row.instance_id, process={"host": socket.gethostname(), "sessions": []})
        try:
            workspace.prepare(lay, name=row.name, arn=row.arn,
                              root_access=(row.config or {}).get("RootAccess", "Enabled") == "Enabled")
            workspace.aws_config(lay, row.region, self.endpoint_url())
            port = self._start_jupyter(row, lay, self._environment(row, token))
        except _LaunchFailed as exc:
            with self._owned_tx(row) as conn:
                store.update_instance(conn, row.instance_id, status="Failed", failure_reason=exc.reason,
                                      process=None, last_modified_at=store.now())
            self._release(row.instance_id, row)
            return
        with self._owned_tx(row) as conn:
            current = store.get_instance_by_id(conn, row.instance_id, lock=True)
            if current is not None:
                process = dict(current.process or {})
                process["port"] = port
                store.update_instance(conn, row.instance_id, process=process)
        log.info("notebook instance %s serves again on port %s", row.name, port)

    def _reread(self, row: Any) -> Any:
        with self.db.read() as conn:
            return store.get_instance_by_id(conn, row.instance_id) or row

    def _record_session(self, row: Any, pid: int) -> None:
        with self._owned_tx(row) as conn:
            current = store.get_instance_by_id(conn, row.instance_id, lock=True)
            if current is None:
                return
            process = dict(current.process or {})
            process["sessions"] = [*process.get("sessions", []), pid]
            store.update_instance(conn, row.instance_id, process=process)

    def _environment(self, row: Any, token: str) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items()
                if not k.startswith(("AWS_", "STRATUM_", "SAGEMAKER_", "JUPYTER", "VIRTUAL_ENV", "PYTHON"))}
        bin_dir = str(Path(sys.executable).parent)
        keep["PATH"] = os.pathsep.join([bin_dir, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
                                        "/sbin", "/bin"])
        endpoint = self.endpoint_url()
        keep.update({
            **container_credentials.environment(endpoint, token),
            "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": row.region, "AWS_REGION": row.region,
        })
        return keep

    def _sdk_defaults(self, lay: workspace.Layout, row: Any) -> None:
        """The SDK's user defaults file: the default bucket and no telemetry (see stratum.sdkconfig)."""
        target = lay.home / ".config" / "sagemaker"
        target.mkdir(parents=True, exist_ok=True)
        (target / "config.yaml").write_text(yaml.safe_dump(sdkconfig.document(row.region, row.account_id)))
        if workspace.isolation() == "mountns":
            uid, gid = workspace.ec2_user_ids()
            for path in (lay.home / ".config", target, target / "config.yaml"):
                os.chown(path, uid, gid)

    def _lifecycle_config(self, row: Any) -> Any:
        if not row.lifecycle_config_name:
            return None
        with self.db.read() as conn:
            found = store.get_config(conn, row.account_id, row.region, row.lifecycle_config_name)
        if found is None:
            raise _LaunchFailed(f"Notebook Instance Lifecycle Config "
                                f"'{store.config_arn(row.region, row.account_id, row.lifecycle_config_name)}' "
                                "does not exist.")
        return found

    def _stream(self, row: Any, lay: workspace.Layout, suffix: str) -> Path:
        """The log file of stream ``<name>/<suffix>`` (created in the instance's account)."""
        from stratum.services.logs import catalog

        path = lay.logs / (suffix if suffix.endswith(".log") else f"{suffix}.log")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        relative = os.path.relpath(path, self.settings.data_dir)
        with self.db.begin() as conn:
            catalog.create_group(conn, row.account_id, row.region, LOG_GROUP)
            catalog.create_stream(conn, row.account_id, row.region, LOG_GROUP, f"{row.name}/{suffix}", path=relative)
        return path

    def _run_hook(self, row: Any, lay: workspace.Layout, env: dict[str, str], hook: str, content: str,
                  config_arn: str) -> None:
        log_path = self._stream(row, lay, f"LifecycleConfig{hook}")
        try:
            script = base64.b64decode(content)
        except ValueError:
            script = b""
        argv, full_env = workspace.command(lay, ["/bin/bash", "{script}"], env, as_user=False)
        outcome, code = processes.run_script(argv, full_env, script=script, log_path=log_path,
                                             timeout=LIFECYCLE_TIMEOUT, marker=row.instance_id,
                                             on_start=lambda pid: self._record_session(row, pid))
        if outcome == processes.ScriptResult.TIMEOUT:
            raise _LaunchFailed(f"Notebook Instance Lifecycle Config '{config_arn}' for Notebook Instance "
                                f"'{row.arn}' took longer than 5 minutes. Please check your CloudWatch logs for "
                                "more details if your Notebook Instance has Internet access.")
        if outcome == processes.ScriptResult.FAILED:
            raise _LaunchFailed(f"Notebook Instance Lifecycle Config '{config_arn}' for Notebook Instance "
                                f"'{row.arn}' failure. Please check your CloudWatch logs for more details if your "
                                f"Notebook Instance has Internet access. (exit code {code})")

    def _clone_repositories(self, row: Any, lay: workspace.Layout) -> None:
        config = row.config or {}
        names = [n for n in [config.get("DefaultCodeRepository"), *(config.get("AdditionalCodeRepositories") or [])]
                 if n]
        for ref in names:
            url, branch = ref, None
            if not ref.startswith(("http://", "https://", "git@", "/", "file://")):
                with self.db.read() as conn:
                    repo = store.get_repository(conn, row.account_id, row.region, ref)
                if repo is None:
                    raise _LaunchFailed(f"Code repository {ref} does not exist.")
                url, branch = repo.git_config["RepositoryUrl"], repo.git_config.get("Branch")
            target = lay.volume / Path(url.rstrip("/")).name.removesuffix(".git")
            if target.exists():
                continue
            cmd = ["git", "clone", "--quiet", *(["--branch", branch] if branch else []), url, str(target)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                                  env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
            if done.returncode != 0:
                raise _LaunchFailed(f"Failed to clone the code repository {url}: {done.stderr.strip()[-500:]}")
            if workspace.isolation() == "mountns":
                uid, gid = workspace.ec2_user_ids()
                subprocess.run(["chown", "-R", f"{uid}:{gid}", str(target)], check=False)

    def _start_jupyter(self, row: Any, lay: workspace.Layout, env: dict[str, str]) -> int:
        port = _free_port()
        token = secrets.token_hex(24)
        base = base_path(row.account_id, row.region, row.name) + "/"
        root_dir = workspace.VOLUME if workspace.isolation() == "mountns" else str(lay.volume)
        argv = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
                "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.base_url={base}",
                f"--ServerApp.root_dir={root_dir}", "--LabApp.news_url=", "--ServerApp.open_browser=False",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                # Without a namespace Stratum may run as root, which Jupyter refuses unless told.
                "--ServerApp.allow_root=True",
                # A few hundred ms less at every start: no language-server discovery, no PyPI
                # extension manager (it would reach PyPI from the browser's requests).
                "--ServerApp.jpserver_extensions={'jupyter_lsp': False}", "--LabApp.extension_manager=readonly"]
        full_argv, full_env = workspace.command(lay, argv, env, as_user=True)
        full_env[processes.MARKER_ENV] = row.instance_id
        log_path = self._stream(row, lay, "jupyter.log")
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(full_argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=full_env, cwd=str(lay.volume), start_new_session=True)
        self._procs[row.instance_id] = proc
        with self._owned_tx(row) as conn:
            current = store.get_instance_by_id(conn, row.instance_id, lock=True)
            process = dict((current.process if current is not None else None) or {})
            process.update(pid=proc.pid, port=port, token=token,
                           sessions=[*process.get("sessions", []), proc.pid])
            store.update_instance(conn, row.instance_id, process=process)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                job_logs.flush(log_path)
                raise _LaunchFailed(f"The Jupyter server of the notebook instance exited (code {proc.returncode}); "
                                    f"see the log stream {row.name}/jupyter.log")
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}{base}api/status",
                                                 headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(request, timeout=1) as answer:
                    if answer.status == 200:
                        job_logs.flush(log_path)
                        return port
            except OSError:
                time.sleep(0.05)
        raise _LaunchFailed("The Jupyter server of the notebook instance did not start in time")

    # ------------------------------------------------------------------------------------- stop
    def _kill(self, row: Any) -> None:
        proc = self._procs.pop(row.instance_id, None)
        process = row.process or {}
        sessions = list(process.get("sessions") or [])
        if proc is not None:
            sessions.append(proc.pid)
        if process.get("host") not in (None, socket.gethostname()):
            sessions = [proc.pid] if proc is not None else []
        processes.kill_sessions(sorted(set(sessions)))
        if proc is not None:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    # ------------------------------------------------------------------------------ credentials
    def _credentials_token(self, row: Any) -> str:
        """The instance's processes get its role from the container-credentials endpoint, which
        answers this token while the instance runs (see stratum.server.container_credentials)."""
        return container_credentials.token(Path(self.settings.master_key_path), "notebook", row.instance_id,
                                           row.role_arn, SESSION_NAME)

    def upstream(self, account: str, region: str, name: str) -> tuple[Any, int, str] | None:
        """(row, port, jupyter token) of an InService instance, for the proxy."""
        with self.db.read() as conn:
            row = store.get_instance(conn, account, region, name)
        if row is None or row.status != "InService" or not row.process or not row.process.get("port"):
            return None
        return row, int(row.process["port"]), str(row.process.get("token") or "")


class _LaunchFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
