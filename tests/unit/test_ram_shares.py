"""Share bookkeeping against a real (SQLite) store: who gets access, when, and when it ends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert

from stratum.protocol.errors import ServiceError
from stratum.services.organizations.accounts import ensure_organization
from stratum.services.organizations.tables import accounts
from stratum.services.ram import access, invitations, shares
from stratum.services.ram.membership import enable_sharing, membership
from stratum.services.sagemaker.pipelines import records as pl
from stratum.store.db import Database
from stratum.store.schema import load_all_tables

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
OWNER, MEMBER, OUTSIDER = "111111111111", "222222222222", "333333333333"
READ = "arn:aws:ram::aws:permission/AWSRAMDefaultPermissionSageMakerPipeline"
EXECUTE = "arn:aws:ram::aws:permission/AWSRAMPermissionSageMakerPipelineAllowExecution"


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[Connection]:
    db = Database(f"sqlite:///{tmp_path / 'ram.db'}")
    with db.begin() as c:
        load_all_tables().create_all(c)
        org = ensure_organization(c, OWNER, ram_sharing=True)
        for account, organization in ((OWNER, org), (MEMBER, org), (OUTSIDER, None)):
            c.execute(insert(accounts).values(id=account, name=f"a{account}", email="x@y", status="ACTIVE",
                                              organization_id=organization, created_at=NOW))
        yield c
    db.dispose()


def _pipeline(conn: Connection, name: str, account: str = OWNER) -> str:
    return pl.create_pipeline(
        conn, account=account, region="us-east-1", name=name, definition="{}", role_arn="arn:aws:iam::1:role/r",
        display_name=None, description=None, tags=[], parallelism=None, aliases=[],
        actor=pl.Actor("arn:aws:iam::1:user/a", "AIDA"), now=NOW)


def _share(conn: Connection, **kw: object) -> dict:
    return shares.create_share(conn, arn=shares.new_share_arn("us-east-1", OWNER), owner=OWNER, region="us-east-1",
                               name="s", allow_external=bool(kw.get("external", True)), tags=[], now=NOW)


def test_member_of_a_sharing_organization_gets_access_at_once(conn: Connection) -> None:
    arn = _pipeline(conn, "train")
    share = _share(conn)
    [resource] = shares.add_resources(conn, share, [arn.replace("/train", "/Train")], NOW)
    assert resource["associatedEntity"] == arn  # stored canonical
    [principal] = shares.add_principals(conn, share, [MEMBER], NOW)
    assert principal["status"] == "ASSOCIATED" and principal["external"] is False
    [grant] = access.grants(conn, MEMBER, arn)
    assert grant.permission_arn == READ  # the type's default permission was attached
    assert access.shared_resource_arns(conn, MEMBER, "us-east-1", "sagemaker:Pipeline", "sagemaker:Search") == [arn]
    assert access.shared_resource_arns(conn, MEMBER, "us-east-1", "sagemaker:Pipeline",
                                       "sagemaker:StartPipelineExecution") == []
    assert access.grants(conn, OUTSIDER, arn) == [] and access.grants(conn, OWNER, arn) == []

    shares.remove_principals(conn, share, [MEMBER], NOW)
    assert access.grants(conn, MEMBER, arn) == []


def test_outsider_needs_an_accepted_invitation(conn: Connection) -> None:
    arn = _pipeline(conn, "train")
    share = _share(conn)
    shares.add_resources(conn, share, [arn], NOW)
    [principal] = shares.add_principals(conn, share, [OUTSIDER], NOW)
    assert principal["status"] == "ASSOCIATING" and principal["external"] is True
    assert not access.is_shared_with(conn, OUTSIDER, arn)
    [row] = invitations.list_received(conn, OUTSIDER, "us-east-1", None, None)
    assert invitations.effective_status(row, NOW + timedelta(days=6)) == "PENDING"
    assert invitations.effective_status(row, NOW + timedelta(days=7)) == "EXPIRED"
    with pytest.raises(ServiceError) as exc:
        invitations.accept(conn, row, NOW + timedelta(days=8))
    assert exc.value.code == "ResourceShareInvitationExpiredException"
    invitations.accept(conn, row, NOW + timedelta(days=1))
    assert access.is_shared_with(conn, OUTSIDER, arn)
    shares.delete_share(conn, share, NOW)
    assert not access.is_shared_with(conn, OUTSIDER, arn)


def test_without_organization_sharing_members_are_invited_too(conn: Connection) -> None:
    from sqlalchemy import update

    from stratum.services.organizations.tables import organizations

    conn.execute(update(organizations).values(ram_sharing_enabled=False))
    assert not membership(conn, OWNER).sharing_enabled
    arn = _pipeline(conn, "train")
    share = _share(conn, external=False)
    shares.add_resources(conn, share, [arn], NOW)
    [principal] = shares.add_principals(conn, share, [MEMBER], NOW)
    # Same organization, so allowed with allowExternalPrincipals=false, but not yet in force.
    assert principal["status"] == "ASSOCIATING" and principal["external"] is False
    with pytest.raises(ServiceError) as exc:
        shares.add_principals(conn, share, [OUTSIDER], NOW)
    assert exc.value.code == "OperationNotPermittedException"
    enable_sharing(conn, membership(conn, OWNER).organization_id or "")
    org_arn = membership(conn, OWNER).organization_arn or ""
    shares.add_principals(conn, share, [org_arn], NOW)
    assert access.is_shared_with(conn, MEMBER, arn)  # through the organization principal
    assert not access.is_shared_with(conn, OUTSIDER, arn)


def test_permission_choice_and_the_policy_it_yields(conn: Connection) -> None:
    arn = _pipeline(conn, "train")
    share = _share(conn)
    shares.set_permission(conn, share, shares.find_permission(EXECUTE), replace=False, now=NOW)
    shares.add_resources(conn, share, [arn], NOW)
    shares.add_principals(conn, share, [MEMBER], NOW)
    policy = access.resource_policy(conn, MEMBER, arn)
    assert policy is not None
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"AWS": MEMBER}
    assert statement["Resource"] == [arn, arn + "/execution/*"]
    assert "sagemaker:StartPipelineExecution" in statement["Action"]
    with pytest.raises(ServiceError) as exc:
        shares.set_permission(conn, share, shares.find_permission(READ), replace=False, now=NOW)
    assert exc.value.code == "InvalidParameterException"
    with pytest.raises(ServiceError) as exc:
        shares.check_permission_list([READ, EXECUTE])
    assert exc.value.code == "InvalidParameterException"


def test_only_owned_resources_can_be_shared(conn: Connection) -> None:
    foreign = _pipeline(conn, "theirs", account=MEMBER)
    share = _share(conn)
    for arn, code in ((foreign, "OperationNotPermittedException"),
                      (foreign.replace(MEMBER, OWNER), "UnknownResourceException"),
                      (foreign + "/execution/abc", "OperationNotPermittedException"),
                      ("arn:aws:s3:::bucket", "InvalidParameterException"),
                      ("bucket", "MalformedArnException")):
        with pytest.raises(ServiceError) as exc:
            shares.add_resources(conn, share, [arn], NOW)
        assert exc.value.code == code, arn
