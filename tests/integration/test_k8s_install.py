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
