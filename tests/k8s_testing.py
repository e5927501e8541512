"""A real Kubernetes API server for the operator's tests, driven with kubectl as a user would.

Uses the cluster of $KUBECONFIG when it answers; otherwise starts etcd + the CRD API server built from
tools/k8s-crdserver (the real apiextensions-apiserver: schema validation, printer columns, /status,
finalizers, watches) on free loopback ports. Neither available: the tests are skipped, saying how to
build the server. Also: the operator as a subprocess (`python -m stratum operator`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stratum_testing import StratumServer, close_server, free_port, kill_process, make_server, stop_process

ROOT = Path(__file__).resolve().parents[1]
CRDS = ROOT / "deploy" / "kubernetes" / "crds"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
CRDSERVER_DIR = Path(os.environ.get("STRATUM_CRDSERVER_DIR") or Path.home() / ".cache" / "stratum" / "k8s-crdserver")
BUILD_HINT = (f"build it with `make crdserver` (tools/k8s-crdserver/build.sh into {CRDSERVER_DIR}/bin, "
              "~8 minutes once), or point $KUBECONFIG at a reachable cluster")


class Cluster:
    def __init__(self, kubeconfig: Path, workdir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([KUBECTL, *args], input=input, env=self.env(), capture_output=True, text=True,
                             timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {out.stderr.strip()}")
        return out

    def apply(self, manifest: str | dict[str, Any], namespace: str = "default") -> None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        self.kubectl("apply", "-n", namespace, "-f", "-", input=text)

    def get(self, plural: str, name: str, namespace: str = "default") -> dict[str, Any] | None:
        out = self.kubectl("get", plural, name, "-n", namespace, "-o", "json", check=False)
        if out.returncode != 0:
            if "NotFound" in out.stderr or "not found" in out.stderr:
                return None
            raise AssertionError(out.stderr)
        return dict(json.loads(out.stdout))

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _reachable(env: dict[str, str]) -> bool:
    try:
        out = subprocess.run([KUBECTL, "get", "--raw", "/readyz"], env=env, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def start_cluster(workdir: Path) -> Cluster:
    if os.environ.get("KUBECONFIG") and _reachable(dict(os.environ)):
        return Cluster(Path(os.environ["KUBECONFIG"]), workdir)
    etcd, crdserver = CRDSERVER_DIR / "bin" / "etcd", CRDSERVER_DIR / "bin" / "crdserver"
    if not (etcd.is_file() and crdserver.is_file()):
        pytest.skip(f"no Kubernetes API server: {crdserver} is missing; {BUILD_HINT}")
    if not Path(KUBECTL).is_file():
        pytest.skip("kubectl is not installed")
    client, peer, port = free_port(), free_port(), free_port()
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "crdserver",
        "clusters": [{"name": "crdserver", "cluster": {"server": f"https://127.0.0.1:{port}",
                                                       "insecure-skip-tls-verify": True}}],
        "users": [{"name": "test", "user": {"token": "test"}}],
        "contexts": [{"name": "crdserver", "context": {"cluster": "crdserver", "user": "test",
                                                       "namespace": "default"}}]}))
    cluster = Cluster(kubeconfig, workdir)
    log = open(workdir / "etcd.log", "ab")
    cluster.procs.append(subprocess.Popen(
        [str(etcd), "--data-dir", str(workdir / "etcd"), "--listen-client-urls", f"http://127.0.0.1:{client}",
         "--advertise-client-urls", f"http://127.0.0.1:{client}", "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"default=http://127.0.0.1:{peer}"], stdout=log, stderr=subprocess.STDOUT))
    log = open(workdir / "crdserver.log", "ab")
    cluster.procs.append(subprocess.Popen(
        [str(crdserver), "--etcd", f"http://127.0.0.1:{client}", "--port", str(port),
         "--cert-dir", str(workdir / "certs")], stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 60
    while not _reachable(cluster.env()):
        if time.monotonic() > deadline or any(p.poll() is not None for p in cluster.procs):
            cluster.stop()
            raise RuntimeError(f"the CRD API server did not start: {(workdir / 'crdserver.log').read_text()[-2000:]}")
        time.sleep(0.3)
    return cluster


def install_crds(cluster: Cluster) -> None:
    """The vendored ACK CRDs, server-side applied (some exceed the last-applied annotation's size)."""
    names = cluster.kubectl("apply", "--server-side", "-k", str(CRDS), "-o", "name", timeout=120).stdout.split()
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *names, timeout=90)
    # Discovery catches up a moment after Established (the CRD server refreshes its group list).
    wait_for(lambda: "pipelineexecutions" in cluster.kubectl("api-resources", check=False).stdout, 30,
             "the ACK resources in discovery")


@pytest.fixture(scope="session")
def k8s_cluster() -> Iterator[Cluster]:
    workdir = Path(tempfile.mkdtemp(prefix="stratum-k8s-"))
    cluster = start_cluster(workdir)
    try:
        install_crds(cluster)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Operator:
    """`python -m stratum operator` against a cluster and a Stratum server, as an account's user."""

    def __init__(self, cluster: Cluster, server: StratumServer, log_path: Path, account: str = "dev",
                 extra_args: list[str] | None = None) -> None:
        self.cluster, self.server, self.log_path = cluster, server, log_path
        self.account, self.extra_args = account, extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.carm_dir: Path | None = None

    def start(self) -> Operator:
        env = {**self.server.env(self.account), "KUBECONFIG": str(self.cluster.kubeconfig)}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "stratum", "operator", "--endpoint-url",
                                      self.server.endpoint_url, *self.extra_args],
                                     env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.proc is not None and (self.proc.poll() is not None or "serving" in self.log()), 60,
                 "the operator to start")
        assert self.proc.poll() is None, f"the operator exited: {self.log()[-3000:]}"
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def kill(self) -> None:
        kill_process(self.proc)
        self.proc = None


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return None


@pytest.fixture(scope="module")
def stratum(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    """A Stratum server of the module's own (SQLite: the operator's behaviour does not depend on it)."""
    server = make_server(tmp_path_factory, "sqlite")
    server.start()
    yield server
    close_server(server)


@pytest.fixture(scope="module")
def operator(k8s_cluster: Cluster, stratum: StratumServer, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Operator]:
    workdir = tmp_path_factory.mktemp("operator")
    (workdir / "carm").mkdir()  # the ack-role-account-map ConfigMap, as mounted in a pod
    op = Operator(k8s_cluster, stratum, workdir / "operator.log", extra_args=["--carm-dir", str(workdir / "carm")])
    op.carm_dir = workdir / "carm"
    op.start()
    yield op
    op.stop()
    print(op.log()[-5000:])  # shown with a failure of the module's last test


def spec_from_request(cluster: Cluster, plural: str, request: dict[str, Any]) -> dict[str, Any]:
    """An API request (UpperCamelCase) spelled as the ACK CRD's spec, read from the installed CRD."""
    from stratum.operator.casing import to_k8s

    crd = json.loads(cluster.kubectl("get", "crd", f"{plural}.sagemaker.services.k8s.aws", "-o", "json").stdout)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return dict(to_k8s(request, schema))


def status_of(cluster: Cluster, plural: str, name: str, field: str, namespace: str = "default") -> Any:
    return ((cluster.get(plural, name, namespace) or {}).get("status") or {}).get(field)
