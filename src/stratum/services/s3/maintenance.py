"""Garbage collection for the blob store.

Writes put the blob in place before the database commit, so a crash (or a failed commit whose
cleanup also failed) can leave a blob no row refers to, and a killed upload can leave a ``.tmp-*``
file. Neither is ever visible as an object; this sweep reclaims the space. Only files older than a
grace period are considered, so uploads in flight (blob written, commit pending) are never touched.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from sqlalchemy import select

from .objectstore import ObjectStore
from .tables import s3_multipart_parts, s3_objects

if TYPE_CHECKING:
    from stratum.store.db import Database

log = logging.getLogger("stratum.s3.gc")

GRACE_SECONDS = 3600


def sweep(db: Database, store: ObjectStore, *, grace_seconds: float = GRACE_SECONDS) -> int:
    """Delete unreferenced blobs and stale temporary files older than the grace period."""
    root = store.root
    if not root.is_dir():
        return 0
    cutoff = time.time() - grace_seconds
    candidates: list[str] = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                if os.stat(path).st_mtime < cutoff:
                    candidates.append(os.path.relpath(path, root).replace(os.sep, "/"))
            except FileNotFoundError:
                continue
    if not candidates:
        return 0
    # Referenced paths are read after the directory walk: anything committed by now is kept.
    with db.read() as conn:
        referenced = {r[0] for r in conn.execute(select(s3_objects.c.storage_path)) if r[0]}
        referenced.update(r[0] for r in conn.execute(select(s3_multipart_parts.c.storage_path)))
    removed = 0
    for rel in candidates:
        if rel not in referenced:
            store.delete(rel)
            removed += 1
    if removed:
        log.info("removed %d unreferenced blob(s) from %s", removed, root)
    return removed


def sweep_in_background(db: Database, store: ObjectStore) -> threading.Thread:
    def run() -> None:
        try:
            sweep(db, store)
        except Exception:  # never let housekeeping take the server down
            log.exception("blob store sweep failed")

    thread = threading.Thread(target=run, name="s3-blob-gc", daemon=True)
    thread.start()
    return thread
