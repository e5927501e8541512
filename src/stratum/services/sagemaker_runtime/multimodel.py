"""Multi-model endpoints: what SageMaker does between InvokeEndpoint's TargetModel and a container
in Mode MultiModel ("Custom Containers Contract for Multi-Model Endpoints").

A TargetModel is a key below the model's ModelDataUrl prefix. The first invocation of one on an
instance downloads it as the model's execution role, unpacks it into the instance's
/opt/ml/models/<model_name>/model and asks the container to load it (``POST /models``); later
invocations go straight to ``POST /models/<model_name>/invoke``. ``model_name`` is an opaque name
(a digest of the TargetModel), the TargetModel itself travels in X-Amzn-SageMaker-Target-Model.

Models stay loaded (ModelCacheSetting Enabled) until the container's limit is reached
(STRATUM_MAX_LOADED_MODELS in its environment) or the container answers a load with 507 (out of
memory): then the least recently used model no invocation is using is unloaded
(``DELETE /models/<model_name>``) and its files removed. Concurrent first invocations of one model
wait for a single load. A container that lost its models (it was restarted) answers 404 to an
invocation: the model is loaded again and the invocation retried once.

Everything here runs on the event loop; the download and unpacking run in threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter

from stratum.hosting.routes import EndpointRoute, InstanceRoute, VariantRoute
from stratum.jobs.contracts import OPT_ML
from stratum.jobs.s3io import JobDataError, split_uri
from stratum.jobs.tarballs import extract_tarball
from stratum.protocol.errors import ServiceError
from stratum.services.sagemaker_runtime import errors
from stratum.services.sagemaker_runtime.client import ContainerUnreachable, ModelClient
from stratum.services.sagemaker_runtime.invocation import ModelFailure
from stratum.services.sagemaker_runtime.roles import RoleS3

TARGET_MODEL_HEADER = "X-Amzn-SageMaker-Target-Model"
# How long a container may take to load a model (SageMaker waits for the load before invoking).
LOAD_TIMEOUT_SECONDS = 300.0


def model_name(target: str) -> str:
    """The opaque name a TargetModel is loaded under in the container."""
    return hashlib.md5(target.encode(), usedforsecurity=False).hexdigest()


def instance_ml_dir(data_dir: str | Path, instance_id: str, hostname: str) -> Path:
    """The host directory that is /opt/ml for one container of an endpoint instance (the hosting
    service lays instances out as <data_dir>/hosting/work/<instance>/<container>/ml)."""
    return Path(data_dir) / "hosting" / "work" / instance_id / hostname / "ml"


def download_failed(uri: str) -> ServiceError:
    bucket, key = split_uri(uri)
    return errors.validation(f"Failed to download model data(bucket: {bucket}, key: {key}). Please ensure that there "
                             "is an object located at the URL and that the role passed to CreateModel has "
                             "permissions to download the model.")


@dataclass
class Loading:
    """How the model of one invocation was found, for the MME CloudWatch metrics (microseconds)."""

    cache_hit: bool
    wait_us: float = 0.0  # ModelLoadingWaitTime: waiting for the model to be downloaded and loaded
    download_us: float | None = None  # ModelDownloadingTime (this invocation's own download)
    load_us: float | None = None  # ModelLoadingTime (this invocation's own load)
    unload_us: list[float] = field(default_factory=list)  # ModelUnloadingTime of models evicted for it


@dataclass
class _Container:
    """One container of one instance (a restarted model server has a new URL, hence a new one)."""

    url: str
    ml_dir: Path
    arn: str  # the endpoint's
    loaded: OrderedDict[str, str] = field(default_factory=OrderedDict)  # model_name -> TargetModel, LRU first
    loading: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    busy: dict[str, int] = field(default_factory=dict)  # invocations in flight per model


class ModelCache:
    def __init__(self, client: ModelClient, s3: RoleS3, data_dir: str | Path,
                 on_count: Callable[[EndpointRoute, VariantRoute, str, int], None] | None = None) -> None:
        self.client = client
        self.s3 = s3
        self.data_dir = Path(data_dir)
        self.load_timeout = LOAD_TIMEOUT_SECONDS
        self.on_count = on_count  # (route, variant, instance id, models loaded now): LoadedModelCount
        self._containers: dict[tuple[str, str], _Container] = {}

    def _container(self, route: EndpointRoute, instance: InstanceRoute, hostname: str) -> _Container:
        url = instance.urls[hostname]
        key = (instance.instance_id, hostname)
        found = self._containers.get(key)
        if found is None or found.url != url:
            found = self._containers[key] = _Container(url, instance_ml_dir(self.data_dir, instance.instance_id,
                                                                             hostname), route.arn)
            # A new container: forget the endpoint's instances that no longer serve it.
            live = {i.instance_id for v in (*route.variants, *route.canary) for i in v.instances}
            for stale in [k for k, c in self._containers.items() if c.arn == route.arn and k[0] not in live]:
                del self._containers[stale]
        return found

    def loaded(self, instance: InstanceRoute, hostname: str) -> list[str]:
        """The TargetModels loaded in a container, least recently used first."""
        found = self._containers.get((instance.instance_id, hostname))
        return list(found.loaded.values()) if found is not None else []

    # ------------------------------------------------------------------------------- invocation
    async def invoke(self, route: EndpointRoute, variant: VariantRoute, instance: InstanceRoute, hostname: str,
                     target: str, body: bytes, headers: dict[str, str], timeout: float
                     ) -> tuple[int, dict[str, str], bytes, float, Loading]:
        """Invoke ``target`` in a container, loading it first when it is not loaded. Returns the
        container's status, headers and body, the seconds it took to answer, and how the model
        was found. Raises ServiceError (the download failed) or ModelFailure (the load failed)."""
        container = self._container(route, instance, hostname)
        name = model_name(target)
        loading = await self._acquire(route, variant, instance.instance_id, container, name, target)
        container.busy[name] = container.busy.get(name, 0) + 1
        try:
            for attempt in range(2):
                started = perf_counter()
                try:
                    reply = await self.client.post(container.url, f"/models/{name}/invoke", body,
                                                   {**headers, TARGET_MODEL_HEADER: target}, timeout)
                except TimeoutError:
                    failure = ModelFailure(hostname, 0, "", perf_counter() - started)
                    failure.timed_out = True
                    raise failure from None
                except (ContainerUnreachable, asyncio.IncompleteReadError) as exc:
                    raise ModelFailure(hostname, 0, f"Could not reach container {hostname}: {exc}",
                                       perf_counter() - started) from None
                seconds = perf_counter() - started
                if reply.status == 404 and attempt == 0 and _not_loaded(reply.body):
                    # The container lost the model (its server was restarted): load it again.
                    container.loaded.pop(name, None)
                    again = await self._acquire(route, variant, instance.instance_id, container, name, target)
                    loading.cache_hit = False
                    loading.wait_us += again.wait_us
                    loading.download_us, loading.load_us = again.download_us, again.load_us
                    continue
                return reply.status, reply.headers, reply.body, seconds, loading
            raise AssertionError("unreachable")
        finally:
            container.busy[name] -= 1
            if not container.busy[name]:
                del container.busy[name]
            if variant.multi_model is not None and not variant.multi_model.cache and name in container.loaded \
                    and name not in container.busy:
                # ModelCacheSetting Disabled: the model does not stay loaded after its invocation.
                await self._unload(container, name)
                self._count(route, variant, instance.instance_id, container)

    # ------------------------------------------------------------------------------------ loading
    async def _acquire(self, route: EndpointRoute, variant: VariantRoute, instance_id: str, container: _Container,
                       name: str, target: str) -> Loading:
        if name in container.loaded:
            container.loaded.move_to_end(name)
            return Loading(cache_hit=True)
        started = perf_counter()
        pending = container.loading.get(name)
        if pending is not None:  # another invocation is loading it: wait for that load
            await asyncio.shield(pending)
            return Loading(cache_hit=False, wait_us=(perf_counter() - started) * 1e6)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        container.loading[name] = future
        try:
            loading = await self._load(route, variant, container, name, target)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it from their own await
            raise
        else:
            future.set_result(None)
        finally:
            del container.loading[name]
        container.loaded[name] = target
        self._count(route, variant, instance_id, container)
        loading.wait_us = (perf_counter() - started) * 1e6
        return loading

    async def _load(self, route: EndpointRoute, variant: VariantRoute, container: _Container, name: str,
                    target: str) -> Loading:
        mm = variant.multi_model
        assert mm is not None
        loading = Loading(cache_hit=False)
        uri = mm.prefix + target
        directory = container.ml_dir / "models" / name
        started = perf_counter()
        await asyncio.to_thread(self._download, route, mm.role, uri, directory)
        loading.download_us = (perf_counter() - started) * 1e6
        # Room is made once the model is there to load (a TargetModel that cannot be downloaded
        # unloads nothing).
        while mm.max_loaded and len(container.loaded) >= mm.max_loaded and self._evictable(container):
            loading.unload_us.append(await self._evict(container))
        request = json.dumps({"model_name": name, "url": f"{OPT_ML}/models/{name}/model"}).encode()
        started = perf_counter()
        while True:
            try:
                reply = await self.client.post(container.url, "/models", request,
                                               {"Content-Type": "application/json", "Accept": "application/json",
                                                TARGET_MODEL_HEADER: target}, self.load_timeout)
            except (TimeoutError, ContainerUnreachable, asyncio.IncompleteReadError) as exc:
                raise ModelFailure(container_name(container), 0, f"Could not load model {target}: {exc}",
                                   perf_counter() - started) from None
            if reply.status == 507 and self._evictable(container):
                # Out of memory: make room by unloading the least recently used model, then retry.
                loading.unload_us.append(await self._evict(container))
                continue
            break
        loading.load_us = (perf_counter() - started) * 1e6
        if reply.status == 409:  # loaded already (by another server sharing the instance)
            return loading
        if not 200 <= reply.status < 300:
            await asyncio.to_thread(shutil.rmtree, directory, True)
            raise ModelFailure(container_name(container), reply.status, reply.body.decode("utf-8", errors="replace"),
                               perf_counter() - started)
        return loading

    def _download(self, route: EndpointRoute, role: str | None, uri: str, directory: Path) -> None:
        """The model archive, as the execution role, unpacked into <directory>/model."""
        if role is None:
            raise download_failed(uri)
        shutil.rmtree(directory, ignore_errors=True)
        archive = directory / "model.tar.gz"
        try:
            bucket, key = split_uri(uri)
            self.s3.client(role, route.region).download(bucket, key, archive)
        except (JobDataError, ServiceError):
            shutil.rmtree(directory, ignore_errors=True)
            raise download_failed(uri) from None
        try:
            extract_tarball(archive, directory / "model")
        except JobDataError:
            shutil.rmtree(directory, ignore_errors=True)
            raise errors.validation(f"Failed to extract model data from {uri}: it is not a tar.gz archive of a "
                                    "model.") from None
        finally:
            archive.unlink(missing_ok=True)

    # ---------------------------------------------------------------------------------- unloading
    @staticmethod
    def _evictable(container: _Container) -> bool:
        return any(n not in container.busy for n in container.loaded)

    async def _evict(self, container: _Container) -> float:
        """Unload the least recently used model no invocation is using; its unloading time (us)."""
        victim = next(n for n in container.loaded if n not in container.busy)
        return await self._unload(container, victim)

    async def _unload(self, container: _Container, name: str) -> float:
        started = perf_counter()
        container.loaded.pop(name, None)
        try:
            await self.client.post(container.url, f"/models/{name}", b"", {}, self.load_timeout, method="DELETE")
        except (TimeoutError, ContainerUnreachable, asyncio.IncompleteReadError):
            pass  # a container that cannot answer has lost its models anyway
        await asyncio.to_thread(shutil.rmtree, container.ml_dir / "models" / name, True)
        return (perf_counter() - started) * 1e6

    def _count(self, route: EndpointRoute, variant: VariantRoute, instance_id: str, container: _Container) -> None:
        if self.on_count is not None:
            self.on_count(route, variant, instance_id, len(container.loaded))


def container_name(container: _Container) -> str:
    return container.ml_dir.parent.name


def _not_loaded(body: bytes) -> bool:
    """A container's 404 for a model it does not have (rather than the model's own 404)."""
    try:
        message = json.loads(body).get("message", "")
    except (ValueError, AttributeError):
        return False
    return "not loaded" in str(message) or "not found" in str(message).lower()
