"""Wildcard matching for actions, resources and ``StringLike``/``Arn*`` conditions.

Patterns are compiled once, at policy parse time, into small :class:`Glob` objects (no regular
expressions: compiling one costs about 0.3 ms per pattern, so a 10 KB wildcard-heavy policy took
over 100 ms to parse); templates that contain policy variables are compiled per distinct
substituted value and cached.

Matching never backtracks more than once per character. A pattern is split at its ``*`` into
literal chunks (``?`` is any one character inside a chunk); the first chunk must match at the
start, the last at the end, and each chunk in between is taken at its leftmost occurrence after
the previous one. The leftmost occurrence is always a safe choice, because the next star can
absorb any text it skipped, so a match costs O(len(value) * len(pattern)) at worst, and usually a
few ``str.startswith``/``str.find`` calls. (Regular expressions with ``.*`` per star backtracked
through every split of the value: five stars against a 140-character S3 key took 18 s.)

The common shapes take shortcuts: exact values are a set lookup, ``prefix*`` patterns one
``str.startswith`` over all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Final

from stratum.policy.context import EvalContext
from stratum.policy.variables import Resolved, Template, parse_template, resolve

# An ARN has five ":" before its resource part; wildcards in the first five segments stay
# inside their segment, wildcards in the resource part may span ":" and "/".
_ARN_PREFIX_COLONS: Final = 5

# One literal chunk between stars: its text and the offsets of its "?" wildcards (empty when none).
_Chunk = tuple[str, tuple[int, ...]]


def has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


def _chunk_at(value: str, pos: int, chunk: _Chunk) -> bool:
    """Does ``chunk`` match ``value`` at offset ``pos`` (the caller checks it fits)?"""
    text, wild = chunk
    if not wild:
        return value.startswith(text, pos)
    start = 0
    for offset in wild:  # the literal runs between the "?" positions
        if not value.startswith(text[start:offset], pos + start):
            return False
        start = offset + 1
    return value.startswith(text[start:], pos + start)


def _find_chunk(value: str, chunk: _Chunk, start: int, end: int) -> int:
    """Leftmost offset >= ``start`` where ``chunk`` matches and ends by ``end``; -1 if none."""
    text, wild = chunk
    if not wild:
        return value.find(text, start, end)
    for pos in range(start, end - len(text) + 1):
        if _chunk_at(value, pos, chunk):
            return pos
    return -1


class Glob:
    """A compiled wildcard pattern: ``*`` any run of characters, ``?`` any one character."""

    __slots__ = ("head", "middle", "tail", "starred", "min_length", "prefix", "plain")

    def __init__(self, pieces: Iterable[tuple[str, bool]]) -> None:
        chunks: list[_Chunk] = []
        text: list[str] = []
        wild: list[int] = []
        starred = False
        for piece, active in pieces:
            for ch in piece:
                if active and ch == "*":
                    chunks.append(("".join(text), tuple(wild)))
                    text, wild = [], []
                    starred = True
                else:
                    if active and ch == "?":
                        wild.append(len(text))
                    text.append(ch)
        chunks.append(("".join(text), tuple(wild)))
        self.starred = starred
        self.head = chunks[0]
        self.tail = chunks[-1]
        # Consecutive stars leave empty chunks, which match anywhere.
        self.middle = tuple(c for c in chunks[1:-1] if c[0])
        self.min_length = sum(len(c[0]) for c in chunks)
        # "literal*": the whole match is one startswith.
        plain_prefix = starred and not self.head[1] and not self.middle and not self.tail[0]
        self.prefix: str | None = self.head[0] if plain_prefix else None
        # No "?" anywhere: head and tail are plain startswith / endswith.
        self.plain = not self.head[1] and not self.tail[1] and not any(c[1] for c in self.middle)

    def matches(self, value: str) -> bool:
        head, tail = self.head, self.tail
        if self.plain and self.starred:
            if (len(value) < self.min_length or not value.startswith(head[0])
                    or not value.endswith(tail[0])):
                return False
            pos, end = len(head[0]), len(value) - len(tail[0])
            for text, _ in self.middle:
                found = value.find(text, pos, end)
                if found < 0:
                    return False
                pos = found + len(text)
            return True
        if not self.starred:
            return len(value) == len(head[0]) and _chunk_at(value, 0, head)
        if len(value) < self.min_length:
            return False
        end = len(value) - len(tail[0])
        if not _chunk_at(value, 0, head) or not _chunk_at(value, end, tail):
            return False
        pos = len(head[0])
        for chunk in self.middle:
            found = _find_chunk(value, chunk, pos, end)
            if found < 0:
                return False
            pos = found + len(chunk[0])
        return True


class ArnGlob:
    """An ARN pattern with wildcards in its first five segments: those stay inside their segment.

    Pattern and value are split at their first five ``:``; each segment matches on its own, the
    sixth (the resource part, which may hold more ``:``) as a whole.
    """

    __slots__ = ("segments", "literal_head", "prefix")

    def __init__(self, segments: Sequence[Glob], literal_head: str) -> None:
        # Per segment: None for a lone "*" (a segment holds no ":", so it matches anything), the
        # text for a literal one, else its Glob.
        self.segments: tuple[Glob | str | None, ...] = tuple(
            None if g.prefix == "" else g.head[0] if not g.starred and not g.head[1] else g for g in segments)
        self.literal_head = literal_head  # the text before the first wildcard: a quick reject
        self.prefix: str | None = None

    def matches(self, value: str) -> bool:
        if not value.startswith(self.literal_head):
            return False
        parts = value.split(":", _ARN_PREFIX_COLONS)
        if len(parts) != len(self.segments):
            return False
        for segment, part in zip(self.segments, parts, strict=True):
            if segment is None:
                continue
            if isinstance(segment, str):
                if segment != part:
                    return False
            elif not segment.matches(part):
                return False
        return True


Matcher = Glob | ArnGlob


def compile_glob(pieces: Iterable[tuple[str, bool]], *, arn: bool) -> Matcher:
    """Compile glob pieces ``(text, wildcards_active)``.

    With ``arn=True`` and a pattern that has all six ARN segments, ``*``/``?`` in the first
    five segments do not cross ``:``, as AWS checks those segments separately. Colons count
    wherever they come from (policy text or a substituted variable).
    """
    pieces = tuple(pieces)
    if not arn or sum(text.count(":") for text, _ in pieces) < _ARN_PREFIX_COLONS:
        return Glob(pieces)
    segments: list[list[tuple[str, bool]]] = [[]]
    prefix_wild = False
    for text, active in pieces:
        rest = text
        while len(segments) <= _ARN_PREFIX_COLONS and ":" in rest:
            before, _, rest = rest.partition(":")
            segments[-1].append((before, active))
            prefix_wild = prefix_wild or (active and has_wildcard(before))
            segments.append([])
        if len(segments) <= _ARN_PREFIX_COLONS:
            prefix_wild = prefix_wild or (active and has_wildcard(rest))
        segments[-1].append((rest, active))
    if not prefix_wild:
        # A literal prefix pins the first five colons already: one plain glob is equivalent.
        return Glob(pieces)
    return ArnGlob([Glob(segment) for segment in segments], _literal_head(pieces))


def _literal_head(pieces: Iterable[tuple[str, bool]]) -> str:
    """The text before the first wildcard, which every match starts with."""
    head: list[str] = []
    for text, active in pieces:
        cut = min((i for i in (text.find("*"), text.find("?")) if i >= 0), default=-1) if active else -1
        if cut >= 0:
            head.append(text[:cut])
            break
        head.append(text)
    return "".join(head)


class GlobSet:
    """Any-of matcher for several compiled patterns: the ``prefix*`` ones in one startswith."""

    __slots__ = ("prefixes", "others")

    def __init__(self, globs: Iterable[Matcher]) -> None:
        prefixes: list[str] = []
        others: list[Matcher] = []
        for glob in globs:
            if glob.prefix is not None:
                prefixes.append(glob.prefix)
            else:
                others.append(glob)
        self.prefixes = tuple(prefixes)
        self.others = tuple(others)

    def __bool__(self) -> bool:
        return bool(self.prefixes or self.others)

    def matches(self, value: str) -> bool:
        if self.prefixes and value.startswith(self.prefixes):
            return True
        for glob in self.others:
            if glob.matches(value):
                return True
        return False


@lru_cache(maxsize=8192)
def _compiled_resolved(resolved: Resolved, arn: bool) -> Matcher:
    return compile_glob(resolved, arn=arn)


def match_resolved(resolved: Resolved, value: str, *, arn: bool) -> bool:
    """Match ``value`` against a substituted template (compiled once per distinct result)."""
    return _compiled_resolved(resolved, arn).matches(value)


class ActionMatcher:
    """Case-insensitive matcher for ``Action``/``NotAction`` lists (input must be lower-case).

    Wildcard patterns whose service prefix is literal (``s3:get*``) are grouped by service, so an
    action is only tried against its own service's patterns.
    """

    __slots__ = ("match_all", "exact", "by_service", "other", "patterns")

    def __init__(self, patterns: Sequence[str]) -> None:
        lowered = [p.lower() for p in patterns]
        self.patterns = tuple(patterns)
        self.match_all = "*" in lowered
        self.exact = frozenset(p for p in lowered if not has_wildcard(p))
        by_service: dict[str, list[Glob]] = {}
        other: list[Glob] = []
        for pattern in lowered:
            if not has_wildcard(pattern):
                continue
            service, colon, _ = pattern.partition(":")
            glob = Glob([(pattern, True)])
            if colon and not has_wildcard(service):
                by_service.setdefault(service, []).append(glob)
            else:
                other.append(glob)
        self.by_service = {k: GlobSet(v) for k, v in by_service.items()}
        self.other = GlobSet(other) if other else None

    def matches(self, action: str) -> bool:
        if self.match_all or action in self.exact:
            return True
        same = self.by_service.get(action.partition(":")[0])
        if same is not None:
            if same.prefixes and action.startswith(same.prefixes):
                return True
            if same.others and same.matches(action):
                return True
        return self.other is not None and self.other.matches(action)


class ResourceMatcher:
    """Case-sensitive ARN glob matcher for ``Resource``/``NotResource`` lists."""

    __slots__ = ("match_all", "exact", "globs", "templates", "patterns")

    def __init__(self, patterns: Sequence[str], *, variables: bool) -> None:
        self.patterns = tuple(patterns)
        self.match_all = "*" in self.patterns
        exact: set[str] = set()
        globs: list[Matcher] = []
        templates: list[Template] = []
        for pattern in self.patterns:
            template = parse_template(pattern) if variables else None
            if template is not None:
                templates.append(template)
            elif has_wildcard(pattern):
                globs.append(compile_glob([(pattern, True)], arn=True))
            else:
                exact.add(pattern)
        self.exact = frozenset(exact)
        self.globs = GlobSet(globs)
        self.templates = tuple(templates)

    def matches(self, resource: str, ctx: EvalContext) -> bool:
        if self.match_all or resource in self.exact:
            return True
        if self.globs and self.globs.matches(resource):
            return True
        for template in self.templates:
            resolved = resolve(template, ctx)
            # An unresolvable variable makes that pattern match nothing.
            if resolved is not None and match_resolved(resolved, resource, arn=True):
                return True
        return False
