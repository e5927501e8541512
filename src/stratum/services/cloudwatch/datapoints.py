"""Metric and datapoint records: what PutMetricData stores and what the statistics read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from stratum.services.cloudwatch.tables import cloudwatch_datapoints as points_t
from stratum.services.cloudwatch.tables import cloudwatch_metrics as metrics_t


@dataclass(frozen=True)
class MetricRef:
    account_id: str
    region: str
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]  # sorted by name

    @property
    def key(self) -> str:
        return dimensions_key(self.dimensions)

    def as_api(self) -> dict[str, Any]:
        return {"Namespace": self.namespace, "MetricName": self.name,
                "Dimensions": [{"Name": n, "Value": v} for n, v in self.dimensions]}


def sorted_dimensions(dimensions: Iterable[dict[str, str]] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((d["Name"], d["Value"]) for d in dimensions or []))


def dimensions_key(dimensions: tuple[tuple[str, str], ...]) -> str:
    return "\n".join(f"{n}={v}" for n, v in dimensions)


@dataclass
class Point:
    """One stored datapoint: an aggregate of one or more samples at one timestamp."""
    timestamp: float  # epoch seconds
    count: float
    total: float
    minimum: float
    maximum: float
    unit: str | None
    values: list[list[float]] | None


def metric_id(conn: Connection, ref: MetricRef, now: datetime, *, create: bool) -> int | None:
    key = ref.key
    where = and_(metrics_t.c.account_id == ref.account_id, metrics_t.c.region == ref.region,
                 metrics_t.c.namespace == ref.namespace, metrics_t.c.metric_name == ref.name,
                 metrics_t.c.dimensions_key == key)
    found = conn.execute(select(metrics_t.c.metric_id).where(where)).scalar()
    if found is not None:
        if create:
            conn.execute(update(metrics_t).where(metrics_t.c.metric_id == found).values(last_put_at=now))
        return int(found)
    if not create:
        return None
    result = conn.execute(insert(metrics_t).values(
        account_id=ref.account_id, region=ref.region, namespace=ref.namespace, metric_name=ref.name,
        dimensions_key=key, dimensions=[{"Name": n, "Value": v} for n, v in ref.dimensions], last_put_at=now))
    return int(result.inserted_primary_key[0])


def put(conn: Connection, ref: MetricRef, points: list[dict[str, Any]], now: datetime) -> None:
    """Rows already aggregated: timestamp, unit, sample_count, sum, minimum, maximum, values, resolution."""
    mid = metric_id(conn, ref, now, create=True)
    conn.execute(insert(points_t), [{"metric_id": mid, **p} for p in points])


def put_many(conn: Connection, batch: dict[MetricRef, list[dict[str, Any]]], now: datetime) -> None:
    """Datapoints of several metrics of one account, region and namespace in a few statements: what
    Stratum publishes inside the transaction of a state change (a pipeline execution's end). A
    metric another server creates meanwhile is not an error (insert or nothing, then read)."""
    if not batch:
        return
    first = next(iter(batch))
    c = metrics_t.c
    ids = _metric_ids(conn, first, batch)
    missing = [ref for ref in batch if (ref.name, ref.key) not in ids]
    if missing:
        dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
        conn.execute(dialect.insert(metrics_t).on_conflict_do_nothing(), [
            {"account_id": r.account_id, "region": r.region, "namespace": r.namespace, "metric_name": r.name,
             "dimensions_key": r.key, "dimensions": [{"Name": n, "Value": v} for n, v in r.dimensions],
             "last_put_at": now} for r in missing])
        ids = _metric_ids(conn, first, batch)
    conn.execute(update(metrics_t).where(c.metric_id.in_(list(ids.values()))).values(last_put_at=now))
    conn.execute(insert(points_t), [{"metric_id": ids[(ref.name, ref.key)], **p}
                                    for ref, points in batch.items() for p in points])


def _metric_ids(conn: Connection, first: MetricRef, batch: dict[MetricRef, Any]) -> dict[tuple[str, str], int]:
    c = metrics_t.c
    rows = conn.execute(select(c.metric_name, c.dimensions_key, c.metric_id).where(
        (c.account_id == first.account_id) & (c.region == first.region) & (c.namespace == first.namespace)
        & c.metric_name.in_(sorted({ref.name for ref in batch})))).all()
    wanted = {(ref.name, ref.key) for ref in batch}
    return {(r[0], r[1]): int(r[2]) for r in rows if (r[0], r[1]) in wanted}


def read(conn: Connection, ref: MetricRef, start: datetime, end: datetime) -> list[Point]:
    mid = metric_id(conn, ref, start, create=False)
    if mid is None:
        return []
    rows = conn.execute(select(points_t.c.timestamp, points_t.c.sample_count, points_t.c.sum, points_t.c.minimum,
                               points_t.c.maximum, points_t.c.unit, points_t.c["values"])
                        .where((points_t.c.metric_id == mid) & (points_t.c.timestamp >= start)
                               & (points_t.c.timestamp < end)).order_by(points_t.c.timestamp)).all()
    return [Point(r[0].timestamp(), r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]


def list_metrics(conn: Connection, account: str, region: str, namespace: str | None, name: str | None,
                 active_since: datetime | None) -> list[MetricRef]:
    query = select(metrics_t.c.namespace, metrics_t.c.metric_name, metrics_t.c.dimensions).where(
        (metrics_t.c.account_id == account) & (metrics_t.c.region == region))
    if namespace is not None:
        query = query.where(metrics_t.c.namespace == namespace)
    if name is not None:
        query = query.where(metrics_t.c.metric_name == name)
    if active_since is not None:
        query = query.where(metrics_t.c.last_put_at >= active_since)
    query = query.order_by(metrics_t.c.namespace, metrics_t.c.metric_name, metrics_t.c.dimensions_key)
    return [MetricRef(account, region, r[0], r[1], sorted_dimensions(r[2])) for r in conn.execute(query)]


def expire(conn: Connection, before: datetime) -> int:
    """Drop datapoints older than CloudWatch keeps any (455 days); returns how many went."""
    return int(conn.execute(delete(points_t).where(points_t.c.timestamp < before)).rowcount or 0)
