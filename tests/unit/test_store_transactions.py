"""Database.begin and Database.read on SQLite: commit or roll back, release the thread's connection
whatever happens in the block, and keep nested blocks on a connection of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from stratum.store.db import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'tx.db'}")
    with database.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    yield database
    database.dispose()


def _values(db: Database) -> list[int]:
    with db.read() as conn:
        return [row[0] for row in conn.execute(text("SELECT x FROM t ORDER BY x"))]


def test_commit_and_rollback(db: Database) -> None:
    with db.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    with pytest.raises(RuntimeError), db.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))
        raise RuntimeError("rolled back")
    with db.begin() as conn:  # only direct driver statements: still committed
        conn.connection.driver_connection.execute("INSERT INTO t VALUES (3)")  # type: ignore[union-attr]
    assert _values(db) == [1, 3]


def test_a_failing_read_releases_the_connection(db: Database) -> None:
    for _ in range(3):
        with pytest.raises(RuntimeError), db.read() as conn:
            conn.execute(text("SELECT x FROM t"))
            raise RuntimeError("the block failed")
    with db.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (4)"))
    assert _values(db) == [4]


def test_nested_blocks_use_their_own_connection(db: Database) -> None:
    with db.begin() as outer:
        outer.execute(text("INSERT INTO t VALUES (5)"))
        with db.read() as inner:  # another connection: the uncommitted row is not there
            assert inner is not outer
            assert list(inner.execute(text("SELECT x FROM t"))) == []
    with db.read() as outer:
        assert [r[0] for r in outer.execute(text("SELECT x FROM t"))] == [5]
        with db.begin() as inner:
            inner.execute(text("INSERT INTO t VALUES (6)"))
        # the outer read keeps its snapshot
        assert [r[0] for r in outer.execute(text("SELECT x FROM t"))] == [5]
    assert _values(db) == [5, 6]
