"""The operator's reaction times, on a real Kubernetes API server (tools/k8s-crdserver, or $KUBECONFIG)
and a real Stratum server:

- apply -> started: `kubectl apply` of a PipelineExecution until the execution exists in Stratum (its
  CreationTime), beside the same StartPipelineExecution called directly with boto3 (the baseline);
- Stratum -> Kubernetes: the execution's status change in Stratum (LastModifiedTime of Succeeded, after
  a Lambda step of 1.5 s, so the change falls anywhere in the operator's 1 s poll) until the custom
  resource's status.pipelineExecutionStatus shows it (read every 20 ms).

Each measured once with an empty cluster and once with --background Pipeline resources (plus one
finished PipelineExecution each) reconciled by the same operator. Targets: p50 < 2 s, and < 5 s with 100
resources.

    .venv/bin/python bench/k8s_operator.py [--runs 20] [--background 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import httpx  # noqa: E402
from k8s_testing import Cluster, Operator, install_crds, start_cluster  # noqa: E402
from stratum_testing import StratumServer, pipeline_role  # noqa: E402
from test_engine_pipelines import register_functions  # noqa: E402

API = "sagemaker.services.k8s.aws/v1alpha1"
# Background pipelines: one Condition step, finished at once.
DEFINITION = json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": [
    {"Name": "Check", "Type": "Condition", "Arguments": {
        "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 1}], "IfSteps": [], "ElseSteps": []}}]})


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "p90": pct(values, 0.9), "max": max(values), "n": len(values)}


class Kube:
    """Direct reads of the API server, for timing without kubectl's start-up cost."""

    def __init__(self, cluster: Cluster) -> None:
        config = json.loads(cluster.kubeconfig.read_text()) if cluster.kubeconfig.read_text().lstrip().startswith("{") else None
        if config is None:
            raise SystemExit("bench/k8s_operator.py reads the kubeconfig it writes itself; unset KUBECONFIG")
        server = config["clusters"][0]["cluster"]["server"]
        self.http = httpx.Client(base_url=server, verify=False, headers={"Authorization": "Bearer bench"})

    def status(self, plural: str, name: str) -> dict[str, Any]:
        r = self.http.get(f"/apis/sagemaker.services.k8s.aws/v1alpha1/namespaces/default/{plural}/{name}")
        return dict(r.json().get("status") or {}) if r.status_code == 200 else {}


def wait(check: Any, timeout: float, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit("timed out")


def measure(cluster: Cluster, kube: Kube, stratum: StratumServer, pipeline: str, runs: int) -> dict[str, Any]:
    sm = stratum.client("sagemaker")
    started, observed, direct = [], [], []
    for _ in range(runs):
        t0 = time.time()
        sm.start_pipeline_execution(PipelineName=pipeline, ClientRequestToken=uuid.uuid4().hex)
        direct.append(time.time() - t0)
        name = f"bench-{uuid.uuid4().hex[:8]}"
        t0 = time.time()
        cluster.apply({"apiVersion": API, "kind": "PipelineExecution", "metadata": {"name": name},
                       "spec": {"pipelineName": pipeline}})
        arn = wait(lambda name=name: (kube.status("pipelineexecutions", name).get("ackResourceMetadata") or {}).get("arn"), 30)
        desc = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        started.append(desc["CreationTime"].timestamp() - t0)
        wait(lambda name=name: kube.status("pipelineexecutions", name).get("pipelineExecutionStatus") == "Succeeded", 60)
        seen = time.time()
        changed = sm.describe_pipeline_execution(PipelineExecutionArn=arn)["LastModifiedTime"].timestamp()
        observed.append(seen - changed)
    return {"apply_to_started": summary(started), "direct_start_baseline": summary(direct),
            "stratum_to_kubernetes": summary(observed)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--background", type=int, default=100, help="Pipeline resources in the loaded case")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stratum-bench-operator-"))
    (work / "stratum").mkdir()
    cluster = start_cluster(work)
    stratum = StratumServer(work / "stratum")
    operator: Operator | None = None
    try:
        install_crds(cluster)
        stratum.start()
        operator = Operator(cluster, stratum, work / "operator.log").start()
        kube = Kube(cluster)
        role = pipeline_role(stratum)
        (work / "functions").mkdir()
        sleepy = register_functions(stratum, work / "functions")["sleepy"]
        measured = json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": [
            {"Name": "Sleep", "Type": "Lambda", "FunctionArn": sleepy, "Arguments": {"seconds": 1.5}}]})
        pipeline = f"bench-{uuid.uuid4().hex[:6]}"
        cluster.apply({"apiVersion": API, "kind": "Pipeline", "metadata": {"name": pipeline},
                       "spec": {"pipelineName": pipeline, "roleARN": role, "pipelineDefinition": measured}})
        wait(lambda: kube.status("pipelines", pipeline).get("pipelineStatus") == "Active", 30)
        results: dict[str, Any] = {"empty": measure(cluster, kube, stratum, pipeline, args.runs)}

        items = []
        for i in range(args.background):
            name = f"bg-{i}-{uuid.uuid4().hex[:4]}"
            items.append({"apiVersion": API, "kind": "Pipeline", "metadata": {"name": name},
                          "spec": {"pipelineName": name, "roleARN": role, "pipelineDefinition": DEFINITION}})
            items.append({"apiVersion": API, "kind": "PipelineExecution", "metadata": {"name": name + "-run"},
                          "spec": {"pipelineName": name}})
        t0 = time.time()
        cluster.apply({"apiVersion": "v1", "kind": "List", "items": items})
        last = items[-1]["metadata"]["name"]
        wait(lambda: kube.status("pipelineexecutions", last).get("pipelineExecutionStatus") == "Succeeded", 300, 0.2)
        settle = time.time() - t0
        results[f"with_{args.background * 2}_resources"] = measure(cluster, kube, stratum, pipeline, args.runs)
        results["background_settle_seconds"] = settle
    finally:
        if operator:
            operator.stop()
        stratum.stop()
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    for case, figures in results.items():
        if not isinstance(figures, dict):
            print(f"{case}: {figures:.1f}")
            continue
        print(case)
        for what, s in figures.items():
            print(f"  {what:24s} p50 {s['p50'] * 1000:7.0f} ms   p90 {s['p90'] * 1000:7.0f} ms   "
                  f"max {s['max'] * 1000:7.0f} ms   (n={s['n']})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
