"""The ASGI app hands the request pipeline every header: names lower-cased text, repeated headers
joined with commas in arrival order, on the first request that carries a name and on later ones."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stratum.protocol.http import HttpRequest, HttpResponse
from stratum.server import asgi


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> tuple[asgi.StratumApp, list[HttpRequest]]:
    seen: list[HttpRequest] = []

    async def handle(state: Any, request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse(200, {}, b"")

    monkeypatch.setattr(asgi, "handle", handle)
    return asgi.StratumApp(state=None), seen  # type: ignore[arg-type]


def _call(app: asgi.StratumApp, headers: list[tuple[bytes, bytes]]) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {"type": "http", "method": "POST", "path": "/", "raw_path": b"/", "query_string": b"",
             "headers": headers, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8080)}
    asyncio.run(app(scope, receive, send))


def test_headers_first_and_later_requests_and_repeated_names(app: tuple[asgi.StratumApp, list[HttpRequest]]) -> None:
    stratum_app, seen = app
    plain = [(b"host", b"h:1"), (b"x-amz-target", b"SageMaker.ListPipelines"), (b"x-stratum-test-new", b"\xe9")]
    repeated = [(b"host", b"h:1"), (b"x-stratum-test-rep", b"a"), (b"x-amz-target", b"T"),
                (b"x-stratum-test-rep", b"b c"), (b"X-Stratum-Test-Upper", b"U")]
    for _ in range(2):  # the second time every name is known
        _call(stratum_app, plain)
        assert seen.pop().headers == {"host": "h:1", "x-amz-target": "SageMaker.ListPipelines",
                                      "x-stratum-test-new": "\xe9"}
        _call(stratum_app, repeated)
        request = seen.pop()
        assert request.headers == {"host": "h:1", "x-stratum-test-rep": "a,b c", "x-amz-target": "T",
                                   "x-stratum-test-upper": "U"}
        assert list(request.headers) == ["host", "x-stratum-test-rep", "x-amz-target", "x-stratum-test-upper"]
