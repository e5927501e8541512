"""The hosting service: runs the instances of the endpoints this server claims, and routes.

Every endpoint is claimed (stratum.store.claims, kind "endpoint") by the server that creates it;
with several servers on one database exactly one runs an endpoint's model servers, and when its
lease expires another server takes the endpoint over. A supervisor thread brings each claimed
endpoint to what its row asks for, pass after pass:

- the serving deployment's variants and the pending one's (UpdateEndpoint) get as many instances
  as they want; instances nobody wants any more are drained (out of the routes first, stopped
  ``DRAIN_SECONDS`` later, longer than a route is cached) or stopped;
- a model server that died is started again (the endpoint is SystemUpdating meanwhile);
- when a pending deployment is up it becomes the serving one (blue/green), and when one cannot
  come up the endpoint is Failed (creation) or goes back to what it served (an update);
- Deleting: the processes are stopped and the endpoint's rows removed.

After a restart, a model server the previous process left running is adopted when it still
answers /ping (a restart of Stratum does not interrupt an endpoint); any other is killed and
started again.

``route(account, region, name)`` answers from the Router's cache (stratum.hosting.router).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from sqlalchemy import Row

from stratum.hosting import deployments, modelserver, records
from stratum.hosting.instances import Adopted, LocalInstance, Plan, container_hostnames
from stratum.hosting.metrics import EndpointMetrics
from stratum.hosting.router import Router
from stratum.hosting.routes import EndpointRoute
from stratum.jobs import logs as job_logs
from stratum.jobs import process
from stratum.store.claims import ClaimKey, LeaseLost

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

log = logging.getLogger("stratum.hosting")

ENDPOINT = "endpoint"
DRAIN_SECONDS = 5.0
PASS_SECONDS = 0.25
SWEEP_SECONDS = 2.0
LOG_GROUP = "/aws/sagemaker/Endpoints/"


@dataclass
class _Endpoint:
    key: ClaimKey
    adopting: bool = True  # first pass: look at the instance rows a previous owner left
    instances: dict[str, LocalInstance] = field(default_factory=dict)
    name: str = ""
    since: float = field(default_factory=time.monotonic)  # when this server began running it
    # Held while the supervisor acts on the endpoint, and by a DeleteEndpoint done in the request.
    lock: threading.Lock = field(default_factory=threading.Lock)


def _ours(pid: int, marker: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{process.MARKER_ENV}={marker}".encode() in environ.split(b"\0")


class HostingService:
    name = "sagemaker-hosting"

    def __init__(self, app: AppState) -> None:
        self.app = app
        self.db = app.db
        self.settings = app.settings
        self.claims = app.claims
        self.router = Router(app.db)
        self.metrics = EndpointMetrics(app.db, app.settings.endpoint_metrics_seconds)
        self._endpoints: dict[str, _Endpoint] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sweep_now = True
        self._first_sweep = True
        self._thread: threading.Thread | None = None
        self._check_claims = not self.db.is_sqlite
        self._host = socket.gethostname()

    # ------------------------------------------------------------------------------- interface
    def route(self, account: str, region: str, endpoint_name: str) -> EndpointRoute | None:
        """The endpoint's route (None if there is no such endpoint); cached, see Router."""
        return self.router.route(account, region, endpoint_name)

    def invalidate(self, account: str, region: str, endpoint_name: str) -> None:
        self.router.invalidate(account, region, endpoint_name)

    def delete_now(self, endpoint_id: str) -> bool:
        """DeleteEndpoint on the server that runs the endpoint: its processes are stopped and its
        rows removed before the call answers. False when this server does not run it (its owner
        acts on the Deleting status at its next pass)."""
        with self._lock:
            ep = self._endpoints.get(endpoint_id)
        if ep is None:
            return False
        with ep.lock:
            with self.db.read() as conn:
                row = records.endpoints(conn, [endpoint_id]).get(endpoint_id)
            if row is None:
                return True
            if row.status != "Deleting":
                return False
            self._delete(ep, row)
        return True

    def wake(self) -> None:
        """Something was recorded for an endpoint: act on it now rather than at the next pass."""
        self._sweep_now = True
        self._wake.set()

    # ------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self.app.renewer.start()
        self.app.renewer.listen(self._claims_renewed)
        self._thread = threading.Thread(target=self._run, name="hosting-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Server shutdown: the model servers stop with it (the next start runs them again)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(15)
        with self._lock:
            endpoints = list(self._endpoints.values())
            self._endpoints.clear()
        for ep in endpoints:
            for inst in ep.instances.values():
                inst.stop()
            try:
                self._stopped(ep)
            except Exception:
                log.exception("recording the stop of endpoint %s failed", ep.name or ep.key.item_id)

    def _stopped(self, ep: _Endpoint) -> None:
        """The instances are gone: out of the routes, and an InService endpoint is SystemUpdating
        until a server (this one after its restart, or another) runs them again."""
        if not ep.instances:
            return
        with self._tx(ep) as conn:
            for instance_id in ep.instances:
                records.delete_instance(conn, instance_id)
            row = records.endpoints(conn, [ep.key.item_id]).get(ep.key.item_id)
            if row is not None and row.status == "InService":
                records.set_status(conn, row, "SystemUpdating")

    def _claims_renewed(self, held: set[ClaimKey], started: float) -> None:
        # A claim taken after the renewal began is not in ``held`` yet: only older ones can be lost.
        with self._lock:
            lost = [eid for eid, ep in self._endpoints.items() if ep.key not in held and ep.since < started]
        for endpoint_id in lost:
            log.warning("server %s lost its claim on endpoint %s: stopping its instances here",
                        self.claims.server_id, endpoint_id)
            self._drop(endpoint_id)

    def _drop(self, endpoint_id: str) -> None:
        with self._lock:
            ep = self._endpoints.pop(endpoint_id, None)
        if ep is not None:
            for inst in ep.instances.values():
                inst.stop()

    # ---------------------------------------------------------------------------------- the loop
    def _run(self) -> None:
        next_sweep = 0.0
        while not self._stop.is_set():
            self._wake.wait(PASS_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                if self._sweep_now or time.monotonic() >= next_sweep:
                    self._sweep_now = False
                    self._sweep()
                    next_sweep = time.monotonic() + SWEEP_SECONDS
                self._pass()
            except Exception:
                log.exception("hosting supervisor pass failed")

    def _sweep(self) -> None:
        """Pick up the endpoints this server runs: its own claims, claims of servers that are gone,
        and endpoints nobody claims."""
        taken = {key for key, _former in self.claims.take_over(ENDPOINT, reap_dead=self._first_sweep)}
        self._first_sweep = False
        owners = self.claims.owners(ENDPOINT)
        mine = {key for key, (owner, _exp) in owners.items() if owner == self.claims.server_id} | taken
        claimed_ids = {key.item_id for key in owners}
        with self.db.read() as conn:
            ids = records.active_endpoint_ids(conn)
            rows = records.endpoints(conn, [i for i in ids if i not in claimed_ids])
        for row in rows.values():
            key = ClaimKey(ENDPOINT, row.account_id, row.region, row.endpoint_id)
            if self.claims.acquire(key):
                mine.add(key)
        with self._lock:
            for key in mine:
                if key.item_id not in self._endpoints:
                    self._endpoints[key.item_id] = _Endpoint(key)

    def _pass(self) -> None:
        with self._lock:
            endpoints = list(self._endpoints.values())
        if not endpoints:
            return
        with self.db.read() as conn:
            rows = records.endpoints(conn, [ep.key.item_id for ep in endpoints])
        for ep in endpoints:
            try:
                with ep.lock:
                    with self._lock:
                        current = self._endpoints.get(ep.key.item_id) is ep
                    if current:  # not deleted (delete_now) or dropped meanwhile
                        self._reconcile(ep, rows.get(ep.key.item_id))
            except LeaseLost:
                self._drop(ep.key.item_id)
            except Exception:
                log.exception("supervising endpoint %s failed", ep.name or ep.key.item_id)
            for inst in list(ep.instances.values()):
                try:
                    job_logs.flush(inst.plan.log_path)
                except OSError:
                    pass
        if self.metrics.due():
            try:
                self.metrics.publish([(ep.key.account_id, ep.key.region, ep.name, list(ep.instances.values()))
                                      for ep in endpoints if ep.name])
            except Exception:
                log.exception("publishing endpoint metrics failed")

    def _tx(self, ep: _Endpoint) -> Any:
        return self.claims.owned(self.db, ep.key) if self._check_claims else self.db.begin()

    # ----------------------------------------------------------------------------- reconciling
    def _reconcile(self, ep: _Endpoint, row: Row[Any] | None) -> None:
        if row is None:  # gone (deleted by another server that took it over and gave it back)
            self._drop(ep.key.item_id)
            with self.db.begin() as conn:
                self.claims.release(conn, ep.key)
            return
        ep.name = row.name
        if row.status == "Deleting":
            self._delete(ep, row)
            return
        if ep.adopting:
            self._adopt(ep, row)
            ep.adopting = False
        if row.status == "Failed":
            self._stop_all(ep, row)
            return
        wanted = self._wanted(row)
        changed = self._scale(ep, row, wanted)
        changed |= self._watch(ep, row)
        if changed:
            self.invalidate(row.account_id, row.region, row.name)
        self._transition(ep, row, wanted)

    def _wanted(self, row: Row[Any]) -> dict[tuple[int, str], tuple[int, dict[str, Any]]]:
        wanted: dict[tuple[int, str], tuple[int, dict[str, Any]]] = {}
        for dep in (row.serving, row.pending):
            if dep:
                for v in dep["Variants"]:
                    wanted[(dep["Deployment"], v["VariantName"])] = (int(v["DesiredInstanceCount"]), v)
        return wanted

    def _live(self, ep: _Endpoint, key: tuple[int, str]) -> list[LocalInstance]:
        return [i for i in ep.instances.values()
                if (i.deployment, i.variant) == key and i.draining_until is None and i.state != "failed"]

    def _scale(self, ep: _Endpoint, row: Row[Any], wanted: dict[tuple[int, str], tuple[int, dict[str, Any]]]) -> bool:
        changed = False
        now = time.time()
        pending_dep = row.pending["Deployment"] if row.pending else None
        for inst in list(ep.instances.values()):
            key = (inst.deployment, inst.variant)
            if inst.draining_until is not None:
                if now >= inst.draining_until:
                    self._retire(ep, inst)
                continue
            if key not in wanted:
                self._drain(ep, inst)
                changed = True
            elif inst.state == "failed" and inst.deployment != pending_dep and row.status != "Updating":
                # A serving instance that cannot come back is replaced by a new one.
                self._retire(ep, inst)
                changed = True
        for key, (count, variant) in wanted.items():
            live = self._live(ep, key)
            for _ in range(count - len(live)):
                self._launch(ep, row, key[0], variant)
            if len(live) > count:
                for inst in sorted(live, key=lambda i: i.state == "ready")[: len(live) - count]:
                    self._drain(ep, inst)
                    changed = True
        return changed

    def _watch(self, ep: _Endpoint, row: Row[Any]) -> bool:
        """Record instances that came up, restart model servers that died."""
        changed = False
        for inst in list(ep.instances.values()):
            if inst.draining_until is not None:
                continue
            if inst.state == "ready":
                inst.check_health(self.settings.endpoint_health_seconds)
                dead = inst.dead()
                if dead:
                    inst.restart(dead)
                    with self._tx(ep) as conn:
                        records.set_instance(conn, inst.instance_id, "Restarting")
                    inst.recorded = "Restarting"
                    changed = True
                elif inst.recorded != "InService":
                    with self._tx(ep) as conn:
                        records.set_instance(conn, inst.instance_id, "InService", inst.servers, inst.marker,
                                             owner=self.claims.server_id)
                    inst.recorded = "InService"
                    changed = True
        return changed

    def _transition(self, ep: _Endpoint, row: Row[Any], wanted: dict[tuple[int, str], tuple[int, dict[str, Any]]]
                    ) -> None:
        def up(dep: dict[str, Any]) -> bool:
            return all(sum(1 for i in self._live(ep, (dep["Deployment"], v["VariantName"]))
                           if i.state == "ready" and i.recorded == "InService") == int(v["DesiredInstanceCount"])
                       for v in dep["Variants"])

        def failure(dep: dict[str, Any]) -> str | None:
            for inst in ep.instances.values():
                if inst.deployment == dep["Deployment"] and inst.state == "failed" and inst.draining_until is None:
                    return inst.failure or "The endpoint's instances could not start."
            return None

        # Decide first: a write transaction only when there is something to record.
        action: tuple[str, Any] | None = None
        if row.pending:
            reason = failure(row.pending)
            if reason is not None:
                action = ("failed", reason)
            elif up(row.pending):
                if row.serving is not None and deployments.policy_of(row.pending):
                    # A blue/green policy: the traffic moves in steps, watched by its alarms.
                    decided = deployments.next_step(row.pending, time.time(), self._in_alarm(row))
                    if decided is not None:
                        kind, detail = decided
                        action = ("failed", detail) if kind == "rollback" else (kind, detail)
                else:
                    action = ("deployed", None)
        elif row.serving:
            settled = up(row.serving) and all(
                len(self._live(ep, key)) == count for key, (count, _v) in wanted.items())
            if row.status == "Updating":
                reason = failure(row.serving)
                if reason is not None:
                    action = ("failed", reason)
                elif settled:
                    action = ("resized", None)
            elif row.status == "InService" and not settled:
                action = ("status", "SystemUpdating")
            elif row.status == "SystemUpdating" and settled:
                action = ("status", "InService")
        if action is None:
            return
        kind, detail = action
        if kind == "failed" and row.serving is None:
            # A Failed endpoint runs nothing: its instances are gone before the status says so.
            for inst in list(ep.instances.values()):
                self._retire(ep, inst)
        with self._tx(ep) as conn:
            if kind == "failed":
                done = records.failed(conn, row, str(detail))
            elif kind == "deployed":
                done = records.deployed(conn, row)
            elif kind == "resized":
                done = records.resized(conn, row)
            elif kind == "shift":
                done = records.shifted(conn, row, detail)
            else:
                done = records.set_status(conn, row, str(detail))
        if done:
            log.info("endpoint %s: %s%s", row.name, kind, f" ({detail})" if detail else "")
            if kind == "shift":
                self._note_all(ep, f"traffic to the new fleet: {detail['Fraction'] * 100:g}%")
            self.invalidate(row.account_id, row.region, row.name)
            self._wake.set()

    def _in_alarm(self, row: Row[Any]) -> list[str]:
        """The update's rollback alarms that are in ALARM now."""
        names = deployments.alarm_names(row.pending)
        if not names:
            return []
        from stratum.services.cloudwatch import alarms

        with self.db.read() as conn:
            found = [alarms.get(conn, row.account_id, row.region, name) for name in names]
        return [a.name for a in found if a is not None and a.state_value == "ALARM"]

    @staticmethod
    def _note_all(ep: _Endpoint, message: str) -> None:
        for inst in ep.instances.values():
            inst.note(message)

    # ------------------------------------------------------------------------------- instances
    def _plan(self, row: Row[Any], instance_id: str, variant: dict[str, Any]) -> Plan:
        data_dir = Path(self.settings.data_dir)
        return Plan(account_id=row.account_id, region=row.region, endpoint_name=row.name,
                    variant=variant["VariantName"], model=variant["Model"],
                    work_dir=data_dir / "hosting" / "work" / instance_id,
                    log_path=data_dir / "hosting" / "logs" / row.account_id / row.region / row.endpoint_id
                    / f"{instance_id}.log",
                    endpoint_url=self.settings.endpoint_url,
                    isolation=process.resolve_isolation(getattr(self.settings, "job_isolation", "auto") or "auto"),
                    images_file=getattr(self.settings, "job_images_file", None),
                    master_key_path=Path(self.settings.master_key_path))

    def _launch(self, ep: _Endpoint, row: Row[Any], deployment: int, variant: dict[str, Any]) -> None:
        from stratum.services.logs import catalog

        instance_id = "i-" + uuid.uuid4().hex[:17]
        plan = self._plan(row, instance_id, variant)
        plan.log_path.parent.mkdir(parents=True, exist_ok=True)
        plan.log_path.touch()
        inst = LocalInstance(instance_id, row.endpoint_id, deployment, variant["VariantName"], plan)
        group = LOG_GROUP + row.name
        with self._tx(ep) as conn:
            records.insert_instance(conn, instance_id=instance_id, endpoint_id=row.endpoint_id, deployment=deployment,
                                    variant=variant["VariantName"], hostnames=container_hostnames(variant["Model"]),
                                    owner=self.claims.server_id)
            catalog.create_group(conn, row.account_id, row.region, group)
            catalog.create_stream(conn, row.account_id, row.region, group, f"{variant['VariantName']}/{instance_id}",
                                  path=os.path.relpath(plan.log_path, self.settings.data_dir))
        inst.recorded = "Pending"
        ep.instances[instance_id] = inst
        log.info("endpoint %s: starting instance %s of variant %s", row.name, instance_id, variant["VariantName"])
        inst.start(self.db)

    def _drain(self, ep: _Endpoint, inst: LocalInstance) -> None:
        """Out of the routes now, stopped once no cached route can still send to it."""
        if inst.recorded != "InService":
            self._retire(ep, inst)
            return
        inst.draining_until = time.time() + DRAIN_SECONDS
        with self._tx(ep) as conn:
            records.set_instance(conn, inst.instance_id, "Draining", drain_until=inst.draining_until)
        inst.note(f"draining: stopping in {DRAIN_SECONDS:g} seconds")

    def _retire(self, ep: _Endpoint, inst: LocalInstance) -> None:
        inst.note("stopping")
        inst.stop()
        ep.instances.pop(inst.instance_id, None)
        with self._tx(ep) as conn:
            records.delete_instance(conn, inst.instance_id)

    def _stop_all(self, ep: _Endpoint, row: Row[Any]) -> None:
        for inst in list(ep.instances.values()):
            self._retire(ep, inst)
        with self.db.read() as conn:
            left = records.instances(conn, row.endpoint_id)
        if left:
            self._kill_rows(left)
            with self._tx(ep) as conn:
                for r in left:
                    records.delete_instance(conn, r.instance_id)
            self.invalidate(row.account_id, row.region, row.name)

    def _delete(self, ep: _Endpoint, row: Row[Any]) -> None:
        for inst in list(ep.instances.values()):
            inst.note("endpoint deleted: stopping")
            inst.stop()
        ep.instances.clear()
        with self.db.read() as conn:
            self._kill_rows(records.instances(conn, row.endpoint_id))
        with self._tx(ep) as conn:
            records.remove(conn, row.endpoint_id)
            self.claims.release(conn, ep.key)
        with self._lock:
            self._endpoints.pop(ep.key.item_id, None)
        self.invalidate(row.account_id, row.region, row.name)
        log.info("endpoint %s deleted", row.name)

    def _kill_rows(self, rows: list[Row[Any]]) -> None:
        for r in rows:
            if r.pid and r.marker and r.host == self._host:
                process.kill_orphan(int(r.pid), str(r.marker))

    # -------------------------------------------------------------------------------- adopting
    def _adopt(self, ep: _Endpoint, row: Row[Any]) -> None:
        """The instance rows of an endpoint this server just took over: adopt the model servers
        that still run here and answer /ping, kill and forget the others."""
        with self.db.read() as conn:
            rows = records.instances(conn, row.endpoint_id)
        by_instance: dict[str, list[Row[Any]]] = {}
        for r in rows:
            if r.instance_id not in ep.instances:
                by_instance.setdefault(r.instance_id, []).append(r)
        variants = {(dep["Deployment"], v["VariantName"]): v
                    for dep in (row.serving, row.pending) if dep for v in dep["Variants"]}
        for instance_id, parts in by_instance.items():
            first = parts[0]
            variant = variants.get((first.deployment, first.variant))
            adoptable = (variant is not None and row.status != "Failed"
                         and all(p.status == "InService" and p.pid and p.marker and p.host == self._host
                                 and _ours(int(p.pid), str(p.marker)) and p.url and modelserver.ping(p.url)
                                 for p in parts)
                         and {p.container for p in parts} == set(container_hostnames(variant["Model"])))
            if adoptable:
                assert variant is not None
                inst = LocalInstance(instance_id, row.endpoint_id, first.deployment, first.variant,
                                     self._plan(row, instance_id, variant), state="ready", recorded="Adopting",
                                     db=self.db, ready_since=time.monotonic())
                inst.servers = {p.container: Adopted(int(p.pid), int(urlparse(p.url).port or 0)) for p in parts}
                ep.instances[instance_id] = inst
                inst.note(f"adopted by server {self.claims.server_id} after a restart")
                log.info("endpoint %s: adopted instance %s", row.name, instance_id)
                continue
            self._kill_rows(parts)
            with self._tx(ep) as conn:
                records.delete_instance(conn, instance_id)
            log.info("endpoint %s: instance %s left by a previous server is gone; starting a new one",
                     row.name, instance_id)
        self.invalidate(row.account_id, row.region, row.name)
