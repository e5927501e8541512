"""Script-mode inference: the user module named by SAGEMAKER_PROGRAM (in SAGEMAKER_SUBMIT_DIRECTORY,
else <model_dir>/code, where the SDK's repack puts ``entry_point`` and ``source_dir``) provides
model_fn and input_fn / predict_fn / output_fn, or transform_fn. Two families of containers run
such scripts, and they differ in defaults and errors:

* ``containers`` — sagemaker-containers (scikit-learn, and the XGBoost container's framework
  mode): a request without Content-Type is application/json; text/csv and application/json
  bodies reach input_fn as str; the default input_fn decodes JSON, CSV and NPY by the exact
  content type (an unknown one is 415, an unknown Accept in the default output_fn 406, both with
  a JSON error body); any other exception is Flask's 500 page. There is no default model_fn: the
  server does not start without one.
* ``toolkit`` — sagemaker-inference-toolkit (PyTorch, TensorFlow, Hugging Face and other
  images): SAGEMAKER_PROGRAM defaults to inference.py; the functions may take a trailing context
  argument; Accept may list several types; any exception is a 500 (or its ``status_code`` for a
  BaseInferenceToolkitError) whose body is the message and the traceback.

Both install <code>/requirements.txt before importing the script, as the containers do (here
``pip install --target`` into a directory of the model server's own, so the server's Python is
never modified).
"""

from __future__ import annotations

import csv
import importlib.util
import inspect
import io
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from stratum.algorithms.responses import FLASK_500, Reply, flask_mimetype

JSON, CSV, NPY, NPZ = "application/json", "text/csv", "application/x-npy", "application/x-npz"
UTF8_TYPES = (JSON, CSV)
CONTAINERS, TOOLKIT = "containers", "toolkit"


class UnsupportedFormatError(Exception):
    def __init__(self, content_type: str | None) -> None:
        super().__init__(f"Content type {content_type} is not supported by this framework.\n\n"
                         "            Please implement input_fn to to deserialize the request data or an output_fn to\n"
                         "            serialize the response. For more information, see the SageMaker Python SDK "
                         "README.")


class ScriptError(RuntimeError):
    """The user module cannot be served (missing, or an invalid combination of functions)."""


# ------------------------------------------------------------------------------- default codecs
def _csv_to_numpy(text: str) -> Any:
    rows = list(csv.reader(io.StringIO(text), delimiter=",", quotechar='"', doublequote=True, strict=True))
    return np.array(rows).squeeze()


def decode(data: Any, content_type: str | None) -> Any:
    """sagemaker-containers' encoders.decode (keyed by the exact content type)."""
    if content_type == JSON:
        return np.array(json.loads(data))
    if content_type == CSV:
        return _csv_to_numpy(data)
    if content_type == NPY:
        return np.load(io.BytesIO(data), allow_pickle=True)
    raise UnsupportedFormatError(content_type)


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return json.JSONEncoder().default(value)


def encode(prediction: Any, accept: str) -> bytes:
    """sagemaker-containers' encoders.encode: JSON, CSV (csv.writer rows) and NPY."""
    if accept == JSON:
        return json.dumps(prediction, default=_default).encode()
    if accept == CSV:
        array = np.array(prediction)
        if array.ndim == 1:
            array = array.reshape(array.shape[0], 1)
        out = io.StringIO()
        csv.writer(out, lineterminator="\n", delimiter=",", quotechar='"', doublequote=True,
                   strict=True).writerows(array if array.ndim > 0 else [[array.item()]])
        return out.getvalue().encode()
    if accept == NPY:
        buffer = io.BytesIO()
        np.save(buffer, prediction)
        return buffer.getvalue()
    raise UnsupportedFormatError(accept)


def encode_toolkit(prediction: Any, accept: str) -> tuple[bytes, str]:
    """sagemaker-inference-toolkit's default_output_fn: the first listed type it can encode."""
    for content_type in accept.replace(" ", "").split(","):
        if content_type == JSON:
            return json.dumps(prediction, default=_default).encode(), content_type
        if content_type == CSV:
            out = io.StringIO()
            np.savetxt(out, prediction, delimiter=",", fmt="%s")
            return out.getvalue().encode(), content_type
        if content_type == NPY:
            buffer = io.BytesIO()
            np.save(buffer, prediction)
            return buffer.getvalue(), content_type
    raise UnsupportedFormatError(accept)


# ----------------------------------------------------------------------------------- the module
def code_dir_of(model_dir: Path) -> Path:
    submit = os.environ.get("SAGEMAKER_SUBMIT_DIRECTORY")
    if submit and not submit.startswith("s3://") and Path(submit).is_dir():
        return Path(submit)
    return model_dir / "code"


def program_of(flavor: str, model_dir: Path) -> str | None:
    program = os.environ.get("SAGEMAKER_PROGRAM")
    if program:
        return program
    if flavor == TOOLKIT and (code_dir_of(model_dir) / "inference.py").is_file():
        return "inference.py"
    return None


def install_requirements(code_dir: Path, target: Path) -> None:
    """``pip install -r requirements.txt`` as the containers run it, into ``target``."""
    requirements = code_dir / "requirements.txt"
    if not requirements.is_file():
        return
    print(f"installing packages from {requirements}...", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                    "--target", str(target), "-r", str(requirements)], cwd=str(code_dir), check=True)
    sys.path.insert(0, str(target))


def load_user_module(model_dir: Path, flavor: str = CONTAINERS, deps_dir: Path | None = None) -> Any | None:
    program = program_of(flavor, model_dir)
    if not program:
        return None
    code_dir = code_dir_of(model_dir)
    path = code_dir / program
    if not path.is_file():
        raise ScriptError(f"inference script {program} not found in {code_dir}")
    install_requirements(code_dir, deps_dir or model_dir.parent / "model-requirements")
    sys.path.insert(0, str(code_dir))
    name = Path(program).stem
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _call(func: Callable[..., Any], *args: Any, context: Any = None) -> Any:
    """The toolkit passes a context to functions that take one more argument."""
    try:
        count = len(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        count = len(args)
    if count == len(args) + 1:
        return func(*args, context)
    return func(*args)


class ScriptHandler:
    """(body, Content-Type, Accept) -> Reply through the user's functions."""

    def __init__(self, model_dir: Path, module: Any, flavor: str = CONTAINERS,
                 default_input_fn: Callable[[Any, str], Any] | None = None,
                 default_predict_fn: Callable[[Any, Any], Any] | None = None) -> None:
        self.flavor = flavor
        transform_fn = getattr(module, "transform_fn", None)
        input_fn = getattr(module, "input_fn", None)
        predict_fn = getattr(module, "predict_fn", None)
        output_fn = getattr(module, "output_fn", None)
        if transform_fn and (input_fn or predict_fn or output_fn):
            raise ScriptError("Cannot use transform_fn implementation with input_fn, predict_fn, and/or output_fn")
        model_fn = getattr(module, "model_fn", None)
        if model_fn is None:
            raise NotImplementedError("Please provide a model_fn implementation.\n"
                                      "See documentation for model_fn at https://github.com/aws/sagemaker-python-sdk")
        self.transform_fn = transform_fn
        self.input_fn = input_fn
        self.predict_fn = predict_fn
        self.output_fn = output_fn
        self.default_input_fn = default_input_fn or self._default_input
        self.default_predict_fn = default_predict_fn or self._default_predict
        self.default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", JSON)
        self.model = _call(model_fn, str(model_dir))

    # -------------------------------------------------------------------------------- defaults
    def _default_input(self, data: Any, content_type: str) -> Any:
        array = decode(data, content_type)
        # scikit-learn's default_input_fn: text payloads become float32 arrays.
        return array.astype(np.float32) if content_type in UTF8_TYPES else array

    @staticmethod
    def _default_predict(data: Any, model: Any) -> Any:
        return model.predict(data) if hasattr(model, "predict") else model(data)

    # -------------------------------------------------------------------------------- requests
    def __call__(self, body: bytes, content_type: str | None, accept: str | None) -> Reply:
        if self.flavor == CONTAINERS:
            content_type = content_type or JSON
        if not accept or accept == "*/*":
            accept = self.default_accept
        data: Any = body.decode("utf-8") if content_type in UTF8_TYPES else body
        try:
            result = self._transform(data, content_type, accept)
        except _Early as early:
            return early.reply
        except Exception as exc:
            traceback.print_exc()
            if self.flavor == CONTAINERS:
                return FLASK_500
            status = getattr(exc, "status_code", 500)
            message = getattr(exc, "message", None) or str(exc)
            text = f"{message}\n{traceback.format_exc()}"
            return Reply(status if isinstance(status, int) else 500, text.encode(), "text/plain")
        if isinstance(result, Reply):
            return result
        if isinstance(result, tuple):
            payload, kind = result[0], str(result[1])
        else:
            payload, kind = result, accept
        if isinstance(payload, str):
            payload = payload.encode()
        mimetype = flask_mimetype(kind) if self.flavor == CONTAINERS else kind
        return Reply(200, bytes(payload), mimetype)

    def _transform(self, data: Any, content_type: str | None, accept: str) -> Any:
        if self.transform_fn is not None:
            return _call(self.transform_fn, self.model, data, content_type, accept)
        if self.flavor == TOOLKIT:
            parsed = _call(self.input_fn or self.default_input_fn, data, content_type)
            prediction = _call(self.predict_fn or self.default_predict_fn, parsed, self.model)
            if self.output_fn is not None:
                return _call(self.output_fn, prediction, accept)
            return encode_toolkit(prediction, accept)
        try:
            parsed = (self.input_fn or self.default_input_fn)(data, content_type)
        except UnsupportedFormatError as exc:
            raise _Early(_error_reply(exc, 415)) from exc
        prediction = (self.predict_fn or self.default_predict_fn)(parsed, self.model)
        try:
            if self.output_fn is not None:
                return self.output_fn(prediction, accept)
            return encode(prediction, accept), accept
        except UnsupportedFormatError as exc:
            raise _Early(_error_reply(exc, 406)) from exc


class _Early(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _error_reply(exc: Exception, status: int) -> Reply:
    """sagemaker-containers' Transformer._error_response."""
    body = json.dumps({"error": type(exc).__name__, "error-message": str(exc),
                       "stack-trace": traceback.format_exc()})
    return Reply(status, body.encode(), JSON)
