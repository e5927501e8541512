"""Grouped writes (Database.begin_grouped): committed later, with the next transaction of the same
thread or by flush_group, never half; what waits for the commit runs after it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from stratum_testing import create_pg_database, drop_pg_database

from stratum.store.db import Database

BACKENDS = [b.strip() for b in os.environ.get("STRATUM_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]

meta = MetaData()
rows = Table("grouped_rows", meta, Column("k", String(16), primary_key=True), Column("n", Integer))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path}/g.db")
    with database.begin() as conn:
        meta.create_all(conn)
    yield database
    database.dispose()


def keys_seen_elsewhere(db: Database) -> list[str]:
    """What another thread (another connection) can read: the committed rows."""
    out: list[str] = []

    def read() -> None:
        with db.read() as conn:
            out.extend(r.k for r in conn.execute(select(rows.c.k).order_by(rows.c.k)))

    t = threading.Thread(target=read)
    t.start()
    t.join(10)
    return out


def test_grouped_writes_wait_for_flush_and_callbacks_follow_the_commit(db: Database) -> None:
    events: list[object] = []
    with db.begin_grouped() as conn:
        conn.execute(insert(rows), {"k": "a", "n": 1})
        db.after_group_commit(lambda ok: events.append(("a", ok, keys_seen_elsewhere(db))))
    with db.begin_grouped() as conn:
        conn.execute(insert(rows), {"k": "b", "n": 2})
        db.after_group_commit(lambda ok: events.append(("b", ok)))
    assert events == []
    with db.read() as conn:  # this thread's reads see what is committed, not the open group
        assert conn.execute(select(rows.c.k)).all() == []
    assert db.flush_group() is True
    assert events == [("a", True, ["a", "b"]), ("b", True)]
    assert db.flush_group() is False


def test_the_next_transaction_of_the_thread_commits_the_group(db: Database) -> None:
    events: list[bool] = []
    before = db.begins_on_thread()
    with db.begin_grouped() as conn:
        conn.execute(insert(rows), {"k": "g", "n": 1})
        db.after_group_commit(events.append)
    with db.begin() as conn:
        conn.execute(insert(rows), {"k": "r", "n": 2})
        assert events == []
    assert events == [True]
    assert keys_seen_elsewhere(db) == ["g", "r"]
    assert db.begins_on_thread() == before + 1
    assert db.flush_group() is False


def test_a_failing_transaction_rolls_back_only_its_own_writes(db: Database) -> None:
    events: list[bool] = []
    with db.begin_grouped() as conn:
        conn.execute(insert(rows), {"k": "g", "n": 1})
        db.after_group_commit(events.append)
    with pytest.raises(RuntimeError), db.begin() as conn:
        conn.execute(insert(rows), {"k": "r", "n": 2})
        raise RuntimeError("the request failed")
    assert events == [True]
    assert keys_seen_elsewhere(db) == ["g"]


def test_a_failing_grouped_block_keeps_the_group_and_drops_its_callbacks(db: Database) -> None:
    events: list[str] = []
    with db.begin_grouped() as conn:
        conn.execute(insert(rows), {"k": "a", "n": 1})
        db.after_group_commit(lambda ok: events.append("a"))
    with pytest.raises(ValueError), db.begin_grouped() as conn:
        conn.execute(insert(rows), {"k": "b", "n": 2})
        db.after_group_commit(lambda ok: events.append("b"))
        raise ValueError("evaluation failed")
    db.flush_group()
    assert events == ["a"]
    assert keys_seen_elsewhere(db) == ["a"]


def test_other_threads_write_after_the_flush(db: Database) -> None:
    with db.begin_grouped() as conn:
        conn.execute(insert(rows), {"k": "g", "n": 1})
    wrote = threading.Event()

    def writer() -> None:
        with db.begin() as conn:
            conn.execute(insert(rows), {"k": "t", "n": 2})
        wrote.set()

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.2)
    assert not wrote.is_set()  # queued on the write lock the open group holds
    db.flush_group()
    t.join(10)
    assert wrote.is_set()
    assert keys_seen_elsewhere(db) == ["g", "t"]


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL not selected")
def test_on_postgresql_grouped_writes_commit_at_once() -> None:
    url = create_pg_database()
    database = Database(url)
    try:
        with database.begin() as conn:
            meta.create_all(conn)
        events: list[bool] = []
        with database.begin_grouped() as conn:
            conn.execute(insert(rows), {"k": "p", "n": 1})
            database.after_group_commit(events.append)
        assert events == [True]
        assert keys_seen_elsewhere(database) == ["p"]
        assert database.flush_group() is False
    finally:
        database.dispose()
        drop_pg_database(url)
