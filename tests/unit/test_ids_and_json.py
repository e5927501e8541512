"""Request ids are version-4 UUIDs; the hot-path JSON writer writes what the standard library reads back alike."""

from __future__ import annotations

import collections
import json
import math
import random
import uuid

import pytest

from stratum import jsonfast
from stratum.ids import request_id
from stratum.services.sagemaker.pipelines.records import new_id


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


def _same(a: object, b: object) -> bool:
    """Equal, with the same types throughout (1 == 1.0 would hide an integer read as a float)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)  # type: ignore[index]
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)  # type: ignore[arg-type]
    return a == b


def test_jsonfast_reads_exactly_what_the_standard_library_reads() -> None:
    rng = random.Random(7)
    texts: list[bytes | str] = [
        b'{"a":123456789012345678901234567890}', b'{"a":-9223372036854775809}', b'{"a":18446744073709551616}',
        b'{"a":9223372036854775807,"b":-9223372036854775808}', b'{"a":"\\ud800"}', b'{"a":NaN,"b":-Infinity}',
        b'{"a":1e400}', b'\xef\xbb\xbf{"a":1}', '{"a":1}'.encode("utf-16"), b'{"a":1,"a":2}', b' [1.0,-0.0] ',
        '{"é":"\u2028"}', '{"a":"\\ud83d\\ude00"}', b'{"token":"1234567890123456789012"}',
        '{"a":"\ud800"}', '[1234567890123456789]', '[123456789012345678]', b'[-12345678901234567890]',
        bytearray(b'{"a":[1,2]}'), '{"a":"\u0661\u0662"}']
    for _ in range(300):
        value = {f"k{i}": rng.choice([rng.randint(-10**25, 10**25), rng.randint(-1000, 1000), rng.random() * 1e6,
                                      "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(5)), None, True, [1, "x"]])
                 for i in range(rng.randint(0, 6))}
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
        texts.append(text.encode() if rng.random() < 0.5 else text)
    for text in texts:
        assert _same(jsonfast.loads(text), json.loads(text)), text


def test_jsonfast_read_errors_are_the_standard_library_errors() -> None:
    for text in (b"", b"{", b'{"a":1}\x00', b"[1,]", "{'a': 1}"):
        try:
            json.loads(text)
        except ValueError as exc:
            expected = str(exc)
        with pytest.raises(json.JSONDecodeError) as excinfo:
            jsonfast.loads(text)
        assert str(excinfo.value) == expected


def test_pipeline_ids_are_lower_alphanumeric_and_every_character_is_equally_likely() -> None:
    ids = [new_id(12) for _ in range(30000)]
    assert all(len(i) == 12 and i.isascii() and i.isalnum() and i == i.lower() for i in ids)
    assert len(set(ids)) == len(ids)
    counts = collections.Counter("".join(ids))
    assert len(counts) == 36
    expected = 12 * 30000 / 36
    chi2 = sum((n - expected) ** 2 / expected for n in counts.values())
    assert chi2 < 80  # 35 degrees of freedom: above 80 has probability below 1e-5 for a uniform draw
    assert len(new_id(24)) == 24 and len(new_id(64)) == 64
