"""Hyperparameter tuning through boto3: grid and random search over script-mode training jobs,
best job by the objective metric, listing the training jobs, stopping a tuning job."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from stratum_testing import StratumServer
from test_jobs_support import SKLEARN_IMAGE, bucket, listed, put, sagemaker_role, uid, wait_job

# The "loss" is a known function of the hyperparameters, so the best job is predictable.
OBJECTIVE_SCRIPT = r"""
import argparse
p = argparse.ArgumentParser()
p.add_argument("--depth", type=int, default=1)
p.add_argument("--booster", default="a")
p.add_argument("--rate", type=float, default=0.5)
p.add_argument("--tag", default="")
a = p.parse_args()
loss = abs(a.depth - 4) + {"a": 0.5, "b": 0.0, "c": 2.0}[a.booster] + abs(a.rate - 0.3)
print(f"validation loss: {loss:.6f}")
"""


def tuning_request(server: StratumServer, name: str, strategy: str, ranges: dict[str, Any], max_jobs: int | None,
                   parallel: int = 2, sleep: bool = False) -> dict[str, Any]:
    script = OBJECTIVE_SCRIPT + ("import time\ntime.sleep(120)\n" if sleep else "")
    source = put(server, f"tuning/{name}/sourcedir.tar.gz", _tar({"train.py": script}))
    limits: dict[str, Any] = {"MaxParallelTrainingJobs": parallel}
    if max_jobs:
        limits["MaxNumberOfTrainingJobs"] = max_jobs
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy, "ResourceLimits": limits, "ParameterRanges": ranges,
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:loss"},
            "RandomSeed": 7},
        "TrainingJobDefinition": {
            "StaticHyperParameters": {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": f'"{source}"',
                                      "tag": '"static"'},
            "AlgorithmSpecification": {"TrainingImage": SKLEARN_IMAGE, "TrainingInputMode": "File", "MetricDefinitions": [
                {"Name": "validation:loss", "Regex": r"validation loss: ([0-9\.]+)"}]},
            "RoleArn": sagemaker_role(server),
            "OutputDataConfig": {"S3OutputPath": f"s3://{bucket(server)}/tuning"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
            "StoppingCondition": {"MaxRuntimeInSeconds": 300},
        },
    }


def _tar(files: dict[str, str]) -> bytes:
    from test_jobs_support import tarball

    return tarball(files)


def test_grid_and_random_tuning_pick_the_best_job(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    grid = uid("grid")[:20]
    sm.create_hyper_parameter_tuning_job(**tuning_request(server, grid, "Grid", {
        "CategoricalParameterRanges": [{"Name": "booster", "Values": ["a", "b", "c"]},
                                       {"Name": "depth", "Values": ["3", "4"]}]}, None, parallel=3))
    rnd = uid("rand")[:20]
    arn = sm.create_hyper_parameter_tuning_job(**tuning_request(server, rnd, "Random", {
        "IntegerParameterRanges": [{"Name": "depth", "MinValue": "1", "MaxValue": "8"}],
        "ContinuousParameterRanges": [{"Name": "rate", "MinValue": "0.01", "MaxValue": "1", "ScalingType":
                                       "Logarithmic"}]}, 4))["HyperParameterTuningJobArn"]
    assert arn.endswith(f":hyper-parameter-tuning-job/{rnd.lower()}")

    d = wait_job(sm, "tuning", grid)
    assert d["HyperParameterTuningJobStatus"] == "Completed", d.get("FailureReason")
    assert d["TrainingJobStatusCounters"]["Completed"] == 6
    assert d["ObjectiveStatusCounters"] == {"Succeeded": 6, "Pending": 0, "Failed": 0}
    best = d["BestTrainingJob"]
    assert best["TunedHyperParameters"] == {"booster": "b", "depth": "4"}
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == pytest.approx(0.2)
    assert best["TrainingJobName"].startswith(f"{grid}-")
    jobs = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=grid, SortBy="FinalObjectiveMetricValue", SortOrder="Ascending",
        MaxResults=4)
    assert len(jobs["TrainingJobSummaries"]) == 4 and jobs["NextToken"]
    assert jobs["TrainingJobSummaries"][0]["TrainingJobName"] == best["TrainingJobName"]
    values = [j["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for j in jobs["TrainingJobSummaries"]]
    assert values == sorted(values)
    child = sm.describe_training_job(TrainingJobName=best["TrainingJobName"])
    assert child["TuningJobArn"] == d["HyperParameterTuningJobArn"]
    assert child["HyperParameters"]["tag"] == '"static"' and child["HyperParameters"]["booster"] == "b"

    d = wait_job(sm, "tuning", rnd)
    assert d["HyperParameterTuningJobStatus"] == "Completed", d.get("FailureReason")
    summaries = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=rnd)[
        "TrainingJobSummaries"]
    assert len(summaries) == 4
    for s in summaries:
        assert 1 <= int(s["TunedHyperParameters"]["depth"]) <= 8
        assert 0.01 <= float(s["TunedHyperParameters"]["rate"]) <= 1
    scores = {s["TrainingJobName"]: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in summaries}
    assert d["BestTrainingJob"]["TrainingJobName"] == min(scores, key=scores.__getitem__)
    found = listed(sm, "tuning", NameContains=rnd)
    assert [(t["HyperParameterTuningJobName"], t["Strategy"], t["HyperParameterTuningJobStatus"]) for t in found] == [
        (rnd, "Random", "Completed")]


def test_stop_tuning_job_and_validation(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = uid("stop")[:20]
    sm.create_hyper_parameter_tuning_job(**tuning_request(server, name, "Random", {
        "IntegerParameterRanges": [{"Name": "depth", "MinValue": "1", "MaxValue": "8"}]}, 4, parallel=1, sleep=True))
    deadline_jobs: list[dict[str, Any]] = []
    for _ in range(100):
        deadline_jobs = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)[
            "TrainingJobSummaries"]
        if deadline_jobs:
            break
        import time

        time.sleep(0.1)
    assert len(deadline_jobs) == 1
    sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    d = wait_job(sm, "tuning", name, timeout=60)
    assert d["HyperParameterTuningJobStatus"] == "Stopped"
    child = sm.describe_training_job(TrainingJobName=deadline_jobs[0]["TrainingJobName"])
    assert child["TrainingJobStatus"] == "Stopped"

    with pytest.raises(ClientError) as exc:
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=uid("none")[:20])
    assert exc.value.response["Error"]["Code"] == "ResourceNotFound"
    bad = tuning_request(server, uid("bad")[:20], "Grid", {
        "IntegerParameterRanges": [{"Name": "depth", "MinValue": "1", "MaxValue": "8"}]}, 3)
    with pytest.raises(ClientError) as exc:
        sm.create_hyper_parameter_tuning_job(**bad)
    assert exc.value.response["Error"]["Code"] == "ValidationException"
