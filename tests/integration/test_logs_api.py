"""CloudWatch Logs through the unmodified boto3 logs client and the AWS CLI: groups, streams,
PutLogEvents, GetLogEvents tokens as the SageMaker SDK's tailer uses them, FilterLogEvents
patterns and pagination, retention, tags, errors and account isolation; events survive a restart."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stratum_testing import BACKENDS, REGION, StratumServer, close_server, make_server

from stratum.services.logs.catalog import stream_path


def _name(prefix: str = "/app/") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _put(logs: Any, group: str, stream: str, messages: list[str], start: int | None = None) -> list[int]:
    base = start if start is not None else int(time.time() * 1000) - len(messages)
    stamps = [base + i for i in range(len(messages))]
    for i in range(0, len(messages), 5000):
        logs.put_log_events(logGroupName=group, logStreamName=stream,
                            logEvents=[{"timestamp": t, "message": m}
                                       for t, m in zip(stamps[i:i + 5000], messages[i:i + 5000], strict=True)])
    return stamps


def test_groups_streams_and_events(server: StratumServer) -> None:
    T0 = (int(time.time() * 1000) - 3_600_000) // 1000 * 1000  # noqa: N806
    logs = server.client("logs")
    group = _name()
    logs.create_log_group(logGroupName=group, tags={"team": "ml"})
    with pytest.raises(ClientError) as exc:
        logs.create_log_group(logGroupName=group)
    assert _code(exc) == "ResourceAlreadyExistsException"
    logs.create_log_stream(logGroupName=group, logStreamName="a/1")
    logs.create_log_stream(logGroupName=group, logStreamName="b/1")
    with pytest.raises(ClientError) as exc:
        logs.create_log_stream(logGroupName=group, logStreamName="a/1")
    assert _code(exc) == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as exc:
        logs.create_log_stream(logGroupName=group + "-missing", logStreamName="x")
    assert _code(exc) == "ResourceNotFoundException"

    found = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert [g["logGroupName"] for g in found] == [group]
    arn = f"arn:aws:logs:{REGION}:{server.account_id('dev')}:log-group:{group}"
    assert found[0]["logGroupArn"] == arn and found[0]["arn"] == arn + ":*"

    _put(logs, group, "a/1", ["first line", "multi\nline message", "third"], start=T0 + 0)
    _put(logs, group, "b/1", ["later"], start=T0 + 1000)
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["a/1", "b/1"]
    assert streams[0]["firstEventTimestamp"] == T0 + 0
    assert streams[0]["lastEventTimestamp"] == T0 + 2
    by_time = logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime", descending=True)
    assert [s["logStreamName"] for s in by_time["logStreams"]] == ["b/1", "a/1"]
    prefixed = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="b/")["logStreams"]
    assert [s["logStreamName"] for s in prefixed] == ["b/1"]
    page = logs.describe_log_streams(logGroupName=group, limit=1)
    rest = logs.describe_log_streams(logGroupName=group, limit=1, nextToken=page["nextToken"])
    assert [s["logStreamName"] for s in page["logStreams"] + rest["logStreams"]] == ["a/1", "b/1"]
    assert "nextToken" not in rest

    events = logs.get_log_events(logGroupName=group, logStreamName="a/1", startFromHead=True)["events"]
    assert [e["message"] for e in events] == ["first line", "multi\nline message", "third"]
    assert [e["timestamp"] for e in events] == [T0 + 0, T0 + 1, T0 + 2]
    window = logs.get_log_events(logGroupName=group, logStreamName="a/1", startTime=T0 + 1,
                                 endTime=T0 + 2, startFromHead=True)["events"]
    assert [e["message"] for e in window] == ["multi\nline message"]

    with pytest.raises(ClientError) as exc:
        logs.get_log_events(logGroupName=group, logStreamName="nope")
    assert _code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        logs.put_log_events(logGroupName=group, logStreamName="a/1",
                            logEvents=[{"timestamp": 2, "message": "x"}, {"timestamp": 1, "message": "y"}])
    assert _code(exc) == "InvalidParameterException"

    logs.delete_log_stream(logGroupName=group, logStreamName="b/1")
    assert [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)["logStreams"]] == ["a/1"]
    logs.delete_log_group(logGroupName=group)
    with pytest.raises(ClientError) as exc:
        logs.describe_log_streams(logGroupName=group)
    assert _code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        logs.delete_log_group(logGroupName=group)
    assert _code(exc) == "ResourceNotFoundException"


def test_get_log_events_tokens_as_the_sdk_tailer_uses_them(server: StratumServer) -> None:
    logs = server.client("logs")
    group = _name()
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    messages = [f"line {i}" for i in range(25)]
    _put(logs, group, "s", messages)

    # Forward from the head, page by page, until a page is empty (sagemaker.logs.log_stream).
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True, limit=10,
                                   startTime=0, **kwargs)
        pages += 1
        if not page["events"]:
            assert page["nextForwardToken"] == token  # nothing new: the same token comes back
            break
        seen += [e["message"] for e in page["events"]]
        token = page["nextForwardToken"]
    assert seen == messages and pages == 4

    # New events appear on the same token.
    _put(logs, group, "s", ["late"])
    page = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True, nextToken=token)
    assert [e["message"] for e in page["events"]] == ["late"]

    # Without startFromHead: the latest events; the backward token walks towards the head.
    last = logs.get_log_events(logGroupName=group, logStreamName="s", limit=10)
    assert [e["message"] for e in last["events"]] == [*messages[16:], "late"]
    before = logs.get_log_events(logGroupName=group, logStreamName="s", limit=10,
                                 nextToken=last["nextBackwardToken"])
    assert [e["message"] for e in before["events"]] == messages[6:16]
    forward_again = logs.get_log_events(logGroupName=group, logStreamName="s", limit=10,
                                        nextToken=before["nextForwardToken"])
    assert [e["message"] for e in forward_again["events"]] == [*messages[16:], "late"]


def test_filter_log_events_patterns_and_pagination(server: StratumServer) -> None:
    logs = server.client("logs")
    group = _name()
    logs.create_log_group(logGroupName=group)
    for stream in ("web/1", "web/2", "worker/1"):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    base = int(time.time() * 1000) - 100_000
    _put(logs, group, "web/1", ["GET /index 200", "GET /missing 404", "ERROR timeout talking to db"], start=base)
    _put(logs, group, "web/2", ["POST /login 200", "ERROR bad password"], start=base + 10)
    _put(logs, group, "worker/1", [json.dumps({"level": "ERROR", "latency": 250, "user": {"id": "u-7"}}),
                                   json.dumps({"level": "INFO", "latency": 20, "user": {"id": "u-8"}})],
         start=base + 20)

    def messages(**kwargs: Any) -> list[str]:
        return [e["message"] for e in logs.filter_log_events(logGroupName=group, **kwargs)["events"]]

    assert len(messages()) == 7
    assert messages(filterPattern="ERROR") == ["ERROR timeout talking to db", "ERROR bad password",
                                               json.dumps({"level": "ERROR", "latency": 250, "user": {"id": "u-7"}})]
    assert messages(filterPattern="ERROR -password -level") == ["ERROR timeout talking to db"]
    assert messages(filterPattern='"talking to db"') == ["ERROR timeout talking to db"]
    assert messages(filterPattern="?404 ?login") == ["GET /missing 404", "POST /login 200"]
    assert messages(filterPattern="GET 200") == ["GET /index 200"]
    assert [json.loads(m)["user"]["id"] for m in messages(filterPattern="{ $.latency > 100 }")] == ["u-7"]
    assert [json.loads(m)["user"]["id"] for m in messages(filterPattern='{ $.level = "INFO" }')] == ["u-8"]
    assert [json.loads(m)["user"]["id"] for m in messages(filterPattern='{ $.user.id = "u-*" && $.latency < 100 }')] \
        == ["u-8"]
    assert messages(logStreamNamePrefix="web/2") == ["POST /login 200", "ERROR bad password"]
    assert messages(logStreamNames=["worker/1"], filterPattern="{ $.level = ERROR }")[0].startswith('{"level": "E')
    assert messages(startTime=base + 10, endTime=base + 11) == ["POST /login 200", "ERROR bad password"]
    events = logs.filter_log_events(logGroupName=group, filterPattern="ERROR")["events"]
    assert [e["logStreamName"] for e in events] == ["web/1", "web/2", "worker/1"]

    # Pagination: pages of 2 add up to everything, in time order, no repeats.
    seen: list[str] = []
    token = None
    while True:
        page = logs.filter_log_events(logGroupName=group, limit=2, **({"nextToken": token} if token else {}))
        seen += [e["message"] for e in page["events"]]
        token = page.get("nextToken")
        if not token:
            break
    assert len(seen) == 7 and len(set(seen)) == 7
    paginated = [e["message"] for p in logs.get_paginator("filter_log_events").paginate(
        logGroupName=group, PaginationConfig={"PageSize": 3}) for e in p["events"]]
    assert paginated == seen

    with pytest.raises(ClientError) as exc:
        logs.filter_log_events(logGroupName=group, filterPattern="{ $.latency > }")
    assert _code(exc) == "InvalidParameterException"


def test_retention_removes_old_events(server: StratumServer) -> None:
    logs = server.client("logs")
    group = _name()
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="old")
    logs.create_log_stream(logGroupName=group, logStreamName="mixed")
    now = int(time.time() * 1000)
    ten_days = 10 * 86_400_000
    _put(logs, group, "old", ["old one", "old two"], start=now - ten_days)
    _put(logs, group, "mixed", ["stale"], start=now - ten_days)
    _put(logs, group, "mixed", ["fresh"], start=now - 1000)
    with pytest.raises(ClientError) as exc:
        logs.put_retention_policy(logGroupName=group, retentionInDays=2)
    assert _code(exc) == "InvalidParameterException"
    logs.put_retention_policy(logGroupName=group, retentionInDays=7)
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["retentionInDays"] == 7
    assert logs.get_log_events(logGroupName=group, logStreamName="old", startFromHead=True)["events"] == []
    assert [e["message"] for e in logs.filter_log_events(logGroupName=group)["events"]] == ["fresh"]
    old = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="old")["logStreams"][0]
    assert "lastEventTimestamp" not in old  # the expired stream's events are gone from storage
    # Events older than retention are refused on arrival.
    result = logs.put_log_events(logGroupName=group, logStreamName="mixed",
                                 logEvents=[{"timestamp": now - ten_days, "message": "too old"}])
    assert result["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 0}
    logs.delete_retention_policy(logGroupName=group)
    assert "retentionInDays" not in logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]


def test_tags(server: StratumServer) -> None:
    logs = server.client("logs")
    group = _name()
    logs.create_log_group(logGroupName=group, tags={"team": "ml"})
    arn = f"arn:aws:logs:{REGION}:{server.account_id('dev')}:log-group:{group}"
    logs.tag_resource(resourceArn=arn, tags={"env": "dev"})
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "ml", "env": "dev"}
    logs.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert logs.list_tags_log_group(logGroupName=group)["tags"] == {"env": "dev"}
    logs.tag_log_group(logGroupName=group, tags={"cost": "1"})
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"env": "dev", "cost": "1"}
    with pytest.raises(ClientError) as exc:
        logs.list_tags_for_resource(resourceArn=arn + "-missing")
    assert _code(exc) == "ResourceNotFoundException"


def test_another_account_cannot_read(server: StratumServer) -> None:
    logs = server.client("logs")
    group = _name("/private/")
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    _put(logs, group, "s", ["secret"])
    other = server.client("logs", "test")
    # By name it sees only its own account's groups.
    assert other.describe_log_groups(logGroupNamePrefix=group)["logGroups"] == []
    with pytest.raises(ClientError) as exc:
        other.get_log_events(logGroupName=group, logStreamName="s")
    assert _code(exc) == "ResourceNotFoundException"
    # By ARN the owner's policies decide: no grant, no access.
    arn = f"arn:aws:logs:{REGION}:{server.account_id('dev')}:log-group:{group}"
    for call in (lambda: other.get_log_events(logGroupIdentifier=arn, logStreamName="s"),
                 lambda: other.filter_log_events(logGroupIdentifier=arn),
                 lambda: other.describe_log_streams(logGroupIdentifier=arn),
                 lambda: other.list_tags_for_resource(resourceArn=arn)):
        with pytest.raises(ClientError) as exc:
            call()
        assert _code(exc) == "AccessDeniedException"


def test_aws_cli_get_and_filter_log_events(server: StratumServer) -> None:
    logs = server.client("logs")
    group = _name()
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    _put(logs, group, "s", [f"cli {i}" for i in range(30)] + ["needle here"])
    out = json.loads(server.aws_cli("logs", "get-log-events", "--log-group-name", group, "--log-stream-name", "s",
                                    "--start-from-head").stdout)
    assert [e["message"] for e in out["events"]][:2] == ["cli 0", "cli 1"]
    assert out["nextForwardToken"].startswith("f/")
    out = json.loads(server.aws_cli("logs", "filter-log-events", "--log-group-name", group,
                                    "--filter-pattern", "needle").stdout)
    assert [e["message"] for e in out["events"]] == ["needle here"]
    # The CLI paginates filter-log-events on its own: small pages still return every event.
    out = json.loads(server.aws_cli("logs", "filter-log-events", "--log-group-name", group,
                                    "--page-size", "4").stdout)
    assert len(out["events"]) == 31
    # `aws logs tail` is an AWS CLI v2 command; the v1 CLI here does not have it.
    tail = server.aws_cli("logs", "tail", group, check=False)
    assert tail.returncode != 0


@pytest.mark.slow
def test_events_survive_a_restart(fresh_server: StratumServer) -> None:
    logs = fresh_server.client("logs")
    logs.create_log_group(logGroupName="/keep")
    logs.create_log_stream(logGroupName="/keep", logStreamName="s")
    _put(logs, "/keep", "s", ["before restart"])
    logs.put_retention_policy(logGroupName="/keep", retentionInDays=30)
    fresh_server.restart()
    logs = fresh_server.client("logs")
    assert [e["message"] for e in logs.get_log_events(logGroupName="/keep", logStreamName="s",
                                                      startFromHead=True)["events"]] == ["before restart"]
    assert logs.describe_log_groups(logGroupNamePrefix="/keep")["logGroups"][0]["retentionInDays"] == 30


@pytest.fixture(scope="module", params=BACKENDS)
def swept(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    """A server whose retention sweep runs every second (by default: hourly)."""
    srv = make_server(tmp_path_factory, request.param)
    os.environ["STRATUM_LOGS_RETENTION_SWEEP_SECONDS"] = "1"
    try:
        srv.start()
    finally:
        del os.environ["STRATUM_LOGS_RETENTION_SWEEP_SECONDS"]
    yield srv
    close_server(srv)


def test_background_sweep_empties_streams_nobody_reads(swept: StratumServer) -> None:
    logs = swept.client("logs")
    group = _name()
    logs.create_log_group(logGroupName=group)
    logs.put_retention_policy(logGroupName=group, retentionInDays=1)
    for stream in ("expiring", "recent"):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)
    _put(logs, group, "expiring", ["about to expire"], start=now - 86_400_000 + 3000)  # in retention for 3 s
    _put(logs, group, "recent", ["kept"])
    account = swept.account_id("dev")
    expiring = swept.data_dir / stream_path(account, REGION, group, "expiring")
    recent = swept.data_dir / stream_path(account, REGION, group, "recent")
    assert expiring.stat().st_size > 0
    # Nobody reads the group: the background sweep alone reclaims the expired stream's storage.
    deadline = time.monotonic() + 20
    while expiring.stat().st_size > 0:
        assert time.monotonic() < deadline, "the expired stream was never emptied"
        time.sleep(0.2)
    assert recent.stat().st_size > 0
    assert [e["message"] for e in logs.filter_log_events(logGroupName=group)["events"]] == ["kept"]
