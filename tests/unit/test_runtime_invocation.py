"""Forwarding to real model-server processes: one container, a serial pipeline (each answer's
Content-Type is the next request's, Accept only for the last), failures, timeouts, and connections
kept alive between calls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime_testing import ModelProcess, start_test_model

from stratum.hosting.routes import InstanceRoute
from stratum.services.sagemaker_runtime.client import ContainerUnreachable, ModelClient
from stratum.services.sagemaker_runtime.invocation import ModelFailure, Request, invoke


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ModelProcess]]:
    tmp: Path = tmp_path_factory.mktemp("models")
    started: dict[str, ModelProcess] = {}
    try:
        started["upper"] = start_test_model(tmp, "upper", "upper")
        started["echo"] = start_test_model(tmp, "echo", "echo", content_type="application/x-echo")
        started["headers"] = start_test_model(tmp, "headers", "headers")
        started["fail"] = start_test_model(tmp, "fail", "fail", status=503)
        started["slow"] = start_test_model(tmp, "slow", "sleep", seconds=2)
        yield started
    finally:
        for server in started.values():
            server.stop()


def _instance(servers: dict[str, ModelProcess]) -> InstanceRoute:
    return InstanceRoute("i-1", {name: s.url for name, s in servers.items()})


def test_serial_piping(servers: dict[str, ModelProcess]) -> None:
    async def run() -> None:
        client = ModelClient()
        answer = await invoke(client, _instance(servers), ("upper", "echo", "headers"),
                              Request(b"abc", "text/plain", "application/json", "trace=1"))
        seen = {k.lower(): v for k, v in json.loads(answer.body).items()}
        assert seen["content-type"] == "application/x-echo"  # echo's answer type, not the caller's
        assert seen["accept"] == "application/json"
        # upper and echo tag the attributes they got; echo's answer carried them on to headers
        assert seen["x-amzn-sagemaker-custom-attributes"] == "echo:upper:trace=1"
        first = await invoke(client, _instance(servers), ("upper", "echo"), Request(b"ab", "text/plain", "text/csv"))
        assert (first.body, first.content_type) == (b"echo(AB)", "application/x-echo")
        assert first.model_seconds > 0
        client.close()

    asyncio.run(run())


def test_accept_only_reaches_the_last_container(servers: dict[str, ModelProcess]) -> None:
    async def run() -> None:
        client = ModelClient()
        answer = await invoke(client, _instance(servers), ("headers", "echo"), Request(b"x", "text/csv", "text/csv"))
        first_seen = {k.lower(): v for k, v in json.loads(answer.body[5:-1]).items()}
        assert "accept" not in first_seen
        client.close()

    asyncio.run(run())


def test_failure_timeout_and_unreachable(servers: dict[str, ModelProcess]) -> None:
    async def run() -> None:
        client = ModelClient()
        with pytest.raises(ModelFailure) as failed:
            await invoke(client, _instance(servers), ("upper", "fail"), Request(b"x"))
        assert (failed.value.container, failed.value.status, failed.value.message) == ("fail", 503, "failure from fail")
        with pytest.raises(ModelFailure) as slow:
            await invoke(client, _instance(servers), ("slow",), Request(b"x"), timeout=0.3)
        assert slow.value.timed_out and slow.value.status == 0
        gone = InstanceRoute("i-2", {"c": "http://127.0.0.1:9"})
        with pytest.raises(ModelFailure) as unreachable:
            await invoke(client, gone, ("c",), Request(b"x"))
        assert unreachable.value.status == 0 and not unreachable.value.timed_out
        client.close()

    asyncio.run(run())


def test_connections_are_reused_and_concurrent_calls_get_their_own(servers: dict[str, ModelProcess]) -> None:
    async def run() -> None:
        client = ModelClient()
        url = servers["echo"].url
        for i in range(5):
            reply = await client.post(url, "/invocations", str(i).encode(), {}, 5)
            assert reply.body == f"echo({i})".encode()
        assert len(client._idle[url]) == 1  # one connection served the five calls in turn
        replies = await asyncio.gather(*(client.post(url, "/invocations", str(i).encode(), {}, 5) for i in range(8)))
        assert [r.body for r in replies] == [f"echo({i})".encode() for i in range(8)]
        assert 1 < len(client._idle[url]) <= 8
        client.close()

    asyncio.run(run())


def test_a_restarted_model_server_is_reached_again(tmp_path: Path) -> None:
    """A pooled connection the model server closed (it restarted) is replaced, not reported."""
    async def run() -> None:
        client = ModelClient()
        server = start_test_model(tmp_path, "first")
        port = int(server.url.rsplit(":", 1)[1])
        try:
            assert (await client.post(server.url, "/invocations", b"x", {}, 5)).body == b"first(x)"
        finally:
            server.stop()
        with pytest.raises(ContainerUnreachable):  # nobody listens: refused, not hanging
            await client.post(server.url, "/invocations", b"x", {}, 5)
        again = start_test_model(tmp_path, "again", port=port)
        try:
            assert (await client.post(again.url, "/invocations", b"y", {}, 5)).body == b"again(y)"
            await client.post(again.url, "/invocations", b"y", {}, 5)
            again.stop()
            again = start_test_model(tmp_path, "third", port=port)
            # the idle connection to the stopped server is dead: the call goes on a fresh one
            assert (await client.post(again.url, "/invocations", b"z", {}, 5)).body == b"third(z)"
        finally:
            again.stop()
        client.close()

    asyncio.run(run())
