"""Request ids are version-4 UUIDs; the hot-path JSON writer writes what the standard library reads back alike."""

from __future__ import annotations

import json
import math
import uuid

from stratum import jsonfast
from stratum.ids import request_id


def test_request_ids_are_distinct_version_4_uuids() -> None:
    seen = set()
    for _ in range(2000):
        rid = request_id()
        parsed = uuid.UUID(rid)
        assert str(parsed) == rid and parsed.version == 4 and parsed.variant == uuid.RFC_4122
        seen.add(rid)
    assert len(seen) == 2000


def test_jsonfast_round_trips_like_the_standard_library() -> None:
    values = [{"a": [1, 2.5, None, True], "é": "ünï\u2028", "n": {"x": -0.0}}, [], "text", 10**30, 1.1e-300,
              {1: "int key"}]
    for value in values:
        text = jsonfast.dumps(value)
        assert json.loads(text) == json.loads(json.dumps(value))
    assert jsonfast.dumps_bytes({"k": "é"}) == '{"k":"é"}'.encode()


def test_jsonfast_writes_valid_json_for_nan() -> None:
    assert json.loads(jsonfast.dumps([math.nan, math.inf])) == [None, None]
