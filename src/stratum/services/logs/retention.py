"""Retention: events older than their group's retention are never read, and their storage goes.

A stream's data file is append-only, so storage is reclaimed a whole stream at a time: once every
event of a stream has expired its files are emptied; a stream still being written to keeps its
older events on disk (hidden from every read) until its newest has expired too. The sweep runs on
PutRetentionPolicy, on DescribeLogStreams and in the background (hourly by default), so a group
nobody reads is bounded as well.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import select

from stratum.server.periodic import Periodic
from stratum.services.logs import catalog
from stratum.services.logs.eventstore import StreamReader, exclusive, index_path, now_ms
from stratum.services.logs.tables import logs_groups
from stratum.store.db import Database

log = logging.getLogger("stratum.logs")

DAY_MS = 86_400_000


def cutoff(group: dict[str, Any], now: int | None = None) -> int:
    """Events older than this are past the group's retention (0: kept forever)."""
    days = group.get("retention_days")
    return (now_ms() if now is None else now) - int(days) * DAY_MS if days else 0


def latest(reader: StreamReader) -> int:
    """The stream's latest event time (events from PutLogEvents may come in any order)."""
    return max((r[2] for r in reader.records), default=0)


def enforce(db: Database, data_dir: Path, group: dict[str, Any]) -> int:
    """Empty the streams of ``group`` whose every event has expired; returns how many."""
    limit = cutoff(group)
    if not limit:
        return 0
    with db.read() as conn:
        streams = catalog.list_streams(conn, group["account_id"], group["region"], group["name"])
    emptied = 0
    for s in streams:
        data = data_dir / s["path"]
        with exclusive(data):
            reader = StreamReader(data)
            if reader.last_timestamp() is not None and latest(reader) < limit:
                # Truncated, not unlinked: a process still writing appends to the same file.
                for path in (data, index_path(data)):
                    with contextlib.suppress(FileNotFoundError):
                        os.truncate(path, 0)
                emptied += 1
    return emptied


def sweep(db: Database, data_dir: Path) -> int:
    """Enforce retention on every group that has one, in every account."""
    with db.read() as conn:
        groups = [dict(r) for r in conn.execute(
            select(logs_groups).where(logs_groups.c.retention_days.is_not(None))).mappings()]
    return sum(enforce(db, data_dir, g) for g in groups)


class RetentionSweeper(Periodic):
    """The background service that applies every group's retention every ``interval`` seconds."""

    def __init__(self, db: Database, data_dir: Path, interval: float) -> None:
        super().__init__("logs-retention", interval, self._round)
        self.db = db
        self.data_dir = data_dir

    def _round(self) -> None:
        emptied = sweep(self.db, self.data_dir)
        if emptied:
            log.info("retention emptied %d expired log stream(s)", emptied)
