"""The AWS Organizations API (JSON 1.1, target AWSOrganizationsV20161128) over Stratum's organization.

Authority is AWS's: DescribeOrganization answers any member account; every other operation is the
management account's (a member gets AccessDeniedException "You don't have permissions to access
this resource."); an account outside any organization gets AWSOrganizationsNotInUseException. A member registered as a delegated administrator (for any
service) may also call the read operations (Describe*/List*). Each handler first asks IAM for
``organizations:<Operation>``.

Organizations is a global service (the SDK signs for us-east-1 whatever the client's region):
its state is the same from every region.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, insert, select

from stratum import ids
from stratum.protocol.errors import ServiceError
from stratum.server.context import Provider, RequestContext
from stratum.services.iam import store as iam
from stratum.services.iam.managed_policies import managed_policy_arn
from stratum.services.organizations import accounts as account_store
from stratum.services.organizations import delegation, structure
from stratum.services.organizations.structure import Organization
from stratum.services.organizations.tables import (
    accounts,
    organization_create_account_requests,
    organization_service_access,
    organizations,
)

ACTION = "organizations:"
RAM_PRINCIPAL = "ram.amazonaws.com"
DEFAULT_ACCESS_ROLE = "OrganizationAccountAccessRole"
MEMBER, READ, MANAGEMENT = "member", "read", "management"
_EMAIL = re.compile(r"^[^\s@]+@[^\s@]+\.[^\s@]+$")
_SERVICE_PRINCIPAL = re.compile(r"^[\w+=,.@-]*$")
_OU_ID = re.compile(r"^ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}$")
_ROOT_ID = re.compile(r"^r-[0-9a-z]{4,32}$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")


# ---------------------------------------------------------------------------------------- errors
def _error(code: str, message: str) -> ServiceError:
    return ServiceError(code, message, 400)


def not_in_use() -> ServiceError:
    return _error("AWSOrganizationsNotInUseException", "Your account is not a member of an organization.")


def access_denied() -> ServiceError:
    return _error("AccessDeniedException", "You don't have permissions to access this resource.")


def invalid_input(message: str, reason: str) -> ServiceError:
    return ServiceError("InvalidInputException", message, 400, fields={"Reason": reason})


def _parent_not_found(code: str = "ParentNotFoundException") -> ServiceError:
    return _error(code, "We can't find a root or OU with the ParentId that you specified.")


# ---------------------------------------------------------------------------------------- paging
def _page(items: list[Any], params: dict[str, Any], operation: str) -> tuple[list[Any], str | None]:
    start = 0
    token = params.get("NextToken")
    if token:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
            if decoded.get("op") != operation or not isinstance(decoded.get("start"), int):
                raise ValueError
            start = decoded["start"]
        except (ValueError, binascii.Error, AttributeError):
            raise invalid_input("The specified NextToken is not valid.", "INVALID_NEXT_TOKEN") from None
    size = params.get("MaxResults") or 20
    end = start + size
    if end >= len(items):
        return items[start:], None
    return items[start:end], base64.urlsafe_b64encode(json.dumps({"op": operation, "start": end}).encode()).decode()


# ----------------------------------------------------------------------------------------- views
def account_view(org: Organization, row: dict[str, Any]) -> dict[str, Any]:
    return {"Id": row["id"], "Arn": org.account_arn(row["id"]), "Email": row["email"], "Name": row["name"],
            "Status": row["status"], "State": row["status"], "JoinedMethod": "CREATED",
            "JoinedTimestamp": row["created_at"]}


def unit_view(conn: Connection, org: Organization, row: dict[str, Any]) -> dict[str, Any]:
    return {"Id": row["id"], "Arn": org.ou_arn(row["id"]), "Name": row["name"],
            "Path": structure.path_of(conn, org, row["id"])}


def status_view(row: dict[str, Any]) -> dict[str, Any]:
    out = {"Id": row["id"], "AccountName": row["account_name"], "State": row["state"],
           "RequestedTimestamp": row["requested_at"]}
    if row["completed_at"] is not None:
        out["CompletedTimestamp"] = row["completed_at"]
    if row["account_id"]:
        out["AccountId"] = row["account_id"]
    if row["failure_reason"]:
        out["FailureReason"] = row["failure_reason"]
    return out


class OrganizationsProvider(Provider):
    service = "organizations"

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.app.db.read() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.app.db.begin() as conn:
            yield conn

    def _org(self, ctx: RequestContext, conn: Connection, operation: str,
             resource: Callable[[Organization], str] | None = None, *, access: str = MANAGEMENT) -> Organization:
        """Authorize ``operation`` (on the ARN ``resource`` gives, else "*") for the caller, then
        find its organization: any member may call a MEMBER operation, the management account and
        delegated administrators a READ one, only the management account the others."""
        org = structure.organization_of(conn, ctx.account_id)
        ctx.authorize(ACTION + operation, resource(org) if resource is not None and org is not None else "*")
        if org is None:
            raise not_in_use()
        if access == MEMBER or ctx.account_id == org.management_account_id:
            return org
        if access == READ and delegation.is_delegated_administrator(conn, org, ctx.account_id):
            return org
        raise access_denied()

    # ---------------------------------------------------------------------------- organization
    def describe_organization(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._read() as conn:
            org = self._org(ctx, conn, "DescribeOrganization", lambda o: o.arn, access=MEMBER)
            management = structure.member(conn, org, org.management_account_id) or {}
        return {"Organization": {
            "Id": org.id, "Arn": org.arn, "FeatureSet": org.feature_set,
            "MasterAccountArn": org.account_arn(org.management_account_id),
            "MasterAccountId": org.management_account_id, "MasterAccountEmail": management.get("email", ""),
            "AvailablePolicyTypes": [{"Type": "SERVICE_CONTROL_POLICY", "Status": "ENABLED"}]}}

    def list_roots(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._read() as conn:
            org = self._org(ctx, conn, "ListRoots", access=READ)
        roots = [{"Id": org.root_id, "Arn": org.root_arn, "Name": structure.ROOT_NAME, "PolicyTypes": []}]
        items, token = _page(roots, params, "ListRoots")
        return {"Roots": items, "NextToken": token}

    # -------------------------------------------------------------------------------- accounts
    def list_accounts(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._read() as conn:
            org = self._org(ctx, conn, "ListAccounts", access=READ)
            found = [account_view(org, a) for a in structure.members(conn, org)]
        items, token = _page(found, params, "ListAccounts")
        return {"Accounts": items, "NextToken": token}

    def describe_account(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        account_id = params["AccountId"]
        with self._read() as conn:
            org = self._org(ctx, conn, "DescribeAccount", lambda o: o.account_arn(account_id), access=READ)
            row = structure.member(conn, org, account_id)
        if row is None:
            raise _error("AccountNotFoundException",
                         "You specified an account that doesn't exist.")
        return {"Account": account_view(org, row)}

    def list_accounts_for_parent(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        parent_id = params["ParentId"]
        with self._read() as conn:
            org = self._org(ctx, conn, "ListAccountsForParent", access=READ)
            if not structure.is_parent(conn, org, parent_id):
                raise _parent_not_found()
            found = [account_view(org, a) for a in structure.accounts_under(conn, org, parent_id)]
        items, token = _page(found, params, "ListAccountsForParent")
        return {"Accounts": items, "NextToken": token}

    def move_account(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        account_id, source, destination = params["AccountId"], params["SourceParentId"], params["DestinationParentId"]
        with self._write() as conn:
            org = self._org(ctx, conn, "MoveAccount", lambda o: o.account_arn(account_id))
            if structure.member(conn, org, account_id) is None:
                raise _error("AccountNotFoundException", "You specified an account that doesn't exist.")
            if not structure.is_parent(conn, org, source):
                raise _error("SourceParentNotFoundException",
                             "We can't find a source root or OU with the ParentId that you specified.")
            if not structure.is_parent(conn, org, destination):
                raise _error("DestinationParentNotFoundException",
                             "We can't find the destination container (a root or OU) with the ParentId that you "
                             "specified.")
            current = structure.parent_of_account(conn, org, account_id)
            if current != source:
                raise _error("AccountNotFoundException",
                             f"You specified an account that doesn't exist in the source parent {source}.")
            if current == destination:
                raise _error("DuplicateAccountException", "That account is already present in the specified "
                                                          "destination.")
            structure.move_account(conn, org, account_id, destination)
        return {}

    def create_account(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """Creates the account at once (with its administrator and the access role the management
        account assumes); the response is IN_PROGRESS as on AWS, DescribeCreateAccountStatus tells
        the outcome."""
        email, name = params["Email"], params["AccountName"]
        role_name = params.get("RoleName") or DEFAULT_ACCESS_ROLE
        if not _EMAIL.match(email):
            raise invalid_input("The provided email address is not valid.", "INVALID_EMAIL_ADDRESS_TARGET")
        request_id = "car-" + ids.lower_id(32)
        now = structure.now()
        with self._write() as conn:
            org = self._org(ctx, conn, "CreateAccount")
            state, failure, account_id = "SUCCEEDED", None, None
            taken = conn.execute(select(accounts.c.id).where((accounts.c.email == email)
                                                             | (accounts.c.name == name))).first()
            if taken is not None:
                # Stratum keeps account names unique (they name the CLI profiles); AWS has no such
                # rule, so a taken name fails the request the way an unexpected failure does.
                state, failure = "FAILED", ("EMAIL_ALREADY_EXISTS" if self._email_taken(conn, email)
                                            else "INTERNAL_FAILURE")
            else:
                key = account_store.create_account(conn, name, None, email, org.id)
                account_id = key.account_id
                self._access_role(conn, org, account_id, role_name)
            row = {"id": request_id, "organization_id": org.id, "account_name": name, "account_id": account_id,
                   "state": state, "failure_reason": failure, "requested_at": now, "completed_at": structure.now()}
            conn.execute(insert(organization_create_account_requests).values(**row))
        return {"CreateAccountStatus": {"Id": request_id, "AccountName": name, "State": "IN_PROGRESS",
                                        "RequestedTimestamp": now}}

    @staticmethod
    def _email_taken(conn: Connection, email: str) -> bool:
        return conn.execute(select(accounts.c.id).where(accounts.c.email == email)).first() is not None

    @staticmethod
    def _access_role(conn: Connection, org: Organization, account_id: str, role_name: str) -> None:
        """The role AWS creates in a new account: AdministratorAccess, trusted by the management account."""
        trust = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{org.management_account_id}:root"},
            "Action": "sts:AssumeRole"}]})
        iam.create_role(conn, account_id, role_name, trust)
        iam.attach_policy(conn, account_id, "role", role_name, managed_policy_arn("AdministratorAccess"))

    def describe_create_account_status(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        request_id = params["CreateAccountRequestId"]
        with self._read() as conn:
            org = self._org(ctx, conn, "DescribeCreateAccountStatus", access=READ)
            row = conn.execute(select(organization_create_account_requests).where(
                (organization_create_account_requests.c.id == request_id)
                & (organization_create_account_requests.c.organization_id == org.id))).mappings().first()
        if row is None:
            raise _error("CreateAccountStatusNotFoundException",
                         "We can't find an create account request with the CreateAccountRequestId that you "
                         "specified.")
        return {"CreateAccountStatus": status_view(dict(row))}

    def list_create_account_status(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        states = set(params.get("States") or [])
        with self._read() as conn:
            org = self._org(ctx, conn, "ListCreateAccountStatus", access=READ)
            rows = [dict(r) for r in conn.execute(select(organization_create_account_requests).where(
                organization_create_account_requests.c.organization_id == org.id)
                .order_by(organization_create_account_requests.c.requested_at)).mappings()]
        found = [status_view(r) for r in rows if not states or r["state"] in states]
        items, token = _page(found, params, "ListCreateAccountStatus")
        return {"CreateAccountStatuses": items, "NextToken": token}

    # ---------------------------------------------------------------------- organizational units
    def create_organizational_unit(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        parent_id, name = params["ParentId"], params["Name"]
        with self._write() as conn:
            org = self._org(ctx, conn, "CreateOrganizationalUnit")
            if not structure.is_parent(conn, org, parent_id):
                raise _parent_not_found()
            if structure.find_unit_named(conn, org, parent_id, name) is not None:
                raise _error("DuplicateOrganizationalUnitException",
                             "An OU with the same name already exists.")
            if len(structure.ancestors(conn, org, parent_id)) > 5:
                raise ServiceError("ConstraintViolationException", "You have reached the maximum nesting limit "
                                   "for OUs (5 levels).", 400, fields={"Reason": "OU_DEPTH_LIMIT_EXCEEDED"})
            row = structure.create_unit(conn, org, parent_id, name)
            return {"OrganizationalUnit": unit_view(conn, org, row)}

    def _unit(self, conn: Connection, org: Organization, ou_id: str) -> dict[str, Any]:
        row = structure.unit(conn, org, ou_id)
        if row is None:
            raise _error("OrganizationalUnitNotFoundException",
                         "We can't find an OU with the OrganizationalUnitId that you specified.")
        return row

    def describe_organizational_unit(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ou_id = params["OrganizationalUnitId"]
        with self._read() as conn:
            org = self._org(ctx, conn, "DescribeOrganizationalUnit", lambda o: o.ou_arn(ou_id), access=READ)
            return {"OrganizationalUnit": unit_view(conn, org, self._unit(conn, org, ou_id))}

    def update_organizational_unit(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ou_id = params["OrganizationalUnitId"]
        with self._write() as conn:
            org = self._org(ctx, conn, "UpdateOrganizationalUnit", lambda o: o.ou_arn(ou_id))
            row = self._unit(conn, org, ou_id)
            name = params.get("Name")
            if name and name != row["name"]:
                if structure.find_unit_named(conn, org, row["parent_id"], name) is not None:
                    raise _error("DuplicateOrganizationalUnitException", "An OU with the same name already exists.")
                structure.rename_unit(conn, ou_id, name)
                row["name"] = name
            return {"OrganizationalUnit": unit_view(conn, org, row)}

    def delete_organizational_unit(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ou_id = params["OrganizationalUnitId"]
        with self._write() as conn:
            org = self._org(ctx, conn, "DeleteOrganizationalUnit", lambda o: o.ou_arn(ou_id))
            self._unit(conn, org, ou_id)
            if structure.units_under(conn, org, ou_id) or structure.accounts_under(conn, org, ou_id):
                raise _error("OrganizationalUnitNotEmptyException",
                             "You can't delete an OU that contains accounts or child OUs.")
            structure.delete_unit(conn, ou_id)
        return {}

    def list_organizational_units_for_parent(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        parent_id = params["ParentId"]
        with self._read() as conn:
            org = self._org(ctx, conn, "ListOrganizationalUnitsForParent", access=READ)
            if not structure.is_parent(conn, org, parent_id):
                raise _parent_not_found()
            found = [unit_view(conn, org, u) for u in structure.units_under(conn, org, parent_id)]
        items, token = _page(found, params, "ListOrganizationalUnitsForParent")
        return {"OrganizationalUnits": items, "NextToken": token}

    def list_children(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        parent_id, child_type = params["ParentId"], params["ChildType"]
        with self._read() as conn:
            org = self._org(ctx, conn, "ListChildren", access=READ)
            if not structure.is_parent(conn, org, parent_id):
                raise _parent_not_found()
            if child_type == "ACCOUNT":
                found = [{"Id": a["id"], "Type": "ACCOUNT"} for a in structure.accounts_under(conn, org, parent_id)]
            else:
                found = [{"Id": u["id"], "Type": "ORGANIZATIONAL_UNIT"}
                         for u in structure.units_under(conn, org, parent_id)]
        items, token = _page(found, params, "ListChildren")
        return {"Children": items, "NextToken": token}

    def list_parents(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        child_id = params["ChildId"]
        with self._read() as conn:
            org = self._org(ctx, conn, "ListParents", access=READ)
            if _ACCOUNT_ID.match(child_id) and structure.member(conn, org, child_id) is not None:
                parent = structure.parent_of_account(conn, org, child_id)
            elif _OU_ID.match(child_id) and structure.unit(conn, org, child_id) is not None:
                parent = self._unit(conn, org, child_id)["parent_id"]
            else:
                raise _error("ChildNotFoundException",
                             "We can't find an organizational unit (OU) or AWS account with the ChildId that you "
                             "specified.")
        kind = "ROOT" if _ROOT_ID.match(parent) else "ORGANIZATIONAL_UNIT"
        items, token = _page([{"Id": parent, "Type": kind}], params, "ListParents")
        return {"Parents": items, "NextToken": token}

    # ------------------------------------------------------------------- trusted service access
    def list_aws_service_access_for_organization(self, ctx: RequestContext,
                                                 params: dict[str, Any]) -> dict[str, Any]:
        with self._read() as conn:
            org = self._org(ctx, conn, "ListAWSServiceAccessForOrganization", access=READ)
            found = self._service_access(conn, org)
        items, token = _page(found, params, "ListAWSServiceAccessForOrganization")
        return {"EnabledServicePrincipals": items, "NextToken": token}

    @staticmethod
    def _service_access(conn: Connection, org: Organization) -> list[dict[str, Any]]:
        rows = {r["service_principal"]: r["enabled_at"] for r in conn.execute(
            select(organization_service_access).where(organization_service_access.c.organization_id == org.id)
        ).mappings()}
        rows.pop(RAM_PRINCIPAL, None)
        found = [{"ServicePrincipal": p, "DateEnabled": at} for p, at in sorted(rows.items())]
        if org.ram_sharing_enabled:  # also set by RAM's EnableSharingWithAwsOrganization
            at = conn.execute(select(organization_service_access.c.enabled_at).where(
                (organization_service_access.c.organization_id == org.id)
                & (organization_service_access.c.service_principal == RAM_PRINCIPAL))).scalar()
            found.append({"ServicePrincipal": RAM_PRINCIPAL, "DateEnabled": at or org.created_at})
        return sorted(found, key=lambda e: e["ServicePrincipal"])

    def enable_aws_service_access(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        principal = params["ServicePrincipal"]
        with self._write() as conn:
            org = self._org(ctx, conn, "EnableAWSServiceAccess")
            # Whether the principal is a service's is the management account's question, asked
            # once the caller may ask it (the model's pattern was checked with the request syntax).
            if not _SERVICE_PRINCIPAL.match(principal) or not principal.endswith(".amazonaws.com"):
                raise invalid_input(f"You specified an unrecognized service principal {principal}.",
                                    "UNRECOGNIZED_SERVICE_PRINCIPAL")
            present = conn.execute(select(organization_service_access.c.service_principal).where(
                (organization_service_access.c.organization_id == org.id)
                & (organization_service_access.c.service_principal == principal))).first()
            if present is None:
                conn.execute(insert(organization_service_access).values(
                    organization_id=org.id, service_principal=principal, enabled_at=structure.now()))
            if principal == RAM_PRINCIPAL:
                conn.execute(organizations.update().where(organizations.c.id == org.id)
                             .values(ram_sharing_enabled=True))
        return {}

    def disable_aws_service_access(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        principal = params["ServicePrincipal"]
        with self._write() as conn:
            org = self._org(ctx, conn, "DisableAWSServiceAccess")
            conn.execute(organization_service_access.delete().where(
                (organization_service_access.c.organization_id == org.id)
                & (organization_service_access.c.service_principal == principal)))
            if principal == RAM_PRINCIPAL:
                conn.execute(organizations.update().where(organizations.c.id == org.id)
                             .values(ram_sharing_enabled=False))
        return {}

    # ------------------------------------------------------------------ delegated administrators
    def register_delegated_administrator(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        account_id, principal = params["AccountId"], params["ServicePrincipal"]
        with self._write() as conn:
            org = self._org(ctx, conn, "RegisterDelegatedAdministrator", lambda o: o.account_arn(account_id))
            if structure.member(conn, org, account_id) is None:
                raise _error("AccountNotFoundException", "You specified an account that doesn't exist.")
            if account_id == org.management_account_id:
                raise ServiceError("ConstraintViolationException", "You cannot register the management account of "
                                   "the organization as a delegated administrator.", 400,
                                   fields={"Reason": "CANNOT_REGISTER_MASTER_AS_DELEGATED_ADMINISTRATOR"})
            if not delegation.register(conn, org, account_id, principal):
                raise _error("AccountAlreadyRegisteredException",
                             "The provided account is already a delegated administrator for your organization.")
        return {}

    def deregister_delegated_administrator(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        account_id, principal = params["AccountId"], params["ServicePrincipal"]
        with self._write() as conn:
            org = self._org(ctx, conn, "DeregisterDelegatedAdministrator", lambda o: o.account_arn(account_id))
            if structure.member(conn, org, account_id) is None:
                raise _error("AccountNotFoundException", "You specified an account that doesn't exist.")
            if not delegation.deregister(conn, account_id, principal):
                raise _not_registered()
        return {}

    def list_delegated_administrators(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._read() as conn:
            org = self._org(ctx, conn, "ListDelegatedAdministrators", access=READ)
            found = []
            for account_id, since in delegation.administrators(conn, org, params.get("ServicePrincipal")):
                row = structure.member(conn, org, account_id)
                if row is not None:
                    found.append({**account_view(org, row), "DelegationEnabledDate": since})
        items, token = _page(found, params, "ListDelegatedAdministrators")
        return {"DelegatedAdministrators": items, "NextToken": token}

    def list_delegated_services_for_account(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        account_id = params["AccountId"]
        with self._read() as conn:
            org = self._org(ctx, conn, "ListDelegatedServicesForAccount", lambda o: o.account_arn(account_id),
                            access=READ)
            if structure.member(conn, org, account_id) is None:
                raise _error("AccountNotFoundException", "You specified an account that doesn't exist.")
            found = [{"ServicePrincipal": p, "DelegationEnabledDate": at}
                     for p, at in delegation.services_of(conn, account_id)]
        if not found:
            raise _not_registered()
        items, token = _page(found, params, "ListDelegatedServicesForAccount")
        return {"DelegatedServices": items, "NextToken": token}


def _not_registered() -> ServiceError:
    return _error("AccountNotRegisteredException",
                  "The provided account is not a registered delegated administrator for your organization.")
