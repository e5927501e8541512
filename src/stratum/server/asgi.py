"""A lean ASGI application (no framework: every microsecond counts on the hot path)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from stratum.notebooks import proxy as notebook_proxy
from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpRequest, HttpResponse
from stratum.server import container_credentials
from stratum.server.app_state import AppState
from stratum.server.body import AsgiBody, ClientDisconnected
from stratum.server.pipeline import handle
from stratum.server.telemetry import gauges, render, sources
from stratum.services.cloudwatch.prometheus import render as published_metrics

log = logging.getLogger("stratum.asgi")

HEALTH_PATH = "/_stratum/health"
LAMBDA_CODE_PREFIX = "/_stratum/lambda/code/"  # GetFunction's Code.Location (services.lambda_.codeurls)
METRICS_PATH = "/metrics"  # Prometheus text format, beside the API like the health check
# Raw header name -> its lower-case text: a dozen headers per request, the same names every time.
_HEADER_NAMES: dict[bytes, str] = {}


class StratumApp:
    def __init__(self, state: AppState, vpce_by_port: dict[int, str] | None = None,
                 vpce_by_address: dict[tuple[str, int], str] | None = None) -> None:
        self.state = state
        self.vpce_by_port = vpce_by_port or {}
        # Listeners sharing a port on different addresses are told apart by the exact local address.
        self.vpce_by_address = vpce_by_address or {}
        self.notebooks: notebook_proxy.NotebookProxy | None = None
        self.credentials: container_credentials.ContainerCredentials | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind in ("http", "websocket") and notebook_proxy.handles(scope["path"]):
            # JupyterLab of notebook instances and their credentials endpoint, beside the API.
            if self.notebooks is None:
                self.notebooks = notebook_proxy.NotebookProxy(self.state)
            await self.notebooks(scope, receive, send, self._vpce_id(scope.get("server")))
            return
        if kind != "http":
            return
        raw_headers = scope["headers"]
        names = _HEADER_NAMES
        try:
            headers = {names[raw_name]: raw_value.decode("latin-1") for raw_name, raw_value in raw_headers}
        except KeyError:  # a name not seen yet
            headers = _decode_headers(raw_headers)
        else:
            if len(headers) != len(raw_headers):  # a repeated header: its values are joined
                headers = _decode_headers(raw_headers)
        # The body is left on the wire: the pipeline reads it (or an S3 upload streams it to disk).
        stream = AsgiBody(receive, headers)
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else scope["path"]
        client = scope.get("client")
        server = scope.get("server")
        request = HttpRequest(
            method=scope["method"], raw_path=path, query_string=scope.get("query_string", b"").decode("latin-1"),
            headers=headers, client_ip=client[0] if client else "127.0.0.1",
            scheme=scope.get("scheme", "http"),
            vpce_id=self._vpce_id(server), stream=stream,
        )
        try:
            if path == HEALTH_PATH and request.method == "GET":
                response = HttpResponse(200, {"Content-Type": "application/json"},
                                        json.dumps({"status": "ok", "service": "stratum"}).encode())
            elif path == METRICS_PATH and request.method == "GET":
                response = HttpResponse(200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
                                        render(self.state.request_stats, gauges(self.state),
                                               published_metrics(self.state.db) + sources(self.state)).encode())
            elif path == container_credentials.PATH and request.method == "GET":
                response = await asyncio.to_thread(self._container_credentials, headers.get("authorization", ""))
            elif path.startswith(LAMBDA_CODE_PREFIX) and request.method == "GET":
                response = _lambda_code(self.state, request)
            else:
                response = await handle(self.state, request)
            if not stream.finished and not await _settle_body(stream):
                # The rest of the body will not be read: the connection cannot carry another request.
                response.headers["Connection"] = "close"
        except ClientDisconnected:
            return
        await _send(send, response, request.method)

    def _container_credentials(self, token: str) -> HttpResponse:
        """The role credentials of a model server's or job's processes (their SDKs' container provider)."""
        if self.credentials is None:
            self.credentials = container_credentials.ContainerCredentials(self.state.db,
                                                                          self.state.settings.master_key_path)
        try:
            status, body = 200, container_credentials.response_body(self.credentials.credentials(token))
        except ServiceError as exc:
            status, body = exc.status, {"code": exc.code, "message": exc.message}
        return HttpResponse(status, {"Content-Type": "application/json"}, json.dumps(body).encode())

    def _vpce_id(self, server: tuple[str, int] | None) -> str | None:
        """The VPC endpoint the connection came through, from its local (server) address."""
        if not server or not (self.vpce_by_port or self.vpce_by_address):
            return None
        found = self.vpce_by_address.get((server[0], server[1]))
        return found if found is not None else self.vpce_by_port.get(server[1])

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.state.start_background()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.state.stop_background)
                self.state.db.dispose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _lambda_code(state: AppState, request: HttpRequest) -> HttpResponse:
    """A function's zip, for the Code.Location URL GetFunction returned (signed, expiring)."""
    from stratum.services.lambda_.code import zip_path
    from stratum.services.lambda_.codeurls import check

    sha = check(request.path, request.query, state.settings.master_key_path)
    if sha is None or not zip_path(state.settings.data_dir, sha).is_file():
        return HttpResponse(403, {"Content-Type": "application/xml"},
                            b"<Error><Code>AccessDenied</Code><Message>Request has expired or is invalid</Message>"
                            b"</Error>")
    return HttpResponse(200, {"Content-Type": "application/zip"}, zip_path(state.settings.data_dir, sha).read_bytes())


async def _settle_body(stream: AsgiBody) -> bool:
    """Before answering a request whose body was not read to its end: read and discard the rest
    when the client is sending it anyway, so it reads the answer and keeps the connection. A client
    still waiting for ``100 Continue`` sends nothing more: the answer goes out with the connection
    closed after it, as its body bytes would otherwise be taken for the next request."""
    if stream.expects_continue and not stream.started:
        return False
    return await stream.drain()


def _decode_headers(raw_headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    names = _HEADER_NAMES
    for raw_name, raw_value in raw_headers:
        name = names.get(raw_name)
        if name is None:
            name = raw_name.decode("latin-1").lower()
            if len(names) < 512:  # the names clients send are few; values are not cached
                names[raw_name] = name
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


async def _send(send: Any, response: HttpResponse, method: str) -> None:
    body = response.body
    headers = [(k.encode("latin-1"), str(v).encode("latin-1")) for k, v in response.headers.items()]
    if isinstance(body, bytes | bytearray):
        if not any(k.lower() == b"content-length" for k, _ in headers):
            headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else bytes(body)})
        return
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    if isinstance(body, Iterator):
        it: Iterator[bytes] = body
        while True:
            chunk = await asyncio.to_thread(next, it, None)
            if chunk is None:
                break
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    else:
        aiter_: AsyncIterator[bytes] = body
        async for chunk in aiter_:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
