"""An in-process server state whose pipeline engine tests drive directly."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row

from stratum.config import Settings
from stratum.engine.scheduler import PipelineEngine
from stratum.server.app_state import AppState
from stratum.services.sagemaker.arns import PipelineRef
from stratum.services.sagemaker.pipelines import records as pl
from stratum.services.sagemaker.pipelines.definition import PipelineDefinition
from stratum.store.db import Database

ACCOUNT, REGION = "111122223333", "us-east-1"
ACTOR = pl.Actor(f"arn:aws:iam::{ACCOUNT}:user/admin", "AIDAEXAMPLE")


@contextmanager
def engine_app(data_dir: Path, poll_seconds: float) -> Iterator[AppState]:
    """A migrated SQLite AppState; its background services are stopped on exit."""
    settings = Settings(data_dir=data_dir)
    settings.engine_poll_seconds = poll_seconds
    db = Database(settings.db_url)
    db.migrate()
    state = AppState(settings, db)
    try:
        yield state
    finally:
        for service in state.background:
            service.stop()
        db.dispose()


def engine_of(app: AppState) -> PipelineEngine:
    engine: PipelineEngine = app.providers["sagemaker"].engine  # type: ignore[attr-defined]
    return engine


def new_pipeline(conn: Connection, steps: list[dict[str, Any]], parameters: list[dict[str, Any]] | None = None
                 ) -> tuple[Row[Any], PipelineDefinition, datetime]:
    """Create a pipeline with these steps in ACCOUNT; its version row (as StartPipelineExecution
    reads it), parsed definition, and the time used."""
    name = f"p{time.monotonic_ns()}"
    definition = json.dumps({"Version": "2020-12-01", "Parameters": parameters or [], "Steps": steps})
    now = datetime.now(UTC)
    pl.create_pipeline(conn, account=ACCOUNT, region=REGION, name=name, definition=definition,
                       role_arn=f"arn:aws:iam::{ACCOUNT}:role/r", display_name=None, description=None, tags=[],
                       parallelism=None, aliases=[], actor=ACTOR, now=now)
    row = pl.get_pipeline_version(conn, PipelineRef(ACCOUNT, REGION, name.lower(), name), for_start=True)
    assert row is not None
    return row, pl.parsed_version(conn, row.pipeline_id, row.version_id), now
