"""The layer operations of the Lambda API (a part of LambdaProvider), and the check CreateFunction
and UpdateFunctionConfiguration make of the Layers they are given.

Each operation authorizes ``lambda:<Action>`` on the layer version's ARN (the layer's ARN for
PublishLayerVersion and ListLayerVersions) with the version's resource policy, so another account
uses a layer only where AddLayerVersionPermission let it; adding a layer to a function takes
``lambda:GetLayerVersion`` on it, as on AWS.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from stratum.services.lambda_ import code, layers
from stratum.services.lambda_.codeurls import code_url
from stratum.services.lambda_.configs import PYTHON_RUNTIMES
from stratum.services.lambda_.names import conflict, invalid, not_found, precondition_failed
from stratum.services.lambda_.paging import page
from stratum.services.lambda_.permissions import document

if TYPE_CHECKING:
    from pathlib import Path

    from stratum.server.context import RequestContext

_SID = re.compile(r"[a-zA-Z0-9-_]{1,100}")
_PRINCIPAL = re.compile(r"\d{12}|\*|arn:(aws[a-zA-Z-]*):iam::\d{12}:root")
_ORG = re.compile(r"o-[a-z0-9]{10,32}")


class LayersMixin:
    """Layer operations; mixed into LambdaProvider, whose ``_read`` and ``_write`` they use."""

    app: Any
    data_dir: Path

    # ------------------------------------------------------------------------------------- plumbing
    def _layer_version(self, ctx: RequestContext, conn: Connection, action: str, ref: layers.LayerRef,
                       version: int, *, lock: bool = False) -> dict[str, Any]:
        """The version, authorized for ``action`` (a missing one is authorized first, so a caller
        without the permission learns nothing)."""
        arn = ref.version_arn(version)
        row = layers.get_version(conn, ref, version, lock=lock)
        policy = document(row["policy"]) if row is not None and row["policy"] else None
        ctx.authorize("lambda:" + action, arn, resource_account=ref.account_id, resource_policy=policy)
        if row is None:
            raise layers.not_found_error()
        return row

    def _location(self, row: dict[str, Any]) -> str:
        return code_url(self.app.settings.endpoint_url, self.app.settings.master_key_path, row["code_sha256"])

    def _version_number(self, params: dict[str, Any]) -> int:
        number = params["VersionNumber"]
        if int(number) < 1:
            raise invalid(f"1 validation error detected: Value '{number}' at 'versionNumber' failed to satisfy "
                          "constraint: Member must have value greater than or equal to 1")
        return int(number)

    def function_layers(self, ctx: RequestContext, arns: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
        """The Layers of a function configuration (Arn, CodeSize) and their archives' digests, in
        order; each must exist and be readable by the caller."""
        if len(arns) > layers.MAX_LAYERS:
            raise invalid(f"1 validation error detected: Value '{arns}' at 'layers' failed to satisfy constraint: "
                          f"Member must have length less than or equal to {layers.MAX_LAYERS}")
        if len({layers.parse_version_arn(a, ctx.region)[0] for a in arns}) != len(arns):
            raise invalid("Two different versions of the same layer are not allowed to be referenced in the same "
                          "function.")
        shown, digests, total = [], [], 0
        with self._read() as conn:
            for arn in arns:
                ref, version = layers.parse_version_arn(arn, ctx.region)
                row = layers.get_version(conn, ref, version)
                policy = document(row["policy"]) if row is not None and row["policy"] else None
                ctx.authorize("lambda:GetLayerVersion", arn, resource_account=ref.account_id, resource_policy=policy)
                if row is None:
                    raise invalid(f"Layer version {arn} does not exist.")
                shown.append({"Arn": arn, "CodeSize": row["code_size"]})
                digests.append(row["code_sha256"])
                total += code.unzipped_size(self.data_dir, row["code_sha256"])
        if total > code.MAX_UNZIPPED_BYTES:
            raise invalid(f"Function code combined with layers exceeds the maximum allowed size of "
                          f"{code.MAX_UNZIPPED_BYTES} bytes.")
        return shown, digests

    # ----------------------------------------------------------------------------------- operations
    def publish_layer_version(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = layers.parse_layer_name(params["LayerName"], ctx.account_id, ctx.region)
        ctx.authorize("lambda:PublishLayerVersion", ref.arn, resource_account=ref.account_id)
        if ref.account_id != ctx.account_id:
            raise invalid("Layers can only be published in the caller's own account.")
        for runtime in params.get("CompatibleRuntimes") or []:
            if runtime not in PYTHON_RUNTIMES:
                raise invalid(f"Value {runtime} at 'compatibleRuntimes' is not supported by Stratum: it runs Python "
                              f"functions ({', '.join(PYTHON_RUNTIMES)}).")
        data = code.code_from_params(ctx, params["Content"])
        sha, size = code.store_zip(self.data_dir, data)
        now = datetime.now(UTC)
        config = {"Description": params.get("Description", ""),
                  "CreatedDate": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000",
                  "CompatibleRuntimes": list(params.get("CompatibleRuntimes") or []),
                  "CompatibleArchitectures": list(params.get("CompatibleArchitectures") or []),
                  "LicenseInfo": params.get("LicenseInfo")}
        with self._write() as conn:
            row = layers.publish(conn, ref, config, sha, size)
        return layers.view(row, self._location(row))

    def get_layer_version(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = layers.parse_layer_name(params["LayerName"], ctx.account_id, ctx.region)
        with self._read() as conn:
            row = self._layer_version(ctx, conn, "GetLayerVersion", ref, self._version_number(params))
        return layers.view(row, self._location(row))

    def get_layer_version_by_arn(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref, version = layers.parse_version_arn(params["Arn"], ctx.region)
        with self._read() as conn:
            row = self._layer_version(ctx, conn, "GetLayerVersion", ref, version)
        return layers.view(row, self._location(row))

    def list_layer_versions(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = layers.parse_layer_name(params["LayerName"], ctx.account_id, ctx.region)
        ctx.authorize("lambda:ListLayerVersions", ref.arn, resource_account=ref.account_id)
        with self._read() as conn:
            rows = [r for r in layers.versions(conn, ref)
                    if layers.compatible(r, params.get("CompatibleRuntime"), params.get("CompatibleArchitecture"))]
        chunk, marker = page(rows, params.get("Marker"), params.get("MaxItems"))
        out: dict[str, Any] = {"LayerVersions": [layers.list_item(r) for r in chunk]}
        if marker:
            out["NextMarker"] = marker
        return out

    def list_layers(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize("lambda:ListLayers", "*")
        latest: dict[str, dict[str, Any]] = {}
        with self._read() as conn:
            for row in layers.account_versions(conn, ctx.account_id, ctx.region):  # newest first per layer
                if row["layer_name"] not in latest and layers.compatible(
                        row, params.get("CompatibleRuntime"), params.get("CompatibleArchitecture")):
                    latest[row["layer_name"]] = row
        chunk, marker = page(list(latest.values()), params.get("Marker"), params.get("MaxItems"))
        items = [{"LayerName": row["layer_name"],
                  "LayerArn": layers.LayerRef(row["account_id"], row["region"], row["layer_name"]).arn,
                  "LatestMatchingVersion": layers.list_item(row)} for row in chunk]
        out: dict[str, Any] = {"Layers": items}
        if marker:
            out["NextMarker"] = marker
        return out

    def delete_layer_version(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = layers.parse_layer_name(params["LayerName"], ctx.account_id, ctx.region)
        version = self._version_number(params)
        ctx.authorize("lambda:DeleteLayerVersion", ref.version_arn(version), resource_account=ref.account_id)
        # Deleting a version that does not exist succeeds, as on Lambda; functions that use it keep
        # their copy (the archive stays in the code store).
        with self._write() as conn:
            layers.delete_version(conn, ref, version)
        return {}

    def add_layer_version_permission(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = layers.parse_layer_name(params["LayerName"], ctx.account_id, ctx.region)
        version = self._version_number(params)
        sid, action, principal = params["StatementId"], params["Action"], params["Principal"]
        if not _SID.fullmatch(sid):
            raise invalid(f"1 validation error detected: Value '{sid}' at 'statementId' failed to satisfy constraint: "
                          "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)")
        if action != "lambda:GetLayerVersion":
            raise invalid(f"1 validation error detected: Value '{action}' at 'action' failed to satisfy constraint: "
                          "Member must satisfy regular expression pattern: lambda:GetLayerVersion")
        if not _PRINCIPAL.fullmatch(principal):
            raise invalid(f"1 validation error detected: Value '{principal}' at 'principal' failed to satisfy "
                          "constraint: Member must satisfy regular expression pattern: "
                          "\\d{12}|\\*|arn:(aws[a-zA-Z-]*):iam::\\d{12}:root")
        org = params.get("OrganizationId")
        if org is not None and (principal != "*" or not _ORG.fullmatch(org)):
            raise invalid("OrganizationId must be an organization ID (o-...) and the principal must be '*'.")
        statement: dict[str, Any] = {
            "Sid": sid, "Effect": "Allow",
            "Principal": "*" if principal == "*" else {
                "AWS": principal if principal.startswith("arn:") else f"arn:aws:iam::{principal}:root"},
            "Action": action, "Resource": ref.version_arn(version)}
        if org:
            statement["Condition"] = {"StringEquals": {"aws:PrincipalOrgID": org}}
        with self._write() as conn:
            row = self._layer_version(ctx, conn, "AddLayerVersionPermission", ref, version, lock=True)
            if params.get("RevisionId") and params["RevisionId"] != row["policy_revision"]:
                raise precondition_failed()
            if any(s.get("Sid") == sid for s in row["policy"]):
                raise conflict(f"The statement id ({sid}) provided already exists. Please provide a new statement "
                               "id, or remove the existing statement.")
            new_revision = layers.set_policy(conn, ref, version, [*row["policy"], statement])
        return {"Statement": json.dumps(statement, separators=(",", ":")), "RevisionId": new_revision}

    def remove_layer_version_permission(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = layers.parse_layer_name(params["LayerName"], ctx.account_id, ctx.region)
        version = self._version_number(params)
        with self._write() as conn:
            row = self._layer_version(ctx, conn, "RemoveLayerVersionPermission", ref, version, lock=True)
            if params.get("RevisionId") and params["RevisionId"] != row["policy_revision"]:
                raise precondition_failed()
            kept = [s for s in row["policy"] if s.get("Sid") != params["StatementId"]]
            if len(kept) == len(row["policy"]):
                raise not_found(f"Statement {params['StatementId']} is not found in resource policy.")
            layers.set_policy(conn, ref, version, kept)
        return {}

    def get_layer_version_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = layers.parse_layer_name(params["LayerName"], ctx.account_id, ctx.region)
        with self._read() as conn:
            row = self._layer_version(ctx, conn, "GetLayerVersionPolicy", ref, self._version_number(params))
        if not row["policy"]:
            raise not_found("No policy is associated with the given resource.")
        return {"Policy": document(row["policy"]), "RevisionId": row["policy_revision"]}
