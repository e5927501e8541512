"""The MD5 digests SQS returns with a message, which the SDKs check (pure logic)."""

from __future__ import annotations

import hashlib
import struct
from typing import Any


def md5_of_body(body: str) -> str:
    return hashlib.md5(body.encode("utf-8")).hexdigest()  # noqa: S324 - the checksum SQS defines


def _piece(data: bytes) -> bytes:
    return struct.pack("!I", len(data)) + data


def md5_of_attributes(attributes: dict[str, dict[str, Any]]) -> str | None:
    """MD5OfMessageAttributes as SQS computes it: per attribute, sorted by name, the length-prefixed
    name and data type, a transport byte (1 string, 2 binary), then the length-prefixed value."""
    if not attributes:
        return None
    out = b""
    for name in sorted(attributes):
        value = attributes[name]
        data_type = str(value["DataType"])
        out += _piece(name.encode()) + _piece(data_type.encode())
        if "BinaryValue" in value and value["BinaryValue"] is not None:
            out += b"\x02" + _piece(bytes(value["BinaryValue"]))
        else:
            out += b"\x01" + _piece(str(value["StringValue"]).encode())
    return hashlib.md5(out).hexdigest()  # noqa: S324 - the checksum SQS defines
