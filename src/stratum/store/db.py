"""Engine setup for SQLite (WAL, the embedded default) and PostgreSQL, plus programmatic migrations."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import NullPool

from stratum import jsonfast

log = logging.getLogger("stratum.db")

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _normalize_url(url: str) -> str:
    # psycopg 3 is the driver we ship; accept plain postgresql:// URLs.
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://"):]
    return url


# JSON columns: compact JSON written by orjson (stratum.jsonfast); read by the standard library.
_JSON = {"json_serializer": jsonfast.dumps}


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

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: committed on success, rolled back on any exception.

        On SQLite, a group of deferred writes open on this thread (begin_grouped) is committed
        with it: the block runs under a savepoint, so its failure rolls back its own writes only.
        """
        if self._write_lock is None:
            with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        local = self._local
        local.begins = getattr(local, "begins", 0) + 1
        group: _Group | None = getattr(local, "group", None)
        if group is not None:
            conn = group.held.conn
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.execute("SAVEPOINT stratum_tx")
            try:
                yield conn
            except BaseException:
                driver.execute("ROLLBACK TO stratum_tx")
                driver.execute("RELEASE stratum_tx")
                self._end_group(group, raise_errors=False)
                raise
            driver.execute("RELEASE stratum_tx")
            self._end_group(group, raise_errors=True)
            return
        with self._write_lock, self._connection() as conn, conn.begin():
            # A write transaction takes the write lock up front (BEGIN IMMEDIATE) so two writers
            # queue instead of one failing when it upgrades a read lock.
            _sqlite_begin(conn, "BEGIN IMMEDIATE")
            yield conn

    # ------------------------------------------------------------------------ grouped writes
    @contextmanager
    def begin_grouped(self) -> Iterator[Connection]:
        """Writes whose commit may wait (SQLite): the block joins this thread's group transaction,
        opened if there is none, and is not committed at its end but by flush_group() or by the
        next begin() on this thread, whichever comes first; a failing block rolls back its own
        writes only. Register what must follow the commit with after_group_commit().

        Only for writes that can be redone after a crash (the pipeline engine's Condition and Fail
        transitions, decided again identically): until the commit they exist in this transaction
        only. Other threads' writers wait on the write lock while a group is open, so the owner
        flushes it within a millisecond. Elsewhere (PostgreSQL, or inside another transaction of
        this thread) it is an ordinary transaction, and its callbacks run at once.
        """
        held = self._free_held() if self._write_lock is not None else None
        group: _Group | None = getattr(self._local, "group", None) if self._write_lock is not None else None
        if group is None and held is None:
            callbacks: list[Callable[[bool], None]] = []
            self._local.plain_callbacks = callbacks
            try:
                with self.begin() as conn:
                    yield conn
            finally:
                self._local.plain_callbacks = None
            for callback in callbacks:
                callback(True)
            return
        if group is None:
            assert held is not None and self._write_lock is not None
            self._write_lock.acquire()
            try:
                held.busy = True
                _sqlite_begin(held.conn, "BEGIN IMMEDIATE")
            except BaseException:
                held.busy = False
                self._write_lock.release()
                raise
            group = _Group(held)
            self._local.group = group
        driver = group.held.conn.connection.driver_connection
        assert driver is not None
        registered = len(group.callbacks)
        driver.execute("SAVEPOINT stratum_group")
        try:
            yield group.held.conn
        except BaseException:
            driver.execute("ROLLBACK TO stratum_group")
            driver.execute("RELEASE stratum_group")
            del group.callbacks[registered:]
            raise
        driver.execute("RELEASE stratum_group")

    def after_group_commit(self, callback: Callable[[bool], None]) -> None:
        """Inside begin_grouped: ``callback(committed)`` once the group's commit succeeded (True)
        or failed and the group's writes are lost (False)."""
        group: _Group | None = getattr(self._local, "group", None)
        if group is not None:
            group.callbacks.append(callback)
            return
        plain = getattr(self._local, "plain_callbacks", None)
        if plain is None:
            raise RuntimeError("after_group_commit outside begin_grouped")
        plain.append(callback)

    def flush_group(self) -> bool:
        """Commit this thread's group, if one is open; whether there was one."""
        group: _Group | None = getattr(self._local, "group", None)
        if group is None:
            return False
        self._end_group(group, raise_errors=False)
        return True

    def begins_on_thread(self) -> int:
        """How many begin() this thread has run (lets the owner of a group see other writers)."""
        return getattr(self._local, "begins", 0)

    def _end_group(self, group: _Group, *, raise_errors: bool) -> None:
        self._local.group = None
        conn = group.held.conn
        error: BaseException | None = None
        try:
            conn.commit()  # what SQLAlchemy began for statements it ran, and with it everything
            conn.connection.driver_connection.commit()  # type: ignore[union-attr]
        except BaseException as exc:
            error = exc
            with contextlib.suppress(Exception):
                conn.rollback()
                conn.connection.driver_connection.rollback()  # type: ignore[union-attr]
        finally:
            group.held.busy = False
            assert self._write_lock is not None
            self._write_lock.release()
        for callback in group.callbacks:
            try:
                callback(error is None)
            except Exception:
                log.exception("a callback after a grouped commit failed")
        if error is not None:
            if raise_errors:
                raise error
            log.error("committing grouped writes failed: %s", error)

    def _free_held(self) -> _HeldConnection | None:
        """This thread's own connection if it is free (created if need be), else None."""
        held: _HeldConnection | None = getattr(self._local, "held", None)
        if held is not None and held.busy:
            return None
        if held is None or held.conn.closed:
            assert self._thread_engine is not None
            held = _HeldConnection(self._thread_engine.connect())
            self._local.held = held
            self._held.add(held)
        return held

    @contextmanager
    def read(self) -> Iterator[Connection]:
        if not self.is_sqlite:
            with self.engine.connect() as conn:
                yield conn
            return
        with self._connection() as conn:
            _sqlite_begin(conn, "BEGIN")  # one snapshot for every read of the block
            try:
                yield conn
            finally:
                conn.rollback()
                # Also when only direct statements ran, which SQLAlchemy did not see begin.
                conn.connection.driver_connection.rollback()  # type: ignore[union-attr]

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """SQLite: the calling thread's own connection, kept open between transactions.

        Checking a connection out of SQLAlchemy's pool and back in costs more than an SQLite
        transaction; a thread keeps one instead. A transaction nested in another on the same thread
        gets a pooled connection of its own, as before.
        """
        held: _HeldConnection | None = getattr(self._local, "held", None)
        if held is None or held.busy or held.conn.closed:
            if held is not None and held.busy:
                with self.engine.connect() as conn:
                    yield conn
                return
            assert self._thread_engine is not None
            held = _HeldConnection(self._thread_engine.connect())
            self._local.held = held
            self._held.add(held)
        held.busy = True
        try:
            yield held.conn
        finally:
            held.busy = False

    def migrate(self) -> None:
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection_url"] = self.url
        with self.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        if os.environ.get("STRATUM_DEV_CREATE_ALL") == "1":
            # Development only: create tables whose migration is not written yet. Never set in
            # CI, so a table without a migration fails the suite there.
            from stratum.store.schema import load_all_tables

            with self.begin() as conn:
                load_all_tables().create_all(conn, checkfirst=True)

    def dispose(self) -> None:
        for held in list(self._held):
            held.close()
        self.engine.dispose()
        if self._thread_engine is not None:
            self._thread_engine.dispose()


class _Group:
    """A thread's open transaction of grouped writes (Database.begin_grouped)."""

    __slots__ = ("held", "callbacks")

    def __init__(self, held: _HeldConnection) -> None:
        self.held = held
        self.callbacks: list[Callable[[bool], None]] = []


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
