"""Where a function's output goes: CloudWatch Logs group ``/aws/lambda/<function>``, one stream
per execution environment named as Lambda names them (``YYYY/MM/DD/[<version>]<32 hex>``). The
environment's stdout and stderr are the stream's data file; the runtime adds the START, END and
REPORT lines around each invocation."""

from __future__ import annotations

import base64
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stratum.services.logs import catalog
from stratum.services.logs.eventstore import StreamWriter, exclusive

TAIL_BYTES = 4096


def group_name(function_name: str) -> str:
    return f"/aws/lambda/{function_name}"


def open_stream(db: Any, data_dir: Path, account: str, region: str, function_name: str,
                version: str) -> tuple[str, Path]:
    """Create the group (when missing) and a new stream; (stream name, its data file)."""
    group = group_name(function_name)
    stream = f"{datetime.now(UTC):%Y/%m/%d}/[{version}]{uuid.uuid4().hex}"
    relative = catalog.stream_path(account, region, group, stream)
    with db.begin() as conn:
        catalog.create_group(conn, account, region, group)
        catalog.create_stream(conn, account, region, group, stream, path=relative)
    path = Path(data_dir) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=True)
    return stream, path


def append(path: Path, text: str) -> int:
    """Lines of the runtime's own (stamped now, after whatever the function wrote); returns the
    data file's size before them."""
    with exclusive(path):
        before = os.path.getsize(path)
        StreamWriter(path).append_lines(text)
    return before


def tail(path: Path, start: int) -> str:
    """LogResult: the base64 of the last 4 KB the invocation logged."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        begin = max(start, end - TAIL_BYTES)
        f.seek(begin)
        return base64.b64encode(f.read(end - begin)).decode()


def report_line(request_id: str, duration_ms: float, memory_mb: int, used_mb: int, init_ms: float | None) -> str:
    billed = max(1, int(duration_ms + 0.999))
    line = (f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {billed} ms\t"
            f"Memory Size: {memory_mb} MB\tMax Memory Used: {used_mb} MB\t")
    if init_ms is not None:
        line += f"Init Duration: {init_ms:.2f} ms\t"
    return line
