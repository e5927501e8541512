"""SageMaker API: endpoint configs and endpoints (real-time hosting control plane).

Handlers authorize sagemaker:<Operation> on the resource's ARN with its tags as aws:ResourceTag
keys (CreateEndpoint and UpdateEndpoint also on the endpoint config's ARN, as in SageMaker), then
read or write in one transaction (stratum.services.sagemaker.hosting.store). The processes behind
an endpoint are the hosting service's (stratum.hosting.service): it acts on what is recorded here.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, select

from stratum.auth import passrole
from stratum.jobs import models as job_models
from stratum.jobs import store as job_store
from stratum.server.context import Provider, RequestContext, blocking
from stratum.services.sagemaker import search_sources
from stratum.services.sagemaker import tags as tagging
from stratum.services.sagemaker.hosting import errors, store, views

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

ACTION = "sagemaker:"


def config_condition_keys(request: dict[str, Any]) -> dict[str, Any]:
    """sagemaker:* condition keys of CreateEndpointConfig (IAM service authorization reference)."""
    variants = request.get("ProductionVariants") or []
    keys: dict[str, Any] = {"sagemaker:InstanceTypes": [v["InstanceType"] for v in variants if v.get("InstanceType")],
                            "sagemaker:AcceleratorTypes": [v["AcceleratorType"] for v in variants
                                                           if v.get("AcceleratorType")],
                            "sagemaker:ModelArn": []}
    if request.get("KmsKeyId"):
        keys["sagemaker:VolumeKmsKey"] = request["KmsKeyId"]
    serverless = [v["ServerlessConfig"] for v in variants if v.get("ServerlessConfig")]
    if serverless:
        keys["sagemaker:ServerlessMaxConcurrency"] = max(int(s.get("MaxConcurrency", 0)) for s in serverless)
        keys["sagemaker:ServerlessMemorySize"] = max(int(s.get("MemorySizeInMB", 0)) for s in serverless)
    return {k: v for k, v in keys.items() if v != []}


class HostingApi(Provider):
    """Operations are methods named after the API operation in snake_case (see Provider)."""

    def __init__(self, app: AppState) -> None:
        super().__init__(app)

    def _invalidate(self, account: str, region: str, name: str) -> None:
        self.app.hosting.invalidate(account, region, name)

    # ------------------------------------------------------------------------------------ models
    def _models(self, ctx: RequestContext, names: list[str]) -> dict[str, dict[str, Any]]:
        """DescribeModel documents of the models a config names (ValidationException for a missing one)."""
        out: dict[str, dict[str, Any]] = {}
        for name in names:
            out[name.lower()] = job_models.describe_model(self.app.db, ctx.account_id, ctx.region, name)
        return out

    # ---------------------------------------------------------------------------- endpoint configs
    def _config(self, ctx: RequestContext, operation: str, name: str) -> Row[Any]:
        with self.app.db.read() as conn:
            row = store.get_config(conn, ctx.account_id, ctx.region, name)
        return tagging.authorize_found(ctx, ACTION + operation, row, store.config_arn(ctx.region, ctx.account_id, name),
                                       errors.config_not_found)

    def create_endpoint_config(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointConfigName"]
        arn = store.config_arn(ctx.region, ctx.account_id, name)
        tags = list(params.get("Tags") or [])
        tagging.authorize_create(ctx, "CreateEndpointConfig", arn, tags, config_condition_keys(params))
        if params.get("ExecutionRoleArn"):
            # The role SageMaker assumes for the endpoint (model-less configs, capture): passed to it.
            passrole.check_pass_role(ctx, params["ExecutionRoleArn"], passrole.SAGEMAKER, associated_resource_arn=arn)
        store.check_config(params)
        with self.app.db.read() as conn:
            known = {n.lower() for n in store.model_names(params)
                     if job_store.get_model(conn, ctx.account_id, ctx.region, n) is not None}
        store.check_models(ctx.account_id, ctx.region, params, known)
        with self.app.db.begin() as conn:
            arn = store.create_config(conn, ctx.account_id, ctx.region, params, tagging.merged([], tags))
        return {"EndpointConfigArn": arn}

    def describe_endpoint_config(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return views.config_description(self._config(ctx, "DescribeEndpointConfig", params["EndpointConfigName"]))

    def delete_endpoint_config(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        # As in SageMaker, a config an endpoint uses may be deleted: the endpoint runs what it
        # captured when its deployment began.
        row = self._config(ctx, "DeleteEndpointConfig", params["EndpointConfigName"])
        with self.app.db.begin() as conn:
            store.delete_config(conn, row)
        return {}

    def list_endpoint_configs(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "ListEndpointConfigs", "*")
        with self.app.db.read() as conn:
            rows, token = store.list_configs(conn, ctx.account_id, ctx.region, params)
        out: dict[str, Any] = {"EndpointConfigs": [views.config_summary(r) for r in rows]}
        if token:
            out["NextToken"] = token
        return out

    # ----------------------------------------------------------------------------------- endpoints
    def _endpoint(self, ctx: RequestContext, operation: str, name: str) -> Row[Any]:
        with self.app.db.read() as conn:
            row = store.get_endpoint(conn, ctx.account_id, ctx.region, name)
        return tagging.authorize_found(ctx, ACTION + operation, row,
                                       store.endpoint_arn(ctx.region, ctx.account_id, name), errors.endpoint_not_found)

    def _config_for(self, ctx: RequestContext, operation: str, name: str) -> tuple[Row[Any], dict[str, Any]]:
        """The endpoint config an endpoint is to run (authorized for ``operation``) and its models."""
        config = self._config(ctx, operation, name)
        return config, self._models(ctx, store.model_names(config.request))

    def create_endpoint(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["EndpointName"]
        arn = store.endpoint_arn(ctx.region, ctx.account_id, name)
        tags = list(params.get("Tags") or [])
        tagging.authorize_create(ctx, "CreateEndpoint", arn, tags)
        config, models = self._config_for(ctx, "CreateEndpoint", params["EndpointConfigName"])
        with self.app.db.begin() as conn:
            arn = store.create_endpoint(conn, self.app.claims, ctx.account_id, ctx.region, name, config, models,
                                        tagging.merged([], tags))
        self._invalidate(ctx.account_id, ctx.region, name)
        self.app.hosting.wake()
        return {"EndpointArn": arn}

    def describe_endpoint(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return views.endpoint_description(self._endpoint(ctx, "DescribeEndpoint", params["EndpointName"]))

    def list_endpoints(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "ListEndpoints", "*")
        with self.app.db.read() as conn:
            rows, token = store.list_endpoints(conn, ctx.account_id, ctx.region, params)
        out: dict[str, Any] = {"Endpoints": [views.endpoint_summary(r) for r in rows]}
        if token:
            out["NextToken"] = token
        return out

    def update_endpoint(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        row = self._endpoint(ctx, "UpdateEndpoint", params["EndpointName"])
        config, models = self._config_for(ctx, "UpdateEndpoint", params["EndpointConfigName"])
        exclude = frozenset(p["VariantPropertyType"] for p in params.get("ExcludeRetainedVariantProperties") or [])
        with self.app.db.begin() as conn:
            current = store.get_endpoint(conn, row.account_id, row.region, row.name, lock=True)
            if current is None:
                raise errors.endpoint_not_found(row.arn)
            store.update_endpoint(conn, current, config, models, bool(params.get("RetainAllVariantProperties")),
                                  exclude, params.get("DeploymentConfig"))
        self._invalidate(row.account_id, row.region, row.name)
        self.app.hosting.wake()
        return {"EndpointArn": row.arn}

    def update_endpoint_weights_and_capacities(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        row = self._endpoint(ctx, "UpdateEndpointWeightsAndCapacities", params["EndpointName"])
        with self.app.db.begin() as conn:
            current = store.get_endpoint(conn, row.account_id, row.region, row.name, lock=True)
            if current is None:
                raise errors.endpoint_not_found(row.arn)
            store.update_weights(conn, current, list(params["DesiredWeightsAndCapacities"]))
        self._invalidate(row.account_id, row.region, row.name)
        self.app.hosting.wake()
        return {"EndpointArn": row.arn}

    @blocking  # stops the endpoint's processes when this server runs them
    def delete_endpoint(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        row = self._endpoint(ctx, "DeleteEndpoint", params["EndpointName"])
        with self.app.db.begin() as conn:
            current = store.get_endpoint(conn, row.account_id, row.region, row.name, lock=True)
            if current is None:
                raise errors.endpoint_not_found(row.arn)
            if current.status != "Deleting":
                store.mark_deleting(conn, current)
        self._invalidate(row.account_id, row.region, row.name)
        # Deleting, then gone: at once when the endpoint runs here, else at its server's next pass.
        if not self.app.hosting.delete_now(current.endpoint_id):
            self.app.hosting.wake()
        return {}


# ------------------------------------------------------------------------------ AddTags / ListTags
_ARN = re.compile(r"arn:aws[a-z\-]*:sagemaker:([a-z0-9\-]+):(\d{12}):(endpoint|endpoint-config)/([a-zA-Z0-9\-]+)$")


@tagging.register
def _tag_target(conn: Connection, arn: str, lock: bool) -> tagging.TagTarget | None:
    from stratum.hosting.tables import sagemaker_endpoint_configs as configs_t
    from stratum.hosting.tables import sagemaker_endpoints as endpoints_t

    m = _ARN.match(arn)
    if m is None:
        return None
    region, account, resource, name = m.groups()
    table = endpoints_t if resource == "endpoint" else configs_t
    where = (table.c.account_id == account) & (table.c.region == region) & (table.c.name_key == name.lower())
    query = select(table.c.arn, table.c.tags).where(where)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise tagging.not_found(arn)
    return tagging.TagTarget(row.arn, account, list(row.tags or []), table, where)


search_sources.register("Endpoint", "Endpoint", lambda conn, account, region: [
    views.endpoint_record(r) for r in store.endpoint_rows(conn, account, region)])
