"""application/x-recordio-protobuf: SageMaker's RecordIO framing of ``aialgs.data.Record``
protobuf messages (the format of the SDK's RecordSerializer / ``write_numpy_to_dense_tensor`` and
of the built-in algorithms' selectable output), read and written without a protobuf dependency.

Framing (MXNet RecordIO): a little-endian uint32 magic 0xCED7230A, a uint32 length, the record,
zero padding to a multiple of 4 bytes. Messages (sagemaker/amazon/record.proto)::

    Record        { map<string, Value> features = 1; map<string, Value> label = 2; ... }
    Value         { Float32Tensor float32_tensor = 2; Float64Tensor float64_tensor = 3;
                    Int32Tensor int32_tensor = 7; Bytes bytes = 9; }
    *Tensor       { repeated <float|double|int32> values = 1; repeated uint64 keys = 2;
                    repeated uint64 shape = 3; }
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAGIC = 0xCED7230A
_TENSOR_KINDS = {2: "float32", 3: "float64", 7: "int32"}


@dataclass
class Tensor:
    kind: str  # float32, float64, int32
    values: list[float] = field(default_factory=list)
    keys: list[int] = field(default_factory=list)
    shape: list[int] = field(default_factory=list)


@dataclass
class Record:
    features: dict[str, Tensor] = field(default_factory=dict)
    label: dict[str, Tensor] = field(default_factory=dict)


# ------------------------------------------------------------------------------------- framing
def split_records(buf: bytes) -> Iterator[bytes]:
    offset = 0
    while offset < len(buf):
        if offset + 8 > len(buf):
            raise ValueError(f"Truncated record header at offset {offset}")
        magic, length = struct.unpack_from("<II", buf, offset)
        if magic != MAGIC:
            raise ValueError(f"Invalid RecordIO magic at offset {offset}")
        offset += 8
        if offset + length > len(buf):
            raise ValueError(f"Truncated record at offset {offset}")
        yield buf[offset:offset + length]
        offset += (length + 3) // 4 * 4


def frame(record: bytes) -> bytes:
    return struct.pack("<II", MAGIC, len(record)) + record + b"\x00" * ((4 - len(record) % 4) % 4)


# ------------------------------------------------------------------------------------ protobuf
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("Truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value): ints for varints, bytes for the others."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"Unsupported protobuf wire type {wire}")
        yield number, wire, value


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _tensor(kind: str, buf: bytes) -> Tensor:
    tensor = Tensor(kind)
    fmt = {"float32": "<f", "float64": "<d"}.get(kind)
    for number, wire, value in _fields(buf):
        if number == 1:
            if fmt is not None:
                size = struct.calcsize(fmt)
                tensor.values.extend(x[0] for x in struct.iter_unpack(fmt, value[: len(value) // size * size]))
            elif wire == 0:
                tensor.values.append(_signed32(value))
            else:
                pos = 0
                while pos < len(value):
                    v, pos = _varint(value, pos)
                    tensor.values.append(_signed32(v))
        elif number in (2, 3):
            target = tensor.keys if number == 2 else tensor.shape
            if wire == 0:
                target.append(value)
            else:
                pos = 0
                while pos < len(value):
                    v, pos = _varint(value, pos)
                    target.append(v)
    return tensor


def _value(buf: bytes) -> Tensor | None:
    for number, _wire, value in _fields(buf):
        if number in _TENSOR_KINDS:
            return _tensor(_TENSOR_KINDS[number], value)
    return None


def parse_record(buf: bytes) -> Record:
    record = Record()
    for number, _wire, value in _fields(buf):
        if number not in (1, 2):
            continue
        key, tensor = "", None
        for entry_number, _entry_wire, entry_value in _fields(value):
            if entry_number == 1:
                key = entry_value.decode()
            elif entry_number == 2:
                tensor = _value(entry_value)
        if tensor is not None:
            (record.features if number == 1 else record.label)[key] = tensor
    return record


def _key(number: int, wire: int) -> bytes:
    return _encode_varint(number << 3 | wire)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _delimited(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _encode_varint(len(payload)) + payload


def encode_record(label: dict[str, list[float]]) -> bytes:
    """A Record whose label map holds float32 tensors (the built-in algorithms' output)."""
    out = b""
    for key, values in label.items():
        packed = struct.pack(f"<{len(values)}f", *values)
        value = _delimited(2, _delimited(1, packed))  # Value.float32_tensor.values
        out += _delimited(2, _delimited(1, key.encode()) + _delimited(2, value))
    return out


# --------------------------------------------------------------------------------- to matrices
def read_features(buf: bytes) -> tuple[Any, np.ndarray | None]:
    """Features (a dense array, or a CSR matrix when any record is sparse) and labels, as the
    XGBoost container's reader builds them from the "values" tensors."""
    from scipy.sparse import csr_matrix
    from scipy.sparse import vstack as sparse_vstack

    rows: list[Any] = []
    labels: list[float] = []
    sparse = False
    for raw in split_records(bytes(buf)):
        record = parse_record(raw)
        tensor = record.features.get("values")
        if tensor is None:
            continue
        values = np.array(tensor.values, dtype=np.float64 if tensor.kind == "float64" else np.float32)
        if tensor.keys:
            sparse = True
            width = int(tensor.shape[0]) if tensor.shape else int(max(tensor.keys)) + 1
            rows.append(csr_matrix((values, np.array(tensor.keys, dtype=np.int64), [0, len(tensor.keys)]),
                                   shape=(1, width)))
        else:
            rows.append(values.reshape(1, -1))
        label = record.label.get("values")
        if label is not None:
            labels.extend(label.values)
    if not rows:
        raise ValueError("No records found in RecordIO-Protobuf data")
    if sparse:
        matrix: Any = sparse_vstack([r if hasattr(r, "tocsr") else csr_matrix(r) for r in rows]).tocsr()
    else:
        matrix = np.vstack(rows)
    return matrix, (np.array(labels) if labels else None)
