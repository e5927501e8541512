"""CloudWatch metrics through boto3: PutMetricData in every form, GetMetricStatistics, GetMetricData
with metric math and pagination, ListMetrics filters, alarms evaluated by the server, accounts
kept apart, datapoints kept over a restart, and the Prometheus endpoint."""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from authz_testing import client, limited_user
from botocore.exceptions import ClientError
from sqlalchemy import select
from stratum_testing import BACKENDS, REGION, StratumServer, close_server, make_server

from stratum.services.sagemaker.registry.tables import sagemaker_registry_events
from stratum.store.db import Database


@pytest.fixture(scope="module", params=BACKENDS)
def cw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    """A server whose alarms are evaluated every second (AWS: every minute)."""
    srv = make_server(tmp_path_factory, request.param)
    os.environ["STRATUM_ALARM_EVALUATION_SECONDS"] = "1"
    try:
        srv.start()
    finally:
        del os.environ["STRATUM_ALARM_EVALUATION_SECONDS"]
    yield srv
    close_server(srv)


def _ns() -> str:
    return f"Test/{uuid.uuid4().hex[:8]}"


def _minute(offset: int = 0) -> datetime:
    """The start of the minute ``offset`` minutes from this one."""
    return datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=offset)


def _error(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as err:
        call(**kwargs)
    return dict(err.value.response["Error"])


DIMS = [{"Name": "Service", "Value": "api"}, {"Name": "Env", "Value": "prod"}]


def test_put_metric_data_and_statistics(cw: StratumServer) -> None:
    c = client(cw, "cloudwatch")
    ns = _ns()
    t0, t1 = _minute(-5), _minute(-4)
    c.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Latency", "Dimensions": DIMS, "Timestamp": t0 + timedelta(seconds=5), "Value": 10.0,
         "Unit": "Milliseconds"},
        {"MetricName": "Latency", "Dimensions": DIMS, "Timestamp": t0 + timedelta(seconds=30),
         "Values": [20.0, 40.0], "Counts": [3, 1], "Unit": "Milliseconds"},
        {"MetricName": "Latency", "Dimensions": list(reversed(DIMS)), "Timestamp": t1 + timedelta(seconds=1),
         "StatisticValues": {"SampleCount": 4, "Sum": 400.0, "Minimum": 50.0, "Maximum": 150.0},
         "Unit": "Milliseconds"},
        {"MetricName": "Latency", "Dimensions": [DIMS[0]], "Timestamp": t0, "Value": 999.0},
    ])
    out = c.get_metric_statistics(Namespace=ns, MetricName="Latency", Dimensions=DIMS, StartTime=t0 - timedelta(
        minutes=1), EndTime=t1 + timedelta(minutes=1), Period=60,
        Statistics=["SampleCount", "Sum", "Average", "Minimum", "Maximum"], ExtendedStatistics=["p50", "p99"])
    assert out["Label"] == "Latency"
    points = sorted(out["Datapoints"], key=lambda p: p["Timestamp"])
    assert [p["Timestamp"] for p in points] == [t0, t1]
    first, second = points
    assert (first["SampleCount"], first["Sum"], first["Minimum"], first["Maximum"]) == (5.0, 110.0, 10.0, 40.0)
    assert first["Average"] == pytest.approx(22.0) and first["Unit"] == "Milliseconds"
    assert first["ExtendedStatistics"] == {"p50": 20.0, "p99": 40.0}
    assert (second["SampleCount"], second["Average"], second["Maximum"]) == (4.0, 100.0, 150.0)
    # A five-minute period holds both minutes (the other dimension set is another metric).
    wide = c.get_metric_statistics(Namespace=ns, MetricName="Latency", Dimensions=DIMS, StartTime=_minute(-10),
                                   EndTime=_minute(1), Period=300, Statistics=["Sum"], Unit="Milliseconds")
    assert sum(p["Sum"] for p in wide["Datapoints"]) == 510.0
    # High resolution keeps seconds: 1-second periods see each datapoint apart.
    c.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Fast", "Timestamp": t0 + timedelta(seconds=s), "Value": float(s), "StorageResolution": 1}
        for s in (1, 2, 3)])
    fast = c.get_metric_statistics(Namespace=ns, MetricName="Fast", StartTime=t0, EndTime=t1, Period=1,
                                   Statistics=["Maximum"])
    assert sorted(p["Maximum"] for p in fast["Datapoints"]) == [1.0, 2.0, 3.0]


def test_put_metric_data_validation(cw: StratumServer) -> None:
    c = client(cw, "cloudwatch")
    err = _error(c.put_metric_data, Namespace="AWS/EC2", MetricData=[{"MetricName": "x", "Value": 1.0}])
    assert err["Code"] == "InvalidParameterValue"
    err = _error(c.put_metric_data, Namespace=_ns(), MetricData=[
        {"MetricName": "x", "Value": 1.0, "StatisticValues": {"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}}])
    assert err["Code"] == "InvalidParameterValue"
    err = _error(c.put_metric_data, Namespace=_ns(), MetricData=[
        {"MetricName": "x", "Values": [1.0, 2.0], "Counts": [1.0]}])
    assert err["Code"] == "InvalidParameterValue"
    err = _error(c.put_metric_data, Namespace=_ns(), MetricData=[
        {"MetricName": "x", "Value": 1.0, "Timestamp": datetime.now(UTC) - timedelta(days=30)}])
    assert err["Code"] == "InvalidParameterValue"
    err = _error(c.get_metric_statistics, Namespace=_ns(), MetricName="x", StartTime=_minute(-5), EndTime=_minute(),
                 Period=45, Statistics=["Sum"])
    assert err["Code"] == "InvalidParameterValue"
    err = _error(c.get_metric_statistics, Namespace=_ns(), MetricName="x", StartTime=_minute(-5), EndTime=_minute(),
                 Period=60)
    assert err["Code"] == "MissingParameter"


def _stat(ns: str, name: str, stat: str = "Sum", dims: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"Metric": {"Namespace": ns, "MetricName": name, "Dimensions": dims or []}, "Period": 60, "Stat": stat}


def test_get_metric_data_math_scan_order_and_pagination(cw: StratumServer) -> None:
    c = client(cw, "cloudwatch")
    ns = _ns()
    minutes = [_minute(-6 + i) for i in range(5)]
    c.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Requests", "Timestamp": t, "Value": 60.0 * (i + 1)} for i, t in enumerate(minutes)]
        + [{"MetricName": "Errors", "Timestamp": t, "Value": float(i)} for i, t in enumerate(minutes) if i != 2])
    queries = [
        {"Id": "req", "MetricStat": _stat(ns, "Requests"), "ReturnData": False},
        {"Id": "err", "MetricStat": _stat(ns, "Errors"), "Label": "errors"},
        {"Id": "ratio", "Expression": "100 * err / req", "Label": "error rate"},
        {"Id": "total", "Expression": "SUM(METRICS())"},
        {"Id": "rate", "Expression": "RATE(req)"},
        {"Id": "filled", "Expression": "FILL(err, 0)"},
        {"Id": "top", "Expression": "MAX([req, err * 100])"},
    ]
    out = c.get_metric_data(MetricDataQueries=queries, StartTime=minutes[0], EndTime=_minute(1),
                            ScanBy="TimestampAscending")
    results = {r["Id"]: r for r in out["MetricDataResults"]}
    assert set(results) == {"err", "ratio", "total", "rate", "filled", "top"}  # ReturnData False left out
    assert all(r["StatusCode"] == "Complete" for r in results.values())
    assert results["err"]["Label"] == "errors" and results["ratio"]["Label"] == "error rate"
    assert results["err"]["Timestamps"] == [minutes[i] for i in (0, 1, 3, 4)]
    assert results["ratio"]["Values"] == pytest.approx([0.0, 100 * 1 / 120, 100 * 3 / 240, 100 * 4 / 300])
    assert results["total"]["Values"] == [60.0, 121.0, 180.0, 243.0, 304.0]
    assert results["rate"]["Values"] == [1.0, 1.0, 1.0, 1.0]  # 60 more requests each minute
    assert results["filled"]["Values"] == [0.0, 1.0, 0.0, 3.0, 4.0]
    assert results["top"]["Values"] == [60.0, 120.0, 180.0, 300.0, 400.0]
    # Newest first by default.
    newest = c.get_metric_data(MetricDataQueries=[{"Id": "req", "MetricStat": _stat(ns, "Requests")}],
                               StartTime=minutes[0], EndTime=_minute(1))["MetricDataResults"][0]
    assert newest["Timestamps"] == list(reversed(minutes)) and newest["Values"][0] == 300.0
    # Pages of at most MaxDatapoints values, through boto3's paginator.
    for size, count in ((3, 3), (5, 2), (9, 1)):
        pages = list(c.get_paginator("get_metric_data").paginate(
            MetricDataQueries=[{"Id": "req", "MetricStat": _stat(ns, "Requests")},
                               {"Id": "err", "MetricStat": _stat(ns, "Errors")},
                               {"Id": "none", "MetricStat": _stat(ns, "Nothing")}],
            StartTime=minutes[0], EndTime=_minute(1), ScanBy="TimestampAscending", MaxDatapoints=size))
        assert len(pages) == count
        assert pages[0]["MetricDataResults"][0]["StatusCode"] == ("PartialData" if size < 5 else "Complete")
        collected: dict[str, list[float]] = {}
        for page in pages:
            assert sum(len(r["Values"]) for r in page["MetricDataResults"]) <= size
            for r in page["MetricDataResults"]:
                collected.setdefault(r["Id"], []).extend(r["Values"])
        assert collected == {"req": [60.0, 120.0, 180.0, 240.0, 300.0], "err": [0.0, 1.0, 3.0, 4.0], "none": []}
    err = _error(c.get_metric_data, MetricDataQueries=[{"Id": "bad", "Expression": "nope + 1"}],
                 StartTime=minutes[0], EndTime=_minute(1))
    assert err["Code"] == "ValidationError"


def test_list_metrics_filters_recently_active_and_pagination(cw: StratumServer) -> None:
    c = client(cw, "cloudwatch")
    ns = _ns()
    c.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Hits", "Dimensions": [{"Name": "Shard", "Value": f"{i:03d}"}], "Value": 1.0} for i in range(520)])
    c.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Misses", "Dimensions": [{"Name": "Shard", "Value": "000"}, {"Name": "Zone", "Value": "a"}],
         "Value": 1.0}])
    pages = list(c.get_paginator("list_metrics").paginate(Namespace=ns))
    assert len(pages) == 2 and len(pages[0]["Metrics"]) == 500
    assert sum(len(p["Metrics"]) for p in pages) == 521
    misses = c.list_metrics(Namespace=ns, MetricName="Misses")["Metrics"]
    assert misses == [{"Namespace": ns, "MetricName": "Misses",
                       "Dimensions": [{"Name": "Shard", "Value": "000"}, {"Name": "Zone", "Value": "a"}]}]
    by_dim = c.list_metrics(Namespace=ns, Dimensions=[{"Name": "Shard", "Value": "007"}])["Metrics"]
    assert [m["MetricName"] for m in by_dim] == ["Hits"]
    zoned = c.list_metrics(Namespace=ns, Dimensions=[{"Name": "Zone"}])["Metrics"]
    assert [m["MetricName"] for m in zoned] == ["Misses"]
    recent = c.list_metrics(Namespace=ns, MetricName="Misses", RecentlyActive="PT3H")["Metrics"]
    assert len(recent) == 1
    c.put_metric_data(Namespace=ns, EntityMetricData=[{
        "Entity": {"KeyAttributes": {"Type": "Service", "Name": "api", "Environment": "prod"}},
        "MetricData": [{"MetricName": "FromEntity", "Value": 1.0}]}])
    assert [m["MetricName"] for m in c.list_metrics(Namespace=ns, MetricName="FromEntity")["Metrics"]] == [
        "FromEntity"]


def _wait_state(c: Any, name: str, state: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        alarm = c.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
        if alarm["StateValue"] == state or time.monotonic() > deadline:
            assert alarm["StateValue"] == state, alarm
            return dict(alarm)
        time.sleep(0.5)


def _outbox(server: StratumServer, arn: str) -> list[dict[str, Any]]:
    db = Database(server.database_url or f"sqlite:///{server.data_dir / 'stratum.db'}")
    try:
        with db.read() as conn:
            rows = conn.execute(select(sagemaker_registry_events).where(
                sagemaker_registry_events.c.detail_type == "CloudWatch Alarm State Change")
                .order_by(sagemaker_registry_events.c.event_id)).mappings().all()
            return [dict(r) for r in rows if r["resources"] == [arn]]
    finally:
        db.dispose()


def test_alarm_is_evaluated_and_its_state_changes_recorded(cw: StratumServer) -> None:
    c = client(cw, "cloudwatch")
    ns = _ns()
    name = f"high-latency-{uuid.uuid4().hex[:6]}"
    dims = [{"Name": "Service", "Value": "api"}]
    c.put_metric_alarm(AlarmName=name, AlarmDescription="p latency", Namespace=ns, MetricName="Latency",
                       Dimensions=dims, Statistic="Maximum", Period=10, EvaluationPeriods=6, DatapointsToAlarm=1,
                       Threshold=100.0, ComparisonOperator="GreaterThanThreshold", TreatMissingData="missing")
    alarm = c.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    account = cw.account_id("dev")
    assert alarm["AlarmArn"] == f"arn:aws:cloudwatch:{REGION}:{account}:alarm:{name}"
    assert alarm["StateValue"] == "INSUFFICIENT_DATA" and alarm["Threshold"] == 100.0
    assert alarm["Dimensions"] == dims and alarm["EvaluationPeriods"] == 6
    # A breaching datapoint in a complete 10-second period: the server raises the alarm (the point stays
    # in the one-minute evaluation window long enough for the checks below, even on a slow machine).
    c.put_metric_data(Namespace=ns, MetricData=[{
        "MetricName": "Latency", "Dimensions": dims, "Value": 250.0, "StorageResolution": 1,
        "Timestamp": datetime.now(UTC) - timedelta(seconds=12)}])
    raised = _wait_state(c, name, "ALARM")
    assert "Threshold Crossed" in raised["StateReason"] and "250" in raised["StateReason"]
    assert json.loads(raised["StateReasonData"])["recentDatapoints"] == [250.0]
    assert raised["StateUpdatedTimestamp"] > alarm["StateUpdatedTimestamp"]
    # Set by hand, the state holds until the next evaluation, which puts it back.
    c.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="testing the page")
    _wait_state(c, name, "ALARM")
    history = c.describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate")["AlarmHistoryItems"]
    summaries = [h["HistorySummary"] for h in history]
    assert summaries[:3] == ["Alarm updated from OK to ALARM", "Alarm updated from ALARM to OK",
                             "Alarm updated from INSUFFICIENT_DATA to ALARM"]
    created = c.describe_alarm_history(AlarmName=name, HistoryItemType="ConfigurationUpdate")["AlarmHistoryItems"]
    assert len(created) == 1 and "created" in created[0]["HistorySummary"]
    # Every change is an event in the outbox, written with the change.
    events = _outbox(cw, raised["AlarmArn"])
    assert [(e["detail"]["previousState"]["value"], e["detail"]["state"]["value"]) for e in events][:3] == [
        ("INSUFFICIENT_DATA", "ALARM"), ("ALARM", "OK"), ("OK", "ALARM")]
    assert events[0]["source"] == "aws.cloudwatch" and events[0]["detail"]["alarmName"] == name
    # The alarm is found from its metric; deleting it removes it.
    found = c.describe_alarms_for_metric(Namespace=ns, MetricName="Latency", Dimensions=dims)["MetricAlarms"]
    assert [a["AlarmName"] for a in found] == [name]
    assert c.describe_alarms_for_metric(Namespace=ns, MetricName="Latency")["MetricAlarms"] == []
    assert [a["AlarmName"] for a in c.describe_alarms(StateValue="ALARM", AlarmNamePrefix=name)["MetricAlarms"]] == [
        name]
    c.delete_alarms(AlarmNames=[name])
    assert c.describe_alarms(AlarmNames=[name])["MetricAlarms"] == []
    assert _error(c.delete_alarms, AlarmNames=[name])["Code"] == "ResourceNotFound"


def test_alarm_treats_missing_data_as_configured(cw: StratumServer) -> None:
    c = client(cw, "cloudwatch")
    ns = _ns()
    base = {"Namespace": ns, "MetricName": "Heartbeat", "Statistic": "SampleCount", "Period": 10,
            "EvaluationPeriods": 2, "Threshold": 1.0, "ComparisonOperator": "LessThanThreshold"}
    tag = uuid.uuid4().hex[:6]
    c.put_metric_alarm(AlarmName=f"dead-{tag}", TreatMissingData="breaching", **base)
    c.put_metric_alarm(AlarmName=f"quiet-{tag}", TreatMissingData="notBreaching", **base)
    _wait_state(c, f"dead-{tag}", "ALARM")
    _wait_state(c, f"quiet-{tag}", "OK")
    err = _error(c.put_metric_alarm, AlarmName=f"bad-{tag}", **{**base, "DatapointsToAlarm": 3})
    assert err["Code"] == "InvalidParameterValue"
    err = _error(c.set_alarm_state, AlarmName=f"missing-{tag}", StateValue="OK", StateReason="x")
    assert err["Code"] == "ResourceNotFound"
    pages = list(c.get_paginator("describe_alarms").paginate(AlarmNamePrefix=f"dead-{tag}",
                                                             PaginationConfig={"PageSize": 1}))
    assert [a["AlarmName"] for p in pages for a in p["MetricAlarms"]] == [f"dead-{tag}"]
    c.delete_alarms(AlarmNames=[f"dead-{tag}", f"quiet-{tag}"])


def test_accounts_see_only_their_own_metrics_and_alarms(cw: StratumServer) -> None:
    dev, other = client(cw, "cloudwatch", account="dev"), client(cw, "cloudwatch", account="test")
    ns = _ns()
    dev.put_metric_data(Namespace=ns, MetricData=[{"MetricName": "Secret", "Value": 42.0, "Timestamp": _minute(-2)}])
    name = f"private-{uuid.uuid4().hex[:6]}"
    dev.put_metric_alarm(AlarmName=name, Namespace=ns, MetricName="Secret", Statistic="Sum", Period=60,
                         EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold")
    assert len(dev.list_metrics(Namespace=ns)["Metrics"]) == 1
    assert other.list_metrics(Namespace=ns)["Metrics"] == []
    stats = other.get_metric_statistics(Namespace=ns, MetricName="Secret", StartTime=_minute(-5), EndTime=_minute(1),
                                        Period=60, Statistics=["Sum"])
    assert stats["Datapoints"] == []
    data = other.get_metric_data(MetricDataQueries=[{"Id": "m", "MetricStat": _stat(ns, "Secret")}],
                                 StartTime=_minute(-5), EndTime=_minute(1))
    assert data["MetricDataResults"][0]["Values"] == []
    assert other.describe_alarms(AlarmNames=[name])["MetricAlarms"] == []
    assert _error(other.set_alarm_state, AlarmName=name, StateValue="OK", StateReason="x")["Code"] == "ResourceNotFound"
    # A user of the same account without cloudwatch permissions is refused; one allowed reads only.
    creds, _ = limited_user(cw, {"Effect": "Allow", "Action": "cloudwatch:GetMetricStatistics", "Resource": "*"})
    limited = client(cw, "cloudwatch", creds)
    assert limited.get_metric_statistics(Namespace=ns, MetricName="Secret", StartTime=_minute(-5),
                                         EndTime=_minute(1), Period=60, Statistics=["Sum"])["Datapoints"][0]["Sum"] == 42
    denied = _error(limited.put_metric_data, Namespace=ns, MetricData=[{"MetricName": "Secret", "Value": 1.0}])
    assert denied["Code"] == "AccessDenied" and "cloudwatch:PutMetricData" in denied["Message"]
    assert _error(limited.describe_alarms)["Code"] == "AccessDenied"
    dev.delete_alarms(AlarmNames=[name])


def test_prometheus_endpoint(cw: StratumServer) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    c = client(cw, "cloudwatch")
    c.list_metrics(Namespace=_ns())
    _error(c.put_metric_data, Namespace="AWS/Nope", MetricData=[{"MetricName": "x", "Value": 1.0}])
    with urllib.request.urlopen(f"{cw.endpoint_url}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = {(s.labels["service"], s.labels["operation"], s.labels["status"]): s.value
                for s in families["stratum_requests"].samples}
    assert requests[("cloudwatch", "ListMetrics", "200")] >= 1
    assert requests[("cloudwatch", "PutMetricData", "400")] >= 1
    latency = families["stratum_request_duration_seconds"]
    assert latency.type == "histogram"
    counts = [s for s in latency.samples if s.name.endswith("_count") and s.labels["operation"] == "ListMetrics"]
    assert counts and counts[0].value >= 1
    assert families["stratum_training_jobs_in_progress"].samples[0].value >= 0
    # Scraping is not an AWS request: it leaves the request counters as they were.
    with urllib.request.urlopen(f"{cw.endpoint_url}/metrics", timeout=10) as response:
        again = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    assert sum(s.value for s in again["stratum_requests"].samples) == sum(requests.values())


def test_prometheus_endpoint_shows_published_metrics(cw: StratumServer) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    ns = _ns()
    client(cw, "cloudwatch").put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Latency", "Dimensions": [{"Name": "Endpoint-Name", "Value": 'a "quoted" one'}],
         "Values": [2.0, 5.0], "Counts": [1.0, 3.0]},
        {"MetricName": "Old", "Value": 9.0, "Timestamp": _minute(-30)}])
    with urllib.request.urlopen(f"{cw.endpoint_url}/metrics", timeout=10) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}

    def value(family: str, metric: str) -> float | None:
        found = [s.value for s in families[family].samples if s.labels.get("namespace") == ns
                 and s.labels["metric"] == metric]
        return found[0] if found else None
    sample = next(s for s in families["stratum_cloudwatch_sum"].samples if s.labels.get("namespace") == ns)
    assert sample.labels == {"account": cw.account_id("dev"), "region": REGION, "namespace": ns,
                             "metric": "Latency", "dim_Endpoint_Name": 'a "quoted" one'}
    assert value("stratum_cloudwatch_sum", "Latency") == 17.0
    assert value("stratum_cloudwatch_sample_count", "Latency") == 4.0
    assert value("stratum_cloudwatch_minimum", "Latency") == 2.0
    assert value("stratum_cloudwatch_maximum", "Latency") == 5.0
    assert value("stratum_cloudwatch_sum", "Old") is None  # not in the last minute


def test_datapoints_and_alarms_survive_a_restart(fresh_server: StratumServer) -> None:
    c = client(fresh_server, "cloudwatch")
    ns = _ns()
    c.put_metric_data(Namespace=ns, MetricData=[{"MetricName": "Kept", "Value": 7.0, "Timestamp": _minute(-1)}])
    c.put_metric_alarm(AlarmName="kept", Namespace=ns, MetricName="Kept", Statistic="Sum", Period=60,
                       EvaluationPeriods=1, Threshold=1.0, ComparisonOperator="GreaterThanThreshold")
    c.set_alarm_state(AlarmName="kept", StateValue="ALARM", StateReason="before the restart")
    fresh_server.restart()
    c = client(fresh_server, "cloudwatch")
    stats = c.get_metric_statistics(Namespace=ns, MetricName="Kept", StartTime=_minute(-5), EndTime=_minute(1),
                                    Period=60, Statistics=["Sum"])
    assert [p["Sum"] for p in stats["Datapoints"]] == [7.0]
    assert c.list_metrics(Namespace=ns)["Metrics"][0]["MetricName"] == "Kept"
    alarm = c.describe_alarms(AlarmNames=["kept"])["MetricAlarms"][0]
    assert alarm["MetricName"] == "Kept"


def test_metric_math_alarm_and_alarm_tags(cw: StratumServer) -> None:
    c = client(cw, "cloudwatch")
    ns = _ns()
    name = f"error-rate-{uuid.uuid4().hex[:6]}"
    stat = {"Metric": {"Namespace": ns, "MetricName": "Errors"}, "Period": 10, "Stat": "Sum"}
    total = {"Metric": {"Namespace": ns, "MetricName": "Requests"}, "Period": 10, "Stat": "Sum"}
    c.put_metric_alarm(AlarmName=name, EvaluationPeriods=6, DatapointsToAlarm=1, Threshold=10.0,
                       ComparisonOperator="GreaterThanOrEqualToThreshold", Tags=[{"Key": "team", "Value": "ml"}],
                       Metrics=[{"Id": "e", "MetricStat": stat, "ReturnData": False},
                                {"Id": "r", "MetricStat": total, "ReturnData": False},
                                {"Id": "rate", "Expression": "100 * e / r", "Label": "error %", "ReturnData": True}])
    at = datetime.now(UTC) - timedelta(seconds=12)
    c.put_metric_data(Namespace=ns, MetricData=[
        {"MetricName": "Errors", "Value": 3.0, "Timestamp": at, "StorageResolution": 1},
        {"MetricName": "Requests", "Value": 20.0, "Timestamp": at, "StorageResolution": 1}])
    raised = _wait_state(c, name, "ALARM")
    assert "15" in raised["StateReason"] and raised["Metrics"][2]["Expression"] == "100 * e / r"
    arn = raised["AlarmArn"]
    assert c.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]
    c.tag_resource(ResourceARN=arn, Tags=[{"Key": "tier", "Value": "gold"}])
    c.untag_resource(ResourceARN=arn, TagKeys=["team"])
    assert c.list_tags_for_resource(ResourceARN=arn)["Tags"] == [{"Key": "tier", "Value": "gold"}]
    err = _error(c.put_metric_alarm, AlarmName=f"{name}-bad", EvaluationPeriods=1, Threshold=1.0,
                 ComparisonOperator="GreaterThanThreshold",
                 Metrics=[{"Id": "x", "Expression": "nothing * 2", "ReturnData": True}])
    assert err["Code"] == "ValidationError"
    c.delete_alarms(AlarmNames=[name])
    assert _error(c.list_tags_for_resource, ResourceARN=arn)["Code"] == "ResourceNotFoundException"


def test_aws_cli_puts_and_reads_metrics(cw: StratumServer) -> None:
    ns = _ns()
    cw.aws_cli("cloudwatch", "put-metric-data", "--namespace", ns, "--metric-name", "Queue",
               "--dimensions", "Queue=jobs", "--value", "12", "--unit", "Count")
    cw.aws_cli("cloudwatch", "put-metric-data", "--namespace", ns, "--metric-name", "Queue",
               "--dimensions", "Queue=jobs", "--value", "30", "--unit", "Count")
    listed = json.loads(cw.aws_cli("cloudwatch", "list-metrics", "--namespace", ns, "--output", "json").stdout)
    assert listed["Metrics"] == [{"Namespace": ns, "MetricName": "Queue",
                                  "Dimensions": [{"Name": "Queue", "Value": "jobs"}]}]
    stats = json.loads(cw.aws_cli(
        "cloudwatch", "get-metric-statistics", "--namespace", ns, "--metric-name", "Queue",
        "--dimensions", "Name=Queue,Value=jobs", "--start-time", _minute(-5).isoformat(),
        "--end-time", _minute(2).isoformat(), "--period", "600", "--statistics", "Sum", "Maximum",
        "--output", "json").stdout)
    assert [(p["Sum"], p["Maximum"], p["Unit"]) for p in stats["Datapoints"]] == [(42.0, 30.0, "Count")]
    denied = cw.aws_cli("cloudwatch", "put-metric-data", "--namespace", "AWS/SageMaker", "--metric-name", "x",
                        "--value", "1", check=False)
    assert denied.returncode != 0 and "InvalidParameterValue" in denied.stderr


def test_get_metric_data_search_expressions(cw: StratumServer) -> None:
    c = client(cw, "cloudwatch")
    ns = _ns()
    at = _minute(-2)
    c.put_metric_data(Namespace=ns, MetricData=[
        *({"MetricName": "Latency", "Dimensions": [{"Name": "Shard", "Value": shard}], "Value": value, "Timestamp": at}
          for shard, value in (("alpha", 1.0), ("beta", 2.0), ("gamma", 4.0))),
        {"MetricName": "Latency", "Dimensions": [{"Name": "Shard", "Value": "alpha"}, {"Name": "Zone", "Value": "z"}],
         "Value": 100.0, "Timestamp": at},
        {"MetricName": "Errors", "Dimensions": [{"Name": "Shard", "Value": "alpha"}], "Value": 9.0, "Timestamp": at}])
    search = f"SEARCH('{{{ns},Shard}} MetricName=\"Latency\"', 'Maximum', 60)"
    out = c.get_metric_data(MetricDataQueries=[
        {"Id": "each", "Expression": search},
        {"Id": "total", "Expression": f"SUM({search})", "Label": "all shards"},
        {"Id": "labelled", "Expression": f"SEARCH('{{{ns},Shard}} beta', 'Sum', 60)", "Label": "shard"},
        {"Id": "loose", "Expression": f"SEARCH('Namespace=\"{ns}\" alpha', 'Sum', 60)"}],
        StartTime=_minute(-5), EndTime=_minute(1))["MetricDataResults"]
    each = sorted((r["Label"], r["Values"]) for r in out if r["Id"] == "each")
    assert each == [("alpha", [1.0]), ("beta", [2.0]), ("gamma", [4.0])]  # not the Shard+Zone metric
    assert [(r["Label"], r["Values"]) for r in out if r["Id"] == "total"] == [("all shards", [7.0])]
    assert [(r["Label"], r["Values"]) for r in out if r["Id"] == "labelled"] == [("shard beta", [2.0])]
    loose = sorted((r["Label"], r["Values"]) for r in out if r["Id"] == "loose")
    assert loose == [("Errors alpha", [9.0]), ("Latency alpha", [1.0]), ("Latency alpha z", [100.0])]
    # Another account's search finds nothing of these.
    other = client(cw, "cloudwatch", account="test").get_metric_data(
        MetricDataQueries=[{"Id": "each", "Expression": search}], StartTime=_minute(-5), EndTime=_minute(1))
    assert other["MetricDataResults"] == []
    err = _error(c.put_metric_alarm, AlarmName=f"search-{uuid.uuid4().hex[:6]}", EvaluationPeriods=1,
                 Threshold=1.0, ComparisonOperator="GreaterThanThreshold",
                 Metrics=[{"Id": "s", "Expression": f"SUM({search})", "ReturnData": True}])
    assert err["Code"] == "ValidationError"
