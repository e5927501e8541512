"""The built-in XGBoost writes xgboost-model as each container version does (pickle up to 1.2-x,
Booster.save_model from 1.3-1) and reads either format."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from stratum.algorithms.xgboost import model_file

xgb = pytest.importorskip("xgboost")
np = pytest.importorskip("numpy")

REGISTRY = "683313688378.dkr.ecr.us-east-1.amazonaws.com"


@pytest.mark.parametrize(("image", "protocol"), [
    (f"{REGISTRY}/sagemaker-xgboost:0.90-2-cpu-py3", 3),
    (f"{REGISTRY}/sagemaker-xgboost:1.0-1-cpu-py3", 3),
    (f"{REGISTRY}/sagemaker-xgboost:1.2-1", 4),
    (f"{REGISTRY}/sagemaker-xgboost:1.2-2", 4),
    (f"{REGISTRY}/sagemaker-xgboost:1.3-1", None),
    (f"{REGISTRY}/sagemaker-xgboost:1.5-1", None),
    (f"{REGISTRY}/sagemaker-xgboost:1.7-1", None),
    (f"{REGISTRY}/sagemaker-xgboost:3.0-5", None),
    (f"{REGISTRY}/sagemaker-xgboost:latest", None),
    ("811284229777.dkr.ecr.us-east-1.amazonaws.com/xgboost:1", 3),
    (None, None),
])
def test_format_per_container_version(image: str | None, protocol: int | None) -> None:
    assert model_file.pickle_protocol(image) == protocol


def _booster() -> object:
    rng = np.random.default_rng(0)
    return xgb.train({"nthread": 1}, xgb.DMatrix(rng.random((30, 3)), label=rng.random(30)), num_boost_round=2)


def test_pickled_for_1_0_1_and_saved_for_1_7_1(tmp_path: Path) -> None:
    booster = _booster()
    row = xgb.DMatrix(np.array([[0.1, 0.2, 0.3]]))
    old = model_file.save(booster, tmp_path / "old", f"{REGISTRY}/sagemaker-xgboost:1.0-1-cpu-py3")
    with open(old, "rb") as f:  # what the MLOps template's evaluate.py does on the 1.0-1 image
        unpickled = pickle.load(f)
    assert unpickled.predict(row) == pytest.approx(booster.predict(row))
    new = model_file.save(booster, tmp_path / "new", f"{REGISTRY}/sagemaker-xgboost:1.7-1")
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(new.read_bytes())
    loaded = xgb.Booster()
    loaded.load_model(str(new))
    assert loaded.predict(row) == pytest.approx(booster.predict(row))
    for path in (old, new):  # serving reads both, pickle first
        assert model_file.load(path.read_bytes()).predict(row) == pytest.approx(booster.predict(row))
    assert model_file.load(b"neither a pickle nor a model") is None
