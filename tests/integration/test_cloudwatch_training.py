"""Jobs publish to CloudWatch as they run. A training job's MetricDefinitions: GetMetricData (with math on
them) and the SageMaker SDK's TrainingJobAnalytics dataframe read them, with the job's CPU and
memory under dimension Host; a processing job's CPU and memory."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from sdk_testing import user_environment
from stratum_testing import StratumServer
from test_jobs_support import processing_request, put, script_training_request, uid, wait_job

TRAIN = r"""
import time
for epoch in range(4):
    print(f"epoch={epoch} train_loss={1.0 / (epoch + 1):.4f} accuracy={0.5 + epoch / 10:.2f}", flush=True)
    time.sleep(1.2)
"""
NAMESPACE = "/aws/sagemaker/TrainingJobs"


def _values(result: dict) -> list[float]:
    return [v for _, v in sorted(zip(result["Timestamps"], result["Values"], strict=True))]


@pytest.mark.slow
def test_training_metrics_in_get_metric_data_and_training_job_analytics(server: StratumServer, tmp_path: Path
                                                                        ) -> None:
    sm = server.client("sagemaker")
    cw = server.client("cloudwatch")
    name = uid("cwtrain")
    channel = put(server, f"train/{name}/data.csv", "1\n").rsplit("/", 1)[0]
    request = script_training_request(server, name, {"train.py": TRAIN}, channels={"train": channel},
                                      metric_definitions=[{"Name": "train:loss", "Regex": r"train_loss=([0-9\.]+)"},
                                                          {"Name": "accuracy", "Regex": r"accuracy=([0-9\.]+)"}])
    sm.create_training_job(**request)
    dims = [{"Name": "TrainingJobName", "Value": name}]
    # Published while the job runs, not only at its end.
    deadline = time.monotonic() + 300
    seen_running = False
    while time.monotonic() < deadline:
        status = sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
        listed = cw.list_metrics(Namespace=NAMESPACE, MetricName="train:loss", Dimensions=dims)["Metrics"]
        if listed and status == "InProgress":
            seen_running = True
            break
        if status != "InProgress":
            break
        time.sleep(0.3)
    assert seen_running, "no metric was published while the job ran"
    d = wait_job(sm, "training", name)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")

    start = d["TrainingStartTime"] - timedelta(minutes=1)
    end = d["TrainingEndTime"] + timedelta(minutes=1)
    out = cw.get_metric_data(MetricDataQueries=[
        {"Id": "loss", "MetricStat": {"Metric": {"Namespace": NAMESPACE, "MetricName": "train:loss",
                                                 "Dimensions": dims}, "Period": 1, "Stat": "Average"}},
        {"Id": "acc", "MetricStat": {"Metric": {"Namespace": NAMESPACE, "MetricName": "accuracy",
                                                "Dimensions": dims}, "Period": 1, "Stat": "Maximum"}},
        {"Id": "worst", "Expression": "MAX(loss) * 100"}], StartTime=start, EndTime=end)
    results = {r["Id"]: r for r in out["MetricDataResults"]}
    assert sorted(_values(results["loss"]), reverse=True) == [1.0, 0.5, 0.3333, 0.25]
    assert _values(results["loss"]) == [1.0, 0.5, 0.3333, 0.25]  # in time order, as printed
    assert _values(results["acc"]) == [0.5, 0.6, 0.7, 0.8]
    assert max(_values(results["worst"])) == pytest.approx(100.0)
    stamps = sorted(results["loss"]["Timestamps"])
    assert stamps[-1] - stamps[0] >= timedelta(seconds=2)  # each value carries the time it was printed
    assert d["TrainingStartTime"] - timedelta(seconds=2) <= stamps[0] <= d["TrainingEndTime"] + timedelta(seconds=2)

    # The instance metrics, as SageMaker publishes them for the algo-1 host.
    host = [{"Name": "Host", "Value": f"{name}/algo-1"}]
    cpu = cw.get_metric_statistics(Namespace=NAMESPACE, MetricName="CPUUtilization", Dimensions=host,
                                   StartTime=start, EndTime=end, Period=60, Statistics=["Maximum", "SampleCount"])
    assert cpu["Datapoints"] and all(p["Unit"] == "Percent" and p["Maximum"] >= 0 for p in cpu["Datapoints"])
    memory = cw.get_metric_statistics(Namespace=NAMESPACE, MetricName="MemoryUtilization", Dimensions=host,
                                      StartTime=start, EndTime=end, Period=60, Statistics=["Maximum"])
    assert memory["Datapoints"] and 0 < max(p["Maximum"] for p in memory["Datapoints"]) < 100

    # The SDK's analytics, from the environment the server prints.
    analytics_mod = pytest.importorskip("sagemaker.analytics")
    from sagemaker.session import Session

    with user_environment(server.data_dir / "server.log", tmp_path / "home", SAGEMAKER_SUPPRESS_V2_WARNING="1"):
        frame = analytics_mod.TrainingJobAnalytics(name, metric_names=["train:loss", "accuracy"],
                                                   sagemaker_session=Session()).dataframe()
    assert set(frame["metric_name"]) == {"train:loss", "accuracy"}
    loss = frame[frame["metric_name"] == "train:loss"]
    # One-minute periods (the SDK's default): the average of the values printed in each minute.
    by_minute: dict[object, list[float]] = {}
    for stamp, value in zip(results["loss"]["Timestamps"], results["loss"]["Values"], strict=True):
        by_minute.setdefault(stamp.replace(second=0, microsecond=0), []).append(value)
    expected = [sum(v) / len(v) for _, v in sorted(by_minute.items())]
    assert loss["value"].tolist() == pytest.approx(expected)
    assert loss["timestamp"].tolist() == [60.0 * i for i in range(len(expected))]


BUSY = r"""
import time
end = time.monotonic() + 3.5
data = bytearray(64 * 1024 * 1024)  # memory the job holds while it works
while time.monotonic() < end:
    sum(range(10000))
print("done", len(data))
"""


@pytest.mark.slow
def test_processing_job_cpu_and_memory(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    cw = server.client("cloudwatch")
    name = uid("cwproc")
    sm.create_processing_job(**processing_request(server, name, BUSY))
    d = wait_job(sm, "processing", name)
    assert d["ProcessingJobStatus"] == "Completed", d.get("FailureReason")
    host = [{"Name": "Host", "Value": f"{name}/algo-1"}]
    start, end = d["ProcessingStartTime"] - timedelta(minutes=1), d["ProcessingEndTime"] + timedelta(minutes=1)
    cpu = cw.get_metric_statistics(Namespace="/aws/sagemaker/ProcessingJobs", MetricName="CPUUtilization",
                                   Dimensions=host, StartTime=start, EndTime=end, Period=1, Statistics=["Maximum"])
    # A busy loop keeps one core busy for most of the job's seconds: near 100% on a quiet machine, a
    # share of it when the suite's other workers load both cores (30% seen); an idle job is near 0.
    assert max(p["Maximum"] for p in cpu["Datapoints"]) > 20
    memory = cw.get_metric_statistics(Namespace="/aws/sagemaker/ProcessingJobs", MetricName="MemoryUtilization",
                                      Dimensions=host, StartTime=start, EndTime=end, Period=60,
                                      Statistics=["Maximum"])
    assert max(p["Maximum"] for p in memory["Datapoints"]) > 0
    # Nothing under the training namespace for a processing job.
    assert cw.list_metrics(Namespace="/aws/sagemaker/TrainingJobs", Dimensions=host)["Metrics"] == []
