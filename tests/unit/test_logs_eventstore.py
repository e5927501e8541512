"""The CloudWatch Logs stream store and filter patterns, in process: every way of reading a stream
(forward from any position, backward, filtered search) sees the same events at the same
positions, whatever mix of job lines and multi-line PutLogEvents events it holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stratum.services.logs.eventstore import StreamReader, StreamWriter
from stratum.services.logs.patterns import PatternError, compile_pattern, prefilter


def _stream(tmp_path: Path) -> Path:
    data = tmp_path / "s.log"
    writer = StreamWriter(data)
    with open(data, "ab", buffering=0) as f:  # a job process writing directly; the runner stamps its lines
        f.write(b"alpha one\nbeta two\n")
        writer.flush(timestamp=1000)
        f.write(b"gamma three\npartial")
        writer.flush(timestamp=2000)
    writer.append_events([(3000, "multi\nline beta"), (3001, "")], ingestion=3005)
    with open(data, "ab") as f:
        f.write(b" line\nlast beta\n")  # shipped back without an index (Ray): read as of mtime
    return data


def test_every_reading_agrees(tmp_path: Path) -> None:
    reader = StreamReader(_stream(tmp_path))
    events = list(reader.forward(0))
    # The unfinished line is ended before PutLogEvents appends, so each stays an event of its own.
    assert [e.message for e in events] == [b"alpha one", b"beta two", b"gamma three", b"partial",
                                           b"multi\nline beta", b"", b" line", b"last beta"]
    assert [e.timestamp for e in events[:3]] == [1000, 1000, 2000]
    assert [e.timestamp for e in events[4:6]] == [3000, 3001]
    assert events[4].ingestion == 3005
    for i, e in enumerate(events):
        assert list(reader.forward(e.position)) == events[i:]
        assert list(reader.backward(e.position)) == events[:i][::-1]
    assert list(reader.backward()) == events[::-1]
    assert list(reader.search(0, compile_pattern(""), None, 0, None)) == events
    beta = list(reader.search(0, compile_pattern("beta"), prefilter("beta"), 0, None))
    assert [e.message for e in beta] == [b"beta two", b"multi\nline beta", b"last beta"]
    assert beta == [e for e in events if b"beta" in e.message]
    assert [e.message for e in reader.search(0, compile_pattern("-beta -a"), None, 0, None)] == [b"", b" line"]
    assert [e.message for e in reader.search(0, compile_pattern(""), None, 3000, 3001)] == [b"multi\nline beta", b""]


def test_writer_resumes_after_a_restart(tmp_path: Path) -> None:
    data = _stream(tmp_path)
    before = list(StreamReader(data).forward(0))
    StreamWriter(data).append_lines("after restart\n")
    after = list(StreamReader(data).forward(0))
    # The same events at the same positions (the unindexed tail is stamped once it is indexed).
    assert [(e.position, e.message) for e in after[:-1]] == [(e.position, e.message) for e in before]
    assert after[:6] == before[:6] and after[-1].message == b"after restart"


@pytest.mark.parametrize(("pattern", "matches"), [
    ("ERROR", ["ERROR disk full", '{"level": "ERROR", "ms": 250}']),
    ('"disk full"', ["ERROR disk full"]),
    ("ERROR -disk", ['{"level": "ERROR", "ms": 250}']),
    ("?full ?ok", ["ERROR disk full", "all ok"]),
    ("{ $.ms > 100 }", ['{"level": "ERROR", "ms": 250}']),
    ('{ $.level = "E*" || $.ms < 10 }', ['{"level": "ERROR", "ms": 250}', '{"level": "INFO", "ms": 5}']),
    ("{ $.missing NOT EXISTS && $.ms >= 5 }", ['{"level": "ERROR", "ms": 250}', '{"level": "INFO", "ms": 5}']),
])
def test_filter_patterns(pattern: str, matches: list[str]) -> None:
    messages = ["ERROR disk full", "all ok", json.dumps({"level": "ERROR", "ms": 250}),
                json.dumps({"level": "INFO", "ms": 5})]
    match = compile_pattern(pattern)
    assert [m for m in messages if match(m.encode())] == matches
    needles = prefilter(pattern)
    if needles:
        assert all(any(n in m.encode() for n in needles) for m in matches)


@pytest.mark.parametrize("pattern", ["{ $.a > }", "{ $.a = 1", "[ip, user]", "{ a = 1 }"])
def test_bad_patterns(pattern: str) -> None:
    with pytest.raises(PatternError):
        compile_pattern(pattern)
