"""End to end: the SageMaker MLOps template's abalone model-build pipeline, written with the
unmodified SageMaker Python SDK 2.x (tests/abalone_pipeline.py), runs for real on Stratum.

Preprocess (SKLearnProcessor) -> train (built-in XGBoost) -> evaluate (ScriptProcessor) -> a
condition on the test MSE read with JsonGet -> register the model with its metrics, or a FailStep.
Also: the FailStep branch under a tiny MseThreshold, step caching on a second start, and the same
pipeline on the Ray executor.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import WaiterError
from sdk_testing import loopback_only, user_environment
from stratum_testing import BACKENDS, StratumServer, close_server, make_server, sagemaker_role

sagemaker = pytest.importorskip("sagemaker")
pytest.importorskip("xgboost")
pytest.importorskip("sklearn")

import abalone_pipeline as ab  # noqa: E402
from sagemaker.workflow.pipeline import Pipeline, _PipelineExecution  # noqa: E402
from sagemaker.workflow.pipeline_context import PipelineSession  # noqa: E402
from sagemaker.workflow.steps import CacheConfig  # noqa: E402

try:  # the module-scoped local Ray cluster of the Ray executor tests
    from test_ray_executor import ray_cluster  # noqa: F401
except pytest.skip.Exception:  # ray is not installed
    @pytest.fixture(scope="module")
    def ray_cluster() -> Iterator[Any]:
        pytest.skip("ray is not installed")

DATASET = Path(__file__).resolve().parents[1] / "data" / "abalone-dataset.csv"  # see tests/data/README.md
CACHED_STEPS = (ab.PREPROCESS, ab.TRAIN)
WAIT_ATTEMPTS = 150  # x 2 s


@dataclass
class Abalone:
    """One deployed abalone pipeline and what it needs."""

    server: StratumServer
    session: PipelineSession
    pipeline: Pipeline
    bucket: str
    role: str
    group: str
    first: _PipelineExecution | None = None
    first_seconds: float = 0.0



def _deploy(server: StratumServer, *, cache: bool) -> Abalone:
    """Upload the data set to the default bucket, build the pipeline with the SDK and upsert it (the
    SDK uploads the processing scripts to the bucket while it compiles the definition). Runs in the
    user's environment (as_user): PipelineSession() with the SDK's defaults."""
    assert DATASET.is_file(), f"the abalone data set is missing: {DATASET}"
    suffix = uuid.uuid4().hex[:8]
    session = PipelineSession()
    bucket = session.default_bucket()
    data = session.upload_data(str(DATASET), key_prefix=f"abalone-{suffix}/dataset")
    role = sagemaker_role(server, "AbaloneExecution")
    group = f"AbalonePackageGroup-{suffix}"
    pipeline = ab.get_pipeline(session, role=role, pipeline_name=f"AbalonePipeline-{suffix}",
                               model_package_group_name=group, input_data_url=data,
                               cache_config=CacheConfig(enable_caching=True, expire_after="PT1H") if cache else None)
    pipeline.upsert(role_arn=role, description="abalone model build")
    return Abalone(server=server, session=session, pipeline=pipeline, bucket=bucket, role=role, group=group)


def _run(pipeline: Pipeline, **parameters: Any) -> tuple[_PipelineExecution, float]:
    started = time.monotonic()
    execution = pipeline.start(parameters=parameters or None)
    try:
        execution.wait(delay=2, max_attempts=WAIT_ATTEMPTS)
    except WaiterError:
        pass  # a Failed execution ends the waiter with a failure state: the callers assert the outcome
    return execution, time.monotonic() - started


def _duration(execution: _PipelineExecution) -> float:
    desc = execution.describe()
    return (desc["LastModifiedTime"] - desc["CreationTime"]).total_seconds()


def _steps(execution: _PipelineExecution) -> dict[str, dict[str, Any]]:
    return {s["StepName"]: s for s in execution.list_steps()}


def _packages(server: StratumServer, group: str) -> list[dict[str, Any]]:
    sm = server.client("sagemaker")
    try:
        return sm.list_model_packages(ModelPackageGroupName=group, SortBy="CreationTime",
                                      SortOrder="Ascending")["ModelPackageSummaryList"]
    except sm.exceptions.ClientError:
        return []


def _read_s3(server: StratumServer, uri: str) -> bytes:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bytes(server.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def _assert_registered_run(ab_env: Abalone, execution: _PipelineExecution,
                           approval: str = "PendingManualApproval") -> float:
    """The execution succeeded through the register branch; returns the MSE it measured."""
    server = ab_env.server
    sm = server.client("sagemaker")
    desc = execution.describe()
    steps = _steps(execution)
    assert desc["PipelineExecutionStatus"] == "Succeeded", {n: s.get("FailureReason") for n, s in steps.items()}
    assert set(steps) == {ab.PREPROCESS, ab.TRAIN, ab.EVALUATE, ab.CHECK, ab.REGISTER_STEP}
    assert all(s["StepStatus"] == "Succeeded" for s in steps.values()), steps
    assert steps[ab.CHECK]["Metadata"]["Condition"]["Outcome"] == "True"

    # The jobs really ran: the evaluation report is in S3 and holds the MSE the condition compared.
    eval_job = sm.describe_processing_job(
        ProcessingJobName=steps[ab.EVALUATE]["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[1])
    assert eval_job["ProcessingJobStatus"] == "Completed"
    eval_uri = eval_job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    report = json.loads(_read_s3(server, f"{eval_uri}/evaluation.json"))
    mse = report["regression_metrics"]["mse"]["value"]
    assert 0 < mse <= 6.0 and report["regression_metrics"]["mse"]["standard_deviation"] > 0
    train_job = sm.describe_training_job(
        TrainingJobName=steps[ab.TRAIN]["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[1])
    assert train_job["TrainingJobStatus"] == "Completed"
    assert {m["MetricName"] for m in train_job["FinalMetricDataList"]} == {"train:rmse", "validation:rmse"}

    # The model package: in the group, pending approval, with the evaluation report as its metrics.
    package_arn = steps[ab.REGISTER_STEP]["Metadata"]["RegisterModel"]["Arn"]
    package = sm.describe_model_package(ModelPackageName=package_arn)
    assert package["ModelPackageGroupName"] == ab_env.group
    assert package["ModelApprovalStatus"] == approval
    assert package["ModelMetrics"]["ModelQuality"] == {"Statistics": {
        "ContentType": "application/json", "S3Uri": f"{eval_uri}/evaluation.json"}}
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == train_job["ModelArtifacts"]["S3ModelArtifacts"]
    assert container["Image"] == train_job["AlgorithmSpecification"]["TrainingImage"]
    assert package["MetadataProperties"]["GeneratedBy"] == execution.arn
    return float(mse)


# --------------------------------------------------------------------------------------- fixtures
@contextmanager
def as_user(server: StratumServer, home: Path) -> Iterator[None]:
    """The user's shell: only the environment the server printed at start (see sdk_testing); a
    connection off the machine fails the test."""
    with user_environment(server.data_dir / "server.log", home, SAGEMAKER_SUPPRESS_V2_WARNING="1"), \
            loopback_only() as attempts:
        yield
    assert attempts == [], f"requests left the machine for {attempts}"


@pytest.fixture(scope="module")
def abalone(server: StratumServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Abalone]:
    """A deployed pipeline (caching on the processing and training steps) and its first run."""
    with as_user(server, tmp_path_factory.mktemp("home")):
        env = _deploy(server, cache=True)
        env.first, env.first_seconds = _run(env.pipeline)
    yield env


@pytest.fixture
def endpoint(server: StratumServer, tmp_path: Path) -> Iterator[StratumServer]:
    """The server, with the test in the user's shell."""
    with as_user(server, tmp_path / "home"):
        yield server


# ------------------------------------------------------------------------------------------ tests
@pytest.mark.slow
def test_abalone_pipeline_trains_evaluates_and_registers(abalone: Abalone, endpoint: StratumServer) -> None:
    assert abalone.first is not None
    mse = _assert_registered_run(abalone, abalone.first)
    steps = _steps(abalone.first)
    assert not any("CacheHitResult" in s for s in steps.values())  # nothing to reuse on the first run
    packages = _packages(endpoint, abalone.group)
    assert [p["ModelPackageArn"] for p in packages] == [steps[ab.REGISTER_STEP]["Metadata"]["RegisterModel"]["Arn"]]
    print(f"\n[{endpoint.backend}] abalone pipeline: {abalone.first_seconds:.1f}s, executing "
          f"{_duration(abalone.first):.1f}s, test MSE {mse:.4f}")
    _deploy_registered(endpoint, steps[ab.REGISTER_STEP]["Metadata"]["RegisterModel"]["Arn"])


def _deploy_registered(server: StratumServer, package_arn: str) -> None:
    """Deploy the registered version's model (its image and model data; the package stays pending
    approval for the tests that follow) and check the endpoint predicts what the trained booster,
    loaded here, predicts."""
    import io
    import pickle
    import tarfile

    import numpy as np
    import xgboost

    sm = server.client("sagemaker")
    container = sm.describe_model_package(ModelPackageName=package_arn)["InferenceSpecification"]["Containers"][0]
    model_data = container["ModelDataUrl"]
    with tarfile.open(fileobj=io.BytesIO(_read_s3(server, model_data))) as tar:
        member = tar.extractfile("xgboost-model")
        assert member is not None
        booster = pickle.loads(member.read())  # noqa: S301 - our own training output (1.0-1 pickles it)
    rows = np.random.default_rng(3).uniform(0, 1, (5, booster.num_features()))
    expected = booster.predict(xgboost.DMatrix(rows))
    name = f"abalone-{uuid.uuid4().hex[:6]}"
    sm.create_model(ModelName=name, ExecutionRoleArn=sagemaker_role(server, "abalone-deploy"),
                    PrimaryContainer={"Image": container["Image"], "ModelDataUrl": model_data})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    body = "".join(",".join(f"{v:.17g}" for v in row) + "\n" for row in rows)
    answer = server.client("sagemaker-runtime").invoke_endpoint(EndpointName=name, ContentType="text/csv",
                                                                Body=body)["Body"].read().decode()
    got = [float(v) for v in answer.replace("\n", ",").split(",") if v.strip()]
    assert np.allclose(got, expected, rtol=1e-5), (got, expected)
    sm.delete_endpoint(EndpointName=name)


@pytest.mark.slow
def test_second_start_reuses_cached_steps(abalone: Abalone, endpoint: StratumServer) -> None:
    assert abalone.first is not None
    first_steps = _steps(abalone.first)
    # Neither parameter is a cache key attribute of the cached steps: they are still reused.
    execution, seconds = _run(abalone.pipeline, ModelApprovalStatus="Approved", TrainingInstanceType="ml.m5.large")
    mse = _assert_registered_run(abalone, execution, approval="Approved")
    steps = _steps(execution)
    for name in CACHED_STEPS:
        assert steps[name]["CacheHitResult"] == {"SourcePipelineExecutionArn": abalone.first.arn}, name
        assert steps[name]["Metadata"] == first_steps[name]["Metadata"]  # the earlier run's jobs
    for name in (ab.EVALUATE, ab.CHECK, ab.REGISTER_STEP):
        assert "CacheHitResult" not in steps[name], name
    # Two jobs fewer: faster, measured by the server's own clock (the waiter polls every 2 s).
    assert _duration(execution) < _duration(abalone.first), (_duration(execution), _duration(abalone.first))
    packages = _packages(endpoint, abalone.group)
    assert [p["ModelApprovalStatus"] for p in packages] == ["PendingManualApproval", "Approved"]
    assert packages[-1]["ModelPackageArn"] == steps[ab.REGISTER_STEP]["Metadata"]["RegisterModel"]["Arn"]
    print(f"\n[{endpoint.backend}] cached rerun: {seconds:.1f}s, executing {_duration(execution):.1f}s (first "
          f"{abalone.first_seconds:.1f}s, executing {_duration(abalone.first):.1f}s), test MSE {mse:.4f}")


@pytest.mark.slow
def test_mse_over_threshold_takes_the_fail_branch(abalone: Abalone, endpoint: StratumServer) -> None:
    before = _packages(endpoint, abalone.group)
    execution, seconds = _run(abalone.pipeline, MseThreshold=0.0001)
    desc = execution.describe()
    steps = _steps(execution)
    assert desc["PipelineExecutionStatus"] == "Failed", steps
    assert desc["FailureReason"] == f"{ab.FAIL_MESSAGE_PREFIX} 0.0001"
    assert set(steps) == {ab.PREPROCESS, ab.TRAIN, ab.EVALUATE, ab.CHECK, ab.FAIL}
    assert steps[ab.CHECK]["StepStatus"] == "Succeeded"
    assert steps[ab.CHECK]["Metadata"]["Condition"]["Outcome"] == "False"
    assert steps[ab.FAIL]["StepStatus"] == "Failed"
    assert steps[ab.FAIL]["Metadata"]["Fail"]["ErrorMessage"] == f"{ab.FAIL_MESSAGE_PREFIX} 0.0001"
    assert _packages(endpoint, abalone.group) == before
    print(f"\n[{endpoint.backend}] fail branch: {seconds:.1f}s")


# --------------------------------------------------------------------------------- on the Ray executor
@pytest.fixture(scope="module")
def ray_server(ray_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    srv = make_server(tmp_path_factory, BACKENDS[0], ray_cluster.server_args())
    srv.start()
    yield srv
    close_server(srv)


@pytest.mark.slow
def test_abalone_pipeline_on_ray(ray_server: StratumServer, tmp_path: Path) -> None:
    with as_user(ray_server, tmp_path / "home"):
        env = _deploy(ray_server, cache=False)
        execution, seconds = _run(env.pipeline)
        mse = _assert_registered_run(env, execution)
    print(f"\n[ray] abalone pipeline: {seconds:.1f}s, test MSE {mse:.4f}")
