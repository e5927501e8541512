"""EventBridge buses and their resource policies: cross-account PutEvents allowed or refused by the
target bus's policy, through boto3 and the AWS CLI."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from authz_testing import client
from botocore.exceptions import ClientError
from sqlalchemy import select
from stratum_testing import REGION, StratumServer

from stratum.services.events.tables import events_entries
from stratum.store.db import Database


def _uid(prefix: str = "bus") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _entry(bus: str, **kw: Any) -> dict[str, Any]:
    entry = {"Source": "com.example.spoke", "DetailType": "ModelPackageRegistered",
             "Detail": json.dumps({"group": "churn", "version": 3}), "EventBusName": bus}
    entry.update(kw)
    return entry


def _hub_bus(server: StratumServer) -> str:
    return str(client(server, "events", account="hub").create_event_bus(Name=_uid())["EventBusArn"])


def _stored(server: StratumServer, event_ids: list[str]) -> list[Any]:
    db = Database(server.database_url or f"sqlite:///{server.data_dir / 'stratum.db'}")
    try:
        with db.read() as conn:
            return list(conn.execute(select(events_entries).where(events_entries.c.event_id.in_(event_ids))
                                     .order_by(events_entries.c.seq)))
    finally:
        db.dispose()


def _denied(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as err:
        call(**kwargs)
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    return str(err.value.response["Error"]["Message"])


def test_bus_lifecycle_and_default_bus(server: StratumServer) -> None:
    events = client(server, "events", account="test")
    account = server.account_id("test")
    name = _uid()
    arn = events.create_event_bus(Name=name, Description="spoke events")["EventBusArn"]
    assert arn == f"arn:aws:events:{REGION}:{account}:event-bus/{name}"
    described = events.describe_event_bus(Name=arn)
    assert (described["Name"], described["Description"]) == (name, "spoke events")
    assert "Policy" not in described
    default = events.describe_event_bus()
    assert default["Arn"] == f"arn:aws:events:{REGION}:{account}:event-bus/default"
    names = [b["Name"] for b in events.list_event_buses()["EventBuses"]]
    assert "default" in names and name in names and names == sorted(names)
    assert [b["Name"] for b in events.list_event_buses(NamePrefix=name)["EventBuses"]] == [name]
    first = events.list_event_buses(Limit=1)
    assert len(first["EventBuses"]) == 1 and first["NextToken"]

    with pytest.raises(ClientError) as err:
        events.create_event_bus(Name=name)
    assert err.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as err:
        events.delete_event_bus(Name="default")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    events.delete_event_bus(Name=name)
    events.delete_event_bus(Name=name)  # already gone: still succeeds, as on AWS
    with pytest.raises(ClientError) as err:
        events.describe_event_bus(Name=name)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # Buses are per account: dev does not see test's buses.
    assert name not in [b["Name"] for b in client(server, "events", account="dev").list_event_buses()["EventBuses"]]


def test_put_events_same_account_and_stored_log(server: StratumServer) -> None:
    events = client(server, "events", account="dev")
    name = events.create_event_bus(Name=_uid())["EventBusArn"].rsplit("/", 1)[1]
    result = events.put_events(Entries=[
        _entry(name, Resources=["arn:aws:sagemaker:us-east-1:1:model-package/churn/3"]),
        _entry(name, Detail="not json"),
        _entry(name, Detail="[1, 2]"),
        {"Source": "com.example.spoke", "Detail": "{}", "EventBusName": name},
        _entry(name, Source="aws.sagemaker"),
        _entry("default"),
    ])
    assert result["FailedEntryCount"] == 4
    codes = [e.get("ErrorCode") for e in result["Entries"]]
    assert codes == [None, "MalformedDetail", "MalformedDetail", "InvalidArgument",
                     "NotAuthorizedForSourceException", None]
    stored = _stored(server, [result["Entries"][0]["EventId"], result["Entries"][5]["EventId"]])
    assert [(r.bus_name, r.source_account, r.detail_type) for r in stored] == [
        (name, server.account_id("dev"), "ModelPackageRegistered"),
        ("default", server.account_id("dev"), "ModelPackageRegistered")]
    assert json.loads(stored[0].detail) == {"group": "churn", "version": 3}
    assert stored[0].resources == ["arn:aws:sagemaker:us-east-1:1:model-package/churn/3"]
    with pytest.raises(ClientError) as err:
        events.put_events(Entries=[_entry(_uid("missing"))])
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_cross_account_put_events_follows_the_bus_policy(server: StratumServer) -> None:
    hub = client(server, "events", account="hub")
    arn = _hub_bus(server)
    name = arn.rsplit("/", 1)[1]
    dev, prod = client(server, "events", account="dev"), client(server, "events", account="prod")

    message = _denied(dev.put_events, Entries=[_entry(arn)])
    assert message == (f"User: arn:aws:iam::{server.account_id('dev')}:user/admin is not authorized to perform: "
                       f"events:PutEvents on resource: {arn} because no resource-based policy allows the "
                       "events:PutEvents action")

    hub.put_permission(EventBusName=name, Action="events:PutEvents", Principal=server.account_id("dev"),
                       StatementId="dev-spoke")
    policy = json.loads(hub.describe_event_bus(Name=name)["Policy"])
    assert policy["Statement"] == [{
        "Sid": "dev-spoke", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{server.account_id('dev')}:root"},
        "Action": "events:PutEvents", "Resource": arn}]
    sent = dev.put_events(Entries=[_entry(arn)])
    assert sent["FailedEntryCount"] == 0
    row = _stored(server, [sent["Entries"][0]["EventId"]])[0]
    # Stored on the hub's bus, stamped with the sending account.
    assert (row.account_id, row.bus_name, row.source_account) == (
        server.account_id("hub"), name, server.account_id("dev"))
    _denied(prod.put_events, Entries=[_entry(arn)])
    # One entry for a bus the caller may not use refuses the whole request.
    _denied(dev.put_events, Entries=[_entry("default"), _entry(arn.replace(name, "default"))])

    hub.remove_permission(EventBusName=name, StatementId="dev-spoke")
    assert "Policy" not in hub.describe_event_bus(Name=name)
    _denied(dev.put_events, Entries=[_entry(arn)])


def test_organization_wide_permission(server: StratumServer) -> None:
    hub = client(server, "events", account="hub")
    arn = _hub_bus(server)
    name = arn.rsplit("/", 1)[1]
    iam_org = _org_id(server)
    hub.put_permission(EventBusName=name, Action="events:PutEvents", Principal="*", StatementId="other-org",
                       Condition={"Type": "StringEquals", "Key": "aws:PrincipalOrgID", "Value": "o-notmine000"})
    _denied(client(server, "events", account="prod").put_events, Entries=[_entry(arn)])
    hub.put_permission(EventBusName=name, Action="events:PutEvents", Principal="*", StatementId="my-org",
                       Condition={"Type": "StringEquals", "Key": "aws:PrincipalOrgID", "Value": iam_org})
    for account in ("dev", "prod", "shared-services"):
        assert client(server, "events", account=account).put_events(Entries=[_entry(arn)])["FailedEntryCount"] == 0
    statements = json.loads(hub.describe_event_bus(Name=name)["Policy"])["Statement"]
    assert statements[1] == {"Sid": "my-org", "Effect": "Allow", "Principal": "*", "Action": "events:PutEvents",
                             "Resource": arn, "Condition": {"StringEquals": {"aws:PrincipalOrgID": iam_org}}}
    hub.remove_permission(EventBusName=name, RemoveAllPermissions=True)
    _denied(client(server, "events", account="prod").put_events, Entries=[_entry(arn)])


def _org_id(server: StratumServer) -> str:
    """The organization id every bootstrapped account belongs to (aws:PrincipalOrgID)."""
    from stratum.services.organizations.tables import accounts

    db = Database(server.database_url or f"sqlite:///{server.data_dir / 'stratum.db'}")
    try:
        with db.read() as conn:
            return str(conn.execute(select(accounts.c.organization_id).where(
                accounts.c.id == server.account_id("hub"))).scalar())
    finally:
        db.dispose()


def test_policy_document_and_conditions_on_source(server: StratumServer) -> None:
    hub = client(server, "events", account="hub")
    arn = _hub_bus(server)
    name = arn.rsplit("/", 1)[1]
    dev = server.account_id("dev")
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "SpokeModelEvents", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{dev}:root"},
        "Action": "events:PutEvents", "Resource": arn,
        "Condition": {"StringEquals": {"events:source": "com.example.spoke"}}}]}
    hub.put_permission(EventBusName=name, Policy=json.dumps(policy))
    assert json.loads(hub.describe_event_bus(Name=name)["Policy"]) == policy
    events = client(server, "events", account="dev")
    assert events.put_events(Entries=[_entry(arn)])["FailedEntryCount"] == 0
    _denied(events.put_events, Entries=[_entry(arn, Source="com.example.other")])

    with pytest.raises(ClientError) as err:
        hub.put_permission(EventBusName=name, Policy='{"Statement": [{"Effect": "Allow"}]}')
    assert err.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as err:
        hub.put_permission(EventBusName=name, Action="events:PutRule", Principal=dev, StatementId="x")
    assert err.value.response["Error"]["Code"] == "ValidationException"
    hub.put_permission(EventBusName=name, Action="events:PutEvents", Principal=dev, StatementId="again")
    with pytest.raises(ClientError) as err:
        hub.put_permission(EventBusName=name, Action="events:PutEvents", Principal=dev, StatementId="again")
    assert err.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as err:
        hub.remove_permission(EventBusName=name, StatementId="never")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_default_bus_policy_and_tags(server: StratumServer) -> None:
    shared = client(server, "events", account="shared-services")
    shared_id = server.account_id("shared-services")
    default_arn = f"arn:aws:events:{REGION}:{shared_id}:event-bus/default"
    sid = _uid("sid")
    shared.put_permission(Action="events:PutEvents", Principal=server.account_id("test"), StatementId=sid)
    assert client(server, "events", account="test").put_events(Entries=[_entry(default_arn)])["FailedEntryCount"] == 0
    shared.tag_resource(ResourceARN=default_arn, Tags=[{"Key": "team", "Value": "platform"}])
    assert shared.list_tags_for_resource(ResourceARN=default_arn)["Tags"] == [{"Key": "team", "Value": "platform"}]
    shared.untag_resource(ResourceARN=default_arn, TagKeys=["team"])
    assert shared.list_tags_for_resource(ResourceARN=default_arn)["Tags"] == []
    shared.remove_permission(StatementId=sid)


def test_request_tag_conditions_on_create_event_bus(server: StratumServer) -> None:
    iam = client(server, "iam")
    user = _uid("bus-maker")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="tagged-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "events:CreateEventBus", "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestTag/team": "ml"},
                          "ForAllValues:StringEquals": {"aws:TagKeys": ["team", "stage"]}}}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    events = client(server, "events", {"aws_access_key_id": key["AccessKeyId"],
                                       "aws_secret_access_key": key["SecretAccessKey"]})
    events.create_event_bus(Name=_uid(), Tags=[{"Key": "team", "Value": "ml"}, {"Key": "stage", "Value": "dev"}])
    _denied(events.create_event_bus, Name=_uid(), Tags=[{"Key": "team", "Value": "web"}])
    _denied(events.create_event_bus, Name=_uid())
    _denied(events.create_event_bus, Name=_uid(), Tags=[{"Key": "team", "Value": "ml"}, {"Key": "owner", "Value": "x"}])


def test_aws_cli_cross_account_put_events(server: StratumServer) -> None:
    arn = _hub_bus(server)
    name = arn.rsplit("/", 1)[1]
    server.aws_cli("events", "put-permission", "--event-bus-name", name, "--action", "events:PutEvents",
                   "--principal", server.account_id("prod"), "--statement-id", "prod", account="hub")
    entries = json.dumps([_entry(arn)])
    out = server.aws_cli("events", "put-events", "--entries", entries, "--output", "json", account="prod")
    assert json.loads(out.stdout)["FailedEntryCount"] == 0
    refused = server.aws_cli("events", "put-events", "--entries", entries, account="test", check=False)
    assert refused.returncode != 0 and "AccessDeniedException" in refused.stderr
