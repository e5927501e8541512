"""Account isolation, proved by sweeps over every served operation (generated from the botocore
models, see isolation_testing.py) rather than case by case:

* another account's administrator naming this account's resources is refused, by every operation
  and every way of naming a resource (ARN or name);
* a user whose only policy denies everything is refused by every operation;
* an expired assumed-role session is refused on every authentication path.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from authz_testing import client, limited_user
from botocore.config import Config
from isolation_testing import (
    METRIC_NAMESPACE,
    OWNER_DATAPOINTS,
    PIPELINE_DEFINITION,
    Outcome,
    Resources,
    add_invitations,
    add_organization,
    call,
    create_resources,
    error_code,
    http,
    operation_model,
    operation_without_input,
    own_call,
    served_operations,
    signed_chunked_put,
    swaps,
    wait_until,
)
from sqlalchemy import update
from stratum_testing import REGION, StratumServer

from stratum.services.iam.tables import sts_sessions
from stratum.store.db import Database

OWNER, OTHER = "prod", "shared-services"

# The answers that refuse a call on a resource the caller may not reach: not found in the caller's
# account, or denied. (S3 HEAD requests have no body: botocore reports the bare status.)
REFUSALS = {"AccessDenied", "AccessDeniedException", "NoSuchEntity", "NoSuchBucket", "NoSuchKey", "NoSuchUpload",
            "NotFoundException", "ResourceNotFound", "ResourceNotFoundException", "UnknownResourceException",
            "ResourceShareInvitationArnNotFoundException", "403", "404",
            # RAM: sharing a resource the caller does not own ("The resource ... is not owned by ...").
            "OperationNotPermittedException",
            # KMS: the caller's own ciphertext with another account's key named as KeyId.
            "IncorrectKeyException"}
# SageMaker and STS word some not-found answers as a validation error (DescribeModel: "Could not
# find model"; AssumeRole PolicyArns: "does not exist or is not attachable"), as on AWS.
# SageMaker answers a notebook instance it does not find with ValidationException "RecordNotFound".
NOT_FOUND_MESSAGE = re.compile(r"could not find|can't find|not found|does not exist|cannot be found|RecordNotFound",
                               re.I)

# The documented cross-account paths. The sweep's fixtures grant none of them (no RAM share, no
# resource policy, no trust policy names the other account), so every call must be refused; these
# are the only ways AWS lets another account in, each tested where it is built:
CROSS_ACCOUNT_PATHS = {
    "RAM-shared pipelines (Describe*/List*/Search; Start/Stop/Retry with the execution permission)":
        "test_a_ram_share_opens_exactly_its_permission (below), test_cross_account_sharing.py, test_ram.py",
    "bucket policies naming the other account": "test_s3.py::test_policy_conditions_and_explicit_deny",
    "KMS key policies naming the other account": "test_kms.py",
    "model package group resource policies (PutModelPackageGroupPolicy)": "test_model_registry.py",
    "event bus policies (PutPermission) for cross-account PutEvents": "test_events_policies.py",
    "roles whose trust policy names the other account (sts:AssumeRole)": "test_iam_sts.py",
    "AWS managed policies (arn:aws:iam::aws:policy/...): readable and attachable by every account":
        "test_aws_managed_policies_are_shared_read_only (below)",
    "Organizations: DescribeOrganization by every member account; the organization's reads by a member that is "
    "a delegated administrator": "test_organizations.py::test_member_accounts_may_only_describe_the_organization, "
                                 "test_organizations.py::test_delegated_administrator_reads_the_organization",
}

def test_every_documented_path_names_a_test_that_exists() -> None:
    here = Path(__file__).parent
    for path, where in CROSS_ACCOUNT_PATHS.items():
        for ref in where.split(", "):
            name = ref.split(" ")[0]
            file, _, test = name.partition("::")
            if not file.endswith(".py"):
                file, test = Path(__file__).name, file
            text = (here / file).read_text()
            assert not test or f"def {test}(" in text, (path, ref)


# Calls that succeed when they name another account's resource, and why that is no access to it.
# Each must still leak nothing of it: the answer may not contain any of its names.
SUCCEEDS_WITHOUT_ACCESS: dict[tuple[str, str], str] = {
    # Filters: another account's ARN in a filter matches nothing of the caller's.
    ("ram", "GetResourceShares"): "resourceShareArns filter",
    ("ram", "GetResourceShareAssociations"): "resourceShareArns filter",
    ("ram", "ListResources"): "resourceShareArns filter",
    ("ram", "ListPrincipals"): "resourceShareArns filter",
    ("sagemaker", "ListModelPackages"): "a group name is looked up in the caller's account: no packages",
    ("events", "ListApiDestinations"): "ConnectionArn filter over the caller's destinations: none use it",
    # A bus name is the caller's own namespace, and DeleteEventBus of a missing bus succeeds on AWS.
    ("events", "DeleteEventBus"): "deletes the caller's (missing) bus of that name",
    # So does DeleteRule of a missing rule; a rule name is looked up on the caller's bus.
    ("events", "DeleteRule"): "deletes the caller's (missing) rule of that name",
    # EventSourceArn filters over the caller's own archives and replays: another's ARN matches none.
    ("events", "ListArchives"): "EventSourceArn filter over the caller's own archives",
    ("events", "ListReplays"): "EventSourceArn filter over the caller's own replays",
    # "Retrieves the resource policies for the specified resources that you own and have shared":
    # another account's resource is none of the caller's, so it adds no policy (the owner's share of
    # it, to the organization's fixture member, is not shown).
    ("ram", "GetResourcePolicies"): "resources the caller owns and shared: another account's adds no policy",
    # A filter over the caller's own shares (resourceOwner SELF by default); AWS's model lists no
    # not-found error for it.
    ("ram", "ListPermissionAssociations"): "resourceShareArn filter over the caller's own shares",
    # CloudWatch: metrics are each account's own (no ARN, resource "*"), and an alarm name is looked
    # up in the caller's account; the owner's alarm by ARN is refused (below).
    ("cloudwatch", "DescribeAlarms"): "AlarmNames filter over the caller's own alarms: none",
    ("cloudwatch", "DescribeAlarmHistory"): "the history of the caller's (missing) alarm of that name: none",
    ("cloudwatch", "DescribeAlarmsForMetric"): "alarms on the caller's own metric of that name: none",
    ("cloudwatch", "GetMetricStatistics"): "the caller's own (empty) metric of that name: no datapoints",
    ("cloudwatch", "GetMetricData"): "the caller's own (empty) metric of that name: no values",
    ("cloudwatch", "ListMetrics"): "MetricName filter over the caller's own metrics: none",
    # Writes into the caller's own namespace; the owner's metric is unchanged (_check_intact). (The
    # sweep goes in the model's alphabetical order, so the reads above see the caller's metric of
    # that name before these give it a datapoint or an alarm.)
    ("cloudwatch", "PutMetricData"): "adds a datapoint to the caller's own metric of that name",
    ("cloudwatch", "PutMetricAlarm"): "a new alarm of the caller's, on its own metric of that name",
    # Logs: filters over the caller's own groups (an ARN of another account's group matches none).
    ("logs", "DescribeLogGroups"): "logGroupNamePrefix / logGroupIdentifiers filter over the caller's own groups",
}

# Of those, the reads whose answer must also be empty (the member holding what was found): the
# echoed name aside, a leak of the owner's data (datapoints, alarms) would carry no name to find.
FOUND: dict[tuple[str, str], Callable[[dict[str, Any]], list[Any]]] = {
    ("cloudwatch", "DescribeAlarms"): lambda b: b["MetricAlarms"] + b["CompositeAlarms"],
    ("cloudwatch", "DescribeAlarmHistory"): lambda b: b["AlarmHistoryItems"],
    ("cloudwatch", "DescribeAlarmsForMetric"): lambda b: b["MetricAlarms"],
    ("cloudwatch", "GetMetricStatistics"): lambda b: b["Datapoints"],
    ("cloudwatch", "GetMetricData"): lambda b: [v for r in b["MetricDataResults"] for v in r["Values"]],
    ("cloudwatch", "ListMetrics"): lambda b: b["Metrics"],
    ("logs", "DescribeLogGroups"): lambda b: b["logGroups"],
}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def _leaks(owner: Resources, outcome: Outcome, sent: dict[str, Any] | None = None) -> bool:
    """Whether a successful answer names anything of ``owner``'s (its resources carry its tag; its
    shares and invitations its account ID) beyond what the caller sent (GetMetricStatistics echoes
    the metric name it was given as its Label)."""
    body = outcome.body
    for text in sorted(_strings(sent or {}), key=len, reverse=True):
        body = body.replace(json.dumps(text)[1:-1], "")
    return owner.tag in body or owner.account_id in body


def _found_nothing(service: str, operation: str, outcome: Outcome) -> bool:
    found = FOUND.get((service, operation))
    return found is None or not found(json.loads(outcome.body))


def _per_item_refusal(service: str, operation: str, outcome: Outcome) -> bool:
    """Operations that answer 200 and refuse item by item, as on AWS."""
    body = json.loads(outcome.body)
    if (service, operation) == ("s3", "DeleteObjects"):
        return not body.get("Deleted") and all(e["Code"] == "AccessDenied" for e in body.get("Errors", [])) \
            and bool(body.get("Errors"))
    if (service, operation) == ("sagemaker", "BatchDescribeModelPackage"):
        return not body.get("ModelPackageSummaries") and bool(body.get("BatchDescribeModelPackageErrorMap"))
    return False


PER_ITEM = {("s3", "DeleteObjects"), ("sagemaker", "BatchDescribeModelPackage")}
READ_PREFIXES = ("Get", "Describe", "List", "Head", "BatchDescribe", "Search", "Simulate")


def is_read(operation: str) -> bool:
    return operation.startswith(READ_PREFIXES) and operation != "GetSessionToken"


def refused(outcome: Outcome) -> bool:
    if outcome.code is None or not 400 <= outcome.status < 500:
        return False
    return outcome.code in REFUSALS or bool(NOT_FOUND_MESSAGE.search(outcome.message))


@pytest.fixture(scope="module")
def accounts(server: StratumServer) -> tuple[Resources, Resources]:
    """One set of every kind of resource in each of two accounts, created once per server."""
    owner, other = create_resources(server, OWNER), create_resources(server, OTHER)
    add_invitations(server, owner, other)
    add_organization(server, owner, other)
    return owner, other


def _management(r: Resources) -> Resources:
    """The organization's management account, holding the organization's resources."""
    return Resources(r.server, r.ids["management_account"], r.tag, dict(r.ids))


def _show(outcome: Outcome) -> str:
    return f"{outcome.status} {outcome.code or 'success'} {outcome.message[:100]!r}"


# ------------------------------------------------------------------------------ another account
def test_another_accounts_administrator_is_refused(server: StratumServer,
                                                   accounts: tuple[Resources, Resources]) -> None:
    owner, other = accounts
    failures: list[str] = []
    swept: dict[str, set[str]] = {}
    probes = 0
    for service, operations in served_operations().items():
        if service == "organizations":
            swept[service], count = _sweep_organization(owner, other, failures)
            probes += count
            continue
        c = other.client(service)
        for operation in operations:
            calls = swaps(service, operation, other, owner)
            if not calls:
                # Nothing to name: a listing of the caller's own resources, which may not show ours.
                if is_read(operation):
                    outcome = call(c, operation, own_call(service, operation, other))
                    if outcome.code is not None or owner.tag in outcome.body:
                        failures.append(f"{service}:{operation} (no resource named) -> {_show(outcome)}"
                                        + (" naming the other account's resources" if owner.tag in outcome.body
                                           else ""))
                continue
            swept.setdefault(service, set()).add(operation)
            if is_read(operation):
                # Control: the very call on the caller's own resources succeeds, so a refusal below
                # is about whose resource it names, not about a malformed call.
                control = call(c, operation, own_call(service, operation, other))
                if control.code is not None:
                    failures.append(f"{service}:{operation} control on own resources -> {_show(control)}")
            for probe in calls:
                probes += 1
                outcome = call(c, operation, probe.params)
                if outcome.code is None:
                    key = (service, operation)
                    if key in PER_ITEM and _per_item_refusal(service, operation, outcome):
                        continue
                    if key in SUCCEEDS_WITHOUT_ACCESS and not _leaks(owner, outcome, probe.params) \
                            and _found_nothing(service, operation, outcome):
                        continue
                    failures.append(f"{probe.describe()} -> SUCCEEDED {outcome.body[:160]}")
                elif not refused(outcome):
                    failures.append(f"{probe.describe()} -> {_show(outcome)}")
    _check_intact(owner, failures)
    counts = {service: len(ops) for service, ops in swept.items()}
    print(f"operations swept per service: {counts}; {probes} calls naming the other account's resources")
    assert not failures, "\n".join([f"{len(failures)} calls not refused:", *failures])
    # The sweep reaches what the providers serve (a model or provider change that silently drops
    # operations from it fails here).
    assert counts["iam"] >= 46 and counts["s3"] >= 27 and counts["kms"] >= 26 and counts["sagemaker"] >= 47
    assert counts["ram"] >= 19 and counts["events"] >= 9 and counts["sts"] == 1 and counts["organizations"] >= 23
    assert counts["cloudwatch"] >= 13 and counts["logs"] >= 16
    # A service Stratum does not serve at all answers with an error, never a success (whatever its
    # wording: the point is that no request reaches anything).
    outcome = call(other.client(UNSERVED), operation_without_input(UNSERVED), {})
    assert outcome.code is not None and outcome.status >= 400, outcome


UNSERVED = "sns"

# Organizations. Every account of the sweep is in one organization, whose resources (root, OUs,
# member accounts, create-account requests) the management account holds: "another account's
# resource" is the organization's, named by a member account's administrator, who is refused the
# management account's authority (AccessDeniedException), and by an account outside the
# organization, which has none (AWSOrganizationsNotInUseException). What AWS lets a member do
# (the operation's documentation), each also tested where it is built (CROSS_ACCOUNT_PATHS):
ORGANIZATION_MEMBER_MAY: dict[str, str] = {
    "DescribeOrganization": "\"You can call this operation from any account in a organization\"",
}


def _sweep_organization(owner: Resources, other: Resources, failures: list[str]) -> tuple[set[str], int]:
    """Every Organizations operation, with valid identifiers of the organization's resources, as
    the management account (reads only: the control), a member and an outsider."""
    management = _management(owner)
    own = management.client("organizations")
    member = other.client("organizations")
    outsider = client(owner.server, "organizations", owner.ids["outsider"])
    operations = served_operations()["organizations"]
    probes = 0
    for operation in operations:
        params = own_call("organizations", operation, management)
        shown = f"organizations:{operation} {json.dumps(params, default=str)[:160]}"
        if is_read(operation):
            control = call(own, operation, params)
            if control.code is not None:
                failures.append(f"{shown} control as the management account -> {_show(control)}")
        for who, c, expected in (("a member", member, "AccessDeniedException"),
                                 ("an outsider", outsider, "AWSOrganizationsNotInUseException")):
            probes += 1
            outcome = call(c, operation, params)
            if c is member and operation in ORGANIZATION_MEMBER_MAY:
                if outcome.code is not None:
                    failures.append(f"{shown} as {who} (allowed) -> {_show(outcome)}")
            elif outcome.code != expected or not 400 <= outcome.status < 500:
                failures.append(f"{shown} as {who} -> {_show(outcome)}")
    return set(operations), probes


def _check_intact(owner: Resources, failures: list[str]) -> None:
    """The owner still reads every resource as before: nothing was deleted or taken."""
    for service, operations in served_operations().items():
        if service == "organizations":
            continue  # below: the organization is the management account's
        c = owner.client(service)
        for operation in operations:
            if is_read(operation) and swaps(service, operation, owner, owner):
                outcome = call(c, operation, own_call(service, operation, owner))
                if outcome.code is not None:
                    failures.append(f"owner's own {service}:{operation} afterwards -> {_show(outcome)}")
    iam = owner.client("iam")
    version = iam.get_policy(PolicyArn=owner.ids["policy_arn"])["Policy"]["DefaultVersionId"]
    if version != "v1":
        failures.append(f"owner's policy default version is now {version}")
    # The owner's pipeline is shared (with the organization's fixture member), so the empty answer
    # another account gets from GetResourcePolicies is a refusal, not the absence of a policy.
    policies = owner.client("ram").get_resource_policies(resourceArns=[owner.ids["pipeline_arn"]])["policies"]
    if len(policies) != 1 or owner.ids["pipeline_arn"] not in policies[0]:
        failures.append(f"owner's own ram:GetResourcePolicies -> {policies}")
    orgs, ids = _management(owner).client("organizations"), owner.ids
    units = orgs.list_organizational_units_for_parent(ParentId=ids["root_id"])["OrganizationalUnits"]
    parents = orgs.list_parents(ChildId=ids["member_id"])["Parents"]
    delegated = orgs.list_delegated_services_for_account(AccountId=ids["member_id"])["DelegatedServices"]
    if ids["ou_id"] not in {u["Id"] for u in units} or [p["Id"] for p in parents] != [ids["root_id"]] \
            or [d["ServicePrincipal"] for d in delegated] != ["sagemaker.amazonaws.com"]:
        failures.append(f"the organization changed: {units} {parents} {delegated}")
    _check_monitoring_intact(owner, failures)


def _check_monitoring_intact(owner: Resources, failures: list[str]) -> None:
    """The owner's metric holds its own datapoints only (another account's PutMetricData of the same
    name went to that account), its alarm keeps its tags, its log group its retention, tags and events."""
    cw, logs, ids = owner.client("cloudwatch"), owner.client("logs"), owner.ids
    now = datetime.now(UTC)
    points = cw.get_metric_statistics(Namespace=METRIC_NAMESPACE, MetricName=ids["metric"], Period=60,
                                      StartTime=now - timedelta(hours=1), EndTime=now + timedelta(minutes=5),
                                      Statistics=["Sum", "SampleCount"])["Datapoints"]
    if [(p["Sum"], p["SampleCount"]) for p in points] != [(sum(OWNER_DATAPOINTS), len(OWNER_DATAPOINTS))]:
        failures.append(f"owner's metric datapoints changed: {points}")
    alarm = cw.describe_alarms(AlarmNames=[ids["alarm"]])["MetricAlarms"]
    tags = cw.list_tags_for_resource(ResourceARN=ids["alarm_arn"])["Tags"] if alarm else []
    if tags != [{"Key": "isolation", "Value": owner.tag}]:
        failures.append(f"owner's alarm changed: {alarm} {tags}")
    groups = logs.describe_log_groups(logGroupNamePrefix=ids["log_group"])["logGroups"]
    if [g.get("retentionInDays") for g in groups] != [7] \
            or logs.list_tags_for_resource(resourceArn=ids["log_group_arn"])["tags"] != {"isolation": owner.tag}:
        failures.append(f"owner's log group changed: {groups}")
    events = logs.get_log_events(logGroupName=ids["log_group"], logStreamName=ids["log_stream"])["events"]
    if [e["message"] for e in events] != [f"{owner.tag} event"]:
        failures.append(f"owner's log stream changed: {events}")


# ------------------------------------------------------------------------- AWS managed policies
def test_aws_managed_policies_are_shared_read_only(server: StratumServer,
                                                   accounts: tuple[Resources, Resources]) -> None:
    """AWS managed policies are readable and attachable by every account, writable by none, and
    their attachment counts are each account's own."""
    owner, other = accounts
    managed = "arn:aws:iam::aws:policy/ReadOnlyAccess"
    iam, other_iam = owner.client("iam"), other.client("iam")
    before = other_iam.get_policy(PolicyArn=managed)["Policy"]["AttachmentCount"]
    iam.attach_user_policy(UserName=owner.ids["user"], PolicyArn=managed)
    try:
        assert other_iam.get_policy(PolicyArn=managed)["Policy"]["AttachmentCount"] == before
        assert iam.get_policy(PolicyArn=managed)["Policy"]["AttachmentCount"] >= 1
        other_iam.attach_user_policy(UserName=other.ids["user"], PolicyArn=managed)
        other_iam.detach_user_policy(UserName=other.ids["user"], PolicyArn=managed)
        assert "Statement" in other_iam.get_policy_version(PolicyArn=managed, VersionId="v1")["PolicyVersion"][
            "Document"]
        for operation, params in (("CreatePolicyVersion", {"PolicyArn": managed, "SetAsDefault": True,
                                                           "PolicyDocument": json.dumps({
                                                               "Version": "2012-10-17", "Statement": [{
                                                                   "Effect": "Allow", "Action": "*",
                                                                   "Resource": "*"}]})}),
                                  ("DeletePolicy", {"PolicyArn": managed})):
            outcome = call(other_iam, operation, params)
            assert (outcome.status, outcome.code) == (403, "AccessDenied"), (operation, outcome)
    finally:
        iam.detach_user_policy(UserName=owner.ids["user"], PolicyArn=managed)
    assert iam.get_policy(PolicyArn=managed)["Policy"]["DefaultVersionId"] == "v1"


def test_another_account_cannot_rewrite_a_customer_policy(server: StratumServer,
                                                          accounts: tuple[Resources, Resources]) -> None:
    """The attack the sweep guards against, spelled out: an administrator of another account makes
    a limited user of this account an administrator by rewriting the policy it is attached to."""
    owner, other = accounts
    creds, user_arn = limited_user(server, {"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"},
                                   account=OWNER, prefix="iso-limited")
    iam = owner.client("iam")
    user = user_arn.rsplit("/", 1)[1]
    iam.attach_user_policy(UserName=user, PolicyArn=owner.ids["policy_arn"])
    admin = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    other_iam = other.client("iam")
    arn = owner.ids["policy_arn"]
    for operation, params in (("GetPolicy", {"PolicyArn": arn}),
                              ("GetPolicyVersion", {"PolicyArn": arn, "VersionId": "v1"}),
                              ("ListPolicyVersions", {"PolicyArn": arn}),
                              ("CreatePolicyVersion", {"PolicyArn": arn, "PolicyDocument": admin,
                                                       "SetAsDefault": True}),
                              ("DeletePolicy", {"PolicyArn": arn}),
                              ("AttachUserPolicy", {"UserName": other.ids["user"], "PolicyArn": arn}),
                              ("AttachRolePolicy", {"RoleName": other.ids["role"], "PolicyArn": arn}),
                              ("PutUserPermissionsBoundary", {"UserName": other.ids["user"],
                                                              "PermissionsBoundary": arn}),
                              ("PutRolePermissionsBoundary", {"RoleName": other.ids["role"],
                                                              "PermissionsBoundary": arn})):
        outcome = call(other_iam, operation, params)
        assert (outcome.status, outcome.code) == (404, "NoSuchEntity"), (operation, outcome)
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    assert policy["DefaultVersionId"] == "v1" and policy["AttachmentCount"] == 3  # user, role, limited user
    outcome = call(client(server, "iam", creds), "ListUsers", {})
    assert outcome.code == "AccessDenied"


# ----------------------------------------------------------------------------------- deny-all
# AWS's front ends check a request's syntax (the model's types, lengths and patterns) before IAM
# evaluates it, as Stratum's pipeline does (parse + validate, then the provider authorizes): a
# malformed request is a validation error whatever the caller's policy. So the calls carry values
# valid for each operation's constraints (Organizations: the organization's real identifiers), and
# every check past the syntax (does that OU exist, is that a service principal) must come after the
# deny.
# What AWS never denies: GetCallerIdentity needs no permission ("no permissions are required").
NEVER_DENIED = {("sts", "GetCallerIdentity")}


def test_a_user_denied_everything_is_refused_everything(server: StratumServer,
                                                        accounts: tuple[Resources, Resources]) -> None:
    owner, _ = accounts
    creds, arn = limited_user(server, {"Effect": "Deny", "Action": "*", "Resource": "*"}, account=OWNER,
                              prefix="iso-deny")
    failures: list[str] = []
    count = 0
    for service, operations in served_operations().items():
        c = client(server, service, creds)
        for operation in operations:
            count += 1
            outcome = call(c, operation, own_call(service, operation, owner))
            if outcome.code is None and (service, operation) in PER_ITEM \
                    and _per_item_refusal(service, operation, outcome):
                continue
            if (service, operation) in NEVER_DENIED:
                if outcome.code is not None:
                    failures.append(f"{service}:{operation} -> {_show(outcome)}")
            elif outcome.code not in ("AccessDenied", "AccessDeniedException", "403") \
                    or not 400 <= outcome.status < 500:
                failures.append(f"{service}:{operation} -> {_show(outcome)}")
    print(f"operations called by {arn}: {count}")
    _check_intact(owner, failures)
    assert not failures, "\n".join([f"{len(failures)} calls not denied:", *failures])


# -------------------------------------------------------------------------- expired sessions
def _expire_session(server: StratumServer, access_key: str) -> None:
    """Age a session in the store (AWS's 900 s minimum is too long to wait), then let the server's
    credential cache lapse, as test_auth.py does."""
    db = Database(server.database_url or f"sqlite:///{server.data_dir / 'stratum.db'}")
    try:
        with db.begin() as conn:
            conn.execute(update(sts_sessions).where(sts_sessions.c.access_key_id == access_key)
                         .values(expiration=datetime.now(UTC) - timedelta(seconds=1)))
    finally:
        db.dispose()
    time.sleep(2.2)


EXPIRED = {"ExpiredToken", "ExpiredTokenException"}


def test_an_expired_session_is_refused_on_every_path(server: StratumServer,
                                                     accounts: tuple[Resources, Resources]) -> None:
    owner, _ = accounts
    iam = owner.client("iam")
    role = f"{owner.tag}-admin-{int(time.time() * 1000) % 100000}"
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{owner.account_id}:root"},
         "Action": "sts:AssumeRole"}]}))
    iam.attach_role_policy(RoleName=role, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    session = owner.client("sts").assume_role(RoleArn=f"arn:aws:iam::{owner.account_id}:role/{role}",
                                              RoleSessionName="iso", DurationSeconds=900)["Credentials"]
    creds = {"aws_access_key_id": session["AccessKeyId"], "aws_secret_access_key": session["SecretAccessKey"],
             "aws_session_token": session["SessionToken"]}
    bucket, key = owner.ids["bucket"], owner.ids["key"]

    def presigned(signature: str) -> dict[str, tuple[str, str]]:
        import boto3

        s3 = boto3.session.Session(region_name=REGION, **creds).client(
            "s3", endpoint_url=server.endpoint_url,
            config=Config(signature_version=signature, s3={"addressing_style": "path"}))
        urls = {"GetObject": ("GET", s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})),
                "ListObjects": ("GET", s3.generate_presigned_url("list_objects", Params={"Bucket": bucket})),
                "HeadBucket": ("HEAD", s3.generate_presigned_url("head_bucket", Params={"Bucket": bucket}))}
        urls["PutObject"] = ("PUT", s3.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": f"{key}-put-{signature}"}))
        urls["DeleteObject"] = ("DELETE", s3.generate_presigned_url(
            "delete_object", Params={"Bucket": bucket, "Key": f"{key}-delete-{signature}"}))
        return urls

    forms: dict[str, Callable[[], dict[str, tuple[str, str]]]] = {
        "presigned SigV4": lambda: presigned("s3v4"), "presigned SigV2": lambda: presigned("s3")}
    sts_url = client(server, "sts", creds).generate_presigned_url("get_caller_identity", HttpMethod="GET")
    # Controls: every form works while the session is valid.
    s3 = owner.client("s3")
    signatures = ("s3v4", "s3")
    for signature in signatures:
        s3.put_object(Bucket=bucket, Key=f"{key}-delete-{signature}", Body=b"kept")
    issued = {form: make() for form, make in forms.items()}
    for form, urls in issued.items():
        for op, (method, url) in urls.items():
            status, body = http(method, url, b"x" if method == "PUT" else None)
            assert status in (200, 204), (form, op, status, body[:300])
    assert http("GET", sts_url)[0] == 200
    assert signed_chunked_put(server.endpoint_url, bucket, f"{key}-chunked", b"c" * 20000, creds)[0] == 200
    assert call(client(server, "s3", creds), "PutObject", {"Bucket": bucket, "Key": f"{key}-h", "Body": b"x"}
                ).code is None

    for signature in signatures:
        s3.put_object(Bucket=bucket, Key=f"{key}-delete-{signature}", Body=b"kept")
        s3.delete_object(Bucket=bucket, Key=f"{key}-put-{signature}")
    _expire_session(server, session["AccessKeyId"])
    failures: list[str] = []
    # The Authorization header: every served operation.
    count = 0
    for service, operations in served_operations().items():
        c = client(server, service, creds)
        for operation in operations:
            count += 1
            outcome = call(c, operation, own_call(service, operation, owner))
            head = operation_model(service, operation).http.get("method") == "HEAD"
            if not (outcome.code in EXPIRED or head and outcome.code == "400"):
                failures.append(f"header {service}:{operation} -> {_show(outcome)}")
    # Presigned URLs, both those issued before the session expired and new ones.
    for form, make in forms.items():
        for when, urls in (("issued while valid", issued[form]), ("issued after expiry", make())):
            for op, (method, url) in urls.items():
                status, body = http(method, url, b"y" if method == "PUT" else None)
                if status != 400 or (method != "HEAD" and error_code(body) != "ExpiredToken"):
                    failures.append(f"{form} {op} ({when}) -> {status} {body[:200]!r}")
    status, body = http("GET", sts_url)
    if status != 403 or error_code(body) != "ExpiredToken":
        failures.append(f"presigned SigV4 sts:GetCallerIdentity -> {status} {body[:200]!r}")
    # aws-chunked bodies (the seed request carries the session token like any header-signed one).
    status, body = signed_chunked_put(server.endpoint_url, bucket, f"{key}-chunked", b"d" * 20000, creds)
    if status != 400 or error_code(body) != "ExpiredToken":
        failures.append(f"aws-chunked PutObject -> {status} {body[:200]!r}")
    print(f"operations called with the expired session: {count}")
    assert not failures, "\n".join([f"{len(failures)} requests not refused:", *failures])
    # Nothing the refused requests asked for happened.
    assert s3.get_object(Bucket=bucket, Key=f"{key}-chunked")["Body"].read() == b"c" * 20000
    for signature in signatures:
        assert s3.get_object(Bucket=bucket, Key=f"{key}-delete-{signature}")["Body"].read() == b"kept"
        assert call(s3, "HeadObject", {"Bucket": bucket, "Key": f"{key}-put-{signature}"}).code == "404"



def test_a_session_outlives_neither_its_role_nor_a_new_role_of_the_same_name(
        server: StratumServer, accounts: tuple[Resources, Resources]) -> None:
    owner, _ = accounts
    iam = owner.client("iam")
    role = f"{owner.tag}-gone-{int(time.time() * 1000) % 100000}"
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{owner.account_id}:root"},
         "Action": "sts:AssumeRole"}]})
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
    iam.put_role_policy(RoleName=role, PolicyName="s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    session = owner.client("sts").assume_role(RoleArn=f"arn:aws:iam::{owner.account_id}:role/{role}",
                                              RoleSessionName="iso")["Credentials"]
    creds = {"aws_access_key_id": session["AccessKeyId"], "aws_secret_access_key": session["SecretAccessKey"],
             "aws_session_token": session["SessionToken"]}
    s3 = client(server, "s3", creds)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": owner.ids["bucket"], "Key": owner.ids["key"]})
    assert http("GET", url) == (200, b"isolation")
    iam.delete_role_policy(RoleName=role, PolicyName="s3")
    iam.delete_role(RoleName=role)
    # Created again with the same name and the same policy: a new role (new role ID), not the
    # session's. (The deleting server drops its credential cache at once; others within 2 s.)
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
    iam.put_role_policy(RoleName=role, PolicyName="s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    time.sleep(2.2)
    status, body = http("GET", url)
    assert (status, error_code(body)) == (403, "InvalidAccessKeyId")
    outcome = call(client(server, "sts", creds), "GetCallerIdentity", {})
    assert (outcome.status, outcome.code) == (403, "InvalidClientTokenId")


# ------------------------------------------------------------------------- a documented path
PERMISSIONS = {
    "AWSRAMDefaultPermissionSageMakerPipeline": {
        "DescribePipeline", "DescribePipelineDefinitionForExecution", "DescribePipelineExecution",
        "ListPipelineExecutions", "ListPipelineExecutionSteps", "ListPipelineParametersForExecution"},
}
PERMISSIONS["AWSRAMPermissionSageMakerPipelineAllowExecution"] = PERMISSIONS[
    "AWSRAMDefaultPermissionSageMakerPipeline"] | {"StartPipelineExecution", "StopPipelineExecution",
                                                   "RetryPipelineExecution"}
PIPELINE_MEMBERS = {"PipelineName", "PipelineArn", "PipelineExecutionArn", "ResourceArn"}


@pytest.mark.parametrize("permission", sorted(PERMISSIONS))
def test_a_ram_share_opens_exactly_its_permission(server: StratumServer, accounts: tuple[Resources, Resources],
                                                  permission: str) -> None:
    """The first exception above, swept: once a pipeline is shared through RAM, the consumer's
    calls naming it by ARN succeed for exactly the actions of the share's permission, and every
    other SageMaker operation naming it is still refused."""
    owner, other = accounts
    sm = owner.client("sagemaker")
    shared = Resources(server, owner.account, owner.tag, dict(owner.ids))
    shared.ids["pipeline"] = f"{owner.tag}-shared-{permission[-8:].lower()}"
    shared.ids["pipeline_arn"] = sm.create_pipeline(
        PipelineName=shared.ids["pipeline"], RoleArn=owner.ids["role_arn"], ClientRequestToken=str(uuid.uuid4()),
        PipelineDefinition=PIPELINE_DEFINITION)["PipelineArn"]
    shared.ids["execution_arn"] = sm.start_pipeline_execution(
        PipelineName=shared.ids["pipeline"], ClientRequestToken=str(uuid.uuid4()))["PipelineExecutionArn"]
    wait_until(lambda: sm.describe_pipeline_execution(PipelineExecutionArn=shared.ids["execution_arn"])[
        "PipelineExecutionStatus"] == "Failed")
    owner.client("ram").create_resource_share(
        name=f"{owner.tag}-share-{permission[-8:]}", resourceArns=[shared.ids["pipeline_arn"]],
        principals=[other.account_id], permissionArns=[f"arn:aws:ram::aws:permission/{permission}"])
    allowed = PERMISSIONS[permission]
    failures: list[str] = []
    opened: set[str] = set()
    closed: set[str] = set()
    c = other.client("sagemaker")
    for operation in served_operations()["sagemaker"]:
        for probe in swaps("sagemaker", operation, other, shared):
            if not set(probe.swapped) & PIPELINE_MEMBERS:
                continue
            named = probe.params[probe.swapped[0]]
            if probe.swapped[0] == "ResourceArn" and named != shared.ids["pipeline_arn"]:
                continue
            outcome = call(c, operation, probe.params)
            # A shared pipeline is addressed by ARN; its bare name means the caller's own pipeline.
            if operation in allowed and str(named).startswith("arn:"):
                if refused(outcome):
                    failures.append(f"{probe.describe()} shared with {permission} -> {_show(outcome)}")
                opened.add(operation)
            elif not refused(outcome):
                failures.append(f"{probe.describe()} not in {permission} -> {_show(outcome)}")
            else:
                closed.add(operation)
    assert not failures, "\n".join(failures)
    assert opened == allowed
    assert {"UpdatePipeline", "DeletePipeline", "ListPipelineVersions", "UpdatePipelineExecution",
            "AddTags", "ListTags"} <= closed - allowed, closed
    # What the consumer may do did not change what it owns: Update/Delete stay the owner's.
    assert sm.describe_pipeline(PipelineName=shared.ids["pipeline"])["PipelineArn"] == shared.ids["pipeline_arn"]
