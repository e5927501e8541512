"""Published CloudWatch metrics in the Prometheus text format, for ``GET /metrics``: the statistics
of the last minute of every metric that received data in it (what a scrape every 15-60 s graphs),
so a Prometheus + Grafana already in place sees what Stratum publishes for jobs, pipelines and
endpoints without calling the CloudWatch API."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from stratum.services.cloudwatch.tables import cloudwatch_datapoints as points_t
from stratum.services.cloudwatch.tables import cloudwatch_metrics as metrics_t
from stratum.store.db import Database

WINDOW = timedelta(minutes=1)
STATISTICS = (("sample_count", "SampleCount"), ("sum", "Sum"), ("minimum", "Minimum"), ("maximum", "Maximum"))
_NOT_LABEL = re.compile(r"[^a-zA-Z0-9_]")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _dimension_label(name: str) -> str:
    """A CloudWatch dimension name as a Prometheus label name (letters, digits and _ only)."""
    return "dim_" + _NOT_LABEL.sub("_", name)


def render(db: Database, now: datetime | None = None) -> list[str]:
    now = now or datetime.now(UTC)
    since = now - WINDOW
    m, p = metrics_t.c, points_t.c
    with db.read() as conn:
        active = conn.execute(select(m.metric_id, m.account_id, m.region, m.namespace, m.metric_name, m.dimensions)
                              .where(m.last_put_at >= since)).all()
        if not active:
            return []
        stats = {row[0]: row[1:] for row in conn.execute(
            select(p.metric_id, func.sum(p.sample_count), func.sum(p.sum), func.min(p.minimum), func.max(p.maximum))
            .where(p.metric_id.in_([a.metric_id for a in active]) & (p.timestamp >= since) & (p.timestamp <= now))
            .group_by(p.metric_id))}
    lines: list[str] = []
    series = []
    for a in sorted(active, key=lambda r: (r.account_id, r.region, r.namespace, r.metric_name, str(r.dimensions))):
        if a.metric_id not in stats:
            continue
        labels = [f'account="{a.account_id}"', f'region="{_escape(a.region)}"', f'namespace="{_escape(a.namespace)}"',
                  f'metric="{_escape(a.metric_name)}"']
        labels += [f'{_dimension_label(d["Name"])}="{_escape(d["Value"])}"' for d in a.dimensions or []]
        series.append((",".join(labels), stats[a.metric_id]))
    for i, (suffix, statistic) in enumerate(STATISTICS):
        name = f"stratum_cloudwatch_{suffix}"
        lines += [f"# HELP {name} {statistic} of the last minute's datapoints of each published CloudWatch metric.",
                  f"# TYPE {name} gauge"]
        lines += [f"{name}{{{labels}}} {float(values[i]):g}" for labels, values in series]
    return lines
