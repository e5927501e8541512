"""Model servers started as batch transform and hosting start them (``python -m
stratum.algorithms.serving``), answering HTTP as the SageMaker containers do: the built-in XGBoost
(CSV, LIBSVM, RecordIO-protobuf in; CSV / JSON out; the container's error statuses and bodies) for
a pickled (1.0-1) and a saved (1.7-1) model, compared with xgboost's own predictions; script mode
in the scikit-learn container's and the inference toolkit's ways, requirements.txt; keep-alive
latency."""

from __future__ import annotations

import http.client
import io
import json
import os
import pickle
import socket
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import stratum

xgb = pytest.importorskip("xgboost")

SRC = str(Path(stratum.__file__).resolve().parents[1])
XGB_17 = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
XGB_10 = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.0-1-cpu-py3"
SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
PYTORCH = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu-py310"
FEATURES = 4


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def model_server(model_dir: Path, runtime: str, image: str, env: dict[str, str] | None = None
                 ) -> Iterator[http.client.HTTPConnection]:
    port = _port()
    full_env = {**os.environ, "PYTHONPATH": SRC, **(env or {})}
    log = model_dir.parent / f"server-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "stratum.algorithms.serving", "--runtime", runtime,
                                 "--image", image, "--model-dir", str(model_dir), "--port", str(port)],
                                env=full_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"model server exited {proc.returncode}: {log.read_text()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/ping")
                ping = conn.getresponse()
                ping.read()
                if ping.status == 200:
                    break
            except OSError:
                time.sleep(0.05)
            if time.monotonic() > deadline:
                raise AssertionError(f"model server did not answer /ping: {log.read_text()}")
        yield conn
    finally:
        proc.terminate()
        proc.wait(10)


def invoke(conn: http.client.HTTPConnection, body: bytes, content_type: str | None = "text/csv",
           accept: str | None = None) -> tuple[int, str, bytes]:
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    conn.request("POST", "/invocations", body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.getheader("Content-Type") or "", resp.read()


def _data(rows: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1 * rng.normal(size=rows)).astype(np.float32)
    return x, y


@pytest.fixture(scope="module")
def booster() -> Any:
    x, y = _data()
    return xgb.train({"objective": "reg:squarederror", "max_depth": 3}, xgb.DMatrix(x, label=y), num_boost_round=8)


def _model_dir(tmp_path: Path, booster: Any, image: str) -> Path:
    from stratum.algorithms.xgboost import model_file

    directory = tmp_path / f"model-{image.rsplit(':', 1)[-1]}"
    model_file.save(booster, directory, image)
    return directory


def _csv(rows: np.ndarray) -> str:
    return "\n".join(",".join(repr(float(v)) for v in row) for row in rows)


@pytest.mark.parametrize("image", [XGB_17, XGB_10])
def test_builtin_xgboost_answers_as_the_container(tmp_path: Path, booster: Any, image: str) -> None:
    directory = _model_dir(tmp_path, booster, image)
    pickled = image == XGB_10
    assert (directory / "xgboost-model").read_bytes()[:1] == (b"\x80" if pickled else b"{")
    x, _ = _data(5)
    expected = booster.predict(xgb.DMatrix(np.array([[float(repr(float(v))) for v in r] for r in x],
                                                    dtype=np.float32)))
    with model_server(directory, "xgboost", image) as conn:
        # One row without a trailing newline (the SDK's CSVSerializer), several with one.
        status, kind, body = invoke(conn, _csv(x[:1]).encode())
        assert (status, kind) == (200, "text/csv; charset=utf-8")
        assert float(body.decode()) == pytest.approx(float(expected[0]), rel=1e-6)
        status, kind, body = invoke(conn, (_csv(x) + "\n").encode(), accept="text/csv")
        assert status == 200 and np.allclose([float(v) for v in body.decode().splitlines()], expected, rtol=1e-6)
        assert body.endswith(b"\n") and len(body.decode().splitlines()) == 5
        status, kind, body = invoke(conn, _csv(x).encode(), accept="application/json")
        assert (status, kind) == (200, "application/json")
        scores = [p["score"] for p in json.loads(body)["predictions"]]
        assert np.allclose(scores, expected, rtol=1e-6)
        # LIBSVM (1-based indices, label ignored) and no Content-Type at all (LIBSVM too).
        libsvm = "\n".join("0 " + " ".join(f"{i + 1}:{float(v)!r}" for i, v in enumerate(r)) for r in x)
        status, _, body = invoke(conn, libsvm.encode(), "text/libsvm")
        assert status == 200 and np.allclose([float(v) for v in body.decode().splitlines()], expected, rtol=1e-6)
        status, _, body = invoke(conn, libsvm.encode(), None)
        assert status == 200 and len(body.decode().splitlines()) == 5
        # RecordIO-protobuf as the SDK's RecordSerializer writes it.
        sagemaker_common = pytest.importorskip("sagemaker.amazon.common")
        buffer = io.BytesIO()
        sagemaker_common.write_numpy_to_dense_tensor(buffer, x)
        status, _, body = invoke(conn, buffer.getvalue(), "application/x-recordio-protobuf",
                                 "application/json")
        assert status == 200
        assert np.allclose([p["score"] for p in json.loads(body)["predictions"]], booster.predict(xgb.DMatrix(x)),
                           rtol=1e-6)

        # The container's errors.
        assert invoke(conn, b"", "text/csv")[:1] == (204,)
        status, _, body = invoke(conn, b'{"instances": [[1, 2, 3, 4]]}', "application/json")
        assert status == 415 and body.decode().startswith("application/json is not an accepted ContentType: csv,")
        status, _, body = invoke(conn, b"1,2\n3\n", "text/csv")
        assert status == 415 and body.decode().startswith("Loading csv data failed with Exception")
        status, _, body = invoke(conn, b"1,2,3,4", "text/csv", "text/plain")
        assert status == 406 and body.decode().startswith("Accept type text/plain is not supported.")
        status, kind, body = invoke(conn, b"1,2,3,4", "text/csv", "application/jsonlines")
        assert status == 500 and b"Internal Server Error" in body  # its encoder knows no JSON Lines
        status, _, body = invoke(conn, b"1,2,3,4,5,6", "text/csv")
        if pickled:  # the container checks the feature count of a pickled model only
            assert status == 400
            assert body.decode() == ("Unable to evaluate payload provided: Feature size of csv inference data 6 "
                                     "is not consistent with feature size of trained model 4.")
        else:
            assert status == 400 and body.decode().startswith("Unable to evaluate payload provided:")


def test_builtin_xgboost_batch_and_selectable_output(tmp_path: Path) -> None:
    x, y = _data()
    labels = (y > 0).astype(np.float32)
    classifier = xgb.train({"objective": "binary:logistic", "max_depth": 2}, xgb.DMatrix(x, label=labels),
                           num_boost_round=5)
    directory = _model_dir(tmp_path, classifier, XGB_17)
    expected = classifier.predict(xgb.DMatrix(x[:3]))
    with model_server(directory, "xgboost", XGB_17, {"SAGEMAKER_BATCH": "true"}) as conn:
        status, _, body = invoke(conn, _csv(x[:3]).encode(), accept="application/json")
        # Batch: one prediction per line whatever the Accept, as the container writes it.
        assert status == 200 and np.allclose([float(v) for v in body.decode().splitlines()], expected, rtol=1e-5)
    with model_server(directory, "xgboost", XGB_17,
                      {"SAGEMAKER_INFERENCE_OUTPUT": "predicted_label, probability"}) as conn:
        status, _, body = invoke(conn, _csv(x[:3]).encode(), accept="application/jsonlines")
        lines = [json.loads(line) for line in body.decode().splitlines()]
        assert status == 200 and [line["predicted_label"] for line in lines] == [int(p > 0.5) for p in expected]
        assert np.allclose([line["probability"] for line in lines], expected, rtol=1e-5)
        status, _, body = invoke(conn, _csv(x[:3]).encode(), accept="text/csv")
        assert status == 200 and body.decode().count("\n") == 2  # no trailing newline outside batch


SKLEARN_SCRIPT = '''
import os, pickle

def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.pkl"), "rb") as f:
        return pickle.load(f)
'''

FAILING_SCRIPT = '''
def model_fn(model_dir):
    return None

def predict_fn(data, model):
    raise RuntimeError("the model is not ready")
'''

TOOLKIT_SCRIPT = '''
import json

def model_fn(model_dir, context):
    return {"scale": 2}

def input_fn(body, content_type, context):
    return json.loads(body)

def predict_fn(data, model):
    if data == "boom":
        raise ValueError("cannot predict boom")
    return [v * model["scale"] for v in data]
'''


def test_scikit_learn_script_mode(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    x, y = _data(50)
    model = LinearRegression().fit(x, y)
    directory = tmp_path / "sk"
    (directory / "code").mkdir(parents=True)
    (directory / "model.pkl").write_bytes(pickle.dumps(model))
    (directory / "code" / "inference.py").write_text(SKLEARN_SCRIPT)
    env = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": str(directory / "code")}
    expected = model.predict(x[:3].astype(np.float32))
    with model_server(directory, "python", SKLEARN, env) as conn:
        status, kind, body = invoke(conn, _csv(x[:3]).encode(), "text/csv", "text/csv")
        assert (status, kind) == (200, "text/csv; charset=utf-8")
        assert np.allclose([float(v) for v in body.decode().splitlines()], expected, rtol=1e-5)
        status, kind, body = invoke(conn, json.dumps(x[:3].tolist()).encode(), "application/json", None)
        assert (status, kind) == (200, "application/json") and np.allclose(json.loads(body), expected, rtol=1e-5)
        status, kind, body = invoke(conn, b"1 2 3 4", "text/plain")
        error = json.loads(body)
        assert (status, kind, error["error"]) == (415, "application/json", "UnsupportedFormatError")
        assert error["error-message"].startswith("Content type text/plain is not supported by this framework.")
        status, _, body = invoke(conn, _csv(x[:3]).encode(), "text/csv", "text/plain")
        assert status == 406 and json.loads(body)["error"] == "UnsupportedFormatError"
        # One CSV row is squeezed to 1-D by the container's decoder: scikit-learn refuses it.
        status, _, body = invoke(conn, _csv(x[:1]).encode(), "text/csv", "text/csv")
        assert status == 500 and b"Internal Server Error" in body

    failing = tmp_path / "failing"
    (failing / "code").mkdir(parents=True)
    (failing / "code" / "inference.py").write_text(FAILING_SCRIPT)
    with model_server(failing, "python", SKLEARN, {"SAGEMAKER_PROGRAM": "inference.py"}) as conn:
        status, kind, body = invoke(conn, b"[1]", "application/json")
        assert (status, kind) == (500, "text/html; charset=utf-8") and b"Internal Server Error" in body


def _wheel(directory: Path, name: str, module_source: str) -> Path:
    """A minimal pure-Python wheel (installable offline)."""
    path = directory / f"{name}-1.0-py3-none-any.whl"
    dist = f"{name}-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{name}.py", module_source)
        whl.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        whl.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{dist}/RECORD", "")
    return path


def test_inference_toolkit_script_mode_and_requirements(tmp_path: Path) -> None:
    directory = tmp_path / "pt"
    code = directory / "code"
    code.mkdir(parents=True)
    wheel = _wheel(code, "stratumtestdep", "FACTOR = 5\n")
    (code / "requirements.txt").write_text(f"./{wheel.name}\n")
    # SAGEMAKER_PROGRAM is not set: the toolkit's default module is inference.py.
    (code / "inference.py").write_text(TOOLKIT_SCRIPT.replace('{"scale": 2}', '{"scale": __import__('
                                                                               '"stratumtestdep").FACTOR}'))
    with model_server(directory, "python", PYTORCH) as conn:
        status, kind, body = invoke(conn, b"[1, 2]", "application/json", None)
        assert (status, kind) == (200, "application/json") and json.loads(body) == [5, 10]
        status, kind, body = invoke(conn, b'"boom"', "application/json", "application/json")
        text = body.decode()
        assert status == 500 and text.startswith("cannot predict boom\nTraceback (most recent call last):")
        assert "ValueError: cannot predict boom" in text
    assert (tmp_path / "model-requirements" / "stratumtestdep.py").is_file()


def test_multi_model_container_api(tmp_path: Path, booster: Any) -> None:
    x, y = _data()
    other = xgb.train({"objective": "reg:squarederror", "max_depth": 2}, xgb.DMatrix(x, label=-y), num_boost_round=4)
    first, second = _model_dir(tmp_path / "a", booster, XGB_17), _model_dir(tmp_path / "b", other, XGB_10)
    rows, _ = _data(3)
    payload = _csv(rows).encode()
    exact = np.array([[float(repr(float(v))) for v in r] for r in rows], dtype=np.float32)

    def call(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")

    empty = tmp_path / "unused"
    empty.mkdir()
    with model_server(empty, "xgboost", XGB_17, {"SAGEMAKER_MULTI_MODEL": "true"}) as conn:
        assert call(conn, "GET", "/models") == (200, {"models": []})
        assert call(conn, "POST", "/models", {"model_name": "first", "url": str(first)})[0] == 200
        assert call(conn, "POST", "/models", {"model_name": "second", "url": str(second)})[0] == 200
        assert call(conn, "POST", "/models", {"model_name": "first", "url": str(first)})[0] == 409
        status, listing = call(conn, "GET", "/models")
        assert status == 200 and sorted(m["modelName"] for m in listing["models"]) == ["first", "second"]
        assert call(conn, "GET", "/models/second") == (200, {"modelName": "second", "modelUrl": str(second)})
        for name, model in (("first", booster), ("second", other)):
            conn.request("POST", f"/models/{name}/invoke", body=payload,
                         headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Target-Model": f"{name}.tar.gz"})
            resp = conn.getresponse()
            got = [float(v) for v in resp.read().decode().splitlines()]
            assert resp.status == 200 and np.allclose(got, model.predict(xgb.DMatrix(exact)), rtol=1e-6)
        assert call(conn, "DELETE", "/models/first")[0] == 200
        assert call(conn, "DELETE", "/models/first")[0] == 404
        conn.request("POST", "/models/first/invoke", body=payload, headers={"Content-Type": "text/csv"})
        resp = conn.getresponse()
        assert resp.status == 404 and b"first" in resp.read()
        assert call(conn, "POST", "/models", {"model_name": "broken", "url": str(empty)})[0] == 500


def test_keep_alive_latency(tmp_path: Path, booster: Any) -> None:
    """Many requests on one connection: no Nagle / delayed-ACK stalls (40 ms each on Linux)."""
    directory = _model_dir(tmp_path, booster, XGB_17)
    x, _ = _data(1)
    payload = _csv(x).encode()
    with model_server(directory, "xgboost", XGB_17) as conn:
        for _ in range(20):
            assert invoke(conn, payload)[0] == 200
        timings = []
        for _ in range(200):
            start = time.perf_counter()
            status, _, _ = invoke(conn, payload)
            timings.append(time.perf_counter() - start)
            assert status == 200
        # Concurrent clients, each on its own keep-alive connection, get their own answers.
        from concurrent.futures import ThreadPoolExecutor

        rows, _ = _data(16)
        port = conn.port

        def client(i: int) -> list[float]:
            own = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            out = []
            for _ in range(10):
                status, _, body = invoke(own, _csv(rows[i:i + 1]).encode())
                assert status == 200
                out.append(float(body))
            own.close()
            return out

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(client, range(16)))
        expected = booster.predict(xgb.DMatrix(np.array([[float(repr(float(v))) for v in r] for r in rows],
                                                        dtype=np.float32)))
        for i, got in enumerate(answers):
            assert np.allclose(got, expected[i], rtol=1e-6)
    timings.sort()
    median, p95 = statistics.median(timings), timings[int(len(timings) * 0.95)]
    print(f"model server round trip on one keep-alive connection: median {median * 1000:.2f} ms, "
          f"p95 {p95 * 1000:.2f} ms")
    assert median < 0.02 and p95 < 0.035, (median, p95)
