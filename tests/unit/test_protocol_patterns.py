"""Model ``pattern`` constraints are checked in time linear in the value, with ``re``'s answers."""

from __future__ import annotations

import random
import re
import time
from re import _parser as sre_parse

import botocore.session
import pytest

from stratum.protocol.errors import ServiceError
from stratum.protocol.patterns import compile_pattern, nests_repetitions
from stratum.protocol.service_models import service_index
from stratum.protocol.validate import validate_input

SERVED = ["sagemaker", "iam", "sts", "s3", "kms", "events", "ram", "organizations"]


def _nested_patterns() -> list[str]:
    session = botocore.session.get_session()
    found: set[str] = set()
    for service in SERVED:
        model = session.get_service_model(service)
        for name in model.shape_names:
            pattern = model.shape_for(name).metadata.get("pattern")
            if not pattern:
                continue
            try:
                tree = sre_parse.parse(pattern)
            except re.error:
                continue
            if nests_repetitions(tree):
                found.add(pattern)
    return sorted(found)


def test_nested_patterns_give_the_same_answers_as_re_on_short_values() -> None:
    rng = random.Random(11)
    patterns = _nested_patterns()
    assert len(patterns) > 50
    checked = 0
    for pattern in patterns:
        reference = re.compile(pattern)
        linear = compile_pattern(pattern)
        assert linear is not None
        alphabet = "aZ09-_./: \t@" + "".join(ch for ch in pattern if ch.isprintable() and ch not in "\\[]{}()^$?*+|")[:20]
        for _ in range(40):
            value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 10)))
            assert bool(linear.fullmatch(value)) == (reference.fullmatch(value) is not None), (pattern, value)
            checked += 1
    assert checked == 40 * len(patterns)


def test_a_header_value_that_backtracks_is_refused_at_once() -> None:
    """EventBridge's header-value pattern nests repetitions: 60 characters took over 3 s with
    ``re``, and 512 (the model's own maximum) would have held the event loop for hours."""
    op = service_index("events").model.operation_model("CreateConnection")
    params = {"Name": "c", "AuthorizationType": "API_KEY", "AuthParameters": {
        "ApiKeyAuthParameters": {"ApiKeyName": "k", "ApiKeyValue": "v"},
        "InvocationHttpParameters": {"HeaderParameters": [{"Key": "h", "Value": "a " * 255 + "\x01"}]}}}
    started = time.process_time()
    with pytest.raises(ServiceError) as exc:
        validate_input(op.input_shape, params)
    assert time.process_time() - started < 0.5
    assert "Member must satisfy regular expression pattern" in exc.value.message
    params["AuthParameters"]["InvocationHttpParameters"]["HeaderParameters"][0]["Value"] = "a b c"
    validate_input(op.input_shape, params)


def test_a_name_that_backtracks_is_refused_at_once() -> None:
    op = service_index("sagemaker").model.operation_model("DescribePipeline")
    started = time.process_time()
    with pytest.raises(ServiceError):
        validate_input(op.input_shape, {"PipelineName": "a" * 200 + "--"})
    validate_input(op.input_shape, {"PipelineName": "a-b-" * 50 + "c"})
    assert time.process_time() - started < 0.5
