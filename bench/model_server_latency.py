"""Round-trip time of /invocations on one keep-alive connection: http.server's defaults (headers
and body in two writes, Nagle on) against the model server's (TCP_NODELAY, one write). The
first stalls on the client's delayed ACK (~40 ms on Linux) on every request.

    PYTHONPATH=src python bench/model_server_latency.py [requests]
"""

from __future__ import annotations

import http.client
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from stratum.algorithms.responses import Reply
from stratum.algorithms.serving import make_server

ANSWER = b"12.5\n"


def plain_server() -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(ANSWER)))
            self.end_headers()
            self.wfile.write(ANSWER)

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def measure(server: ThreadingHTTPServer, count: int) -> list[float]:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1])
    timings = []
    for _ in range(count + 20):
        start = time.perf_counter()
        conn.request("POST", "/invocations", body=b"1,2,3,4", headers={"Content-Type": "text/csv"})
        conn.getresponse().read()
        timings.append(time.perf_counter() - start)
    server.shutdown()
    return sorted(timings[20:])


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    servers = {"http.server defaults": plain_server(),
               "model server": make_server(lambda body, kind, accept: Reply(200, ANSWER, "text/csv"), 0)}
    for name, server in servers.items():
        t = measure(server, count)
        print(f"{name}: median {statistics.median(t) * 1000:.3f} ms, p95 {t[int(len(t) * 0.95)] * 1000:.3f} ms, "
              f"max {t[-1] * 1000:.3f} ms")


if __name__ == "__main__":
    main()
