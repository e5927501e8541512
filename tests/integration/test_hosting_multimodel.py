"""Multi-model endpoints through boto3 against a real server: a model in Mode MultiModel whose
ModelDataUrl is an S3 prefix, InvokeEndpoint's TargetModel loading each XGBoost model below it on
first use (as the execution role), answering with that model's predictions, reusing it afterwards
and unloading the least recently used one when the container's limit is reached (checked through
the container's own GET /models); the AWS errors; the sagemaker:TargetModel condition key; the
model loading metrics."""

from __future__ import annotations

import io
import json
import tarfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from authz_testing import client, limited_user
from botocore.exceptions import ClientError
from stratum_testing import StratumServer
from test_hosting_endpoints import instance_rows, wait_in_service
from test_jobs_support import XGBOOST_IMAGE, bucket, put, sagemaker_role, uid

xgb = pytest.importorskip("xgboost")

pytestmark = pytest.mark.slow

FEATURES = 4


def rows_of(n: int = 3) -> np.ndarray:
    return np.random.default_rng(11).normal(size=(n, FEATURES)).astype(np.float32)


def booster(weights: list[float]) -> Any:
    """A tiny regression booster whose predictions depend on ``weights``."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, FEATURES)).astype(np.float32)
    y = x @ np.array(weights, dtype=np.float32)
    return xgb.train({"objective": "reg:squarederror", "max_depth": 3}, xgb.DMatrix(x, label=y), num_boost_round=8)


def model_archive(model: Any, tmp_path: Path) -> bytes:
    """model.tar.gz as the XGBoost 1.7-1 container's training writes it (xgboost-model at the root)."""
    from stratum.algorithms.xgboost import model_file

    directory = tmp_path / f"model-{id(model)}"
    model_file.save(model, directory, XGBOOST_IMAGE)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(directory / model_file.MODEL_NAME, arcname=model_file.MODEL_NAME)
    return buffer.getvalue()


def csv(rows: np.ndarray) -> str:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows)


def predictions(out: dict[str, Any]) -> list[float]:
    return [float(v) for v in out["Body"].read().decode().replace(",", "\n").split()]


def error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"], response["Error"]["Message"]


def loaded_in_container(url: str) -> set[str]:
    """What the container itself says it has loaded (the model names are opaque: digests)."""
    with urllib.request.urlopen(url + "/models", timeout=10) as resp:
        return {m["modelName"] for m in json.loads(resp.read())["models"]}


def multi_model_endpoint(server: StratumServer, prefix: str, environment: dict[str, str] | None = None,
                         **container: Any) -> str:
    sm = server.client("sagemaker")
    name = uid("mme")
    sm.create_model(ModelName=name, ExecutionRoleArn=sagemaker_role(server), PrimaryContainer={
        "Image": XGBOOST_IMAGE, "ModelDataUrl": prefix, "Mode": "MultiModel", "Environment": environment or {},
        **container})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    wait_in_service(sm, name)
    return name


def test_target_models_load_on_demand_and_the_least_recently_used_is_unloaded(server: StratumServer,
                                                                            tmp_path: Path) -> None:
    from stratum.services.sagemaker_runtime.multimodel import model_name

    boosters = {"a.tar.gz": booster([1.0, -2.0, 0.5, 3.0]), "b.tar.gz": booster([-3.0, 1.0, 2.0, 0.0]),
                "nested/c.tar.gz": booster([0.0, 0.0, 4.0, -1.0])}
    prefix_key = uid("mme-models")
    for target, model in boosters.items():
        put(server, f"{prefix_key}/{target}", model_archive(model, tmp_path))
    put(server, f"{prefix_key}/junk.tar.gz", b"this is not a tar.gz archive")
    name = multi_model_endpoint(server, f"s3://{bucket(server)}/{prefix_key}/", {"STRATUM_MAX_LOADED_MODELS": "2"})
    [row] = instance_rows(server, name)
    runtime = server.client("sagemaker-runtime")
    rows = rows_of()
    expected = {t: m.predict(xgb.DMatrix(rows)) for t, m in boosters.items()}
    assert not np.allclose(expected["a.tar.gz"], expected["b.tar.gz"])

    def call(target: str) -> list[float]:
        out = runtime.invoke_endpoint(EndpointName=name, Body=csv(rows), ContentType="text/csv", TargetModel=target)
        assert out["InvokedProductionVariant"] == "AllTraffic"
        return predictions(out)

    timings = {}
    for target in ("a.tar.gz", "b.tar.gz", "a.tar.gz"):
        started = time.perf_counter()
        assert np.allclose(call(target), expected[target], rtol=1e-5), target
        timings.setdefault(target, []).append(time.perf_counter() - started)
    assert loaded_in_container(row.url) == {model_name("a.tar.gz"), model_name("b.tar.gz")}
    # The limit is 2: loading c unloads b, the least recently used (a was used after it).
    assert np.allclose(call("nested/c.tar.gz"), expected["nested/c.tar.gz"], rtol=1e-5)
    assert loaded_in_container(row.url) == {model_name("a.tar.gz"), model_name("nested/c.tar.gz")}
    assert np.allclose(call("b.tar.gz"), expected["b.tar.gz"], rtol=1e-5)  # loaded again, a goes now
    assert loaded_in_container(row.url) == {model_name("nested/c.tar.gz"), model_name("b.tar.gz")}
    models_dir = server.data_dir / "hosting" / "work" / row.instance_id / row.container / "ml" / "models"
    assert sorted(p.name for p in models_dir.iterdir()) == sorted([model_name("nested/c.tar.gz"),
                                                                   model_name("b.tar.gz")])
    print(f"first invocation of a.tar.gz {timings['a.tar.gz'][0] * 1000:.1f} ms (download and load), "
          f"again {timings['a.tar.gz'][1] * 1000:.1f} ms (loaded)")

    # Errors: a TargetModel that is not there, one that is not a model archive, none at all.
    with pytest.raises(ClientError) as exc:
        call("missing.tar.gz")
    status, code, message = error(exc)
    assert (status, code) == (400, "ValidationError")
    assert message == (f"Failed to download model data(bucket: {bucket(server)}, key: {prefix_key}/missing.tar.gz). "
                       "Please ensure that there is an object located at the URL and that the role passed to "
                       "CreateModel has permissions to download the model.")
    with pytest.raises(ClientError) as exc:
        call("junk.tar.gz")
    assert error(exc)[:2] == (400, "ValidationError") and "junk.tar.gz" in error(exc)[2]
    with pytest.raises(ClientError) as exc:
        runtime.invoke_endpoint(EndpointName=name, Body=csv(rows), ContentType="text/csv")
    assert error(exc)[:2] == (400, "ValidationError") and "TargetModel" in error(exc)[2]
    # Concurrent first invocations of one model share a single load.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: call("a.tar.gz"), range(4)))
    assert all(np.allclose(a, expected["a.tar.gz"], rtol=1e-5) for a in answers)
    # The failed TargetModels unloaded nothing: c goes for a now.
    assert loaded_in_container(row.url) == {model_name("b.tar.gz"), model_name("a.tar.gz")}

    # The model loading metrics, under AWS/SageMaker; LoadedModelCount under /aws/sagemaker/Endpoints.
    cw = server.client("cloudwatch")
    dims = [{"Name": "EndpointName", "Value": name}, {"Name": "VariantName", "Value": "AllTraffic"}]
    now = time.time()

    def stat(metric: str, statistic: str, namespace: str = "AWS/SageMaker") -> float:
        points = cw.get_metric_statistics(Namespace=namespace, MetricName=metric, StartTime=now - 600,
                                          EndTime=now + 120, Period=60, Statistics=[statistic],
                                          Dimensions=dims)["Datapoints"]
        values = [p[statistic] for p in points]  # the test may span two minutes
        return float(max(values, default=0.0) if statistic == "Maximum" else sum(values))

    deadline = time.monotonic() + 30
    while stat("ModelCacheHit", "SampleCount") < 10 and time.monotonic() < deadline:
        time.sleep(1)
    # a, b, a, c, b, then 4 concurrent a: the hits are the second a and 3 of the concurrent ones
    # (or 4, when one finished its wait before another asked).
    assert stat("ModelCacheHit", "SampleCount") == 9
    assert stat("ModelCacheHit", "Sum") >= 1
    assert stat("ModelDownloadingTime", "SampleCount") == stat("ModelLoadingTime", "SampleCount") >= 5
    assert 0 < stat("ModelLoadingWaitTime", "Maximum") < 60_000_000
    assert stat("ModelUnloadingTime", "SampleCount") >= 2
    print("averages (ms): " + ", ".join(
        f"{m} {stat(m, 'Sum') / stat(m, 'SampleCount') / 1000:.1f}"
        for m in ("ModelDownloadingTime", "ModelLoadingTime", "ModelLoadingWaitTime", "ModelUnloadingTime")))
    deadline = time.monotonic() + 30
    while stat("LoadedModelCount", "Maximum", "/aws/sagemaker/Endpoints") < 2 and time.monotonic() < deadline:
        time.sleep(1)
    assert stat("LoadedModelCount", "Maximum", "/aws/sagemaker/Endpoints") == 2

    # sagemaker:TargetModel: a caller allowed one model only.
    creds, _ = limited_user(server, {"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": "*",
                                     "Condition": {"StringEquals": {"sagemaker:TargetModel": "a.tar.gz"}}})
    limited = client(server, "sagemaker-runtime", creds)
    out = limited.invoke_endpoint(EndpointName=name, Body=csv(rows), ContentType="text/csv", TargetModel="a.tar.gz")
    assert np.allclose(predictions(out), expected["a.tar.gz"], rtol=1e-5)
    with pytest.raises(ClientError) as exc:
        limited.invoke_endpoint(EndpointName=name, Body=csv(rows), ContentType="text/csv", TargetModel="b.tar.gz")
    assert error(exc)[:2] == (400, "AccessDeniedException")
    server.client("sagemaker").delete_endpoint(EndpointName=name)



# A script model that takes the container's memory: a third one loaded beside two others is a
# MemoryError, which the container answers 507 (its count is shared by every model's copy of the
# script, and a model's share is given back when it is unloaded).
MEMORY_BOUND = """
import json, os, sys, types, weakref

STATE = sys.modules.setdefault("memory_bound_state", types.ModuleType("memory_bound_state"))


class Model:
    def __init__(self, weights):
        self.weights = weights


def _freed():
    STATE.live -= 1


def model_fn(model_dir):
    STATE.live = getattr(STATE, "live", 0)
    if STATE.live >= 2:
        raise MemoryError("no room for a third model")
    with open(os.path.join(model_dir, "weights.json")) as f:
        model = Model(json.load(f))
    STATE.live += 1
    weakref.finalize(model, _freed)
    return model


def input_fn(body, content_type):
    return [float(v) for v in body.split(",")]


def predict_fn(row, model):
    return sum(w * v for w, v in zip(model.weights["w"], row)) + model.weights["b"]


def output_fn(prediction, accept):
    return f"{prediction:g}", "text/csv"
"""


def test_a_load_refused_for_memory_unloads_the_least_recently_used_model(server: StratumServer) -> None:
    from test_hosting_endpoints import SKLEARN_IMAGE
    from test_jobs_support import tarball

    from stratum.services.sagemaker_runtime.multimodel import model_name

    prefix_key = uid("mme-memory")
    for bias in (1, 2, 3):
        put(server, f"{prefix_key}/m{bias}.tar.gz", tarball({
            "weights.json": json.dumps({"w": [1, 10], "b": bias}), "code/inference.py": MEMORY_BOUND}))
    sm = server.client("sagemaker")
    name = uid("mme-mem")
    sm.create_model(ModelName=name, ExecutionRoleArn=sagemaker_role(server), PrimaryContainer={
        "Image": SKLEARN_IMAGE, "ModelDataUrl": f"s3://{bucket(server)}/{prefix_key}/", "Mode": "MultiModel",
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    wait_in_service(sm, name)
    [row] = instance_rows(server, name)
    runtime = server.client("sagemaker-runtime")

    def call(target: str) -> str:
        out = runtime.invoke_endpoint(EndpointName=name, Body="1,2", ContentType="text/csv", TargetModel=target)
        return str(out["Body"].read().decode())

    assert call("m1.tar.gz") == "22" and call("m2.tar.gz") == "23"
    # No limit is set: the third load is refused by the container (507); m1, the least recently
    # used, is unloaded and the load tried again.
    assert call("m3.tar.gz") == "24"
    assert loaded_in_container(row.url) == {model_name("m2.tar.gz"), model_name("m3.tar.gz")}
    assert call("m1.tar.gz") == "22"
    assert loaded_in_container(row.url) == {model_name("m3.tar.gz"), model_name("m1.tar.gz")}
    sm.delete_endpoint(EndpointName=name)
