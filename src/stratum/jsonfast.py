"""JSON writing on the hot paths (stored JSON columns, JSON protocol responses): orjson, falling
back to the standard library for the values orjson refuses (integers beyond 64 bits, types it does
not know).

The output is compact JSON; NaN and infinities become null (the standard library would write
NaN, which is not JSON and which PostgreSQL's json type rejects). Reading stays with the standard
library: orjson turns integers beyond 64 bits into floats.
"""

from __future__ import annotations

import json
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

