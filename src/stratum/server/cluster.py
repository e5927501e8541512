"""What makes several servers safe together, checked before a server starts.

- SQLite: one server per database. A second server on the same database file is refused with a
  one-line error (an exclusive lock on ``<database>.lock``, held until the process ends, released by
  the kernel even after kill -9). Several servers need PostgreSQL.
- Every server of one database must use the same master key (KMS key material and S3 object keys
  are sealed under it): the database keeps the key's check value, written by the first server, and
  a server started with another key refuses to start.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
from pathlib import Path
from typing import IO

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from stratum.config import Settings
from stratum.store.db import Database
from stratum.store.tables import stratum_cluster_settings as settings_t

MASTER_KEY_CHECK = "master_key_check"

_held: list[IO[str]] = []  # the lock files this process holds: kept open for its lifetime


class ClusterConfigError(Exception):
    """A one-line reason the server must not start."""


def sqlite_path(db: Database) -> Path | None:
    if not db.is_sqlite or "///" not in db.url:
        return None
    path = db.url.split("///", 1)[1]
    return None if path in ("", ":memory:") else Path(path).resolve()


def lock_sqlite(db: Database) -> None:
    """Refuse to run beside another server on the same SQLite database."""
    path = sqlite_path(db)
    if path is None:
        return
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(lock_path, "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise ClusterConfigError(
            f"another Stratum server (pid {holder}) is using the SQLite database {path}; SQLite allows one "
            "server per database: use --database-url postgresql://... to run several") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    _held.append(fh)


def master_key_check_value(settings: Settings) -> str:
    """A value that identifies the master key without revealing it (an HMAC of a constant)."""
    from stratum.services.kms import crypto

    try:
        key = crypto.master_key(settings.master_key_path)
    except OSError as exc:  # its directory is a file, or not writable: the server cannot start
        raise ClusterConfigError(f"cannot read or create the master key {settings.master_key_path}: "
                                 f"{exc.strerror}") from None
    except crypto.MasterKeyError as exc:
        raise ClusterConfigError(str(exc)) from None
    derived = key.derive("key-check-value")
    return hmac.new(derived, b"stratum master key check", hashlib.sha256).hexdigest()[:32]


def check_master_key(db: Database, settings: Settings) -> None:
    """Record the master key's check value on first start; refuse a server with another key."""
    value = master_key_check_value(settings)
    insert = sqlite.insert(settings_t) if db.is_sqlite else postgresql.insert(settings_t)
    with db.begin() as conn:
        # The first server to get here records its key; any other reads what was recorded.
        conn.execute(insert.values(name=MASTER_KEY_CHECK, value=value).on_conflict_do_nothing())
        stored = conn.execute(select(settings_t.c.value).where(settings_t.c.name == MASTER_KEY_CHECK)).scalar()
    if stored != value:
        source = "STRATUM_MASTER_KEY" if os.environ.get("STRATUM_MASTER_KEY") else str(settings.master_key_path)
        raise ClusterConfigError(
            f"the master key ({source}) is not the one this database was initialised with (check value "
            f"{value[:8]}, database {str(stored)[:8]}): every server of one database needs the same master key "
            "(STRATUM_MASTER_KEY_FILE or STRATUM_MASTER_KEY)")
