"""Condition operators: parsing a ``Condition`` block into clauses and evaluating them.

Semantics follow the IAM User Guide ("Condition operators", "Multivalued context keys"):

* several keys under one operator, and several operators, are ANDed; several values for
  one key are ORed;
* a negated operator (``StringNotEquals``, ``NotIpAddress``...) is true when the context
  value matches *none* of the policy values;
* a key absent from the request makes positive operators false and negated operators true,
  except ``...IfExists`` (true when absent) and ``Null`` (tests presence);
* ``ForAllValues:`` is true when every context value matches (and when the key is absent or
  empty); ``ForAnyValue:`` needs at least one matching value (false when absent or empty);
* a policy value whose variable cannot be resolved matches nothing, which also makes a
  negated test on that key fail (the comparison cannot be proven "not equal").
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import operator
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, Final, Protocol

from stratum.policy.context import MISSING, EvalContext
from stratum.policy.errors import MalformedPolicyDocument
from stratum.policy.matching import GlobSet, Matcher, compile_glob, match_resolved
from stratum.policy.variables import Resolved, Template, parse_template, resolve, resolve_text, scalar_to_str

QUALIFIER_NONE: Final = 0
QUALIFIER_ALL: Final = 1
QUALIFIER_ANY: Final = 2

_Compare = Callable[[Any, Any], bool]
_COMPARATORS: Final[dict[str, _Compare]] = {
    "eq": operator.eq,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}

# lower-cased base operator -> (family, negated, comparator name for ordered families)
_OPERATORS: Final[dict[str, tuple[str, bool, str]]] = {
    "stringequals": ("string", False, ""),
    "stringnotequals": ("string", True, ""),
    "stringequalsignorecase": ("string_ic", False, ""),
    "stringnotequalsignorecase": ("string_ic", True, ""),
    "stringlike": ("like", False, ""),
    "stringnotlike": ("like", True, ""),
    "numericequals": ("numeric", False, "eq"),
    "numericnotequals": ("numeric", True, "eq"),
    "numericlessthan": ("numeric", False, "lt"),
    "numericlessthanequals": ("numeric", False, "le"),
    "numericgreaterthan": ("numeric", False, "gt"),
    "numericgreaterthanequals": ("numeric", False, "ge"),
    "dateequals": ("date", False, "eq"),
    "datenotequals": ("date", True, "eq"),
    "datelessthan": ("date", False, "lt"),
    "datelessthanequals": ("date", False, "le"),
    "dategreaterthan": ("date", False, "gt"),
    "dategreaterthanequals": ("date", False, "ge"),
    "bool": ("bool", False, ""),
    "binaryequals": ("binary", False, ""),
    "ipaddress": ("ip", False, ""),
    "notipaddress": ("ip", True, ""),
    "arnequals": ("arn", False, ""),
    "arnlike": ("arn", False, ""),
    "arnnotequals": ("arn", True, ""),
    "arnnotlike": ("arn", True, ""),
    "null": ("null", False, ""),
}

_IF_EXISTS: Final = "ifexists"
_EPOCH_RE: Final = re.compile(r"^-?\d+(?:\.\d+)?$")


# --------------------------------------------------------------------------- value parsing


def parse_number(value: Any) -> int | float | None:
    """Numeric value of a policy or context value (``bool`` is not a number)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            return None
    return None


def parse_date(value: Any) -> float | None:
    """Epoch seconds for a ``datetime``, epoch number, or ISO-8601 / epoch string."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return _parse_date_text(value.strip())
    return None


@lru_cache(maxsize=4096)
def _parse_date_text(text: str) -> float | None:
    if _EPOCH_RE.match(text):
        return float(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # AWS treats zone-less timestamps as UTC
    return parsed.timestamp()


_IpRange = tuple[int, int, int]  # (version, first address, last address)


@lru_cache(maxsize=4096)
def _ip_key(text: str) -> tuple[int, int] | None:
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped  # "::ffff:10.0.0.1" is an IPv4 client behind a dual-stack socket
    return addr.version, int(addr)


def _parse_cidr(text: str) -> _IpRange | None:
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None
    return net.version, int(net.network_address), int(net.broadcast_address)


def _decode_base64(value: Any) -> bytes | None:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


# ------------------------------------------------------------------------------ matchers


class _Matcher(Protocol):
    def resolve(self, ctx: EvalContext) -> tuple[Any, bool]:
        """Policy values ready for :meth:`test`, and whether every variable resolved."""
        ...

    def test(self, value: Any, compiled: Any) -> bool:
        """Does one context value match any of the policy values?"""
        ...


class _StringMatcher:
    """``StringEquals`` family and ``Bool`` (case-insensitive set membership)."""

    __slots__ = ("static", "templates", "ignore_case")

    def __init__(self, values: Sequence[str], *, ignore_case: bool, variables: bool) -> None:
        self.ignore_case = ignore_case
        static: set[str] = set()
        templates: list[Template] = []
        for value in values:
            template = parse_template(value) if variables else None
            if template is not None:
                templates.append(template)
            else:
                static.add(value.lower() if ignore_case else value)
        self.static: tuple[frozenset[str], bool] = (frozenset(static), True)
        self.templates = tuple(templates)

    def resolve(self, ctx: EvalContext) -> tuple[Any, bool]:
        if not self.templates:
            return self.static
        values = set(self.static[0])
        complete = True
        for template in self.templates:
            text = resolve_text(template, ctx)
            if text is None:
                complete = False
            else:
                values.add(text.lower() if self.ignore_case else text)
        return frozenset(values), complete

    def test(self, value: Any, compiled: Any) -> bool:
        text = value if isinstance(value, str) else scalar_to_str(value)
        if text is None:
            return False
        return (text.lower() if self.ignore_case else text) in compiled


class _LikeMatcher:
    """``StringLike`` and ``Arn*`` families: glob patterns, ARN-segment aware for ARNs."""

    __slots__ = ("globs", "templates", "arn", "static")

    def __init__(self, values: Sequence[str], *, arn: bool, variables: bool) -> None:
        self.arn = arn
        globs: list[Matcher] = []
        templates: list[Template] = []
        for value in values:
            template = parse_template(value) if variables else None
            if template is not None:
                templates.append(template)
            else:
                globs.append(compile_glob([(value, True)], arn=arn))
        self.globs = GlobSet(globs)
        self.templates = tuple(templates)
        self.static: tuple[Any, bool] = ((self.globs, ()), True)

    def resolve(self, ctx: EvalContext) -> tuple[Any, bool]:
        if not self.templates:
            return self.static
        resolved: list[Resolved] = []
        complete = True
        for template in self.templates:
            pieces = resolve(template, ctx)
            if pieces is None:
                complete = False
            else:
                resolved.append(pieces)
        return (self.globs, tuple(resolved)), complete

    def test(self, value: Any, compiled: Any) -> bool:
        text = value if isinstance(value, str) else scalar_to_str(value)
        if text is None:
            return False
        globs, dynamic = compiled
        if globs and globs.matches(text):
            return True
        return any(match_resolved(pieces, text, arn=self.arn) for pieces in dynamic)


class _OrderedMatcher:
    """``Numeric*`` and ``Date*`` families (policy variables are not supported by AWS)."""

    __slots__ = ("static", "compare", "convert")

    def __init__(
        self, values: Sequence[float | int], compare: _Compare, convert: Callable[[Any], Any]
    ) -> None:
        self.static: tuple[Any, bool] = (tuple(values), True)
        self.compare = compare
        self.convert = convert

    def resolve(self, ctx: EvalContext) -> tuple[Any, bool]:
        return self.static

    def test(self, value: Any, compiled: Any) -> bool:
        converted = self.convert(value)
        if converted is None:
            return False
        compare = self.compare
        return any(compare(converted, policy_value) for policy_value in compiled)


class _BinaryMatcher:
    __slots__ = ("static",)

    def __init__(self, values: Sequence[bytes]) -> None:
        self.static: tuple[Any, bool] = (frozenset(values), True)

    def resolve(self, ctx: EvalContext) -> tuple[Any, bool]:
        return self.static

    def test(self, value: Any, compiled: Any) -> bool:
        decoded = _decode_base64(value)
        return decoded is not None and decoded in compiled


class _IpMatcher:
    __slots__ = ("static",)

    def __init__(self, ranges: Sequence[_IpRange]) -> None:
        self.static: tuple[Any, bool] = (tuple(ranges), True)

    def resolve(self, ctx: EvalContext) -> tuple[Any, bool]:
        return self.static

    def test(self, value: Any, compiled: Any) -> bool:
        key = _ip_key(value) if isinstance(value, str) else None
        if key is None:
            return False
        version, number = key
        return any(v == version and lo <= number <= hi for v, lo, hi in compiled)


# ------------------------------------------------------------------------------- clauses


def _is_absent(raw: Any) -> bool:
    return raw is MISSING or raw is None or (isinstance(raw, list | tuple | set | frozenset) and not raw)


class ConditionClause:
    """One ``operator: {key: values}`` pair, e.g. ``StringEquals: {aws:username: [a, b]}``."""

    __slots__ = ("operator", "key", "qualifier", "if_exists", "negated", "matcher")

    def __init__(
        self, operator: str, key: str, qualifier: int, if_exists: bool, negated: bool, matcher: _Matcher
    ) -> None:
        self.operator = operator
        self.key = key.lower()
        self.qualifier = qualifier
        self.if_exists = if_exists
        self.negated = negated
        self.matcher = matcher

    def __repr__(self) -> str:
        return f"ConditionClause({self.operator!r}, {self.key!r})"

    def evaluate(self, ctx: EvalContext) -> bool:
        raw = ctx.get(self.key)
        if _is_absent(raw):
            if self.if_exists or self.qualifier == QUALIFIER_ALL:
                return True
            if self.qualifier == QUALIFIER_ANY:
                return False
            return self.negated
        matcher = self.matcher
        compiled, complete = matcher.resolve(ctx)
        if not isinstance(raw, list | tuple | set | frozenset):
            hit = matcher.test(raw, compiled)
            return (complete and not hit) if self.negated else hit
        return self._evaluate_many(raw, compiled, complete)

    def _evaluate_many(self, values: Any, compiled: Any, complete: bool) -> bool:
        test = self.matcher.test
        if self.qualifier == QUALIFIER_ANY:
            if self.negated:
                return complete and any(not test(v, compiled) for v in values)
            return any(test(v, compiled) for v in values)
        if self.qualifier == QUALIFIER_ALL and not self.negated:
            return all(test(v, compiled) for v in values)
        # ForAllValues with a negated operator, and an unqualified operator applied to a
        # multi-valued key: "matches" means some value matches; negation means none does.
        hit = any(test(v, compiled) for v in values)
        return (complete and not hit) if self.negated else hit


class NullClause:
    """``Null``: ``"true"`` means the key is absent, ``"false"`` that it is present."""

    __slots__ = ("operator", "key", "expect_absent")

    def __init__(self, operator: str, key: str, expect_absent: frozenset[bool]) -> None:
        self.operator = operator
        self.key = key.lower()
        self.expect_absent = expect_absent

    def __repr__(self) -> str:
        return f"NullClause({self.operator!r}, {self.key!r})"

    def evaluate(self, ctx: EvalContext) -> bool:
        return _is_absent(ctx.get(self.key)) in self.expect_absent


Clause = ConditionClause | NullClause


# ------------------------------------------------------------------------------- parsing


def parse_operator(name: str) -> tuple[int, str, bool]:
    """Split ``ForAnyValue:StringLikeIfExists`` into (qualifier, base operator, if_exists)."""
    lowered = name.lower()
    qualifier = QUALIFIER_NONE
    if lowered.startswith("forallvalues:"):
        qualifier, lowered = QUALIFIER_ALL, lowered[len("forallvalues:") :]
    elif lowered.startswith("foranyvalue:"):
        qualifier, lowered = QUALIFIER_ANY, lowered[len("foranyvalue:") :]
    if_exists = lowered.endswith(_IF_EXISTS) and lowered != _IF_EXISTS
    base = lowered[: -len(_IF_EXISTS)] if if_exists else lowered
    if base not in _OPERATORS or (if_exists and base == "null"):
        raise MalformedPolicyDocument(f"Unknown condition operator {name}")
    return qualifier, base, if_exists


def parse_conditions(block: Any, *, variables: bool, where: str = "") -> tuple[Clause, ...]:
    """Compile a statement's ``Condition`` element; ``where`` prefixes error messages."""
    if not isinstance(block, dict):
        raise MalformedPolicyDocument(f"{where}Condition must be an object")
    clauses: list[Clause] = []
    for op_name, keys in block.items():
        try:
            qualifier, base, if_exists = parse_operator(op_name)
        except MalformedPolicyDocument as exc:
            raise MalformedPolicyDocument(f"{where}{exc}") from None
        if not isinstance(keys, dict) or not keys:
            raise MalformedPolicyDocument(f"{where}Condition {op_name} must map condition keys to values")
        for key, raw_values in keys.items():
            if not isinstance(key, str) or not key:
                raise MalformedPolicyDocument(f"{where}Condition {op_name} has an invalid key")
            values = _condition_values(raw_values, op_name, key, where)
            clauses.append(_build_clause(op_name, key, qualifier, base, if_exists, values, variables, where))
    return tuple(clauses)


def _condition_values(raw: Any, op_name: str, key: str, where: str) -> list[str]:
    items = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for item in items:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, str | int | float):
            out.append(str(item))
        else:
            raise MalformedPolicyDocument(
                f"{where}Condition {op_name} value for {key} must be a string, number, boolean or list of those"
            )
    return out


def _build_clause(
    op_name: str,
    key: str,
    qualifier: int,
    base: str,
    if_exists: bool,
    values: list[str],
    variables: bool,
    where: str,
) -> Clause:
    family, negated, comparator = _OPERATORS[base]
    if family == "null":
        return NullClause(op_name, key, frozenset(_parse_bool_values(values, op_name, where)))
    matcher = _build_matcher(family, comparator, values, variables, f"{where}Condition {op_name}: ")
    return ConditionClause(op_name, key, qualifier, if_exists, negated, matcher)


def _build_matcher(family: str, comparator: str, values: list[str], variables: bool, where: str) -> _Matcher:
    if family in ("string", "string_ic"):
        return _StringMatcher(values, ignore_case=family == "string_ic", variables=variables)
    if family in ("like", "arn"):
        return _LikeMatcher(values, arn=family == "arn", variables=variables)
    if family == "bool":
        dynamic = variables and any("${" in v for v in values)
        if not dynamic:
            _parse_bool_values(values, "Bool", where)
        return _StringMatcher(values, ignore_case=True, variables=variables)
    if family == "numeric":
        return _OrderedMatcher(
            _typed(values, parse_number, "number", where), _COMPARATORS[comparator], parse_number
        )
    if family == "date":
        return _OrderedMatcher(
            _typed(values, parse_date, "date", where), _COMPARATORS[comparator], parse_date
        )
    if family == "binary":
        return _BinaryMatcher(_typed(values, _decode_base64, "base64 value", where))
    return _IpMatcher(_typed(values, _parse_cidr, "IP address or CIDR block", where))


def _typed(values: list[str], parse: Callable[[Any], Any], what: str, where: str) -> list[Any]:
    out: list[Any] = []
    for value in values:
        parsed = parse(value)
        if parsed is None:
            raise MalformedPolicyDocument(f"{where}{value!r} is not a valid {what}")
        out.append(parsed)
    return out


def _parse_bool_values(values: list[str], op_name: str, where: str) -> list[bool]:
    out: list[bool] = []
    for value in values:
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise MalformedPolicyDocument(f"{where}{op_name} values must be true or false, got {value!r}")
        out.append(lowered == "true")
    return out
