"""Pure pieces of the job system: image mapping, S3 key layout, /opt/ml remapping, toolkit
arguments, metric parsing, tuning search spaces and best job, transform batching and filters."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from stratum.jobs import images, tuning
from stratum.jobs.contracts import Layout, decode_hyperparameter, user_args
from stratum.jobs.metrics import parse_metrics
from stratum.jobs.s3io import JobDataError, relative_key
from stratum.jobs.transform import _batches, _Filters, _split


@pytest.mark.parametrize("uri,kind", [
    ("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1", "xgboost"),
    ("246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.5-1", "xgboost"),
    ("811284229777.dkr.ecr.us-east-1.amazonaws.com/xgboost:1", "xgboost"),
    ("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3", "python"),
    ("763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.1.0-cpu-py310", "python"),
    ("763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-training:2.1-transformers4.36-gpu-py310-cu121-ubuntu20.04", "python"),
    ("763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-training:2.13-cpu-py310", "python"),
    ("python:3.11-slim", "python"),
    ("public.ecr.aws/docker/library/python:3.12", "python"),
    ("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost@sha256:abcd", "xgboost"),
])
def test_known_images(uri: str, kind: str) -> None:
    assert images.resolve(uri).kind == kind


def test_unknown_image_and_user_mapping(tmp_path: Path) -> None:
    with pytest.raises(images.UnsupportedImage) as exc:
        images.resolve("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/trainer:3")
    assert str(exc.value).startswith("Image 123456789012.dkr.ecr.us-east-1.amazonaws.com/team/trainer:3 is not "
                                     "supported by Stratum; supported: ")
    config = tmp_path / "images.yaml"
    config.write_text('images:\n  - match: "*.dkr.ecr.*.amazonaws.com/team/*"\n    runtime: python\n'
                      '  - match: "registry.local/tools:*"\n    runtime: host\n')
    assert images.resolve("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/trainer:3", config).kind == "python"
    assert images.resolve("registry.local/tools:1", config).kind == "host"
    config.write_text("images:\n  - match: x\n    runtime: docker\n")
    with pytest.raises(ValueError):
        images.resolve("x", config)


def test_relative_keys() -> None:
    assert relative_key("data/train/", "data/train/a.csv") == "a.csv"
    assert relative_key("data/train", "data/train/sub/b.csv") == "sub/b.csv"
    assert relative_key("data/train.csv", "data/train.csv") == "train.csv"
    assert relative_key("data/tr", "data/train/a.csv") == "train/a.csv"
    assert relative_key("", "x/y.csv") == "x/y.csv"


def test_opt_ml_remapping(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    ml = str(tmp_path / "ml")
    assert layout.remap("/opt/ml/processing/input") == f"{ml}/processing/input"
    assert layout.remap("--out=/opt/ml/model") == f"--out={ml}/model"
    assert layout.remap("/opt/ml") == ml
    assert layout.remap("/opt/mlflow/x") == "/opt/mlflow/x"
    assert layout.remap("/data/opt/ml/x") == "/data/opt/ml/x"
    assert layout.real("/opt/ml/processing/output") == tmp_path / "ml" / "processing" / "output"


def test_toolkit_arguments() -> None:
    hps = {"epochs": "3", "lr": "0.1", "name": '"resnet"', "flag": "true", "sagemaker_program": '"train.py"',
           "layers": "[1, 2]"}
    assert user_args(hps) == ["--epochs", "3", "--lr", "0.1", "--name", "resnet", "--flag", "True",
                              "--layers", "[1, 2]"]
    assert decode_hyperparameter("not json") == "not json"


def test_metrics_from_log(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_text("[stratum] running\n[0]#011train-rmse:3.1#011validation-rmse:3.5\nepoch 1 loss=0.9 acc=0.5\n"
                   "[1]#011train-rmse:2.1#011validation-rmse:2.5\nepoch 2 loss=0.4 acc=0.75\n[1]\ttrain-auc:0.9\n")
    builtin = {m["MetricName"]: m["Value"] for m in parse_metrics(log, [], True, 1.0)}
    assert builtin == {"train:rmse": 2.1, "validation:rmse": 2.5, "train:auc": 0.9}
    custom = parse_metrics(log, [{"Name": "loss", "Regex": r"loss=([0-9.]+)"}, {"Name": "acc", "Regex": "acc=(\\S+)"}],
                           False, 5.0)
    assert custom == [{"MetricName": "loss", "Value": 0.4, "Timestamp": 5.0},
                      {"MetricName": "acc", "Value": 0.75, "Timestamp": 5.0}]


def _tuning_request(strategy: str, ranges: dict, max_jobs: int | None = 5) -> dict:
    limits = {"MaxParallelTrainingJobs": 2, **({"MaxNumberOfTrainingJobs": max_jobs} if max_jobs else {})}
    return {"HyperParameterTuningJobConfig": {"Strategy": strategy, "ResourceLimits": limits, "RandomSeed": 3,
                                              "HyperParameterTuningJobObjective": {"Type": "Maximize",
                                                                                   "MetricName": "acc"}},
            "TrainingJobDefinition": {"HyperParameterRanges": ranges, "RoleArn": "arn:aws:iam::123456789012:role/r",
                                      "AlgorithmSpecification": {"TrainingImage": "python:3"}}}


def test_tuning_search_spaces() -> None:
    grid = _tuning_request("Grid", {"CategoricalParameterRanges": [{"Name": "a", "Values": ["1", "2"]},
                                                                   {"Name": "b", "Values": ["x", "y", "z"]}]}, None)
    points = list(tuning.candidates(grid))
    assert len(points) == 6 and {"a": "2", "b": "z"} in points
    rnd = _tuning_request("Random", {
        "IntegerParameterRanges": [{"Name": "depth", "MinValue": "2", "MaxValue": "9"}],
        "ContinuousParameterRanges": [{"Name": "eta", "MinValue": "0.001", "MaxValue": "1",
                                       "ScalingType": "Logarithmic"},
                                      {"Name": "m", "MinValue": "0.9", "MaxValue": "0.999",
                                       "ScalingType": "ReverseLogarithmic"}]}, 50)
    points = list(tuning.candidates(rnd))
    assert len(points) == 50 and points == list(tuning.candidates(rnd))  # RandomSeed makes it repeatable
    assert all(2 <= int(p["depth"]) <= 9 and 0.001 <= float(p["eta"]) <= 1 and 0.9 <= float(p["m"]) <= 0.999
               for p in points)
    assert sum(float(p["eta"]) < 0.03 for p in points) > 10  # log scale: small values are common
    with pytest.raises(Exception) as exc:
        tuning.check_request(_tuning_request("Grid", {"IntegerParameterRanges": [
            {"Name": "d", "MinValue": "1", "MaxValue": "3"}]}))
    assert "categorical" in str(exc.value)


def test_tuning_best_job() -> None:
    request = _tuning_request("Random", {})
    parent = SimpleNamespace(name="t", request=request)
    now = datetime.now(UTC)

    def kid(name: str, status: str, acc: float | None) -> SimpleNamespace:
        return SimpleNamespace(name=name, arn=f"arn:{name}", status=status, created_at=now, started_at=now,
                               ended_at=now, failure_reason=None, context={"TunedHyperParameters": {"x": name}},
                               metrics=[{"MetricName": "acc", "Value": acc, "Timestamp": 0}] if acc is not None else [])

    result = tuning.aggregate(parent, [kid("a", "Completed", 0.7), kid("b", "Completed", 0.9), kid("c", "Failed", None),
                                       kid("d", "InProgress", None), kid("e", "Completed", None)])
    assert result["BestTrainingJob"]["TrainingJobName"] == "b"
    assert result["TrainingJobStatusCounters"] == {"Completed": 3, "InProgress": 1, "RetryableError": 0,
                                                   "NonRetryableError": 1, "Stopped": 0}
    assert result["ObjectiveStatusCounters"] == {"Succeeded": 2, "Pending": 1, "Failed": 2}


def test_transform_batching_and_filters() -> None:
    records = _split(b"1,2\r\n3,4\n\n5,6\n", "Line")
    assert records == [b"1,2", b"3,4", b"5,6"]
    assert _split(b"whole", "None") == [b"whole"]
    assert _batches(records, "Line", "MultiRecord", 8) == [[b"1,2", b"3,4"], [b"5,6"]]
    assert _batches(records, "Line", "SingleRecord", 1000) == [[b"1,2"], [b"3,4"], [b"5,6"]]
    filters = _Filters({"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"}, "text/csv")
    assert filters.input(b"9,1,2") == b"1,2"
    assert filters.output([b"9,1,2", b"8,3,4"], [b"0.5\n0.7\n"], []) == [b"9,0.5", b"8,0.7"]
    with pytest.raises(JobDataError):
        filters.output([b"9,1,2"], [b"0.5\n0.7\n"], [])
    with pytest.raises(JobDataError):
        _Filters({"InputFilter": "$.features"}, "text/csv")
    with pytest.raises(JobDataError):
        _Filters({"JoinSource": "Input"}, "application/json")


def test_pipeline_step_job_names() -> None:
    from types import SimpleNamespace

    from stratum.jobs.steps import job_name_for

    run = SimpleNamespace(extra={}, execution_arn="arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abc123",
                          execution_id="abc123", step_name="Pre process_Step", attempt=1)
    name = job_name_for(run, "processing")  # type: ignore[arg-type]
    assert name.startswith("pipelines-abc123-Pre-process-Step-") and len(name) <= 63
    assert job_name_for(run, "processing") == name  # type: ignore[arg-type]
    run.attempt = 2
    assert job_name_for(run, "processing") != name  # type: ignore[arg-type]
    tuning_name = job_name_for(run, "tuning")  # type: ignore[arg-type]
    assert len(tuning_name) <= 32 and tuning_name == job_name_for(run, "tuning")  # type: ignore[arg-type]
    run.extra = {"job_name": "pipelines-abc123-Train-0123456789"}
    assert job_name_for(run, "training") == "pipelines-abc123-Train-0123456789"  # type: ignore[arg-type]
