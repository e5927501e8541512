"""Pipeline metrics as SageMaker publishes them (AWS/Sagemaker/ModelBuildingPipeline), read back
with the unmodified boto3 CloudWatch client: execution and step counts and durations, per
pipeline and step, in the executing account only."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from stratum_testing import StratumServer

NAMESPACE = "AWS/Sagemaker/ModelBuildingPipeline"


def _definition(threshold: float) -> str:
    # Threshold 0.9: the Gate's condition is false, nothing fails. 0.1: the Stop step fails it.
    return json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": [
        {"Name": "Gate", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "GreaterThanOrEqualTo", "LeftValue": 0.5, "RightValue": threshold}],
            "IfSteps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "gate closed"}}],
            "ElseSteps": []}}]})


def _run(server: StratumServer, name: str, threshold: float, runs: int) -> list[str]:
    sm = server.client("sagemaker")
    role = f"arn:aws:iam::{server.account_id('dev')}:role/metrics-pipeline"
    sm.create_pipeline(PipelineName=name, RoleArn=role, PipelineDefinition=_definition(threshold))
    arns = [sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"] for _ in range(runs)]
    statuses = []
    for arn in arns:
        deadline = time.monotonic() + 30
        while (status := sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]) \
                == "Executing":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        statuses.append(status)
    return statuses


def _sum(cw: Any, metric: str, dimensions: dict[str, str], statistic: str = "Sum") -> float | None:
    now = datetime.now(UTC)
    points = cw.get_metric_statistics(
        Namespace=NAMESPACE, MetricName=metric, Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
        StartTime=now - timedelta(minutes=10), EndTime=now + timedelta(minutes=1), Period=3600,
        Statistics=[statistic])["Datapoints"]
    return points[0][statistic] if points else None


def test_execution_and_step_metrics(server: StratumServer) -> None:
    ok, bad = f"metrics-ok-{uuid.uuid4().hex[:6]}", f"metrics-bad-{uuid.uuid4().hex[:6]}"
    assert _run(server, ok, 0.9, 3) == ["Succeeded"] * 3
    assert _run(server, bad, 0.1, 2) == ["Failed"] * 2
    cw = server.client("cloudwatch")

    assert _sum(cw, "ExecutionStarted", {"PipelineName": ok}) == 3
    assert _sum(cw, "ExecutionSucceeded", {"PipelineName": ok}) == 3
    assert _sum(cw, "ExecutionFailed", {"PipelineName": ok}) is None
    assert _sum(cw, "ExecutionStarted", {"PipelineName": bad}) == 2
    assert _sum(cw, "ExecutionFailed", {"PipelineName": bad}) == 2
    assert _sum(cw, "ExecutionDuration", {"PipelineName": ok}, "SampleCount") == 3
    assert _sum(cw, "ExecutionDuration", {"PipelineName": ok}, "Minimum") >= 0

    assert _sum(cw, "StepStarted", {"PipelineName": ok, "StepName": "Gate"}) == 3
    assert _sum(cw, "StepSucceeded", {"PipelineName": ok, "StepName": "Gate"}) == 3
    assert _sum(cw, "StepSucceeded", {"PipelineName": bad, "StepName": "Gate"}) == 2
    assert _sum(cw, "StepFailed", {"PipelineName": bad, "StepName": "Stop"}) == 2
    assert _sum(cw, "StepDuration", {"PipelineName": bad, "StepName": "Stop"}, "SampleCount") == 2

    listed = cw.list_metrics(Namespace=NAMESPACE, Dimensions=[{"Name": "PipelineName", "Value": ok}])["Metrics"]
    assert {m["MetricName"] for m in listed} == {"ExecutionStarted", "ExecutionSucceeded", "ExecutionDuration",
                                                  "StepStarted", "StepSucceeded", "StepDuration"}
    # The executing account's metrics: another account sees none of them.
    other = server.client("cloudwatch", account="test")
    assert other.list_metrics(Namespace=NAMESPACE, Dimensions=[{"Name": "PipelineName", "Value": ok}])["Metrics"] == []
