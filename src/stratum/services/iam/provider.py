"""IAM: users, roles, inline and managed policies, attachments, boundaries and access keys."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, delete, func, insert, select, update

from stratum import ids
from stratum.protocol.errors import ServiceError
from stratum.server.context import Provider, RequestContext
from stratum.services.iam import documents, limits, simulation, store
from stratum.services.iam.tables import (
    iam_access_keys,
    iam_attachments,
    iam_inline_policies,
    iam_policies,
    iam_policy_versions,
    iam_roles,
    iam_users,
)


def _encoded(document: str) -> str:
    # IAM returns policy documents URL-encoded; botocore decodes them back to dicts.
    return quote(document, safe="")


def _page(items: list[dict[str, Any]], params: dict[str, Any], key: str) -> dict[str, Any]:
    start = 0
    if params.get("Marker"):
        try:
            start = int(base64.b64decode(params["Marker"]).decode())
        except ValueError:
            raise ServiceError("ValidationError", "Invalid Marker", 400) from None
    limit = int(params.get("MaxItems") or 100)
    page = items[start:start + limit]
    out: dict[str, Any] = {key: page, "IsTruncated": start + limit < len(items)}
    if out["IsTruncated"]:
        out["Marker"] = base64.b64encode(str(start + limit).encode()).decode()
    return out


def _user_out(row: dict[str, Any]) -> dict[str, Any]:
    out = {"Path": row["path"], "UserName": row["name"], "UserId": row["user_id"], "Arn": row["arn"],
           "CreateDate": row["created_at"]}
    if row.get("permissions_boundary"):
        out["PermissionsBoundary"] = {"PermissionsBoundaryType": "Policy",
                                      "PermissionsBoundaryArn": row["permissions_boundary"]}
    if row.get("tags"):
        out["Tags"] = row["tags"]
    return out


def _role_out(row: dict[str, Any]) -> dict[str, Any]:
    out = {"Path": row["path"], "RoleName": row["name"], "RoleId": row["role_id"], "Arn": row["arn"],
           "CreateDate": row["created_at"], "AssumeRolePolicyDocument": _encoded(row["assume_role_policy"]),
           "MaxSessionDuration": row["max_session_duration"]}
    if row.get("description"):
        out["Description"] = row["description"]
    if row.get("permissions_boundary"):
        out["PermissionsBoundary"] = {"PermissionsBoundaryType": "Policy",
                                      "PermissionsBoundaryArn": row["permissions_boundary"]}
    if row.get("tags"):
        out["Tags"] = row["tags"]
    return out


class IamProvider(Provider):
    service = "iam"

    @contextmanager
    def _write(self, account_id: str) -> Iterator[Connection]:
        """A write to ``account_id``'s identities: only that account's cached credentials and
        policies are dropped (a principal's policies are all of its own account)."""
        with self.app.db.begin() as conn:
            yield conn
        self.app.invalidate_identity_caches(account_id)

    def _user_arn(self, ctx: RequestContext, name: str) -> str:
        return store.user_arn(ctx.account_id, name)

    def _role_arn(self, ctx: RequestContext, name: str) -> str:
        return store.role_arn(ctx.account_id, name)

    # ------------------------------------------------------------------------------------- users
    def create_user(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["UserName"]
        ctx.authorize("iam:CreateUser", store.user_arn(ctx.account_id, name, store.normalize_path(params.get("Path"))))
        with self._write(ctx.account_id) as conn:
            boundary = params.get("PermissionsBoundary")
            if boundary and not store.policy_exists(conn, boundary, ctx.account_id):
                raise store.no_such_entity(f"Policy {boundary} does not exist or is not attachable.")
            row = store.create_user(conn, ctx.account_id, name, params.get("Path"), params.get("Tags"), boundary)
        return {"User": _user_out(row)}

    def get_user(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("UserName") or ctx.identity.user_name
        if not name:
            raise ServiceError("ValidationError", "Must specify userName when calling with non-User credentials", 400)
        ctx.authorize("iam:GetUser", self._user_arn(ctx, name))
        with self.app.db.read() as conn:
            return {"User": _user_out(store.get_user(conn, ctx.account_id, name))}

    def list_users(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize("iam:ListUsers", f"arn:aws:iam::{ctx.account_id}:user/")
        prefix = params.get("PathPrefix") or "/"
        with self.app.db.read() as conn:
            rows = conn.execute(select(iam_users).where(iam_users.c.account_id == ctx.account_id)
                                .order_by(iam_users.c.name)).mappings().all()
        return _page([_user_out(dict(r)) for r in rows if r["path"].startswith(prefix)], params, "Users")

    def _delete_principal(self, ctx: RequestContext, kind: str, name: str) -> None:
        """Delete a user or role once nothing depends on it, as IAM requires (DeleteConflict)."""
        table = iam_users if kind == "user" else iam_roles
        with self._write(ctx.account_id) as conn:
            (store.get_user if kind == "user" else store.get_role)(conn, ctx.account_id, name)
            dependents: list[tuple[Any, Any, str]] = [
                (iam_inline_policies, iam_inline_policies.c.principal_name, "policies"),
                (iam_attachments, iam_attachments.c.principal_name, "attached policies")]
            if kind == "user":
                dependents.insert(0, (iam_access_keys, iam_access_keys.c.user_name, "access keys"))
            for dep, name_column, what in dependents:
                cond = (dep.c.account_id == ctx.account_id) & (name_column == name)
                if dep is not iam_access_keys:
                    cond = cond & (dep.c.principal_type == kind)
                if conn.execute(select(func.count()).select_from(dep).where(cond)).scalar():
                    raise ServiceError("DeleteConflict", f"Cannot delete entity, must delete {what} first.", 409)
            conn.execute(delete(table).where((table.c.account_id == ctx.account_id) & (table.c.name == name)))

    def delete_user(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize("iam:DeleteUser", self._user_arn(ctx, params["UserName"]))
        self._delete_principal(ctx, "user", params["UserName"])
        return {}

    # ------------------------------------------------------------------------------------- roles
    def create_role(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["RoleName"]
        ctx.authorize("iam:CreateRole", store.role_arn(ctx.account_id, name, store.normalize_path(params.get("Path"))))
        trust = params["AssumeRolePolicyDocument"]
        documents.check(ctx, trust, "trust")
        max_duration = int(params.get("MaxSessionDuration") or 3600)
        with self._write(ctx.account_id) as conn:
            boundary = params.get("PermissionsBoundary")
            if boundary and not store.policy_exists(conn, boundary, ctx.account_id):
                raise store.no_such_entity(f"Policy {boundary} does not exist or is not attachable.")
            row = store.create_role(conn, ctx.account_id, name, trust, path=params.get("Path"),
                                    description=params.get("Description"), max_session_duration=max_duration,
                                    permissions_boundary=boundary, tags=params.get("Tags"))
        return {"Role": _role_out(row)}

    def get_role(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["RoleName"]
        ctx.authorize("iam:GetRole", self._role_arn(ctx, name))
        with self.app.db.read() as conn:
            return {"Role": _role_out(store.get_role(conn, ctx.account_id, name))}

    def list_roles(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize("iam:ListRoles", f"arn:aws:iam::{ctx.account_id}:role/")
        prefix = params.get("PathPrefix") or "/"
        with self.app.db.read() as conn:
            rows = conn.execute(select(iam_roles).where(iam_roles.c.account_id == ctx.account_id)
                                .order_by(iam_roles.c.name)).mappings().all()
        return _page([_role_out(dict(r)) for r in rows if r["path"].startswith(prefix)], params, "Roles")

    def delete_role(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize("iam:DeleteRole", self._role_arn(ctx, params["RoleName"]))
        self._delete_principal(ctx, "role", params["RoleName"])
        return {}

    def update_assume_role_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["RoleName"]
        ctx.authorize("iam:UpdateAssumeRolePolicy", self._role_arn(ctx, name))
        documents.check(ctx, params["PolicyDocument"], "trust")
        with self._write(ctx.account_id) as conn:
            store.get_role(conn, ctx.account_id, name)
            conn.execute(update(iam_roles).where((iam_roles.c.account_id == ctx.account_id)
                                                 & (iam_roles.c.name == name))
                         .values(assume_role_policy=params["PolicyDocument"]))
        return {}

    def update_role(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["RoleName"]
        ctx.authorize("iam:UpdateRole", self._role_arn(ctx, name))
        values: dict[str, Any] = {}
        if params.get("Description") is not None:
            values["description"] = params["Description"]
        if params.get("MaxSessionDuration") is not None:
            values["max_session_duration"] = int(params["MaxSessionDuration"])
        with self._write(ctx.account_id) as conn:
            store.get_role(conn, ctx.account_id, name)
            if values:
                conn.execute(update(iam_roles).where((iam_roles.c.account_id == ctx.account_id)
                                                     & (iam_roles.c.name == name)).values(**values))
        return {}

    # ---------------------------------------------------------------------------- inline policies
    def _put_inline(self, ctx: RequestContext, params: dict[str, Any], kind: str, name_key: str, action: str) -> dict[str, Any]:
        name = params[name_key]
        arn = self._user_arn(ctx, name) if kind == "user" else self._role_arn(ctx, name)
        ctx.authorize(action, arn)
        limits.check_inline_policy(kind, name, params["PolicyDocument"])
        documents.check(ctx, params["PolicyDocument"], "identity")
        with self._write(ctx.account_id) as conn:
            (store.get_user if kind == "user" else store.get_role)(conn, ctx.account_id, name)
            limits.check_inline_total(conn, ctx.account_id, kind, name, params["PolicyName"], params["PolicyDocument"])
            key = ((iam_inline_policies.c.account_id == ctx.account_id)
                   & (iam_inline_policies.c.principal_type == kind)
                   & (iam_inline_policies.c.principal_name == name)
                   & (iam_inline_policies.c.policy_name == params["PolicyName"]))
            conn.execute(delete(iam_inline_policies).where(key))
            conn.execute(insert(iam_inline_policies).values(
                account_id=ctx.account_id, principal_type=kind, principal_name=name,
                policy_name=params["PolicyName"], document=params["PolicyDocument"]))
        return {}

    def _get_inline(self, ctx: RequestContext, params: dict[str, Any], kind: str, name_key: str, action: str) -> dict[str, Any]:
        name = params[name_key]
        ctx.authorize(action, self._user_arn(ctx, name) if kind == "user" else self._role_arn(ctx, name))
        with self.app.db.read() as conn:
            doc = conn.execute(select(iam_inline_policies.c.document).where(
                (iam_inline_policies.c.account_id == ctx.account_id) & (iam_inline_policies.c.principal_type == kind)
                & (iam_inline_policies.c.principal_name == name)
                & (iam_inline_policies.c.policy_name == params["PolicyName"]))).scalar()
        if doc is None:
            raise store.no_such_entity(f"The {kind} policy with name {params['PolicyName']} cannot be found.")
        return {name_key: name, "PolicyName": params["PolicyName"], "PolicyDocument": _encoded(doc)}

    def _list_inline(self, ctx: RequestContext, params: dict[str, Any], kind: str, name_key: str, action: str) -> dict[str, Any]:
        name = params[name_key]
        ctx.authorize(action, self._user_arn(ctx, name) if kind == "user" else self._role_arn(ctx, name))
        with self.app.db.read() as conn:
            (store.get_user if kind == "user" else store.get_role)(conn, ctx.account_id, name)
            names = [r.policy_name for r in conn.execute(select(iam_inline_policies.c.policy_name).where(
                (iam_inline_policies.c.account_id == ctx.account_id) & (iam_inline_policies.c.principal_type == kind)
                & (iam_inline_policies.c.principal_name == name)).order_by(iam_inline_policies.c.policy_name))]
        return _page(names, params, "PolicyNames")  # type: ignore[arg-type]

    def _delete_inline(self, ctx: RequestContext, params: dict[str, Any], kind: str, name_key: str, action: str) -> dict[str, Any]:
        name = params[name_key]
        ctx.authorize(action, self._user_arn(ctx, name) if kind == "user" else self._role_arn(ctx, name))
        with self._write(ctx.account_id) as conn:
            result = conn.execute(delete(iam_inline_policies).where(
                (iam_inline_policies.c.account_id == ctx.account_id) & (iam_inline_policies.c.principal_type == kind)
                & (iam_inline_policies.c.principal_name == name)
                & (iam_inline_policies.c.policy_name == params["PolicyName"])))
            if result.rowcount == 0:
                raise store.no_such_entity(f"The {kind} policy with name {params['PolicyName']} cannot be found.")
        return {}

    def put_user_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._put_inline(ctx, params, "user", "UserName", "iam:PutUserPolicy")

    def get_user_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._get_inline(ctx, params, "user", "UserName", "iam:GetUserPolicy")

    def list_user_policies(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._list_inline(ctx, params, "user", "UserName", "iam:ListUserPolicies")

    def delete_user_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._delete_inline(ctx, params, "user", "UserName", "iam:DeleteUserPolicy")

    def put_role_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._put_inline(ctx, params, "role", "RoleName", "iam:PutRolePolicy")

    def get_role_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._get_inline(ctx, params, "role", "RoleName", "iam:GetRolePolicy")

    def list_role_policies(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._list_inline(ctx, params, "role", "RoleName", "iam:ListRolePolicies")

    def delete_role_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._delete_inline(ctx, params, "role", "RoleName", "iam:DeleteRolePolicy")

    # --------------------------------------------------------------------------- managed policies
    def _policy_out(self, conn: Connection, ctx: RequestContext, row: dict[str, Any]) -> dict[str, Any]:
        # Attachments in the caller's account only: an AWS managed policy is shared by every
        # account, and how many entities of other accounts use it is theirs to know.
        count = conn.execute(select(func.count()).select_from(iam_attachments)
                             .where((iam_attachments.c.policy_arn == row["arn"])
                                    & (iam_attachments.c.account_id == ctx.account_id))).scalar() or 0
        out = {"PolicyName": row["name"], "PolicyId": row["policy_id"], "Arn": row["arn"], "Path": row["path"],
               "DefaultVersionId": row["default_version"], "AttachmentCount": count,
               "PermissionsBoundaryUsageCount": 0, "IsAttachable": True, "CreateDate": row["created_at"],
               "UpdateDate": row["updated_at"]}
        if row.get("description"):
            out["Description"] = row["description"]
        if row.get("tags"):
            out["Tags"] = row["tags"]
        return out

    def create_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        path = store.normalize_path(params.get("Path"))
        arn = f"arn:aws:iam::{ctx.account_id}:policy{path}{params['PolicyName']}"
        ctx.authorize("iam:CreatePolicy", arn)
        limits.check_managed_policy(params["PolicyDocument"])
        documents.check(ctx, params["PolicyDocument"], "identity")
        ts = store.now()
        with self._write(ctx.account_id) as conn:
            if store.policy_exists(conn, arn, ctx.account_id):
                raise store.already_exists(f"A policy called {params['PolicyName']} already exists. "
                                           "Duplicate names are not allowed.")
            row = {"arn": arn, "account_id": ctx.account_id, "name": params["PolicyName"],
                   "policy_id": ids.unique_id("ANPA"), "path": path, "description": params.get("Description"),
                   "default_version": "v1", "tags": params.get("Tags") or [], "created_at": ts, "updated_at": ts}
            conn.execute(insert(iam_policies).values(**row))
            conn.execute(insert(iam_policy_versions).values(policy_arn=arn, version_id="v1",
                                                            document=params["PolicyDocument"], created_at=ts))
            return {"Policy": self._policy_out(conn, ctx, row)}

    def get_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize("iam:GetPolicy", params["PolicyArn"])
        with self.app.db.read() as conn:
            return {"Policy": self._policy_out(conn, ctx, store.get_policy(conn, ctx.account_id, params["PolicyArn"]))}

    def list_policies(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize("iam:ListPolicies", f"arn:aws:iam::{ctx.account_id}:policy/")
        scope = params.get("Scope") or "All"
        owners = {"All": [ctx.account_id, store.AWS_OWNER], "AWS": [store.AWS_OWNER], "Local": [ctx.account_id]}[scope]
        with self.app.db.read() as conn:
            rows = conn.execute(select(iam_policies).where(iam_policies.c.account_id.in_(owners))
                                .order_by(iam_policies.c.name)).mappings().all()
            items = [self._policy_out(conn, ctx, dict(r)) for r in rows
                     if r["path"].startswith(params.get("PathPrefix") or "/")]
        if params.get("OnlyAttached"):
            items = [i for i in items if i["AttachmentCount"]]
        return _page(items, params, "Policies")

    def get_policy_version(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize("iam:GetPolicyVersion", params["PolicyArn"])
        with self.app.db.read() as conn:
            policy = store.get_policy(conn, ctx.account_id, params["PolicyArn"])
            row = conn.execute(select(iam_policy_versions).where(
                (iam_policy_versions.c.policy_arn == params["PolicyArn"])
                & (iam_policy_versions.c.version_id == params["VersionId"]))).mappings().first()
        if row is None:
            raise store.no_such_entity(f"Policy {params['PolicyArn']} version {params['VersionId']} does not exist.")
        return {"PolicyVersion": {"Document": _encoded(row["document"]), "VersionId": row["version_id"],
                                  "IsDefaultVersion": row["version_id"] == policy["default_version"],
                                  "CreateDate": row["created_at"]}}

    def create_policy_version(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["PolicyArn"]
        ctx.authorize("iam:CreatePolicyVersion", arn)
        limits.check_managed_policy(params["PolicyDocument"])
        documents.check(ctx, params["PolicyDocument"], "identity")
        ts = store.now()
        with self._write(ctx.account_id) as conn:
            self._own_policy(conn, ctx, arn)
            versions = [r.version_id for r in conn.execute(select(iam_policy_versions.c.version_id)
                                                           .where(iam_policy_versions.c.policy_arn == arn))]
            if len(versions) >= 5:
                raise ServiceError("LimitExceeded", "A managed policy can have up to 5 versions.", 409)
            version = f"v{max(int(v[1:]) for v in versions) + 1}"
            conn.execute(insert(iam_policy_versions).values(policy_arn=arn, version_id=version,
                                                            document=params["PolicyDocument"], created_at=ts))
            default = bool(params.get("SetAsDefault"))
            if default:
                conn.execute(update(iam_policies).where(iam_policies.c.arn == arn)
                             .values(default_version=version, updated_at=ts))
        return {"PolicyVersion": {"VersionId": version, "IsDefaultVersion": default, "CreateDate": ts}}

    def list_policy_versions(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["PolicyArn"]
        ctx.authorize("iam:ListPolicyVersions", arn)
        with self.app.db.read() as conn:
            policy = store.get_policy(conn, ctx.account_id, arn)
            rows = conn.execute(select(iam_policy_versions).where(iam_policy_versions.c.policy_arn == arn)
                                ).mappings().all()
        items = [{"VersionId": r["version_id"], "IsDefaultVersion": r["version_id"] == policy["default_version"],
                  "CreateDate": r["created_at"]} for r in sorted(rows, key=lambda r: -int(r["version_id"][1:]))]
        return _page(items, params, "Versions")

    def delete_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn = params["PolicyArn"]
        ctx.authorize("iam:DeletePolicy", arn)
        with self._write(ctx.account_id) as conn:
            policy = store.get_policy(conn, ctx.account_id, arn)
            if policy["account_id"] == store.AWS_OWNER:
                raise ServiceError("AccessDenied", "AWS managed policies cannot be deleted", 403)
            if conn.execute(select(func.count()).select_from(iam_attachments)
                            .where(iam_attachments.c.policy_arn == arn)).scalar():
                raise ServiceError("DeleteConflict", "Cannot delete a policy attached to entities.", 409)
            if conn.execute(select(func.count()).select_from(iam_policy_versions)
                            .where(iam_policy_versions.c.policy_arn == arn)).scalar() > 1:
                raise ServiceError("DeleteConflict", "This policy has more than one version. Before you delete a "
                                   "policy, you must delete the policy's versions. The default version is deleted "
                                   "with the policy.", 409)
            conn.execute(delete(iam_policy_versions).where(iam_policy_versions.c.policy_arn == arn))
            conn.execute(delete(iam_policies).where(iam_policies.c.arn == arn))
        return {}

    @staticmethod
    def _own_policy(conn: Connection, ctx: RequestContext, arn: str) -> dict[str, Any]:
        """A customer-managed policy of the caller's account, to change: another account's is not
        found, an AWS managed one is read-only."""
        policy = store.get_policy(conn, ctx.account_id, arn)
        if policy["account_id"] == store.AWS_OWNER:
            raise ServiceError("AccessDenied", "AWS managed policies cannot be changed", 403)
        return policy

    @staticmethod
    def _version(conn: Connection, arn: str, version_id: str) -> None:
        found = conn.execute(select(iam_policy_versions.c.version_id).where(
            (iam_policy_versions.c.policy_arn == arn) & (iam_policy_versions.c.version_id == version_id))).first()
        if found is None:
            raise store.no_such_entity(f"Policy {arn} version {version_id} does not exist.")

    def set_default_policy_version(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn, version = params["PolicyArn"], params["VersionId"]
        ctx.authorize("iam:SetDefaultPolicyVersion", arn)
        with self._write(ctx.account_id) as conn:
            self._own_policy(conn, ctx, arn)
            self._version(conn, arn, version)
            conn.execute(update(iam_policies).where(iam_policies.c.arn == arn)
                         .values(default_version=version, updated_at=store.now()))
        return {}

    def delete_policy_version(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        arn, version = params["PolicyArn"], params["VersionId"]
        ctx.authorize("iam:DeletePolicyVersion", arn)
        with self._write(ctx.account_id) as conn:
            policy = self._own_policy(conn, ctx, arn)
            self._version(conn, arn, version)
            if policy["default_version"] == version:
                raise ServiceError("DeleteConflict", "Cannot delete the default version of a policy.", 409)
            conn.execute(delete(iam_policy_versions).where((iam_policy_versions.c.policy_arn == arn)
                                                           & (iam_policy_versions.c.version_id == version)))
        return {}

    def _tag_policy(self, ctx: RequestContext, params: dict[str, Any], action: str,
                    add: list[dict[str, str]] | None, remove: list[str] | None) -> dict[str, Any]:
        arn = params["PolicyArn"]
        ctx.authorize(action, arn)
        with self._write(ctx.account_id) as conn:
            tags = {t["Key"]: t["Value"] for t in self._own_policy(conn, ctx, arn)["tags"] or []}
            for t in add or []:
                tags[t["Key"]] = t["Value"]
            for k in remove or []:
                tags.pop(k, None)
            conn.execute(update(iam_policies).where(iam_policies.c.arn == arn)
                         .values(tags=[{"Key": k, "Value": v} for k, v in tags.items()]))
        return {}

    def tag_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._tag_policy(ctx, params, "iam:TagPolicy", params["Tags"], None)

    def untag_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._tag_policy(ctx, params, "iam:UntagPolicy", None, params["TagKeys"])

    def list_policy_tags(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize("iam:ListPolicyTags", params["PolicyArn"])
        with self.app.db.read() as conn:
            policy = store.get_policy(conn, ctx.account_id, params["PolicyArn"])
        return _page(list(policy["tags"] or []), params, "Tags")

    def list_entities_for_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """The caller's users and roles the policy is attached to (an AWS managed policy's
        attachments in other accounts are theirs)."""
        arn = params["PolicyArn"]
        ctx.authorize("iam:ListEntitiesForPolicy", arn)
        wanted = params.get("EntityFilter")
        prefix = params.get("PathPrefix") or "/"
        with self.app.db.read() as conn:
            store.get_policy(conn, ctx.account_id, arn)
            out: dict[str, list[dict[str, Any]]] = {"PolicyGroups": [], "PolicyUsers": [], "PolicyRoles": []}
            for kind, table, key, prefix_key in (("user", iam_users, "PolicyUsers", "User"),
                                                 ("role", iam_roles, "PolicyRoles", "Role")):
                if wanted not in (None, "", "User" if kind == "user" else "Role", "LocalManagedPolicy",
                                  "AWSManagedPolicy"):
                    continue
                rows = conn.execute(select(table.c.name, table.c.path, table.c[f"{kind}_id"]).join(
                    iam_attachments, (iam_attachments.c.account_id == table.c.account_id)
                    & (iam_attachments.c.principal_name == table.c.name)
                    & (iam_attachments.c.principal_type == kind)).where(
                    (table.c.account_id == ctx.account_id) & (iam_attachments.c.policy_arn == arn))
                    .order_by(table.c.name)).all()
                out[key] = [{f"{prefix_key}Name": r[0], f"{prefix_key}Id": r[2]} for r in rows
                            if r[1].startswith(prefix)]
        page = _page(out["PolicyUsers"] + out["PolicyRoles"], params, "_all")
        return {"PolicyGroups": [], "PolicyUsers": [e for e in page["_all"] if "UserName" in e],
                "PolicyRoles": [e for e in page["_all"] if "RoleName" in e], "IsTruncated": page["IsTruncated"],
                **({"Marker": page["Marker"]} if "Marker" in page else {})}

    # -------------------------------------------------------------------------------- attachments
    def _attach(self, ctx: RequestContext, params: dict[str, Any], kind: str, name_key: str, action: str,
                attach: bool) -> dict[str, Any]:
        name = params[name_key]
        ctx.authorize(action, self._user_arn(ctx, name) if kind == "user" else self._role_arn(ctx, name),
                      context={"iam:PolicyARN": params["PolicyArn"]})
        with self._write(ctx.account_id) as conn:
            (store.get_user if kind == "user" else store.get_role)(conn, ctx.account_id, name)
            if attach:
                store.attach_policy(conn, ctx.account_id, kind, name, params["PolicyArn"])
            else:
                store.detach_policy(conn, ctx.account_id, kind, name, params["PolicyArn"])
        return {}

    def _list_attached(self, ctx: RequestContext, params: dict[str, Any], kind: str, name_key: str,
                       action: str) -> dict[str, Any]:
        name = params[name_key]
        ctx.authorize(action, self._user_arn(ctx, name) if kind == "user" else self._role_arn(ctx, name))
        with self.app.db.read() as conn:
            (store.get_user if kind == "user" else store.get_role)(conn, ctx.account_id, name)
            rows = conn.execute(select(iam_policies.c.name, iam_policies.c.arn).join(
                iam_attachments, iam_attachments.c.policy_arn == iam_policies.c.arn).where(
                (iam_attachments.c.account_id == ctx.account_id) & (iam_attachments.c.principal_type == kind)
                & (iam_attachments.c.principal_name == name)).order_by(iam_policies.c.name)).all()
        return _page([{"PolicyName": r.name, "PolicyArn": r.arn} for r in rows], params, "AttachedPolicies")

    def attach_user_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._attach(ctx, params, "user", "UserName", "iam:AttachUserPolicy", True)

    def detach_user_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._attach(ctx, params, "user", "UserName", "iam:DetachUserPolicy", False)

    def list_attached_user_policies(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._list_attached(ctx, params, "user", "UserName", "iam:ListAttachedUserPolicies")

    def attach_role_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._attach(ctx, params, "role", "RoleName", "iam:AttachRolePolicy", True)

    def detach_role_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._attach(ctx, params, "role", "RoleName", "iam:DetachRolePolicy", False)

    def list_attached_role_policies(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._list_attached(ctx, params, "role", "RoleName", "iam:ListAttachedRolePolicies")

    # -------------------------------------------------------------------------------- boundaries
    def _boundary(self, ctx: RequestContext, kind: str, name: str, action: str, arn: str | None) -> dict[str, Any]:
        table = iam_users if kind == "user" else iam_roles
        ctx.authorize(action, self._user_arn(ctx, name) if kind == "user" else self._role_arn(ctx, name))
        with self._write(ctx.account_id) as conn:
            (store.get_user if kind == "user" else store.get_role)(conn, ctx.account_id, name)
            if arn and not store.policy_exists(conn, arn, ctx.account_id):
                raise store.no_such_entity(f"Policy {arn} does not exist or is not attachable.")
            conn.execute(update(table).where((table.c.account_id == ctx.account_id) & (table.c.name == name))
                         .values(permissions_boundary=arn))
        return {}

    def put_user_permissions_boundary(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._boundary(ctx, "user", params["UserName"], "iam:PutUserPermissionsBoundary",
                              params["PermissionsBoundary"])

    def delete_user_permissions_boundary(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._boundary(ctx, "user", params["UserName"], "iam:DeleteUserPermissionsBoundary", None)

    def put_role_permissions_boundary(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._boundary(ctx, "role", params["RoleName"], "iam:PutRolePermissionsBoundary",
                              params["PermissionsBoundary"])

    def delete_role_permissions_boundary(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._boundary(ctx, "role", params["RoleName"], "iam:DeleteRolePermissionsBoundary", None)

    # ------------------------------------------------------------------------------- access keys
    def create_access_key(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("UserName") or ctx.identity.user_name
        if not name:
            raise ServiceError("ValidationError", "Must specify userName when calling with non-User credentials", 400)
        ctx.authorize("iam:CreateAccessKey", self._user_arn(ctx, name))
        with self._write(ctx.account_id) as conn:
            row = store.create_access_key(conn, ctx.account_id, name)
        return {"AccessKey": {"UserName": name, "AccessKeyId": row["access_key_id"], "Status": "Active",
                              "SecretAccessKey": row["secret_access_key"], "CreateDate": row["created_at"]}}

    def list_access_keys(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("UserName") or ctx.identity.user_name or ""
        ctx.authorize("iam:ListAccessKeys", self._user_arn(ctx, name))
        with self.app.db.read() as conn:
            store.get_user(conn, ctx.account_id, name)
            rows = conn.execute(select(iam_access_keys).where((iam_access_keys.c.account_id == ctx.account_id)
                                                              & (iam_access_keys.c.user_name == name))
                                .order_by(iam_access_keys.c.created_at)).mappings().all()
        return _page([{"UserName": name, "AccessKeyId": r["access_key_id"], "Status": r["status"],
                       "CreateDate": r["created_at"]} for r in rows], params, "AccessKeyMetadata")

    def _key_update(self, ctx: RequestContext, params: dict[str, Any], action: str, status: str | None) -> dict[str, Any]:
        name = params.get("UserName") or ctx.identity.user_name or ""
        ctx.authorize(action, self._user_arn(ctx, name))
        cond = ((iam_access_keys.c.account_id == ctx.account_id) & (iam_access_keys.c.user_name == name)
                & (iam_access_keys.c.access_key_id == params["AccessKeyId"]))
        with self._write(ctx.account_id) as conn:
            result = (conn.execute(delete(iam_access_keys).where(cond)) if status is None
                      else conn.execute(update(iam_access_keys).where(cond).values(status=status)))
            if result.rowcount == 0:
                raise store.no_such_entity(f"The Access Key with id {params['AccessKeyId']} cannot be found.")
        return {}

    def delete_access_key(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._key_update(ctx, params, "iam:DeleteAccessKey", None)

    def update_access_key(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._key_update(ctx, params, "iam:UpdateAccessKey", params["Status"])

    # ---------------------------------------------------------------------------------- tagging
    def _tag(self, ctx: RequestContext, kind: str, name: str, action: str, add: list[dict[str, str]] | None,
             remove: list[str] | None) -> dict[str, Any]:
        table = iam_users if kind == "user" else iam_roles
        ctx.authorize(action, self._user_arn(ctx, name) if kind == "user" else self._role_arn(ctx, name))
        with self._write(ctx.account_id) as conn:
            row = (store.get_user if kind == "user" else store.get_role)(conn, ctx.account_id, name)
            tags = {t["Key"]: t["Value"] for t in row["tags"] or []}
            for t in add or []:
                tags[t["Key"]] = t["Value"]
            for k in remove or []:
                tags.pop(k, None)
            limits.check_tag_count(len(tags))
            conn.execute(update(table).where((table.c.account_id == ctx.account_id) & (table.c.name == name))
                         .values(tags=[{"Key": k, "Value": v} for k, v in tags.items()]))
        return {}

    def tag_user(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._tag(ctx, "user", params["UserName"], "iam:TagUser", params["Tags"], None)

    def untag_user(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._tag(ctx, "user", params["UserName"], "iam:UntagUser", None, params["TagKeys"])

    def tag_role(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._tag(ctx, "role", params["RoleName"], "iam:TagRole", params["Tags"], None)

    def untag_role(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._tag(ctx, "role", params["RoleName"], "iam:UntagRole", None, params["TagKeys"])

    # ------------------------------------------------------------------------------- simulation
    def simulate_principal_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        source_arn = params["PolicySourceArn"]
        account, kind, name = simulation.principal_ref(source_arn)
        ctx.authorize("iam:SimulatePrincipalPolicy", source_arn, resource_account=account)
        if kind == "group":
            raise store.no_such_entity(f"The group with name {name} cannot be found.")
        exclusions = list(params.get("PolicyExclusionList") or [])
        simulation.check_exclusions(exclusions)
        with self.app.db.read() as conn:
            identity, boundary = simulation.principal_policies(conn, account, kind, name, source_arn)
        identity = [p for p in identity if not simulation.excluded(p, exclusions)]
        if boundary is not None and simulation.excluded(boundary, exclusions):
            boundary = None
        identity += simulation.input_policies(params.get("PolicyInputList"), "PolicyInputList", "identity")
        boundaries = simulation.input_policies(params.get("PermissionsBoundaryPolicyInputList"),
                                               "PermissionsBoundaryPolicyInputList", "boundary")
        caller = simulation.caller_from_arn(params.get("CallerArn") or source_arn)
        return self._simulate(params, simulation.Simulation(
            caller=caller, identity=identity, boundary=self._one_boundary(boundaries) or boundary))

    def simulate_custom_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize("iam:SimulateCustomPolicy", "*")
        identity = simulation.input_policies(params["PolicyInputList"], "PolicyInputList", "identity")
        boundaries = simulation.input_policies(params.get("PermissionsBoundaryPolicyInputList"),
                                               "PermissionsBoundaryPolicyInputList", "boundary")
        scps = simulation.scp_levels(params.get("OrderedOrganizationPolicyInputList"))
        if params.get("CallerArn"):
            caller = simulation.caller_from_arn(params["CallerArn"])
        elif params.get("ResourcePolicy"):
            raise simulation.invalid("CallerArn is required when a ResourcePolicy is included in the simulation.")
        else:
            caller = simulation.Caller(arn=f"arn:aws:iam::{ctx.account_id}:user/simulated-caller",
                                       account=ctx.account_id, kind="user")
        return self._simulate(params, simulation.Simulation(
            caller=caller, identity=identity, boundary=self._one_boundary(boundaries), scps=scps))

    @staticmethod
    def _one_boundary(boundaries: list[simulation.SourcePolicy]) -> simulation.SourcePolicy | None:
        if len(boundaries) > 1:
            raise simulation.invalid("PermissionsBoundaryPolicyInputList can contain only one policy.")
        return boundaries[0] if boundaries else None

    def _simulate(self, params: dict[str, Any], sim: simulation.Simulation) -> dict[str, Any]:
        if not params.get("ResourcePolicy"):  # the key and trust policies the server would use
            with self.app.db.read() as conn:
                sim.stored = simulation.stored_resource_policies(conn, list(params["ActionNames"]),
                                                                 params.get("ResourceArns"))
        if params.get("ResourcePolicy"):
            sim.resource_policy = simulation.SourcePolicy(params["ResourcePolicy"], "ResourcePolicy", "resource",
                                                          "resource")
            sim.resource_owner = simulation.owner_account(params.get("ResourceOwner")) or sim.caller.account
        else:
            sim.resource_owner = simulation.owner_account(params.get("ResourceOwner"))
        sim.context = simulation.context_from_entries(params.get("ContextEntries"))
        results = simulation.simulate(sim, list(params["ActionNames"]), params.get("ResourceArns"))
        return simulation.page(results, params)
