"""Helpers for the runtime API tests: model-server processes, and a Stratum server run in the
test's own process so that a test can publish endpoint routes to it (``state.hosting``) while the
endpoint control plane is not part of this server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stratum_testing import StratumServer, free_port

from stratum.hosting.routes import EndpointRoute, InstanceRoute, VariantRoute

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


@dataclass
class ModelProcess:
    proc: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _wait_ping(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"model server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("model server did not answer /ping")


def start_test_model(tmp: Path, name: str, behaviour: str = "echo", port: int | None = None,
                     **options: Any) -> ModelProcess:
    """The scriptable model server of tests/runtime_model_server.py."""
    port = port or free_port()
    argv = [sys.executable, str(HERE / "runtime_model_server.py"), "--port", str(port), "--name", name,
            "--behaviour", behaviour]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    log = tmp / f"model-{name}-{port}.log"
    proc = subprocess.Popen(argv, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    _wait_ping(proc, url, log)
    return ModelProcess(proc, url)


def start_stratum_model(tmp: Path, name: str, script: str) -> ModelProcess:
    """Stratum's own model server (stratum.algorithms.serving) with an inference script."""
    model_dir = tmp / f"model-{name}"
    (model_dir / "code").mkdir(parents=True, exist_ok=True)
    (model_dir / "code" / "inference.py").write_text(script)
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC), "SAGEMAKER_PROGRAM": "inference.py",
           "SAGEMAKER_BIND_TO_PORT": str(port), "SM_MODEL_DIR": str(model_dir)}
    log = tmp / f"serving-{name}-{port}.log"
    proc = subprocess.Popen([sys.executable, "-m", "stratum.algorithms.serving", "--runtime", "python", "--port",
                             str(port), "--model-dir", str(model_dir)], env=env, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    _wait_ping(proc, url, log)
    return ModelProcess(proc, url)


@dataclass
class StaticRoutes:
    """Routes a test publishes, looked up as the hosting supervisor's are (route(account, region,
    name)); a name the test did not publish is asked of ``fallback`` (the control plane's lookup)."""

    routes: dict[tuple[str, str, str], EndpointRoute] = field(default_factory=dict)
    fallback: Callable[[str, str, str], EndpointRoute | None] | None = None

    def route(self, account: str, region: str, name: str) -> EndpointRoute | None:
        found = self.routes.get((account, region, name))
        if found is None and self.fallback is not None:
            return self.fallback(account, region, name)
        return found

    def put(self, route: EndpointRoute) -> None:
        self.routes[(route.account_id, route.region, route.name)] = route

    def remove(self, route: EndpointRoute) -> None:
        self.routes.pop((route.account_id, route.region, route.name), None)


def endpoint_route(account: str, name: str, variants: list[tuple[str, float, dict[str, str] | list[dict[str, str]]]],
                   *, mode: str = "Single", region: str = "us-east-1", status: str = "InService",
                   tags: tuple[dict[str, str], ...] = (), role: str | None = None,
                   data_capture: dict[str, Any] | None = None, async_config: dict[str, Any] | None = None,
                   model_name: str | None = None) -> EndpointRoute:
    """A route: per variant its name, weight and containers (hostname -> URL; a list: one per instance).
    ``role``: the variants' execution role, carried by the route; ``model_name``: the model the
    variants serve, whose role is looked up (as the hosting control plane's routes name it)."""
    built = []
    for variant_name, weight, containers in variants:
        per_instance = containers if isinstance(containers, list) else [containers]
        instances = tuple(InstanceRoute(f"{variant_name}-{i}", dict(urls)) for i, urls in enumerate(per_instance))
        hostnames = tuple(per_instance[0]) if per_instance else ("c",)
        built.append(VariantRoute(variant_name, weight, hostnames, tuple("test-image" for _ in hostnames), instances))
    return EndpointRoute(arn=f"arn:aws:sagemaker:{region}:{account}:endpoint/{name.lower()}", name=name,
                         account_id=account, region=region, status=status, mode=mode, variants=tuple(built),
                         tags=tags, data_capture=data_capture, async_config=async_config,
                         extra={"Variants": {v.name: {"ExecutionRoleArn": role} if role else {"ModelName": model_name}
                                             for v in built}})


class InProcessServer(StratumServer):
    """A Stratum server on a uvicorn thread of the test process: ``state`` is its AppState."""

    def start(self) -> InProcessServer:
        import uvicorn

        from stratum.config import Settings
        from stratum.server.asgi import StratumApp
        from stratum.server.http_protocol import CoalescingHttpToolsProtocol
        from stratum.server.runner import prepare

        settings = Settings(data_dir=self.data_dir, database_url=self.database_url, port=self.port)
        self.state = prepare(settings)
        hosting = getattr(self.state, "hosting", None)
        if hosting is None:  # no endpoint control plane in this server
            self._routes = StaticRoutes()
            self.state.hosting = self._routes  # type: ignore[attr-defined]
        else:
            # The test's routes first, then the control plane's: the supervisor keeps running.
            self._routes = StaticRoutes(fallback=hosting.route)
            hosting.route = self._routes.route
        config = uvicorn.Config(StratumApp(self.state), host="127.0.0.1", port=self.port, log_level="warning",
                                access_log=False, lifespan="on", http=CoalescingHttpToolsProtocol,
                                timeout_keep_alive=30)
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._uvicorn.serve()), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._uvicorn.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("in-process server did not start")
            time.sleep(0.05)
        self._load_keys()
        return self

    @property
    def routes(self) -> StaticRoutes:
        return self._routes

    def stop(self) -> None:
        if getattr(self, "_uvicorn", None) is not None:
            self._uvicorn.should_exit = True
            self._thread.join(timeout=30)
            self._uvicorn = None
