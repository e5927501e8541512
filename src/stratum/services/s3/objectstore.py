"""Filesystem blob store for object data.

Blobs are immutable files named by random ids (never by object key, so any key is storable and an
overwrite never touches the bytes a concurrent reader is streaming). Writes go to a temporary file in
the destination directory, are fsynced, then atomically renamed into place, and the directory is
fsynced: a crash or an interrupted upload leaves at most a stray ``.tmp-*`` file, never a partial
blob. Paths handed out and accepted are relative to the store root so a data directory can move.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class BlobInfo:
    path: str  # relative to the store root
    size: int
    md5: str  # hex digest of the bytes written


class ObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------------------------ naming
    def new_object_path(self, bucket: str) -> str:
        blob = secrets.token_hex(16)
        return f"{bucket}/{blob[:2]}/{blob}"

    def new_part_path(self, bucket: str, upload_id: str, part_number: int) -> str:
        # Bucket names cannot contain "_", so "_mpu" never collides with a blob fan-out directory.
        return f"{bucket}/_mpu/{upload_id}/{part_number:05d}.{secrets.token_hex(8)}"

    def abspath(self, rel: str) -> Path:
        path = (self.root / rel).resolve()
        root = self.root.resolve()
        if root not in path.parents:
            raise ValueError(f"blob path escapes the store: {rel!r}")
        return path

    # ------------------------------------------------------------------------------------ writes
    def put_bytes(self, rel: str, data: bytes) -> BlobInfo:
        return self.put_stream(rel, (data,))

    def put_stream(self, rel: str, chunks: Iterable[bytes], *, digest: bool = True) -> BlobInfo:
        """Write ``chunks`` durably as blob ``rel``; the blob appears complete or not at all.
        ``digest`` False skips the MD5 (md5 "") when the caller computes its own."""
        final = self.abspath(rel)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f"{final.name}.tmp-{secrets.token_hex(4)}")
        md5 = hashlib.md5(usedforsecurity=False) if digest else None
        size = 0
        try:
            with open(tmp, "wb") as fh:
                for chunk in chunks:
                    if not chunk:
                        continue
                    fh.write(chunk)
                    if md5 is not None:
                        md5.update(chunk)
                    size += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            _unlink(tmp)
            raise
        _fsync_dir(final.parent)
        return BlobInfo(rel, size, md5.hexdigest() if md5 is not None else "")

    def delete(self, rel: str | None) -> None:
        """Remove a blob (missing is fine: deletes run after the DB commit and may be retried)."""
        if not rel:
            return
        _unlink(self.abspath(rel))

    def delete_many(self, rels: Iterable[str | None]) -> None:
        for rel in rels:
            self.delete(rel)

    def prune_dir(self, rel_dir: str) -> None:
        """Remove empty directories under and including ``rel_dir`` (after aborts and bucket deletes)."""
        top = self.abspath(rel_dir + "/.")
        if not top.is_dir():
            return
        for dirpath, _dirnames, _files in os.walk(top, topdown=False):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass  # not empty: something still lives there

    # ------------------------------------------------------------------------------------- reads
    def open(self, rel: str) -> BinaryIO:
        return open(self.abspath(rel), "rb")

    def get(self, rel: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Iterator over ``length`` bytes from ``start`` (to the end when None).

        The file is opened now, not on first iteration: once a caller holds the iterator, the bytes
        stay readable even if the object is overwritten or deleted meanwhile (POSIX unlink semantics).
        """
        fh = self.open(rel)
        try:
            fh.seek(start)
        except BaseException:
            fh.close()
            raise
        return _read_chunks(fh, length)

    def read(self, rel: str, start: int = 0, length: int | None = None) -> bytes:
        with self.open(rel) as fh:
            fh.seek(start)
            return fh.read() if length is None else fh.read(length)


def _read_chunks(fh: BinaryIO, length: int | None) -> Iterator[bytes]:
    with fh:
        remaining = length
        while remaining is None or remaining > 0:
            chunk = fh.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not every platform allows opening a directory.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
