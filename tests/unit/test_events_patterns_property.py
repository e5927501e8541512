"""The compiled matcher (flattened events, the tree walk it falls back to, RuleIndex) against a
plain reading of EventBridge's pattern rules, over random patterns and events.

The reference below interprets the pattern's JSON directly, value by value, with none of the
compiled form's shortcuts (no flattening, no frozensets, no regexes, no index)."""

from __future__ import annotations

import ipaddress
import random
from typing import Any

import pytest

from stratum.services.events.patterns import PatternError, RuleIndex, compile_pattern

_MISSING = object()


def _items(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [item for v in value for item in _items(v)]
    return [value]


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _wildcard(pattern: str, text: str) -> bool:
    """Whether ``text`` is ``pattern`` with each unescaped * standing for any characters."""
    tokens: list[str | None] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            tokens.append(pattern[i + 1])
            i += 2
        else:
            tokens.append(None if pattern[i] == "*" else pattern[i])
            i += 1

    def at(t: int, s: int) -> bool:
        if t == len(tokens):
            return s == len(text)
        if tokens[t] is None:
            return any(at(t + 1, k) for k in range(s, len(text) + 1))
        return s < len(text) and text[s] == tokens[t] and at(t + 1, s + 1)
    return at(0, 0)


def _ip(text: Any) -> Any:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _compare(v: float, op: str, bound: float) -> bool:
    return {"=": v == bound, "<": v < bound, "<=": v <= bound, ">": v > bound, ">=": v >= bound}[op]


def ref_value(spec: Any, v: Any) -> bool:
    """One match value against one leaf value of the event."""
    if spec is None or isinstance(spec, bool):
        return v is spec
    if _number(spec):
        return _number(v) and v == spec
    if isinstance(spec, str):
        if v == spec:
            return True
        return isinstance(v, str) and _ip(spec) is not None and _ip(v) == _ip(spec)
    (op, arg), = spec.items()
    if op == "exact":
        return v == arg
    if op in ("prefix", "suffix"):
        if not isinstance(v, str):
            return False
        text, expected = (v.lower(), arg["equals-ignore-case"].lower()) if isinstance(arg, dict) else (v, arg)
        return text.startswith(expected) if op == "prefix" else text.endswith(expected)
    if op == "equals-ignore-case":
        return isinstance(v, str) and v.lower() == arg.lower()
    if op == "wildcard":
        return isinstance(v, str) and _wildcard(arg, v)
    if op == "numeric":
        return _number(v) and all(_compare(v, arg[k], arg[k + 1]) for k in range(0, len(arg), 2))
    if op == "cidr":
        address = _ip(v) if isinstance(v, str) else None
        return address is not None and address in ipaddress.ip_network(arg, strict=False)
    if op == "anything-but":
        if isinstance(arg, dict):
            (inner_op, inner), = arg.items()
            if not isinstance(v, str):
                return False
            if inner_op == "equals-ignore-case":
                return all(v.lower() != x.lower() for x in (inner if isinstance(inner, list) else [inner]))
            if inner_op == "wildcard":
                return not any(_wildcard(x, v) for x in (inner if isinstance(inner, list) else [inner]))
            return not ref_value({inner_op: inner}, v)
        excluded = arg if isinstance(arg, list) else [arg]
        if _number(excluded[0]):
            return _number(v) and all(v != x for x in excluded)
        return not (isinstance(v, str) and v in excluded)
    raise AssertionError(op)


def ref_leaf(specs: list[Any], leaves: list[Any]) -> bool:
    for spec in specs:
        if isinstance(spec, dict) and "exists" in spec:
            if spec["exists"] == bool(leaves):
                return True
        elif any(ref_value(spec, v) for v in leaves):
            return True
    return False


def ref_match(pattern: dict[str, Any], obj: Any) -> bool:
    for name, spec in pattern.items():
        if name == "$or":
            if not any(ref_match(alt, obj) for alt in spec):
                return False
            continue
        value = obj.get(name, _MISSING) if isinstance(obj, dict) else _MISSING
        items = [] if value is _MISSING else _items(value)
        if isinstance(spec, dict):
            # an object pattern: one object of the event there must match all of it
            objects = [v for v in items if isinstance(v, dict)]
            if not any(ref_match(spec, o) for o in objects or [{}]):
                return False
        elif not ref_leaf(spec, [v for v in items if not isinstance(v, dict)]):
            return False
    return True


# ------------------------------------------------------------------------------------ generators
NAMES = ["a", "b", "c"]
STRINGS = ["x", "xy", "Xy", "yx", "10.0.0.1", "10.0.1.9", "", "a*b"]
NUMBERS = [0, 1, 1.5, 2, 3, -1, 10**20]


def gen_match_value(rng: random.Random) -> Any:
    if rng.random() < 0.3:  # the plain values and exists often, so fields of only those come up
        return rng.choice([rng.choice(STRINGS), {"exists": rng.random() < 0.5}])
    s = rng.choice(STRINGS[:4] + ["x*", "*y", "\\*"])
    n = rng.choice(NUMBERS[:6])
    return rng.choice([
        rng.choice(STRINGS), n, None, True, False,
        {"prefix": rng.choice(["x", "X", "1"])}, {"prefix": {"equals-ignore-case": "X"}},
        {"suffix": rng.choice(["y", "x"])}, {"suffix": {"equals-ignore-case": "Y"}},
        {"equals-ignore-case": rng.choice(["xy", "X"])}, {"wildcard": s}, {"exact": rng.choice(STRINGS)},
        {"numeric": rng.choice([[">", n], [">=", n], ["<", n], ["<=", n], ["=", n], [">", -1, "<=", n + 1],
                                [">=", 0, "<", 2]])},
        {"exists": rng.random() < 0.5}, {"cidr": rng.choice(["10.0.0.0/24", "10.0.0.0/8"])},
        {"anything-but": rng.choice([rng.choice(STRINGS[:4]), n, ["x", "xy"], [1, 2], {"prefix": "x"},
                                     {"suffix": "y"}, {"equals-ignore-case": ["X", "yx"]}, {"wildcard": "x*"}])},
    ])


def gen_pattern(rng: random.Random, depth: int = 0, in_or: bool = False) -> dict[str, Any]:
    pattern: dict[str, Any] = {}
    for name in rng.sample(NAMES, rng.randint(1, 2)):
        if depth < 2 and rng.random() < 0.35:
            pattern[name] = gen_pattern(rng, depth + 1, in_or)
        else:
            pattern[name] = [gen_match_value(rng) for _ in range(rng.randint(1, 3))]
    if depth < 2 and rng.random() < 0.2:
        pattern["$or"] = [gen_pattern(rng, depth + 1, True) for _ in range(rng.randint(2, 3))]
    return pattern


def gen_value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth < 3 and roll < 0.25:
        return gen_object(rng, depth + 1)
    if depth < 3 and roll < 0.4:  # arrays: of scalars, of objects, mixed, nested, empty
        return [gen_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return rng.choice(STRINGS + NUMBERS + [None, True, False])


def gen_object(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    return {name: gen_value(rng, depth) for name in NAMES if rng.random() < 0.7}


def _valid_patterns(rng: random.Random, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while len(found) < count:
        pattern = gen_pattern(rng)
        try:
            compile_pattern(pattern)
        except PatternError:
            continue  # a generated combination EventBridge rejects (e.g. a numeric bound at 10**20)
        found.append(pattern)
    return found


@pytest.mark.parametrize("seed", range(8))
def test_compiled_matcher_agrees_with_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    patterns = _valid_patterns(rng, 60)
    nodes = [compile_pattern(p) for p in patterns]
    index = RuleIndex(nodes)
    matched = 0
    for _ in range(400):
        event = gen_object(rng)
        expected = [i for i, p in enumerate(patterns) if ref_match(p, event)]
        for i in range(len(nodes)):
            assert nodes[i].matches(event) == (i in expected), (patterns[i], event)
            assert nodes[i].matches_tree(event) == (i in expected), (patterns[i], event)
        assert index.match(event) == expected, event
        matched += len(expected)
    assert matched > 0  # the generators make events that match, not only ones that do not


def test_arrays_of_objects_keep_one_objects_fields_together() -> None:
    # the case flattening cannot decide: each condition holds in some object, both in none
    node = compile_pattern({"a": {"b": ["x"], "c": [1]}})
    index = RuleIndex([node])
    split = {"a": [{"b": "x", "c": 2}, {"b": "y", "c": 1}]}
    together = {"a": [{"b": "x", "c": 2}, {"b": "x", "c": 1}]}
    assert not node.matches(split) and index.match(split) == []
    assert node.matches(together) and index.match(together) == [0]
