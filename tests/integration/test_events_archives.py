"""EventBridge archives and replays through boto3 against a real server: an archive with a pattern
keeps the matching events put on its bus; a replay of a time window sends them again, each naming
its replay, to the rules of the bus (or only those of FilterArns), where a rule with
``"replay-name": [{"exists": false}]`` does not see them, as on AWS; the targets are API
destinations on a local HTTP server. Also: cancelling a replay midway, RetentionDays applied by
the sweep, the API's errors, and another account refused."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from stratum_testing import BACKENDS, StratumServer, close_server, make_server
from test_events_api_destinations import Received, _invoker_role, ci  # noqa: F401 - ci is a fixture
from test_events_rules import KNOBS, _db

from stratum.services.events import archives

# One archived event per deliverer pass (0.2 s), so that a replay of a dozen events can be
# cancelled while it runs.
REPLAY_KNOBS = {**KNOBS, "STRATUM_EVENTS_REPLAY_BATCH": "1"}


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    saved = {k: os.environ.get(k) for k in REPLAY_KNOBS}
    os.environ.update(REPLAY_KNOBS)
    try:
        srv = make_server(tmp_path_factory, request.param).start()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    yield srv
    close_server(srv)


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _error(call: Callable[..., Any], **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as err:
        call(**kwargs)
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


def _requests(received: Received, path: str) -> list[dict[str, Any]]:
    with received.lock:
        return [json.loads(r["body"]) for r in received.requests if r["path"] == path]


def _wait(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _rule_to(server: StratumServer, events: Any, bus: str, pattern: dict[str, Any], url: str, connection: str,
             role: str) -> str:
    """A rule of ``bus`` whose target is an API destination posting to ``url``; the rule's ARN."""
    name = _uid("rule")
    arn = events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(pattern))["RuleArn"]
    destination = events.create_api_destination(Name=_uid("dest"), ConnectionArn=connection,
                                                InvocationEndpoint=url, HttpMethod="POST")["ApiDestinationArn"]
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "hook", "Arn": destination, "RoleArn": role}])
    return str(arn)


def _order(bus: str, n: int, **extra: Any) -> dict[str, Any]:
    return {"EventBusName": bus, "Source": "app.orders", "DetailType": "Order", "Detail": json.dumps({"n": n}), **extra}


def _setup(server: StratumServer, ci_url: str) -> tuple[Any, str, str, str]:
    events = server.client("events")
    bus = events.create_event_bus(Name=_uid("orders"))["EventBusArn"].rsplit("/", 1)[1]
    connection = events.create_connection(Name=_uid("hooks"), AuthorizationType="API_KEY", AuthParameters={
        "ApiKeyAuthParameters": {"ApiKeyName": "X-Api-Key", "ApiKeyValue": "k"}})["ConnectionArn"]
    return events, bus, connection, _invoker_role(server)


def test_archive_and_replay_a_window(server: StratumServer, ci: tuple[str, Received]) -> None:  # noqa: F811
    url, received = ci
    events, bus, connection, role = _setup(server, url)
    tag = uuid.uuid4().hex[:8]  # this test's paths on the shared HTTP server
    live = _rule_to(server, events, bus, {"source": ["app.orders"], "replay-name": [{"exists": False}]},
                    f"{url}/{tag}/live", connection, role)
    replayed = _rule_to(server, events, bus, {"source": ["app.orders"], "replay-name": [{"exists": True}]},
                        f"{url}/{tag}/replayed", connection, role)
    _rule_to(server, events, bus, {"source": ["app.orders"]}, f"{url}/{tag}/all", connection, role)
    name = _uid("orders")
    created = events.create_archive(ArchiveName=name, EventSourceArn=events.describe_event_bus(Name=bus)["Arn"],
                                    EventPattern=json.dumps({"source": ["app.orders"]}), RetentionDays=7,
                                    Description="orders")
    assert created["State"] == "ENABLED"
    assert created["ArchiveArn"] == f"arn:aws:events:us-east-1:{server.account_id('dev')}:archive/{name}"

    before = datetime.now(UTC) - timedelta(minutes=5)
    entries = [_order(bus, n) for n in range(3)]
    entries.append(_order(bus, 99, Time=datetime.now(UTC) - timedelta(hours=2)))  # archived, outside the window
    entries.append({"EventBusName": bus, "Source": "app.other", "DetailType": "Other", "Detail": "{}"})
    assert events.put_events(Entries=entries)["FailedEntryCount"] == 0
    # each target's deliveries go their own way: wait for both
    _wait(lambda: len(_requests(received, f"/{tag}/all")) == 4 and len(_requests(received, f"/{tag}/live")) == 4,
          "the live deliveries")
    assert _requests(received, f"/{tag}/replayed") == []

    described = events.describe_archive(ArchiveName=name)
    assert described["EventCount"] == 4 and described["SizeBytes"] > 0  # not the app.other event
    assert described["EventPattern"] == json.dumps({"source": ["app.orders"]})
    assert described["RetentionDays"] == 7 and described["Description"] == "orders"
    listed = events.list_archives(NamePrefix=name)["Archives"]
    assert [(a["ArchiveName"], a["EventCount"]) for a in listed] == [(name, 4)]
    assert [a["ArchiveName"] for a in events.list_archives(EventSourceArn=described["EventSourceArn"])["Archives"]] \
        == [name]

    # All rules of the bus: the replay-name rule and the rule without one get the three events of
    # the window; the live-only rule none.
    replay = _uid("replay")
    started = events.start_replay(ReplayName=replay, EventSourceArn=created["ArchiveArn"], EventStartTime=before,
                                  EventEndTime=datetime.now(UTC) + timedelta(minutes=1),
                                  Destination={"Arn": described["EventSourceArn"]})
    assert started["State"] in ("STARTING", "RUNNING") and started["ReplayArn"].endswith(f":replay/{replay}")
    done = _wait(lambda: (d := events.describe_replay(ReplayName=replay))["State"] == "COMPLETED" and d,
                 "the replay to complete")
    assert done["ReplayEndTime"] >= done["ReplayStartTime"] and done["EventLastReplayedTime"] >= before
    assert done["Destination"] == {"Arn": described["EventSourceArn"]}
    _wait(lambda: len(_requests(received, f"/{tag}/replayed")) == 3, "the replayed deliveries")
    bodies = _requests(received, f"/{tag}/replayed")
    assert sorted(b["detail"]["n"] for b in bodies) == [0, 1, 2]
    assert {b["replay-name"] for b in bodies} == {replay}
    _wait(lambda: len(_requests(received, f"/{tag}/all")) == 7, "the replayed deliveries of the plain rule")
    time.sleep(1)  # what the live-only rule would have had by now
    assert len(_requests(received, f"/{tag}/live")) == 4
    assert events.describe_archive(ArchiveName=name)["EventCount"] == 4  # replayed events are not archived again
    code, message = _error(events.cancel_replay, ReplayName=replay)
    assert (code, message) == ("IllegalStatusException", f"Replay {replay} is not in a valid state for this operation.")

    # FilterArns: only that rule.
    only = _uid("only")
    events.start_replay(ReplayName=only, EventSourceArn=created["ArchiveArn"], EventStartTime=before,
                        EventEndTime=datetime.now(UTC), Destination={"Arn": described["EventSourceArn"],
                                                                     "FilterArns": [replayed]})
    _wait(lambda: events.describe_replay(ReplayName=only)["State"] == "COMPLETED", "the filtered replay")
    _wait(lambda: len(_requests(received, f"/{tag}/replayed")) == 6, "the filtered replay's deliveries")
    time.sleep(1)  # what other rule would have had its deliveries by now
    assert len(_requests(received, f"/{tag}/all")) == 7 and len(_requests(received, f"/{tag}/live")) == 4
    assert {r["ReplayName"] for r in events.list_replays(EventSourceArn=created["ArchiveArn"])["Replays"]} \
        == {replay, only}
    assert [r["State"] for r in events.list_replays(NamePrefix=only)["Replays"]] == ["COMPLETED"]
    assert live  # the live rule's ARN was only needed to build it

    # UpdateArchive: a narrower pattern archives only what it matches from now on.
    events.update_archive(ArchiveName=name, EventPattern=json.dumps({"source": ["app.orders"],
                                                                     "detail": {"n": [{"numeric": [">", 10]}]}}),
                          RetentionDays=1)
    events.put_events(Entries=[_order(bus, 5), _order(bus, 50)])
    assert events.describe_archive(ArchiveName=name)["EventCount"] == 5
    assert events.describe_archive(ArchiveName=name)["RetentionDays"] == 1
    events.delete_archive(ArchiveName=name)
    assert _error(events.describe_archive, ArchiveName=name)[0] == "ResourceNotFoundException"


def test_cancel_a_running_replay(server: StratumServer, ci: tuple[str, Received]) -> None:  # noqa: F811
    url, received = ci
    events, bus, connection, role = _setup(server, url)
    tag = uuid.uuid4().hex[:8]
    bus_arn = events.describe_event_bus(Name=bus)["Arn"]
    archive = events.create_archive(ArchiveName=_uid("all"), EventSourceArn=bus_arn)["ArchiveArn"]
    events.put_events(Entries=[_order(bus, n) for n in range(10)])
    events.put_events(Entries=[_order(bus, n) for n in range(10, 20)])
    _rule_to(server, events, bus, {"source": ["app.orders"]}, f"{url}/{tag}/late", connection, role)
    replay = _uid("cancel")
    events.start_replay(ReplayName=replay, EventSourceArn=archive, EventStartTime=datetime.now(UTC) - timedelta(hours=1),
                        EventEndTime=datetime.now(UTC) + timedelta(minutes=1), Destination={"Arn": bus_arn})
    assert events.cancel_replay(ReplayName=replay)["State"] == "CANCELLING"
    done = _wait(lambda: (d := events.describe_replay(ReplayName=replay))["State"] == "CANCELLED" and d,
                 "the replay to be cancelled")
    assert "ReplayEndTime" in done
    time.sleep(1)
    assert len(_requests(received, f"/{tag}/late")) < 20  # cancelled before the end (one event per 0.2 s pass)


def test_retention_sweep_removes_expired_events(server: StratumServer) -> None:
    events = server.client("events")
    bus = events.create_event_bus(Name=_uid("kept"))["EventBusArn"]
    short, forever = _uid("short"), _uid("forever")
    events.create_archive(ArchiveName=short, EventSourceArn=bus, RetentionDays=2)
    events.create_archive(ArchiveName=forever, EventSourceArn=bus)  # RetentionDays 0: kept for ever
    events.put_events(Entries=[{"EventBusName": bus, "Source": "app.x", "DetailType": "x", "Detail": "{}"}])
    db = _db(server)
    try:
        assert archives.sweep(db, datetime.now(UTC) + timedelta(days=1)) == 0
        assert archives.sweep(db, datetime.now(UTC) + timedelta(days=3)) >= 1
    finally:
        db.dispose()
    assert events.describe_archive(ArchiveName=short)["EventCount"] == 0
    assert events.describe_archive(ArchiveName=forever)["EventCount"] == 1


def test_errors(server: StratumServer) -> None:
    events = server.client("events")
    bus = events.create_event_bus(Name=_uid("errs"))["EventBusArn"]
    other_bus = events.create_event_bus(Name=_uid("other"))["EventBusArn"]
    name = _uid("a")
    archive = events.create_archive(ArchiveName=name, EventSourceArn=bus)["ArchiveArn"]
    assert _error(events.create_archive, ArchiveName=name, EventSourceArn=bus) == (
        "ResourceAlreadyExistsException", f"Archive {name} already exists.")
    missing_bus = bus.rsplit("/", 1)[0] + "/nope"
    assert _error(events.create_archive, ArchiveName=_uid("b"), EventSourceArn=missing_bus) == (
        "ResourceNotFoundException", "Event bus nope does not exist.")
    code, message = _error(events.create_archive, ArchiveName=_uid("c"), EventSourceArn=bus,
                           EventPattern=json.dumps({"source": "not-a-list"}))
    assert code == "InvalidEventPatternException" and "must be an object or an array" in message
    # boto3 would refuse it before sending: the server's own check, without the client's
    unchecked = server.session().client("events", endpoint_url=server.endpoint_url,
                                        config=Config(parameter_validation=False))
    assert _error(unchecked.create_archive, ArchiveName=_uid("d"), EventSourceArn=bus, RetentionDays=-1)[0] \
        == "ValidationException"
    assert _error(events.describe_archive, ArchiveName="nope") == ("ResourceNotFoundException",
                                                                   "Archive nope does not exist.")
    assert _error(events.update_archive, ArchiveName="nope")[0] == "ResourceNotFoundException"
    assert _error(events.delete_archive, ArchiveName="nope")[0] == "ResourceNotFoundException"
    assert _error(events.list_archives, NamePrefix="a", State="ENABLED")[0] == "ValidationException"
    now = datetime.now(UTC)
    window = {"EventStartTime": now - timedelta(hours=1), "EventEndTime": now}
    assert _error(events.start_replay, ReplayName=_uid("r"), EventSourceArn=archive, Destination={"Arn": other_bus},
                  **window) == ("ValidationException", "Parameter Destination.Arn is not valid. "
                                                       "Reason: Cross event bus replay is not permitted.")
    assert _error(events.start_replay, ReplayName=_uid("r"), EventSourceArn=archive, Destination={"Arn": bus},
                  EventStartTime=now, EventEndTime=now - timedelta(hours=1)) == (
        "ValidationException", "Parameter EventEndTime is not valid. Reason: EventStartTime must be before EventEndTime.")
    assert _error(events.start_replay, ReplayName=_uid("r"), EventSourceArn=archive + "x", Destination={"Arn": bus},
                  **window)[0] == "ValidationException"
    assert _error(events.start_replay, ReplayName=_uid("r"), EventSourceArn=archive, Destination={"Arn": "orders"},
                  **window) == ("ValidationException",
                                "Parameter Destination.Arn is not valid. Reason: Must contain an event bus ARN.")
    assert _error(events.start_replay, ReplayName=_uid("r"), EventSourceArn=archive,
                  Destination={"Arn": bus, "FilterArns": [bus.replace(":event-bus/", ":rule/") + "/nope"]},
                  **window)[0] == "ValidationException"
    replay = _uid("r")
    events.start_replay(ReplayName=replay, EventSourceArn=archive, Destination={"Arn": bus}, **window)
    assert _error(events.start_replay, ReplayName=replay, EventSourceArn=archive, Destination={"Arn": bus},
                  **window) == ("ResourceAlreadyExistsException", f"Replay {replay} already exists.")
    assert _error(events.describe_replay, ReplayName="nope") == ("ResourceNotFoundException",
                                                                 "Replay nope does not exist.")
    assert _error(events.cancel_replay, ReplayName="nope")[0] == "ResourceNotFoundException"
    assert _error(events.list_replays, NamePrefix="r", State="RUNNING")[0] == "ValidationException"


def test_another_account_is_refused(server: StratumServer) -> None:
    dev, other = server.client("events"), server.client("events", "test")
    bus = dev.create_event_bus(Name=_uid("private"))["EventBusArn"]
    name = _uid("private")
    archive = dev.create_archive(ArchiveName=name, EventSourceArn=bus)["ArchiveArn"]
    now = datetime.now(UTC)
    assert _error(other.create_archive, ArchiveName=_uid("steal"), EventSourceArn=bus)[0] == "AccessDeniedException"
    assert _error(other.start_replay, ReplayName=_uid("steal"), EventSourceArn=archive, Destination={"Arn": bus},
                  EventStartTime=now - timedelta(hours=1), EventEndTime=now)[0] == "AccessDeniedException"
    # names are per account: the other account has no archive of that name
    assert _error(other.describe_archive, ArchiveName=name)[0] == "ResourceNotFoundException"
    assert name not in [a["ArchiveName"] for a in other.list_archives()["Archives"]]
