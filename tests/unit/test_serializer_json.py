"""JSON output serialization: what every operation's output becomes on the wire, held against the
straightforward shape walk (every member of the shape, in shape order) on generated outputs; leaves
(timestamps, blobs, scalars) are converted by the serializer in both."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.model import Shape

from stratum.protocol import serializer
from stratum.protocol.service_models import service_model


def _reference(shape: Shape, value: Any) -> Any:
    kind = shape.type_name
    if value is None:
        return None
    if kind == "structure":
        out: dict[str, Any] = {}
        for name, member in shape.members.items():
            item = value.get(name)
            if item is not None:
                out[member.serialization.get("name", name)] = _reference(member, item)
        return out
    if kind == "list":
        return [_reference(shape.member, v) for v in value]
    if kind == "map":
        return {k: _reference(shape.value, v) for k, v in value.items()}
    return serializer._to_json(shape, value)  # a leaf: timestamps, blobs and scalars as the serializer writes them


def _value(shape: Shape, rng: random.Random, depth: int) -> Any:
    kind = shape.type_name
    if kind == "structure":
        if depth > 3:
            return {}
        out: dict[str, Any] = {}
        for name, member in shape.members.items():
            roll = rng.random()
            if roll < 0.5:
                out[name] = _value(member, rng, depth + 1)
            elif roll < 0.6:
                out[name] = None
        if rng.random() < 0.3:
            out["NotAMember"] = "dropped"
        return dict(rng.sample(list(out.items()), len(out)))  # any key order
    if kind == "list":
        return [_value(shape.member, rng, depth + 1) for _ in range(rng.randint(0, 2 if depth < 3 else 0))]
    if kind == "map":
        return {f"k{i}": _value(shape.value, rng, depth + 1) for i in range(rng.randint(0, 2 if depth < 3 else 0))}
    if kind == "timestamp":
        return rng.choice([datetime(2026, 11, 22, 3, 4, 5, 678000, tzinfo=UTC), 1795000000.5])
    if kind == "blob":
        return rng.choice([b"\x00bytes", "text"])
    if kind in ("integer", "long"):
        return rng.randint(-5, 10**12)
    if kind in ("float", "double"):
        return rng.random()
    if kind == "boolean":
        return rng.random() < 0.5
    return rng.choice(["", "text", "é"])


@pytest.mark.parametrize("service", ["sagemaker", "events", "kms", "ram"])
def test_every_output_shape_is_written_as_the_shape_walk_writes_it(service: str) -> None:
    model = service_model(service)
    rng = random.Random(service)
    checked = 0
    for name in model.operation_names:
        shape = model.operation_model(name).output_shape
        if shape is None:
            continue
        for _ in range(3):
            value = _value(shape, rng, 0)
            assert serializer._to_json(shape, value) == _reference(shape, value), name
            checked += 1
    assert checked > 30
