"""Built-in XGBoost inference, as the algorithm mode of aws/sagemaker-xgboost-container serves it
(``algorithm_mode/serve.py`` and ``serve_utils.py``, commit cb8df91):

* request content types (``data_utils.get_content_type``): text/csv (``csv``, ``label_size=1``
  only), text/libsvm / text/x-libsvm (also the default when the request has no Content-Type),
  application/x-recordio-protobuf; anything else is 415 with the container's message. CSV is
  parsed as ``encoder.csv_to_dmatrix`` does (delimiter sniffed from the first line, empty fields
  are NaN); LIBSVM as ``_get_sparse_matrix_from_libsvm`` (1-based indices shifted, labels ignored);
* an empty body is 204; a payload that cannot be parsed 415, one the model cannot evaluate 400
  ("Unable to evaluate payload provided: ..."); an unsupported Accept 406 (checked after the
  prediction, as the container does);
* output: with SAGEMAKER_BATCH one prediction per line whatever the Accept; otherwise
  application/json ``{"predictions": [{"score": ...}]}`` and text/csv one value per line (the
  sagemaker-containers CSV encoder); application/jsonlines and application/x-recordio-protobuf are
  only encoded in selectable-output mode (SAGEMAKER_INFERENCE_OUTPUT) — without it the container's
  encoder raises, which is a 500;
* models: every file of the model directory (pickled first, then ``Booster.load_model``), an
  ensemble (mean, or a vote for multi:softmax / binary:hinge) unless
  SAGEMAKER_INFERENCE_ENSEMBLE is not "true"; a pickled model checks the feature count.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stratum.algorithms import recordio
from stratum.algorithms.responses import FLASK_500, Reply, flask_mimetype

PKL_FORMAT = "pkl_format"
XGB_FORMAT = "xgb_format"
CSV, LIBSVM, PARQUET, RECORDIO_PROTOBUF = "csv", "libsvm", "parquet", "recordio-protobuf"
VALID_CONTENT_TYPES = [CSV, LIBSVM, PARQUET, RECORDIO_PROTOBUF, "text/csv", "text/libsvm", "text/x-libsvm",
                       "application/x-parquet", "application/x-recordio-protobuf"]
SUPPORTED_ACCEPTS = ["application/json", "application/jsonlines", "application/x-recordio-protobuf", "text/csv"]

REG = ["reg:squarederror", "reg:logistic", "reg:gamma", "reg:absoluteerror", "reg:tweedie"]
VALID_OBJECTIVES: dict[str, list[str]] = {
    **{o: ["predicted_score"] for o in REG},
    "binary:logistic": ["predicted_label", "labels", "probability", "probabilities", "raw_score", "raw_scores"],
    "binary:logitraw": ["predicted_label", "labels", "raw_score", "raw_scores"],
    "binary:hinge": ["predicted_label", "labels", "raw_score", "raw_scores"],
    "multi:softmax": ["predicted_label", "labels", "raw_score", "raw_scores"],
    "multi:softprob": ["predicted_label", "labels", "probability", "probabilities", "raw_score", "raw_scores"],
}


class UserError(Exception):
    """sagemaker_algorithm_toolkit's UserError (its str is the message)."""


def parse_header(value: str) -> tuple[str, dict[str, str]]:
    """cgi.parse_header: the media type and its parameters."""
    parts = [p.strip() for p in value.split(";")]
    params = {}
    for part in parts[1:]:
        key, sep, val = part.partition("=")
        if sep:
            params[key.strip().lower()] = val.strip().strip('"')
    return parts[0], params


def get_content_type(value: str | None) -> str:
    if value is None:
        return LIBSVM
    content_type, params = parse_header(value.lower())
    if content_type in (CSV, "text/csv"):
        if params and "label_size" in params and params["label_size"] != "1":
            raise UserError(f"{value} is not an accepted csv ContentType. Optional parameter label_size must be "
                            "equal to 1")
        return CSV
    if content_type in (LIBSVM, "text/libsvm", "text/x-libsvm"):
        return LIBSVM
    if content_type in (PARQUET, "application/x-parquet"):
        return PARQUET
    if content_type in (RECORDIO_PROTOBUF, "application/x-recordio-protobuf"):
        return RECORDIO_PROTOBUF
    raise UserError(f"{value} is not an accepted ContentType: " + ", ".join(VALID_CONTENT_TYPES) + ".")


# ------------------------------------------------------------------------------------- decoding
def csv_to_dmatrix(text: str) -> Any:
    import xgboost as xgb

    sniffed = csv.Sniffer().sniff(text.split("\n")[0][:512]).delimiter
    delimiter = "," if sniffed.isalnum() else sniffed
    rows = [["nan" if x == "" else x for x in line.split(delimiter)] for line in text.split("\n")]
    return xgb.DMatrix(np.array(rows).astype(float))


def libsvm_matrix(text: str) -> Any:
    from scipy.sparse import csr_matrix

    row, col, data = [], [], []
    for row_idx, line in enumerate(text.split("\n")):
        for item in line.split(" "):
            if ":" in item:
                index, value = item.split(":")[0], item.split(":")[1]
                row.append(row_idx)
                col.append(int(index))
                data.append(value)
    cols = np.array(col).astype(int)
    if len(cols) > 0 and cols.min() >= 1:
        cols = cols - 1  # 1-based LIBSVM indices
    return csr_matrix((np.array(data).astype(float), (np.array(row), cols)))


def parse_content(payload: bytes, content_type: str | None) -> tuple[Any, str]:
    """(DMatrix, parsed content type); raises with the container's message (a 415)."""
    import xgboost as xgb

    kind = get_content_type(content_type)
    if kind == CSV:
        try:
            return csv_to_dmatrix(payload.strip().decode("utf-8")), kind
        except Exception as exc:
            raise RuntimeError("Loading csv data failed with Exception, please ensure data is in csv format:\n "
                               f"{type(exc)}\n {exc}") from exc
    if kind == LIBSVM:
        try:
            return xgb.DMatrix(libsvm_matrix(payload.strip().decode("utf-8"))), kind
        except Exception as exc:
            raise RuntimeError("Loading libsvm data failed with Exception, please ensure data is in libsvm "
                               f"format:\n {type(exc)}\n {exc}") from exc
    if kind == RECORDIO_PROTOBUF:
        try:
            features, labels = recordio.read_features(payload)
            return xgb.DMatrix(features, label=labels), kind
        except Exception as exc:
            raise RuntimeError("Loading recordio-protobuf data failed with Exception, please ensure data is in "
                               f"recordio-protobuf format: {type(exc)} {exc}") from exc
    raise RuntimeError(f"Content-type {content_type} is not supported.")


# --------------------------------------------------------------------------------------- models
@dataclass
class Model:
    booster: Any
    format: str


def load_models(model_dir: Path, ensemble: bool = True) -> list[Model]:
    """``get_loaded_booster``: every file (dotfiles skipped), or only the first without ensemble."""
    import xgboost as xgb

    paths = sorted(p for p in model_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if not paths:
        raise RuntimeError(f"No model file found in {model_dir}")
    models = []
    for path in paths if ensemble else paths[:1]:
        try:
            with open(path, "rb") as f:
                booster, fmt = pickle.load(f), PKL_FORMAT  # noqa: S301 - the container unpickles its model
        except Exception as exc_pkl:
            try:
                booster = xgb.Booster()
                booster.load_model(bytearray(path.read_bytes()))  # from memory: the format is detected
                fmt = XGB_FORMAT
            except Exception as exc_xgb:
                raise RuntimeError(f"Model {path} cannot be loaded:\nPickle load error={exc_pkl}"
                                   f"\nXGB load model error={exc_xgb}") from None
        booster.set_param("nthread", 1)
        models.append(Model(booster, fmt))
    return models


def _predict_one(booster: Any, dtest: Any) -> Any:
    best = getattr(booster, "best_ntree_limit", 0)
    try:
        best = int(best) if best is not None else 0
    except (TypeError, ValueError):
        best = 0
    if best > 0:
        return booster.predict(dtest, iteration_range=(0, best), validate_features=False)
    return booster.predict(dtest, validate_features=False)


def predict(models: list[Model], dtest: Any, content_type: str, objective: str | None) -> Any:
    first = models[0]
    if first.format == PKL_FORMAT:
        x = first.booster.num_features()
        y = len(dtest.feature_names) if dtest.feature_names is not None else dtest.num_col()
        if content_type == LIBSVM:
            if y > x + 1:
                raise ValueError(f"Feature size of libsvm inference data {y} is larger than feature size of "
                                 f"trained model {x}.")
        elif content_type in (CSV, RECORDIO_PROTOBUF):
            if not (x == y or x == y + 1):
                raise ValueError(f"Feature size of {content_type} inference data {y} is not consistent with "
                                 f"feature size of trained model {x}.")
        else:
            raise ValueError(f"Content type {content_type} is not supported")
    if len(models) == 1:
        return _predict_one(first.booster, dtest)
    ensemble = [_predict_one(m.booster, dtest) for m in models]
    if objective in ("multi:softmax", "binary:hinge"):
        from scipy import stats

        # The container's stats.mode(ensemble).mode[0] is the per-row vote with the SciPy it pins.
        return stats.mode(np.asarray(ensemble), axis=0, keepdims=False).mode
    return np.mean(ensemble, axis=0)


# ------------------------------------------------------------------------------------- encoding
def parse_accept(accept: str | None) -> str:
    value, _ = parse_header(accept or "")
    if not value or value == "*/*":
        return os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "text/csv")
    if value.lower() not in SUPPORTED_ACCEPTS:
        raise ValueError(f"Accept type {value} is not supported. Please use supported accept types: "
                         f"{SUPPORTED_ACCEPTS}.")
    return value.lower()


def encode_predictions_as_json(predictions: list[Any]) -> str:
    return json.dumps({"predictions": [{"score": p} for p in predictions]})


def array_to_csv(values: Any) -> str:
    """sagemaker-containers' array_to_csv: a 1-D array becomes one value per line."""
    array = np.array(values)
    if array.ndim == 1:
        array = array.reshape(array.shape[0], 1)
    rows = [",".join(str(v) for v in row) for row in array]
    return "".join(row + "\n" for row in rows)


def _selected(predictions: Any, keys: list[str], objective: str, num_class: str) -> list[dict[str, Any]]:
    if objective not in VALID_OBJECTIVES:
        raise ValueError(f"Objective `{objective}` unsupported for selectable inference predictions.")
    valid = set(keys) & set(VALID_OBJECTIVES[objective])
    invalid = set(keys) - set(VALID_OBJECTIVES[objective])
    out = []
    for raw in predictions:
        raw = np.asarray(raw)
        item: dict[str, Any] = {}
        if "predicted_label" in valid:
            if objective in ("binary:hinge", "multi:softmax"):
                item["predicted_label"] = raw.item()
            elif objective == "binary:logistic":
                item["predicted_label"] = int(raw > 0.5)
            elif objective == "binary:logitraw":
                item["predicted_label"] = int(raw > 0)
            else:
                item["predicted_label"] = np.argmax(raw).item()
        if "labels" in valid:
            item["labels"] = [0, 1] if "binary:" in objective else (
                list(range(int(num_class))) if "multi:" in objective and num_class else np.nan)
        if "probability" in valid:
            item["probability"] = max(raw).item() if objective == "multi:softprob" else raw.item()
        if "probabilities" in valid:
            item["probabilities"] = raw.tolist() if objective == "multi:softprob" else [1.0 - raw.item(), raw.item()]
        if "raw_score" in valid:
            item["raw_score"] = max(raw).item() if objective == "multi:softprob" else raw.item()
        if "raw_scores" in valid:
            item["raw_scores"] = raw.tolist() if objective == "multi:softprob" else [1.0 - raw.item(), raw.item()]
        if "predicted_score" in valid:
            item["predicted_score"] = raw.item()
        for key in invalid:
            item[key] = np.nan
        out.append(item)
    return out


def encode_selected(predictions: list[dict[str, Any]], keys: list[str], accept: str, batch: bool) -> bytes:
    if accept == "application/json":
        return json.dumps({"predictions": predictions}).encode()
    if accept == "application/jsonlines":
        return "".join(json.dumps(p) + "\n" for p in predictions).encode()
    if accept == "application/x-recordio-protobuf":
        return b"".join(recordio.frame(recordio.encode_record(
            {k: v if isinstance(v, list) else [v] for k, v in p.items()})) for p in predictions)
    lines = [",".join(f'"{p[k]}"' if isinstance(p[k], list) else str(p[k]) for k in keys) for p in predictions]
    text = "\n".join(lines)
    return (text + "\n" if batch else text).encode()


class XGBoostHandler:
    """(body, Content-Type, Accept) -> Reply, as the container's /invocations answers."""

    def __init__(self, model_dir: Path) -> None:
        ensemble = os.environ.get("SAGEMAKER_INFERENCE_ENSEMBLE", "true") == "true"
        self.models = load_models(model_dir, ensemble)
        config = json.loads(self.models[0].booster.save_config())
        self.objective = config["learner"]["objective"]["name"]
        self.num_class = config["learner"]["learner_model_param"].get("num_class", "")
        # The container tests the variable's truth as a string: any non-empty value is batch.
        self.batch = bool(os.environ.get("SAGEMAKER_BATCH"))
        selected = os.environ.get("SAGEMAKER_INFERENCE_OUTPUT")
        self.selected = selected.replace(" ", "").lower().split(",") if selected is not None else None

    def __call__(self, body: bytes, content_type: str | None, accept: str | None) -> Reply:
        if len(body) == 0:
            return Reply(204, b"", "text/html; charset=utf-8")
        try:
            dtest, kind = parse_content(body, content_type)
        except Exception as exc:
            return Reply(415, str(exc).encode(), "text/html; charset=utf-8")
        try:
            preds = predict(self.models, dtest, kind, self.objective)
        except Exception as exc:
            return Reply(400, f"Unable to evaluate payload provided: {exc}".encode(), "text/html; charset=utf-8")
        try:
            accept_type = parse_accept(accept)
        except Exception as exc:
            return Reply(406, str(exc).encode(), "text/html; charset=utf-8")
        if self.selected is not None:
            try:
                chosen = _selected(preds, self.selected, self.objective, self.num_class)
                out = encode_selected(chosen, self.selected, accept_type, self.batch)
            except Exception as exc:
                return Reply(500, str(exc).encode(), "text/html; charset=utf-8")
            return Reply(200, out, flask_mimetype(accept_type))
        values = preds.tolist()
        if self.batch:
            out = ("\n".join(map(str, values)) + "\n").encode()
        elif accept_type == "application/json":
            out = encode_predictions_as_json(values).encode()
        elif accept_type == "text/csv":
            out = array_to_csv(values).encode()
        else:
            # sagemaker-containers' encoders know JSON, CSV and NPY only: the container fails here.
            return FLASK_500
        return Reply(200, out, flask_mimetype(accept_type))
