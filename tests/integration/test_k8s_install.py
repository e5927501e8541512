"""The installation manifests: `kubectl kustomize deploy/kubernetes` renders the vendored ACK CRDs and
the operator's namespace, RBAC, settings, credentials, CARM map and Deployment, wired to each other."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from k8s_testing import CRDS, KUBECTL, ROOT

SERVED = ["pipelines", "pipelineexecutions", "modelpackagegroups", "modelpackages", "models", "endpointconfigs",
          "endpoints", "trainingjobs", "processingjobs", "transformjobs", "hyperparametertuningjobs",
          "notebookinstances", "notebookinstancelifecycleconfigs"]


def _render(path: Path) -> list[dict]:
    if not Path(KUBECTL).is_file():
        pytest.skip("kubectl is not installed")
    out = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_kustomize_renders_crds_and_operator() -> None:
    docs = _render(ROOT / "deploy" / "kubernetes")
    by_kind: dict[str, list[dict]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    crds = {d["metadata"]["name"]: d for d in by_kind["CustomResourceDefinition"]}
    for plural in SERVED:
        crd = crds[f"{plural}.sagemaker.services.k8s.aws"]
        vendored = yaml.safe_load((CRDS / f"sagemaker.services.k8s.aws_{plural}.yaml").read_text())
        assert crd["spec"] == vendored["spec"]  # unchanged from ACK
    assert "adoptedresources.services.k8s.aws" in crds
    deployment = by_kind["Deployment"][0]
    assert deployment["metadata"]["namespace"] == "ack-system"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "operator"
    refs = {next(iter(v.values()))["name"] for v in container["envFrom"]}
    names = {d["metadata"]["name"] for d in by_kind["ConfigMap"] + by_kind["Secret"]}
    assert refs <= names and "ack-role-account-map" in names
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert account in {d["metadata"]["name"] for d in by_kind["ServiceAccount"]}
    rules = by_kind["ClusterRole"][0]["rules"]
    assert any("sagemaker.services.k8s.aws" in r["apiGroups"] and "*/status" in r["resources"] for r in rules)
    assert any("configmaps" in r["resources"] for r in by_kind["Role"][0]["rules"])


def test_operator_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    """No Kubernetes credentials, or no Stratum to act in: one line on stderr, exit code 2."""
    import os
    import sys

    pytest.importorskip("kopf")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBECONFIG"))}
    env.update(HOME=str(tmp_path), KUBECONFIG=str(tmp_path / "missing"), AWS_ACCESS_KEY_ID="AKIAEXAMPLE",
               AWS_SECRET_ACCESS_KEY="secret", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    cmd = [sys.executable, "-m", "stratum", "operator", "--endpoint-url", "http://127.0.0.1:9"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"stratum: no Kubernetes credentials: {tmp_path / 'missing'} does not exist and this is not a pod (set KUBECONFIG)"]
    (tmp_path / "kubeconfig").write_text("{}")
    env["KUBECONFIG"] = str(tmp_path / "kubeconfig")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stratum: cannot act as an account at http://127.0.0.1:9: ")
