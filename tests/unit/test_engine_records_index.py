"""The engine's poll for active executions is served by the partial index of active executions."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from stratum.engine import records
from stratum.store.db import Database


def test_active_executions_poll_uses_the_partial_index(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/x.db")
    db.migrate()
    try:
        with db.read() as conn:
            sql = str(records._ACTIVE.compile(dialect=conn.dialect))
            plan = " ".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
            assert "USING INDEX ix_sagemaker_pipeline_executions_active" in plan, plan
            assert records.active_executions(conn) == []
    finally:
        db.dispose()
