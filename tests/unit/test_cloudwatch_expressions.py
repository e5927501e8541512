"""Metric math: arithmetic alignment, functions across series, RATE/DIFF/FILL, errors."""

from __future__ import annotations

import pytest

from stratum.services.cloudwatch.expressions import ExpressionError, evaluate, references

A = {0.0: 1.0, 60.0: 2.0, 120.0: 4.0}
B = {0.0: 10.0, 60.0: 20.0}


def test_arithmetic_keeps_the_timestamps_both_series_have() -> None:
    assert evaluate("a + b * 2", {"a": A, "b": B}, 60) == {0.0: 21.0, 60.0: 42.0}
    assert evaluate("-(a - 1) / 2", {"a": A}, 60) == {0.0: -0.0, 60.0: -0.5, 120.0: -1.5}
    assert evaluate("b / (a - 1)", {"a": A, "b": B}, 60) == {60.0: 20.0}  # division by zero drops the point


def test_functions_across_series_and_over_time() -> None:
    series = {"a": A, "b": B}
    assert evaluate("SUM([a, b])", series, 60) == {0.0: 11.0, 60.0: 22.0, 120.0: 4.0}
    assert evaluate("AVG(METRICS())", series, 60, ["a"]) == A
    assert evaluate("MAX(METRICS(\"b\"))", series, 60) == B
    assert evaluate("RATE(a)", series, 60) == {60.0: 1 / 60, 120.0: 2 / 60}
    assert evaluate("DIFF(a)", series, 60) == {60.0: 1.0, 120.0: 2.0}
    assert evaluate("FILL(x, 0)", {"x": {0.0: 1.0, 180.0: 2.0}}, 60) == {0.0: 1.0, 60.0: 0.0, 120.0: 0.0, 180.0: 2.0}
    assert evaluate("ABS(0 - a)", series, 60) == A


def test_errors_and_references() -> None:
    with pytest.raises(ExpressionError):
        evaluate("a +", {"a": A}, 60)
    with pytest.raises(ExpressionError):
        evaluate("missing * 2", {"a": A}, 60)
    with pytest.raises(ExpressionError):
        evaluate("NOPE(a)", {"a": A}, 60)
    assert references("100 * e / SUM([r, x1])") >= {"e", "r", "x1"}
