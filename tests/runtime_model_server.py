"""A model server for the runtime tests, speaking the SageMaker inference contract (GET /ping, POST
/invocations) and behaving as its --behaviour says, so forwarding can be checked end to end:

- echo: answers the body it got, tagged with its --name, with the request's Content-Type (or the
  --content-type given), and the custom attributes it received prefixed by its name;
- upper: the body upper-cased, as text/csv;
- headers: a JSON document of the headers it received;
- fail: status --status with the body "failure from <name>";
- sleep: waits --seconds, then echoes;
- stream: answers with chunked transfer encoding, one chunk per word of the body, --seconds apart
  (as a streaming container does), and breaks the connection off mid-answer when the body holds
  the word "break".

Run it as ``python tests/runtime_model_server.py --port P --name N --behaviour B``."""

from __future__ import annotations

import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="model")
    parser.add_argument("--behaviour", default="echo")
    parser.add_argument("--status", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=0.0)
    parser.add_argument("--content-type", default=None)
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *a: object) -> None:  # noqa: A002
            pass

        def _reply(self, status: int, body: bytes, content_type: str | None, attributes: str | None = None) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            if attributes:
                self.send_header("X-Amzn-SageMaker-Custom-Attributes", attributes)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            self._reply(200 if self.path == "/ping" else 404, b"", "text/plain")

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/invocations":
                self._reply(404, b"not found", "text/plain")
                return
            kind = self.headers.get("Content-Type")
            attributes = self.headers.get("X-Amzn-SageMaker-Custom-Attributes")
            tagged = f"{args.name}:{attributes}" if attributes else None
            if args.behaviour == "stream":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for word in body.decode().split():
                    if word == "break":
                        self.wfile.write(b"ff\r\npartial")
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    piece = f"{args.name}:{word};".encode()
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.flush()
                    time.sleep(args.seconds)
                self.wfile.write(b"0\r\n\r\n")
                return
            if args.behaviour == "sleep":
                time.sleep(args.seconds)
            if args.behaviour in ("echo", "sleep"):
                self._reply(200, f"{args.name}(".encode() + body + b")", args.content_type or kind, tagged)
            elif args.behaviour == "upper":
                self._reply(200, body.upper(), "text/csv", tagged)
            elif args.behaviour == "headers":
                self._reply(200, json.dumps(dict(self.headers.items())).encode(), "application/json")
            else:
                self._reply(args.status, f"failure from {args.name}".encode(), "text/plain")

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
