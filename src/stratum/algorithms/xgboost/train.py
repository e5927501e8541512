"""Built-in XGBoost training (algorithm mode), run as ``python -m stratum.algorithms.xgboost.train``
inside a training job: reads /opt/ml/input/config/*.json and the train/validation channels,
prints evaluation lines as the container does ("[3]#011train-rmse:1.2#011validation-rmse:1.4",
CloudWatch's rendering of a tab), writes the booster to model/xgboost-model in the format of the
image's container version (see model_file), and on error writes the reason to output/failure."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from stratum.algorithms.xgboost import model_file
from stratum.algorithms.xgboost.data import CSV, content_format, load_training

# Hyperparameters the container consumes itself rather than passing to xgboost.train's params.
_CONTROL = {"num_round", "early_stopping_rounds", "csv_weights", "save_model_on_termination", "_kfold",
            "_num_cv_round", "_tuning_objective_metric", "eval_metric", "silent"}
_RENAMED_OBJECTIVES = {"reg:linear": "reg:squarederror"}  # removed from xgboost 1.0+


class ClientError(Exception):
    pass


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_hyperparameters(raw: dict[str, str]) -> tuple[dict[str, Any], int, int | None, list[str], bool]:
    hps = {k: str(v).strip('"') for k, v in raw.items() if not k.startswith("sagemaker_")}
    if "num_round" not in hps:
        raise ClientError("Missing required hyperparameter: num_round")
    try:
        num_round = int(float(hps["num_round"]))
    except ValueError:
        raise ClientError(f"Hyperparameter num_round: {hps['num_round']} is not an integer") from None
    early = int(hps["early_stopping_rounds"]) if hps.get("early_stopping_rounds") else None
    metrics = [m.strip() for m in hps.get("eval_metric", "").split(",") if m.strip()]
    params: dict[str, Any] = {k: _value(v) for k, v in hps.items() if k not in _CONTROL}
    if "objective" in params:
        params["objective"] = _RENAMED_OBJECTIVES.get(str(params["objective"]), params["objective"])
    if hps.get("silent") in ("1", "true", "True"):
        params.setdefault("verbosity", 0)
    params.setdefault("nthread", os.cpu_count() or 1)
    return params, num_round, early, metrics, hps.get("csv_weights") == "1"


def train(input_dir: Path, model_dir: Path) -> None:
    import xgboost as xgb

    config = input_dir / "config"
    raw = json.loads((config / "hyperparameters.json").read_text()) if (config / "hyperparameters.json").exists() else {}
    data_config = json.loads((config / "inputdataconfig.json").read_text())
    params, num_round, early, metrics, weights = parse_hyperparameters(raw)
    if "train" not in data_config:
        raise ClientError("Channel 'train' is required for training")
    fmt = content_format(data_config["train"].get("ContentType"))
    try:
        dtrain = load_training(input_dir / "data" / "train", fmt, weights and fmt == CSV)
        evals = [(dtrain, "train")]
        if "validation" in data_config:
            vfmt = content_format(data_config["validation"].get("ContentType"), fmt)
            evals.append((load_training(input_dir / "data" / "validation", vfmt, weights and vfmt == CSV),
                          "validation"))
    except ValueError as exc:
        raise ClientError(f"Loading data failed: {exc}") from None
    if metrics:
        params["eval_metric"] = metrics
    print(f"[stratum-xgboost] training with {dtrain.num_row()} rows, {dtrain.num_col()} features, "
          f"num_round={num_round}, params={params}", flush=True)

    class PrintEval(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, dict[str, list[float]]]) -> bool:
            parts = [f"{data}-{metric}:{values[-1]:.5f}" for data, by_metric in evals_log.items()
                     for metric, values in by_metric.items()]
            print(f"[{epoch}]#011" + "#011".join(parts), flush=True)
            return False

    try:
        booster = xgb.train(params, dtrain, num_boost_round=num_round, evals=evals, verbose_eval=False,
                            early_stopping_rounds=early if len(evals) > 1 else None, callbacks=[PrintEval()])
    except xgb.core.XGBoostError as exc:
        raise ClientError(f"XGBoost training failed: {str(exc).splitlines()[0]}") from None
    model_file.save(booster, model_dir, _training_image(config))


def _training_image(config: Path) -> str | None:
    """The job's image, from the request SageMaker writes to input/config/trainingjobconfig.json:
    its version decides the model file's format, as each container version has its own."""
    path = config / "trainingjobconfig.json"
    if not path.is_file():
        return None
    return (json.loads(path.read_text()).get("AlgorithmSpecification") or {}).get("TrainingImage")


def main() -> int:
    input_dir = Path(os.environ.get("SM_INPUT_DIR", "/opt/ml/input"))
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    output_dir = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output"))
    try:
        train(input_dir, model_dir)
    except ClientError as exc:
        _fail(output_dir, f"ClientError: {exc}")
        return 1
    except Exception as exc:  # the container reports anything else as an algorithm error too
        _fail(output_dir, f"AlgorithmError: {type(exc).__name__}: {exc}")
        raise
    return 0


def _fail(output_dir: Path, message: str) -> None:
    print(message, file=sys.stderr, flush=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "failure").write_text(message)


if __name__ == "__main__":
    sys.exit(main())
