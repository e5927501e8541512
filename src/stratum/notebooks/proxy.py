"""Stratum's front door to notebook instances, on the API's own port.

``/_stratum/notebooks/<account>/<region>/<name>/...``: JupyterLab of an InService instance, HTTP
  and websockets. The presigned URL (``?authToken=``) is checked (signature, the 5 minutes it is
  valid, and, as SageMaker does when a URL is opened, ``sagemaker:CreatePresignedNotebookInstanceUrl``
  for the principal who made it, evaluated with the browser's ``aws:SourceIp``), then a session
  cookie valid for SessionExpirationDurationInSeconds carries the browser. Requests without a valid
  session never reach Jupyter, which listens on 127.0.0.1 with a token only Stratum knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import httpx

from stratum import ids
from stratum.notebooks import service as runtime
from stratum.notebooks import urls
from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpRequest

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

log = logging.getLogger("stratum.notebooks.proxy")
COOKIE = "stratum-notebook-session"
_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
        "transfer-encoding", "upgrade", "host", "content-length"}


def handles(path: str) -> bool:
    return path.startswith(runtime.PROXY_PREFIX)


class NotebookProxy:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=10.0), follow_redirects=False)
        return self._client

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any, vpce_id: str | None = None) -> None:
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        parts = path[len(runtime.PROXY_PREFIX):].split("/", 3)
        if len(parts) < 3 or not all(parts[:3]):
            await self._refuse(scope, send, 404, "No such notebook instance.")
            return
        account, region, name = parts[:3]
        base = runtime.base_path(account, region, name)
        service = runtime.get_service(self.state)
        found = await asyncio.to_thread(service.upstream, account, region, name)
        if found is None:
            await self._refuse(scope, send, 404, "The notebook instance is not InService.")
            return
        row, port, jupyter_token = found
        query = scope.get("query_string", b"").decode("latin-1")
        auth_token = (parse_qs(query).get("authToken") or [None])[0]
        if scope["type"] == "http" and auth_token and path.rstrip("/") == base:
            await self._open(scope, send, headers, row, base, auth_token, vpce_id)
            return
        if not self._session_ok(headers, row):
            await self._refuse(scope, send, 403, "Access denied: open this notebook instance with a presigned URL "
                                                 "(CreatePresignedNotebookInstanceUrl).")
            return
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send, headers, port, jupyter_token)
        else:
            await self._http(scope, receive, send, headers, port, jupyter_token)

    # ----------------------------------------------------------------------------------- access
    def _session_ok(self, headers: dict[str, str], row: Any) -> bool:
        cookie = SimpleCookie()
        with contextlib.suppress(Exception):
            cookie.load(headers.get("cookie", ""))
        morsel = cookie.get(COOKIE)
        if morsel is None:
            return False
        payload = urls.verify(self.state.settings, morsel.value)
        return bool(payload and payload.get("i") == row.instance_id and float(payload.get("x", 0)) > time.time())

    async def _open(self, scope: dict[str, Any], send: Any, headers: dict[str, str], row: Any, base: str,
                    token: str, vpce_id: str | None) -> None:
        payload = urls.verify(self.state.settings, token)
        if payload is None or payload.get("i") != row.instance_id:
            await self._refuse(scope, send, 403, "Invalid or tampered presigned URL.")
            return
        if float(payload.get("e", 0)) < time.time():
            await self._refuse(scope, send, 403, "The presigned URL has expired.")
            return
        client = scope.get("client")
        try:
            await asyncio.to_thread(self._authorize, payload, row, headers, client[0] if client else "127.0.0.1",
                                    vpce_id)
        except ServiceError as exc:
            await self._refuse(scope, send, 403, f"Access denied: {exc.message}")
            return
        session = urls.sign(self.state.settings, {"i": row.instance_id, "x": int(time.time()) + int(payload["s"]),
                                                  "k": payload.get("k", "")})
        cookie = f"{COOKIE}={session}; Path={base}/; Max-Age={int(payload['s'])}; HttpOnly; SameSite=Lax"
        await send({"type": "http.response.start", "status": 302,
                    "headers": [(b"location", f"{base}/lab".encode()), (b"set-cookie", cookie.encode()),
                                (b"content-length", b"0"), (b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": b""})

    def _authorize(self, payload: dict[str, Any], row: Any, headers: dict[str, str], client_ip: str,
                   vpce_id: str | None) -> None:
        from stratum.server.context import RequestContext

        cred = self.state.authenticator.lookup(str(payload.get("k") or ""))
        if cred is None or not cred.active or (cred.expiration is not None and cred.expiration.timestamp() < time.time()):
            raise ServiceError("AccessDenied", "the credentials that created the URL are no longer valid", 403)
        request = HttpRequest(method="GET", raw_path=runtime.base_path(row.account_id, row.region, row.name),
                              query_string="", headers=headers, client_ip=client_ip, vpce_id=vpce_id)
        ctx = RequestContext(self.state, ids.request_id(), "sagemaker", "CreatePresignedNotebookInstanceUrl",
                             row.region, cred.identity, request)
        from stratum.services.sagemaker import tags as tagging

        ctx.authorize("sagemaker:CreatePresignedNotebookInstanceUrl", row.arn, resource_account=row.account_id,
                      context=tagging.resource_tag_context(row.tags))

    async def _refuse(self, scope: dict[str, Any], send: Any, status: int, message: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4403 if status == 403 else 4404})
            return
        body = f"<!doctype html><title>Stratum</title><p>{message}</p>\n".encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/html; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    # ------------------------------------------------------------------------------- credentials
    async def _http(self, scope: dict[str, Any], receive: Any, send: Any, headers: dict[str, str], port: int,
                    jupyter_token: str) -> None:
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"http://127.0.0.1:{port}{raw_path}" + (f"?{query}" if query else "")
        upstream_headers = {k: v for k, v in headers.items() if k not in _HOP}
        upstream_headers["authorization"] = f"token {jupyter_token}"
        upstream_headers["host"] = f"127.0.0.1:{port}"
        upstream_headers.pop("origin", None)
        upstream_headers.pop("referer", None)
        request = self.client.build_request(scope["method"], url, headers=upstream_headers, content=body)
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            await self._refuse(scope, send, 502, f"The notebook instance's Jupyter server did not answer: {exc}")
            return
        try:
            out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.multi_items()
                   if k.lower() not in _HOP or k.lower() == "content-length"]
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    # ------------------------------------------------------------------------------- websockets
    async def _websocket(self, scope: dict[str, Any], receive: Any, send: Any, headers: dict[str, str], port: int,
                         jupyter_token: str) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        message = await receive()
        if message["type"] != "websocket.connect":
            return
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"ws://127.0.0.1:{port}{raw_path}" + (f"?{query}" if query else "")
        protocols = scope.get("subprotocols") or None
        try:
            upstream = await connect(url, additional_headers={"Authorization": f"token {jupyter_token}"},
                                     subprotocols=protocols, max_size=None, compression=None)
        except Exception as exc:  # refused by Jupyter (unknown kernel...): the browser sees a closed socket
            log.info("websocket to %s refused: %s", url, exc)
            await send({"type": "websocket.close", "code": 1011})
            return
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})

        async def client_to_upstream() -> None:
            while True:
                msg = await receive()
                if msg["type"] == "websocket.disconnect":
                    await upstream.close()
                    return
                if msg.get("bytes") is not None:
                    await upstream.send(msg["bytes"])
                elif msg.get("text") is not None:
                    await upstream.send(msg["text"])

        async def upstream_to_client() -> None:
            try:
                async for data in upstream:
                    if isinstance(data, bytes):
                        await send({"type": "websocket.send", "bytes": data})
                    else:
                        await send({"type": "websocket.send", "text": data})
            except ConnectionClosed:
                pass
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": 1000})

        tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
        try:
            _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
        finally:
            await upstream.close()
