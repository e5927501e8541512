"""The filesystem blob store: atomic, durable writes and ranged reads."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratum.services.s3.objectstore import CHUNK_SIZE, ObjectStore


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_put_bytes_and_read(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    rel = store.new_object_path("bucket")
    info = store.put_bytes(rel, b"hello world")
    assert (info.path, info.size, info.md5) == (rel, 11, hashlib.md5(b"hello world").hexdigest())
    assert rel.startswith("bucket/") and _files(tmp_path) == [rel]
    assert store.read(rel) == b"hello world"
    assert store.read(rel, 6) == b"world"
    assert store.read(rel, 0, 5) == b"hello"


def test_interrupted_stream_leaves_nothing(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    rel = store.new_object_path("bucket")

    def broken() -> Iterator[bytes]:
        yield b"partial data"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.put_stream(rel, broken())
    assert _files(tmp_path) == []  # no blob and no temporary file


def test_overwrite_is_atomic_for_open_readers(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    rel = store.new_object_path("bucket")
    store.put_bytes(rel, b"A" * (3 * CHUNK_SIZE))
    reader = store.get(rel)  # opened now: survives a replacement or deletion of the blob
    store.put_bytes(rel, b"B" * 10)
    store.delete(rel)
    assert b"".join(reader) == b"A" * (3 * CHUNK_SIZE)
    with pytest.raises(FileNotFoundError):
        store.get(rel)


def test_ranged_get_chunks(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    rel = store.new_object_path("bucket")
    data = bytes(range(256)) * (CHUNK_SIZE // 128)  # two chunks' worth
    store.put_stream(rel, (data[i:i + 1000] for i in range(0, len(data), 1000)))
    assert b"".join(store.get(rel)) == data
    chunks = list(store.get(rel, 10, CHUNK_SIZE + 5))
    assert [len(c) for c in chunks] == [CHUNK_SIZE, 5]
    assert b"".join(chunks) == data[10:10 + CHUNK_SIZE + 5]
    assert b"".join(store.get(rel, len(data) - 3)) == data[-3:]


def test_delete_and_prune(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    part = store.new_part_path("bucket", "upload1", 1)
    store.put_bytes(part, b"p")
    store.delete(part)
    store.delete(part)  # already gone: fine
    store.delete(None)
    store.prune_dir("bucket/_mpu/upload1")
    assert not (tmp_path / "bucket" / "_mpu" / "upload1").exists()
    store.prune_dir("bucket")
    assert not (tmp_path / "bucket").exists()


def test_paths_cannot_escape_the_root(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects")
    with pytest.raises(ValueError):
        store.put_bytes("../outside", b"x")
    with pytest.raises(ValueError):
        store.read("/etc/passwd")


def test_sweep_removes_only_old_unreferenced_blobs(tmp_path: Path) -> None:
    import os
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from stratum.services.s3.maintenance import sweep
    from stratum.services.s3.tables import s3_buckets, s3_multipart_parts, s3_multipart_uploads, s3_objects
    from stratum.store.db import Database

    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    for table in (s3_buckets, s3_objects, s3_multipart_uploads, s3_multipart_parts):
        table.create(db.engine)
    store = ObjectStore(tmp_path / "objects")
    kept, orphan, fresh = (store.new_object_path("bkt") for _ in range(3))
    for rel in (kept, orphan, fresh):
        store.put_bytes(rel, b"data")
    (store.root / "bkt" / "stale.tmp-1234").write_bytes(b"partial")
    now = datetime.now(UTC)
    with db.begin() as conn:
        conn.execute(insert(s3_buckets).values(name="bkt", account_id="111111111111", region="us-east-1",
                                               created_at=now))
        conn.execute(insert(s3_objects).values(bucket="bkt", key="k", version_id="null", is_latest=True,
                                               delete_marker=False, size=4, etag="x", headers={}, metadata={},
                                               owner_account="111111111111", last_modified=now, storage_path=kept))
    old = now.timestamp() - 7200
    for path in (store.abspath(kept), store.abspath(orphan), store.root / "bkt" / "stale.tmp-1234"):
        os.utime(path, (old, old))
    assert sweep(db, store) == 2
    assert store.read(kept) == b"data" and store.read(fresh) == b"data"
    assert not store.abspath(orphan).exists() and not (store.root / "bkt" / "stale.tmp-1234").exists()
    db.dispose()
