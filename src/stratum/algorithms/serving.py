"""A model server speaking the SageMaker inference contract: GET /ping, POST /invocations (and the
XGBoost container's GET /execution-parameters), listening on SAGEMAKER_BIND_TO_PORT (8080).
Run as ``python -m stratum.algorithms.serving --runtime R --image IMAGE`` by batch transform and
hosting. What answers is chosen as the image's container would:

* the built-in XGBoost algorithm (stratum.algorithms.xgboost.serve) for the XGBoost images
  without SAGEMAKER_PROGRAM, or the XGBoost container's framework mode with one;
* a user inference script (stratum.algorithms.inference): the scikit-learn image follows
  sagemaker-containers, the other framework images sagemaker-inference-toolkit.

HTTP/1.1 with keep-alive, one thread per connection; TCP_NODELAY and one write per response, so
a small answer is not held back by Nagle's algorithm waiting for the client's delayed ACK. At
most SAGEMAKER_MODEL_SERVER_WORKERS (default: the CPU count) invocations run at once, as the
containers' worker count bounds them.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from stratum.algorithms.responses import FLASK_500, Reply

Handler = Callable[[bytes, "str | None", "str | None"], Reply]


def flavor_of(runtime: str, image: str | None) -> str:
    """Which script-serving family an image's container belongs to."""
    from stratum.algorithms.inference import CONTAINERS, TOOLKIT
    from stratum.jobs.images import repository_of

    if runtime == "xgboost":
        return CONTAINERS
    repository = repository_of(image) if image else "sagemaker-scikit-learn"
    return CONTAINERS if repository == "sagemaker-scikit-learn" else TOOLKIT


def _xgboost_script_defaults() -> tuple[Callable[[Any, str], Any], Callable[[Any, Any], Any]]:
    """The XGBoost container's framework-mode default input_fn / predict_fn (DMatrix in)."""
    from stratum.algorithms import recordio
    from stratum.algorithms.inference import UnsupportedFormatError
    from stratum.algorithms.xgboost.serve import csv_to_dmatrix, libsvm_matrix, parse_header

    def input_fn(data: Any, content_type: str) -> Any:
        import xgboost as xgb

        media, _ = parse_header(content_type or "")
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        if media == "text/csv":
            return csv_to_dmatrix(text)
        if media in ("text/libsvm", "text/x-libsvm"):
            return xgb.DMatrix(libsvm_matrix(text))
        if media == "application/x-recordio-protobuf":
            features, labels = recordio.read_features(data)
            return xgb.DMatrix(features, label=labels)
        raise UnsupportedFormatError(media)

    def predict_fn(data: Any, model: Any) -> Any:
        return model.predict(data, validate_features=False)

    return input_fn, predict_fn


def build_handler(runtime: str, model_dir: Path, image: str | None = None) -> Handler:
    from stratum.algorithms.inference import ScriptError, ScriptHandler, load_user_module

    flavor = flavor_of(runtime, image)
    module = load_user_module(model_dir, flavor)
    if runtime == "xgboost":
        if module is None:
            from stratum.algorithms.xgboost.serve import XGBoostHandler

            return XGBoostHandler(model_dir)
        input_fn, predict_fn = _xgboost_script_defaults()
        return ScriptHandler(model_dir, module, flavor, default_input_fn=input_fn, default_predict_fn=predict_fn)
    if module is None:
        raise ScriptError("this image serves a user inference script: set SAGEMAKER_PROGRAM (the SDK's entry_point)")
    return ScriptHandler(model_dir, module, flavor)


class MultiModels:
    """The multi-model container contract (SageMaker's "Custom Containers Contract for Multi-Model
    Endpoints"): the platform downloads a TargetModel and asks the container to load it from a
    directory (POST /models {"model_name", "url"}), lists (GET /models, GET /models/<name>),
    unloads (DELETE /models/<name>) and invokes it (POST /models/<name>/invoke)."""

    def __init__(self, build: Callable[[Path], Handler]) -> None:
        self.build = build
        self.lock = threading.Lock()
        self.models: dict[str, tuple[str, Handler]] = {}

    def load(self, body: bytes, query: dict[str, list[str]] | None = None) -> Reply:
        """SageMaker sends {"model_name", "url"} as JSON; MMS's management API takes them as
        query parameters (POST /models?model_name=..&url=..): both are accepted."""
        try:
            if query and "url" in query:
                url = query["url"][0]
                name = (query.get("model_name") or [Path(url).name])[0]
            else:
                request = json.loads(body)
                name, url = str(request["model_name"]), str(request["url"])
        except (ValueError, KeyError, TypeError, IndexError):
            return _json_reply(400, {"message": "the body must be {\"model_name\": ..., \"url\": ...}"})
        directory = _host_path(url)
        with self.lock:
            if name in self.models:
                return _json_reply(409, {"message": f"Model {name} is already loaded."})
        try:
            handler = self.build(directory)
        except MemoryError:
            return _json_reply(507, {"message": f"Not enough memory to load model {name}."})
        except Exception as exc:
            traceback.print_exc()
            return _json_reply(500, {"message": f"Model {name} could not be loaded: {type(exc).__name__}: {exc}"})
        with self.lock:
            if name in self.models:
                return _json_reply(409, {"message": f"Model {name} is already loaded."})
            self.models[name] = (url, handler)
        return _json_reply(200, {"status": f"Model {name} loaded."})

    def listing(self) -> Reply:
        with self.lock:
            models = [{"modelName": n, "modelUrl": u} for n, (u, _) in self.models.items()]
        return _json_reply(200, {"models": models})

    def get(self, name: str) -> Reply:
        with self.lock:
            found = self.models.get(name)
        if found is None:
            return _json_reply(404, {"message": f"Model {name} is not loaded."})
        return _json_reply(200, {"modelName": name, "modelUrl": found[0]})

    def unload(self, name: str) -> Reply:
        with self.lock:
            found = self.models.pop(name, None)
        if found is None:
            return _json_reply(404, {"message": f"Model {name} is not loaded."})
        del found
        # The model's memory is given back now (MMS stops the model's worker process), so a load
        # refused for lack of memory (507) can succeed once SageMaker has unloaded another.
        gc.collect()
        return _json_reply(200, {"status": f"Model {name} unloaded."})

    def handler(self, name: str) -> Handler | None:
        with self.lock:
            found = self.models.get(name)
        return found[1] if found is not None else None


def _host_path(url: str) -> Path:
    """A model directory the platform names as /opt/ml/...: where it is when /opt/ml is remapped
    by STRATUM_OPT_ML rather than mounted (native loaders such as XGBoost's open paths themselves)."""
    root = os.environ.get("STRATUM_OPT_ML")
    if root and (url == "/opt/ml" or url.startswith("/opt/ml/")):
        return Path(root + url[len("/opt/ml"):])
    return Path(url)


def _json_reply(status: int, document: dict[str, Any]) -> Reply:
    return Reply(status, json.dumps(document).encode(), "application/json")


def _workers() -> int:
    value = os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS")
    try:
        return max(1, int(value)) if value else (os.cpu_count() or 1)
    except ValueError:
        return os.cpu_count() or 1


def make_server(handler: Handler | None, port: int, host: str = "127.0.0.1",
                execution_parameters: dict[str, Any] | None = None,
                multi: MultiModels | None = None) -> ThreadingHTTPServer:
    """``handler`` answers /invocations; ``multi`` (a multi-model container) the /models API."""
    max_body = int(float(os.environ.get("SAGEMAKER_MAX_PAYLOAD_IN_MB", "6")) * 1024 * 1024) + 1024
    slots = threading.BoundedSemaphore(_workers())

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # TCP_NODELAY on every connection
        wbufsize = 64 * 1024  # headers and body leave in one write when the response is flushed

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

        def _reply(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def _body(self) -> bytes | None:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks = []
                size = 0
                while True:
                    length = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if length == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    size += length
                    if size > max_body:
                        return None
                    chunks.append(self.rfile.read(length))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            if length > max_body:
                return None
            return self.rfile.read(length)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = unquote(self.path.split("?")[0])
            if path == "/ping":
                self._reply(Reply(200, b"", "text/html; charset=utf-8"))
            elif path == "/execution-parameters" and execution_parameters is not None:
                self._reply(Reply(200, json.dumps(execution_parameters).encode(), "application/json"))
            elif multi is not None and path == "/models":
                self._reply(multi.listing())
            elif multi is not None and path.startswith("/models/"):
                self._reply(multi.get(path[len("/models/"):]))
            else:
                self._reply(Reply(404, b"not found", "text/plain"))

        def do_DELETE(self) -> None:  # noqa: N802
            path = unquote(self.path.split("?")[0])
            if multi is not None and path.startswith("/models/"):
                self._reply(multi.unload(path[len("/models/"):]))
            else:
                self._reply(Reply(404, b"not found", "text/plain"))

        def do_POST(self) -> None:  # noqa: N802
            path = unquote(self.path.split("?")[0])
            target: Handler | None = None
            if path == "/invocations" and handler is not None:
                target = handler
            elif multi is not None and path.startswith("/models/") and path.endswith("/invoke"):
                name = path[len("/models/"):-len("/invoke")]
                target = multi.handler(name)
                if target is None:
                    self._body()
                    self._reply(_json_reply(404, {"message": f"Model {name} is not loaded."}))
                    return
            body = self._body()
            if body is None:
                self.close_connection = True
                self._reply(Reply(413, b"payload too large", "text/plain"))
                return
            if multi is not None and path == "/models":
                self._reply(multi.load(body, parse_qs(self.path.partition("?")[2])))
                return
            if target is None:
                self._reply(Reply(404, b"not found", "text/plain"))
                return
            with slots:
                try:
                    reply = target(body, self.headers.get("Content-Type"), self.headers.get("Accept"))
                except Exception:
                    traceback.print_exc()
                    reply = FLASK_500
            self._reply(reply)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

    return Server((host, port), RequestHandler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SageMaker-contract model server")
    parser.add_argument("--runtime", default="xgboost")
    parser.add_argument("--image", default=None, help="the container image (chooses the serving behaviour)")
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080")))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--multi-model", action="store_true",
                        default=os.environ.get("SAGEMAKER_MULTI_MODEL", "").lower() == "true",
                        help="serve the multi-model container API (Mode MultiModel; SAGEMAKER_MULTI_MODEL=true)")
    args = parser.parse_args(argv)
    multi = None
    handler: Handler | None = None
    if args.multi_model:
        # Models are loaded on demand through the /models API, each from its own directory.
        multi = MultiModels(lambda directory: build_handler(args.runtime, directory, args.image))
    else:
        try:
            handler = build_handler(args.runtime, Path(args.model_dir), args.image)
        except Exception as exc:
            print(f"model server: loading the model failed: {type(exc).__name__}: {exc}", file=sys.stderr,
                  flush=True)
            traceback.print_exc()
            return 1
    parameters = None
    if args.runtime == "xgboost":
        # The XGBoost container's answer (batch transform asks it for its defaults).
        parameters = {"MaxConcurrentTransforms": os.cpu_count() or 1, "BatchStrategy": "MULTI_RECORD",
                      "MaxPayloadInMB": int(int(os.environ.get("MAX_CONTENT_LENGTH", "6291456")) / 1024 ** 2)}
    server = make_server(handler, args.port, args.host, parameters, multi)
    print(f"model server listening on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
