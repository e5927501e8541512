"""CRC-32C and CRC-64/NVME (``x-amz-checksum-crc32c`` / ``-crc64nvme``) without a C extension.

zlib only provides CRC-32; botocore gets the other two from awscrt, which is not a dependency
here. A byte-at-a-time table loop in Python runs at a few MB/s, which would hold the interpreter
for minutes on a multi-GB upload, so longer inputs are computed with numpy instead:

* the input is cut into K lanes of 256 bytes (K a power of two; zero bytes put in front fill the
  first lane, which does not change a CRC register that starts at 0) and the register of every
  lane is computed at once, one byte column at a time;
* lanes are then combined pairwise, level by level: the register of ``A || B`` is the register of
  ``A`` carried through ``len(B)`` zero bytes, XOR that of ``B``. Carrying a register through
  ``m`` zero bytes is a linear map over GF(2), applied with per-byte lookup tables;
* the caller's running value (``crc`` argument) is carried through the input's length the same
  way, with the maps for powers of two kept.

Both algorithms are reflected CRCs with all-ones initial value and final XOR.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_LANE = 128  # bytes per lane
_VECTOR_MIN = 4096  # shorter inputs take the plain table loop


def _reflect(value: int, width: int) -> int:
    return int(f"{value:0{width}b}"[::-1], 2)


class _Crc:
    def __init__(self, poly: int, width: int) -> None:
        reflected = _reflect(poly, width)
        table = []
        for byte in range(256):
            crc = byte
            for _ in range(8):
                crc = (crc >> 1) ^ reflected if crc & 1 else crc >> 1
            table.append(crc)
        self.width = width
        self.mask = (1 << width) - 1
        self.table = tuple(table)
        self.dtype = np.uint32 if width == 32 else np.uint64
        self.np_table = np.array(table, dtype=self.dtype)
        # The map "one zero byte" as the images of the register's basis bits.
        self._zero_byte = [table[(1 << i) & 0xFF] ^ ((1 << i) >> 8) for i in range(width)]

    # ------------------------------------------------------------------------------- plain loop
    def _loop(self, register: int, data: bytes | bytearray | memoryview) -> int:
        table = self.table
        for byte in bytes(data):
            register = table[(register ^ byte) & 0xFF] ^ (register >> 8)
        return register

    # ------------------------------------------------------------------------- zero-byte maps
    @staticmethod
    def _apply(columns: list[int], value: int) -> int:
        out = 0
        i = 0
        while value:
            if value & 1:
                out ^= columns[i]
            value >>= 1
            i += 1
        return out

    @lru_cache(maxsize=64)  # noqa: B019 - two instances for the process's life
    def _zeros_pow2(self, exponent: int) -> tuple[int, ...]:
        """The map "2**exponent zero bytes"."""
        if exponent == 0:
            return tuple(self._zero_byte)
        half = list(self._zeros_pow2(exponent - 1))
        return tuple(self._apply(half, column) for column in half)

    def _carry(self, register: int, length: int) -> int:
        """The register after ``length`` zero bytes."""
        exponent = 0
        while length and register:
            if length & 1:
                register = self._apply(list(self._zeros_pow2(exponent)), register)
            length >>= 1
            exponent += 1
        return register

    @lru_cache(maxsize=64)  # noqa: B019
    def _carry_tables(self, exponent: int) -> np.ndarray:
        """Per-byte lookup tables of the map "2**exponent zero bytes": row k maps byte k of the register."""
        columns = list(self._zeros_pow2(exponent))
        rows = [[self._apply(columns, byte << (8 * k)) for byte in range(256)] for k in range(self.width // 8)]
        return np.array(rows, dtype=self.dtype)

    # ----------------------------------------------------------------------------- vectorized
    def _register_from_zero(self, data: bytes | bytearray | memoryview) -> int:
        """The register after ``data`` from a zero register, lanes at a time."""
        length = len(data)
        lanes = 1 << max(0, (-(-length // _LANE) - 1).bit_length())
        padded = np.zeros(lanes * _LANE, dtype=np.uint8)
        padded[lanes * _LANE - length:] = np.frombuffer(data, dtype=np.uint8)
        columns = np.ascontiguousarray(padded.reshape(lanes, _LANE).T)  # one row per byte position
        table = self.np_table
        registers = np.zeros(lanes, dtype=self.dtype)
        index = np.empty(lanes, dtype=np.uint8)
        eight = self.dtype(8)
        for column in columns:
            np.bitwise_xor(registers.astype(np.uint8), column, out=index)  # the low byte, truncated
            registers >>= eight
            registers ^= table.take(index)
        exponent = _LANE.bit_length() - 1  # each lane is 2**exponent bytes
        while len(registers) > 1:
            tables = self._carry_tables(exponent)
            left, right = registers[0::2], registers[1::2]
            carried = tables[0].take(left.astype(np.uint8))
            for k in range(1, self.width // 8):
                carried ^= tables[k].take((left >> self.dtype(8 * k)).astype(np.uint8))
            registers = carried ^ right
            exponent += 1
        return int(registers[0])

    def update(self, data: bytes | bytearray | memoryview, crc: int) -> int:
        register = crc ^ self.mask
        if len(data) < _VECTOR_MIN:
            return self._loop(register, data) ^ self.mask
        return (self._carry(register, len(data)) ^ self._register_from_zero(data)) ^ self.mask


_CRC32C = _Crc(0x1EDC6F41, 32)  # Castagnoli
_CRC64NVME = _Crc(0xAD93D23594C93659, 64)


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C (Castagnoli); ``crc`` continues a previous result, like ``zlib.crc32``."""
    return _CRC32C.update(data, crc)


def crc64nvme(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-64/NVME, the algorithm behind ``x-amz-checksum-crc64nvme``."""
    return _CRC64NVME.update(data, crc)


def crc_by_loop(name: str, data: bytes, crc: int = 0) -> int:
    """The plain table loop, whatever the length (the reference the vectorized form is tested against)."""
    engine = {"crc32c": _CRC32C, "crc64nvme": _CRC64NVME}[name]
    return engine._loop(crc ^ engine.mask, data) ^ engine.mask
