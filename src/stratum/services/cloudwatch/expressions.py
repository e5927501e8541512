"""Metric math: the expression language of GetMetricData and metric-math alarms, for the forms
dashboards commonly use: arithmetic between series and numbers, SUM/AVG/MIN/MAX across series,
RATE, DIFF, ABS, FILL, and METRICS() for every series of the request.

A series is a mapping of period start (epoch seconds) to value; arithmetic between two series keeps
the timestamps both have, as CloudWatch does."""

from __future__ import annotations

import re
from collections.abc import Callable

Series = dict[float, float]
Value = float | Series | list[Series]

_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(\"[^\"]*\"|'[^']*')|(.))")


class ExpressionError(ValueError):
    pass


class Labeled(dict[float, float]):
    """A series that carries its own label (each series a SEARCH finds)."""

    label = ""


# SEARCH's callback: (search expression, statistic, period) -> the series found
Search = Callable[[str, str, int], list[Labeled]]


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            break
        out.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, series: dict[str, Series], period: int, metric_ids: list[str],
                 search: Search | None) -> None:
        self.search = search
        self.tokens = _tokens(text)
        self.pos = 0
        self.series = series
        self.metric_ids = metric_ids
        self.filter = ""
        self.period = period

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ExpressionError(f"expected {expected or 'a term'} at position {self.pos}")
        self.pos += 1
        return token

    def parse(self) -> Value:
        value = self.additive()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()!r}")
        return value

    def additive(self) -> Value:
        value = self.multiplicative()
        while self.peek() in ("+", "-"):
            op = self.take()
            value = _binary(value, self.multiplicative(), op)
        return value

    def multiplicative(self) -> Value:
        value = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()
            value = _binary(value, self.unary(), op)
        return value

    def unary(self) -> Value:
        if self.peek() == "-":
            self.take()
            return _binary(0.0, self.unary(), "-")
        return self.primary()

    def primary(self) -> Value:
        token = self.take()
        if token == "(":
            value = self.additive()
            self.take(")")
            return value
        if token == "[":
            items: list[Series] = []
            while self.peek() != "]":
                items.extend(_as_list(self.additive()))
                if self.peek() == ",":
                    self.take()
            self.take("]")
            return items
        if token[0].isdigit():
            return float(token)
        if token.upper() == "SEARCH" and self.peek() == "(":
            return self.search_call()
        if self.peek() == "(":
            self.take("(")
            args: list[Value] = []
            self.filter = ""
            if (self.peek() or "").startswith('"'):
                self.filter = self.take()[1:-1]
            while self.peek() != ")":
                args.append(self.additive())
                if self.peek() == ",":
                    self.take()
            self.take(")")
            return self.call(token.upper(), args)
        if token in self.series:
            return self.series[token]
        raise ExpressionError(f"Unknown identifier {token!r}")

    def search_call(self) -> Value:
        """SEARCH('{Namespace,Dim} terms', 'Stat', period): every matching metric, a series each."""
        self.take("(")
        query = self.take()
        self.take(",")
        stat = self.take()
        period = self.period
        if self.peek() == ",":
            self.take()
            period = int(float(self.take()))
        self.take(")")
        if query[:1] not in ("'", '"') or stat[:1] not in ("'", '"'):
            raise ExpressionError("SEARCH takes a quoted search expression and a quoted statistic")
        if self.search is None:
            raise ExpressionError("SEARCH is not supported here")
        return list(self.search(query[1:-1], stat[1:-1], period))

    def call(self, name: str, args: list[Value]) -> Value:
        if name == "METRICS":  # the request's metrics (not its expressions), by id when a string is given
            return [self.series[i] for i in self.metric_ids if not self.filter or self.filter in i]
        if not args:
            raise ExpressionError(f"{name} needs an argument")
        if name in _ACROSS:
            return _across(_as_list(args[0]), _ACROSS[name])
        if name in ("RATE", "DIFF", "ABS", "FILL"):
            first = args[0]
            if isinstance(first, list):
                return [self.call(name, [s, *args[1:]]) for s in first]  # type: ignore[misc]
            if not isinstance(first, dict):
                raise ExpressionError(f"{name} needs a time series")
            if name == "ABS":
                return {t: abs(v) for t, v in first.items()}
            if name == "FILL":
                if len(args) < 2 or not isinstance(args[1], float):
                    raise ExpressionError("FILL needs a number to fill with")
                return _fill(first, args[1], self.period)
            return _change(first, per_second=name == "RATE")
        raise ExpressionError(f"Unsupported function {name}")


def _as_list(value: Value) -> list[Series]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value]
    raise ExpressionError("a time series was expected")


_ACROSS: dict[str, Callable[[list[float]], float]] = {
    "SUM": sum, "AVG": lambda vs: sum(vs) / len(vs), "MIN": min, "MAX": max,
}


def _across(items: list[Series], fn: Callable[[list[float]], float]) -> Series:
    times = sorted({t for s in items for t in s})
    return {t: fn([s[t] for s in items if t in s]) for t in times}


def _change(series: Series, per_second: bool) -> Series:
    times = sorted(series)
    out: Series = {}
    for before, after in zip(times, times[1:], strict=False):
        delta = series[after] - series[before]
        out[after] = delta / (after - before) if per_second else delta
    return out


def _fill(series: Series, value: float, period: int) -> Series:
    if not series:
        return series
    times = sorted(series)
    out = dict(series)
    t = times[0]
    while t < times[-1]:
        out.setdefault(t, value)
        t += period
    return dict(sorted(out.items()))


def _apply(a: float, b: float, op: str) -> float | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a / b if b != 0 else None


def _binary(left: Value, right: Value, op: str) -> Value:
    if isinstance(left, list) or isinstance(right, list):
        if isinstance(left, list) and isinstance(right, list):
            raise ExpressionError("arithmetic between two arrays of series is not supported")
        if isinstance(left, list):
            return [_binary(s, right, op) for s in left]  # type: ignore[misc]
        return [_binary(left, s, op) for s in right]  # type: ignore[union-attr, misc]
    if isinstance(left, dict) and isinstance(right, dict):
        pairs = ((t, _apply(left[t], right[t], op)) for t in sorted(left) if t in right)
    elif isinstance(left, dict):
        pairs = ((t, _apply(v, float(right), op)) for t, v in left.items())  # type: ignore[arg-type]
    elif isinstance(right, dict):
        pairs = ((t, _apply(float(left), v, op)) for t, v in right.items())
    else:
        result = _apply(float(left), float(right), op)
        if result is None:
            raise ExpressionError("division by zero")
        return result
    return {t: v for t, v in pairs if v is not None}


def references(text: str) -> set[str]:
    """The identifiers an expression names (query ids among them)."""
    return {t for t in _tokens(text) if t[0].isalpha() or t[0] == "_"}


def evaluate(text: str, series: dict[str, Series], period: int, metric_ids: list[str] | None = None,
             search: Search | None = None) -> Value:
    """``series`` by query id; ``metric_ids`` the ids of the request's MetricStat queries."""
    return _Parser(text, series, period, list(series) if metric_ids is None else metric_ids, search).parse()
