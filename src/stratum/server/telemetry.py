"""Request counters and latency histograms for the Prometheus endpoint (``/metrics``).

Recording is a couple of dict operations per request on the event loop thread (no lock needed:
one thread records); rendering copies the dicts first, so a scrape never sees one changing."""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

# Upper bounds, in seconds, of the latency histogram buckets.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestStats:
    def __init__(self) -> None:
        # (service, operation, status) -> [count per latency bucket (the last for +Inf)..., seconds]
        self.entries: dict[tuple[str, str, int], list[float]] = {}

    def record(self, service: str, operation: str, status: int, seconds: float) -> None:
        entry = self.entries.get((service, operation, status))
        if entry is None:
            entry = self.entries[(service, operation, status)] = [0.0] * (len(BUCKETS) + 2)
        entry[bisect_left(BUCKETS, seconds)] += 1
        entry[-1] += seconds


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(stats: RequestStats, gauges: dict[str, tuple[str, float]], published: list[str] | None = None) -> str:
    """The Prometheus text exposition format (version 0.0.4); ``published``: lines of the
    published CloudWatch metrics (services.cloudwatch.prometheus)."""
    lines = ["# HELP stratum_requests_total API requests answered, by service, operation and HTTP status.",
             "# TYPE stratum_requests_total counter"]
    entries = sorted((key, list(entry)) for key, entry in dict(stats.entries).items())
    for (service, op, status), entry in entries:
        lines.append(f'stratum_requests_total{{service="{_label(service)}",operation="{_label(op)}",'
                     f'status="{status}"}} {sum(entry[:-1]):g}')
    lines += ["# HELP stratum_request_duration_seconds Time to answer an API request.",
              "# TYPE stratum_request_duration_seconds histogram"]
    latency: dict[tuple[str, str], list[float]] = {}
    for (service, op, _status), entry in entries:
        merged = latency.setdefault((service, op), [0.0] * len(entry))
        for i, value in enumerate(entry):
            merged[i] += value
    for (service, op), entry in sorted(latency.items()):
        labels = f'service="{_label(service)}",operation="{_label(op)}"'
        cumulative = 0.0
        for bound, count in zip((*BUCKETS, float("inf")), entry[:-1], strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'stratum_request_duration_seconds_bucket{{{labels},le="{le}"}} {cumulative:g}')
        lines.append(f"stratum_request_duration_seconds_sum{{{labels}}} {entry[-1]!r}")
        lines.append(f"stratum_request_duration_seconds_count{{{labels}}} {cumulative:g}")
    for name, (help_text, value) in sorted(gauges.items()):
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
    lines += published or []
    return "\n".join(lines) + "\n"


def sources(app: AppState) -> list[str]:
    """The lines the app's services add (endpoint invocation counters...)."""
    return [line for source in app.telemetry_sources for line in source()]


def gauges(app: AppState) -> dict[str, tuple[str, float]]:
    """What the engine and the job executors are doing now, from the database (every server of a
    shared database reports the same totals)."""
    from sqlalchemy import func, select

    from stratum.jobs.tables import sagemaker_jobs
    from stratum.services.sagemaker.tables import sagemaker_pipeline_executions as executions

    out: dict[str, tuple[str, float]] = {}
    with app.db.read() as conn:
        jobs = dict(conn.execute(select(sagemaker_jobs.c.kind, func.count()).where(
            sagemaker_jobs.c.status.in_(("InProgress", "Stopping"))).group_by(sagemaker_jobs.c.kind)).all())
        running = conn.execute(select(func.count()).select_from(executions).where(
            executions.c.status.in_(("Executing", "Stopping")))).scalar() or 0
    for kind in ("processing", "training", "transform", "tuning"):
        out[f"stratum_{kind}_jobs_in_progress"] = (f"{kind.capitalize()} jobs in progress or stopping.",
                                                   float(jobs.get(kind, 0)))
    out["stratum_pipeline_executions_running"] = ("Pipeline executions executing or stopping.", float(running))
    out["stratum_background_services"] = ("Background services this server runs.", float(len(app.background)))
    return out
