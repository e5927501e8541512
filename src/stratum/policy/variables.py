"""Policy variables (``${aws:username}``, ``${key, 'default'}``, ``${*}``...).

Only ``Version: 2012-10-17`` policies substitute variables; callers decide that and simply
do not parse templates for 2008 policies, where ``${...}`` is literal text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from stratum.policy.context import MISSING, EvalContext

_VAR_RE: Final = re.compile(r"\$\{([^}]*)\}")
# AWS syntax: key, optionally ", 'default'" where a quote inside the default is doubled.
_VAR_BODY_RE: Final = re.compile(r"^\s*([^\s,']+)\s*(?:,\s*'((?:[^']|'')*)'\s*)?$")
_SPECIAL: Final = {"*": "*", "?": "?", "$": "$"}


@dataclass(frozen=True, slots=True)
class Var:
    """A ``${...}`` reference; ``key`` is ``None`` when the body is malformed (never resolves)."""

    key: str | None
    default: str | None


@dataclass(frozen=True, slots=True)
class Literal:
    """Text that must match verbatim even where wildcards are allowed (``${*}`` -> ``*``)."""

    text: str


# A plain ``str`` part is policy text whose ``*``/``?`` act as wildcards where the operator allows.
Part = str | Var | Literal
Template = tuple[Part, ...]
# Resolved pieces: (text, wildcards_active).
Resolved = tuple[tuple[str, bool], ...]


def parse_template(text: str) -> Template | None:
    """Split ``text`` into parts, or return ``None`` when it contains no variables."""
    if "${" not in text:
        return None
    parts: list[Part] = []
    pos = 0
    for match in _VAR_RE.finditer(text):
        if match.start() > pos:
            parts.append(text[pos : match.start()])
        parts.append(_parse_body(match.group(1)))
        pos = match.end()
    if not parts:
        return None  # "${" without a closing brace is plain text
    if pos < len(text):
        parts.append(text[pos:])
    return tuple(parts)


def _parse_body(body: str) -> Var | Literal:
    if body in _SPECIAL:
        return Literal(_SPECIAL[body])
    match = _VAR_BODY_RE.match(body)
    if match is None:
        return Var(key=None, default=None)
    default = match.group(2)
    return Var(
        key=match.group(1).lower(), default=default.replace("''", "'") if default is not None else None
    )


def scalar_to_str(value: Any) -> str | None:
    """String form AWS uses when comparing a context value as a string; ``None`` for lists."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None


def resolve(template: Template, ctx: EvalContext) -> Resolved | None:
    """Substitute variables; ``None`` when a variable has no value and no default."""
    out: list[tuple[str, bool]] = []
    for part in template:
        if isinstance(part, str):
            out.append((part, True))
        elif isinstance(part, Literal):
            out.append((part.text, False))
        else:
            value = _lookup(part, ctx)
            if value is None:
                return None
            out.append((value, False))
    return tuple(out)


def resolve_text(template: Template, ctx: EvalContext) -> str | None:
    """Substitute variables and join into one string (for exact-match operators)."""
    resolved = resolve(template, ctx)
    if resolved is None:
        return None
    return "".join(text for text, _ in resolved)


def _lookup(var: Var, ctx: EvalContext) -> str | None:
    if var.key is None:
        return None
    raw = ctx.get(var.key)
    # Multi-valued keys cannot be substituted; AWS treats them like a missing key.
    value = None if raw is MISSING or raw is None else scalar_to_str(raw)
    return var.default if value is None else value
