"""Metric alarms: their records, state changes (with history and a "CloudWatch Alarm State Change"
event written to the event outbox in the same transaction) and their periodic evaluation."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from stratum.protocol.errors import ServiceError
from stratum.server.periodic import Periodic
from stratum.services.cloudwatch import datapoints, queries
from stratum.services.cloudwatch.tables import cloudwatch_alarm_history as history_t
from stratum.services.cloudwatch.tables import cloudwatch_alarms as alarms_t
from stratum.services.sagemaker.registry.tables import sagemaker_registry_events as outbox_t
from stratum.store.db import Database

log = logging.getLogger("stratum.cloudwatch")

STATE_CHANGE = "CloudWatch Alarm State Change"
RETENTION = timedelta(days=455)  # one-hour datapoints, the longest CloudWatch keeps
_COMPARE = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}
_SYMBOL = {"GreaterThanOrEqualToThreshold": ">=", "GreaterThanThreshold": ">", "LessThanThreshold": "<",
           "LessThanOrEqualToThreshold": "<="}


def get(conn: Connection, account: str, region: str, name: str, *, lock: bool = False) -> Row[Any] | None:
    query = select(alarms_t).where((alarms_t.c.account_id == account) & (alarms_t.c.region == region)
                                   & (alarms_t.c.name == name))
    return conn.execute(query.with_for_update() if lock else query).first()


def rows(conn: Connection, account: str, region: str) -> list[Row[Any]]:
    return list(conn.execute(select(alarms_t).where((alarms_t.c.account_id == account)
                                                    & (alarms_t.c.region == region)).order_by(alarms_t.c.name)))


def put(conn: Connection, account: str, region: str, arn: str, definition: dict[str, Any], now: datetime,
        tags: list[dict[str, str]]) -> None:
    """Create or update an alarm; ``tags`` apply only when it is created, as in CloudWatch."""
    existing = get(conn, account, region, definition["AlarmName"])
    values = {"definition": definition, "actions_enabled": definition.get("ActionsEnabled", True),
              "configuration_updated_at": now}
    if existing is None:
        conn.execute(insert(alarms_t).values(account_id=account, region=region, name=definition["AlarmName"], arn=arn,
                                             state_value="INSUFFICIENT_DATA", state_reason="Unchecked: Initial alarm creation",
                                             state_updated_at=now, tags=tags, **values))
        summary = f"Alarm \"{definition['AlarmName']}\" created"
    else:
        conn.execute(update(alarms_t).where((alarms_t.c.account_id == account) & (alarms_t.c.region == region)
                                            & (alarms_t.c.name == definition["AlarmName"])).values(**values))
        summary = f"Alarm \"{definition['AlarmName']}\" updated"
    _history(conn, account, region, definition["AlarmName"], now, "ConfigurationUpdate", summary,
             {"type": "Update" if existing else "Create", "updatedAlarm": jsonable(definition)})


def set_tags(conn: Connection, row: Row[Any], tags: list[dict[str, str]]) -> None:
    conn.execute(update(alarms_t).where((alarms_t.c.account_id == row.account_id) & (alarms_t.c.region == row.region)
                                        & (alarms_t.c.name == row.name)).values(tags=tags))


def remove(conn: Connection, account: str, region: str, name: str) -> None:
    where = (alarms_t.c.account_id == account) & (alarms_t.c.region == region) & (alarms_t.c.name == name)
    conn.execute(delete(alarms_t).where(where))


def set_state(conn: Connection, row: Row[Any], state: str, reason: str, reason_data: str | None,
              now: datetime) -> bool:
    """Record a state change (a no-op when the state is unchanged); True when it changed."""
    if row.state_value == state:
        return False
    conn.execute(update(alarms_t).where((alarms_t.c.account_id == row.account_id) & (alarms_t.c.region == row.region)
                                        & (alarms_t.c.name == row.name)).values(
        state_value=state, state_reason=reason, state_reason_data=reason_data, state_updated_at=now))
    previous = {"value": row.state_value, "reason": row.state_reason, "timestamp": _iso(row.state_updated_at)}
    current = {"value": state, "reason": reason, "timestamp": _iso(now)}
    if reason_data:
        current["reasonData"] = reason_data
    _history(conn, row.account_id, row.region, row.name, now, "StateUpdate",
             f"Alarm updated from {row.state_value} to {state}",
             {"version": "1.0", "oldState": {"stateValue": row.state_value, "stateReason": row.state_reason},
              "newState": {"stateValue": state, "stateReason": reason}})
    definition = row.definition
    configuration: dict[str, Any] = {"description": definition.get("AlarmDescription")}
    if definition.get("MetricName"):
        configuration["metrics"] = [{"id": "m1", "returnData": True, "metricStat": {
            "metric": {"namespace": definition.get("Namespace"), "name": definition["MetricName"],
                       "dimensions": {d["Name"]: d["Value"] for d in definition.get("Dimensions") or []}},
            "period": definition.get("Period"), "stat": definition.get("Statistic") or definition.get(
                "ExtendedStatistic")}}]
    conn.execute(insert(outbox_t).values(
        account_id=row.account_id, region=row.region, source="aws.cloudwatch", detail_type=STATE_CHANGE,
        resources=[row.arn], created_at=now, dispatched_at=None,
        detail={"alarmName": row.name, "state": current, "previousState": previous,
                "configuration": configuration}))
    return True


def history(conn: Connection, account: str, region: str, name: str | None, item_type: str | None,
            start: datetime | None, end: datetime | None, newest_first: bool) -> list[Row[Any]]:
    query = select(history_t).where((history_t.c.account_id == account) & (history_t.c.region == region))
    if name:
        query = query.where(history_t.c.alarm_name == name)
    if item_type:
        query = query.where(history_t.c.item_type == item_type)
    if start:
        query = query.where(history_t.c.timestamp >= start)
    if end:
        query = query.where(history_t.c.timestamp <= end)
    order = history_t.c.seq.desc() if newest_first else history_t.c.seq
    return list(conn.execute(query.order_by(order)))


def _history(conn: Connection, account: str, region: str, name: str, now: datetime, item_type: str, summary: str,
             data: dict[str, Any]) -> None:
    conn.execute(insert(history_t).values(account_id=account, region=region, alarm_name=name, timestamp=now,
                                          item_type=item_type, summary=summary, data=json.dumps(data)))


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def jsonable(value: Any) -> Any:
    """A definition as stored (JSON): timestamps as text."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return _iso(value)
    return value


# ------------------------------------------------------------------------------------- evaluation
def evaluate(conn: Connection, row: Row[Any], now: datetime) -> tuple[str, str, str] | None:
    """The state the alarm's recent datapoints call for, with reason and reason data; None to keep
    the current state (missing data treated as "ignore")."""
    d = row.definition
    metrics = d.get("Metrics")
    if metrics:  # a metric-math alarm: the period of its returned query, or the shortest of its metrics
        periods_seen = [q["MetricStat"]["Period"] for q in metrics if q.get("MetricStat")]
        periods_seen += [q["Period"] for q in metrics if q.get("Period")]
        period = int(min(periods_seen) if periods_seen else 60)
    else:
        period = int(d["Period"])
    periods = int(d["EvaluationPeriods"])
    needed = int(d.get("DatapointsToAlarm") or periods)
    compare = _COMPARE.get(d["ComparisonOperator"])
    if compare is None or d.get("Threshold") is None:
        return None  # anomaly-detection bands (ThresholdMetricId) are not evaluated
    threshold = float(d["Threshold"])
    # The evaluation window: the last `periods` whole periods before now.
    end_epoch = (int(now.timestamp()) // period) * period
    start = datetime.fromtimestamp(end_epoch - period * periods, UTC)
    end = datetime.fromtimestamp(end_epoch, UTC)
    if metrics:
        results = queries.metric_data(conn, row.account_id, row.region, metrics, start, end)
        if len(results) != 1:
            return None
        series = {t.timestamp(): v for t, v in zip(results[0]["Timestamps"], results[0]["Values"], strict=True)}
    else:
        ref = queries.ref_of(row.account_id, row.region, d)
        stat = d.get("Statistic") or d.get("ExtendedStatistic")
        series = queries.stat_series(conn, ref, stat, start, end, period, d.get("Unit"))
    slots = [start.timestamp() + i * period for i in range(periods)]
    treat = d.get("TreatMissingData") or "missing"
    breaching = 0
    present = 0
    for slot in slots:
        if slot in series:
            present += 1
            breaching += compare(series[slot], threshold)
        elif treat == "breaching":
            breaching += 1
    if present == 0 and treat in ("missing", "ignore"):
        if treat == "ignore":
            return None
        return ("INSUFFICIENT_DATA", f"Insufficient Data: {periods} datapoints were unknown.", _reason_data(
            d, [], start, end, period))
    recent = [series[s] for s in slots if s in series]
    symbol = _SYMBOL[d["ComparisonOperator"]]
    shown = ", ".join(f"{v:g}" for v in recent[-needed:][::-1])
    if breaching >= needed:
        reason = (f"Threshold Crossed: {breaching} out of the last {periods} datapoints [{shown}] "
                  f"were {symbol} the threshold ({threshold:g}) (minimum {needed} datapoint(s) for OK -> ALARM "
                  "transition).")
        return "ALARM", reason, _reason_data(d, recent, start, end, period)
    reason = (f"Threshold Crossed: {periods - breaching} out of the last {periods} datapoints [{shown}] were not "
              f"{symbol} the threshold ({threshold:g}) (minimum 1 datapoint for ALARM -> OK transition).")
    return "OK", reason, _reason_data(d, recent, start, end, period)


def _reason_data(d: dict[str, Any], recent: list[float], start: datetime, end: datetime, period: int) -> str:
    data: dict[str, Any] = {"version": "1.0", "queryDate": _iso(datetime.now(UTC)), "startDate": _iso(start),
                            "period": period, "recentDatapoints": recent, "threshold": d["Threshold"],
                            "evaluatedDatapoints": [{"timestamp": _iso(end - timedelta(seconds=period)), "value": v}
                                                    for v in recent[-1:]]}
    if d.get("Statistic") or d.get("ExtendedStatistic"):
        data["statistic"] = d.get("Statistic") or d.get("ExtendedStatistic")
    return json.dumps(data)


def _outcome(conn: Connection, row: Row[Any], now: datetime) -> tuple[str, str, str] | None:
    try:
        return evaluate(conn, row, now)
    except ServiceError as exc:  # a metric-math expression that cannot be computed
        log.warning("alarm %s cannot be evaluated: %s", row.name, exc.message)
        return None


def evaluate_all(db: Database, now: datetime | None = None) -> int:
    """Evaluate every alarm once; returns how many changed state. Alarms are read without the
    write lock (SQLite has one writer): only an alarm whose state changes is written, evaluated
    again under a row lock so servers sharing a database record each change once."""
    now = now or datetime.now(UTC)
    with db.read() as conn:
        due = []
        for row in conn.execute(select(alarms_t)).all():
            outcome = _outcome(conn, row, now)
            if outcome is not None and outcome[0] != row.state_value:
                due.append((row.account_id, row.region, row.name))
    changed = 0
    for account, region, name in due:
        with db.begin() as conn:
            row = get(conn, account, region, name, lock=True)
            outcome = _outcome(conn, row, now) if row is not None else None
            if row is not None and outcome is not None and set_state(conn, row, *outcome, now):
                changed += 1
    return changed


class AlarmEvaluator(Periodic):
    """The background service that evaluates every alarm every few seconds, and hourly drops the
    datapoints past CloudWatch's retention."""

    def __init__(self, db: Database, interval: float) -> None:
        super().__init__("cloudwatch-alarms", interval, self._round)
        self.db = db
        self._next_expiry = 0.0

    def _round(self) -> None:
        evaluate_all(self.db)
        if time.monotonic() >= self._next_expiry:
            self._next_expiry = time.monotonic() + 3600
            with self.db.begin() as conn:
                datapoints.expire(conn, datetime.now(UTC) - RETENTION)
