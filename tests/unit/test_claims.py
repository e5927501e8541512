"""Claims between servers of one database: one owner at a time, takeover only after the lease (or
of a dead owner at start), a lost claim fails the owner's check, renewal reports what is held."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from stratum_testing import BACKENDS, create_pg_database, drop_pg_database

from stratum.store.claims import EXECUTION, JOB, ClaimKey, Claims, LeaseLost
from stratum.store.db import Database

KEY = ClaimKey(EXECUTION, "111122223333", "us-east-1", "abc123")


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = create_pg_database() if request.param == "postgresql" else f"sqlite:///{tmp_path}/x.db"
    database = Database(url)
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()
        if request.param == "postgresql":
            drop_pg_database(url)


def test_one_owner_until_the_lease_expires(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite has one server per database: every other owner is gone")
    a, b = Claims(db, 0.6), Claims(db, 0.6)
    with db.begin() as conn:
        assert a.insert(conn, KEY)
        assert not b.insert(conn, KEY)
    assert not b.acquire(KEY)  # a lives
    assert b.take_over(EXECUTION) == []
    assert a.renew() == {KEY}
    with db.begin() as conn:
        a.check(conn, KEY)
    time.sleep(0.7)  # a stops renewing
    with db.begin() as conn:
        a.check(conn, KEY)  # expired, but nobody took it over: still a's
    assert b.take_over(EXECUTION) == [(KEY, a.server_id)]
    with db.begin() as conn, pytest.raises(LeaseLost):
        a.check(conn, KEY)
    assert a.renew() == set()
    assert not a.acquire(KEY)
    with db.begin() as conn:
        b.check(conn, KEY)
        b.release(conn, KEY)
    assert a.acquire(KEY)  # released: anyone may claim it


def test_a_dead_owner_on_this_machine_is_reaped_only_when_asked(db: Database) -> None:
    a = Claims(db, 30)
    dead = Claims(db, 30, server_id=f"0badc0ffee00-{2**22 + 12345}@{a.server_id.rpartition('@')[2]}")
    job = ClaimKey(JOB, "111122223333", "us-east-1", "job1")
    with db.begin() as conn:
        assert dead.insert(conn, job)
    assert a.is_dead(dead.server_id)  # no such process
    if db.is_sqlite:
        assert a.take_over(JOB) == [(job, dead.server_id)]  # the only server of its database
        return
    assert a.take_over(JOB) == []  # steady state: the lease decides
    assert a.take_over(JOB, reap_dead=True) == [(job, dead.server_id)]  # a server starting


def test_relinquish_hands_claims_over_at_once(db: Database) -> None:
    a, b = Claims(db, 30), Claims(db, 30)
    with db.begin() as conn:
        a.insert(conn, KEY)
    a.relinquish()
    assert b.acquire(KEY)
