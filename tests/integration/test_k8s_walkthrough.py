"""The walkthrough of docs/kubernetes.md, as a DevOps team runs it: the SageMaker SDK generates the
abalone pipeline's definition (tests/abalone_pipeline.py), kubectl applies it as an ACK Pipeline with
its ModelPackageGroup, then a PipelineExecution, and `kubectl get` shows it reach Succeeded; the model
it registers is in the group."""

from __future__ import annotations

import json
import uuid

import pytest
from k8s_testing import (  # noqa: F401
    Cluster,
    Operator,
    condition,
    k8s_cluster,
    operator,
    status_of,
    stratum,
    wait_for,
)
from stratum_testing import StratumServer, sagemaker_role

pytest.importorskip("kopf")
pytest.importorskip("sagemaker")
pytest.importorskip("xgboost")

import abalone_pipeline as ab  # noqa: E402
from test_abalone_pipeline import DATASET, as_user  # noqa: E402


@pytest.mark.slow
def test_abalone_pipeline_from_kubectl(k8s_cluster: Cluster, operator: Operator, stratum: StratumServer,
                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    from sagemaker.workflow.pipeline_context import PipelineSession

    suffix = uuid.uuid4().hex[:8]
    name, group, run = f"abalone-{suffix}", f"AbalonePackageGroup-{suffix}", f"abalone-run-{suffix}"
    with as_user(stratum, tmp_path_factory.mktemp("home")):
        session = PipelineSession()
        data = session.upload_data(str(DATASET), key_prefix=f"abalone-{suffix}/dataset")
        role = sagemaker_role(stratum, "AbaloneK8s")
        pipeline = ab.get_pipeline(session, role=role, pipeline_name=name, model_package_group_name=group,
                                   input_data_url=data)
        definition = pipeline.definition()  # uploads the scripts, as `pipeline.upsert()` would
    manifest = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "sagemaker.services.k8s.aws/v1alpha1", "kind": "ModelPackageGroup",
         "metadata": {"name": group.lower()},
         "spec": {"modelPackageGroupName": group, "modelPackageGroupDescription": "abalone models"}},
        {"apiVersion": "sagemaker.services.k8s.aws/v1alpha1", "kind": "Pipeline", "metadata": {"name": name},
         "spec": {"pipelineName": name, "roleARN": role, "pipelineDefinition": definition}}]}
    k8s_cluster.apply(manifest)
    wait_for(lambda: status_of(k8s_cluster, "pipeline", name, "pipelineStatus") == "Active", 30, "the pipeline")
    k8s_cluster.apply({"apiVersion": "sagemaker.services.k8s.aws/v1alpha1", "kind": "PipelineExecution",
                       "metadata": {"name": run},
                       "spec": {"pipelineName": name,
                                "pipelineParameters": [{"name": "MseThreshold", "value": "6.0"}]}})
    wait_for(lambda: status_of(k8s_cluster, "pipelineexecution", run, "pipelineExecutionStatus")
             in ("Succeeded", "Failed", "Stopped"), 600, "the abalone execution", interval=2)
    execution = k8s_cluster.get("pipelineexecution", run)
    assert execution is not None
    assert execution["status"]["pipelineExecutionStatus"] == "Succeeded", execution["status"].get("failureReason")
    assert "Succeeded" in k8s_cluster.kubectl("get", "pipelineexecution", run).stdout
    described = k8s_cluster.kubectl("describe", "pipelineexecution", run).stdout
    arn = execution["status"]["ackResourceMetadata"]["arn"]
    assert arn in described and "ACK.ResourceSynced" in described
    sm = stratum.client("sagemaker")
    steps = {s["StepName"]: s for s in sm.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]}
    assert steps[ab.REGISTER_STEP]["StepStatus"] == "Succeeded"
    packages = sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in packages] == [steps[ab.REGISTER_STEP]["Metadata"]["RegisterModel"]["Arn"]]
    assert json.loads(k8s_cluster.get("pipeline", name)["spec"]["pipelineDefinition"]) == json.loads(definition)  # type: ignore[index]
    for package in packages:  # registered by the pipeline, not from Kubernetes: a group holding it stays
        sm.delete_model_package(ModelPackageName=package["ModelPackageArn"])
    for args in (("pipelineexecution", run), ("pipeline", name), ("modelpackagegroup", group.lower())):
        k8s_cluster.kubectl("delete", *args, "--timeout=60s")
