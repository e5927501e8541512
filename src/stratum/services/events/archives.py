"""EventBridge archives and replays: storage and the rules they follow.

An archive belongs to one bus of its account and region. ``archive_event`` runs inside the
transaction that accepts an event onto the bus (see delivery.accept), so an archive holds exactly
the accepted events its pattern matches. Replayed events do not pass through ``accept``: they are
never archived again, which is what the ``"replay-name": [{"exists": false}]`` pattern of
EventBridge's own archive rule achieves. EventCount and SizeBytes are summed from the archived
rows when asked for. Replays are run by the deliverer (delivery.Deliverer.run_replays).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from stratum.protocol.errors import ServiceError
from stratum.server.periodic import Periodic
from stratum.services.events import patterns
from stratum.services.events.buses import BusRef
from stratum.services.events.tables import events_archived, events_archives, events_replays
from stratum.store.db import Database

log = logging.getLogger("stratum.events")

ENABLED = "ENABLED"
ARCHIVE_STATES = ("ENABLED", "DISABLED", "CREATING", "UPDATING", "CREATE_FAILED", "UPDATE_FAILED")
STARTING, RUNNING, CANCELLING, COMPLETED, CANCELLED, FAILED = (
    "STARTING", "RUNNING", "CANCELLING", "COMPLETED", "CANCELLED", "FAILED")
REPLAY_STATES = (STARTING, RUNNING, CANCELLING, COMPLETED, CANCELLED, FAILED)
ACTIVE = (STARTING, RUNNING, CANCELLING)
_ARCHIVE_ARN = re.compile(r"^arn:aws[\w-]*:events:([a-z0-9-]+):(\d{12}):archive/([\.\-_A-Za-z0-9]+)$")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ArchiveRef:
    account_id: str
    region: str
    name: str

    @property
    def arn(self) -> str:
        return f"arn:aws:events:{self.region}:{self.account_id}:archive/{self.name}"


@dataclass(frozen=True)
class ReplayRef:
    account_id: str
    region: str
    name: str

    @property
    def arn(self) -> str:
        return f"arn:aws:events:{self.region}:{self.account_id}:replay/{self.name}"


def parse_archive_arn(arn: str) -> ArchiveRef | None:
    m = _ARCHIVE_ARN.match(arn)
    return ArchiveRef(m.group(2), m.group(1), m.group(3)) if m else None


def archive_not_found(name: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", f"Archive {name} does not exist.", 400)


def replay_not_found(name: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", f"Replay {name} does not exist.", 400)


def _scope(table: Any, ref: ArchiveRef | ReplayRef) -> Any:
    return (table.c.account_id == ref.account_id) & (table.c.region == ref.region) & (table.c.name == ref.name)


def _archived_scope(ref: ArchiveRef) -> Any:
    return ((events_archived.c.account_id == ref.account_id) & (events_archived.c.region == ref.region)
            & (events_archived.c.archive_name == ref.name))


# ---------------------------------------------------------------------------------------- archives
def get_archive(conn: Connection, ref: ArchiveRef, *, lock: bool = False) -> dict[str, Any] | None:
    query = select(events_archives).where(_scope(events_archives, ref))
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def create_archive(conn: Connection, ref: ArchiveRef, bus: BusRef, values: dict[str, Any]) -> dict[str, Any]:
    stamp = now()
    row = {"account_id": ref.account_id, "region": ref.region, "name": ref.name, "arn": ref.arn,
           "bus_name": bus.name, "bus_arn": bus.arn, "state": ENABLED, "created_at": stamp, "updated_at": stamp,
           **values}
    conn.execute(insert(events_archives).values(**row))
    return row


def update_archive(conn: Connection, ref: ArchiveRef, values: dict[str, Any]) -> None:
    conn.execute(update(events_archives).where(_scope(events_archives, ref)).values(updated_at=now(), **values))


def delete_archive(conn: Connection, ref: ArchiveRef) -> None:
    conn.execute(delete(events_archived).where(_archived_scope(ref)))
    conn.execute(delete(events_archives).where(_scope(events_archives, ref)))


def list_archives(conn: Connection, account_id: str, region: str) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(events_archives).where(
        (events_archives.c.account_id == account_id) & (events_archives.c.region == region))
        .order_by(events_archives.c.name)).mappings()]


def sizes(conn: Connection, account_id: str, region: str, names: list[str]) -> dict[str, tuple[int, int]]:
    """EventCount and SizeBytes of the named archives."""
    if not names:
        return {}
    rows = conn.execute(select(events_archived.c.archive_name, func.count(), func.coalesce(func.sum(
        events_archived.c.size), 0)).where(
        (events_archived.c.account_id == account_id) & (events_archived.c.region == region)
        & events_archived.c.archive_name.in_(names)).group_by(events_archived.c.archive_name))
    return {name: (int(count), int(size)) for name, count, size in rows}


def archive_event(conn: Connection, bus: BusRef, event: dict[str, Any], time: datetime, stamp: datetime) -> int:
    """Write ``event`` (just accepted on ``bus``) into each of the bus's archives that wants it."""
    rows = list(conn.execute(select(events_archives.c.name, events_archives.c.event_pattern).where(
        (events_archives.c.account_id == bus.account_id) & (events_archives.c.region == bus.region)
        & (events_archives.c.bus_name == bus.name) & (events_archives.c.state == ENABLED))))
    if not rows:
        return 0
    text = json.dumps(event)
    archived = 0
    for row in rows:
        if row.event_pattern and not _matches(row.event_pattern, event):
            continue
        conn.execute(insert(events_archived).values(
            account_id=bus.account_id, region=bus.region, archive_name=row.name, event=event,
            size=len(text.encode("utf-8")), time=time, archived_at=stamp))
        archived += 1
    return archived


def _matches(pattern: str, event: dict[str, Any]) -> bool:
    from stratum.services.events.delivery import compiled  # the compiled patterns' cache

    try:
        return compiled(pattern).matches(event)
    except patterns.PatternError:
        return False  # stored patterns were validated; one that no longer compiles matches nothing


def sweep(db: Database, at: datetime | None = None) -> int:
    """Remove archived events older than their archive's RetentionDays (0 keeps them)."""
    at = at or now()
    with db.read() as conn:
        kept = list(conn.execute(select(events_archives.c.account_id, events_archives.c.region,
                                        events_archives.c.name, events_archives.c.retention_days)
                                 .where(events_archives.c.retention_days > 0)))
    removed = 0
    for row in kept:
        with db.begin() as conn:
            removed += conn.execute(delete(events_archived).where(
                _archived_scope(ArchiveRef(row.account_id, row.region, row.name))
                & (events_archived.c.archived_at < at - timedelta(days=row.retention_days)))).rowcount
    return removed


class ArchiveRetentionSweeper(Periodic):
    """Applies every archive's RetentionDays every ``interval`` seconds."""

    def __init__(self, db: Database, interval: float) -> None:
        super().__init__("events-archive-retention", interval, self._round)
        self.db = db

    def _round(self) -> None:
        removed = sweep(self.db)
        if removed:
            log.info("archive retention removed %d archived event(s)", removed)


# ----------------------------------------------------------------------------------------- replays
def get_replay(conn: Connection, ref: ReplayRef, *, lock: bool = False) -> dict[str, Any] | None:
    query = select(events_replays).where(_scope(events_replays, ref))
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def create_replay(conn: Connection, ref: ReplayRef, values: dict[str, Any]) -> dict[str, Any]:
    row = {"account_id": ref.account_id, "region": ref.region, "name": ref.name, "arn": ref.arn,
           "state": STARTING, "cursor": 0, "replay_start_time": now(), **values}
    conn.execute(insert(events_replays).values(**row))
    return row


def update_replay(conn: Connection, ref: ReplayRef, **values: Any) -> None:
    conn.execute(update(events_replays).where(_scope(events_replays, ref)).values(**values))


def list_replays(conn: Connection, account_id: str, region: str) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(events_replays).where(
        (events_replays.c.account_id == account_id) & (events_replays.c.region == region))
        .order_by(events_replays.c.name)).mappings()]


def active_replays(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(select(events_replays).where(events_replays.c.state.in_(ACTIVE))
                                          .order_by(events_replays.c.replay_start_time)).mappings()]


def to_replay(conn: Connection, replay: dict[str, Any], limit: int) -> list[Any]:
    """The next archived events of the replay's window after its cursor, in archive order."""
    ref = ArchiveRef(replay["account_id"], replay["region"], replay["archive_name"])
    return list(conn.execute(select(events_archived).where(
        _archived_scope(ref) & (events_archived.c.seq > replay["cursor"])
        & (events_archived.c.time >= replay["event_start_time"]) & (events_archived.c.time < replay["event_end_time"]))
        .order_by(events_archived.c.seq).limit(limit)))
