"""Engine setup for SQLite (WAL, the embedded default) and PostgreSQL, plus programmatic migrations."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import NullPool

from stratum import jsonfast

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _normalize_url(url: str) -> str:
    # psycopg 3 is the driver we ship; accept plain postgresql:// URLs.
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://"):]
    return url


# The sqlite3 module binds int, float, str and bytearray as they are; any other value, None
# included, goes through its adaptation protocol, which for None fails two attribute lookups and
# formats two exception messages before binding NULL (~3k instructions; an execution binds several
# None). With an adapter registered for None the lookup finds it at once. None stays NULL.
sqlite3.register_adapter(type(None), lambda value: value)

# JSON columns: compact JSON written and read by orjson where it gives what the standard library
# would (stratum.jsonfast).
_JSON = {"json_serializer": jsonfast.dumps, "json_deserializer": jsonfast.loads}


class Database:
    def __init__(self, url: str) -> None:
        self.url = _normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        # SQLite has one writer at a time. Writers of this process queue here, and the one that
        # holds the write lock wakes the next at once; SQLite's busy handler, which stays for
        # other processes (the CLI), polls with sleeps of up to 100 ms. Reentrant: a nested write
        # transaction fails on SQLite's own lock (after busy_timeout) instead of hanging here.
        self._write_lock: threading.RLock | None = threading.RLock() if self.is_sqlite else None
        if self.is_sqlite:
            path = self.url.split("///", 1)[1] if "///" in self.url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            connect_args = {"check_same_thread": False, "timeout": 30}
            self.engine: Engine = create_engine(self.url, connect_args=connect_args, pool_size=8, max_overflow=16,
                                                **_JSON)
            # Each thread's own connection (see _held), outside the pool: one per thread that uses
            # the database, however many there are.
            self._thread_engine: Engine | None = create_engine(self.url, connect_args=connect_args,
                                                               poolclass=NullPool, **_JSON)
            # A pool event only: with any connection event listener (such as "begin") SQLAlchemy
            # dispatches every event of every statement, a cost on each query.
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self._thread_engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(self.url, pool_size=8, max_overflow=16, pool_pre_ping=True, **_JSON)
            self._thread_engine = None
        self._local = threading.local()
        self._held: weakref.WeakSet[_HeldConnection] = weakref.WeakSet()

    def begin(self) -> contextlib.AbstractContextManager[Connection]:
        """A transaction: committed on success, rolled back on any exception."""
        if self._write_lock is None:
            return self._begin_pooled()
        return _SqliteWrite(self)

    @contextmanager
    def _begin_managed(self) -> Iterator[Connection]:
        """A write transaction SQLAlchemy knows from its start: for Alembic, which looks at
        whether its connection is in a transaction to decide who commits."""
        if self._write_lock is None:
            with self._begin_pooled() as conn:
                yield conn
            return
        with self._write_lock, self._connection() as conn, conn.begin():
            _sqlite_begin(conn, "BEGIN IMMEDIATE")
            yield conn

    @contextmanager
    def _begin_pooled(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def read(self) -> contextlib.AbstractContextManager[Connection]:
        """A read-only block: on SQLite one snapshot for every read of the block."""
        if not self.is_sqlite:
            return self.engine.connect()
        return _SqliteRead(self)

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """SQLite: the connection of a transaction on this thread (see _SqliteTransaction)."""
        tx = _SqliteTransaction(self)
        conn = tx._acquire()
        try:
            yield conn
        finally:
            tx._release()

    def migrate(self) -> None:
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection_url"] = self.url
        with self._begin_managed() as conn:
            if not self.is_sqlite:
                # Servers of one database starting together migrate one after the other (the lock
                # ends with the transaction); SQLite's write lock already does this.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7274782613)")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        if os.environ.get("STRATUM_DEV_CREATE_ALL") == "1":
            # Development only: create tables whose migration is not written yet. Never set in
            # CI, so a table without a migration fails the suite there.
            from stratum.store.schema import load_all_tables

            with self._begin_managed() as conn:
                load_all_tables().create_all(conn, checkfirst=True)

    def dispose(self) -> None:
        for held in list(self._held):
            held.close()
        self.engine.dispose()
        if self._thread_engine is not None:
            self._thread_engine.dispose()


class _SqliteTransaction:
    """The connection of one SQLite transaction, taken by a class rather than a generator context
    manager: this runs for every request."""

    __slots__ = ("db", "held", "pooled", "conn")

    def __init__(self, db: Database) -> None:
        self.db = db

    def _acquire(self) -> Connection:
        """The calling thread's own connection, kept open between transactions.

        Checking a connection out of SQLAlchemy's pool and back in costs more than an SQLite
        transaction; a thread keeps one instead. A transaction nested in another on the same thread
        gets a pooled connection of its own.
        """
        db = self.db
        held: _HeldConnection | None = getattr(db._local, "held", None)
        if held is not None and held.busy:
            self.held = None
            conn = self.pooled = db.engine.connect()
        else:
            if held is None or held.conn.closed:
                assert db._thread_engine is not None
                held = _HeldConnection(db._thread_engine.connect())
                db._local.held = held
                db._held.add(held)
            held.busy = True
            self.held, self.pooled = held, None
            conn = held.conn
        self.conn = conn
        return conn

    def _begin(self, statement: str) -> Connection:
        conn = self._acquire()
        try:
            _sqlite_begin(conn, statement)
        except BaseException:
            self._release()
            raise
        return conn

    def _release(self) -> None:
        if self.pooled is not None:
            self.pooled.close()
        elif self.held is not None:
            self.held.busy = False


class _SqliteRead(_SqliteTransaction):
    """Database.read on SQLite: BEGIN (a snapshot for the whole block), ROLLBACK on the way out."""

    __slots__ = ()

    def __enter__(self) -> Connection:
        return self._begin("BEGIN")

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        try:
            _rollback(self.conn)
        finally:
            self._release()


class _SqliteWrite(_SqliteTransaction):
    """Database.begin on SQLite: the write lock, the thread's connection, BEGIN IMMEDIATE, and
    COMMIT or ROLLBACK on the way out.

    The transaction is the driver's own (BEGIN IMMEDIATE here, commit() or rollback() at the end),
    as for Database.read's snapshots. SQLAlchemy begins its own record of a transaction when a
    statement runs through it (its begin is a no-op for pysqlite); that is committed or rolled back
    with the driver's. Migrations run in a SQLAlchemy-managed transaction (Database._begin_managed).
    """

    __slots__ = ()

    def __enter__(self) -> Connection:
        lock = self.db._write_lock
        assert lock is not None
        lock.acquire()
        try:
            # A write transaction takes the write lock up front (BEGIN IMMEDIATE) so two writers
            # queue instead of one failing when it upgrades a read lock.
            return self._begin("BEGIN IMMEDIATE")
        except BaseException:
            lock.release()
            raise

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        conn = self.conn
        try:
            if kind is None:
                try:
                    if conn.in_transaction():
                        conn.commit()  # statements run through SQLAlchemy: its commit is the driver's
                    conn.connection.driver_connection.commit()  # type: ignore[union-attr]
                    return
                except BaseException:
                    _rollback(conn)
                    raise
            _rollback(conn)
        finally:
            try:
                self._release()
            finally:
                lock = self.db._write_lock
                assert lock is not None
                lock.release()


def _rollback(conn: Connection) -> None:
    """End an SQLite transaction begun on the driver: SQLAlchemy's record of it if a statement ran
    through SQLAlchemy, then the driver's own (also when only direct statements ran)."""
    try:
        if conn.in_transaction():
            conn.rollback()
    finally:
        conn.connection.driver_connection.rollback()  # type: ignore[union-attr]


class _HeldConnection:
    """A thread's own connection; closed when the thread ends (its thread-local goes) or on dispose."""

    __slots__ = ("conn", "busy", "__weakref__")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.busy = False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    def __del__(self) -> None:
        self.close()


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # The pysqlite driver opens transactions lazily and never for SELECT; take control so that
    # Database.begin can issue BEGIN IMMEDIATE and writers serialize instead of failing mid-transaction.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Connection, statement: str) -> None:
    # Straight to the driver (SQLAlchemy's own begin is a no-op for pysqlite): this runs for every
    # transaction, and SQLAlchemy's statement machinery costs several times the BEGIN itself.
    # COMMIT and ROLLBACK are the driver's commit() and rollback(), which SQLAlchemy calls.
    conn.connection.driver_connection.execute(statement)  # type: ignore[union-attr]
