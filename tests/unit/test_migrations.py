"""The migrations build exactly the tables the code declares: a database upgraded to head has no
difference from the metadata (a column or index added to a table module without its migration,
or the other way round, fails here rather than on a user's upgraded database)."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from stratum.store.db import Database
from stratum.store.schema import load_all_tables


def test_head_matches_the_declared_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'head.db'}"
    db = Database(url)
    db.migrate()
    db.dispose()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), load_all_tables())
    finally:
        engine.dispose()
    assert diffs == []
