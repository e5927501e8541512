"""SageMaker API: notebook instances, lifecycle configurations, code repositories, presigned URLs.

The handlers check and record; the server that holds an instance's claim does the work
(stratum.notebooks.service). Status rules and error texts are SageMaker's:
``Status (InService) not in ([Stopped, Failed]). Unable to transition to (Deleting) for Notebook
Instance (arn:...)``.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row
from sqlalchemy.exc import IntegrityError

from stratum.auth import passrole
from stratum.notebooks import service as runtime
from stratum.notebooks import store, urls
from stratum.protocol.errors import ServiceError
from stratum.server.context import Provider, RequestContext
from stratum.services.sagemaker import tags as tagging
from stratum.services.sagemaker.errors import validation
from stratum.services.sagemaker.notebooks import tagged as _tagged  # noqa: F401  (registers tag resolvers)
from stratum.services.sagemaker.paging import page_window, slice_page

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

ACTION = "sagemaker:"
SCRIPT_LIMIT = 16384
PLATFORMS = ("notebook-al1-v1", "notebook-al2-v1", "notebook-al2-v2", "notebook-al2-v3")
_CONFIG_KEYS = ("SubnetId", "SecurityGroupIds", "IpAddressType", "KmsKeyId", "DirectInternetAccess",
                "AcceleratorTypes", "DefaultCodeRepository", "AdditionalCodeRepositories", "RootAccess",
                "PlatformIdentifier", "InstanceMetadataServiceConfiguration")


def _transition_error(status: str, allowed: list[str], target: str, arn: str) -> ServiceError:
    return validation(f"Status ({status}) not in ([{', '.join(allowed)}]). Unable to transition to ({target}) "
                      f"for Notebook Instance ({arn}).")


def _check_scripts(hooks: list[dict[str, str]] | None) -> list[dict[str, str]]:
    for hook in hooks or []:
        content = hook.get("Content") or ""
        if len(content) > SCRIPT_LIMIT:
            raise validation(f"1 validation error detected: Value at 'onCreate.1.member.content' failed to satisfy "
                             f"constraint: Member must have length less than or equal to {SCRIPT_LIMIT}")
        try:
            base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise validation("Lifecycle configuration script content must be base64-encoded.") from None
    return list(hooks or [])


def _window(params: dict[str, Any], column: str) -> Any:
    before, after = params.get(f"{column}Before"), params.get(f"{column}After")

    def ok(value: datetime) -> bool:
        return (before is None or value < before) and (after is None or value > after)

    return ok


class NotebooksApi(Provider):
    def __init__(self, app: AppState) -> None:
        super().__init__(app)
        runtime.get_service(app)

    @property
    def _notebooks(self) -> runtime.NotebookService:
        return runtime.get_service(self.app)

    # ---------------------------------------------------------------------------------- helpers
    def _nb_instance(self, ctx: RequestContext, conn: Connection, operation: str, name: str,
                  lock: bool = False) -> Row[Any]:
        row = store.get_instance(conn, ctx.account_id, ctx.region, name, lock=lock)
        return tagging.authorize_found(ctx, ACTION + operation, row, store.instance_arn(ctx.region, ctx.account_id, name),
                                       lambda _arn: validation("RecordNotFound"))

    def _nb_lifecycle(self, ctx: RequestContext, conn: Connection, operation: str, name: str,
                   lock: bool = False) -> Row[Any]:
        row = store.get_config(conn, ctx.account_id, ctx.region, name, lock=lock)

        def missing(arn: str) -> Exception:
            if operation.startswith("Describe"):
                return validation(f"Unable to describe Notebook Instance Lifecycle Config '{arn}' because it does not "
                                  "exist.")
            return validation(f"Notebook Instance Lifecycle Config '{arn}' does not exist.")

        return tagging.authorize_found(ctx, ACTION + operation, row, store.config_arn(ctx.region, ctx.account_id, name),
                                       missing)

    def _nb_check_repositories(self, ctx: RequestContext, conn: Connection, params: dict[str, Any]) -> None:
        refs = [r for r in [params.get("DefaultCodeRepository"), *(params.get("AdditionalCodeRepositories") or [])]
                if r]
        if len(set(refs)) != len(refs):
            raise validation("The notebook instance names the same code repository more than once.")
        for ref in refs:
            if ref.startswith(("http://", "https://", "git@", "/", "file://")):
                continue
            if store.get_repository(conn, ctx.account_id, ctx.region, ref) is None:
                raise validation(f"Code repository {ref} does not exist.")

    # -------------------------------------------------------------------------------- instances
    def create_notebook_instance(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["NotebookInstanceName"]
        arn = store.instance_arn(ctx.region, ctx.account_id, name)
        tags = list(params.get("Tags") or [])
        tagging.authorize_create(ctx, "CreateNotebookInstance", arn, tags, {
            "sagemaker:InstanceTypes": params["InstanceType"],
            "sagemaker:RootAccess": params.get("RootAccess", "Enabled"),
            "sagemaker:DirectInternetAccess": params.get("DirectInternetAccess", "Enabled"),
            **({"sagemaker:VolumeKmsKey": params["KmsKeyId"]} if params.get("KmsKeyId") else {})})
        passrole.check_pass_role(ctx, params["RoleArn"], passrole.SAGEMAKER, associated_resource_arn=arn)
        platform = params.get("PlatformIdentifier")
        if platform is not None and platform not in PLATFORMS[2:]:
            raise validation(f"Platform identifier ({platform}) is not supported for this service.")
        tagging.check_tags(tags)
        config = {k: params[k] for k in _CONFIG_KEYS if k in params}
        config.setdefault("DirectInternetAccess", "Enabled")
        config.setdefault("RootAccess", "Enabled")
        config.setdefault("PlatformIdentifier", "notebook-al2-v2")
        now = store.now()
        instance_id = uuid.uuid4().hex
        try:
            with self.app.db.begin() as conn:
                if store.get_instance(conn, ctx.account_id, ctx.region, name) is not None:
                    raise validation(f"Cannot create a duplicate Notebook Instance ({arn})")
                if params.get("LifecycleConfigName"):
                    _existing_config(ctx, conn, params["LifecycleConfigName"])
                self._nb_check_repositories(ctx, conn, params)
                store.insert_instance(conn, {
                    "instance_id": instance_id, "account_id": ctx.account_id, "region": ctx.region, "name": name,
                    "name_key": name.lower(), "arn": arn, "status": "Pending", "failure_reason": None,
                    "instance_type": params["InstanceType"], "role_arn": params["RoleArn"],
                    "lifecycle_config_name": params.get("LifecycleConfigName"),
                    "volume_size": int(params.get("VolumeSizeInGB") or 5), "config": config,
                    "tags": tagging.merged([], tags), "created_once": False, "process": None,
                    "created_at": now, "last_modified_at": now})
                self.app.claims.insert(conn, runtime.ClaimKey(runtime.NOTEBOOK, ctx.account_id, ctx.region,
                                                              instance_id))
        except IntegrityError:
            raise validation(f"Cannot create a duplicate Notebook Instance ({arn})") from None
        self._notebooks.adopt(instance_id)
        return {"NotebookInstanceArn": arn}

    def describe_notebook_instance(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self.app.db.read() as conn:
            row = self._nb_instance(ctx, conn, "DescribeNotebookInstance", params["NotebookInstanceName"])
        return self._nb_describe(row)

    def _nb_url(self, row: Row[Any]) -> str:
        endpoint = self._notebooks.endpoint_url().removeprefix("http://")
        return endpoint + runtime.base_path(row.account_id, row.region, row.name)

    def _nb_describe(self, row: Row[Any]) -> dict[str, Any]:
        config = row.config or {}
        out: dict[str, Any] = {
            "NotebookInstanceArn": row.arn, "NotebookInstanceName": row.name,
            "NotebookInstanceStatus": row.status, "InstanceType": row.instance_type, "RoleArn": row.role_arn,
            "LastModifiedTime": row.last_modified_at, "CreationTime": row.created_at,
            "DirectInternetAccess": config.get("DirectInternetAccess", "Enabled"), "VolumeSizeInGB": row.volume_size,
            "RootAccess": config.get("RootAccess", "Enabled"),
            "PlatformIdentifier": config.get("PlatformIdentifier", "notebook-al2-v2"),
            # IMDSv1 is SageMaker's default for notebook instances.
            "InstanceMetadataServiceConfiguration": config.get("InstanceMetadataServiceConfiguration")
            or {"MinimumInstanceMetadataServiceVersion": "1"},
        }
        if config.get("SubnetId"):  # an instance in a VPC has its network interface there
            out["NetworkInterfaceId"] = "eni-" + row.instance_id[:17]
        if row.failure_reason:
            out["FailureReason"] = row.failure_reason
        if row.status in ("Pending", "InService", "Stopping"):
            out["Url"] = self._nb_url(row)
        if row.lifecycle_config_name:
            out["NotebookInstanceLifecycleConfigName"] = row.lifecycle_config_name
        for key in ("SubnetId", "KmsKeyId", "AcceleratorTypes", "DefaultCodeRepository",
                    "AdditionalCodeRepositories", "IpAddressType"):
            if config.get(key):
                out[key] = config[key]
        if config.get("SecurityGroupIds"):
            out["SecurityGroups"] = config["SecurityGroupIds"]
        return out

    def list_notebook_instances(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "ListNotebookInstances", "*")
        with self.app.db.read() as conn:
            rows = store.list_instances(conn, ctx.account_id, ctx.region)
        created, modified = _window(params, "CreationTime"), _window(params, "LastModifiedTime")
        name_part = (params.get("NameContains") or "").lower()
        lcc_part = (params.get("NotebookInstanceLifecycleConfigNameContains") or "").lower()
        default_part = (params.get("DefaultCodeRepositoryContains") or "").lower()
        additional = params.get("AdditionalCodeRepositoryEquals")
        picked = []
        for r in rows:
            config = r.config or {}
            if name_part and name_part not in r.name.lower():
                continue
            if params.get("StatusEquals") and r.status != params["StatusEquals"]:
                continue
            if lcc_part and lcc_part not in (r.lifecycle_config_name or "").lower():
                continue
            if default_part and default_part not in (config.get("DefaultCodeRepository") or "").lower():
                continue
            if additional and additional not in (config.get("AdditionalCodeRepositories") or []):
                continue
            if created(r.created_at) and modified(r.last_modified_at):
                picked.append(r)
        sort_by = params.get("SortBy") or "Name"
        key = {"Name": lambda r: r.name.lower(), "CreationTime": lambda r: r.created_at,
               "Status": lambda r: r.status}[sort_by]
        picked.sort(key=key, reverse=(params.get("SortOrder") or "Ascending") == "Descending")
        scope = {"k": "notebook-instances", "o": (ctx.account_id, ctx.region),
                 **{k: str(v) for k, v in params.items() if k not in ("NextToken", "MaxResults")}}
        offset, limit = page_window(params, scope)
        page, token = slice_page(picked, offset, limit, scope)
        summaries = []
        for r in page:
            d = self._nb_describe(r)
            summaries.append({k: d[k] for k in ("NotebookInstanceName", "NotebookInstanceArn",
                                                 "NotebookInstanceStatus", "Url", "InstanceType", "CreationTime",
                                                 "LastModifiedTime", "NotebookInstanceLifecycleConfigName",
                                                 "DefaultCodeRepository", "AdditionalCodeRepositories") if k in d})
        out: dict[str, Any] = {"NotebookInstances": summaries}
        if token:
            out["NextToken"] = token
        return out

    def start_notebook_instance(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self.app.db.begin() as conn:
            row = self._nb_instance(ctx, conn, "StartNotebookInstance", params["NotebookInstanceName"], lock=True)
            if row.status not in ("Stopped", "Failed"):
                raise _transition_error(row.status, ["Stopped", "Failed"], "Pending", row.arn)
            store.update_instance(conn, row.instance_id, status="Pending", failure_reason=None,
                                  last_modified_at=store.now())
            self.app.claims.take(conn, runtime.key_of(row), reap_dead=True)
        self._notebooks.adopt(row.instance_id)
        return {}

    def stop_notebook_instance(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self.app.db.begin() as conn:
            row = self._nb_instance(ctx, conn, "StopNotebookInstance", params["NotebookInstanceName"], lock=True)
            if row.status != "InService":
                raise _transition_error(row.status, ["InService"], "Stopping", row.arn)
            store.update_instance(conn, row.instance_id, status="Stopping", last_modified_at=store.now())
        self._notebooks.kick(row.instance_id)
        return {}

    def delete_notebook_instance(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self.app.db.begin() as conn:
            row = self._nb_instance(ctx, conn, "DeleteNotebookInstance", params["NotebookInstanceName"], lock=True)
            if row.status not in ("Stopped", "Failed"):
                raise _transition_error(row.status, ["Stopped", "Failed"], "Deleting", row.arn)
            store.update_instance(conn, row.instance_id, status="Deleting", last_modified_at=store.now())
            self.app.claims.take(conn, runtime.key_of(row), reap_dead=True)
        self._notebooks.adopt(row.instance_id)
        return {}

    def update_notebook_instance(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("RoleArn"):
            name = params["NotebookInstanceName"]
            passrole.check_pass_role(ctx, params["RoleArn"], passrole.SAGEMAKER,
                                     associated_resource_arn=store.instance_arn(ctx.region, ctx.account_id, name))
        with self.app.db.begin() as conn:
            row = self._nb_instance(ctx, conn, "UpdateNotebookInstance", params["NotebookInstanceName"], lock=True)
            if row.status not in ("Stopped", "Failed"):
                raise _transition_error(row.status, ["Stopped", "Failed"], "Updating", row.arn)
            if params.get("LifecycleConfigName") and params.get("DisassociateLifecycleConfig"):
                raise validation("Cannot both associate and disassociate a lifecycle configuration.")
            values: dict[str, Any] = {}
            config = dict(row.config or {})
            if params.get("LifecycleConfigName"):
                _existing_config(ctx, conn, params["LifecycleConfigName"])
                values["lifecycle_config_name"] = params["LifecycleConfigName"]
            if params.get("DisassociateLifecycleConfig"):
                values["lifecycle_config_name"] = None
            if params.get("RoleArn"):
                values["role_arn"] = params["RoleArn"]
            if params.get("InstanceType"):
                values["instance_type"] = params["InstanceType"]
            if params.get("VolumeSizeInGB"):
                if int(params["VolumeSizeInGB"]) < row.volume_size:
                    raise validation("Volume size can only be increased.")
                values["volume_size"] = int(params["VolumeSizeInGB"])
            self._nb_check_repositories(ctx, conn, params)
            for key in ("RootAccess", "PlatformIdentifier", "InstanceMetadataServiceConfiguration",
                        "DefaultCodeRepository", "AdditionalCodeRepositories", "AcceleratorTypes", "IpAddressType"):
                if key in params:
                    config[key] = params[key]
            for flag, key in (("DisassociateAcceleratorTypes", "AcceleratorTypes"),
                              ("DisassociateDefaultCodeRepository", "DefaultCodeRepository"),
                              ("DisassociateAdditionalCodeRepositories", "AdditionalCodeRepositories")):
                if params.get(flag):
                    config.pop(key, None)
            store.update_instance(conn, row.instance_id, status="Updating", config=config,
                                  last_modified_at=store.now(), **values)
            self.app.claims.take(conn, runtime.key_of(row), reap_dead=True)
        self._notebooks.adopt(row.instance_id)
        return {}

    def create_presigned_notebook_instance_url(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self.app.db.read() as conn:
            row = self._nb_instance(ctx, conn, "CreatePresignedNotebookInstanceUrl", params["NotebookInstanceName"])
        session = int(params.get("SessionExpirationDurationInSeconds") or 43200)
        token = urls.sign(self.app.settings, {"i": row.instance_id, "k": ctx.identity.access_key or "",
                                              "e": int(time.time()) + urls.URL_LIFETIME, "s": session})
        url = f"{self._notebooks.endpoint_url()}{runtime.base_path(row.account_id, row.region, row.name)}?authToken={token}"
        return {"AuthorizedUrl": url}

    # ------------------------------------------------------------------------ lifecycle configs
    def create_notebook_instance_lifecycle_config(self, ctx: RequestContext, params: dict[str, Any]
                                                  ) -> dict[str, Any]:
        name = params["NotebookInstanceLifecycleConfigName"]
        arn = store.config_arn(ctx.region, ctx.account_id, name)
        tags = list(params.get("Tags") or [])
        tagging.authorize_create(ctx, "CreateNotebookInstanceLifecycleConfig", arn, tags)
        tagging.check_tags(tags)
        on_create, on_start = _check_scripts(params.get("OnCreate")), _check_scripts(params.get("OnStart"))
        now = store.now()
        try:
            with self.app.db.begin() as conn:
                if store.get_config(conn, ctx.account_id, ctx.region, name) is not None:
                    raise validation(f"Unable to create Notebook Instance Lifecycle Config '{arn}' because it "
                                     "already exists.")
                store.insert_config(conn, {"account_id": ctx.account_id, "region": ctx.region, "name_key": name.lower(),
                                           "name": name, "arn": arn, "on_create": on_create, "on_start": on_start,
                                           "tags": tagging.merged([], tags), "created_at": now,
                                           "last_modified_at": now})
        except IntegrityError:
            raise validation(f"Unable to create Notebook Instance Lifecycle Config '{arn}' because it already "
                             "exists.") from None
        return {"NotebookInstanceLifecycleConfigArn": arn}

    def describe_notebook_instance_lifecycle_config(self, ctx: RequestContext, params: dict[str, Any]
                                                    ) -> dict[str, Any]:
        with self.app.db.read() as conn:
            row = self._nb_lifecycle(ctx, conn, "DescribeNotebookInstanceLifecycleConfig",
                                  params["NotebookInstanceLifecycleConfigName"])
        out: dict[str, Any] = {"NotebookInstanceLifecycleConfigArn": row.arn,
                               "NotebookInstanceLifecycleConfigName": row.name, "CreationTime": row.created_at,
                               "LastModifiedTime": row.last_modified_at}
        if row.on_create:
            out["OnCreate"] = row.on_create
        if row.on_start:
            out["OnStart"] = row.on_start
        return out

    def update_notebook_instance_lifecycle_config(self, ctx: RequestContext, params: dict[str, Any]
                                                  ) -> dict[str, Any]:
        values: dict[str, Any] = {"last_modified_at": store.now()}
        if "OnCreate" in params:
            values["on_create"] = _check_scripts(params["OnCreate"])
        if "OnStart" in params:
            values["on_start"] = _check_scripts(params["OnStart"])
        with self.app.db.begin() as conn:
            row = self._nb_lifecycle(ctx, conn, "UpdateNotebookInstanceLifecycleConfig",
                                  params["NotebookInstanceLifecycleConfigName"], lock=True)
            store.update_config(conn, row, **values)
        return {}

    def delete_notebook_instance_lifecycle_config(self, ctx: RequestContext, params: dict[str, Any]
                                                  ) -> dict[str, Any]:
        with self.app.db.begin() as conn:
            row = self._nb_lifecycle(ctx, conn, "DeleteNotebookInstanceLifecycleConfig",
                                  params["NotebookInstanceLifecycleConfigName"], lock=True)
            store.delete_config(conn, row)
        return {}

    def list_notebook_instance_lifecycle_configs(self, ctx: RequestContext, params: dict[str, Any]
                                                 ) -> dict[str, Any]:
        ctx.authorize(ACTION + "ListNotebookInstanceLifecycleConfigs", "*")
        with self.app.db.read() as conn:
            rows = store.list_configs(conn, ctx.account_id, ctx.region)
        page, token = _list_named(rows, params, "notebook-lifecycle-configs", ctx)
        out: dict[str, Any] = {"NotebookInstanceLifecycleConfigs": [
            {"NotebookInstanceLifecycleConfigName": r.name, "NotebookInstanceLifecycleConfigArn": r.arn,
             "CreationTime": r.created_at, "LastModifiedTime": r.last_modified_at} for r in page]}
        if token:
            out["NextToken"] = token
        return out

    # ----------------------------------------------------------------------- code repositories
    def create_code_repository(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["CodeRepositoryName"]
        arn = store.repository_arn(ctx.region, ctx.account_id, name)
        tags = list(params.get("Tags") or [])
        tagging.authorize_create(ctx, "CreateCodeRepository", arn, tags)
        tagging.check_tags(tags)
        now = store.now()
        try:
            with self.app.db.begin() as conn:
                if store.get_repository(conn, ctx.account_id, ctx.region, name) is not None:
                    raise validation(f"Cannot create a duplicate CodeRepository ({arn})")
                store.insert_repository(conn, {"account_id": ctx.account_id, "region": ctx.region,
                                               "name_key": name.lower(), "name": name, "arn": arn,
                                               "git_config": params["GitConfig"], "tags": tagging.merged([], tags),
                                               "created_at": now, "last_modified_at": now})
        except IntegrityError:
            raise validation(f"Cannot create a duplicate CodeRepository ({arn})") from None
        return {"CodeRepositoryArn": arn}

    def describe_code_repository(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["CodeRepositoryName"]
        with self.app.db.read() as conn:
            row = store.get_repository(conn, ctx.account_id, ctx.region, name)
        row = tagging.authorize_found(ctx, ACTION + "DescribeCodeRepository", row,
                                      store.repository_arn(ctx.region, ctx.account_id, name),
                                      lambda _arn: validation(f"Code repository {name} does not exist."))
        return _repository(row)

    def list_code_repositories(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "ListCodeRepositories", "*")
        with self.app.db.read() as conn:
            rows = store.list_repositories(conn, ctx.account_id, ctx.region)
        page, token = _list_named(rows, params, "code-repositories", ctx)
        out: dict[str, Any] = {"CodeRepositorySummaryList": [_repository(r) for r in page]}
        if token:
            out["NextToken"] = token
        return out


def _existing_config(ctx: RequestContext, conn: Connection, name: str) -> None:
    if store.get_config(conn, ctx.account_id, ctx.region, name) is None:
        arn = store.config_arn(ctx.region, ctx.account_id, name)
        raise validation(f"Notebook Instance Lifecycle Config '{arn}' does not exist.")


def _repository(row: Row[Any]) -> dict[str, Any]:
    return {"CodeRepositoryName": row.name, "CodeRepositoryArn": row.arn, "CreationTime": row.created_at,
            "LastModifiedTime": row.last_modified_at, "GitConfig": row.git_config}


def _list_named(rows: list[Row[Any]], params: dict[str, Any], kind: str, ctx: RequestContext
                ) -> tuple[list[Row[Any]], str | None]:
    created, modified = _window(params, "CreationTime"), _window(params, "LastModifiedTime")
    part = (params.get("NameContains") or "").lower()
    picked = [r for r in rows if part in r.name.lower() and created(r.created_at) and modified(r.last_modified_at)]
    sort_by = params.get("SortBy") or "Name"
    key = {"Name": lambda r: r.name.lower(), "CreationTime": lambda r: r.created_at,
           "LastModifiedTime": lambda r: r.last_modified_at}[sort_by]
    picked.sort(key=key, reverse=(params.get("SortOrder") or "Ascending") == "Descending")
    scope = {"k": kind, "o": (ctx.account_id, ctx.region),
             **{k: str(v) for k, v in params.items() if k not in ("NextToken", "MaxResults")}}
    offset, limit = page_window(params, scope)
    return slice_page(picked, offset, limit, scope)
