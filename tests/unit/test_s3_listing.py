"""The S3 listing engine: prefixes, delimiters, common-prefix roll-up and pagination."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from stratum.protocol.errors import ServiceError
from stratum.services.s3.listing import (
    Cursor,
    decode_token,
    encode_token,
    encoder,
    marker_cursor,
    paginate,
    successor,
)
from stratum.services.s3.ranges import parse_range


@dataclass(frozen=True)
class Row:
    key: str


KEYS = sorted(["a", "b/1", "b/2", "b/3/x", "c", "d/e/f", "d/g", "é", "z/"], key=str.encode)


def _fetch(keys: list[str]):  # type: ignore[no-untyped-def]
    calls: list[Cursor] = []

    def fetch(cursor: Cursor, limit: int) -> list[Row]:
        calls.append(cursor)
        out = [Row(k) for k in keys
               if (k >= cursor.key if cursor.inclusive else k > cursor.key)]
        return out[:limit]

    fetch.calls = calls  # type: ignore[attr-defined]
    return fetch


def _walk(prefix: str, delimiter: str | None, page_size: int) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = paginate(_fetch(KEYS), prefix=prefix, delimiter=delimiter, cursor=cursor, max_items=page_size,
                        row_cursor=lambda r: Cursor(r.key))
        pages.append([v.key if kind == "row" else v + "(P)" for kind, v in page.items])
        if not page.truncated:
            return pages
        cursor = decode_token(encode_token(page.next_cursor))  # type: ignore[arg-type]


def test_flat_listing_pages() -> None:
    assert _walk("", None, 1000) == [KEYS]
    assert _walk("", None, 4) == [KEYS[:4], KEYS[4:8], KEYS[8:]]


def test_delimiter_rolls_up_common_prefixes() -> None:
    assert _walk("", "/", 1000) == [["a", "b/(P)", "c", "d/(P)", "z/(P)", "é"]]
    assert _walk("", "/", 2) == [["a", "b/(P)"], ["c", "d/(P)"], ["z/(P)", "é"]]
    assert _walk("b/", "/", 1000) == [["b/1", "b/2", "b/3/(P)"]]
    assert _walk("d/", None, 1000) == [["d/e/f", "d/g"]]


def test_common_prefix_is_skipped_with_one_fetch() -> None:
    keys = ["a"] + [f"big/{i:05d}" for i in range(5000)] + ["c"]
    fetch = _fetch(keys)
    page = paginate(fetch, prefix="", delimiter="/", cursor=None, max_items=1000, row_cursor=lambda r: Cursor(r.key))
    assert [v if kind == "prefix" else v.key for kind, v in page.items] == ["a", "big/", "c"]
    assert len(fetch.calls) <= 3  # type: ignore[attr-defined]


def test_zero_max_keys_and_markers() -> None:
    page = paginate(_fetch(KEYS), prefix="", delimiter=None, cursor=None, max_items=0,
                    row_cursor=lambda r: Cursor(r.key))
    assert page.items == [] and not page.truncated
    assert marker_cursor("b/", "", "/") == Cursor("b0", inclusive=True)  # skip everything under b/
    assert marker_cursor("b/1", "", "/") == Cursor("b/1")
    assert successor("ab") == "ac" and successor("") is None and successor("a\U0010ffff") == "b"


def test_tokens_and_encoding() -> None:
    cursor = Cursor("key with ü", inclusive=True, below_id=7)
    assert decode_token(encode_token(cursor)) == cursor
    with pytest.raises(ServiceError) as exc:
        decode_token("not a token")
    assert exc.value.code == "InvalidArgument"
    assert encoder("url")("a b+c/ü") == "a%20b%2Bc/%C3%BC"
    assert encoder(None)("a b") == "a b"


@pytest.mark.parametrize("header,size,expected", [
    ("bytes=0-9", 100, (0, 9)), ("bytes=90-", 100, (90, 99)), ("bytes=-10", 100, (90, 99)),
    ("bytes=-500", 100, (0, 99)), ("bytes=50-1000", 100, (50, 99)), ("bytes=5-1", 100, None),
    ("bytes=1-2,4-5", 100, None), (None, 100, None),
])
def test_parse_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize("header,size", [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=0-", 0)])
def test_unsatisfiable_range(header: str, size: int) -> None:
    with pytest.raises(ServiceError) as exc:
        parse_range(header, size)
    assert (exc.value.code, exc.value.status) == ("InvalidRange", 416)
