"""The service models' ``pattern`` constraints, checked in time linear in the value.

Python's ``re`` backtracks, and some model patterns nest repetitions: EventBridge's
``^[ \\t]*[\\x20-\\x7E]+([ \\t]+[\\x20-\\x7E]+)*[ \\t]*$`` took over 3 s for a 60-character header
value ending in a control character, SageMaker's ``[a-z0-9]([-a-z0-9]*[a-z0-9]){0,39}?`` as long
for a 30-character name, and either would have held the event loop for hours for a value within
the model's own length limit. Patterns with a repetition inside a repetition are compiled with
RE2 (google-re2), whose automata run in linear time; the others stay with ``re``, faster on the
short values they check. The few nested patterns RE2 cannot express (look-arounds, counts over
1,000) stay with ``re``.
"""

from __future__ import annotations

import re
from functools import cache
from re import _parser as sre_parse
from typing import Any, Protocol

import re2

_REPEATS = (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT)


class Pattern(Protocol):
    def fullmatch(self, string: str) -> Any: ...


def _has_repeat(items: Any) -> bool:
    for op, av in items:
        if op in _REPEATS:
            return True
        if op is sre_parse.SUBPATTERN and _has_repeat(av[-1]):
            return True
        if op is sre_parse.BRANCH and any(_has_repeat(b) for b in av[1]):
            return True
        if op is sre_parse.ATOMIC_GROUP and _has_repeat(av):
            return True
    return False


def nests_repetitions(items: Any) -> bool:
    """Does a parsed pattern repeat something that itself repeats (the backtracking risk)?"""
    for op, av in items:
        if op in _REPEATS:
            if _has_repeat(av[2]) or nests_repetitions(av[2]):
                return True
        elif op is sre_parse.SUBPATTERN:
            if nests_repetitions(av[-1]):
                return True
        elif op is sre_parse.BRANCH:
            if any(nests_repetitions(b) for b in av[1]):
                return True
    return False


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


class _LinearPattern:
    """One pattern as an RE2 full-match set: a yes/no answer without building a match object
    (about 3 us a value, against 8-10 us for ``re2.compile(...).fullmatch``)."""

    __slots__ = ("_set", "_seen")

    def __init__(self, pattern: str) -> None:
        self._set = re2.Set.FullMatchSet(_RE2_OPTIONS)
        self._set.Add(pattern)
        self._set.Compile()
        # Answers for short values, remembered: the same names come again and again (every
        # InvokeEndpoint checks its EndpointName), and a dict lookup costs a tenth of a match.
        self._seen: dict[str, bool] = {}

    def fullmatch(self, string: str) -> bool | None:
        seen = self._seen
        found = seen.get(string)
        if found is None:
            found = bool(self._set.Match(string))
            if len(string) <= _REMEMBERED_LENGTH:
                if len(seen) >= _REMEMBERED_VALUES:
                    seen.clear()
                seen[string] = found
        return True if found else None


_REMEMBERED_LENGTH = 256
_REMEMBERED_VALUES = 1024


@cache
def compile_pattern(pattern: str) -> Pattern | None:
    """A matcher for a model pattern, or ``None`` when Python cannot read it (Java-only syntax:
    the real clients never send such values through a client-side check, so it is skipped)."""
    try:
        compiled = re.compile(pattern)
    except re.error:
        return None
    if nests_repetitions(sre_parse.parse(pattern)):
        try:
            return _LinearPattern(pattern)
        except re2.error:
            pass
    return compiled
