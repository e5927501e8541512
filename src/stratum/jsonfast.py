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
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError:
        text = _stdlib_dumps(value)
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate (an error message echoing a client's text): escaped
        return json.dumps(value, separators=(",", ":")).encode()


def dumps(value: Any) -> str:
    # Not dumps_bytes(value).decode(): one call fewer, for every JSON column value written.
    try:
        return orjson.dumps(value, option=_OPTIONS).decode()
    except TypeError:
        return _stdlib_dumps(value)


def _stdlib_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# Every ASCII digit as b"0", every other byte as b"a": a run of 19 digits is then a plain substring
# search (bytes.translate and find are C loops over the text; a regular expression search tries a
# match at every position, 6x the cost of orjson's whole read for a 5 KB pipeline definition).
_DIGITS_AS_ZEROS = bytes(48 if 48 <= byte <= 57 else 97 for byte in range(256))
_LONG_RUN = b"0" * 19


def loads(data: bytes | str) -> Any:
    """json.loads(data), faster; a text nested too deep for the standard library's recursive
    reader is a ValueError (json.loads raises RecursionError)."""
    try:
        raw = data.encode() if isinstance(data, str) else data
    except UnicodeEncodeError:  # a lone surrogate: orjson would refuse it
        return _stdlib_loads(data)
    if _LONG_RUN not in raw.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return _stdlib_loads(data)


def loads_text(data: bytes | str) -> Any:
    """loads(data) for text received from a client: a string holding a lone surrogate (written
    as an escape such as \\ud800: orjson refuses it, json.loads keeps it) is a ValueError too.
    Such a string has no UTF-8 form, so it could be neither stored nor written back."""
    try:
        raw = data.encode() if isinstance(data, str) else data
    except UnicodeEncodeError:
        raise ValueError("lone surrogate in text") from None
    if _LONG_RUN not in raw.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    # Only texts orjson refused get here: written back as UTF-8, a lone surrogate fails.
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except UnicodeEncodeError:
        raise ValueError("a string holds a lone surrogate (\\ud800-\\udfff), which is not Unicode text") from None
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON value")


def _stdlib_loads(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("nested too deeply") from None
