"""Statistics over datapoints: Period buckets, the five standard statistics and percentiles."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from stratum.services.cloudwatch.datapoints import Point

STANDARD = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d{1,2})?|100)$")


def aligned(start: datetime, period: int) -> datetime:
    """A query's StartTime rounded down to its period, as CloudWatch rounds it."""
    return datetime.fromtimestamp((start.timestamp() // period) * period, UTC)


def buckets(points: Iterable[Point], period: int) -> dict[float, list[Point]]:
    """Points grouped by the start of their period (periods aligned to the epoch, as CloudWatch's
    timestamps are to the minute or second)."""
    out: dict[float, list[Point]] = {}
    for p in points:
        bucket = (p.timestamp // period) * period
        out.setdefault(bucket, []).append(p)
    return out


def statistic(points: list[Point], name: str) -> float | None:
    if name == "SampleCount":
        return sum(p.count for p in points)
    if name == "Sum":
        return sum(p.total for p in points)
    if name == "Average":
        count = sum(p.count for p in points)
        return sum(p.total for p in points) / count if count else None
    if name == "Minimum":
        return min(p.minimum for p in points)
    if name == "Maximum":
        return max(p.maximum for p in points)
    m = PERCENTILE.match(name)
    if m:
        return percentile(points, float(m.group(1)))
    return None


def percentile(points: list[Point], pct: float) -> float | None:
    """Nearest-rank percentile over the values put (datapoints put as StatisticValues have none)."""
    pairs = sorted((v, c) for p in points for v, c in (p.values or []))
    total = sum(c for _, c in pairs)
    if not total:
        return None
    rank = max(1.0, math.ceil(pct / 100 * total))
    seen = 0.0
    for value, count in pairs:
        seen += count
        if seen >= rank:
            return value
    return pairs[-1][0]


def unit_of(points: list[Point]) -> str:
    units = {p.unit for p in points if p.unit}
    return units.pop() if len(units) == 1 else "None"
