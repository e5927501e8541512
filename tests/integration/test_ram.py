"""AWS RAM through boto3 and the AWS CLI: shares of SageMaker pipelines, their associations,
invitations for accounts outside the organization, managed permissions, tags, pagination,
clientToken idempotency, authorization and the errors RAM answers."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stratum_testing import REGION, StratumServer

DEFAULT_PERMISSION = "arn:aws:ram::aws:permission/AWSRAMDefaultPermissionSageMakerPipeline"
EXECUTION_PERMISSION = "arn:aws:ram::aws:permission/AWSRAMPermissionSageMakerPipelineAllowExecution"
READ_ACTIONS = ["sagemaker:DescribePipeline", "sagemaker:DescribePipelineDefinitionForExecution",
                "sagemaker:DescribePipelineExecution", "sagemaker:ListPipelineExecutions",
                "sagemaker:ListPipelineExecutionSteps", "sagemaker:ListPipelineParametersForExecution",
                "sagemaker:Search"]
DEFINITION = json.dumps({
    "Version": "2020-12-01", "Metadata": {},
    "Parameters": [{"Name": "Message", "Type": "String", "DefaultValue": "stop here"}],
    "Steps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": {"Get": "Parameters.Message"}}}],
})


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = exc.value.response["Error"]
    return err["Code"], err.get("Message", "")


def expect_error(code: str, call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as exc:
        call(*args, **kwargs)
    got, message = error_of(exc)
    assert got == code, (got, message)
    return message


def create_pipeline(server: StratumServer, account: str) -> str:
    role = f"arn:aws:iam::{server.account_id(account)}:role/pipeline"
    return server.client("sagemaker", account).create_pipeline(
        PipelineName=_uid("shared"), PipelineDefinition=DEFINITION, RoleArn=role)["PipelineArn"]


def standalone_account(server: StratumServer) -> dict[str, str]:
    """A new account outside the organization, made with `stratum accounts create --standalone`."""
    cmd = [sys.executable, "-m", "stratum.cli", "accounts", "create", "--standalone", "--name", _uid("ext"),
           "--data-dir", str(server.data_dir)]
    if server.database_url:
        cmd += ["--database-url", server.database_url]
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout)
    return {"id": out["AccountId"], "aws_access_key_id": out["AccessKeyId"],
            "aws_secret_access_key": out["SecretAccessKey"]}


def creds_of(account: dict[str, str]) -> dict[str, str]:
    return {"aws_access_key_id": account["aws_access_key_id"], "aws_secret_access_key": account["aws_secret_access_key"]}


def associations(ram: Any, share_arn: str, kind: str) -> dict[str, str]:
    found = ram.get_resource_share_associations(associationType=kind, resourceShareArns=[share_arn])
    return {a["associatedEntity"]: a["status"] for a in found["resourceShareAssociations"]}


# ------------------------------------------------------------------------------ catalog
def test_resource_types_and_managed_permissions(server: StratumServer) -> None:
    ram = server.client("ram", "test")
    types = ram.list_resource_types()["resourceTypes"]
    assert {"resourceType": "sagemaker:Pipeline", "serviceName": "sagemaker",
            "resourceRegionScope": "REGIONAL"} in types
    assert ram.list_resource_types(resourceRegionScope="GLOBAL")["resourceTypes"] == []

    permissions = ram.list_permissions(resourceType="sagemaker:Pipeline")["permissions"]
    by_name = {p["name"]: p for p in permissions}
    assert set(by_name) == {"AWSRAMDefaultPermissionSageMakerPipeline",
                            "AWSRAMPermissionSageMakerPipelineAllowExecution"}
    default = by_name["AWSRAMDefaultPermissionSageMakerPipeline"]
    assert default["arn"] == DEFAULT_PERMISSION and default["isResourceTypeDefault"] is True
    assert default["permissionType"] == "AWS_MANAGED" and default["version"] == "1"
    assert by_name["AWSRAMPermissionSageMakerPipelineAllowExecution"]["isResourceTypeDefault"] is False
    assert ram.list_permissions(permissionType="CUSTOMER_MANAGED")["permissions"] == []
    expect_error("InvalidParameterException", ram.list_permissions, resourceType="sagemaker:NoSuchThing")

    detail = ram.get_permission(permissionArn=DEFAULT_PERMISSION)["permission"]
    assert detail["resourceType"] == "sagemaker:Pipeline" and detail["defaultVersion"] is True
    template = json.loads(detail["permission"])
    assert template["Effect"] == "Allow" and template["Action"] == READ_ACTIONS
    allow_execution = json.loads(ram.get_permission(permissionArn=EXECUTION_PERMISSION)["permission"]["permission"])
    assert set(allow_execution["Action"]) == set(READ_ACTIONS) | {
        "sagemaker:StartPipelineExecution", "sagemaker:StopPipelineExecution", "sagemaker:RetryPipelineExecution"}
    expect_error("UnknownResourceException", ram.get_permission,
                 permissionArn="arn:aws:ram::aws:permission/AWSRAMDefaultPermissionNothing")
    expect_error("UnknownResourceException", ram.get_permission, permissionArn=DEFAULT_PERMISSION,
                 permissionVersion=7)
    expect_error("MalformedArnException", ram.get_permission, permissionArn="not-an-arn")


# ------------------------------------------------------------------- shares inside the org
def test_share_lifecycle_inside_the_organization(server: StratumServer) -> None:
    owner = server.client("ram", "test")
    consumer = server.client("ram", "shared-services")
    consumer_id = server.account_id("shared-services")
    pipeline = create_pipeline(server, "test")
    created = owner.create_resource_share(name=_uid("share"), resourceArns=[pipeline], principals=[consumer_id],
                                          tags=[{"key": "team", "value": "ml"}])
    share = created["resourceShare"]
    arn = share["resourceShareArn"]
    assert arn.startswith(f"arn:aws:ram:{REGION}:{server.account_id('test')}:resource-share/")
    assert share["status"] == "ACTIVE" and share["allowExternalPrincipals"] is True
    assert share["owningAccountId"] == server.account_id("test") and share["featureSet"] == "STANDARD"
    assert share["tags"] == [{"key": "team", "value": "ml"}] and created["clientToken"]

    # Same organization with sharing enabled: no invitation, associated at once.
    assert associations(owner, arn, "PRINCIPAL") == {consumer_id: "ASSOCIATED"}
    assert associations(owner, arn, "RESOURCE") == {pipeline: "ASSOCIATED"}
    assert consumer.get_resource_share_invitations(resourceShareArns=[arn])["resourceShareInvitations"] == []
    # The resource type's default permission was attached.
    permissions = owner.list_resource_share_permissions(resourceShareArn=arn)["permissions"]
    assert [(p["arn"], p["status"]) for p in permissions] == [(DEFAULT_PERMISSION, "ASSOCIATED")]
    assert consumer.list_resource_share_permissions(resourceShareArn=arn)["permissions"][0]["arn"] == \
        DEFAULT_PERMISSION

    # Both sides list it.
    mine = owner.get_resource_shares(resourceOwner="SELF", resourceShareArns=[arn])["resourceShares"]
    assert [s["name"] for s in mine] == [share["name"]]
    theirs = consumer.get_resource_shares(resourceOwner="OTHER-ACCOUNTS")["resourceShares"]
    assert arn in [s["resourceShareArn"] for s in theirs]
    assert owner.get_resource_shares(resourceOwner="SELF", tagFilters=[{"tagKey": "team", "tagValues": ["ml"]}],
                                     resourceShareArns=[arn])["resourceShares"]
    assert owner.get_resource_shares(resourceOwner="SELF", tagFilters=[{"tagKey": "team", "tagValues": ["x"]}],
                                     resourceShareArns=[arn])["resourceShares"] == []
    resources = consumer.list_resources(resourceOwner="OTHER-ACCOUNTS", resourceShareArns=[arn])["resources"]
    assert [(r["arn"], r["type"], r["status"]) for r in resources] == [(pipeline, "sagemaker:Pipeline", "AVAILABLE")]
    assert owner.list_resources(resourceOwner="SELF", principal=consumer_id,
                                resourceShareArns=[arn])["resources"][0]["arn"] == pipeline
    principals = owner.list_principals(resourceOwner="SELF", resourceShareArns=[arn])["principals"]
    assert [(p["id"], p["external"]) for p in principals] == [(consumer_id, False)]
    sharers = consumer.list_principals(resourceOwner="OTHER-ACCOUNTS", resourceShareArns=[arn])["principals"]
    assert [p["id"] for p in sharers] == [server.account_id("test")]

    # Permissions: one per resource type; replacing needs replace=True.
    expect_error("InvalidParameterException", owner.associate_resource_share_permission,
                 resourceShareArn=arn, permissionArn=EXECUTION_PERMISSION)
    assert owner.associate_resource_share_permission(resourceShareArn=arn, permissionArn=EXECUTION_PERMISSION,
                                                     replace=True)["returnValue"] is True
    assert [p["arn"] for p in owner.list_resource_share_permissions(resourceShareArn=arn)["permissions"]] == \
        [EXECUTION_PERMISSION]
    assert owner.get_resource_shares(resourceOwner="SELF", permissionArn=EXECUTION_PERMISSION,
                                     resourceShareArns=[arn])["resourceShares"]

    # Update, tag, untag.
    updated = owner.update_resource_share(resourceShareArn=arn, name="renamed", allowExternalPrincipals=False)
    assert updated["resourceShare"]["name"] == "renamed"
    assert updated["resourceShare"]["allowExternalPrincipals"] is False
    owner.tag_resource(resourceShareArn=arn, tags=[{"key": "stage", "value": "test"}])
    owner.untag_resource(resourceShareArn=arn, tagKeys=["team"])
    tags = owner.get_resource_shares(resourceOwner="SELF", resourceShareArns=[arn])["resourceShares"][0]["tags"]
    assert tags == [{"key": "stage", "value": "test"}]

    # Removing the principal: the consumer no longer sees the share.
    removed = owner.disassociate_resource_share(resourceShareArn=arn, principals=[consumer_id])
    assert [(a["associatedEntity"], a["status"]) for a in removed["resourceShareAssociations"]] == \
        [(consumer_id, "DISASSOCIATED")]
    assert arn not in [s["resourceShareArn"] for s in
                       consumer.get_resource_shares(resourceOwner="OTHER-ACCOUNTS")["resourceShares"]]
    assert associations(owner, arn, "PRINCIPAL") == {consumer_id: "DISASSOCIATED"}
    assert owner.get_resource_share_associations(associationType="PRINCIPAL", resourceShareArns=[arn],
                                                 associationStatus="ASSOCIATED")["resourceShareAssociations"] == []
    expect_error("UnknownResourceException", owner.disassociate_resource_share, resourceShareArn=arn,
                 principals=[consumer_id])
    # Re-adding flips the same association back.
    owner.associate_resource_share(resourceShareArn=arn, principals=[consumer_id])
    assert associations(owner, arn, "PRINCIPAL") == {consumer_id: "ASSOCIATED"}

    # Deleting: DELETED, every association DISASSOCIATED, and nothing more can be done with it.
    assert owner.delete_resource_share(resourceShareArn=arn)["returnValue"] is True
    deleted = owner.get_resource_shares(resourceOwner="SELF", resourceShareArns=[arn])["resourceShares"][0]
    assert deleted["status"] == "DELETED"
    assert set(associations(owner, arn, "RESOURCE").values()) == {"DISASSOCIATED"}
    assert owner.get_resource_shares(resourceOwner="SELF", resourceShareStatus="ACTIVE",
                                     resourceShareArns=[arn])["resourceShares"] == []
    expect_error("UnknownResourceException", owner.delete_resource_share, resourceShareArn=arn)
    expect_error("UnknownResourceException", owner.associate_resource_share, resourceShareArn=arn,
                 principals=[consumer_id])


def test_sharing_with_the_organization(server: StratumServer) -> None:
    from sqlalchemy import select

    from stratum.services.organizations.tables import organizations
    from stratum.store.db import Database

    db = Database(server.database_url or f"sqlite:///{server.data_dir / 'stratum.db'}")
    try:
        with db.read() as conn:
            org = conn.execute(select(organizations)).mappings().one()
    finally:
        db.dispose()
    org_arn = f"arn:aws:organizations::{org['management_account_id']}:organization/{org['id']}"
    owner = server.client("ram", "test")
    pipeline = create_pipeline(server, "test")
    arn = owner.create_resource_share(name=_uid("org"), resourceArns=[pipeline], principals=[org_arn],
                                      allowExternalPrincipals=False)["resourceShare"]["resourceShareArn"]
    assert associations(owner, arn, "PRINCIPAL") == {org_arn: "ASSOCIATED"}
    for account in ("prod", "hub"):
        assert server.client("sagemaker", account).describe_pipeline(PipelineName=pipeline)["PipelineArn"] == pipeline
    expect_error("UnknownResourceException", owner.create_resource_share, name="other-org",
                 principals=["arn:aws:organizations::123456789012:organization/o-abcdefghij"])
    # A standalone account is outside: refused when the share keeps external principals out.
    outsider = standalone_account(server)
    expect_error("OperationNotPermittedException", owner.associate_resource_share, resourceShareArn=arn,
                 principals=[outsider["id"]])
    expect_error("ResourceNotFound", server.client("sagemaker", **creds_of(outsider)).describe_pipeline,
                 PipelineName=pipeline)
    owner.delete_resource_share(resourceShareArn=arn)


def test_enable_sharing_requires_the_management_account(server: StratumServer) -> None:
    msg = expect_error("OperationNotPermittedException",
                       server.client("ram", "test").enable_sharing_with_aws_organization)
    assert "management account" in msg
    assert server.client("ram", "dev").enable_sharing_with_aws_organization()["returnValue"] is True
    outsider = standalone_account(server)
    expect_error("OperationNotPermittedException",
                 server.client("ram", **creds_of(outsider)).enable_sharing_with_aws_organization)


def test_deleting_a_shared_pipeline_ends_its_share(server: StratumServer) -> None:
    owner_sm = server.client("sagemaker", "test")
    consumer_sm = server.client("sagemaker", "shared-services")
    ram = server.client("ram", "test")
    pipeline = create_pipeline(server, "test")
    name = pipeline.rpartition("/")[2]
    arn = ram.create_resource_share(name=_uid("gone"), resourceArns=[pipeline],
                                    principals=[server.account_id("shared-services")])["resourceShare"][
        "resourceShareArn"]
    assert consumer_sm.describe_pipeline(PipelineName=pipeline)["PipelineArn"] == pipeline
    owner_sm.delete_pipeline(PipelineName=name, ClientRequestToken=uuid.uuid4().hex)
    assert associations(ram, arn, "RESOURCE") == {pipeline: "DISASSOCIATED"}
    # A new pipeline under the same name is not shared by the old share.
    owner_sm.create_pipeline(PipelineName=name, PipelineDefinition=DEFINITION,
                             RoleArn=f"arn:aws:iam::{server.account_id('test')}:role/pipeline")
    expect_error("ResourceNotFound", consumer_sm.describe_pipeline, PipelineName=pipeline)
    ram.delete_resource_share(resourceShareArn=arn)


# --------------------------------------------------------------------------------- invitations
def test_invitations_for_an_account_outside_the_organization(server: StratumServer) -> None:
    owner = server.client("ram", "test")
    outsider = standalone_account(server)
    guest_ram = server.client("ram", **creds_of(outsider))
    guest_sm = server.client("sagemaker", **creds_of(outsider))
    pipeline = create_pipeline(server, "test")

    msg = expect_error("OperationNotPermittedException", owner.create_resource_share, name=_uid("closed"),
                       resourceArns=[pipeline], principals=[outsider["id"]], allowExternalPrincipals=False)
    assert outsider["id"] in msg
    arn = owner.create_resource_share(name=_uid("open"), resourceArns=[pipeline],
                                      principals=[outsider["id"]])["resourceShare"]["resourceShareArn"]
    assert associations(owner, arn, "PRINCIPAL") == {outsider["id"]: "ASSOCIATING"}
    principal = owner.list_principals(resourceOwner="SELF", resourceShareArns=[arn])["principals"][0]
    assert principal["external"] is True

    invitations = guest_ram.get_resource_share_invitations()["resourceShareInvitations"]
    assert len(invitations) == 1
    invitation = invitations[0]
    assert invitation["status"] == "PENDING" and invitation["resourceShareArn"] == arn
    assert invitation["senderAccountId"] == server.account_id("test")
    assert invitation["receiverAccountId"] == outsider["id"]
    inv_arn = invitation["resourceShareInvitationArn"]
    assert inv_arn.startswith(f"arn:aws:ram:{REGION}:{server.account_id('test')}:resource-share-invitation/")
    pending = guest_ram.list_pending_invitation_resources(resourceShareInvitationArn=inv_arn)["resources"]
    assert [r["arn"] for r in pending] == [pipeline]

    # Not before the invitation is accepted.
    expect_error("ResourceNotFound", guest_sm.describe_pipeline, PipelineName=pipeline)
    assert guest_ram.get_resource_shares(resourceOwner="OTHER-ACCOUNTS")["resourceShares"] == []
    # Only the receiver answers.
    expect_error("ResourceShareInvitationArnNotFoundException",
                 server.client("ram", "shared-services").accept_resource_share_invitation,
                 resourceShareInvitationArn=inv_arn)
    expect_error("MalformedArnException", guest_ram.accept_resource_share_invitation,
                 resourceShareInvitationArn="arn:aws:ram:us-east-1:123:nope")

    accepted = guest_ram.accept_resource_share_invitation(resourceShareInvitationArn=inv_arn)
    assert accepted["resourceShareInvitation"]["status"] == "ACCEPTED"
    assert associations(owner, arn, "PRINCIPAL") == {outsider["id"]: "ASSOCIATED"}
    assert guest_sm.describe_pipeline(PipelineName=pipeline)["PipelineArn"] == pipeline
    assert [s["resourceShareArn"] for s in
            guest_ram.get_resource_shares(resourceOwner="OTHER-ACCOUNTS")["resourceShares"]] == [arn]
    expect_error("ResourceShareInvitationAlreadyAcceptedException", guest_ram.accept_resource_share_invitation,
                 resourceShareInvitationArn=inv_arn)
    expect_error("ResourceShareInvitationAlreadyAcceptedException", guest_ram.reject_resource_share_invitation,
                 resourceShareInvitationArn=inv_arn)
    # allowExternalPrincipals cannot be turned off while an outsider is a principal.
    expect_error("OperationNotPermittedException", owner.update_resource_share, resourceShareArn=arn,
                 allowExternalPrincipals=False)

    # A second share, rejected.
    second = owner.create_resource_share(name=_uid("second"), resourceArns=[pipeline],
                                         principals=[outsider["id"]])["resourceShare"]["resourceShareArn"]
    second_inv = guest_ram.get_resource_share_invitations(resourceShareArns=[second])["resourceShareInvitations"]
    rejected = guest_ram.reject_resource_share_invitation(
        resourceShareInvitationArn=second_inv[0]["resourceShareInvitationArn"])
    assert rejected["resourceShareInvitation"]["status"] == "REJECTED"
    assert associations(owner, second, "PRINCIPAL") == {outsider["id"]: "DISASSOCIATED"}
    expect_error("ResourceShareInvitationAlreadyRejectedException", guest_ram.accept_resource_share_invitation,
                 resourceShareInvitationArn=second_inv[0]["resourceShareInvitationArn"])

    # A third, left unanswered for more than seven days, expires.
    third = owner.create_resource_share(name=_uid("third"), resourceArns=[pipeline],
                                        principals=[outsider["id"]])["resourceShare"]["resourceShareArn"]
    third_inv = guest_ram.get_resource_share_invitations(resourceShareArns=[third])["resourceShareInvitations"][0]
    _age_invitation(server, third_inv["resourceShareInvitationArn"], timedelta(days=7, minutes=1))
    aged = guest_ram.get_resource_share_invitations(resourceShareArns=[third])["resourceShareInvitations"][0]
    assert aged["status"] == "EXPIRED"
    expect_error("ResourceShareInvitationExpiredException", guest_ram.accept_resource_share_invitation,
                 resourceShareInvitationArn=third_inv["resourceShareInvitationArn"])

    # Removing the principal revokes at once.
    owner.disassociate_resource_share(resourceShareArn=arn, principals=[outsider["id"]])
    expect_error("ResourceNotFound", guest_sm.describe_pipeline, PipelineName=pipeline)
    # Re-adding an outsider sends a new invitation.
    owner.associate_resource_share(resourceShareArn=arn, principals=[outsider["id"]])
    statuses = [i["status"] for i in guest_ram.get_resource_share_invitations(
        resourceShareArns=[arn])["resourceShareInvitations"]]
    assert sorted(statuses) == ["ACCEPTED", "PENDING"]
    for share in (arn, second, third):
        owner.delete_resource_share(resourceShareArn=share)
    # Deleting the share withdraws the unanswered invitation.
    assert [i["status"] for i in guest_ram.get_resource_share_invitations(
        resourceShareArns=[arn])["resourceShareInvitations"]] == ["ACCEPTED"]


def _age_invitation(server: StratumServer, arn: str, age: timedelta) -> None:
    """Move an invitation's timestamp into the past (the clock a real wait would advance)."""
    from sqlalchemy import select, update

    from stratum.services.ram.tables import ram_invitations
    from stratum.store.db import Database

    db = Database(server.database_url or f"sqlite:///{server.data_dir / 'stratum.db'}")
    try:
        with db.begin() as conn:
            created = conn.execute(select(ram_invitations.c.created_at).where(ram_invitations.c.arn == arn)).scalar_one()
            conn.execute(update(ram_invitations).where(ram_invitations.c.arn == arn).values(created_at=created - age))
    finally:
        db.dispose()


# ------------------------------------------------------------------------------------- errors
def test_owner_can_share_only_what_it_owns(server: StratumServer) -> None:
    owner = server.client("ram", "test")
    consumer_id = server.account_id("shared-services")
    foreign = create_pipeline(server, "dev")
    msg = expect_error("OperationNotPermittedException", owner.create_resource_share, name="steal",
                       resourceArns=[foreign], principals=[consumer_id])
    assert foreign in msg
    assert server.client("ram", "test").get_resource_shares(resourceOwner="SELF", name="steal")[
        "resourceShares"] == []  # the failed create left nothing behind
    missing = f"arn:aws:sagemaker:{REGION}:{server.account_id('test')}:pipeline/{_uid('missing')}"
    expect_error("UnknownResourceException", owner.create_resource_share, name="x", resourceArns=[missing])
    expect_error("MalformedArnException", owner.create_resource_share, name="x", resourceArns=["pipeline/x"])
    bucket = f"arn:aws:s3:::{_uid('bucket')}"
    expect_error("InvalidParameterException", owner.create_resource_share, name="x", resourceArns=[bucket])
    other_region = f"arn:aws:sagemaker:eu-west-1:{server.account_id('test')}:pipeline/x"
    expect_error("InvalidParameterException", owner.create_resource_share, name="x", resourceArns=[other_region])
    expect_error("InvalidParameterException", owner.create_resource_share, name="x", principals=["12345"])
    expect_error("InvalidParameterException", owner.create_resource_share, name="x",
                 principals=[server.account_id("test")])
    expect_error("InvalidParameterException", owner.get_resource_shares, resourceOwner="EVERYONE")
    expect_error("InvalidParameterException", owner.get_resource_share_associations, associationType="PRINCIPAL",
                 resourceArn=foreign)

    # Someone else's share is as unknown as a missing one; malformed ARNs are MalformedArn.
    arn = owner.create_resource_share(name=_uid("mine"))["resourceShare"]["resourceShareArn"]
    dev = server.client("ram", "dev")
    for call in (lambda: dev.update_resource_share(resourceShareArn=arn, name="x"),
                 lambda: dev.delete_resource_share(resourceShareArn=arn),
                 lambda: dev.associate_resource_share(resourceShareArn=arn, principals=[consumer_id]),
                 lambda: dev.list_resource_share_permissions(resourceShareArn=arn)):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_of(exc)[0] == "UnknownResourceException"
    expect_error("MalformedArnException", owner.update_resource_share, resourceShareArn="arn:aws:ram:x", name="y")
    unknown = f"arn:aws:ram:{REGION}:{server.account_id('test')}:resource-share/{uuid.uuid4()}"
    expect_error("UnknownResourceException", owner.delete_resource_share, resourceShareArn=unknown)
    expect_error("InvalidParameterException", owner.associate_resource_share, resourceShareArn=arn)
    expect_error("MalformedArnException", owner.get_resource_shares, resourceOwner="SELF",
                 resourceShareArns=["nope"])
    owner.delete_resource_share(resourceShareArn=arn)


def test_client_token_makes_calls_idempotent(server: StratumServer) -> None:
    owner = server.client("ram", "test")
    token = str(uuid.uuid4())
    name = _uid("idem")
    first = owner.create_resource_share(name=name, clientToken=token)
    again = owner.create_resource_share(name=name, clientToken=token)
    assert again["resourceShare"]["resourceShareArn"] == first["resourceShare"]["resourceShareArn"]
    assert again["clientToken"] == token
    assert len(owner.get_resource_shares(resourceOwner="SELF", name=name)["resourceShares"]) == 1
    expect_error("IdempotentParameterMismatchException", owner.create_resource_share, name=name + "-x",
                 clientToken=token)
    arn = first["resourceShare"]["resourceShareArn"]
    delete_token = str(uuid.uuid4())
    assert owner.delete_resource_share(resourceShareArn=arn, clientToken=delete_token)["returnValue"] is True
    assert owner.delete_resource_share(resourceShareArn=arn, clientToken=delete_token)["clientToken"] == delete_token


def test_pagination(server: StratumServer) -> None:
    owner = server.client("ram", "test")
    prefix = _uid("page")
    arns = [owner.create_resource_share(name=f"{prefix}-{i}", tags=[{"key": "batch", "value": prefix}])[
        "resourceShare"]["resourceShareArn"] for i in range(3)]
    filters = {"resourceOwner": "SELF", "tagFilters": [{"tagKey": "batch", "tagValues": [prefix]}]}
    first = owner.get_resource_shares(maxResults=2, **filters)
    assert len(first["resourceShares"]) == 2 and first["nextToken"]
    second = owner.get_resource_shares(maxResults=2, nextToken=first["nextToken"], **filters)
    assert len(second["resourceShares"]) == 1 and "nextToken" not in second
    seen = [s["resourceShareArn"] for s in first["resourceShares"] + second["resourceShares"]]
    assert seen == arns
    paginated = [s["resourceShareArn"] for p in owner.get_paginator("get_resource_shares").paginate(
        PaginationConfig={"PageSize": 1}, **filters) for s in p["resourceShares"]]
    assert paginated == arns
    expect_error("InvalidNextTokenException", owner.get_resource_shares, nextToken="garbage", **filters)
    expect_error("InvalidNextTokenException", owner.get_resource_shares, resourceOwner="SELF",
                 nextToken=first["nextToken"])
    for arn in arns:
        owner.delete_resource_share(resourceShareArn=arn)


def test_ram_calls_are_authorized(server: StratumServer) -> None:
    iam = server.client("iam", "test")
    user = _uid("ram-user")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="read-and-tag-guarded", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["ram:Get*", "ram:List*", "ram:CreateResourceShare"], "Resource": "*"},
            {"Effect": "Allow", "Action": "ram:DeleteResourceShare", "Resource": "*",
             "Condition": {"StringEquals": {"aws:ResourceTag/owner": user}}}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    ram = server.client("ram", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    assert "resourceShares" in ram.get_resource_shares(resourceOwner="SELF")
    mine = ram.create_resource_share(name=_uid("tagged"), tags=[{"key": "owner", "value": user}])
    theirs = ram.create_resource_share(name=_uid("untagged"))
    msg = expect_error("AccessDeniedException", ram.update_resource_share,
                       resourceShareArn=mine["resourceShare"]["resourceShareArn"], name="x")
    assert "ram:UpdateResourceShare" in msg
    expect_error("AccessDeniedException", ram.delete_resource_share,
                 resourceShareArn=theirs["resourceShare"]["resourceShareArn"])
    assert ram.delete_resource_share(resourceShareArn=mine["resourceShare"]["resourceShareArn"])["returnValue"]
    expect_error("AccessDeniedException", ram.enable_sharing_with_aws_organization)
    server.client("ram", "test").delete_resource_share(resourceShareArn=theirs["resourceShare"]["resourceShareArn"])


def test_aws_cli(server: StratumServer) -> None:
    pipeline = create_pipeline(server, "test")
    consumer_id = server.account_id("shared-services")
    out = server.aws_cli("ram", "create-resource-share", "--name", _uid("cli"), "--resource-arns", pipeline,
                         "--principals", consumer_id, "--permission-arns", EXECUTION_PERMISSION, account="test")
    arn = json.loads(out.stdout)["resourceShare"]["resourceShareArn"]
    listed = json.loads(server.aws_cli("ram", "list-resources", "--resource-owner", "OTHER-ACCOUNTS",
                                       "--resource-share-arns", arn, account="shared-services").stdout)
    assert [r["arn"] for r in listed["resources"]] == [pipeline]
    perms = json.loads(server.aws_cli("ram", "list-resource-share-permissions", "--resource-share-arn", arn,
                                      account="test").stdout)
    assert perms["permissions"][0]["arn"] == EXECUTION_PERMISSION
    failed = server.aws_cli("ram", "delete-resource-share", "--resource-share-arn", arn, account="dev", check=False)
    assert failed.returncode != 0 and "UnknownResourceException" in failed.stderr
    deleted = json.loads(server.aws_cli("ram", "delete-resource-share", "--resource-share-arn", arn,
                                        account="test").stdout)
    assert deleted["returnValue"] is True
