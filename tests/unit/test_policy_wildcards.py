"""Wildcard matching (``*``/``?`` in Action, Resource, StringLike and Arn* conditions): the same
answers as before, in time polynomial in the pattern and value, whatever the number of stars."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterable

import pytest

from stratum.policy import AuthzRequest, Caller
from stratum.policy.conditions import parse_conditions
from stratum.policy.context import EvalContext
from stratum.policy.matching import ActionMatcher, GlobSet, ResourceMatcher, compile_glob, match_resolved

# A policy with five wildcards against a 140-character S3 key took 18 s with ".*" per star.
SLOW_BEFORE_PATTERN = "arn:aws:s3:::bucket/*a*a*a*a*b"
ALICE = Caller(arn="arn:aws:iam::111122223333:user/alice", account="111122223333", kind="user")


def ctx_with(context: dict[str, str] | None = None) -> EvalContext:
    return EvalContext(AuthzRequest(ALICE, "s3:GetObject", "*", None, context or {}))


def reference_regex(pieces: Iterable[tuple[str, bool]], *, arn: bool) -> str:
    """The former translation (a plain ``.*`` / ``[^:]*`` per star): the semantics to keep.
    Exponential on adversarial input, so only ever run on short strings here."""
    pieces = tuple(pieces)
    segmented = arn and sum(text.count(":") for text, _ in pieces) >= 5
    colons = 0
    out: list[str] = []
    for text, wild in pieces:
        for ch in text:
            if ch == ":":
                colons += 1
                out.append(":")
            elif wild and ch in "*?":
                confined = segmented and colons < 5
                if ch == "*":
                    out.append("[^:]*" if confined else ".*")
                else:
                    out.append("[^:]" if confined else ".")
            else:
                out.append(re.escape(ch))
    return "".join(out)


def _random_pieces(rng: random.Random) -> tuple[tuple[str, bool], ...]:
    pieces = []
    for _ in range(rng.randint(1, 3)):
        text = "".join(rng.choice("ab:/*?") for _ in range(rng.randint(0, 7)))
        pieces.append((text, rng.random() < 0.8))  # some pieces come from variables: literal
    return tuple(pieces)


def test_same_answers_as_the_former_regexes_on_random_inputs() -> None:
    rng = random.Random(20261207)
    checked = 0
    for _ in range(4000):
        pieces = _random_pieces(rng)
        arn = rng.random() < 0.5
        if arn and rng.random() < 0.5:  # make ARN-shaped patterns common
            pieces = (("x:y:z:", True), *pieces, (":", True), *pieces)
        expected = re.compile(reference_regex(pieces, arn=arn), re.DOTALL)
        actual = compile_glob(pieces, arn=arn)
        in_set = GlobSet([actual, compile_glob([("\0never", False)], arn=arn)])
        for _ in range(12):
            value = "".join(rng.choice("ab:/?*") for _ in range(rng.randint(0, 14)))
            if arn and rng.random() < 0.5:
                value = "x:y:z:" + value
            want = expected.fullmatch(value) is not None
            assert actual.matches(value) == want, (pieces, arn, value)
            assert in_set.matches(value) == want, (pieces, arn, value)
            checked += 1
    assert checked == 48000


@pytest.mark.parametrize(("pattern", "value", "expected"), [
    ("s3:get*", "s3:getobject", True),
    ("s3:*object", "s3:getobject", True),
    ("s3:get?bject", "s3:getobject", True),
    ("s3:get?bject", "s3:getoobject", False),
    ("*:list*", "iam:listusers", True),
    ("s3:*a*b*c*d*e", "s3:" + "a" * 140, False),
])
def test_actions(pattern: str, value: str, expected: bool) -> None:
    assert ActionMatcher([pattern]).matches(value) is expected
    # Actions compare case-insensitively: patterns are lowered, the caller lowers the action.
    assert ActionMatcher([pattern.upper()]).matches(value) is expected


@pytest.mark.parametrize(("pattern", "value", "expected"), [
    ("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b:c", True),
    ("arn:aws:s3:::bucket/*", "arn:aws:s3:::Bucket/a", False),  # resources are case-sensitive
    ("arn:aws:s3:::bucket/*/x?", "arn:aws:s3:::bucket/a/b/xy", True),
    ("arn:aws:sagemaker:*:*:pipeline/*", "arn:aws:sagemaker:us-east-1:111122223333:pipeline/p", True),
    # a star in the first five segments does not cross ":" ...
    ("arn:aws:sagemaker:*:111122223333:pipeline/*", "arn:aws:sagemaker:us-east-1:x:111122223333:pipeline/p",
     False),
    # (a pattern without all six segments is one glob: there "*" crosses ":")
    ("arn:aws:sagemaker:*:pipeline/*", "arn:aws:sagemaker:us-east-1:111122223333:pipeline/p", True),
    # ... one in the resource part does
    ("arn:aws:sagemaker:us-east-1:111122223333:*", "arn:aws:sagemaker:us-east-1:111122223333:a:b/c", True),
    ("arn:aws:iam::*:role/a*b*c*d*e", "arn:aws:iam::111122223333:role/" + "a" * 140, False),
    ("arn:aws:iam::*:role/a*b*c*d*e", "arn:aws:iam::111122223333:role/" + "ab" * 70 + "cde", True),
])
def test_resources(pattern: str, value: str, expected: bool) -> None:
    assert ResourceMatcher([pattern], variables=False).matches(value, ctx_with()) is expected


def test_policy_variables_are_literal_where_substituted() -> None:
    matcher = ResourceMatcher(["arn:aws:s3:::home/${aws:username}/*"], variables=True)
    assert matcher.matches("arn:aws:s3:::home/ann/doc", ctx_with({"aws:username": "ann"}))
    assert not matcher.matches("arn:aws:s3:::home/bob/doc", ctx_with({"aws:username": "ann"}))
    # A "*" inside a substituted value is a literal, not a wildcard.
    assert not matcher.matches("arn:aws:s3:::home/ann/doc", ctx_with({"aws:username": "*"}))
    assert matcher.matches("arn:aws:s3:::home/*/doc", ctx_with({"aws:username": "*"}))
    # ${*} is a literal star.
    literal = ResourceMatcher(["arn:aws:s3:::b/${*}"], variables=True)
    assert literal.matches("arn:aws:s3:::b/*", ctx_with())
    assert not literal.matches("arn:aws:s3:::b/x", ctx_with())
    assert match_resolved((("a*", True), ("*b", False)), "axyz*b", arn=False)
    assert not match_resolved((("a*", True), ("*b", False)), "axyzb", arn=False)


ADVERSARIAL = [
    (SLOW_BEFORE_PATTERN, "arn:aws:s3:::bucket/" + "a" * 5000),
    ("arn:aws:s3:::bucket/*a*a*a*a*a*a*a*a*a*a*b", "arn:aws:s3:::bucket/" + "a" * 5000),
    ("arn:aws:s3:::bucket/*?a*?a*?a*?a*?a*?c", "arn:aws:s3:::bucket/" + "ab" * 2500),
    ("arn:aws:*:*:*:*:*a*a*a*a*a*c", "arn:aws:s3:x:y:" + "a:" * 2500),
    ("*aab*aab*aab*aab*aab*aac", "aab" * 2000),
]


@pytest.mark.parametrize(("pattern", "value"), ADVERSARIAL)
def test_many_stars_against_long_values_stay_fast(pattern: str, value: str) -> None:
    """Bounds far above the expected microseconds, far below the former seconds-to-hours."""
    matcher = ResourceMatcher([pattern], variables=False)
    started = time.process_time()
    assert not matcher.matches(value, ctx_with())
    assert time.process_time() - started < 0.5


def test_wildcard_heavy_condition_against_a_long_key_is_fast() -> None:
    clauses = parse_conditions({
        "StringLike": {"s3:prefix": ["*a*a*a*a*a*b", "x*y*z*"]},
        "ArnLike": {"aws:SourceArn": "arn:aws:*:*:*:*a*a*a*a*b"},
    }, variables=True)
    ctx = ctx_with({"s3:prefix": "a" * 4000, "aws:SourceArn": "arn:aws:s3:::" + "a" * 4000})
    started = time.process_time()
    for clause in clauses:
        assert not clause.evaluate(ctx)
    assert time.process_time() - started < 0.5


def test_a_wildcard_heavy_policy_compiles_no_regular_expression(monkeypatch: pytest.MonkeyPatch) -> None:
    """A regular expression per pattern cost about 0.3 ms to compile (40 ms of CPU on the event
    loop for a 10,240-character policy of five-star patterns, each time one was put or first
    evaluated); the glob matcher compiles in microseconds."""
    from stratum.policy import parse_policy

    compiled: list[str] = []
    real_compile = re.compile

    def counting(pattern: str, flags: int = 0) -> re.Pattern[str]:
        compiled.append(pattern)
        return real_compile(pattern, flags)

    monkeypatch.setattr(re, "compile", counting)
    patterns = [f"arn:aws:s3:::bucket-{random.random()}/*a*a*a*a*a*{i:03d}b" for i in range(230)]
    doc = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:Get*", "s3:Put*"], "Resource": patterns,
         "Condition": {"StringLike": {"s3:prefix": patterns, "aws:userid": ["*a*a*a*a*a*b"]}}}]}
    started = time.process_time()
    policy = parse_policy(doc, kind="identity")
    assert time.process_time() - started < 0.5
    assert compiled == []
    resources = policy.statements[0].resources
    assert resources is not None
    assert resources.matches(patterns[7].replace("*", "x"), ctx_with())
