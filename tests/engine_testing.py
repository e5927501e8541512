"""An in-process server state whose pipeline engine tests drive directly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stratum.config import Settings
from stratum.engine.scheduler import PipelineEngine
from stratum.server.app_state import AppState
from stratum.store.db import Database


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
