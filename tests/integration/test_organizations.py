"""AWS Organizations through boto3: the organization Stratum models, read and managed with the
management account's authority (members may only DescribeOrganization), organizational units from
the bootstrap file and the API, CreateAccount, trusted service access for RAM, and RAM shares to an
OU or the organization addressed by what this API returns."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stratum_testing import BACKENDS, StratumServer, close_server, make_server

BOOTSTRAP = """
organization:
  ram_sharing: true
accounts:
  - {name: management, id: "111111111111"}
  - {name: dev, id: "222222222222", ou: Workloads/Dev}
  - {name: prod, id: "333333333333", ou: Workloads/Prod}
  - {name: hub, id: "444444444444"}
"""
DEFINITION = json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": [
    {"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "stop"}}]})
DENIED = "You don't have permissions to access this resource."


@pytest.fixture(scope="module", params=BACKENDS)
def org_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    spec = Path(tmp_path_factory.mktemp("org-bootstrap")) / "accounts.yaml"
    spec.write_text(BOOTSTRAP)
    server = make_server(tmp_path_factory, request.param, ["--bootstrap", str(spec)])
    server.start()
    yield server
    close_server(server)


def orgs(server: StratumServer, account: str = "management", region: str = "us-east-1") -> Any:
    return server.session(account).client("organizations", endpoint_url=server.endpoint_url, region_name=region)


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def _root(client: Any) -> dict[str, Any]:
    roots = client.list_roots()["Roots"]
    assert len(roots) == 1
    return roots[0]


def _unit(client: Any, parent: str, name: str) -> dict[str, Any]:
    units = {u["Name"]: u for u in client.list_organizational_units_for_parent(ParentId=parent)["OrganizationalUnits"]}
    return units[name]


def test_management_account_reads_the_organization(org_server: StratumServer) -> None:
    client = orgs(org_server)
    org = client.describe_organization()["Organization"]
    assert org["Id"].startswith("o-") and org["MasterAccountId"] == "111111111111"
    assert org["Arn"] == f"arn:aws:organizations::111111111111:organization/{org['Id']}"
    assert org["MasterAccountArn"] == f"arn:aws:organizations::111111111111:account/{org['Id']}/111111111111"
    assert org["FeatureSet"] == "ALL"
    root = _root(client)
    assert root["Id"].startswith("r-") and root["Name"] == "Root"
    assert root["Arn"] == f"arn:aws:organizations::111111111111:root/{org['Id']}/{root['Id']}"
    listed = client.list_accounts()["Accounts"]
    assert {a["Name"]: a["Id"] for a in listed} == {
        "management": "111111111111", "dev": "222222222222", "prod": "333333333333", "hub": "444444444444"}
    dev = client.describe_account(AccountId="222222222222")["Account"]
    assert dev["Arn"] == f"arn:aws:organizations::111111111111:account/{org['Id']}/222222222222"
    assert (dev["Status"], dev["State"], dev["Email"]) == ("ACTIVE", "ACTIVE", "dev@stratum.local")
    assert error_of(client.describe_account, AccountId="999999999999")[0] == "AccountNotFoundException"
    assert error_of(client.describe_account, AccountId="not-an-id")[0] == "InvalidInputException"
    # Pages of MaxResults with a NextToken, as the SDK's paginator walks them.
    pages = list(client.get_paginator("list_accounts").paginate(PaginationConfig={"PageSize": 3}))
    assert [len(p["Accounts"]) for p in pages] == [3, 1]
    # A client in another region reaches the same (global) organization.
    assert orgs(org_server, region="eu-west-1").describe_organization()["Organization"]["Id"] == org["Id"]
    # The AWS CLI, with the account's environment.
    out = json.loads(org_server.aws_cli("organizations", "list-roots", "--output", "json", account="management").stdout)
    assert out["Roots"][0]["Id"] == root["Id"]


def test_bootstrap_file_places_accounts_in_units(org_server: StratumServer) -> None:
    client = orgs(org_server)
    root = _root(client)
    workloads = _unit(client, root["Id"], "Workloads")
    assert workloads["Path"] == f"{workloads['Arn'].split('/')[1]}/{root['Id']}/{workloads['Id']}/"
    dev_ou = _unit(client, workloads["Id"], "Dev")
    assert [a["Id"] for a in client.list_accounts_for_parent(ParentId=dev_ou["Id"])["Accounts"]] == ["222222222222"]
    assert client.list_parents(ChildId="222222222222")["Parents"] == [{"Id": dev_ou["Id"], "Type": "ORGANIZATIONAL_UNIT"}]
    assert client.list_parents(ChildId=workloads["Id"])["Parents"] == [{"Id": root["Id"], "Type": "ROOT"}]
    assert client.list_parents(ChildId="444444444444")["Parents"] == [{"Id": root["Id"], "Type": "ROOT"}]
    children = client.list_children(ParentId=root["Id"], ChildType="ACCOUNT")["Children"]
    assert {c["Id"] for c in children} >= {"111111111111", "444444444444"} and "222222222222" not in {
        c["Id"] for c in children}
    assert client.list_children(ParentId=workloads["Id"], ChildType="ORGANIZATIONAL_UNIT")["Children"] == [
        {"Id": dev_ou["Id"], "Type": "ORGANIZATIONAL_UNIT"},
        {"Id": _unit(client, workloads["Id"], "Prod")["Id"], "Type": "ORGANIZATIONAL_UNIT"}]


def test_units_are_created_moved_into_and_deleted(org_server: StratumServer) -> None:
    client = orgs(org_server)
    root = _root(client)
    name = f"Sandbox-{uuid.uuid4().hex[:6]}"
    ou = client.create_organizational_unit(ParentId=root["Id"], Name=name)["OrganizationalUnit"]
    assert ou["Id"].startswith(f"ou-{root['Id'][2:]}-") and ou["Name"] == name
    assert client.describe_organizational_unit(OrganizationalUnitId=ou["Id"])["OrganizationalUnit"] == ou
    assert error_of(client.create_organizational_unit, ParentId=root["Id"], Name=name)[0] == \
        "DuplicateOrganizationalUnitException"
    assert error_of(client.create_organizational_unit, ParentId="ou-zzzz-zzzzzzzz", Name="x")[0] == \
        "ParentNotFoundException"
    client.move_account(AccountId="444444444444", SourceParentId=root["Id"], DestinationParentId=ou["Id"])
    assert [a["Id"] for a in client.list_accounts_for_parent(ParentId=ou["Id"])["Accounts"]] == ["444444444444"]
    assert error_of(client.move_account, AccountId="444444444444", SourceParentId=ou["Id"],
                    DestinationParentId=ou["Id"])[0] == "DuplicateAccountException"
    assert error_of(client.move_account, AccountId="444444444444", SourceParentId=root["Id"],
                    DestinationParentId=ou["Id"])[0] == "AccountNotFoundException"
    assert error_of(client.delete_organizational_unit, OrganizationalUnitId=ou["Id"])[0] == \
        "OrganizationalUnitNotEmptyException"
    client.move_account(AccountId="444444444444", SourceParentId=ou["Id"], DestinationParentId=root["Id"])
    client.delete_organizational_unit(OrganizationalUnitId=ou["Id"])
    assert error_of(client.describe_organizational_unit, OrganizationalUnitId=ou["Id"])[0] == \
        "OrganizationalUnitNotFoundException"


def test_member_accounts_may_only_describe_the_organization(org_server: StratumServer) -> None:
    management_view = orgs(org_server).describe_organization()["Organization"]
    member = orgs(org_server, "dev")
    assert member.describe_organization()["Organization"]["Id"] == management_view["Id"]
    root_id = _root(orgs(org_server))["Id"]
    for call, kwargs in ((member.list_accounts, {}), (member.list_roots, {}),
                         (member.describe_account, {"AccountId": "222222222222"}),
                         (member.create_organizational_unit, {"ParentId": root_id, "Name": "Mine"}),
                         (member.create_account, {"Email": "x@example.com", "AccountName": "x"}),
                         (member.list_aws_service_access_for_organization, {})):
        assert error_of(call, **kwargs) == ("AccessDeniedException", DENIED)


def test_identity_policy_governs_organizations_actions(org_server: StratumServer) -> None:
    """An IAM user of the management account without organizations permissions is refused by IAM."""
    iam = org_server.client("iam", "management")
    user = f"reader-{uuid.uuid4().hex[:6]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="describe-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "organizations:Describe*",
                                                "Resource": "*"}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    client = org_server.session("management", aws_access_key_id=key["AccessKeyId"],
                                aws_secret_access_key=key["SecretAccessKey"]).client(
        "organizations", endpoint_url=org_server.endpoint_url, region_name="us-east-1")
    assert client.describe_organization()["Organization"]["MasterAccountId"] == "111111111111"
    code, message = error_of(client.list_accounts)
    assert code == "AccessDeniedException" and "organizations:ListAccounts" in message


def test_create_account_and_its_access_role(org_server: StratumServer) -> None:
    client = orgs(org_server)
    name = f"team-{uuid.uuid4().hex[:6]}"
    status = client.create_account(Email=f"{name}@example.com", AccountName=name)["CreateAccountStatus"]
    assert status["State"] == "IN_PROGRESS" and status["Id"].startswith("car-")
    done = client.describe_create_account_status(CreateAccountRequestId=status["Id"])["CreateAccountStatus"]
    assert done["State"] == "SUCCEEDED" and len(done["AccountId"]) == 12
    account = client.describe_account(AccountId=done["AccountId"])["Account"]
    assert (account["Name"], account["Email"]) == (name, f"{name}@example.com")
    assert _root(client)["Id"] in [p["Id"] for p in client.list_parents(ChildId=done["AccountId"])["Parents"]]
    # The management account administers the new account through OrganizationAccountAccessRole.
    creds = org_server.client("sts", "management").assume_role(
        RoleArn=f"arn:aws:iam::{done['AccountId']}:role/OrganizationAccountAccessRole",
        RoleSessionName="admin")["Credentials"]
    inside = org_server.client("sts", "management", aws_access_key_id=creds["AccessKeyId"],
                               aws_secret_access_key=creds["SecretAccessKey"],
                               aws_session_token=creds["SessionToken"])
    assert inside.get_caller_identity()["Account"] == done["AccountId"]
    # The same email again: the request fails as AWS reports it.
    again = client.create_account(Email=f"{name}@example.com", AccountName=f"{name}-2")["CreateAccountStatus"]
    failed = client.describe_create_account_status(CreateAccountRequestId=again["Id"])["CreateAccountStatus"]
    assert (failed["State"], failed["FailureReason"]) == ("FAILED", "EMAIL_ALREADY_EXISTS")
    taken = client.create_account(Email=f"other-{name}@example.com", AccountName=name)["CreateAccountStatus"]
    assert client.describe_create_account_status(CreateAccountRequestId=taken["Id"])["CreateAccountStatus"][
        "State"] == "FAILED"
    assert error_of(client.create_account, Email="not-an-email", AccountName="x")[0] == "InvalidInputException"
    listed = client.list_create_account_status(States=["FAILED"])["CreateAccountStatuses"]
    assert again["Id"] in [s["Id"] for s in listed] and status["Id"] not in [s["Id"] for s in listed]
    assert error_of(client.describe_create_account_status, CreateAccountRequestId="car-" + "0" * 32)[0] == \
        "CreateAccountStatusNotFoundException"


def test_trusted_access_for_ram(org_server: StratumServer) -> None:
    client = orgs(org_server)
    listed = client.list_aws_service_access_for_organization()["EnabledServicePrincipals"]
    assert "ram.amazonaws.com" in [p["ServicePrincipal"] for p in listed]  # ram_sharing: true
    client.enable_aws_service_access(ServicePrincipal="sagemaker.amazonaws.com")
    principals = [p["ServicePrincipal"] for p in client.list_aws_service_access_for_organization()[
        "EnabledServicePrincipals"]]
    assert principals == ["ram.amazonaws.com", "sagemaker.amazonaws.com"]
    client.disable_aws_service_access(ServicePrincipal="sagemaker.amazonaws.com")
    assert [p["ServicePrincipal"] for p in client.list_aws_service_access_for_organization()[
        "EnabledServicePrincipals"]] == ["ram.amazonaws.com"]


def _pipeline(server: StratumServer, account: str) -> str:
    return server.client("sagemaker", account).create_pipeline(
        PipelineName=f"shared-{uuid.uuid4().hex[:8]}", PipelineDefinition=DEFINITION,
        RoleArn=f"arn:aws:iam::{server.account_id(account)}:role/pipeline")["PipelineArn"]


def _can_describe(server: StratumServer, account: str, arn: str) -> bool:
    try:
        server.client("sagemaker", account).describe_pipeline(PipelineName=arn)
        return True
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in ("AccessDeniedException", "ResourceNotFound")
        return False


def test_ram_share_to_an_ou_read_through_organizations(org_server: StratumServer) -> None:
    management = orgs(org_server)
    root = _root(management)
    prod_ou = _unit(management, _unit(management, root["Id"], "Workloads")["Id"], "Prod")
    arn = _pipeline(org_server, "dev")
    ram = org_server.client("ram", "dev")
    share = ram.create_resource_share(name=f"to-prod-{uuid.uuid4().hex[:6]}", resourceArns=[arn],
                                      principals=[prod_ou["Arn"]])["resourceShare"]
    assert _can_describe(org_server, "prod", arn) and not _can_describe(org_server, "hub", arn)
    # An account moved into the OU is reached by the share at once; moved out, it is not.
    management.move_account(AccountId="444444444444", SourceParentId=root["Id"], DestinationParentId=prod_ou["Id"])
    try:
        assert _can_describe(org_server, "hub", arn)
    finally:
        management.move_account(AccountId="444444444444", SourceParentId=prod_ou["Id"],
                                DestinationParentId=root["Id"])
    assert not _can_describe(org_server, "hub", arn)
    # What RAM keeps for the shared pipeline, and the permission behind it.
    policies = ram.get_resource_policies(resourceArns=[arn])["policies"]
    statement = json.loads(policies[0])["Statement"][0]
    assert statement["Condition"]["ForAnyValue:StringLike"]["aws:PrincipalOrgPaths"].endswith(f"/{prod_ou['Id']}/*")
    assert "sagemaker:DescribePipeline" in statement["Action"]
    associations = ram.list_permission_associations(resourceShareArn=share["resourceShareArn"])["permissions"]
    assert [(a["arn"].rsplit("/", 1)[1], a["status"], a["defaultVersion"]) for a in associations] == [
        ("AWSRAMDefaultPermissionSageMakerPipeline", "ASSOCIATED", True)]
    versions = ram.list_permission_versions(permissionArn=associations[0]["arn"])["permissions"]
    assert [v["version"] for v in versions] == ["1"]
    received = org_server.client("ram", "prod").list_permission_associations(resourceOwner="OTHER-ACCOUNTS")
    assert share["resourceShareArn"] in [a["resourceShareArn"] for a in received["permissions"]]
    # An OU that does not exist (an id never returned by the API) is refused.
    org_id = management.describe_organization()["Organization"]["Id"]
    with pytest.raises(ClientError) as exc:
        ram.create_resource_share(name="nowhere", resourceArns=[arn], principals=[
            f"arn:aws:organizations::111111111111:ou/{org_id}/{root['Id'].replace('r-', 'ou-')}-zzzzzzzz"])
    assert exc.value.response["Error"]["Code"] == "UnknownResourceException"


def test_ram_share_to_the_organization_read_by_a_member(org_server: StratumServer) -> None:
    """A member reads its organization's ARN with DescribeOrganization and shares to it."""
    org_arn = orgs(org_server, "dev").describe_organization()["Organization"]["Arn"]
    arn = _pipeline(org_server, "dev")
    org_server.client("ram", "dev").create_resource_share(name=f"to-org-{uuid.uuid4().hex[:6]}",
                                                          resourceArns=[arn], principals=[org_arn])
    deadline = time.monotonic() + 5
    while not _can_describe(org_server, "hub", arn) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _can_describe(org_server, "hub", arn) and _can_describe(org_server, "prod", arn)


def test_delegated_administrator_reads_the_organization(org_server: StratumServer) -> None:
    management = orgs(org_server)
    hub = orgs(org_server, "hub")
    assert error_of(hub.list_accounts) == ("AccessDeniedException", DENIED)
    assert error_of(management.register_delegated_administrator, AccountId="111111111111",
                    ServicePrincipal="sagemaker.amazonaws.com")[0] == "ConstraintViolationException"
    assert error_of(hub.register_delegated_administrator, AccountId="444444444444",
                    ServicePrincipal="sagemaker.amazonaws.com") == ("AccessDeniedException", DENIED)
    management.register_delegated_administrator(AccountId="444444444444", ServicePrincipal="sagemaker.amazonaws.com")
    try:
        assert error_of(management.register_delegated_administrator, AccountId="444444444444",
                        ServicePrincipal="sagemaker.amazonaws.com")[0] == "AccountAlreadyRegisteredException"
        admins = management.list_delegated_administrators()["DelegatedAdministrators"]
        assert [(a["Id"], a["Name"]) for a in admins] == [("444444444444", "hub")] and admins[0]["DelegationEnabledDate"]
        services = hub.list_delegated_services_for_account(AccountId="444444444444")["DelegatedServices"]
        assert [s["ServicePrincipal"] for s in services] == ["sagemaker.amazonaws.com"]
        # Reads are the delegated administrator's too; changes stay the management account's.
        assert len(hub.list_accounts()["Accounts"]) >= 4
        root = _root(hub)
        assert _unit(hub, root["Id"], "Workloads")["Name"] == "Workloads"
        assert hub.describe_account(AccountId="333333333333")["Account"]["Name"] == "prod"
        assert error_of(hub.create_organizational_unit, ParentId=root["Id"], Name="Mine") == \
            ("AccessDeniedException", DENIED)
        assert error_of(hub.move_account, AccountId="444444444444", SourceParentId=root["Id"],
                        DestinationParentId=root["Id"]) == ("AccessDeniedException", DENIED)
    finally:
        management.deregister_delegated_administrator(AccountId="444444444444",
                                                      ServicePrincipal="sagemaker.amazonaws.com")
    assert error_of(hub.list_accounts) == ("AccessDeniedException", DENIED)
    assert error_of(management.list_delegated_services_for_account, AccountId="444444444444")[0] == \
        "AccountNotRegisteredException"
