"""stratum.store.direct stores and reads back exactly what SQLAlchemy stores and reads back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, case, insert, select, text, update
from stratum_testing import create_pg_database, drop_pg_database

from stratum.store.db import Database
from stratum.store.direct import Statement
from stratum.store.schema import JsonType, UtcDateTime

BACKENDS = [b.strip() for b in os.environ.get("STRATUM_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]

meta = MetaData()
things = Table(
    "direct_things", meta,
    Column("k", String(16), primary_key=True),
    Column("n", Integer, nullable=True),
    Column("doc", JsonType, nullable=True),
    Column("at", UtcDateTime, nullable=True),
    Column("status", String(16), nullable=False),
)

INSERT = insert(things)
BY_KEY = select(things).where(things.c.k == bindparam("key"))
LABELLED = select(things.c.k.label("key_name"), things.c.doc).where(things.c.k == bindparam("key"))
# A literal in the WHERE clause and in a CASE, a bind used twice: the shapes of the engine's updates.
FINISH = (update(things).where((things.c.k == bindparam("key")) & (things.c.status == "Running"))
          .values(status=case((things.c.n == 0, "Zero"), else_=bindparam("v_status")), at=bindparam("v_now"),
                  n=bindparam("v_n")))

ROWS = [
    {"k": "a", "n": 1, "doc": {"x": [1, 2, {"y": None}], "s": "é"}, "at": datetime(2026, 1, 2, 3, 4, 5, 678901, UTC),
     "status": "Running"},
    # None in a JSON column, a naive and a non-UTC datetime (both stored as UTC).
    {"k": "b", "n": None, "doc": None, "at": datetime(2026, 1, 2, 3, 4, 5), "status": "Running"},
    {"k": "c", "n": 0, "doc": [], "at": datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
     "status": "Running"},
    {"k": "d", "n": 7, "doc": "text", "at": None, "status": "Done"},
]


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Database]:
    url = create_pg_database() if request.param == "postgresql" else f"sqlite:///{tmp_path}/direct.db"
    database = Database(url)
    with database.begin() as conn:
        meta.create_all(conn)
    yield database
    database.dispose()
    if request.param == "postgresql":
        drop_pg_database(url)


def _stored(db: Database) -> list[tuple[object, ...]]:
    """What the database holds, as the driver returns it (no type processing)."""
    with db.read() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT k, n, doc, at, status FROM direct_things ORDER BY k"))]


def test_insert_stores_what_sqlalchemy_stores(db: Database) -> None:
    with db.begin() as conn:
        for row in ROWS:
            conn.execute(INSERT, row)
    through_sqlalchemy = _stored(db)
    if db.is_sqlite:
        # JSON columns are written compact, by orjson.
        assert through_sqlalchemy[0][2] == '{"x":[1,2,{"y":null}],"s":"é"}'
        # Datetimes as SQLAlchemy's SQLite DATETIME writes them, in UTC.
        assert [r[3] for r in through_sqlalchemy] == ["2026-01-02 03:04:05.678901", "2026-01-02 03:04:05.000000",
                                                      "2026-01-02 03:04:05.000000", None]
    with db.begin() as conn:
        conn.execute(things.delete())
    direct = Statement(INSERT)
    with db.begin() as conn:
        for row in ROWS:
            assert direct.rowcount(conn, row) == 1
    assert _stored(db) == through_sqlalchemy


def test_rows_read_back_as_sqlalchemy_reads_them(db: Database) -> None:
    with db.begin() as conn:
        for row in ROWS:
            conn.execute(INSERT, row)
    by_key = Statement(BY_KEY)
    with db.read() as conn:
        for row in ROWS:
            expected = conn.execute(BY_KEY, {"key": row["k"]}).first()
            got = by_key.first(conn, {"key": row["k"]})
            assert expected is not None
            assert tuple(got) == tuple(expected)
            assert got.doc == row["doc"] and got.status == row["status"]
            if row["at"] is not None:
                assert got.at == row["at"].replace(tzinfo=row["at"].tzinfo or UTC) and got.at.tzinfo is not None
        assert by_key.first(conn, {"key": "missing"}) is None
        assert [tuple(r) for r in Statement(select(things).order_by(things.c.k)).all(conn, {})] == \
            [tuple(r) for r in conn.execute(select(things).order_by(things.c.k))]
        labelled = Statement(LABELLED).first(conn, {"key": "a"})
        assert labelled.key_name == "a" and labelled.doc == ROWS[0]["doc"]
        assert Statement(select(things.c.n).where(things.c.k == bindparam("key"))).scalar(conn, {"key": "d"}) == 7


def test_update_with_literals_and_repeated_binds(db: Database) -> None:
    with db.begin() as conn:
        for row in ROWS:
            conn.execute(INSERT, row)
    finish = Statement(FINISH)
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    with db.begin() as conn:
        assert finish.rowcount(conn, {"key": "a", "v_status": "Done", "v_now": now, "v_n": 5}) == 1
        assert finish.rowcount(conn, {"key": "c", "v_status": "Done", "v_now": now, "v_n": 6}) == 1
        # status is no longer Running: the literal in the WHERE clause holds.
        assert finish.rowcount(conn, {"key": "a", "v_status": "Again", "v_now": now, "v_n": 9}) == 0
        assert finish.rowcount(conn, {"key": "d", "v_status": "Again", "v_now": now, "v_n": 9}) == 0
    with db.read() as conn:
        rows = {r.k: r for r in conn.execute(select(things))}
    assert (rows["a"].status, rows["a"].n, rows["a"].at) == ("Done", 5, now)
    assert (rows["c"].status, rows["c"].n) == ("Zero", 6)  # n was 0 when the CASE was evaluated
    assert rows["d"].status == "Done" and rows["d"].n == 7


def test_dialect_variant_is_used(db: Database) -> None:
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    once = Statement(INSERT, {"sqlite": sqlite_insert(things).on_conflict_do_nothing(),
                              "postgresql": pg_insert(things).on_conflict_do_nothing()})
    with db.begin() as conn:
        assert once.rowcount(conn, ROWS[0]) == 1
        assert once.rowcount(conn, {**ROWS[0], "n": 99}) == 0  # taken: nothing written, no error
    with db.read() as conn:
        assert conn.execute(select(things.c.n)).scalar_one() == 1


def test_missing_parameter_is_an_error_and_rolls_back(db: Database) -> None:
    direct = Statement(INSERT)
    with pytest.raises(KeyError), db.begin() as conn:
        direct.rowcount(conn, ROWS[0])
        direct.rowcount(conn, {"k": "zz"})
    assert _stored(db) == []


@pytest.mark.parametrize("stmt", [
    select(things).where(things.c.k.in_(bindparam("keys", expanding=True))),
    select(things).where(things.c.status.in_(("Running", "Stopping"))),
], ids=["bound", "literal"])
def test_in_lists_are_refused(db: Database, stmt: object) -> None:
    with db.read() as conn, pytest.raises(ValueError, match="expanding"):
        Statement(stmt).all(conn, {"keys": ["a"]})  # type: ignore[arg-type]



def test_json_values_are_stored_as_sqlalchemy_stores_them(db: Database) -> None:
    from sqlalchemy import JSON, null

    values = [None, {}, [], {"a": [1, None, {"b": "é"}]}, [{"x": 1.5}], "text", 0, 5, 1.5, True, 2 ** 70,
              {"n": 2 ** 70}, {1: "non-string key"}, JSON.NULL, null()]
    with db.begin() as conn:
        for i, value in enumerate(values):
            conn.execute(INSERT, {"k": f"s{i}", "n": i, "doc": value, "at": None, "status": "x"})
    through_sqlalchemy = _stored(db)
    with db.begin() as conn:
        conn.execute(things.delete())
    direct = Statement(INSERT)
    with db.begin() as conn:
        for i, value in enumerate(values):
            assert direct.rowcount(conn, {"k": f"s{i}", "n": i, "doc": value, "at": None, "status": "x"}) == 1
        if db.is_sqlite:  # the JSON processor is direct's own, written into the parameter builder
            doc = dict(zip(direct._plan(conn.dialect).names, direct._plan(conn.dialect).steps, strict=True))["doc"]
            assert doc[1] is not None and doc[1].__qualname__.startswith("_bind_processor")
            assert hasattr(doc[1], "inline")
    assert _stored(db) == through_sqlalchemy
