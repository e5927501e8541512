"""EventBridge event patterns: validation (with EventBridge's messages) and matching.

One compiled form serves rule delivery and TestEventPattern. A pattern is a JSON object whose
leaves are arrays of match values; fields are ANDed, the values of one array ORed. Matching walks
the event with the pattern, so the fields of one object inside an event array are matched
together (``{"a": {"b": [1], "c": [2]}}`` needs one element of ``a`` with both), as EventBridge
does. A leaf field of the event that is an array matches when any of its elements matches.

Match values: strings, numbers (compared as numbers: 300 matches 300.0), true, false, null, and
objects: prefix / suffix (plain or ``{"equals-ignore-case": ...}``), equals-ignore-case,
wildcard, anything-but (a value, a list of strings or of numbers, or prefix / suffix /
equals-ignore-case / wildcard), numeric ranges, exists, cidr and exact; ``$or`` lists
alternatives at any level.

How matching is fast: each pattern is compiled once into per-field checks over the list of leaf
values an event holds at the field's path (exact strings: one frozenset, numeric: bounds compared
in one function, wildcard: one regex, ...). An event is flattened once (``flatten``: path → leaf
values, only along the paths the rules use), and each rule is a few dictionary lookups and checks.
Flattening loses which object of an event array a value came from; when that matters (an array
holding two or more objects where a pattern looks inside them), the pattern is walked over the
event instead (``Node.matches_tree``), which keeps the fields of one object together.
``RuleIndex`` files rules under a required value (exact, prefix, case-folded or a numeric range)
so an event is checked only against the rules it can match.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stratum.protocol.errors import ServiceError

# EventBridge compares numbers with 15 significant digits between these bounds.
NUMERIC_LIMIT = 5.0e9
_ABSENT: tuple[()] = ()
# JSON numbers as events hold them (bool, a subclass of int, is not a number here).
_NUMBER = frozenset({int, float})
Leaf = Callable[[Any], bool]
Path = tuple[str, ...]
# The leaf values an event holds at a path; None when it holds none (absent, an object, []).
Values = list[Any] | None
Check = Callable[[Values], bool]
Flat = dict[Path, list[Any]]
Trie = dict[str, "Trie"]
# A numeric range: bottom, bottom excluded, top, top excluded (None: unbounded).
Bounds = tuple[float | None, bool, float | None, bool]
# What RuleIndex files a rule under: ("=", text), ("^", prefix), ("~", casefolded text), ("#", Bounds).
Key = tuple[str, Any]


class PatternError(ValueError):
    """The pattern is not valid; the message is EventBridge's reason."""


def invalid_pattern(reason: str) -> ServiceError:
    return ServiceError("InvalidEventPatternException", f"Event pattern is not valid. Reason: {reason}", 400)


# ------------------------------------------------------------------------------------ compiled form
@dataclass
class _Field:
    name: str
    nested: Node | None = None          # an object: the event's value at name must match it
    matchers: list[Leaf] = field(default_factory=list)
    strings: set[str] = field(default_factory=set)  # exact string values, looked up at once
    exists: bool = False       # {"exists": true} among the values: any leaf value matches
    absent_ok: bool = False    # {"exists": false}: matches when there is no leaf value
    # When every value has one, the keys RuleIndex may file the rule under (see Key).
    keys: list[Key] | None = None
    check: Check = lambda values: False  # whether the leaf values at the field match; set by _compile_leaf


@dataclass
class Node:
    fields: list[_Field] = field(default_factory=list)
    alternatives: list[list[Node]] = field(default_factory=list)  # each $or: any of its nodes
    trie: Trie = field(default_factory=dict)  # the event paths the pattern reads
    flat_matches: Callable[[Flat], bool] = lambda flat: False  # the pattern over a flattened event

    def matches(self, event: Any) -> bool:
        if event.__class__ is dict:
            flat: Flat = {}
            if flatten(event, self.trie, flat):
                return self.flat_matches(flat)
        return self.matches_tree(event)

    def matches_tree(self, obj: Any) -> bool:
        """The pattern walked over the event: right for any event, slower than flat_matches."""
        get = obj.get if obj.__class__ is dict else None
        for f in self.fields:
            value = get(f.name, _ABSENT) if get is not None else _ABSENT
            if f.nested is not None:
                if value.__class__ is dict:
                    if not f.nested.matches_tree(value):
                        return False
                elif not any(f.nested.matches_tree(o) for o in (_objects(value) or [{}])):
                    # With no object there, only conditions that hold for absent fields can match.
                    return False
            elif not f.check(_leaves(value) or None):
                return False
        return all(any(alt.matches_tree(obj) for alt in options) for options in self.alternatives)


def _flatten(value: Any) -> list[Any]:
    """The items of a value, arrays inside arrays flattened (without recursion: an event's
    arrays may nest as deep as its JSON allows)."""
    if not isinstance(value, list):
        return [value]
    out: list[Any] = []
    stack = [iter(value)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _objects(value: Any) -> list[dict[str, Any]]:
    return [v for v in _flatten(value) if isinstance(v, dict)]


def _leaves(value: Any) -> list[Any]:
    """The leaf values at a field: a scalar, the scalars of an array (an object is not a leaf)."""
    if value is _ABSENT:
        return []
    return [v for v in _flatten(value) if not isinstance(v, dict)]


def flatten(event: dict[str, Any], trie: Trie, flat: Flat, path: Path = ()) -> bool:
    """Fill ``flat`` with the leaf values ``event`` holds along the paths of ``trie`` (through
    objects and arrays of objects). True when matching over ``flat`` is exact: no array holding
    two or more objects lies where a pattern looks inside them (there, fields must match within
    one object, which ``flat`` does not record)."""
    exact = True
    for name, inner in trie.items():
        value = event.get(name, _ABSENT)
        if value is _ABSENT:
            continue
        cls = value.__class__
        if cls is dict:
            if inner:
                exact = flatten(value, inner, flat, (*path, name)) and exact
        elif cls is list:
            here = (*path, name)
            items = _flatten(value)
            objects = [v for v in items if v.__class__ is dict]
            leaves = [v for v in items if v.__class__ is not dict] if objects else items
            if leaves:
                flat.setdefault(here, []).extend(leaves)
            if objects and inner:
                exact = exact and len(objects) == 1
                for obj in objects:
                    exact = flatten(obj, inner, flat, here) and exact
        else:  # a leaf; one reached through several objects of an array adds up
            here = (*path, name)
            if here in flat:
                flat[here].append(value)
            else:
                flat[here] = [value]
    return exact


def _merge(into: Trie, trie: Trie) -> Trie:
    for name, inner in trie.items():
        _merge(into.setdefault(name, {}), inner)
    return into


# ------------------------------------------------------------------------------------- leaf values
def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _exact(expected: Any) -> Leaf:
    if expected is None or isinstance(expected, bool):
        return lambda v: v is expected
    if _is_number(expected):
        # int and float compare exactly in Python (and a huge int never overflows a float())
        return lambda v: v.__class__ in _NUMBER and v == expected
    ip = _ip(expected)
    if ip is not None:  # an IP address matches its other spellings too
        return lambda v: v == expected or (v.__class__ is str and _ip(v) == ip)
    return lambda v: v == expected


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not (":" in text or text[:1].isdigit()):
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _wildcard_parts(pattern: str) -> list[str | None]:
    """The pattern's literal characters, None for each ``*``."""
    parts: list[str | None] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1] if i + 1 < len(pattern) else ""
            if nxt not in ("*", "\\"):
                raise PatternError(f"Invalid escape character at pos {i}")
            parts.append(nxt)
            i += 2
            continue
        if ch == "*":
            if i + 1 < len(pattern) and pattern[i + 1] == "*":
                raise PatternError(f"Consecutive wildcard characters at pos {i}")
            parts.append(None)
        else:
            parts.append(ch)
        i += 1
    return parts


def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if p is None else re.escape(p) for p in _wildcard_parts(pattern)), re.DOTALL)


def _wildcard_prefix(pattern: str) -> str:
    """The literal text every value the wildcard matches starts with."""
    parts = _wildcard_parts(pattern)
    end = parts.index(None) if None in parts else len(parts)
    return "".join(p for p in parts[:end] if p is not None)


def _string_leaf(test: Callable[[str], bool]) -> Leaf:
    return lambda v: v.__class__ is str and test(v)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise PatternError(f"{what} match pattern must be a string")
    return value


def _affix(kind: str, spec: Any) -> Leaf:
    """prefix / suffix, plain or {"equals-ignore-case": ...}."""
    if isinstance(spec, dict):
        if len(spec) != 1 or "equals-ignore-case" not in spec:
            raise PatternError(f"Unsupported {kind} pattern: {', '.join(spec) or '{}'}")
        text = _text(spec["equals-ignore-case"], f"{kind}/equals-ignore-case").casefold()
        if kind == "prefix":
            return _string_leaf(lambda v: v.casefold().startswith(text))
        return _string_leaf(lambda v: v.casefold().endswith(text))
    text = _text(spec, kind)
    if kind == "prefix":
        return lambda v: v.__class__ is str and v.startswith(text)
    return lambda v: v.__class__ is str and v.endswith(text)


def _number(value: Any, operator: str) -> float:
    if not _is_number(value):
        raise PatternError(f"Value of {operator} must be numeric")
    number = float(value)
    if not math.isfinite(number) or abs(number) > NUMERIC_LIMIT:
        raise PatternError(f"Value {value} is not in the range of -{NUMERIC_LIMIT:.1e} to {NUMERIC_LIMIT:.1e}")
    return number


def _numeric(spec: Any) -> Bounds:
    if not isinstance(spec, list):
        raise PatternError("Value of numeric must be an array.")
    if not spec or not isinstance(spec[0], str):
        raise PatternError(f"Invalid member in numeric match: {json.dumps(spec[0]) if spec else ']'}")
    op = spec[0]
    if op == "=":
        if len(spec) < 2:
            raise PatternError("Value of equals must be numeric")
        if not _is_number(spec[1]):
            raise PatternError("Value of equals must be numeric")
        target = _number(spec[1], "equals")
        if len(spec) > 2:
            raise PatternError("Too many elements in numeric expression")
        return (target, False, target, False)
    if op not in (">", ">=", "<", "<="):
        raise PatternError(f"Unrecognized numeric range operator: {op}")
    if len(spec) < 2:
        raise PatternError(f"Value of {op} must be numeric")
    first = _number(spec[1], op)
    if op in ("<", "<="):
        if len(spec) > 2:
            raise PatternError("Too many elements in numeric expression")
        return (None, False, first, op == "<")
    if len(spec) == 2:
        return (first, op == ">", None, False)
    top_op = spec[2]
    if not isinstance(top_op, str):
        raise PatternError(f"Bad value in numeric range: {json.dumps(top_op)}")
    if top_op not in ("<", "<="):
        raise PatternError(f"Bad numeric range operator: {top_op}")
    if len(spec) < 4:
        raise PatternError(f"Value of {top_op} must be numeric")
    top = _number(spec[3], top_op)
    if len(spec) > 4:
        raise PatternError("Too many terms in numeric range expression")
    if top < first or (top == first and (op == ">" or top_op == "<")):
        raise PatternError("Bottom must be less than top")
    return (first, op == ">", top, top_op == "<")


def _range(bounds: Bounds) -> Leaf:
    """One function comparing a number with both bounds (NaN is in no range)."""
    bottom, open_bottom, top, open_top = bounds
    lo = -math.inf if bottom is None else bottom
    hi = math.inf if top is None else top
    if open_bottom and open_top:
        return lambda v: v.__class__ in _NUMBER and lo < v < hi
    if open_bottom:
        return lambda v: v.__class__ in _NUMBER and lo < v <= hi
    if open_top:
        return lambda v: v.__class__ in _NUMBER and lo <= v < hi
    return lambda v: v.__class__ in _NUMBER and lo <= v <= hi


def _cidr(spec: Any) -> Leaf:
    text = _text(spec, "cidr")
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise PatternError(f"Malformed CIDR, one '/' required: {text}" if "/" not in text
                           else f"Nonstandard IP address: {text}") from None

    def test(v: Any) -> bool:
        if v.__class__ is not str:
            return False
        try:
            return ipaddress.ip_address(v) in network
        except ValueError:
            return False
    return test


def _anything_but(spec: Any) -> Leaf:
    if isinstance(spec, dict):
        if len(spec) != 1:
            raise PatternError("Only one key allowed in match expression" if spec
                               else "Anything-But expression name not found")
        (op, value), = spec.items()
        if op in ("prefix", "suffix"):
            if isinstance(value, dict):
                inner = _affix(op, value)
                return _string_leaf(lambda v: not inner(v))
            text = _text(value, "prefix/suffix")
            if not text:
                raise PatternError("Null prefix/suffix not allowed")
            if op == "prefix":
                return _string_leaf(lambda v: not v.startswith(text))
            return _string_leaf(lambda v: not v.endswith(text))
        if op == "equals-ignore-case":
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, str) for v in values):
                raise PatternError("Inside anything-but/equals-ignore-case list, number|start|null|boolean is "
                                   "not supported.")
            folded = frozenset(v.casefold() for v in values)
            return _string_leaf(lambda v: v.casefold() not in folded)
        if op == "wildcard":
            patterns = value if isinstance(value, list) else [value]
            if not patterns or not all(isinstance(p, str) for p in patterns):
                raise PatternError("wildcard match pattern must be a string")
            regexes = [_wildcard_regex(p) for p in patterns]
            return _string_leaf(lambda v: not any(r.fullmatch(v) for r in regexes))
        raise PatternError(f"Unsupported anything-but pattern: {op}")
    values = spec if isinstance(spec, list) else [spec]
    if not isinstance(spec, list) and not (isinstance(spec, str) or _is_number(spec)):
        raise PatternError("Value of anything-but must be an array or single string/number value.")
    if any(not (isinstance(v, str) or _is_number(v)) for v in values):
        raise PatternError("Inside anything but list, start|null|boolean is not supported.")
    numbers = [v for v in values if _is_number(v)]
    if isinstance(spec, list) and (not values or (numbers and len(numbers) != len(values))):
        raise PatternError("Inside anything but list, either all values are number or string, mixed type is "
                           "not supported")
    if numbers:
        excluded = frozenset(float(n) for n in numbers)  # 5 and 5.0 hash alike: one lookup
        return lambda v: v.__class__ in _NUMBER and v not in excluded
    strings = frozenset(values)
    return lambda v: not (v.__class__ is str and v in strings)


def _match_object(spec: dict[str, Any], f: _Field) -> tuple[Leaf | None, Key | None]:
    """A match expression ({"prefix": ...} and the like) and its index key if it has one; no leaf
    for exists, recorded on the field."""
    if not spec:
        raise PatternError("Match expression name not found")
    if len(spec) > 1:
        raise PatternError("Only one key allowed in match expression")
    (op, value), = spec.items()
    if op == "exists":
        if not isinstance(value, bool):
            raise PatternError("exists match pattern must be either true or false.")
        if value:
            f.exists = True
        else:
            f.absent_ok = True
        return None, None
    if op == "exact":
        text = _text(value, "exact")
        return (lambda v: v == text), ("=", text)
    if op in ("prefix", "suffix"):
        plain = op == "prefix" and isinstance(value, str) and value
        return _affix(op, value), (("^", value) if plain else None)
    if op == "equals-ignore-case":
        text = _text(value, "equals-ignore-case").casefold()
        return _string_leaf(lambda v: v.casefold() == text), ("~", text)
    if op == "wildcard":
        pattern = _text(value, "wildcard")
        regex = _wildcard_regex(pattern)
        prefix = _wildcard_prefix(pattern)
        return _string_leaf(lambda v: regex.fullmatch(v) is not None), (("^", prefix) if prefix else None)
    if op == "numeric":
        bounds = _numeric(value)
        return _range(bounds), ("#", bounds)
    if op == "anything-but":
        return _anything_but(value), None
    if op == "cidr":
        return _cidr(value), None
    raise PatternError(f"Unrecognized match type {op}")


# ------------------------------------------------------------------------------------- compilation
def _compile_leaf(name: str, values: list[Any]) -> _Field:
    if not values:
        raise PatternError("Empty arrays are not allowed")
    f = _Field(name)
    keys: list[Key | None] = []
    for value in values:
        if isinstance(value, dict):
            matcher, key = _match_object(value, f)
            if matcher is not None:
                f.matchers.append(matcher)
            keys.append(key)
        elif isinstance(value, list):
            raise PatternError("Match value must be String, number, true, false, or null")
        elif isinstance(value, str) and _ip(value) is None:
            f.strings.add(value)
            keys.append(("=", value))
        else:
            f.matchers.append(_exact(value))
            number = float(value) if _is_number(value) else None
            keys.append(("#", (number, False, number, False)) if number is not None else None)
    f.keys = None if None in keys else [k for k in keys if k is not None]
    f.check = _field_check(f)
    return f


def _field_check(f: _Field) -> Check:
    """The field's test of the leaf values at its path, shaped for the common cases."""
    strings, matchers, absent_ok = frozenset(f.strings), tuple(f.matchers), f.absent_ok
    if f.exists:
        return (lambda values: True) if absent_ok else (lambda values: values is not None)
    if not matchers:
        if not strings:
            return lambda values: values is None
        if absent_ok:
            return lambda values: values is None or not strings.isdisjoint(values)
        return lambda values: values is not None and not strings.isdisjoint(values)
    if len(matchers) == 1 and not strings and not absent_ok:
        only = matchers[0]
        return lambda values: values is not None and any(map(only, values))

    def check(values: Values) -> bool:
        if values is None:
            return absent_ok
        if strings and not strings.isdisjoint(values):
            return True
        return any(m(v) for v in values for m in matchers)
    return check


def _compile_object(pattern: dict[str, Any], in_or: bool) -> Node:
    if not pattern:
        raise PatternError("Empty objects are not allowed")
    node = Node()
    for name, value in pattern.items():
        if name == "$or":
            if not isinstance(value, list):
                raise PatternError("It must be an Array followed with $or.")
            if not all(isinstance(v, dict) for v in value):
                raise PatternError("Only JSON object is allowed in array of $or relationship.")
            if len(value) < 2:
                raise PatternError("There must have at least 2 Objects in $or relationship.")
            node.alternatives.append([_compile_object(v, True) for v in value])
            continue
        if in_or and name in _RESERVED_IN_OR:
            raise PatternError(f"{name} is Ruler reserved fieldName which cannot be used inside $or.")
        if isinstance(value, dict):
            node.fields.append(_Field(name, nested=_compile_object(value, in_or)))
        elif isinstance(value, list):
            node.fields.append(_compile_leaf(name, value))
        else:
            raise PatternError(f'"{name}" must be an object or an array')
    node.trie = _trie(node)
    node.flat_matches = _flat_matcher(node, ())
    return node


_RESERVED_IN_OR = frozenset({"anything-but", "exists", "prefix", "suffix", "numeric", "cidr",
                             "equals-ignore-case", "wildcard"})


def _trie(node: Node) -> Trie:
    trie: Trie = {}
    for f in node.fields:
        inner = trie.setdefault(f.name, {})
        if f.nested is not None:
            _merge(inner, f.nested.trie)
    for options in node.alternatives:
        for alt in options:
            _merge(trie, alt.trie)
    return trie


def _flat_matcher(node: Node, path: Path) -> Callable[[Flat], bool]:
    """The node as one function of a flattened event: its leaf checks by full path (a nested
    object's fields join its parent's, as over a flattened event they are ANDed alike), then its
    $or groups."""
    checks: list[tuple[Path, Check]] = []
    groups: list[tuple[Callable[[Flat], bool], ...]] = []

    def collect(n: Node, at: Path) -> None:
        for f in n.fields:
            if f.nested is not None:
                collect(f.nested, (*at, f.name))
            else:
                checks.append(((*at, f.name), f.check))
        for options in n.alternatives:
            groups.append(tuple(_flat_matcher(alt, at) for alt in options))

    collect(node, path)
    if not groups:
        def match(flat: Flat) -> bool:
            get = flat.get
            for at, check in checks:
                if not check(get(at)):
                    return False
            return True
        return match

    def match_with_or(flat: Flat) -> bool:
        get = flat.get
        for at, check in checks:
            if not check(get(at)):
                return False
        for options in groups:
            for alt in options:
                if alt(flat):
                    break
            else:
                return False
        return True
    return match_with_or


def compile_pattern(text: str | dict[str, Any]) -> Node:
    """The compiled pattern, or PatternError with EventBridge's reason."""
    if isinstance(text, str):
        try:
            pattern = json.loads(text)
        except ValueError as exc:
            raise PatternError(f"Unrecognized token in pattern: {exc.msg}") from None
    else:
        pattern = text
    if not isinstance(pattern, dict):
        raise PatternError("Filter is not an object")
    return _compile_object(pattern, False)


def parse(text: str) -> Node:
    """compile_pattern for an API parameter: an invalid pattern is InvalidEventPatternException."""
    try:
        return compile_pattern(text)
    except PatternError as exc:
        raise invalid_pattern(str(exc)) from None
    except RecursionError:
        raise invalid_pattern("Pattern is nested too deeply") from None


def matches(pattern: str | dict[str, Any] | Node, event: dict[str, Any]) -> bool:
    node = pattern if isinstance(pattern, Node) else compile_pattern(pattern)
    return node.matches(event)


# ------------------------------------------------------------------------------------ rule index
Anchor = list[tuple[Path, Key]]
# How much one rule filed under a key of each kind costs the index: an exact or case-folded value
# is hit by few events, a prefix by more, a numeric range (not a point) by many.
_KIND_COST = {"=": 1, "~": 1, "^": 2, "#": 3}


def _keyed(node: Node, path: Path = ()) -> list[tuple[Path, Key]]:
    """Every (path, key) of the node, inside $or too."""
    found = []
    for f in node.fields:
        if f.nested is not None:
            found += _keyed(f.nested, (*path, f.name))
        elif f.keys:
            found += [((*path, f.name), key) for key in f.keys]
    for options in node.alternatives:
        for alt in options:
            found += _keyed(alt, path)
    return found


def _anchor(node: Node, cost: Callable[[Path, Key], int], path: Path = ()) -> tuple[int, Anchor] | None:
    """The cheapest set of (path, key) of which every match of ``node`` holds one: a field whose
    every value has a key, or a $or each alternative of which has an anchor; None if none."""
    best: tuple[int, Anchor] | None = None
    options: list[tuple[int, Anchor]] = []
    for f in node.fields:
        if f.nested is not None:
            found = _anchor(f.nested, cost, (*path, f.name))
            if found is not None:
                options.append(found)
        elif f.keys:
            anchor = [((*path, f.name), key) for key in f.keys]
            options.append((sum(cost(*entry) for entry in anchor), anchor))
    for alternatives in node.alternatives:
        each = [_anchor(alt, cost, path) for alt in alternatives]
        if all(e is not None for e in each):
            options.append((sum(e[0] for e in each if e), [entry for e in each if e for entry in e[1]]))
    for option in options:
        if best is None or option[0] < best[0]:
            best = option
    return best


class _Ranges:
    """Rules filed under numeric ranges at one path: the number line cut at every bound into
    points and the open segments between them, each with the rules whose range covers it, so a
    number finds its rules with one bisection."""

    def __init__(self, ranges: list[tuple[Bounds, int]]) -> None:
        self.points = sorted({b for (bottom, _, top, _), _ in ranges for b in (bottom, top) if b is not None})
        # segment 2j: between points j-1 and j; segment 2j+1: point j
        segments: list[list[int]] = [[] for _ in range(2 * len(self.points) + 1)]
        for (bottom, open_bottom, top, open_top), rule in ranges:
            first = 0 if bottom is None else 2 * self.points.index(bottom) + 1 + open_bottom
            last = len(segments) - 1 if top is None else 2 * self.points.index(top) + 1 - open_top
            for s in range(first, last + 1):
                segments[s].append(rule)
        self.segments = [tuple(s) for s in segments]

    def find(self, number: float) -> tuple[int, ...]:
        j = bisect.bisect_left(self.points, number)
        if j < len(self.points) and self.points[j] == number:
            return self.segments[2 * j + 1]
        return self.segments[2 * j]


class RuleIndex:
    """Compiled rules filed by their anchor (see _anchor), so that an event is matched only against
    the rules it can match: those whose anchor value it holds (exact, by prefix, case-folded or in
    a numeric range), and those without an anchor. ``match`` gives the same answer as trying every
    rule. Of a rule's possible anchors the one fewest other rules share is taken (a source every
    rule names selects nothing)."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.always: list[int] = []
        self.trie: Trie = {}
        self.exact: dict[Path, dict[str, list[int]]] = {}
        self.folded: dict[Path, dict[str, list[int]]] = {}
        self.prefixes: dict[Path, dict[str, list[int]]] = {}
        ranges: dict[Path, list[tuple[Bounds, int]]] = {}
        shared = Counter(entry for node in nodes for entry in set(_keyed(node)))

        def cost(path: Path, key: Key) -> int:
            return _KIND_COST[key[0]] * shared[(path, key)]

        for i, node in enumerate(nodes):
            _merge(self.trie, node.trie)
            anchor = _anchor(node, cost)
            if anchor is None:
                self.always.append(i)
                continue
            for path, (kind, value) in anchor[1]:
                if kind == "#":
                    ranges.setdefault(path, []).append((value, i))
                    continue
                table = {"=": self.exact, "~": self.folded, "^": self.prefixes}[kind]
                table.setdefault(path, {}).setdefault(value, []).append(i)
        self.ranges = {path: _Ranges(items) for path, items in ranges.items()}
        self._lengths = {path: sorted({len(p) for p in table}) for path, table in self.prefixes.items()}

    def match(self, event: dict[str, Any]) -> list[int]:
        """Indexes (in ``nodes``) of the rules ``event`` matches, in order."""
        flat: Flat = {}
        exact = event.__class__ is dict and flatten(event, self.trie, flat)
        candidates = set(self.always)
        get = flat.get
        for path, table in self.exact.items():
            for value in get(path, ()):
                if value.__class__ is str and value in table:
                    candidates.update(table[value])
        for path, table in self.folded.items():
            for value in get(path, ()):
                if value.__class__ is str:
                    candidates.update(table.get(value.casefold(), ()))
        for path, table in self.prefixes.items():
            lengths = self._lengths[path]
            for value in get(path, ()):
                if value.__class__ is str:
                    for length in lengths:
                        if length > len(value):
                            break
                        candidates.update(table.get(value[:length], ()))
        for path, ranges in self.ranges.items():
            for value in get(path, ()):
                if value.__class__ in _NUMBER:
                    candidates.update(ranges.find(value))
        nodes = self.nodes
        if exact:
            return [i for i in sorted(candidates) if nodes[i].flat_matches(flat)]
        return [i for i in sorted(candidates) if nodes[i].matches_tree(event)]
