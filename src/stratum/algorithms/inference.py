"""Script-mode inference as sagemaker-inference-toolkit runs it: the user module named by
SAGEMAKER_PROGRAM (in SAGEMAKER_SUBMIT_DIRECTORY or <model_dir>/code) provides model_fn and
optionally input_fn / predict_fn / output_fn, or a single transform_fn; the defaults decode and
encode JSON, CSV and NPY with numpy."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _base(content_type: str | None, default: str) -> str:
    return (content_type or default).split(";")[0].strip().lower()


def default_input_fn(body: bytes, content_type: str) -> Any:
    kind = _base(content_type, "application/json")
    if kind == "application/json":
        return np.array(json.loads(body.decode("utf-8")))
    if kind == "text/csv":
        return np.loadtxt(io.StringIO(body.decode("utf-8")), delimiter=",", ndmin=2)
    if kind == "application/x-npy":
        return np.load(io.BytesIO(body), allow_pickle=False)
    raise ValueError(f"Content type {content_type} is not supported by the default input_fn")


def default_predict_fn(data: Any, model: Any) -> Any:
    return model.predict(data) if hasattr(model, "predict") else model(data)


def default_output_fn(prediction: Any, accept: str) -> tuple[bytes, str]:
    kind = _base(accept, "application/json")
    if kind in ("*/*", ""):
        kind = "application/json"
    array = np.asarray(prediction)
    if kind == "application/json":
        return json.dumps(array.tolist()).encode(), kind
    if kind == "text/csv":
        rows = array.reshape(len(array), -1) if array.ndim else array.reshape(1, 1)
        return "".join(",".join(str(v) for v in row) + "\n" for row in rows.tolist()).encode(), kind
    if kind == "application/x-npy":
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue(), kind
    raise ValueError(f"Accept type {accept} is not supported by the default output_fn")


def load_user_module(model_dir: Path) -> Any | None:
    program = os.environ.get("SAGEMAKER_PROGRAM")
    if not program:
        return None
    code_dir = Path(os.environ.get("SAGEMAKER_SUBMIT_DIRECTORY") or model_dir / "code")
    if not code_dir.is_dir():
        code_dir = model_dir / "code"
    path = code_dir / program
    if not path.is_file():
        raise RuntimeError(f"inference script {program} not found in {code_dir}")
    sys.path.insert(0, str(code_dir))
    spec = importlib.util.spec_from_file_location(Path(program).stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class ScriptHandler:
    """(body, content type, accept) -> (body, content type) through the user's functions."""

    def __init__(self, model_dir: Path, module: Any, default_model_fn: Callable[[str], Any] | None = None) -> None:
        model_fn = getattr(module, "model_fn", None) or default_model_fn
        if model_fn is None:
            raise RuntimeError("the inference script must define model_fn(model_dir)")
        self.model = model_fn(str(model_dir))
        self.transform_fn = getattr(module, "transform_fn", None)
        self.input_fn = getattr(module, "input_fn", None) or default_input_fn
        self.predict_fn = getattr(module, "predict_fn", None) or default_predict_fn
        self.output_fn = getattr(module, "output_fn", None) or default_output_fn

    def __call__(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        content_type = content_type or "application/json"
        accept = accept or "application/json"
        if self.transform_fn is not None:
            result = self.transform_fn(self.model, body, content_type, accept)
        else:
            data = self.input_fn(body, content_type)
            prediction = self.predict_fn(data, self.model)
            result = self.output_fn(prediction, accept)
        if isinstance(result, tuple):
            payload, kind = result[0], result[1]
        else:
            payload, kind = result, accept
        if isinstance(payload, str):
            payload = payload.encode()
        return bytes(payload), str(kind)
