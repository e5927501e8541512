"""A provider's handler for an operation, and whether it runs in a worker thread, are found once."""

from __future__ import annotations

from typing import Any

from stratum.server.context import Provider, blocking


class _Example(Provider):
    service = "example"

    def __init__(self) -> None:  # no app needed; and dispatch must not rely on Provider.__init__
        pass

    def describe_thing(self, ctx: Any, params: dict[str, Any]) -> dict[str, Any]:
        return {"Thing": params["Name"]}

    @blocking
    def get_object_data(self, ctx: Any, params: dict[str, Any]) -> bytes:
        return b"data"


def test_dispatch_finds_handlers_and_the_blocking_mark_once() -> None:
    provider = _Example()
    handler, is_blocking = provider.dispatch("DescribeThing")
    assert handler is not None and not is_blocking
    assert handler(None, {"Name": "n"}) == {"Thing": "n"}
    handler, is_blocking = provider.dispatch("GetObjectData")
    assert handler is not None and is_blocking and handler(None, {}) == b"data"
    assert provider.dispatch("NoSuchOperation") == (None, False)
    assert provider.dispatch("DescribeThing") is provider.dispatch("DescribeThing")
    assert _Example().dispatch("DescribeThing")[0].__self__ is not provider  # type: ignore[union-attr]
