"""Wildcard matching for actions, resources and ARN-valued conditions.

Everything is compiled to regular expressions once, at policy parse time; templates that
contain policy variables are compiled per distinct substituted value and cached.

The expressions never backtrack into an earlier star. A pattern is split at its ``*`` into
literal chunks (``?`` is any one character inside a chunk); each chunk between two stars is
matched at its leftmost occurrence inside an atomic group, ``(?>.*?chunk)``, and only the last
star (before the final chunk, anchored by ``fullmatch``) may backtrack. The leftmost occurrence
is always a safe choice, because the next star can absorb any text it skipped, so a match costs
O(len(value) * len(pattern)) at worst, as in CPython's ``fnmatch``. A plain ``.*`` per star
backtracked through every split of the value: five stars against a 140-character S3 key took
18 s of CPU on the event loop.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Final

from stratum.policy.context import EvalContext
from stratum.policy.variables import Resolved, Template, parse_template, resolve

# An ARN has five ":" before its resource part; wildcards in the first five segments stay
# inside their segment, wildcards in the resource part may span ":" and "/".
_ARN_PREFIX_COLONS: Final = 5


def glob_regex(pieces: Iterable[tuple[str, bool]], *, arn: bool) -> str:
    """Regex source (for ``fullmatch``) for glob pieces ``(text, wildcards_active)``.

    With ``arn=True`` and a pattern that has all six ARN segments, ``*``/``?`` in the first
    five segments do not cross ``:``, as AWS checks those segments separately.
    """
    pieces = tuple(pieces)
    segmented = arn and sum(text.count(":") for text, _ in pieces) >= _ARN_PREFIX_COLONS
    colons = 0
    # Tokens: a star (its character class) or a chunk (the regex of the literal text between stars).
    chunks: list[str] = []
    stars: list[str] = []
    current: list[str] = []
    for text, wild in pieces:
        for ch in text:
            if ch == ":":
                colons += 1
                current.append(":")
            elif wild and ch in "*?":
                confined = segmented and colons < _ARN_PREFIX_COLONS
                if ch == "?":
                    current.append("[^:]" if confined else ".")
                elif current or not stars:  # a star right after a star adds nothing
                    chunks.append("".join(current))
                    stars.append("[^:]" if confined else ".")
                    current = []
            else:
                current.append(re.escape(ch))
    chunks.append("".join(current))
    # chunks[0] is anchored at the start, chunks[-1] at the end (fullmatch); every chunk between
    # two stars is committed to at its leftmost occurrence.
    out = [chunks[0]]
    for i, star in enumerate(stars, start=1):
        if i < len(stars):
            out.append(f"(?>{star}*?{chunks[i]})")
        else:
            out.append(f"{star}*{chunks[i]}")
    return "".join(out)


def has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


@lru_cache(maxsize=8192)
def compile_alternation(sources: tuple[str, ...], ignore_case: bool = False) -> re.Pattern[str]:
    """One compiled regex that full-matches any of ``sources``."""
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("|".join(f"(?:{s})" for s in sources), flags)


@lru_cache(maxsize=8192)
def _compiled_resolved(resolved: Resolved, arn: bool) -> re.Pattern[str]:
    return re.compile(glob_regex(resolved, arn=arn), re.DOTALL)


def match_resolved(resolved: Resolved, value: str, *, arn: bool) -> bool:
    """Full-match ``value`` against a substituted template (cached per distinct result)."""
    return _compiled_resolved(resolved, arn).fullmatch(value) is not None


class ActionMatcher:
    """Case-insensitive matcher for ``Action``/``NotAction`` lists (input must be lower-case)."""

    __slots__ = ("match_all", "exact", "regex", "patterns")

    def __init__(self, patterns: Sequence[str]) -> None:
        lowered = [p.lower() for p in patterns]
        self.patterns = tuple(patterns)
        self.match_all = "*" in lowered
        self.exact = frozenset(p for p in lowered if not has_wildcard(p))
        wild = tuple(glob_regex([(p, True)], arn=False) for p in lowered if has_wildcard(p))
        self.regex = compile_alternation(wild) if wild else None

    def matches(self, action: str) -> bool:
        if self.match_all or action in self.exact:
            return True
        return self.regex is not None and self.regex.fullmatch(action) is not None


class ResourceMatcher:
    """Case-sensitive ARN glob matcher for ``Resource``/``NotResource`` lists."""

    __slots__ = ("match_all", "exact", "regex", "templates", "patterns")

    def __init__(self, patterns: Sequence[str], *, variables: bool) -> None:
        self.patterns = tuple(patterns)
        self.match_all = "*" in self.patterns
        exact: set[str] = set()
        wild: list[str] = []
        templates: list[Template] = []
        for pattern in self.patterns:
            template = parse_template(pattern) if variables else None
            if template is not None:
                templates.append(template)
            elif has_wildcard(pattern):
                wild.append(glob_regex([(pattern, True)], arn=True))
            else:
                exact.add(pattern)
        self.exact = frozenset(exact)
        self.regex = compile_alternation(tuple(wild)) if wild else None
        self.templates = tuple(templates)

    def matches(self, resource: str, ctx: EvalContext) -> bool:
        if self.match_all or resource in self.exact:
            return True
        if self.regex is not None and self.regex.fullmatch(resource) is not None:
            return True
        for template in self.templates:
            resolved = resolve(template, ctx)
            # An unresolvable variable makes that pattern match nothing.
            if resolved is not None and match_resolved(resolved, resource, arn=True):
                return True
        return False
