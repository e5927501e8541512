"""Hosting driven by the unmodified SageMaker Python SDK 2.x with its defaults: Estimator.fit ->
deploy -> predict -> delete_endpoint with the built-in XGBoost (predictions equal to the trained
booster's, loaded here), a registered model package deployed from the registry, a scikit-learn
model with an inference script, and a two-container PipelineModel (serial inference)."""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sdk_testing import has_traceback, loopback_only, user_environment
from stratum_testing import REGION, StratumServer
from test_jobs_support import abalone_rows, csv_text, sagemaker_role

sagemaker = pytest.importorskip("sagemaker")
xgboost = pytest.importorskip("xgboost")

from botocore.exceptions import ClientError  # noqa: E402
from sagemaker.session import Session  # noqa: E402

pytestmark = pytest.mark.slow

INSTANCE = "ml.m5.large"
# A scikit-learn model served by its own inference script (the SDK packs it into the model).
SKLEARN_TRAIN = """
import joblib, sys
import numpy as np
from sklearn.linear_model import LinearRegression
x = np.array([[1.0], [2.0], [3.0], [4.0]])
joblib.dump(LinearRegression().fit(x, 3 * x[:, 0] + 1), sys.argv[1])
"""
INFERENCE = """
import json, os
import joblib
import numpy as np


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def input_fn(body, content_type):
    assert content_type == "application/json", content_type
    return np.array(json.loads(body)["instances"], dtype=float)


def predict_fn(data, model):
    return model.predict(data)


def output_fn(prediction, accept):
    return json.dumps({"predictions": [round(float(p), 6) for p in prediction]})
"""
# The first container of a serial pipeline: scales the features it receives by 1 (a real
# transformation step would be a fitted scaler) and passes CSV on to XGBoost.
PREPROCESS = """
import io
import numpy as np


def model_fn(model_dir):
    return None


def input_fn(body, content_type):
    text = body.decode() if isinstance(body, bytes) else body
    return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2)


def predict_fn(data, model):
    return data * 1.0


def output_fn(prediction, accept):
    out = io.StringIO()
    np.savetxt(out, prediction, delimiter=",", fmt="%.10g")
    return out.getvalue()
"""


@pytest.fixture
def sdk_session(server: StratumServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> Iterator[Session]:
    with user_environment(server.data_dir / "server.log", tmp_path / "home",
                          SAGEMAKER_SUPPRESS_V2_WARNING="1"), loopback_only() as attempts:
        yield Session()
    out, err = capfd.readouterr()
    assert attempts == [], f"requests left the machine for {attempts}"
    assert not has_traceback(out + err), out + err


def _booster(session: Session, model_data: str, tmp_path: Path) -> Any:
    bucket, key = model_data[len("s3://"):].split("/", 1)
    raw = session.boto_session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        member = tar.extractfile("xgboost-model")
        assert member is not None
        (tmp_path / "xgboost-model").write_bytes(member.read())
    booster = xgboost.Booster()
    booster.load_model(str(tmp_path / "xgboost-model"))
    return booster


def _fit_xgboost(server: StratumServer, session: Session, tmp_path: Path) -> Any:
    from sagemaker import image_uris
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput

    rows = abalone_rows()
    prefix = f"host-{uuid.uuid4().hex[:8]}"
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "train.csv").write_text(csv_text(rows[:2000]))
    train = session.upload_data(str(tmp_path / "train"), key_prefix=f"{prefix}/train")
    estimator = Estimator(image_uri=image_uris.retrieve("xgboost", region=REGION, version="1.7-1"),
                          role=sagemaker_role(server), instance_count=1, instance_type="ml.m5.xlarge")
    estimator.set_hyperparameters(objective="reg:squarederror", num_round=10, max_depth=4, eta=0.3)
    estimator.fit({"train": TrainingInput(train, content_type="text/csv")}, logs=False)
    return estimator


def _features(n: int) -> list[list[float]]:
    return [[float(v) for v in r[1:]] for r in abalone_rows()[3000:3000 + n]]


def test_fit_deploy_predict_delete(server: StratumServer, sdk_session: Session, tmp_path: Path) -> None:
    from sagemaker.deserializers import CSVDeserializer
    from sagemaker.serializers import CSVSerializer

    estimator = _fit_xgboost(server, sdk_session, tmp_path)
    predictor = estimator.deploy(initial_instance_count=1, instance_type=INSTANCE, serializer=CSVSerializer(),
                                 deserializer=CSVDeserializer())
    rows = _features(5)
    answered = [float(v) for line in predictor.predict(rows) for v in line]
    expected = _booster(sdk_session, estimator.model_data, tmp_path).predict(xgboost.DMatrix(np.array(rows)))
    assert np.allclose(answered, expected, rtol=1e-5), (answered, expected)
    endpoint = predictor.endpoint_name
    described = sdk_session.sagemaker_client.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointStatus"] == "InService"
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    predictor.delete_endpoint()
    with pytest.raises(ClientError) as exc:
        sdk_session.sagemaker_client.describe_endpoint(EndpointName=endpoint)
    assert exc.value.response["Error"]["Code"] == "ValidationException"


def test_registered_package_deployed_from_the_registry(server: StratumServer, sdk_session: Session,
                                                        tmp_path: Path) -> None:
    from sagemaker import ModelPackage
    from sagemaker.deserializers import CSVDeserializer
    from sagemaker.serializers import CSVSerializer

    estimator = _fit_xgboost(server, sdk_session, tmp_path)
    group = f"hosting-{uuid.uuid4().hex[:6]}"
    registered = estimator.register(content_types=["text/csv"], response_types=["text/csv"],
                                    inference_instances=[INSTANCE], transform_instances=[INSTANCE],
                                    model_package_group_name=group, approval_status="Approved")
    package = ModelPackage(role=sagemaker_role(server), model_package_arn=registered.model_package_arn,
                           sagemaker_session=sdk_session)
    endpoint = f"from-registry-{uuid.uuid4().hex[:6]}"
    package.deploy(initial_instance_count=1, instance_type=INSTANCE, endpoint_name=endpoint)
    predictor = sagemaker.predictor.Predictor(endpoint, sagemaker_session=sdk_session, serializer=CSVSerializer(),
                                              deserializer=CSVDeserializer())
    rows = _features(3)
    answered = [float(v) for line in predictor.predict(rows) for v in line]
    expected = _booster(sdk_session, estimator.model_data, tmp_path).predict(xgboost.DMatrix(np.array(rows)))
    assert np.allclose(answered, expected, rtol=1e-5)
    predictor.delete_endpoint()


def test_model_with_an_inference_script(server: StratumServer, sdk_session: Session, tmp_path: Path) -> None:
    import subprocess
    import sys

    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import JSONSerializer
    from sagemaker.sklearn.model import SKLearnModel

    (tmp_path / "train.py").write_text(SKLEARN_TRAIN)
    subprocess.run([sys.executable, str(tmp_path / "train.py"), str(tmp_path / "model.joblib")], check=True)
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "model.joblib", arcname="model.joblib")
    model_data = sdk_session.upload_data(str(tmp_path / "model.tar.gz"), key_prefix=f"skl-{uuid.uuid4().hex[:6]}")
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(INFERENCE)
    model = SKLearnModel(model_data=model_data, role=sagemaker_role(server), entry_point="inference.py",
                         source_dir=str(code), framework_version="1.2-1", sagemaker_session=sdk_session)
    predictor = model.deploy(initial_instance_count=1, instance_type=INSTANCE, serializer=JSONSerializer(),
                             deserializer=JSONDeserializer())
    assert predictor.predict({"instances": [[5.0], [10.0]]}) == {"predictions": [16.0, 31.0]}
    predictor.delete_endpoint()


def test_pipeline_model_pipes_one_container_into_the_next(server: StratumServer, sdk_session: Session,
                                                          tmp_path: Path) -> None:
    from sagemaker.deserializers import CSVDeserializer
    from sagemaker.model import Model
    from sagemaker.pipeline import PipelineModel
    from sagemaker.serializers import CSVSerializer
    from sagemaker.sklearn.model import SKLearnModel

    estimator = _fit_xgboost(server, sdk_session, tmp_path)
    role = sagemaker_role(server)
    code = tmp_path / "pre"
    code.mkdir()
    (code / "preprocess.py").write_text(PREPROCESS)
    with tarfile.open(tmp_path / "empty.tar.gz", "w:gz") as tar:
        tar.add(code / "preprocess.py", arcname="unused.py")
    empty = sdk_session.upload_data(str(tmp_path / "empty.tar.gz"), key_prefix=f"pre-{uuid.uuid4().hex[:6]}")
    # As AWS's serial-pipeline examples do: the first container answers in what the next one reads.
    preprocess = SKLearnModel(model_data=empty, role=role, entry_point="preprocess.py", source_dir=str(code),
                              framework_version="1.2-1", sagemaker_session=sdk_session,
                              env={"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"})
    xgb = Model(image_uri=estimator.image_uri, model_data=estimator.model_data, role=role,
                sagemaker_session=sdk_session)
    pipeline = PipelineModel(models=[preprocess, xgb], role=role, sagemaker_session=sdk_session)
    endpoint = f"serial-{uuid.uuid4().hex[:6]}"
    pipeline.deploy(initial_instance_count=1, instance_type=INSTANCE, endpoint_name=endpoint)
    predictor = sagemaker.predictor.Predictor(endpoint, sagemaker_session=sdk_session, serializer=CSVSerializer(),
                                              deserializer=CSVDeserializer())
    rows = _features(4)
    answered = [float(v) for line in predictor.predict(rows) for v in line]
    expected = _booster(sdk_session, estimator.model_data, tmp_path).predict(xgboost.DMatrix(np.array(rows)))
    assert np.allclose(answered, expected, rtol=1e-5)
    model = sdk_session.sagemaker_client.describe_model(ModelName=sdk_session.sagemaker_client.describe_endpoint_config(
        EndpointConfigName=sdk_session.sagemaker_client.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    )["ProductionVariants"][0]["ModelName"])
    assert len(model["Containers"]) == 2
    predictor.delete_endpoint()


def test_multi_data_model_serves_each_target_model(server: StratumServer, sdk_session: Session,
                                                   tmp_path: Path) -> None:
    """MultiDataModel as its documentation uses it: models added below the prefix (a local archive
    uploaded, an S3 one copied, one more after the endpoint is up), list_models, one endpoint,
    predict(target_model=...) answering with each model's own predictions."""
    from sagemaker import image_uris
    from sagemaker.deserializers import CSVDeserializer
    from sagemaker.model import Model
    from sagemaker.multidatamodel import MultiDataModel
    from sagemaker.predictor import Predictor
    from sagemaker.serializers import CSVSerializer
    from test_hosting_multimodel import booster, model_archive, rows_of

    boosters = {"a.tar.gz": booster([1.0, -2.0, 0.5, 3.0]), "b.tar.gz": booster([-3.0, 1.0, 2.0, 0.0]),
                "later/c.tar.gz": booster([0.0, 0.0, 4.0, -1.0])}
    archives = {}
    for target, model in boosters.items():
        path = tmp_path / target.replace("/", "-")
        path.write_bytes(model_archive(model, tmp_path))
        archives[target] = path
    name = f"mdm-{uuid.uuid4().hex[:8]}"
    prefix = f"s3://{sdk_session.default_bucket()}/{name}/"
    image = image_uris.retrieve("xgboost", region=REGION, version="1.7-1")
    model = Model(image_uri=image, role=sagemaker_role(server), predictor_cls=Predictor, sagemaker_session=sdk_session)
    mdm = MultiDataModel(name=name, model_data_prefix=prefix, model=model, sagemaker_session=sdk_session)
    assert mdm.add_model(str(archives["a.tar.gz"]), "a.tar.gz") == f"{prefix}a.tar.gz"
    elsewhere = sdk_session.upload_data(str(archives["b.tar.gz"]), key_prefix=f"{name}-source")
    assert mdm.add_model(elsewhere, "b.tar.gz") == f"{prefix}b.tar.gz"
    predictor = mdm.deploy(initial_instance_count=1, instance_type=INSTANCE, serializer=CSVSerializer(),
                           deserializer=CSVDeserializer())
    described = sdk_session.sagemaker_client.describe_model(ModelName=name)["PrimaryContainer"]
    assert described["Mode"] == "MultiModel" and described["ModelDataUrl"] == prefix
    mdm.add_model(str(archives["later/c.tar.gz"]), "later/c.tar.gz")
    assert sorted(mdm.list_models()) == ["a.tar.gz", "b.tar.gz", "later/c.tar.gz"]
    rows = rows_of(3).tolist()
    for target in ("a.tar.gz", "b.tar.gz", "later/c.tar.gz", "a.tar.gz"):
        answered = [float(v) for line in predictor.predict(rows, target_model=target) for v in line]
        expected = boosters[target].predict(xgboost.DMatrix(np.array(rows, dtype=np.float32)))
        assert np.allclose(answered, expected, rtol=1e-5), target
    with pytest.raises(ClientError) as exc:
        predictor.predict(rows, target_model="absent.tar.gz")
    assert exc.value.response["Error"]["Code"] == "ValidationError"
    assert "Failed to download model data" in exc.value.response["Error"]["Message"]
    predictor.delete_endpoint()
