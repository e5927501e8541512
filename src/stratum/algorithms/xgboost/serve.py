"""Built-in XGBoost inference: the booster(s) in the model directory answer text/csv and
text/libsvm requests; predictions are text/csv (one per line in batch transform, comma-separated
otherwise, as the container does), application/json or application/jsonlines."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from stratum.algorithms.xgboost import model_file
from stratum.algorithms.xgboost.data import CSV, content_format, parse_payload


def load_boosters(model_dir: Path) -> list[Any]:
    boosters = []
    for path in sorted(p for p in model_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
        booster = model_file.load(path.read_bytes())
        if booster is None:
            continue
        booster.set_param("nthread", 1)
        boosters.append(booster)
    if not boosters:
        raise RuntimeError(f"no XGBoost model found in {model_dir}")
    return boosters


_UNTYPED = ("", "application/octet-stream", "application/x-www-form-urlencoded", "*/*")


class XGBoostHandler:
    def __init__(self, model_dir: Path) -> None:
        self.boosters = load_boosters(model_dir)
        self.batch = os.environ.get("SAGEMAKER_BATCH", "").lower() == "true"

    def __call__(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        base = (content_type or "").split(";")[0].strip().lower()
        # A request without a content type of its own is CSV to the container, as in SageMaker.
        fmt = content_format("text/csv" if base in _UNTYPED else content_type, CSV)
        dmatrix = parse_payload(body, fmt, self.boosters[0].num_features() or None)
        preds = np.mean([b.predict(dmatrix, validate_features=False) for b in self.boosters], axis=0)
        accept = (accept or "text/csv").split(";")[0].strip().lower()
        if accept in ("*/*", ""):
            accept = "text/csv"
        values = preds.tolist()
        if accept == "application/json":
            return json.dumps({"predictions": [{"score": v} for v in values]}).encode(), accept
        if accept == "application/jsonlines":
            return "".join(json.dumps({"score": v}) + "\n" for v in values).encode(), accept
        if accept != "text/csv":
            raise ValueError(f"Accept type {accept} is not supported: use text/csv, application/json or "
                             "application/jsonlines")
        rows = [",".join(map(str, v)) if isinstance(v, list) else str(v) for v in values]
        return ("\n".join(rows) + "\n" if self.batch else ",".join(rows)).encode(), accept
