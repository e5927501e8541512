"""Jobs driven by the unmodified SageMaker Python SDK 2.x with its defaults (sagemaker.Session()
from the environment the server prints, the account's default bucket, no request leaving the
machine): SKLearnProcessor (code uploaded by the SDK, ScriptProcessor layout), a scikit-learn
estimator in script mode (sourcedir.tar.gz built by the SDK) and the built-in XGBoost estimator
with default arguments, then a batch transform. With the defaults (logs=True) the SDK tails the
job's CloudWatch Logs stream while it waits: the job's own output lines must be printed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sdk_testing import has_traceback, loopback_only, user_environment
from stratum_testing import REGION, StratumServer
from test_jobs_support import abalone_rows, csv_text, sagemaker_role

sagemaker = pytest.importorskip("sagemaker")

from sagemaker.session import Session  # noqa: E402

PREPROCESS = """
import os
import pandas as pd
df = pd.read_csv("/opt/ml/processing/input/data.csv", header=None)
os.makedirs("/opt/ml/processing/train", exist_ok=True)
df[df[0] > 9].to_csv("/opt/ml/processing/train/train.csv", header=False, index=False)
print("rows", len(df))
"""
TRAIN = """
import argparse, os, joblib
import pandas as pd
from sklearn.linear_model import LinearRegression
p = argparse.ArgumentParser()
p.add_argument("--fit-intercept", type=str, default="True")
a = p.parse_args()
df = pd.read_csv(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), header=None)
model = LinearRegression(fit_intercept=a.fit_intercept == "True").fit(df.iloc[:, 1:], df.iloc[:, 0])
print(f"r2={model.score(df.iloc[:, 1:], df.iloc[:, 0]):.4f}")
joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
"""


@pytest.fixture
def sdk_session(server: StratumServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> Iterator[Session]:
    """sagemaker.Session() in the user's shell (see sdk_testing): an off-machine connection or a
    traceback on the output fails the test."""
    with user_environment(server.data_dir / "server.log", tmp_path / "home",
                          SAGEMAKER_SUPPRESS_V2_WARNING="1"), loopback_only() as attempts:
        yield Session()
    out, err = capfd.readouterr()
    assert attempts == [], f"requests left the machine for {attempts}"
    assert not has_traceback(out + err), out + err


@pytest.mark.slow
def test_sdk_processor_and_sklearn_estimator(server: StratumServer, sdk_session: Session, tmp_path: Path,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    from sagemaker.processing import ProcessingInput, ProcessingOutput
    from sagemaker.sklearn.estimator import SKLearn
    from sagemaker.sklearn.processing import SKLearnProcessor

    role = sagemaker_role(server)
    bucket = sdk_session.default_bucket()
    assert bucket == f"sagemaker-{REGION}-{server.account_id('dev')}"
    prefix = f"sdk-{uuid.uuid4().hex[:8]}"
    data = sdk_session.upload_string_as_file_body(csv_text(abalone_rows()[:500]), bucket, f"{prefix}/raw/data.csv")
    (tmp_path / "preprocess.py").write_text(PREPROCESS)
    processor = SKLearnProcessor(framework_version="1.2-1", role=role, instance_type="ml.m5.large", instance_count=1,
                                 sagemaker_session=sdk_session, base_job_name="sdk-proc")
    processor.run(code=str(tmp_path / "preprocess.py"),
                  inputs=[ProcessingInput(source=data, destination="/opt/ml/processing/input")],
                  outputs=[ProcessingOutput(output_name="train", source="/opt/ml/processing/train",
                                            destination=f"s3://{bucket}/{prefix}/train")],
                  wait=True)
    job = processor.latest_job.describe()
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    printed = capfd.readouterr().out
    assert "rows 500" in printed.splitlines(), printed  # the script's own line, tailed from the job's stream

    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(TRAIN)
    estimator = SKLearn(entry_point="train.py", source_dir=str(source), framework_version="1.2-1",
                        instance_type="ml.m5.large", role=role, sagemaker_session=sdk_session,
                        hyperparameters={"fit-intercept": True},
                        metric_definitions=[{"Name": "train:r2", "Regex": "r2=([0-9.]+)"}])
    estimator.fit({"train": f"s3://{bucket}/{prefix}/train"})
    description = estimator.latest_training_job.describe()
    assert description["TrainingJobStatus"] == "Completed", description.get("FailureReason")
    printed = capfd.readouterr().out.splitlines()
    assert any(line.startswith("r2=0.") for line in printed), printed
    assert any(line.startswith("Training seconds:") for line in printed), printed
    assert 0 < description["FinalMetricDataList"][0]["Value"] <= 1
    assert estimator.model_data.endswith("/output/model.tar.gz")


@pytest.mark.slow
def test_sdk_builtin_xgboost_and_transformer(server: StratumServer, sdk_session: Session, tmp_path: Path,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    from sagemaker import image_uris
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput

    role = sagemaker_role(server)
    rows = abalone_rows()
    prefix = f"xgb-{uuid.uuid4().hex[:8]}"
    for name, part in (("train", rows[:2000]), ("validation", rows[2000:2400]),
                       ("test", [r[1:] for r in rows[2400:2410]])):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.csv").write_text(csv_text(part))
    # upload_data with its defaults: the session's default bucket.
    train, validation, test = (sdk_session.upload_data(str(tmp_path / n), key_prefix=f"{prefix}/{n}")
                               for n in ("train", "validation", "test"))
    assert train == f"s3://sagemaker-{REGION}-{server.account_id('dev')}/{prefix}/train"
    image = image_uris.retrieve("xgboost", region=REGION, version="1.7-1")
    started = time.monotonic()
    estimator = Estimator(image_uri=image, role=role, instance_count=1, instance_type="ml.m5.xlarge")
    estimator.set_hyperparameters(objective="reg:squarederror", num_round=10, max_depth=4, eta=0.3)
    estimator.fit({"train": TrainingInput(train, content_type="text/csv"),
                   "validation": TrainingInput(validation, content_type="text/csv")})
    description = estimator.latest_training_job.describe()
    assert description["TrainingJobStatus"] == "Completed", description.get("FailureReason")
    assert {m["MetricName"] for m in description["FinalMetricDataList"]} == {"train:rmse", "validation:rmse"}
    printed = capfd.readouterr().out
    assert "train-rmse:" in printed and "validation-rmse:" in printed, printed
    # The default output path: the default bucket, under the job's name.
    assert estimator.model_data == (f"s3://{sdk_session.default_bucket()}/{estimator.latest_training_job.name}"
                                    "/output/model.tar.gz")
    print(f"\n[{server.backend}] Estimator.fit with defaults: {time.monotonic() - started:.1f}s")

    transformer = estimator.transformer(instance_count=1, instance_type="ml.m5.large", strategy="MultiRecord",
                                        assemble_with="Line", output_path=f"s3://{sdk_session.default_bucket()}/"
                                                                          f"{prefix}/out")
    transformer.transform(test, content_type="text/csv", split_type="Line", wait=True)
    printed = capfd.readouterr().out
    assert "starting the model server" in printed, printed
    body = sdk_session.read_s3_file(sdk_session.default_bucket(), f"{prefix}/out/test.csv.out")
    assert len([float(v) for v in body.split()]) == 10
