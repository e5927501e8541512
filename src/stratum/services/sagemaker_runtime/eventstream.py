"""The AWS event-stream encoding (application/vnd.amazon.eventstream), for the messages of
InvokeEndpointWithResponseStream: each is a prelude (total length, headers length, their CRC-32),
string headers (:message-type, :event-type or :exception-type, :content-type), the payload, and a
CRC-32 of everything before it; botocore's EventStream decodes them."""

from __future__ import annotations

import json
import struct
import zlib

_STRING = 7  # header value type: a UTF-8 string with a 2-byte length


def _headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def message(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = _headers(headers)
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack("!II", total, len(encoded))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    body = prelude + encoded + payload
    return body + struct.pack("!I", zlib.crc32(body))


def payload_part(data: bytes) -> bytes:
    return message({":message-type": "event", ":event-type": "PayloadPart",
                    ":content-type": "application/octet-stream"}, data)


def model_stream_error(error_code: str, text: str) -> bytes:
    return message({":message-type": "exception", ":exception-type": "ModelStreamError",
                    ":content-type": "application/json"},
                   json.dumps({"Message": text, "ErrorCode": error_code}).encode())
