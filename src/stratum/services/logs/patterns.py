"""CloudWatch Logs filter patterns, compiled to a predicate over a message's bytes.

Supported: the empty pattern (everything); terms, all of which must appear (case-sensitive);
``"quoted phrases"``; ``-term`` exclusions; ``?a ?b`` (any of); and JSON patterns
``{ $.field = value }`` with ``= != < <= > >=``, ``*`` wildcards in string values, ``IS NULL``,
``NOT EXISTS``, ``&&``, ``||`` and parentheses. Space-delimited ``[...]`` patterns are refused
with InvalidParameterException.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable
from typing import Any

Matcher = Callable[[bytes], bool]


class PatternError(ValueError):
    pass


def prefilter(pattern: str | None) -> list[bytes] | None:
    """Substrings one of which every message the pattern matches contains (for a fast scan), or
    None when there are none (everything, exclusions only, JSON)."""
    text = (pattern or "").strip()
    if not text or text.startswith(("{", "[")):
        return None
    required, _, optional = _term_parts(text)
    if required:
        return [max(required, key=len)]
    return optional or None


def compile_pattern(pattern: str | None) -> Matcher:
    text = (pattern or "").strip()
    if not text:
        return lambda message: True
    if text.startswith("{"):
        return _json_pattern(text)
    if text.startswith("["):
        raise PatternError("Space-delimited filter patterns are not supported.")
    return _term_pattern(text)


_TOKEN = re.compile(r'\s*(-?\??"(?:[^"\\]|\\.)*"|\S+)')


def _term_parts(text: str) -> tuple[list[bytes], list[bytes], list[bytes]]:
    required: list[bytes] = []
    excluded: list[bytes] = []
    optional: list[bytes] = []
    for m in _TOKEN.finditer(text):
        token = m.group(1)
        negate = token.startswith("-")
        if negate:
            token = token[1:]
        either = token.startswith("?")
        if either:
            token = token[1:]
        if token.startswith('"') and token.endswith('"') and len(token) >= 2:
            token = token[1:-1].replace('\\"', '"')
        if not token:
            continue
        term = token.encode()
        (excluded if negate else optional if either else required).append(term)
    return required, excluded, optional


def _term_pattern(text: str) -> Matcher:
    required, excluded, optional = _term_parts(text)

    def match(message: bytes) -> bool:
        for t in required:
            if t not in message:
                return False
        for t in excluded:
            if t in message:
                return False
        if optional:
            return any(t in message for t in optional)
        return True
    return match


# ------------------------------------------------------------------------------------- JSON patterns
_JSON_TOKEN = re.compile(r'\s*(&&|\|\||\(|\)|!=|<=|>=|=|<|>|"(?:[^"\\]|\\.)*"|IS\s+NULL|NOT\s+EXISTS'
                         r'|\$[^\s=!<>()&|]*|[^\s=!<>()&|"]+)')
_MISSING = object()


def _lookup(doc: Any, path: str) -> Any:
    current = doc
    for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path[1:]):
        key, index = part
        if key:
            if not isinstance(current, dict) or key not in current:
                return _MISSING
            current = current[key]
        else:
            if not isinstance(current, list) or int(index) >= len(current):
                return _MISSING
            current = current[int(index)]
    return current


def _json_pattern(text: str) -> Matcher:
    if not text.endswith("}"):
        raise PatternError("Invalid JSON filter pattern: missing '}'.")
    tokens = [m.group(1) for m in _JSON_TOKEN.finditer(text[1:-1]) if m.group(1)]
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise PatternError("Invalid JSON filter pattern: unexpected end.")
        pos += 1
        return tokens[pos - 1]

    def comparison() -> Callable[[Any], bool]:
        token = take()
        if token == "(":
            inner = disjunction()
            if take() != ")":
                raise PatternError("Invalid JSON filter pattern: missing ')'.")
            return inner
        if not token.startswith("$"):
            raise PatternError(f"Invalid JSON filter pattern: expected a selector, got {token!r}.")
        path = token
        op = take()
        if re.fullmatch(r"IS\s+NULL", op):
            return lambda doc: _lookup(doc, path) is None
        if re.fullmatch(r"NOT\s+EXISTS", op):
            return lambda doc: _lookup(doc, path) is _MISSING
        if op not in ("=", "!=", "<", "<=", ">", ">="):
            raise PatternError(f"Invalid JSON filter pattern: unknown operator {op!r}.")
        raw = take()
        return _compare(path, op, raw)

    def conjunction() -> Callable[[Any], bool]:
        parts = [comparison()]
        while peek() == "&&":
            take()
            parts.append(comparison())
        return parts[0] if len(parts) == 1 else (lambda doc: all(p(doc) for p in parts))

    def disjunction() -> Callable[[Any], bool]:
        parts = [conjunction()]
        while peek() == "||":
            take()
            parts.append(conjunction())
        return parts[0] if len(parts) == 1 else (lambda doc: any(p(doc) for p in parts))

    predicate = disjunction()
    if pos != len(tokens):
        raise PatternError(f"Invalid JSON filter pattern near {tokens[pos]!r}.")

    def match(message: bytes) -> bool:
        if not message.lstrip().startswith(b"{"):
            return False
        try:
            doc = json.loads(message)
        except ValueError:
            return False
        return bool(predicate(doc))
    return match


def _compare(path: str, op: str, raw: str) -> Callable[[Any], bool]:
    if raw.startswith('"'):
        text = raw[1:-1].replace('\\"', '"')
        number = None
    else:
        text = raw
        try:
            number = float(raw)
        except ValueError:
            number = None
    if op in ("<", "<=", ">", ">="):
        if number is None:
            raise PatternError("Invalid JSON filter pattern: numeric comparison needs a number.")
        compare = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}[op]

        def numeric(doc: Any) -> bool:
            value = _lookup(doc, path)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return False
            return bool(compare(float(value), number))
        return numeric

    def equal(doc: Any) -> bool:
        value = _lookup(doc, path)
        if value is _MISSING:
            return False
        if number is not None and not raw.startswith('"'):
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value) == number
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif value is None:
            value = "null"
        elif isinstance(value, dict | list):
            return False
        return fnmatch.fnmatchcase(str(value), text) if "*" in text else str(value) == text

    if op == "=":
        return equal
    return lambda doc: _lookup(doc, path) is not _MISSING and not equal(doc)
