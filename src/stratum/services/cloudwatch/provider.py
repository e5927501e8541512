"""CloudWatch metrics API (botocore service ``cloudwatch``, signing name ``monitoring``).

Metrics are the caller's account's own: every read and write is scoped to (account, region).
Metric actions take resource ``*`` as in AWS; alarm actions the alarm's ARN."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from stratum.auth.authorizer import tag_condition_keys
from stratum.protocol.errors import ServiceError
from stratum.server.context import Provider, RequestContext
from stratum.services.cloudwatch import alarms, datapoints, queries, statistics
from stratum.services.cloudwatch.queries import invalid

ACTION = "cloudwatch:"
RECENTLY_ACTIVE = timedelta(hours=3)
LISTED_FOR = timedelta(days=14)
LIST_PAGE = 500
_ALARM_FIELDS = ("AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions", "InsufficientDataActions",
                 "MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Dimensions", "Period", "Unit",
                 "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData",
                 "EvaluateLowSampleCountPercentile", "Metrics", "ThresholdMetricId")
_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
    except (ValueError, KeyError, TypeError):
        raise ServiceError("InvalidNextToken", "The service couldn't process the NextToken.", 400) from None


def _aggregate(datum: dict[str, Any]) -> dict[str, Any]:
    """One MetricDatum as a stored row: its samples' count, sum, min, max and values."""
    if "StatisticValues" in datum:
        if "Value" in datum or "Values" in datum:
            raise invalid("The parameters MetricData.member.StatisticValues and MetricData.member.Value are "
                          "mutually exclusive and you have specified both.")
        sv = datum["StatisticValues"]
        return {"sample_count": sv["SampleCount"], "sum": sv["Sum"], "minimum": sv["Minimum"],
                "maximum": sv["Maximum"], "values": None}
    if "Values" in datum:
        values = datum["Values"]
        counts = datum.get("Counts") or [1.0] * len(values)
        if len(counts) != len(values):
            raise invalid("The parameters MetricData.member.Values and MetricData.member.Counts must be of "
                          "the same size.")
        if "Value" in datum:
            raise invalid("The parameters MetricData.member.Value and MetricData.member.Values are mutually "
                          "exclusive and you have specified both.")
        if not values:
            raise invalid("The parameter MetricData.member.Values must not be empty.")
        return {"sample_count": sum(counts), "sum": sum(v * c for v, c in zip(values, counts, strict=True)),
                "minimum": min(values), "maximum": max(values),
                "values": [[v, c] for v, c in zip(values, counts, strict=True)]}
    if "Value" not in datum:
        raise ServiceError("MissingParameter", "The parameter MetricData.member.Value is required.", 400)
    v = datum["Value"]
    return {"sample_count": 1.0, "sum": v, "minimum": v, "maximum": v, "values": [[v, 1.0]]}


def _check_period(period: int) -> None:
    if period not in (1, 5, 10, 20, 30) and period % 60:
        raise invalid("The parameter Period must be 1, 5, 10, 20, 30, or a multiple of 60.")


class CloudWatchProvider(Provider):
    service = "cloudwatch"

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        # How often alarms are evaluated; AWS evaluates each minute, tests shorten it.
        interval = float(os.environ.get("STRATUM_ALARM_EVALUATION_SECONDS", "10"))
        app.add_background(alarms.AlarmEvaluator(app.db, interval))

    # --------------------------------------------------------------------------------- datapoints
    def put_metric_data(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "PutMetricData", "*", context={"cloudwatch:namespace": params["Namespace"]})
        namespace = params["Namespace"]
        if namespace.startswith("AWS/"):
            raise invalid(f"The value {namespace} for parameter Namespace is invalid.")
        # Entity-associated data (EntityMetricData) is stored like the rest; the entity is not kept.
        data = [*(params.get("MetricData") or []),
                *(d for entity in params.get("EntityMetricData") or [] for d in entity.get("MetricData") or [])]
        if not data:
            raise ServiceError("MissingParameter", "The parameter MetricData is required.", 400)
        now = datetime.now(UTC)
        grouped: dict[datapoints.MetricRef, list[dict[str, Any]]] = {}
        for datum in data:
            stamp = datum.get("Timestamp") or now
            if stamp < now - timedelta(days=14) or stamp > now + timedelta(hours=2):
                raise invalid("The parameter MetricData.member.Timestamp must be within the last two weeks "
                              "and no more than two hours in the future.")
            resolution = datum.get("StorageResolution", 60)
            if resolution not in (1, 60):
                raise invalid("The parameter MetricData.member.StorageResolution must be 1 or 60.")
            if resolution == 60:  # standard resolution: stored to the minute, as AWS aggregates it
                stamp = stamp.replace(second=0, microsecond=0)
            ref = datapoints.MetricRef(ctx.account_id, ctx.region, namespace, datum["MetricName"],
                                       datapoints.sorted_dimensions(datum.get("Dimensions")))
            grouped.setdefault(ref, []).append({"timestamp": stamp, "unit": datum.get("Unit"),
                                                "storage_resolution": resolution, **_aggregate(datum)})
        with self.app.db.begin() as conn:
            for ref, points in grouped.items():
                datapoints.put(conn, ref, points, now)
        return {}

    def get_metric_statistics(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "GetMetricStatistics", "*")
        stats = list(params.get("Statistics") or [])
        extended = list(params.get("ExtendedStatistics") or [])
        if not stats and not extended:
            raise ServiceError("MissingParameter", "Must specify either Statistics or ExtendedStatistics.", 400)
        for name in extended:
            if not statistics.PERCENTILE.match(name):
                raise invalid(f"The value {name} for parameter ExtendedStatistics is not supported.")
        period = params["Period"]
        _check_period(period)
        start, end = params["StartTime"], params["EndTime"]
        if start >= end:
            raise invalid("The parameter StartTime must be less than the parameter EndTime.")
        ref = queries.ref_of(ctx.account_id, ctx.region, params)
        with self.app.db.read() as conn:
            points = datapoints.read(conn, ref, statistics.aligned(start, period), end)
        unit = params.get("Unit")
        if unit is not None:
            points = [p for p in points if (p.unit or "None") == unit]
        out = []
        for bucket, members in sorted(statistics.buckets(points, period).items()):
            item: dict[str, Any] = {"Timestamp": datetime.fromtimestamp(bucket, UTC),
                                    "Unit": unit or statistics.unit_of(members)}
            for name in stats:
                item[name] = statistics.statistic(members, name)
            if extended:
                item["ExtendedStatistics"] = {n: v for n in extended
                                              if (v := statistics.statistic(members, n)) is not None}
            out.append(item)
        return {"Label": params["MetricName"], "Datapoints": out}

    def get_metric_data(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "GetMetricData", "*")
        start, end = params["StartTime"], params["EndTime"]
        if start >= end:
            raise invalid("The parameter StartTime must be less than the parameter EndTime.")
        for q in params["MetricDataQueries"]:
            if q.get("MetricStat"):
                _check_period(q["MetricStat"]["Period"])
        with self.app.db.read() as conn:
            results = queries.metric_data(conn, ctx.account_id, ctx.region, params["MetricDataQueries"], start, end)
        descending = params.get("ScanBy", "TimestampDescending") == "TimestampDescending"
        if descending:
            for r in results:
                r["Timestamps"].reverse()
                r["Values"].reverse()
        # Pages hold at most MaxDatapoints values across the results; the token is the offset into
        # the results' values laid end to end.
        budget = params.get("MaxDatapoints") or 100800
        offset = _offset(params.get("NextToken"))
        page: list[dict[str, Any]] = []
        position = 0
        more = False
        for r in results:
            count = len(r["Values"])
            first, position = position, position + count
            if count == 0:
                if offset == 0:  # a result without values is reported once, on the first page
                    page.append(r)
                continue
            lo, hi = max(offset - first, 0), min(count, offset + budget - first)
            if lo >= count:  # given on an earlier page
                continue
            if hi <= lo:  # for a later page
                more = True
                continue
            part = dict(r, Timestamps=r["Timestamps"][lo:hi], Values=r["Values"][lo:hi])
            if hi < count:
                part["StatusCode"] = "PartialData"
                more = True
            page.append(part)
        out: dict[str, Any] = {"MetricDataResults": page, "Messages": []}
        if more:
            out["NextToken"] = _token(offset + budget)
        return out

    def list_metrics(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "ListMetrics", "*")
        active = params.get("RecentlyActive")
        if active is not None and active != "PT3H":
            raise invalid(f"The value {active} for parameter RecentlyActive is not valid.")
        # Metrics without new datapoints for two weeks are no longer listed (their data stays readable).
        since = datetime.now(UTC) - (RECENTLY_ACTIVE if active else LISTED_FOR)
        with self.app.db.read() as conn:
            found = datapoints.list_metrics(conn, ctx.account_id, ctx.region, params.get("Namespace"),
                                            params.get("MetricName"), since)
        wanted = params.get("Dimensions") or []
        if wanted:
            def matches(ref: datapoints.MetricRef) -> bool:
                have = dict(ref.dimensions)
                return all(f["Name"] in have and ("Value" not in f or have[f["Name"]] == f["Value"]) for f in wanted)
            found = [r for r in found if matches(r)]
        offset = _offset(params.get("NextToken"))
        out: dict[str, Any] = {"Metrics": [r.as_api() for r in found[offset:offset + LIST_PAGE]]}
        if offset + LIST_PAGE < len(found):
            out["NextToken"] = _token(offset + LIST_PAGE)
        return out

    # ------------------------------------------------------------------------------------- alarms
    def _alarm_arn(self, ctx: RequestContext, name: str) -> str:
        return ctx.arn("cloudwatch", f"alarm:{name}")

    def put_metric_alarm(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["AlarmName"]
        arn = self._alarm_arn(ctx, name)
        ctx.authorize(ACTION + "PutMetricAlarm", arn)
        if bool(params.get("MetricName")) == bool(params.get("Metrics")):
            raise invalid("Exactly one of MetricName and Metrics must be specified.")
        if params.get("MetricName"):
            if bool(params.get("Statistic")) == bool(params.get("ExtendedStatistic")):
                raise invalid("Exactly one of Statistic and ExtendedStatistic must be specified.")
            if not params.get("Namespace") or not params.get("Period"):
                raise ServiceError("MissingParameter", "Namespace and Period are required with MetricName.", 400)
            _check_period(params["Period"])
        if params.get("Threshold") is None and not params.get("ThresholdMetricId"):
            raise invalid("Threshold is required.")
        for member in ("EvaluationPeriods", "ComparisonOperator"):  # required by the API, optional in the model
            if params.get(member) is None:
                raise ServiceError("MissingParameter", f"The parameter {member} is required.", 400)
        needed = params.get("DatapointsToAlarm")
        if needed is not None and needed > params["EvaluationPeriods"]:
            raise invalid("DatapointsToAlarm must be less than or equal to EvaluationPeriods.")
        tags = params.get("Tags") or []
        if tags:
            ctx.authorize(ACTION + "TagResource", arn, context=tag_condition_keys(tags))
        definition = {k: v for k, v in params.items() if k in _ALARM_FIELDS or k == "AlarmName"}
        now = datetime.now(UTC)
        with self.app.db.begin() as conn:
            if any("SEARCH" in (q.get("Expression") or "").upper() for q in params.get("Metrics") or []):
                raise ServiceError("ValidationError", "SEARCH expressions are not supported for alarms.", 400)
            if params.get("Metrics"):  # the expressions must compute (on an empty window)
                queries.metric_data(conn, ctx.account_id, ctx.region, params["Metrics"], now - timedelta(minutes=1),
                                    now)
            alarms.put(conn, ctx.account_id, ctx.region, arn, alarms.jsonable(definition), now, tags)
        return {}

    def _alarm_out(self, row: Any) -> dict[str, Any]:
        d = row.definition
        out: dict[str, Any] = {"AlarmName": row.name, "AlarmArn": row.arn, "StateValue": row.state_value,
                               "StateReason": row.state_reason, "StateUpdatedTimestamp": row.state_updated_at,
                               "StateTransitionedTimestamp": row.state_updated_at,
                               "AlarmConfigurationUpdatedTimestamp": row.configuration_updated_at,
                               "ActionsEnabled": row.actions_enabled, "OKActions": d.get("OKActions") or [],
                               "AlarmActions": d.get("AlarmActions") or [],
                               "InsufficientDataActions": d.get("InsufficientDataActions") or [],
                               "Dimensions": d.get("Dimensions") or []}
        if row.state_reason_data:
            out["StateReasonData"] = row.state_reason_data
        for key in _ALARM_FIELDS:
            if key not in out and d.get(key) is not None:
                out[key] = d[key]
        out.setdefault("TreatMissingData", "missing")
        return out

    def describe_alarms(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "DescribeAlarms", "*")
        names = params.get("AlarmNames")
        prefix = params.get("AlarmNamePrefix")
        if names and prefix:
            raise invalid("AlarmNames and AlarmNamePrefix are mutually exclusive.")
        state = params.get("StateValue")
        types = params.get("AlarmTypes") or ["MetricAlarm"]
        with self.app.db.read() as conn:
            found = alarms.rows(conn, ctx.account_id, ctx.region) if "MetricAlarm" in types else []
        found = [r for r in found if (not names or r.name in names) and (not prefix or r.name.startswith(prefix))
                 and (not state or r.state_value == state)]
        if params.get("ActionPrefix"):
            found = [r for r in found if any(a.startswith(params["ActionPrefix"]) for a in
                                             r.definition.get("AlarmActions") or [])]
        limit = params.get("MaxRecords") or 50
        offset = _offset(params.get("NextToken"))
        out: dict[str, Any] = {"MetricAlarms": [self._alarm_out(r) for r in found[offset:offset + limit]],
                               "CompositeAlarms": []}
        if offset + limit < len(found):
            out["NextToken"] = _token(offset + limit)
        return out

    def describe_alarms_for_metric(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "DescribeAlarmsForMetric", "*")
        dims = datapoints.sorted_dimensions(params.get("Dimensions"))
        with self.app.db.read() as conn:
            found = alarms.rows(conn, ctx.account_id, ctx.region)
        out = []
        for r in found:
            d = r.definition
            if (d.get("MetricName") != params["MetricName"] or d.get("Namespace") != params["Namespace"]
                    or datapoints.sorted_dimensions(d.get("Dimensions")) != dims):
                continue
            if any(params.get(k) is not None and d.get(k) != params[k]
                   for k in ("Statistic", "ExtendedStatistic", "Period", "Unit")):
                continue
            out.append(self._alarm_out(r))
        return {"MetricAlarms": out}

    def delete_alarms(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        names = params["AlarmNames"]
        if not names:  # nothing to delete: still a decision on the action, for the account's alarms
            ctx.authorize(ACTION + "DeleteAlarms", self._alarm_arn(ctx, "*"))
            return {}
        for name in names:
            ctx.authorize(ACTION + "DeleteAlarms", self._alarm_arn(ctx, name))
        with self.app.db.begin() as conn:
            missing = [n for n in names if alarms.get(conn, ctx.account_id, ctx.region, n) is None]
            if missing:
                raise ServiceError("ResourceNotFound", f"Alarm(s) not found: {', '.join(missing)}", 404)
            for name in names:
                alarms.remove(conn, ctx.account_id, ctx.region, name)
        return {}

    def set_alarm_state(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["AlarmName"]
        ctx.authorize(ACTION + "SetAlarmState", self._alarm_arn(ctx, name))
        if params["StateValue"] not in _STATES:
            raise invalid(f"The value {params['StateValue']} for parameter StateValue is not valid.")
        data = params.get("StateReasonData")
        if data is not None:
            try:
                json.loads(data)
            except ValueError:
                raise invalid("The parameter StateReasonData must be valid JSON.") from None
        with self.app.db.begin() as conn:
            row = alarms.get(conn, ctx.account_id, ctx.region, name)
            if row is None:
                raise ServiceError("ResourceNotFound", f"Alarm {name} not found", 404)
            alarms.set_state(conn, row, params["StateValue"], params["StateReason"], data, datetime.now(UTC))
        return {}

    # --------------------------------------------------------------------------------------- tags
    def _alarm_by_arn(self, ctx: RequestContext, arn: str, action: str, context: dict[str, Any] | None = None
                      ) -> str:
        """The name of the caller's alarm ``arn`` names, once ``action`` on it is allowed."""
        ctx.authorize(ACTION + action, arn, context=context)
        prefix = ctx.arn("cloudwatch", "alarm:")
        if not arn.startswith(prefix):
            raise ServiceError("ResourceNotFoundException", f"Resource {arn} not found.", 404)
        return arn[len(prefix):]

    def tag_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = self._alarm_by_arn(ctx, params["ResourceARN"], "TagResource", tag_condition_keys(params["Tags"]))
        with self.app.db.begin() as conn:
            row = alarms.get(conn, ctx.account_id, ctx.region, name, lock=True)
            if row is None:
                raise ServiceError("ResourceNotFoundException", f"Resource {params['ResourceARN']} not found.", 404)
            values = {t["Key"]: t["Value"] for t in row.tags or []}
            values.update({t["Key"]: t["Value"] for t in params["Tags"]})
            if len(values) > 50:
                raise ServiceError("LimitExceededException", "An alarm can have at most 50 tags.", 400)
            alarms.set_tags(conn, row, [{"Key": k, "Value": v} for k, v in values.items()])
        return {}

    def untag_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = self._alarm_by_arn(ctx, params["ResourceARN"], "UntagResource",
                                     tag_condition_keys(None, params["TagKeys"]))
        with self.app.db.begin() as conn:
            row = alarms.get(conn, ctx.account_id, ctx.region, name, lock=True)
            if row is None:
                raise ServiceError("ResourceNotFoundException", f"Resource {params['ResourceARN']} not found.", 404)
            alarms.set_tags(conn, row, [t for t in row.tags or [] if t["Key"] not in params["TagKeys"]])
        return {}

    def list_tags_for_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = self._alarm_by_arn(ctx, params["ResourceARN"], "ListTagsForResource")
        with self.app.db.read() as conn:
            row = alarms.get(conn, ctx.account_id, ctx.region, name)
        if row is None:
            raise ServiceError("ResourceNotFoundException", f"Resource {params['ResourceARN']} not found.", 404)
        return {"Tags": list(row.tags or [])}

    def describe_alarm_history(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("AlarmName")
        ctx.authorize(ACTION + "DescribeAlarmHistory", self._alarm_arn(ctx, name) if name else "*")
        newest_first = params.get("ScanBy", "TimestampDescending") == "TimestampDescending"
        with self.app.db.read() as conn:
            found = alarms.history(conn, ctx.account_id, ctx.region, name, params.get("HistoryItemType"),
                                   params.get("StartDate"), params.get("EndDate"), newest_first)
        limit = params.get("MaxRecords") or 100
        offset = _offset(params.get("NextToken"))
        items = [{"AlarmName": r.alarm_name, "AlarmType": "MetricAlarm", "Timestamp": r.timestamp,
                  "HistoryItemType": r.item_type, "HistorySummary": r.summary, "HistoryData": r.data}
                 for r in found[offset:offset + limit]]
        out: dict[str, Any] = {"AlarmHistoryItems": items}
        if offset + limit < len(found):
            out["NextToken"] = _token(offset + limit)
        return out
