"""Transport-neutral request and response objects passed between the ASGI app and the protocol layer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import parse_qsl, unquote

T = TypeVar("T")


class cached_property(Generic[T]):  # noqa: N801 - named as the functools one it replaces
    """functools.cached_property without its lock: Python 3.11's takes one lock shared by every
    instance on each first read (~1 us, several times a request). Computing a value twice in a
    race is harmless here: each is a pure function of the request's fields."""

    def __init__(self, func: Callable[[Any], T]) -> None:
        self.func = func
        self.name = func.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> T:
        if instance is None:
            return self  # type: ignore[return-value]
        value = instance.__dict__[self.name] = self.func(instance)  # shadows this descriptor from now on
        return value


class BodyStream(Protocol):
    """A request body read as it arrives (S3 uploads): ``pieces`` blocks, so only worker threads call it."""

    content_length: int | None

    def pieces(self) -> Iterator[bytes]: ...


@dataclass
class HttpRequest:
    method: str
    raw_path: str  # percent-encoded, exactly as received (needed for SigV4)
    query_string: str  # raw, without the leading '?'
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ','
    body: bytes = b""
    client_ip: str = "127.0.0.1"
    scheme: str = "http"
    vpce_id: str | None = None  # set when the request arrived through a named VPC endpoint listener
    route_path: str | None = None  # path used for operation matching when it differs from raw_path (S3 virtual hosts)
    # The body still unread (then ``body`` is empty): the pipeline either reads it into ``body`` or,
    # for an S3 object upload, leaves it to the handler to stream to disk.
    stream: BodyStream | None = None
    # When the request came (perf_counter): what a service measures its own overhead from.
    received_at: float = field(default_factory=perf_counter)

    @cached_property
    def path(self) -> str:
        return unquote(self.raw_path)

    @cached_property
    def query_pairs(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query_string, keep_blank_values=True)

    @cached_property
    def query(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k, v in self.query_pairs:
            out.setdefault(k, []).append(v)
        return out

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def host(self) -> str:
        return self.headers.get("host", "")


Body = bytes | Iterator[bytes] | AsyncIterator[bytes]


@dataclass
class HttpResponse:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Body = b""
