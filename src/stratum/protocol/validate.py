"""Input validation against botocore shapes, reported the way AWS's front ends word it.

Example: "1 validation error detected: Value 'a b' at 'pipelineName' failed to satisfy constraint:
Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}".
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from botocore.model import Shape

from .errors import ServiceError
from .patterns import compile_pattern

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "boolean": (bool,),
    "blob": (bytes, bytearray),
    "timestamp": (datetime,),
    "structure": (dict,),
    "map": (dict,),
    "list": (list,),
}


_BITS = {"integer": 31, "long": 63}  # signed 32- and 64-bit ranges

_pattern = compile_pattern  # linear time where the pattern nests repetitions (see patterns.py)


@cache  # member names only: the models' few thousand
def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


_SHOWN_ITEMS = 100  # items of a list or map value a message echoes


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bytes | bytearray):
        return "java.nio.HeapByteBuffer"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict) and len(value) > _SHOWN_ITEMS:
        # An 8,000-item list echoed whole was a 3 MB message, built while holding the GIL.
        items = list(value.items() if isinstance(value, dict) else value)[:_SHOWN_ITEMS]
        shown = str(dict(items) if isinstance(value, dict) else items)
        return f"{shown[:-1]}, ... ({len(value) - _SHOWN_ITEMS} more){shown[-1]}"
    text = str(value)
    return f"'{text}'".replace("\x00", "\\u0000") if isinstance(value, str) else text


def validate_input(shape: Shape | None, params: dict[str, Any], code: str = "ValidationException") -> None:
    if shape is None:
        return
    errors: list[str] = []
    _check_structure(shape, params, "", errors)
    if errors:
        n = len(errors)
        head = f"{n} validation error{'s' if n > 1 else ''} detected: "
        raise ServiceError(code, head + "; ".join(errors[:10]), 400)


def _check(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    kind = shape.type_name
    expected = _TYPES.get(kind)
    if expected is not None:
        if not isinstance(value, expected) or (kind in ("integer", "long", "float", "double") and isinstance(value, bool)):
            raise ServiceError("SerializationException",
                               f"Value {_show(value)} at '{path}' is not a valid {kind}", 400)
    meta = shape.metadata
    if kind == "structure":
        _check_structure(shape, value, path, errors)
        return
    if kind == "list":
        _check_length(meta, len(value), value, path, errors)
        for i, item in enumerate(value, 1):
            if item is None:
                continue
            _check(shape.member, item, f"{path}.{i}.member" if path else f"{i}.member", errors)
        return
    if kind == "map":
        _check_length(meta, len(value), value, path, errors)
        for k, v in value.items():
            _check(shape.key, k, f"{path}.key", errors)
            if v is not None:
                _check(shape.value, v, f"{path}.{k}", errors)
        return
    if kind == "string":
        if "\x00" in value:
            # No AWS name, ARN, key or text field takes a NUL, and PostgreSQL cannot store one: it is
            # refused here so that every backend answers alike, before anything is looked up.
            errors.append(f"Value {_show(value)} at '{path}' failed to satisfy constraint: "
                          "Member must not contain the null character")
            return
        enum = meta.get("enum")
        if enum and value not in enum:
            errors.append(f"Value {_show(value)} at '{path}' failed to satisfy constraint: "
                          f"Member must satisfy enum value set: [{', '.join(enum)}]")
            return
        _check_length(meta, len(value), value, path, errors)
        pattern = meta.get("pattern")
        if pattern:
            compiled = _pattern(pattern)
            if compiled is not None and compiled.fullmatch(value) is None:
                errors.append(f"Value {_show(value)} at '{path}' failed to satisfy constraint: "
                              f"Member must satisfy regular expression pattern: {pattern}")
        return
    if kind in ("integer", "long", "float", "double"):
        bits = _BITS.get(kind)
        if bits is not None and not -(1 << bits) <= value < (1 << bits):
            # AWS reads these into Java ints and longs; stored, they would overflow the database's.
            raise ServiceError("SerializationException",
                               f"Value {_show(value)} at '{path}' is not a valid {kind}", 400)
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and value < lo:
            errors.append(f"Value {_show(value)} at '{path}' failed to satisfy constraint: "
                          f"Member must have value greater than or equal to {lo}")
        elif hi is not None and value > hi:
            errors.append(f"Value {_show(value)} at '{path}' failed to satisfy constraint: "
                          f"Member must have value less than or equal to {hi}")
        return
    if kind == "blob":
        _check_length(meta, len(value), value, path, errors)


def _check_length(meta: dict[str, Any], n: int, value: Any, path: str, errors: list[str]) -> None:
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and n < lo:
        errors.append(f"Value {_show(value)} at '{path}' failed to satisfy constraint: "
                      f"Member must have length greater than or equal to {lo}")
    elif hi is not None and n > hi:
        errors.append(f"Value {_show(value)} at '{path}' failed to satisfy constraint: "
                      f"Member must have length less than or equal to {hi}")


def _check_structure(shape: Shape, value: dict[str, Any], path: str, errors: list[str]) -> None:
    members = shape.members
    for name in shape.required_members:
        if value.get(name) is None:
            sub = f"{path}.{_lower_camel(name)}" if path else _lower_camel(name)
            errors.append(f"Value null at '{sub}' failed to satisfy constraint: Member must not be null")
    for name, item in value.items():
        member = members.get(name)
        if member is None or item is None:
            continue
        sub = f"{path}.{_lower_camel(name)}" if path else _lower_camel(name)
        _check(member, item, sub, errors)
