"""JSON on the hot paths (stored JSON columns, JSON protocol requests and responses): orjson, with
the standard library for what orjson does not do the same way.

Writing falls back for the values orjson refuses (integers beyond 64 bits, types it does not
know). The output is compact JSON; NaN and infinities become null (the standard library would
write NaN, which is not JSON and which PostgreSQL's json type rejects).

Reading gives exactly what json.loads gives: orjson reads integers beyond 64 bits as floats, so a
text with a run of 19 or more digits is read by the standard library, and so is any text orjson
rejects (NaN, lone surrogates, UTF-16, a byte-order mark): json.loads then accepts it or raises
its own error.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError:
        return _stdlib_dumps(value).encode()


def dumps(value: Any) -> str:
    # Not dumps_bytes(value).decode(): one call fewer, for every JSON column value written.
    try:
        return orjson.dumps(value, option=_OPTIONS).decode()
    except TypeError:
        return _stdlib_dumps(value)


def _stdlib_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_LONG_NUMBER = re.compile(rb"[0-9]{19}")
_LONG_NUMBER_TEXT = re.compile(r"[0-9]{19}")


def loads(data: bytes | str) -> Any:
    """json.loads(data), faster."""
    long_number = (_LONG_NUMBER_TEXT if isinstance(data, str) else _LONG_NUMBER).search(data)  # type: ignore[arg-type]
    if long_number is None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)
