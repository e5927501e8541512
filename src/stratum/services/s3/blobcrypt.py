"""Object bytes at rest: chunked AES-256-GCM, so a ranged GET decrypts only the chunks it touches.

Blob layout: a 16-byte header (magic, 8-byte random salt, reserved) followed by one record per 64 KiB
of plaintext (the ciphertext of the chunk plus its 16-byte tag). Chunk ``i`` uses the nonce
``salt || i`` and authenticates ``header || i || final-flag``, so chunks cannot be reordered, dropped
or truncated away without the tag check failing. Each object (and each multipart part) gets its own
data key or, for parts sharing their upload's key, its own random salt.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CHUNK = 64 * 1024
TAG = 16
RECORD = CHUNK + TAG
MAGIC = b"SSE1"
HEADER = 16
_INDEX = struct.Struct(">I")
_BATCH = 16  # records per read (1 MiB of plaintext)
_WRITE_BATCH = 4  # records per piece handed to the writer: a streamed upload holds little at a time


class BlobIntegrityError(Exception):
    """Stored bytes do not authenticate: tampered with, truncated, or the wrong key."""


@dataclass
class PlainStats:
    """Size and MD5 of the plaintext that went through ``seal`` (the object's size and ETag)."""

    size: int = 0
    md5: str = ""


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + _INDEX.pack(index) + (b"\x01" if final else b"\x00")


def _nonce(salt: bytes, index: int) -> bytes:
    return salt + _INDEX.pack(index)


def sealed_size(size: int) -> int:
    chunks = max(1, -(-size // CHUNK))
    return HEADER + size + chunks * TAG


def seal(chunks: Iterable[bytes], key: bytes, stats: PlainStats | None = None) -> Iterator[bytes]:
    """Encrypt a plaintext stream; fills ``stats`` with the plaintext size and MD5 as it goes."""
    aead = AESGCM(key)
    salt = secrets.token_bytes(8)
    header = MAGIC + salt + b"\x00" * 4
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    index = 0
    pending: list[bytes] = []  # plaintext not sealed yet, at most CHUNK bytes once a chunk is consumed
    buffered = 0
    out: list[bytes] = [header]
    for chunk in chunks:
        if not chunk:
            continue
        md5.update(chunk)
        size += len(chunk)
        pending.append(chunk)
        buffered += len(chunk)
        # A chunk is only sealed once more data follows it: the last one must carry the final flag.
        if buffered <= CHUNK:
            continue
        view = memoryview(b"".join(pending) if len(pending) > 1 else pending[0])
        pos = 0
        while len(view) - pos > CHUNK:
            out.append(aead.encrypt(_nonce(salt, index), view[pos:pos + CHUNK], _aad(header, index, False)))
            pos += CHUNK
            index += 1
            if len(out) >= _WRITE_BATCH:
                yield b"".join(out)
                out.clear()
        pending = [bytes(view[pos:])]
        buffered = len(pending[0])
    if stats is not None:
        stats.size, stats.md5 = size, md5.hexdigest()
    out.append(aead.encrypt(_nonce(salt, index), b"".join(pending), _aad(header, index, True)))
    yield b"".join(out)


def open_range(fh: BinaryIO, key: bytes, size: int, first: int = 0, length: int | None = None) -> Iterator[bytes]:
    """Plaintext bytes ``first .. first+length-1`` of a sealed blob of ``size`` plaintext bytes.

    Takes ownership of ``fh`` (closed when the iterator finishes or is closed).
    """
    with fh:
        if length is None:
            length = size - first
        if length <= 0:
            return
        header = fh.read(HEADER)
        if len(header) != HEADER or not header.startswith(MAGIC):
            raise BlobIntegrityError("not an encrypted blob")
        salt = header[4:12]
        aead = AESGCM(key)
        last = first + length - 1
        final_index = max(0, (size - 1) // CHUNK)
        first_chunk, last_chunk = first // CHUNK, last // CHUNK
        fh.seek(HEADER + first_chunk * RECORD)
        index = first_chunk
        while index <= last_chunk:
            # Read and decrypt up to _BATCH records at a time: fewer, larger reads and yields.
            batch_end = min(last_chunk, index + _BATCH - 1)
            lengths = [min(CHUNK, size - i * CHUNK) + TAG for i in range(index, batch_end + 1)]
            data = memoryview(fh.read(sum(lengths)))
            if len(data) != sum(lengths):
                raise BlobIntegrityError("encrypted blob is truncated")
            pieces: list[bytes] = []
            pos = 0
            for i, record_len in zip(range(index, batch_end + 1), lengths, strict=True):
                try:
                    plain = aead.decrypt(_nonce(salt, i), data[pos:pos + record_len], _aad(header, i, i == final_index))
                except InvalidTag:
                    raise BlobIntegrityError("encrypted blob does not authenticate") from None
                pos += record_len
                start = first - i * CHUNK if i == first_chunk else 0
                end = last - i * CHUNK + 1 if i == last_chunk else len(plain)
                pieces.append(plain[start:end] if start or end != len(plain) else plain)
            yield b"".join(pieces)
            index = batch_end + 1


def read_all(fh: BinaryIO, key: bytes, size: int) -> bytes:
    return b"".join(open_range(fh, key, size))
