"""A request's fingerprint (stored with its ClientRequestToken) is the SHA-256 of one fixed JSON text,
whichever writer produced it."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime
from typing import Any

from stratum.services.sagemaker.idempotency import fingerprint


def _reference(params: dict[str, Any]) -> str:
    body = {k: v for k, v in params.items() if k != "ClientRequestToken"}
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def _value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "ascii", "int", "bigint", "float", "bool", "none", "datetime"]
    if depth < 3:
        kinds += ["dict", "list"]
    kind = rng.choice(kinds)
    if kind == "str":
        return "".join(chr(rng.choice([rng.randint(0, 0x7F), rng.randint(0x80, 0x2FFF)])) for _ in range(rng.randint(0, 6)))
    if kind == "ascii":
        return "".join(chr(rng.randint(0, 0x7F)) for _ in range(rng.randint(0, 8)))
    if kind == "int":
        return rng.randint(-10**6, 10**6)
    if kind == "bigint":
        return rng.choice([1, -1]) * rng.randint(2**63 - 2, 2**70)
    if kind == "float":
        return rng.choice([rng.random(), 1e16, 1e-7, 123.0, float("nan"), float("inf"), -0.0, 1.5e300])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "datetime":
        return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    if kind == "dict":
        return {_key(rng): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def _key(rng: random.Random) -> str:
    return rng.choice(["PipelineName", "PipelineParameters", "Name", "Value", "é", "a", "B", "_", "z1", "Z"])


def test_fingerprint_is_the_sorted_ascii_json_text_for_any_params() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        params = {_key(rng): _value(rng) for _ in range(rng.randint(0, 5))}
        params["ClientRequestToken"] = "t"
        assert fingerprint(params) == _reference(params), params


def test_fingerprint_ignores_the_token_only() -> None:
    a = {"PipelineName": "p", "ClientRequestToken": "one", "PipelineParameters": [{"Name": "N", "Value": "v"}]}
    assert fingerprint(a) == fingerprint({**a, "ClientRequestToken": "two"})
    assert fingerprint(a) != fingerprint({**a, "PipelineName": "q"})
