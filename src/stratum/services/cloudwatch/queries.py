"""GetMetricStatistics and GetMetricData computed from stored datapoints (shared with alarms)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from stratum.protocol.errors import ServiceError
from stratum.services.cloudwatch import datapoints, statistics
from stratum.services.cloudwatch.datapoints import MetricRef
from stratum.services.cloudwatch.expressions import ExpressionError, Labeled, Series, evaluate, references
from stratum.services.cloudwatch.search import MAX_RESULTS, SearchQuery
from stratum.services.cloudwatch.search import labels as search_labels


def invalid(message: str) -> ServiceError:
    return ServiceError("InvalidParameterValue", message, 400)


def ref_of(account: str, region: str, metric: dict[str, Any]) -> MetricRef:
    return MetricRef(account, region, metric["Namespace"], metric["MetricName"],
                     datapoints.sorted_dimensions(metric.get("Dimensions")))


def stat_series(conn: Connection, ref: MetricRef, stat: str, start: datetime, end: datetime, period: int,
                unit: str | None = None) -> Series:
    points = datapoints.read(conn, ref, statistics.aligned(start, period), end)
    if unit is not None:
        points = [p for p in points if (p.unit or "None") == unit]
    out: Series = {}
    for bucket, members in sorted(statistics.buckets(points, period).items()):
        value = statistics.statistic(members, stat)
        if value is not None:
            out[bucket] = value
    return out


def metric_data(conn: Connection, account: str, region: str, queries: list[dict[str, Any]],
                start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Every query's result in request order (ReturnData false ones left out), ascending time; a
    SEARCH gives one result per series found, all with the query's Id."""
    computed: dict[str, Any] = {}  # id -> Series, or a list of Labeled series (a SEARCH)
    labels: dict[str, str] = {}
    errors: dict[str, str] = {}
    periods = [q["MetricStat"]["Period"] for q in queries if q.get("MetricStat")] + \
              [q["Period"] for q in queries if q.get("Period")]
    default_period = min(periods) if periods else 60
    ids = [q["Id"] for q in queries]
    if len(set(ids)) != len(ids):
        raise ServiceError("ValidationError", "The values for parameter id in MetricDataQueries are not unique.", 400)
    for q in queries:
        if bool(q.get("MetricStat")) == bool(q.get("Expression")):
            raise ServiceError("ValidationError",
                               f"Exactly one of MetricStat and Expression must be set for query {q['Id']}.", 400)
        if q.get("MetricStat"):
            ms = q["MetricStat"]
            ref = ref_of(account, region, ms["Metric"])
            computed[q["Id"]] = stat_series(conn, ref, ms["Stat"], start, end, ms["Period"], ms.get("Unit"))
            labels[q["Id"]] = q.get("Label") or ms["Metric"]["MetricName"]

    def run_search(text: str, stat: str, period: int) -> list[Labeled]:
        query = SearchQuery(text)
        found = [ref for ref in datapoints.list_metrics(conn, account, region, query.namespace, None, None)
                 if query.matches(ref)][:MAX_RESULTS]
        out = []
        for ref, label in zip(found, search_labels(found), strict=True):
            series = Labeled(stat_series(conn, ref, stat, start, end, period))
            series.label = label
            out.append(series)
        return out

    pending = [q for q in queries if q.get("Expression")]
    metric_ids = [q["Id"] for q in queries if q.get("MetricStat")]
    # Expressions may use each other: each is evaluated once the ids it names are computed.
    while pending:
        ready = [q for q in pending if references(q["Expression"]) & set(ids) <= computed.keys()]
        if not ready:
            raise ServiceError("ValidationError", "Circular references between expressions.", 400)
        for q in ready:
            try:
                value = evaluate(q["Expression"], computed, q.get("Period") or default_period, metric_ids,
                                 run_search)
            except ExpressionError as exc:
                raise ServiceError("ValidationError", f"Error in expression '{q['Id']}': {exc}", 400) from None
            if isinstance(value, float):
                value = {start.timestamp(): value}
            if isinstance(value, list) and not all(isinstance(v, Labeled) for v in value):
                if len(value) != 1:
                    errors[q["Id"]] = "Expression returned more than one time series; use SUM, AVG, MIN or MAX."
                    value = {}
                else:
                    value = value[0]
            computed[q["Id"]] = value
            labels[q["Id"]] = q.get("Label") or q["Id"]
            pending.remove(q)
    results = []
    for q in queries:
        if q.get("ReturnData", True) is False:
            continue
        value = computed[q["Id"]]
        found = value if isinstance(value, list) else [value]
        for series in found:
            times = sorted(series)
            label = labels[q["Id"]]
            if isinstance(series, Labeled):
                label = f"{q['Label']} {series.label}" if q.get("Label") else series.label
            result: dict[str, Any] = {"Id": q["Id"], "Label": label,
                                      "Timestamps": [datetime.fromtimestamp(t, UTC) for t in times],
                                      "Values": [series[t] for t in times], "StatusCode": "Complete"}
            if q["Id"] in errors:
                result["StatusCode"] = "InternalError"
                result["Messages"] = [{"Code": "InternalError", "Value": errors[q["Id"]]}]
            results.append(result)
    return results
