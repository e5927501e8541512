"""AWS Lambda API: functions, versions, aliases, resource policies, tags, and Invoke (which hands
over to the runtime in stratum.functions).

Every handler authorizes ``lambda:<Action>`` on the function's ARN (qualified where the request
names a version or alias), with the function's resource policy, so another account reaches a
function only where an AddPermission statement lets it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from stratum.auth.authorizer import tag_condition_keys
from stratum.auth.passrole import _assumable, check_pass_role
from stratum.protocol.errors import ServiceError
from stratum.server.context import Provider, RequestContext, blocking
from stratum.services.lambda_ import catalog, code, configs, permissions
from stratum.services.lambda_.codeurls import code_url
from stratum.services.lambda_.layers_api import LayersMixin
from stratum.services.lambda_.names import (
    ALIAS,
    LATEST,
    VERSION,
    FunctionRef,
    function_arn,
    invalid,
    not_found,
    parse_function_name,
    parse_resource_arn,
    precondition_failed,
)
from stratum.services.lambda_.paging import page

LAMBDA_SERVICE = "lambda.amazonaws.com"
ROLE_ERROR = "The role defined for the function cannot be assumed by Lambda."


def _alias_view(ref: FunctionRef, alias: dict[str, Any]) -> dict[str, Any]:
    out = {"AliasArn": function_arn(ref.region, ref.account_id, ref.name, alias["name"]), "Name": alias["name"],
           "FunctionVersion": alias["function_version"], "Description": alias["description"] or "",
           "RevisionId": alias["revision_id"]}
    if alias["routing_config"]:
        out["RoutingConfig"] = alias["routing_config"]
    return out


class LambdaProvider(LayersMixin, Provider):
    service = "lambda"

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        from stratum.functions import runtime_for

        self.runtime = runtime_for(app)

    # ------------------------------------------------------------------------------------ plumbing
    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.app.db.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.app.db.read() as conn:
            yield conn

    @property
    def data_dir(self) -> Path:
        return Path(self.app.settings.data_dir)

    def _ref(self, ctx: RequestContext, params: dict[str, Any], *, qualified: bool = True) -> FunctionRef:
        return parse_function_name(params["FunctionName"], ctx.account_id, ctx.region, params.get("Qualifier"),
                                   allow_qualifier=qualified)

    def _function(self, ctx: RequestContext, conn: Connection, action: str, ref: FunctionRef, *,
                  lock: bool = False, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The function, authorized for ``action`` (a missing one is authorized first, so a caller
        without the permission learns nothing)."""
        resource = ref.qualified_arn
        try:
            function = catalog.get_function(conn, ref, lock=lock)
        except ServiceError:
            ctx.authorize("lambda:" + action, resource, resource_account=ref.account_id, context=extra)
            raise
        policy = permissions.document(function["policy"]) if function["policy"] else None
        ctx.authorize("lambda:" + action, resource, resource_account=ref.account_id, resource_policy=policy,
                      context=extra)
        return function

    def _check_role(self, ctx: RequestContext, role: str, arn: str) -> None:
        configs.check_role(role)
        check_pass_role(ctx, role, LAMBDA_SERVICE, associated_resource_arn=arn, validate_role=False)
        if not _assumable(ctx, role, role.split(":")[4], role.rsplit("/", 1)[-1], LAMBDA_SERVICE, arn):
            raise invalid(ROLE_ERROR)

    def _layers_config(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        """The configuration members a request's Layers give (none for no layers)."""
        if not params.get("Layers"):
            return {}
        shown, digests = self.function_layers(ctx, list(params["Layers"]))
        return {"Layers": shown, configs.LAYER_CODE_KEY: digests}

    def _latest(self, conn: Connection, ref: FunctionRef) -> dict[str, Any]:
        row = catalog.get_version(conn, ref, LATEST)
        if row is None:
            raise catalog.function_not_found(ref)
        return row

    # ------------------------------------------------------------------------------------ functions
    @blocking
    def create_function(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["FunctionName"]
        configs.check_name(name)
        ref = FunctionRef(ctx.account_id, ctx.region, name, None)
        tags = dict(params.get("Tags") or {})
        ctx.authorize("lambda:CreateFunction", ref.arn, context=tag_condition_keys(tags))
        if params.get("PackageType", "Zip") != "Zip":
            raise invalid("Container image functions are not supported by Stratum: use PackageType Zip.")
        for required in ("Runtime", "Handler", "Role"):
            if not params.get(required):
                raise invalid(f"{required} is required for .zip file archive functions.")
        self._check_role(ctx, params["Role"], ref.arn)
        config = configs.apply(configs.defaults(name), params, name)
        config.update(self._layers_config(ctx, params))
        data = code.code_from_params(ctx, params["Code"])
        sha, size = code.store_zip(self.data_dir, data)
        code.task_root(self.data_dir, sha)  # unpacked now: the first invocation does not wait for it
        at = catalog.now()
        config.update({"CodeSha256": code.sha256_b64(sha), "CodeSize": size, "RevisionId": catalog.revision(),
                       "LastModified": catalog.last_modified(at)})
        with self._write() as conn:
            catalog.create_function(conn, ref, config, sha, tags, at)
            row = catalog.publish(conn, ref, None, at) if params.get("Publish") else self._latest(conn, ref)
        return configs.view(row)

    def get_function(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self._read() as conn:
            function = self._function(ctx, conn, "GetFunction", ref)
            row, _alias = catalog.resolve(conn, ref)
        out: dict[str, Any] = {
            "Configuration": configs.view(row),
            "Code": {"RepositoryType": "S3", "Location": code_url(self.app.settings.endpoint_url,
                                                                   self.app.settings.master_key_path,
                                                                   row["code_sha256"])}}
        if function["tags"]:
            out["Tags"] = function["tags"]
        return out

    def get_function_configuration(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self._read() as conn:
            self._function(ctx, conn, "GetFunctionConfiguration", ref)
            row, _alias = catalog.resolve(conn, ref)
        return configs.view(row)

    def list_functions(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize("lambda:ListFunctions", "*")
        with self._read() as conn:
            latest = catalog.list_functions(conn, ctx.account_id, ctx.region)
            rows: list[dict[str, Any]] = []
            if params.get("FunctionVersion") == "ALL":
                for row in latest:
                    rows.extend(catalog.list_versions(conn, FunctionRef(ctx.account_id, ctx.region,
                                                                        row["function_name"], None)))
            else:
                rows = latest
        chunk, marker = page(rows, params.get("Marker"), params.get("MaxItems"))
        out: dict[str, Any] = {"Functions": [configs.view(r, qualified_latest=params.get("FunctionVersion") == "ALL")
                                             for r in chunk]}
        if marker:
            out["NextMarker"] = marker
        return out

    @blocking
    def update_function_code(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params, qualified=False)
        with self._read() as conn:
            self._function(ctx, conn, "UpdateFunctionCode", ref)
        data = code.code_from_params(ctx, params)
        sha, size = code.store_zip(self.data_dir, data)
        code.task_root(self.data_dir, sha)
        at = catalog.now()
        with self._write() as conn:
            catalog.get_function(conn, ref, lock=True)
            latest = self._latest(conn, ref)
            if params.get("RevisionId") and params["RevisionId"] != latest["config"].get("RevisionId"):
                raise precondition_failed()
            config = dict(latest["config"])
            config.update({"CodeSha256": code.sha256_b64(sha), "CodeSize": size, "RevisionId": catalog.revision(),
                           "LastModified": catalog.last_modified(at), "LastUpdateStatus": "Successful"})
            if params.get("DryRun"):
                return configs.view({**latest, "config": config})
            catalog.set_latest(conn, ref, config, sha)
            row = catalog.publish(conn, ref, None, at) if params.get("Publish") else self._latest(conn, ref)
        self.runtime.pool.retire(ref.account_id, ref.region, ref.name)
        return configs.view(row)

    def update_function_configuration(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params, qualified=False)
        with self._read() as conn:
            self._function(ctx, conn, "UpdateFunctionConfiguration", ref)
        if params.get("Role"):
            self._check_role(ctx, params["Role"], ref.arn)
        layer_config = self._layers_config(ctx, params)
        at = catalog.now()
        with self._write() as conn:
            catalog.get_function(conn, ref, lock=True)
            latest = self._latest(conn, ref)
            if params.get("RevisionId") and params["RevisionId"] != latest["config"].get("RevisionId"):
                raise precondition_failed()
            config = configs.apply(latest["config"], params, ref.name)
            if "Layers" in params:
                config = {k: v for k, v in config.items() if k not in ("Layers", configs.LAYER_CODE_KEY)}
                config.update(layer_config)
            config.update({"RevisionId": catalog.revision(), "LastModified": catalog.last_modified(at),
                           "LastUpdateStatus": "Successful"})
            catalog.set_latest(conn, ref, config, latest["code_sha256"])
            row = self._latest(conn, ref)
        self.runtime.pool.retire(ref.account_id, ref.region, ref.name)
        return configs.view(row)

    def delete_function(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self._write() as conn:
            self._function(ctx, conn, "DeleteFunction", ref, lock=True)
            if ref.qualifier is None:
                catalog.delete_function(conn, ref)
            elif ref.qualifier == LATEST:
                raise invalid("$LATEST version cannot be deleted without deleting the function.")
            elif not VERSION.fullmatch(ref.qualifier):
                raise invalid("Deletion of aliases is not supported. Use DeleteAlias.")
            else:
                if catalog.get_version(conn, ref, ref.qualifier) is None:
                    raise catalog.function_not_found(ref, ref.qualifier)
                catalog.delete_version(conn, ref, ref.qualifier)
        self.runtime.pool.retire(ref.account_id, ref.region, ref.name)
        return {"StatusCode": 204}

    # ------------------------------------------------------------------------------------- versions
    def publish_version(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params, qualified=False)
        with self._write() as conn:
            self._function(ctx, conn, "PublishVersion", ref, lock=True)
            latest = self._latest(conn, ref)
            if params.get("RevisionId") and params["RevisionId"] != latest["config"].get("RevisionId"):
                raise precondition_failed()
            current = latest["config"].get("CodeSha256")
            if params.get("CodeSha256") and params["CodeSha256"] != current:
                raise invalid(f"CodeSHA256 ({params['CodeSha256']}) is different from current CodeSHA256 in $LATEST "
                              f"({current}). Please try again with the CodeSHA256 in $LATEST.")
            row = catalog.publish(conn, ref, params.get("Description"), catalog.now())
        return configs.view(row)

    def list_versions_by_function(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params, qualified=False)
        with self._read() as conn:
            self._function(ctx, conn, "ListVersionsByFunction", ref)
            rows = catalog.list_versions(conn, ref)
        chunk, marker = page(rows, params.get("Marker"), params.get("MaxItems"))
        out: dict[str, Any] = {"Versions": [configs.view(r, qualified_latest=True) for r in chunk]}
        if marker:
            out["NextMarker"] = marker
        return out

    # -------------------------------------------------------------------------------------- aliases
    def _check_alias_target(self, conn: Connection, ref: FunctionRef, version: str,
                            routing: dict[str, Any] | None) -> None:
        if version != LATEST and not VERSION.fullmatch(version):
            raise invalid(f"Invalid function version {version}.")
        if catalog.get_version(conn, ref, version) is None:
            raise catalog.function_not_found(ref, version)
        for extra in ((routing or {}).get("AdditionalVersionWeights") or {}):
            if catalog.get_version(conn, ref, extra) is None:
                raise catalog.function_not_found(ref, extra)

    def create_alias(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params, qualified=False)
        name = params["Name"]
        if not ALIAS.fullmatch(name) or name == LATEST:
            raise invalid(f"1 validation error detected: Value '{name}' at 'name' failed to satisfy constraint: "
                          "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)")
        alias_ref = FunctionRef(ref.account_id, ref.region, ref.name, name)
        with self._write() as conn:
            self._function(ctx, conn, "CreateAlias", alias_ref)
            self._check_alias_target(conn, ref, params["FunctionVersion"], params.get("RoutingConfig"))
            alias = catalog.create_alias(conn, ref, name, params["FunctionVersion"], params.get("Description", ""),
                                         params.get("RoutingConfig"))
        return _alias_view(ref, alias)

    def _alias(self, ctx: RequestContext, conn: Connection, action: str, params: dict[str, Any]
               ) -> tuple[FunctionRef, dict[str, Any]]:
        ref = self._ref(ctx, params, qualified=False)
        self._function(ctx, conn, action, FunctionRef(ref.account_id, ref.region, ref.name, params["Name"]))
        alias = catalog.get_alias(conn, ref, params["Name"])
        if alias is None:
            raise not_found(f"Alias not found: {function_arn(ref.region, ref.account_id, ref.name, params['Name'])}")
        return ref, alias

    def get_alias(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._read() as conn:
            ref, alias = self._alias(ctx, conn, "GetAlias", params)
        return _alias_view(ref, alias)

    def update_alias(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._write() as conn:
            ref, alias = self._alias(ctx, conn, "UpdateAlias", params)
            if params.get("RevisionId") and params["RevisionId"] != alias["revision_id"]:
                raise precondition_failed()
            values: dict[str, Any] = {}
            if "FunctionVersion" in params:
                self._check_alias_target(conn, ref, params["FunctionVersion"], params.get("RoutingConfig"))
                values["function_version"] = params["FunctionVersion"]
            if "Description" in params:
                values["description"] = params["Description"]
            if "RoutingConfig" in params:
                values["routing_config"] = params["RoutingConfig"]
            alias = catalog.update_alias(conn, ref, params["Name"], **values)
        return _alias_view(ref, alias)

    def delete_alias(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self._write() as conn:
            ref, _alias = self._alias(ctx, conn, "DeleteAlias", params)
            catalog.delete_alias(conn, ref, params["Name"])
        return {}

    def list_aliases(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params, qualified=False)
        with self._read() as conn:
            self._function(ctx, conn, "ListAliases", ref)
            aliases = catalog.list_aliases(conn, ref)
        if params.get("FunctionVersion"):
            aliases = [a for a in aliases if a["function_version"] == params["FunctionVersion"]]
        chunk, marker = page(aliases, params.get("Marker"), params.get("MaxItems"))
        out: dict[str, Any] = {"Aliases": [_alias_view(ref, a) for a in chunk]}
        if marker:
            out["NextMarker"] = marker
        return out

    # ---------------------------------------------------------------------------------- permissions
    def _qualifier_exists(self, conn: Connection, ref: FunctionRef) -> None:
        if ref.qualifier is None:
            return
        catalog.resolve(conn, ref)

    def add_permission(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self._write() as conn:
            function = self._function(ctx, conn, "AddPermission", ref, lock=True)
            self._qualifier_exists(conn, ref)
            if params.get("RevisionId") and params["RevisionId"] != function["policy_revision"]:
                raise precondition_failed()
            statement = permissions.statement(params, ref.qualified_arn)
            catalog.update_function(conn, ref, policy=permissions.add(function["policy"], statement),
                                    policy_revision=catalog.revision())
        return {"Statement": json.dumps(statement, separators=(",", ":"))}

    def remove_permission(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self._write() as conn:
            function = self._function(ctx, conn, "RemovePermission", ref, lock=True)
            if params.get("RevisionId") and params["RevisionId"] != function["policy_revision"]:
                raise precondition_failed()
            kept = permissions.remove(function["policy"], params["StatementId"], ref.qualified_arn)
            catalog.update_function(conn, ref, policy=kept, policy_revision=catalog.revision())
        return {}

    def get_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self._read() as conn:
            function = self._function(ctx, conn, "GetPolicy", ref)
            self._qualifier_exists(conn, ref)
        statements = permissions.for_resource(function["policy"], ref.qualified_arn)
        if not statements:
            raise not_found("The resource you requested does not exist.")
        return {"Policy": permissions.document(statements), "RevisionId": function["policy_revision"]}

    # ----------------------------------------------------------------------------------------- tags
    def tag_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = parse_resource_arn(params["Resource"], ctx.region)
        tags = dict(params.get("Tags") or {})
        with self._write() as conn:
            function = self._function(ctx, conn, "TagResource", ref, lock=True, extra=tag_condition_keys(tags))
            merged = {**function["tags"], **tags}
            if len(merged) > 50:
                raise invalid("Number of tags exceeds resource tag limit.")
            catalog.update_function(conn, ref, tags=merged)
        return {}

    def untag_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = parse_resource_arn(params["Resource"], ctx.region)
        keys = list(params.get("TagKeys") or [])
        with self._write() as conn:
            function = self._function(ctx, conn, "UntagResource", ref, lock=True,
                                      extra=tag_condition_keys(None, keys))
            catalog.update_function(conn, ref, tags={k: v for k, v in function["tags"].items() if k not in keys})
        return {}

    def list_tags(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = parse_resource_arn(params["Resource"], ctx.region)
        with self._read() as conn:
            function = self._function(ctx, conn, "ListTags", ref)
        return {"Tags": function["tags"]}

    # --------------------------------------------------------------------------------------- invoke
    @blocking
    def invoke(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        from stratum.functions import invoke

        result = invoke(self.app, params["FunctionName"], bytes(params.get("Payload") or b""),
                        params.get("InvocationType") or "RequestResponse", ctx, qualifier=params.get("Qualifier"),
                        log_type=params.get("LogType"))
        out: dict[str, Any] = {"StatusCode": result.status_code}
        if result.status_code == 200:
            out["Payload"] = result.payload
            out["ExecutedVersion"] = result.executed_version
        if result.function_error:
            out["FunctionError"] = result.function_error
        if result.log_result is not None:
            out["LogResult"] = result.log_result
        return out

    def get_account_settings(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize("lambda:GetAccountSettings", "*")
        with self._read() as conn:
            count = len(catalog.list_functions(conn, ctx.account_id, ctx.region))
        return {"AccountLimit": {"TotalCodeSize": 80530636800, "CodeSizeUnzipped": code.MAX_UNZIPPED_BYTES,
                                 "CodeSizeZipped": code.MAX_ZIP_BYTES, "ConcurrentExecutions": 1000,
                                 "UnreservedConcurrentExecutions": 1000},
                "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": count}}

