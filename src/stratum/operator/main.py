"""`stratum operator`: kopf watches the ACK custom resources; a work queue (the role controller-runtime's
workqueue plays for ACK) hands each changed resource to the generic reconciler in a thread pool and
requeues it after the delay the reconciler asks for. A resource is reconciled once at a time; status
writes of its own do not requeue it (only generation, annotation or deletion changes do)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf

from stratum.operator.adopt import ACK_GROUP, ADOPTED_RESOURCE
from stratum.operator.carm import Accounts
from stratum.operator.kube import Kube
from stratum.operator.reconcile import RETRY_SECONDS, Reconciler
from stratum.operator.resources import GROUP, KINDS, VERSION, Kind

log = logging.getLogger("stratum.operator")
RETRY_CAP_SECONDS = 10.0  # short enough that a restarted Stratum is noticed soon

Key = tuple[str, str, str]  # kind, namespace, name


@dataclass
class Options:
    endpoint_url: str | None
    region: str
    namespaces: list[str] = field(default_factory=list)  # empty: every namespace
    system_namespace: str = "ack-system"
    carm_dir: Path | None = None
    workers: int = 8
    liveness: str | None = None


class Controller:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.reconciler: Reconciler | None = None
        self.ready = asyncio.Event()
        self.queue: asyncio.Queue[Key] = asyncio.Queue()
        self.objects: dict[Key, tuple[Kind, dict[str, Any]]] = {}
        self.seen: dict[Key, tuple[Any, ...]] = {}
        self.queued: set[Key] = set()
        self.active: set[Key] = set()
        self.dirty: set[Key] = set()
        self.timers: dict[Key, asyncio.TimerHandle] = {}
        self.failures: dict[Key, int] = {}  # consecutive recoverable errors: the retry backs off
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=options.workers,
                                                          thread_name_prefix="reconcile")

    def connect(self, info: kopf.ConnectionInfo) -> None:
        """Build the reconciler on the credentials kopf logged in with (again on each re-login)."""
        kube = Kube(info)
        schemas: dict[str, dict[str, Any]] = {}
        for kind in KINDS.values():
            crd = kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{kind.plural}.{GROUP}")
            if crd is None:
                log.warning("CRD %s.%s is not installed: its resources are not served", kind.plural, GROUP)
                continue
            for version in crd["spec"]["versions"]:
                if version["name"] == VERSION:
                    schemas[kind.kind] = version["schema"]["openAPIV3Schema"]
        accounts = Accounts(endpoint_url=self.options.endpoint_url, region=self.options.region, kube=kube,
                            namespace=self.options.system_namespace, carm_dir=self.options.carm_dir)
        previous, self.reconciler = self.reconciler, Reconciler(kube, accounts, schemas)
        if previous is not None:  # a re-login: reconciliations in flight finish on their own client
            timer = threading.Timer(60, previous.kube.close)  # login runs in a thread, not on the loop
            timer.daemon = True
            timer.start()
        log.info("serving %d ACK SageMaker kinds for account %s against %s", len(schemas),
                 accounts.own_account, self.options.endpoint_url or "the default endpoint")
        self.ready.set()

    # ------------------------------------------------------------------------------------- queue
    def observe(self, kind: Kind, event: dict[str, Any]) -> None:
        obj = event.get("object") or {}
        meta = obj.get("metadata") or {}
        key = (kind.kind, meta.get("namespace", ""), meta.get("name", ""))
        if event.get("type") == "DELETED":
            self.objects.pop(key, None)
            self.seen.pop(key, None)
            self.failures.pop(key, None)
            timer = self.timers.pop(key, None)
            if timer:
                timer.cancel()
            return
        self.objects[key] = (kind, obj)
        signature = (meta.get("generation"), json.dumps(meta.get("annotations") or {}, sort_keys=True),
                     meta.get("deletionTimestamp"))
        if self.seen.get(key) != signature:  # not a status write: reconcile now
            self.seen[key] = signature
            self.enqueue(key)

    def enqueue(self, key: Key, delay: float = 0.0) -> None:
        timer = self.timers.pop(key, None)
        if timer:
            timer.cancel()
        if delay > 0:
            self.timers[key] = asyncio.get_running_loop().call_later(delay, self.enqueue, key)
            return
        if key in self.active:
            self.dirty.add(key)
        elif key not in self.queued:
            self.queued.add(key)
            self.queue.put_nowait(key)

    async def worker(self) -> None:
        await self.ready.wait()
        loop = asyncio.get_running_loop()
        while True:
            key = await self.queue.get()
            self.queued.discard(key)
            entry = self.objects.get(key)
            if entry is None or self.reconciler is None:
                continue
            kind, obj = entry
            self.active.add(key)
            try:
                delay = await loop.run_in_executor(self.pool, self.reconciler.reconcile, kind, obj)
            except Exception:
                log.exception("reconciling %s %s/%s", *key)
                delay = RETRY_SECONDS
            finally:
                self.active.discard(key)
            if delay == RETRY_SECONDS:  # a recoverable error: 2, 4, 8 s, then every 10 s
                n = self.failures[key] = self.failures.get(key, 0) + 1
                delay = min(RETRY_CAP_SECONDS, RETRY_SECONDS * 2 ** (n - 1))
            else:
                self.failures.pop(key, None)
            if key in self.dirty:
                self.dirty.discard(key)
                self.enqueue(key)
            elif delay is not None and key in self.objects:
                self.enqueue(key, delay)


def registry_for(controller: Controller) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    tasks: list[asyncio.Task[None]] = []

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.scanning.disabled = True  # only the CRDs' own groups are watched; no discovery scans
        settings.posting.enabled = False  # no Kubernetes events: conditions carry the outcome, as in ACK
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60
        tasks.extend(asyncio.create_task(controller.worker()) for _ in range(controller.options.workers))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        for task in tasks:
            task.cancel()
        controller.pool.shutdown(wait=False, cancel_futures=True)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
        if info is not None:
            controller.connect(info)
        return info

    for kind in KINDS.values():
        def handler(event: dict[str, Any], kind_: Kind = kind, **_: Any) -> None:
            controller.observe(kind_, event)
        kopf.on.event(GROUP, VERSION, kind.plural, registry=registry)(_async(handler))

    def adopted(event: dict[str, Any], **_: Any) -> None:
        controller.observe(ADOPTED_RESOURCE, event)
    kopf.on.event(ACK_GROUP, "v1alpha1", "adoptedresources", registry=registry)(_async(adopted))
    return registry


def _async(fn: Any) -> Any:
    async def wrapper(**kwargs: Any) -> None:  # run on the loop: observe() touches loop state
        fn(**kwargs)
    return wrapper


class OperatorError(Exception):
    """A setting that keeps the operator from starting (printed as one line by the CLI)."""


def preflight(options: Options) -> str:
    """Fail fast, in one line, on what kopf would otherwise retry with tracebacks: no Kubernetes
    credentials, no AWS credentials, Stratum unreachable. Returns the operator's account ID."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    in_pod = Path("/var/run/secrets/kubernetes.io/serviceaccount/token").is_file()
    kubeconfig = os.environ.get("KUBECONFIG")
    if not in_pod:
        paths = [Path(p) for p in kubeconfig.split(os.pathsep) if p] if kubeconfig else [Path.home() / ".kube" / "config"]
        if not any(p.is_file() for p in paths):
            raise OperatorError(f"no Kubernetes credentials: {', '.join(map(str, paths))} does not exist and this "
                                "is not a pod (set KUBECONFIG)")
    try:
        sts = boto3.Session(region_name=options.region).client("sts", endpoint_url=options.endpoint_url)
        return str(sts.get_caller_identity()["Account"])
    except (BotoCoreError, ClientError) as exc:
        raise OperatorError(f"cannot act as an account at {options.endpoint_url or 'the default endpoint'}: "
                            f"{exc}") from exc


def run(options: Options) -> None:
    if options.endpoint_url:
        os.environ.setdefault("AWS_ENDPOINT_URL", options.endpoint_url)
    preflight(options)
    kopf.configure(verbose=False, log_format=kopf.LogFormat.PLAIN)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API call otherwise
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # one line per watch event otherwise
    controller = Controller(options)
    kopf.run(registry=registry_for(controller), standalone=True, clusterwide=not options.namespaces,
             namespaces=options.namespaces, liveness_endpoint=options.liveness)
