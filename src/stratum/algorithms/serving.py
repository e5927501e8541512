"""A model server speaking the SageMaker inference contract: GET /ping, POST /invocations,
listening on SAGEMAKER_BIND_TO_PORT (8080). Run as ``python -m stratum.algorithms.serving`` by
batch transform (and usable by hosting); the handler is the built-in XGBoost or the user's
inference script (model_fn / input_fn / predict_fn / output_fn or transform_fn)."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

Handler = Callable[[bytes, "str | None", "str | None"], tuple[bytes, str]]


def build_handler(runtime: str, model_dir: Path) -> Handler:
    from stratum.algorithms.inference import ScriptHandler, load_user_module

    module = load_user_module(model_dir)
    if runtime == "xgboost":
        from stratum.algorithms.xgboost.serve import XGBoostHandler, load_boosters

        if module is None:
            return XGBoostHandler(model_dir)
        return ScriptHandler(model_dir, module, default_model_fn=lambda d: load_boosters(Path(d))[0])
    if module is None:
        raise RuntimeError("this image serves a user inference script: set SAGEMAKER_PROGRAM (the SDK's entry_point)")
    return ScriptHandler(model_dir, module)


def make_server(handler: Handler, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    max_body = int(float(os.environ.get("SAGEMAKER_MAX_PAYLOAD_IN_MB", "6")) * 1024 * 1024) + 1024

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            pass

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] == "/ping":
                self._reply(200, b"")
            else:
                self._reply(404, b"not found")

        def do_POST(self) -> None:  # noqa: N802
            if self.path.split("?")[0] != "/invocations":
                self._reply(404, b"not found")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > max_body:
                self._reply(413, b"payload too large")
                return
            body = self.rfile.read(length)
            try:
                out, kind = handler(body, self.headers.get("Content-Type"), self.headers.get("Accept"))
            except ValueError as exc:
                self._reply(415 if "not supported" in str(exc) else 400, str(exc).encode())
                return
            except Exception as exc:
                traceback.print_exc()
                self._reply(500, f"{type(exc).__name__}: {exc}".encode())
                return
            self._reply(200, out, kind)

    return ThreadingHTTPServer((host, port), RequestHandler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SageMaker-contract model server")
    parser.add_argument("--runtime", default="xgboost")
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080")))
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    try:
        handler = build_handler(args.runtime, Path(args.model_dir))
    except Exception as exc:
        print(f"model server: loading the model failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        traceback.print_exc()
        return 1
    server = make_server(handler, args.port, args.host)
    print(f"model server listening on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
