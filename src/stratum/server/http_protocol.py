"""uvicorn's httptools protocol, sending each response's head and body in one write, and
answering a request it cannot parse in the format of the service the request was for.

uvicorn writes the head of a response as soon as the application starts it and the body when it
arrives: two sends, two TCP segments, and on loopback the kernel's receive path runs twice in
the sender's time. A Stratum response's head and body are produced in the same step, so the head
is held until the body's write (or, at the latest, the event loop's next iteration) and both go
out together.
"""

from __future__ import annotations

import asyncio
import http
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from stratum import ids
from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpRequest
from stratum.protocol.serializer import serialize_error
from stratum.protocol.service_models import service_index
from stratum.server.routing import ForeignProtocolError, route_service


class _CoalescingTransport:
    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif data.startswith(b"HTTP/1.1 ") and data.endswith(b"\r\n\r\n"):
            self._held = data
            self._loop.call_soon(self._flush)
        else:
            self._transport.write(data)

    def _flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    # What uvicorn calls per request or per read, spelled out: __getattr__ is only reached after
    # the normal lookup has failed with a formatted AttributeError.
    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self._last_data = data  # a reference only: read again if llhttp refuses the request
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        """uvicorn answers a request llhttp refuses (a bad header, a bad chunk size) with a plain-text
        400 no AWS client can parse; once the request line has been read, the service is known
        from what was read (X-Amz-Target, the credential scope, the request's shape) and the 400
        is written in its protocol."""
        response = self._malformed_request_response()
        if response is None:
            super().send_400_response(msg)
            return
        self.transport.write(response)
        self.transport.close()

    def _malformed_request_response(self) -> bytes | None:
        url: bytes = getattr(self, "url", b"") or b""
        if not url:
            return None  # not even a request line: nothing tells which service it was for
        headers: dict[str, str] = {}
        for raw_name, raw_value in getattr(self, "headers", None) or ():
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        # llhttp stops at the bad header: the ones after it (Authorization comes last from the
        # SDKs) are read from the bytes received, line by line.
        for name, value in _lenient_headers(getattr(self, "_last_data", b"")).items():
            headers.setdefault(name, value)
        scope = getattr(self, "scope", None) or {}
        method = scope.get("method") or _method(self.parser)
        path, _, query = url.decode("latin-1").partition("?")
        request = HttpRequest(method=method, raw_path=path, query_string=query, headers=headers)
        error = ServiceError("BadRequest", "An error occurred when parsing the HTTP request.", 400)
        try:
            model = service_index(route_service(request, "us-east-1")[0]).model
        except ForeignProtocolError as exc:
            model = exc.service_model
        except Exception:  # no service this request can be for: uvicorn's own answer
            return None
        response = serialize_error(model, error, ids.request_id(), method)
        body = response.body if isinstance(response.body, bytes) else b""
        head = [f"HTTP/1.1 {response.status} {http.HTTPStatus(response.status).phrase}"]
        head += [f"{k}: {v}" for k, v in response.headers.items()]
        head += [f"content-length: {len(body)}", "connection: close", "", ""]
        return "\r\n".join(head).encode("latin-1") + body


def _lenient_headers(data: bytes) -> dict[str, str]:
    """The header lines of the last request head in ``data``, however malformed the others (one
    pass over the lines: no regular expression, whose backtracking a hostile head could feed)."""
    lines = data.split(b"\r\n")
    start = None
    for i, line in enumerate(lines):
        method, _, rest = line.partition(b" ")
        if method.isalpha() and method.isupper() and rest.endswith((b" HTTP/1.1", b" HTTP/1.0")):
            start = i + 1
    headers: dict[str, str] = {}
    if start is None:
        return headers
    for line in lines[start:]:
        if not line:
            break
        name, sep, value = line.partition(b":")
        if sep:
            headers.setdefault(name.strip().decode("latin-1").lower(), value.strip().decode("latin-1"))
    return headers


def _method(parser: Any) -> str:
    try:
        return str(parser.get_method().decode("ascii"))
    except Exception:  # httptools raises when the method itself was not read
        return "GET"
