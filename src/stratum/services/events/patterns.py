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
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stratum.protocol.errors import ServiceError

# EventBridge compares numbers with 15 significant digits between these bounds.
NUMERIC_LIMIT = 5.0e9
_ABSENT: tuple[()] = ()
Leaf = Callable[[Any], bool]


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
    # When every value is an exact string, a plain prefix or an equals-ignore-case string, what
    # RuleIndex files the rule under: ("=", text), ("^", prefix), ("~", casefolded text).
    keys: list[tuple[str, str]] | None = None

    def test(self, value: Any) -> bool:
        """Whether one leaf value matches any of the field's values."""
        if self.exists or (value.__class__ is str and value in self.strings):
            return True
        return any(m(value) for m in self.matchers)


@dataclass
class Node:
    fields: list[_Field] = field(default_factory=list)
    alternatives: list[list[Node]] = field(default_factory=list)  # each $or: any of its nodes

    def matches(self, obj: Any) -> bool:
        # The hot path of delivery (every event against every rule of its bus): plain loops and
        # the common cases (a string value, an object under a nested pattern) first.
        get = obj.get if obj.__class__ is dict else None
        for f in self.fields:
            value = get(f.name, _ABSENT) if get is not None else _ABSENT
            if f.nested is not None:
                if value.__class__ is dict:
                    if not f.nested.matches(value):
                        return False
                elif not _nested_matches(f.nested, value):
                    return False
            elif value.__class__ is str:
                if not (f.exists or value in f.strings):
                    for m in f.matchers:
                        if m(value):
                            break
                    else:
                        return False
            elif not _leaf_matches(f, value):
                return False
        for options in self.alternatives:
            for alt in options:
                if alt.matches(obj):
                    break
            else:
                return False
        return True


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


def _nested_matches(node: Node, value: Any) -> bool:
    # With no object there, only conditions that hold for absent fields can match.
    return any(node.matches(o) for o in (_objects(value) or [{}]))


def _leaves(value: Any) -> list[Any]:
    """The leaf values at a field: a scalar, the scalars of an array (an object is not a leaf)."""
    if value is _ABSENT:
        return []
    return [v for v in _flatten(value) if not isinstance(v, dict)]


def _leaf_matches(f: _Field, value: Any) -> bool:
    if value.__class__ is str:  # the common case, without building a list of leaves
        return f.test(value)
    values = _leaves(value)
    if not values:
        return f.absent_ok
    return any(f.test(v) for v in values)


# ------------------------------------------------------------------------------------- leaf values
def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _exact(expected: Any) -> Leaf:
    if expected is None or isinstance(expected, bool):
        return lambda v: v is expected
    if _is_number(expected):
        target = float(expected)
        return lambda v: _is_number(v) and float(v) == target
    ip = _ip(expected)
    if ip is not None:  # an IP address matches its other spellings too
        return lambda v: v == expected or (isinstance(v, str) and _ip(v) == ip)
    return lambda v: v == expected


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not (":" in text or text[:1].isdigit()):
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1] if i + 1 < len(pattern) else ""
            if nxt not in ("*", "\\"):
                raise PatternError(f"Invalid escape character at pos {i}")
            parts.append(re.escape(nxt))
            i += 2
            continue
        if ch == "*":
            if i + 1 < len(pattern) and pattern[i + 1] == "*":
                raise PatternError(f"Consecutive wildcard characters at pos {i}")
            parts.append(".*")
        else:
            parts.append(re.escape(ch))
        i += 1
    return re.compile("".join(parts), re.DOTALL)


def _string_leaf(test: Callable[[str], bool]) -> Leaf:
    return lambda v: isinstance(v, str) and test(v)


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
        return _string_leaf(lambda v: v.startswith(text))
    return _string_leaf(lambda v: v.endswith(text))


def _number(value: Any, operator: str) -> float:
    if not _is_number(value):
        raise PatternError(f"Value of {operator} must be numeric")
    number = float(value)
    if not math.isfinite(number) or abs(number) > NUMERIC_LIMIT:
        raise PatternError(f"Value {value} is not in the range of -{NUMERIC_LIMIT:.1e} to {NUMERIC_LIMIT:.1e}")
    return number


def _numeric(spec: Any) -> Leaf:
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
        return lambda v: _is_number(v) and float(v) == target
    if op not in (">", ">=", "<", "<="):
        raise PatternError(f"Unrecognized numeric range operator: {op}")
    if len(spec) < 2:
        raise PatternError(f"Value of {op} must be numeric")
    first = _number(spec[1], op)
    if op in ("<", "<="):
        if len(spec) > 2:
            raise PatternError("Too many elements in numeric expression")
        return _range(None, False, first, op == "<")
    if len(spec) == 2:
        return _range(first, op == ">", None, False)
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
    return _range(first, op == ">", top, top_op == "<")


def _range(bottom: float | None, open_bottom: bool, top: float | None, open_top: bool) -> Leaf:
    def test(v: Any) -> bool:
        if not _is_number(v):
            return False
        x = float(v)
        if bottom is not None and (x < bottom or (open_bottom and x == bottom)):
            return False
        return not (top is not None and (x > top or (open_top and x == top)))
    return test


def _cidr(spec: Any) -> Leaf:
    text = _text(spec, "cidr")
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise PatternError(f"Malformed CIDR, one '/' required: {text}" if "/" not in text
                           else f"Nonstandard IP address: {text}") from None

    def test(v: Any) -> bool:
        if not isinstance(v, str):
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
            folded = {v.casefold() for v in values}
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
        excluded = {float(n) for n in numbers}
        return lambda v: _is_number(v) and float(v) not in excluded
    strings = set(values)
    return lambda v: not (isinstance(v, str) and v in strings)


def _match_object(spec: dict[str, Any], f: _Field) -> Leaf | None:
    """A match expression ({"prefix": ...} and the like); None for exists, recorded on the field."""
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
        return None
    if op == "exact":
        text = _text(value, "exact")
        return lambda v: v == text
    if op in ("prefix", "suffix"):
        return _affix(op, value)
    if op == "equals-ignore-case":
        text = _text(value, "equals-ignore-case").casefold()
        return _string_leaf(lambda v: v.casefold() == text)
    if op == "wildcard":
        regex = _wildcard_regex(_text(value, "wildcard"))
        return _string_leaf(lambda v: regex.fullmatch(v) is not None)
    if op == "numeric":
        return _numeric(value)
    if op == "anything-but":
        return _anything_but(value)
    if op == "cidr":
        return _cidr(value)
    raise PatternError(f"Unrecognized match type {op}")


# ------------------------------------------------------------------------------------- compilation
def _index_keys(values: list[Any]) -> list[tuple[str, str]] | None:
    keys: list[tuple[str, str]] = []
    for value in values:
        if isinstance(value, str) and _ip(value) is None:
            keys.append(("=", value))
            continue
        if not (isinstance(value, dict) and len(value) == 1):
            return None
        (op, text), = value.items()
        if not isinstance(text, str) or (op == "prefix" and not text):
            return None
        if op == "exact":
            keys.append(("=", text))
        elif op == "prefix":
            keys.append(("^", text))
        elif op == "equals-ignore-case":
            keys.append(("~", text.casefold()))
        else:
            return None
    return keys


def _compile_leaf(name: str, values: list[Any]) -> _Field:
    if not values:
        raise PatternError("Empty arrays are not allowed")
    f = _Field(name)
    for value in values:
        if isinstance(value, dict):
            matcher = _match_object(value, f)
            if matcher is not None:
                f.matchers.append(matcher)
        elif isinstance(value, list):
            raise PatternError("Match value must be String, number, true, false, or null")
        elif isinstance(value, str) and _ip(value) is None:
            f.strings.add(value)
        else:
            f.matchers.append(_exact(value))
    f.keys = _index_keys(values)
    return f


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
    return node


_RESERVED_IN_OR = frozenset({"anything-but", "exists", "prefix", "suffix", "numeric", "cidr",
                             "equals-ignore-case", "wildcard"})


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
Path = tuple[str, ...]


def _anchor(node: Node, path: Path = ()) -> tuple[tuple[int, int, int], Path, list[tuple[str, str]]] | None:
    """The field every match of ``node`` needs one of a few values in (the most selective one):
    (score, its path, its keys). Fields inside $or are no anchor: an alternative may do without."""
    best = None
    for f in node.fields:
        if f.nested is not None:
            found = _anchor(f.nested, (*path, f.name))
        elif f.keys:
            loose = sum(1 for kind, _ in f.keys if kind != "=")
            found = ((loose, len(f.keys), -len(path) - 1), (*path, f.name), f.keys)
        else:
            found = None
        if found is not None and (best is None or found[0] < best[0]):
            best = found
    return best


def _strings_at(event: Any, path: Path) -> list[str]:
    """The string leaves an event holds at ``path`` (through objects and arrays of objects), as
    Node.matches reaches them."""
    current = [event]
    for name in path:
        following = []
        for value in current:
            for obj in ([value] if value.__class__ is dict else _objects(value)):
                if name in obj:
                    following.append(obj[name])
        current = following
    return [v for value in current for v in _leaves(value) if v.__class__ is str]


class RuleIndex:
    """Compiled rules filed by their anchor (see _anchor), so that an event is matched only against
    the rules it can match: those whose anchor value it holds (exact, by prefix, or case-folded),
    and those without an anchor. ``match`` gives the same answer as trying every rule."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.always: list[int] = []
        self.exact: dict[Path, dict[str, list[int]]] = {}
        self.folded: dict[Path, dict[str, list[int]]] = {}
        self.prefixes: dict[Path, dict[str, list[int]]] = {}
        for i, node in enumerate(nodes):
            anchor = _anchor(node)
            if anchor is None:
                self.always.append(i)
                continue
            _, path, keys = anchor
            for kind, text in keys:
                table = {"=": self.exact, "~": self.folded, "^": self.prefixes}[kind]
                table.setdefault(path, {}).setdefault(text, []).append(i)
        self._lengths = {path: sorted({len(p) for p in table}) for path, table in self.prefixes.items()}
        self._paths = set(self.exact) | set(self.folded) | set(self.prefixes)

    def match(self, event: dict[str, Any]) -> list[int]:
        """Indexes (in ``nodes``) of the rules ``event`` matches, in order."""
        candidates = set(self.always)
        for path in self._paths:
            values = _strings_at(event, path)
            if not values:
                continue
            exact, folded, prefixes = self.exact.get(path), self.folded.get(path), self.prefixes.get(path)
            for value in values:
                if exact is not None:
                    candidates.update(exact.get(value, ()))
                if folded is not None:
                    candidates.update(folded.get(value.casefold(), ()))
                if prefixes is not None:
                    for length in self._lengths[path]:
                        if length > len(value):
                            break
                        candidates.update(prefixes.get(value[:length], ()))
        return [i for i in sorted(candidates) if self.nodes[i].matches(event)]

