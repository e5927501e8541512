"""The ACK SageMaker Pipeline and PipelineExecution resources, applied with kubectl to a real Kubernetes
API server and reconciled by `stratum operator` against a real Stratum server (SQLite backend)."""

from __future__ import annotations

import json
import uuid
from typing import Any

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
from stratum_testing import StratumServer, pipeline_role
from test_engine_pipelines import register_functions

pytest.importorskip("kopf")

API = "sagemaker.services.k8s.aws/v1alpha1"


@pytest.fixture(scope="module")
def functions(stratum: StratumServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return register_functions(stratum, tmp_path_factory.mktemp("functions"))


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pipeline_manifest(name: str, definition: dict[str, Any] | str, role: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Pipeline", "metadata": {"name": name, **meta},
            "spec": {"pipelineName": name, "roleARN": role, "pipelineDescription": "from kubectl",
                     "pipelineDefinition": definition if isinstance(definition, str) else json.dumps(definition)}}


def execution_manifest(name: str, pipeline: str, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "PipelineExecution", "metadata": {"name": name, **meta},
            "spec": {"pipelineName": pipeline, "pipelineExecutionDescription": "started by kubectl"}}


def sleepy_definition(functions: dict[str, str], seconds: float) -> dict[str, Any]:
    return {"Version": "2020-12-01", "Parameters": [], "Steps": [
        {"Name": "Sleep", "Type": "Lambda", "FunctionArn": functions["sleepy"], "Arguments": {"seconds": seconds}}]}


def test_pipeline_and_execution_reach_succeeded(k8s_cluster: Cluster, operator: Operator,
                                                stratum: StratumServer, functions: dict[str, str]) -> None:
    name, run = _name("pipe"), _name("run")
    k8s_cluster.apply(pipeline_manifest(name, sleepy_definition(functions, 0.5), pipeline_role(stratum)))
    k8s_cluster.apply(execution_manifest(run, name))
    wait_for(lambda: status_of(k8s_cluster, "pipelineexecution", run, "pipelineExecutionStatus") == "Succeeded",
             60, "the execution to succeed")
    # kubectl get prints ACK's printer column; describe shows the conditions and the ARN.
    table = k8s_cluster.kubectl("get", "pipelineexecution", run).stdout
    assert "Succeeded" in table.splitlines()[1] and "STATUS" in table.splitlines()[0]
    described = k8s_cluster.kubectl("describe", "pipelineexecution", run).stdout
    assert "ACK.ResourceSynced" in described and "PipelineExecution is in Succeeded status." in described
    execution = k8s_cluster.get("pipelineexecution", run)
    assert execution is not None
    arn = execution["status"]["ackResourceMetadata"]["arn"]
    assert arn in described
    assert execution["status"]["ackResourceMetadata"]["ownerAccountID"] == stratum.account_id("dev")
    assert execution["status"]["ackResourceMetadata"]["region"] == "us-east-1"
    assert "finalizers.sagemaker.services.k8s.aws/PipelineExecution" in execution["metadata"]["finalizers"]
    sm = stratum.client("sagemaker")
    described_api = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
    assert described_api["PipelineExecutionStatus"] == "Succeeded"
    assert described_api["PipelineExecutionDescription"] == "started by kubectl"
    pipeline = k8s_cluster.get("pipeline", name)
    assert pipeline is not None and pipeline["status"]["pipelineStatus"] == "Active"
    assert pipeline["status"]["ackResourceMetadata"]["arn"] == sm.describe_pipeline(PipelineName=name)["PipelineArn"]
    assert condition(pipeline, "ACK.ResourceSynced")["status"] == "True"  # type: ignore[index]
    assert condition(pipeline, "Ready")["status"] == "True"  # type: ignore[index]

    # An edit of the spec is an UpdatePipeline of the fields that changed.
    k8s_cluster.kubectl("patch", "pipeline", name, "--type=merge", "-p",
                        json.dumps({"spec": {"pipelineDescription": "edited"}}))
    wait_for(lambda: sm.describe_pipeline(PipelineName=name).get("PipelineDescription") == "edited", 15,
             "UpdatePipeline")

    # Deleting a finished execution leaves it in Stratum; deleting the Pipeline deletes it there.
    k8s_cluster.kubectl("delete", "pipelineexecution", run, "--timeout=30s")
    k8s_cluster.kubectl("delete", "pipeline", name, "--timeout=30s")
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.describe_pipeline(PipelineName=name)


def test_deleting_a_running_execution_stops_it(k8s_cluster: Cluster, operator: Operator,
                                               stratum: StratumServer, functions: dict[str, str]) -> None:
    name, run = _name("pipe"), _name("run")
    k8s_cluster.apply(pipeline_manifest(name, sleepy_definition(functions, 8), pipeline_role(stratum)))
    k8s_cluster.apply(execution_manifest(run, name))
    wait_for(lambda: status_of(k8s_cluster, "pipelineexecution", run, "pipelineExecutionStatus") == "Executing",
             30, "the execution to run")
    execution = k8s_cluster.get("pipelineexecution", run)
    assert execution is not None
    assert condition(execution, "ACK.ResourceSynced")["status"] == "False"  # type: ignore[index]
    arn = execution["status"]["ackResourceMetadata"]["arn"]
    k8s_cluster.kubectl("delete", "pipelineexecution", run, "--timeout=60s")
    status = stratum.client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
    assert status == "Stopped"
    assert k8s_cluster.get("pipelineexecution", run) is None


def test_invalid_definition_is_terminal_with_stratums_error(k8s_cluster: Cluster, operator: Operator,
                                                            stratum: StratumServer) -> None:
    name = _name("bad")
    k8s_cluster.apply(pipeline_manifest(name, '{"Version": "2020-12-01", "Steps": [{"Name": "X"}]',
                                        pipeline_role(stratum)))
    terminal = wait_for(lambda: condition(k8s_cluster.get("pipeline", name), "ACK.Terminal"), 20, "ACK.Terminal")
    assert terminal["status"] == "True"
    sm = stratum.client("sagemaker")
    with pytest.raises(sm.exceptions.ClientError) as refused:
        sm.create_pipeline(PipelineName=name + "x", RoleArn=pipeline_role(stratum), ClientRequestToken=uuid.uuid4().hex,
                           PipelineDefinition='{"Version": "2020-12-01", "Steps": [{"Name": "X"}]')
    code = refused.value.response["Error"]["Code"]
    assert terminal["message"].startswith(code + ":")
    assert refused.value.response["Error"]["Message"] in terminal["message"]
    synced = condition(k8s_cluster.get("pipeline", name), "ACK.ResourceSynced")
    assert synced is not None and synced["status"] == "False"
    assert "ACK.Terminal" in k8s_cluster.kubectl("describe", "pipeline", name).stdout
    k8s_cluster.kubectl("delete", "pipeline", name, "--timeout=30s")


def test_retain_policy_and_adoption(k8s_cluster: Cluster, operator: Operator,
                                    stratum: StratumServer, functions: dict[str, str]) -> None:
    """deletion-policy: retain keeps the pipeline in Stratum; a new resource naming an existing pipeline
    is refused (ACK: not managed) unless it carries adoption-policy: adopt, which adopts it."""
    name = _name("kept")
    role = pipeline_role(stratum)
    k8s_cluster.apply(pipeline_manifest(name, sleepy_definition(functions, 0.1), role,
                                        annotations={"services.k8s.aws/deletion-policy": "retain"}))
    wait_for(lambda: status_of(k8s_cluster, "pipeline", name, "pipelineStatus") == "Active", 20, "the pipeline")
    k8s_cluster.kubectl("delete", "pipeline", name, "--timeout=30s")
    sm = stratum.client("sagemaker")
    assert sm.describe_pipeline(PipelineName=name)["PipelineStatus"] == "Active"

    k8s_cluster.apply(pipeline_manifest(name, sleepy_definition(functions, 0.1), role))
    terminal = wait_for(lambda: condition(k8s_cluster.get("pipeline", name), "ACK.Terminal"), 20, "not managed")
    assert terminal["message"] == "Resource already exists"
    k8s_cluster.kubectl("delete", "pipeline", name, "--timeout=30s")
    assert sm.describe_pipeline(PipelineName=name)["PipelineStatus"] == "Active"  # never managed: untouched

    k8s_cluster.apply(pipeline_manifest(name, sleepy_definition(functions, 0.1), role, annotations={
        "services.k8s.aws/adoption-policy": "adopt",
        "services.k8s.aws/adoption-fields": json.dumps({"name": name})}))
    adopted = wait_for(lambda: condition(k8s_cluster.get("pipeline", name), "ACK.Adopted"), 20, "ACK.Adopted")
    assert adopted["status"] == "True"
    assert status_of(k8s_cluster, "pipeline", name, "pipelineStatus") == "Active"
    k8s_cluster.kubectl("delete", "pipeline", name, "--timeout=30s")
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.describe_pipeline(PipelineName=name)


def test_operator_and_stratum_restarts_lose_nothing(k8s_cluster: Cluster, operator: Operator,
                                                    stratum: StratumServer, functions: dict[str, str]) -> None:
    """The operator stopped while an execution runs: back, it catches up with the outcome (no second
    start). Stratum restarted under a running operator: resources stay as they are and new ones work."""
    name, run, again = _name("pipe"), _name("run"), _name("run")
    k8s_cluster.apply(pipeline_manifest(name, sleepy_definition(functions, 3), pipeline_role(stratum)))
    k8s_cluster.apply(execution_manifest(run, name))
    wait_for(lambda: status_of(k8s_cluster, "pipelineexecution", run, "pipelineExecutionStatus") == "Executing",
             30, "the execution to run")
    arn = (status_of(k8s_cluster, "pipelineexecution", run, "ackResourceMetadata") or {})["arn"]
    sm = stratum.client("sagemaker")
    operator.stop()
    wait_for(lambda: sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Succeeded",
             60, "the execution to finish in Stratum")
    assert status_of(k8s_cluster, "pipelineexecution", run, "pipelineExecutionStatus") == "Executing"
    operator.start()
    wait_for(lambda: status_of(k8s_cluster, "pipelineexecution", run, "pipelineExecutionStatus") == "Succeeded",
             30, "the status to catch up after the operator's restart")

    stratum.restart()
    k8s_cluster.apply(execution_manifest(again, name))
    wait_for(lambda: status_of(k8s_cluster, "pipelineexecution", again, "pipelineExecutionStatus") == "Succeeded",
             60, "an execution applied after Stratum's restart")
    summaries = sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"]
    assert len(summaries) == 2
    assert (status_of(k8s_cluster, "pipelineexecution", run, "ackResourceMetadata") or {})["arn"] == arn
    for resource in (run, again):
        k8s_cluster.kubectl("delete", "pipelineexecution", resource, "--timeout=30s")
    k8s_cluster.kubectl("delete", "pipeline", name, "--timeout=30s")


def test_cross_account_through_carm(k8s_cluster: Cluster, operator: Operator, stratum: StratumServer,
                                    functions: dict[str, str]) -> None:
    """A resource annotated with another account's ID is created there, through the role the
    ack-role-account-map maps that account to (sts:AssumeRole); unmapped, it waits, not synced."""
    dev, test = stratum.account_id("dev"), stratum.account_id("test")
    iam = stratum.client("iam", "test")
    role = _name("ack-carm")
    role_arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{dev}:root"}, "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
    )["Role"]["Arn"]
    iam.attach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")
    name = _name("xacct")
    definition = {"Version": "2020-12-01", "Parameters": [], "Steps": [
        {"Name": "Fail", "Type": "Fail", "Arguments": {"ErrorMessage": "cross-account"}}]}
    k8s_cluster.apply(pipeline_manifest(name, definition, role_arn,
                                        annotations={"services.k8s.aws/owner-account-id": test}))
    synced = wait_for(lambda: condition(k8s_cluster.get("pipeline", name), "ACK.ResourceSynced"), 20, "a condition")
    assert synced["status"] == "False" and synced["message"] == "IAM Role is not available"
    assert operator.carm_dir is not None
    (operator.carm_dir / test).write_text(role_arn)
    wait_for(lambda: status_of(k8s_cluster, "pipeline", name, "pipelineStatus") == "Active", 30,
             "the pipeline in the mapped account")
    metadata = status_of(k8s_cluster, "pipeline", name, "ackResourceMetadata")
    assert metadata["ownerAccountID"] == test
    assert metadata["arn"] == f"arn:aws:sagemaker:us-east-1:{test}:pipeline/{name}"
    assert stratum.client("sagemaker", "test").describe_pipeline(PipelineName=name)["PipelineStatus"] == "Active"
    with pytest.raises(stratum.client("sagemaker").exceptions.ResourceNotFound):
        stratum.client("sagemaker", "dev").describe_pipeline(PipelineName=name)
    k8s_cluster.kubectl("delete", "pipeline", name, "--timeout=30s")
    with pytest.raises(stratum.client("sagemaker").exceptions.ResourceNotFound):
        stratum.client("sagemaker", "test").describe_pipeline(PipelineName=name)


def test_adopted_resource_brings_existing_pipeline_and_execution(k8s_cluster: Cluster, operator: Operator,
                                                                 stratum: StratumServer,
                                                                 functions: dict[str, str]) -> None:
    """ACK's AdoptedResource: a pipeline and an execution made with boto3 become custom resources whose
    status follows them; nothing is created a second time."""
    sm = stratum.client("sagemaker")
    name = _name("boto")
    sm.create_pipeline(PipelineName=name, RoleArn=pipeline_role(stratum), ClientRequestToken=uuid.uuid4().hex,
                       PipelineDefinition=json.dumps(sleepy_definition(functions, 2)))
    arn = sm.start_pipeline_execution(PipelineName=name, ClientRequestToken=uuid.uuid4().hex)["PipelineExecutionArn"]
    k8s_cluster.apply(f"""
apiVersion: services.k8s.aws/v1alpha1
kind: AdoptedResource
metadata:
  name: adopt-{name}
spec:
  aws:
    nameOrID: {name}
  kubernetes:
    group: sagemaker.services.k8s.aws
    kind: Pipeline
    metadata:
      name: {name}
---
apiVersion: services.k8s.aws/v1alpha1
kind: AdoptedResource
metadata:
  name: adopt-run-{name}
spec:
  aws:
    arn: {arn}
  kubernetes:
    group: sagemaker.services.k8s.aws
    kind: PipelineExecution
    metadata:
      name: run-{name}
""")
    wait_for(lambda: status_of(k8s_cluster, "pipelineexecution", f"run-{name}", "pipelineExecutionStatus")
             == "Succeeded", 40, "the adopted execution to follow Stratum")
    execution = k8s_cluster.get("pipelineexecution", f"run-{name}")
    assert execution is not None and execution["spec"]["pipelineName"] == name
    assert execution["status"]["ackResourceMetadata"]["arn"] == arn
    assert condition(execution, "ACK.Adopted")["status"] == "True"  # type: ignore[index]
    pipeline = k8s_cluster.get("pipeline", name)
    assert pipeline is not None and json.loads(pipeline["spec"]["pipelineDefinition"]) == sleepy_definition(functions, 2)
    assert pipeline["status"]["pipelineStatus"] == "Active"
    adopted = condition(k8s_cluster.get("adoptedresource", f"adopt-{name}"), "ACK.Adopted")
    assert adopted is not None and adopted["status"] == "True"
    assert len(sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"]) == 1
    k8s_cluster.kubectl("delete", "pipelineexecution", f"run-{name}", "--timeout=30s")
    k8s_cluster.kubectl("delete", "pipeline", name, "--timeout=30s")
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.describe_pipeline(PipelineName=name)
