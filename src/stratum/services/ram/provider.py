"""AWS RAM API: resource shares, their resources and principals, invitations, and the AWS managed
permissions that say what a share allows.

Every handler authorizes ``ram:<Operation>`` — on the share ARN for operations on one share, on the
invitation ARN for answering an invitation, on ``*`` for the account-wide listings — before it
reads or writes, in one transaction. What a share grants is enforced by the owning service through
``stratum.services.ram.access``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from stratum.protocol.errors import ServiceError
from stratum.server.context import Provider, RequestContext
from stratum.services.ram import associations, client_tokens, errors, invitations, queries, shares
from stratum.services.ram.membership import enable_sharing, membership
from stratum.services.ram.paging import page
from stratum.services.ram.permissions import PERMISSIONS, RESOURCE_TYPES, find_resource_type, resource_type_of
from stratum.services.ram.views import permission_detail, permission_summary, share_view

ACTION = "ram:"


def _now() -> datetime:
    return datetime.now(UTC)


def _share_context(share: dict[str, Any]) -> dict[str, Any]:
    """Condition keys that describe an existing share."""
    context: dict[str, Any] = {"ram:ResourceShareName": share["name"],
                               "ram:AllowsExternalPrincipals": bool(share["allow_external_principals"])}
    for tag in share.get("tags") or []:
        context[f"aws:ResourceTag/{tag['key']}"] = tag.get("value", "")
    return context


def _request_context(params: dict[str, Any]) -> dict[str, Any]:
    """Condition keys that describe what a request asks to share, with whom and with which tags."""
    context: dict[str, Any] = {}
    arns = list(params.get("resourceArns") or [])
    if arns:
        context["ram:ResourceArn"] = arns
        types = sorted({t.name for t in map(resource_type_of, arns) if t is not None})
        if types:
            context["ram:RequestedResourceType"] = types
    if params.get("principals"):
        context["ram:Principal"] = list(params["principals"])
    if params.get("allowExternalPrincipals") is not None:
        context["ram:RequestedAllowsExternalPrincipals"] = bool(params["allowExternalPrincipals"])
    # A tag without a key (the model leaves it optional) is refused by shares.check_tags later.
    tags = [t for t in params.get("tags") or [] if "key" in t]
    for tag in tags:
        context[f"aws:RequestTag/{tag['key']}"] = tag.get("value", "")
    keys = [t["key"] for t in tags] or list(params.get("tagKeys") or [])
    if keys:
        context["aws:TagKeys"] = keys
    return context


def _unsupported(params: dict[str, Any]) -> None:
    if params.get("sources"):
        raise errors.invalid_parameter("sources applies to service principals, which Stratum's resource shares "
                                       "do not support.")
    if params.get("permissionTemplateParameters"):
        raise errors.invalid_parameter("permissionTemplateParameters applies to customer managed permissions, "
                                       "which Stratum does not support.")


class RamProvider(Provider):
    service = "ram"

    # ------------------------------------------------------------------------------------ plumbing
    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.app.db.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.app.db.read() as conn:
            yield conn

    @staticmethod
    def _owned(ctx: RequestContext, conn: Connection, operation: str, arn: str, *, active: bool = True,
               lock: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The caller's share, authorized for ``operation``. A missing share (or anyone else's) is
        still authorized first, so a caller without the permission learns nothing about it."""
        try:
            share = shares.owned_share(conn, ctx.account_id, ctx.region, arn, active=active, lock=lock)
        except ServiceError:
            ctx.authorize(ACTION + operation, arn, context=extra)
            raise
        ctx.authorize(ACTION + operation, share["arn"], context={**_share_context(share), **(extra or {})})
        return share

    def _replayed(self, ctx: RequestContext, conn: Connection, operation: str, params: dict[str, Any],
                  now: datetime) -> dict[str, Any] | None:
        return client_tokens.recall(conn, ctx.account_id, ctx.region, operation, params, now)

    def _finish(self, ctx: RequestContext, conn: Connection, operation: str, params: dict[str, Any],
                result: dict[str, Any], now: datetime) -> dict[str, Any]:
        client_tokens.remember(conn, ctx.account_id, ctx.region, operation, params, result, now)
        return result

    # -------------------------------------------------------------------------------------- shares
    def create_resource_share(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = shares.new_share_arn(ctx.region, ctx.account_id)
        context = {**_request_context(params), "ram:ResourceShareName": params["name"]}
        ctx.authorize(ACTION + "CreateResourceShare", arn, context=context)
        _unsupported(params)
        permissions = shares.check_permission_list(list(params.get("permissionArns") or []))
        now = _now()
        with self._write() as conn:
            replay = self._replayed(ctx, conn, "CreateResourceShare", params, now)
            if replay is not None:
                return replay
            share = shares.create_share(
                conn, arn=arn, owner=ctx.account_id, region=ctx.region, name=params["name"],
                allow_external=params.get("allowExternalPrincipals", True), tags=list(params.get("tags") or []),
                now=now)
            for permission in permissions:
                shares.set_permission(conn, share, permission, replace=False, now=now)
            shares.add_resources(conn, share, list(params.get("resourceArns") or []), now)
            shares.add_principals(conn, share, list(params.get("principals") or []), now)
            result = {"resourceShare": share_view(share), "clientToken": client_tokens.token_of(params)}
            return self._finish(ctx, conn, "CreateResourceShare", params, result, now)

    def update_resource_share(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        now = _now()
        extra = _request_context(params)
        with self._write() as conn:
            share = self._owned(ctx, conn, "UpdateResourceShare", params["resourceShareArn"], lock=True, extra=extra)
            replay = self._replayed(ctx, conn, "UpdateResourceShare", params, now)
            if replay is not None:
                return replay
            share = shares.update_share(conn, share, name=params.get("name"),
                                        allow_external=params.get("allowExternalPrincipals"), now=now)
            result = {"resourceShare": share_view(share), "clientToken": client_tokens.token_of(params)}
            return self._finish(ctx, conn, "UpdateResourceShare", params, result, now)

    def delete_resource_share(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        now = _now()
        with self._write() as conn:
            replay = self._replayed(ctx, conn, "DeleteResourceShare", params, now)
            share = self._owned(ctx, conn, "DeleteResourceShare", params["resourceShareArn"], lock=True,
                                active=replay is None)
            if replay is not None:
                return replay
            shares.delete_share(conn, share, now)
            result = {"returnValue": True, "clientToken": client_tokens.token_of(params)}
            return self._finish(ctx, conn, "DeleteResourceShare", params, result, now)

    def get_resource_shares(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "GetResourceShares", "*")
        with self._read() as conn:
            found = queries.get_resource_shares(conn, ctx.account_id, ctx.region, params)
        items, token = page(found, params, ctx.account_id, "GetResourceShares")
        return {"resourceShares": [share_view(s) for s in items], "nextToken": token}

    def tag_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = self._tag_target(params)
        tags = list(params["tags"])
        shares.check_tags(tags)
        with self._write() as conn:
            share = self._owned(ctx, conn, "TagResource", arn, lock=True, extra=_request_context(params))
            shares.set_tags(conn, share, shares.merged_tags(share["tags"] or [], tags), _now())
        return {}

    def untag_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = self._tag_target(params)
        drop = set(params["tagKeys"])
        with self._write() as conn:
            share = self._owned(ctx, conn, "UntagResource", arn, lock=True, extra=_request_context(params))
            shares.set_tags(conn, share, [t for t in share["tags"] or [] if t["key"] not in drop], _now())
        return {}

    @staticmethod
    def _tag_target(params: dict[str, Any]) -> str:
        arn = params.get("resourceShareArn")
        if not arn:
            if params.get("resourceArn"):
                # Tags on customer managed permissions: Stratum has none to tag.
                raise errors.unknown_resource(f"Permission {params['resourceArn']} could not be found.")
            raise errors.invalid_parameter("Specify resourceShareArn.")
        return str(arn)

    # -------------------------------------------------------------------------------- associations
    def associate_resource_share(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._change_associations(ctx, params, "AssociateResourceShare", shares.add_resources,
                                          shares.add_principals)

    def disassociate_resource_share(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._change_associations(ctx, params, "DisassociateResourceShare", shares.remove_resources,
                                          shares.remove_principals)

    def _change_associations(self, ctx: RequestContext, params: dict[str, Any], operation: str,
                             on_resources: Any, on_principals: Any) -> dict[str, Any]:
        resources = list(params.get("resourceArns") or [])
        principals = list(params.get("principals") or [])
        now = _now()
        with self._write() as conn:
            share = self._owned(ctx, conn, operation, params["resourceShareArn"], lock=True,
                                extra=_request_context(params))
            _unsupported(params)
            if not resources and not principals:
                raise errors.invalid_parameter("Specify at least one of resourceArns and principals.")
            replay = self._replayed(ctx, conn, operation, params, now)
            if replay is not None:
                return replay
            associations = on_resources(conn, share, resources, now) + on_principals(conn, share, principals, now)
            result = {"resourceShareAssociations": associations, "clientToken": client_tokens.token_of(params)}
            return self._finish(ctx, conn, operation, params, result, now)

    def _listing(self, ctx: RequestContext, params: dict[str, Any], operation: str,
                 query: Callable[..., list[dict[str, Any]]], key: str) -> dict[str, Any]:
        """Account-wide RAM listings: authorize, query the caller's view, page."""
        ctx.authorize(ACTION + operation, "*")
        with self._read() as conn:
            found = query(conn, ctx.account_id, ctx.region, params)
        items, token = page(found, params, ctx.account_id, operation)
        return {key: items, "nextToken": token}

    def get_resource_share_associations(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._listing(ctx, params, "GetResourceShareAssociations", queries.get_associations,
                             "resourceShareAssociations")

    def list_resources(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._listing(ctx, params, "ListResources", queries.list_resources, "resources")

    def list_principals(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._listing(ctx, params, "ListPrincipals", queries.list_principals, "principals")

    # --------------------------------------------------------------------------------- invitations
    def get_resource_share_invitations(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "GetResourceShareInvitations", "*")
        wanted = list(params.get("resourceShareInvitationArns") or [])
        for arn in wanted:
            if invitations.INVITATION_ARN.fullmatch(arn) is None:
                raise errors.malformed_arn(f"The specified resource share invitation ARN {arn} is not valid. "
                                           "Verify the ARN and try again.")
        for arn in params.get("resourceShareArns") or []:
            shares.check_share_arn(arn)
        now = _now()
        with self._read() as conn:
            found = invitations.list_received(conn, ctx.account_id, ctx.region, wanted,
                                              params.get("resourceShareArns"))
        missing = set(wanted) - {r["arn"] for r in found}
        if missing:
            raise errors.invitation_not_found(sorted(missing)[0])
        items, token = page(found, params, ctx.account_id, "GetResourceShareInvitations")
        return {"resourceShareInvitations": [invitations.view(r, now) for r in items], "nextToken": token}

    def accept_resource_share_invitation(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._answer(ctx, params, "AcceptResourceShareInvitation", invitations.accept)

    def reject_resource_share_invitation(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._answer(ctx, params, "RejectResourceShareInvitation", invitations.reject)

    def _answer(self, ctx: RequestContext, params: dict[str, Any], operation: str, act: Any) -> dict[str, Any]:
        arn = params["resourceShareInvitationArn"]
        now = _now()
        with self._write() as conn:
            try:
                row = invitations.received(conn, ctx.account_id, ctx.region, arn, lock=True)
            except ServiceError:
                ctx.authorize(ACTION + operation, arn)
                raise
            ctx.authorize(ACTION + operation, arn, context={"ram:ShareOwnerAccountId": row["sender_account_id"]})
            replay = self._replayed(ctx, conn, operation, params, now)
            if replay is not None:
                return replay
            answered = act(conn, row, now)
            result = {"resourceShareInvitation": invitations.view(answered, now),
                      "clientToken": client_tokens.token_of(params)}
            return self._finish(ctx, conn, operation, params, result, now)

    def list_pending_invitation_resources(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["resourceShareInvitationArn"]
        now = _now()
        with self._read() as conn:
            try:
                row = invitations.received(conn, ctx.account_id, ctx.region, arn)
            except ServiceError:
                ctx.authorize(ACTION + "ListPendingInvitationResources", arn)
                raise
            ctx.authorize(ACTION + "ListPendingInvitationResources", arn,
                          context={"ram:ShareOwnerAccountId": row["sender_account_id"]})
            status = invitations.effective_status(row, now)
            if status == "REJECTED":
                raise errors.invitation_already_rejected(arn)
            if status == "EXPIRED":
                raise errors.invitation_expired(arn)
            found = queries.list_resources(conn, row["sender_account_id"], ctx.region, {
                "resourceOwner": "SELF", "resourceShareArns": [row["share_arn"]],
                "resourceRegionScope": params.get("resourceRegionScope")})
        items, token = page(found, params, ctx.account_id, "ListPendingInvitationResources")
        return {"resources": items, "nextToken": token}

    # --------------------------------------------------------------------------------- permissions
    def list_permissions(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "ListPermissions", "*")
        wanted_type = params.get("resourceType")
        resource_type = find_resource_type(wanted_type) if wanted_type else None
        if wanted_type and resource_type is None:
            raise errors.invalid_parameter(f"Invalid resource type: {wanted_type}")
        found = list(PERMISSIONS.values())
        if resource_type is not None:
            found = [p for p in found if p.resource_type == resource_type.name]
        if params.get("permissionType") == "CUSTOMER_MANAGED" or params.get("resourceOwner") == "OTHER-ACCOUNTS":
            found = []  # every permission Stratum offers is AWS managed
        if params.get("permissionStatus") not in (None, "ATTACHABLE"):
            found = []
        items, token = page(found, params, ctx.account_id, "ListPermissions")
        return {"permissions": [permission_summary(p) for p in items], "nextToken": token}

    def get_permission(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["permissionArn"]
        ctx.authorize(ACTION + "GetPermission", arn)
        permission = shares.find_permission(arn, params.get("permissionVersion"))
        return {"permission": permission_detail(permission)}

    def list_permission_versions(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["permissionArn"]
        ctx.authorize(ACTION + "ListPermissionVersions", arn)
        permission = shares.find_permission(arn)  # every managed permission Stratum has is at version 1
        items, token = page([permission], params, ctx.account_id, "ListPermissionVersions")
        return {"permissions": [permission_summary(p) for p in items], "nextToken": token}

    def list_permission_associations(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "ListPermissionAssociations", "*")
        if params.get("permissionArn"):
            shares.find_permission(params["permissionArn"])
        with self._read() as conn:
            found = associations.permission_associations(conn, ctx.account_id, ctx.region, params)
        items, token = page(found, params, ctx.account_id, "ListPermissionAssociations")
        return {"permissions": items, "nextToken": token}

    def get_resource_policies(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "GetResourcePolicies", "*")
        with self._read() as conn:
            found = associations.resource_policies(conn, ctx.account_id, ctx.region, list(params["resourceArns"]),
                                                   params.get("principal"))
        items, token = page(found, params, ctx.account_id, "GetResourcePolicies")
        return {"policies": items, "nextToken": token}

    def list_resource_types(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "ListResourceTypes", "*")
        scope = params.get("resourceRegionScope") or "ALL"
        found = [t for t in RESOURCE_TYPES.values() if scope in ("ALL", t.region_scope)]
        items, token = page(found, params, ctx.account_id, "ListResourceTypes")
        return {"resourceTypes": [{"resourceType": t.name, "serviceName": t.service,
                                   "resourceRegionScope": t.region_scope} for t in items], "nextToken": token}

    def associate_resource_share_permission(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        now = _now()
        with self._write() as conn:
            share = self._owned(ctx, conn, "AssociateResourceSharePermission", params["resourceShareArn"],
                                lock=True, extra={"ram:PermissionArn": params["permissionArn"]})
            _unsupported(params)
            permission = shares.find_permission(params["permissionArn"], params.get("permissionVersion"))
            replay = self._replayed(ctx, conn, "AssociateResourceSharePermission", params, now)
            if replay is not None:
                return replay
            shares.set_permission(conn, share, permission, replace=bool(params.get("replace")), now=now)
            result = {"returnValue": True, "clientToken": client_tokens.token_of(params)}
            return self._finish(ctx, conn, "AssociateResourceSharePermission", params, result, now)

    def list_resource_share_permissions(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["resourceShareArn"]
        with self._read() as conn:
            shares.check_share_arn(arn)
            share = shares.get_share(conn, arn)
            visible = (share is not None and share["region"] == ctx.region
                       and queries.share_permissions_visible(conn, ctx.account_id, share))
            ctx.authorize(ACTION + "ListResourceSharePermissions", arn,
                          context=_share_context(share) if share is not None and visible else None)
            if share is None or not visible:
                raise errors.share_not_found(arn)
            associated = shares.share_permissions(conn, arn)
        found = []
        for row in associated:
            permission = PERMISSIONS.get(row["permission_arn"])
            if permission is not None:
                summary = permission_summary(permission, status="ASSOCIATED")
                found.append({**summary, "creationTime": row["created_at"], "lastUpdatedTime": row["updated_at"]})
        items, token = page(found, params, ctx.account_id, "ListResourceSharePermissions")
        return {"permissions": items, "nextToken": token}

    # -------------------------------------------------------------------------------- organization
    def enable_sharing_with_aws_organization(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "EnableSharingWithAwsOrganization", "*")
        with self._write() as conn:
            member = membership(conn, ctx.account_id)
            if member.organization_id is None:
                raise errors.not_permitted("Your account is not a member of an organization.")
            if member.management_account_id != ctx.account_id:
                raise errors.not_permitted("Only the management account of the organization can enable sharing "
                                           "with AWS Organizations.")
            enable_sharing(conn, member.organization_id)
        return {"returnValue": True}
