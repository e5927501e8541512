"""The append-only event store of one log stream: a data file and an index beside it.

The data file holds the events' messages as text, one line per event, exactly what a job's
processes wrote (so ``stratum logs``, metric parsing and people read it as a plain log). The index
(``<data>.idx``) is a list of fixed-size records ``(offset, length, timestamp, ingestion, kind)``
covering the data file in order: a ``LINES`` record covers complete lines that arrived together
and share its timestamp (a job's output, stamped as it is appended); an ``EVENT`` record covers
one message that may itself hold newlines (PutLogEvents). Bytes past the last record are complete
lines nobody indexed yet (a log shipped back from a Ray worker): they read as events stamped with
the file's modification time.

An event's position is its byte offset in the data file; GetLogEvents and FilterLogEvents tokens
are positions, so reading a page seeks straight to it. Appends never move earlier events.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

RECORD = struct.Struct("<QIqqB")
LINES = 0
EVENT = 1
_READ_CHUNK = 1 << 18

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def now_ms() -> int:
    return int(time.time() * 1000)


def lock_for(path: str | Path) -> threading.Lock:
    """One writer at a time per stream within this process."""
    key = str(path)
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = threading.Lock()
        return lock


@contextlib.contextmanager
def exclusive(data: str | Path) -> Iterator[None]:
    """Hold the stream for writing: against other threads here and, with flock on its index,
    against other processes (another server on the same data directory, a job's Ray task)."""
    with lock_for(data):
        index = index_path(data)
        index.parent.mkdir(parents=True, exist_ok=True)
        with open(index, "ab") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(held, fcntl.LOCK_UN)


def index_path(data: str | Path) -> Path:
    return Path(str(data) + ".idx")


class Event(NamedTuple):  # a tuple: tens of thousands are made per page
    position: int  # byte offset of the message in the data file
    end: int  # position of the event after it
    timestamp: int
    ingestion: int
    message: bytes


class StreamWriter:
    """Appends to a stream. ``flush`` stamps and indexes the complete lines others wrote to the
    data file since the last call (a job process writes there directly, at full speed)."""

    def __init__(self, data: str | Path) -> None:
        self.data = Path(data)
        self.index = index_path(data)
        self.data.parent.mkdir(parents=True, exist_ok=True)
        self.data.touch(exist_ok=True)
        self.indexed_end = _indexed_end(self.index)

    def flush(self, timestamp: int | None = None) -> None:
        size = self.data.stat().st_size
        if size <= self.indexed_end:
            return
        with open(self.data, "rb") as f:
            f.seek(self.indexed_end)
            fresh = f.read(size - self.indexed_end)
        last_newline = fresh.rfind(b"\n")
        if last_newline < 0:
            return  # a line still being written
        stamp = now_ms() if timestamp is None else timestamp
        length = last_newline + 1
        with open(self.index, "ab") as idx:
            idx.write(RECORD.pack(self.indexed_end, length, stamp, stamp, LINES))
        self.indexed_end += length

    def seal(self) -> None:
        """Index everything written so far, ending a line left unfinished, so what is appended
        next starts an event of its own."""
        size = self.data.stat().st_size
        if size > self.indexed_end:
            with open(self.data, "rb+") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    f.seek(0, os.SEEK_END)
                    f.write(b"\n")
        self.flush()

    def append_lines(self, text: str) -> None:
        """Lines written by the server itself (job progress), stamped now."""
        self.seal()
        with open(self.data, "ab") as f:
            f.write(text.encode("utf-8", "replace"))
        self.flush()

    def append_events(self, events: list[tuple[int, str]], ingestion: int) -> None:
        """PutLogEvents: each (timestamp, message) is one event, whatever newlines it holds."""
        self.seal()
        records = []
        chunks = []
        offset = self.data.stat().st_size
        for timestamp, message in events:
            body = message.encode("utf-8", "replace") + b"\n"
            records.append(RECORD.pack(offset, len(body), timestamp, ingestion, EVENT))
            chunks.append(body)
            offset += len(body)
        with open(self.data, "ab") as f:
            f.write(b"".join(chunks))
        with open(self.index, "ab") as idx:
            idx.write(b"".join(records))
        self.indexed_end = offset


def _indexed_end(index: Path) -> int:
    try:
        with open(index, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            whole = size - size % RECORD.size
            if whole == 0:
                return 0
            f.seek(whole - RECORD.size)
            offset, length, *_ = RECORD.unpack(f.read(RECORD.size))
            return int(offset + length)
    except FileNotFoundError:
        return 0


class StreamReader:
    """A consistent view of one stream's events as of when it was opened."""

    def __init__(self, data: str | Path) -> None:
        self.data = Path(data)
        try:
            raw = index_path(data).read_bytes()
        except FileNotFoundError:
            raw = b""
        raw = raw[: len(raw) - len(raw) % RECORD.size]
        self.records = list(RECORD.iter_unpack(raw))
        try:
            st = self.data.stat()
            self.size, self.mtime = st.st_size, int(st.st_mtime * 1000)
        except FileNotFoundError:
            self.size, self.mtime = 0, 0
        indexed = self.records[-1][0] + self.records[-1][1] if self.records else 0
        if self.size > indexed:
            # Unindexed complete lines at the end (see the module docstring).
            tail = self._read(indexed, self.size)
            cut = tail.rfind(b"\n") + 1
            if cut:
                self.records.append((indexed, cut, self.mtime, self.mtime, LINES))
        self.starts = [r[0] for r in self.records]
        self.end = self.records[-1][0] + self.records[-1][1] if self.records else 0

    def _read(self, start: int, stop: int) -> bytes:
        with open(self.data, "rb") as f:
            f.seek(start)
            return f.read(stop - start)

    # ------------------------------------------------------------------------------------ summary
    def first_timestamp(self) -> int | None:
        return min((r[2] for r in self.records[:1]), default=None)

    def last_timestamp(self) -> int | None:
        return self.records[-1][2] if self.records else None

    def last_ingestion(self) -> int | None:
        return self.records[-1][3] if self.records else None

    # ------------------------------------------------------------------------------------ reading
    def forward(self, position: int = 0) -> Iterator[Event]:
        """Events at or after ``position``, in stored order."""
        if not self.records:
            return
        i = max(bisect.bisect_right(self.starts, position) - 1, 0)
        with open(self.data, "rb") as f:
            for offset, length, ts, ingest, kind in self.records[i:]:
                stop = offset + length
                if stop <= position:
                    continue
                start = max(offset, position)
                if kind == EVENT:
                    if start != offset:
                        continue
                    f.seek(offset)
                    yield Event(offset, stop, ts, ingest, f.read(length)[:-1])
                    continue
                # A LINES record may be large (a job printing fast): read it in chunks.
                while start < stop:
                    f.seek(start)
                    chunk = f.read(min(_READ_CHUNK, stop - start))
                    cut = chunk.rfind(b"\n") + 1
                    if cut == 0:  # a line longer than a chunk: read up to the record's end
                        chunk += f.read(stop - start - len(chunk))
                        cut = len(chunk)
                    pos = start
                    for line in chunk[:cut].split(b"\n")[:-1]:
                        nxt = pos + len(line) + 1
                        yield Event(pos, nxt, ts, ingest, line)
                        pos = nxt
                    start += cut

    def search(self, position: int, matcher: Callable[[bytes], bool], prefilter: list[bytes] | None,
               start_time: int, end_time: int | None) -> Iterator[Event]:
        """Events at or after ``position`` within [start_time, end_time] whose message ``matcher``
        accepts. Whole records outside the time window are skipped unread; with ``prefilter``
        (substrings one of which every match contains) only the lines holding one are looked at,
        found with bytes.find over large blocks rather than line by line."""
        if not self.records:
            return
        i = max(bisect.bisect_right(self.starts, position) - 1, 0)
        with open(self.data, "rb") as f:
            for offset, length, ts, ingest, kind in self.records[i:]:
                stop = offset + length
                if stop <= position or ts < start_time or (end_time is not None and ts > end_time):
                    continue
                start = max(offset, position)
                if kind == EVENT:
                    if start != offset:
                        continue
                    f.seek(offset)
                    message = f.read(length)[:-1]
                    if matcher(message):
                        yield Event(offset, stop, ts, ingest, message)
                    continue
                while start < stop:
                    f.seek(start)
                    chunk = f.read(min(_READ_CHUNK, stop - start))
                    cut = chunk.rfind(b"\n") + 1
                    if cut == 0:
                        chunk += f.read(stop - start - len(chunk))
                        cut = len(chunk)
                    block = chunk[:cut]
                    if prefilter:
                        # Only the lines holding one of the substrings are tested.
                        starts: set[int] = set()
                        for needle in prefilter:
                            hit = block.find(needle)
                            while hit >= 0:
                                line_start = block.rfind(b"\n", 0, hit) + 1
                                starts.add(line_start)
                                hit = block.find(needle, block.find(b"\n", hit) + 1)
                        for line_start in sorted(starts):
                            line_end = block.find(b"\n", line_start)
                            line = block[line_start:line_end]
                            if matcher(line):
                                yield Event(start + line_start, start + line_end + 1, ts, ingest, line)
                    else:
                        # Positions only for the matches: "\n<line>\n" first found after the last
                        # match is that line (an earlier identical line would have matched too).
                        framed = b"\n" + block
                        cursor = 0
                        for line in [ln for ln in block.split(b"\n")[:-1] if matcher(ln)]:
                            at = framed.find(b"\n" + line + b"\n", cursor)
                            cursor = at + len(line) + 1
                            yield Event(start + at, start + at + len(line) + 1, ts, ingest, line)
                    start += cut

    def backward(self, position: int | None = None) -> Iterator[Event]:
        """Events strictly before ``position`` (the end when None), last first."""
        limit = self.end if position is None else position
        i = bisect.bisect_left(self.starts, limit)
        if not i:
            return
        with open(self.data, "rb") as f:
            for offset, length, ts, ingest, kind in reversed(self.records[:i]):
                stop = min(offset + length, limit)
                if kind == EVENT:
                    if offset + length > limit:
                        continue
                    f.seek(offset)
                    yield Event(offset, offset + length, ts, ingest, f.read(length)[:-1])
                    continue
                f.seek(offset)
                block = f.read(stop - offset)
                lines = block.split(b"\n")[:-1]
                ends = []
                pos = offset
                for line in lines:
                    ends.append((pos, line))
                    pos += len(line) + 1
                for pos, line in reversed(ends):
                    yield Event(pos, pos + len(line) + 1, ts, ingest, line)
