"""The listing engine shared by ListObjects, ListObjectsV2, ListObjectVersions and ListMultipartUploads.

Rows come from a ``fetch(cursor, limit)`` callback in key order; the engine applies Prefix/Delimiter
roll-up into CommonPrefixes, MaxKeys and truncation. When a common prefix is found the next fetch
jumps past every key under it, so a "directory" with a million keys costs one query, not a scan.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .errors import invalid_argument

MAX_KEYS = 1000


@dataclass(frozen=True)
class Cursor:
    """A position in key order: rows strictly after ``key`` (or from ``key`` when ``inclusive``).

    ``below_id`` (versions listing) also admits the versions of ``key`` itself that are older than the
    version with that row id.
    """

    key: str
    inclusive: bool = False
    below_id: int | None = None


@dataclass
class Page:
    items: list[tuple[str, Any]] = field(default_factory=list)  # ("row", row) | ("prefix", str), in order
    truncated: bool = False
    next_cursor: Cursor | None = None

    @property
    def rows(self) -> list[Any]:
        return [v for kind, v in self.items if kind == "row"]

    @property
    def prefixes(self) -> list[str]:
        return [v for kind, v in self.items if kind == "prefix"]


Fetch = Callable[[Cursor, int], Sequence[Any]]


def successor(text: str) -> str | None:
    """The smallest string greater than every string starting with ``text`` (None: no such bound)."""
    while text:
        code = ord(text[-1]) + 1
        if code == 0xD800:  # skip the surrogate block: not encodable as UTF-8
            code = 0xE000
        if code <= 0x10FFFF:
            return text[:-1] + chr(code)
        text = text[:-1]
    return None


def marker_cursor(marker: str, prefix: str, delimiter: str | None) -> Cursor:
    """Cursor for a client's Marker/StartAfter/KeyMarker. A marker that is itself a common prefix
    (what we hand back as NextMarker) resumes after everything rolled up under it."""
    if delimiter and marker.startswith(prefix):
        i = marker.find(delimiter, len(prefix))
        if i >= 0 and i + len(delimiter) == len(marker):
            nxt = successor(marker)
            if nxt is not None:
                return Cursor(nxt, inclusive=True)
    return Cursor(marker)


def paginate(fetch: Fetch, *, prefix: str, delimiter: str | None, cursor: Cursor | None, max_items: int,
             row_cursor: Callable[[Any], Cursor]) -> Page:
    page = Page()
    if max_items <= 0:
        return page
    start = Cursor(prefix, inclusive=True)
    cur = cursor if cursor is not None and cursor.key >= prefix else start
    limit = max_items + 1  # one extra tells whether the listing is truncated
    batch = min(limit, MAX_KEYS)
    items = page.items
    while len(items) < limit:
        rows = fetch(cur, batch)
        jumped = False
        for row in rows:
            key: str = row.key
            cur = row_cursor(row)
            if not key.startswith(prefix):
                continue
            if delimiter:
                i = key.find(delimiter, len(prefix))
                if i >= 0:
                    common = key[: i + len(delimiter)]
                    items.append(("prefix", common))
                    nxt = successor(common)
                    if nxt is None:
                        rows = []
                        break
                    cur = Cursor(nxt, inclusive=True)
                    jumped = True
                    break
            items.append(("row", row))
            if len(items) >= limit:
                break
        if not jumped and len(rows) < batch:
            break
    if len(items) > max_items:
        del items[max_items:]
        page.truncated = True
        kind, last = items[-1]
        if kind == "row":
            page.next_cursor = row_cursor(last)
        else:
            nxt = successor(last)
            page.next_cursor = Cursor(nxt, inclusive=True) if nxt is not None else None
    return page


# ----------------------------------------------------------------------------------- tokens
def encode_token(cursor: Cursor) -> str:
    data = {"k": cursor.key}
    if cursor.inclusive:
        data["i"] = 1
    if cursor.below_id is not None:
        data["v"] = cursor.below_id
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def decode_token(token: str) -> Cursor:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        key = data["k"]
        if not isinstance(key, str):
            raise ValueError(key)
        below = data.get("v")
        return Cursor(key, bool(data.get("i")), int(below) if below is not None else None)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise invalid_argument("The continuation token provided is incorrect", "continuation-token", token) from None


# ----------------------------------------------------------------------------------- helpers
def max_keys(value: int | None, name: str = "max-keys") -> int:
    if value is None:
        return MAX_KEYS
    if value < 0:
        raise invalid_argument("Argument maxKeys must be an integer between 0 and 2147483647", name, str(value))
    return min(value, MAX_KEYS)


def encoder(encoding_type: str | None) -> Callable[[str], str]:
    """EncodingType=url: percent-encode names in the response (botocore sets it and decodes)."""
    if encoding_type == "url":
        return lambda s: quote(s, safe="/")
    if encoding_type:
        raise invalid_argument("Invalid Encoding Method specified in Request", "encoding-type", encoding_type)
    return lambda s: s
