"""Routes from the database, cached: the steady-state lookup of an endpoint's route is a dict read.

A route is built from the endpoint's row (its serving deployment) and its instance rows, so any
server sharing the database routes to the loopback URLs of the server that runs the instances.
Local changes invalidate an endpoint's entry at once; changes another server makes are seen
within ``TTL`` seconds (the hosting service keeps retired processes alive longer than that).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Row, select

from stratum.hosting.instances import container_hostnames
from stratum.hosting.routes import EndpointRoute, InstanceRoute, MultiModelRoute, VariantRoute
from stratum.hosting.tables import sagemaker_endpoint_instances as instances_t
from stratum.hosting.tables import sagemaker_endpoints as endpoints_t
from stratum.jobs.models import containers_of
from stratum.store.db import Database
from stratum.store.refreshed import RefreshedCache

TTL = 1.0
# The container environment variable bounding how many models a multi-model container keeps loaded.
# SageMaker itself evicts by memory pressure and has no such setting; the containers (MMS, the
# inference toolkit) have none either. Stratum also evicts when the container answers 507.
MAX_LOADED_MODELS_ENV = "STRATUM_MAX_LOADED_MODELS"


def execution_mode(model: dict[str, Any]) -> str:
    """"Single" for a one-container model, else its InferenceExecutionConfig Mode (Serial by default)."""
    if len(containers_of(model)) == 1:
        return "Single"
    return str((model.get("InferenceExecutionConfig") or {}).get("Mode") or "Serial")


def multi_model_route(model: dict[str, Any]) -> MultiModelRoute | None:
    """The multi-model settings of a model whose (only) container is in Mode MultiModel."""
    containers = containers_of(model)
    if len(containers) != 1 or containers[0].get("Mode") != "MultiModel":
        return None
    container = containers[0]
    try:
        limit = max(0, int((container.get("Environment") or {}).get(MAX_LOADED_MODELS_ENV) or 0))
    except ValueError:
        limit = 0
    prefix = str(container.get("ModelDataUrl") or "")
    return MultiModelRoute(prefix=prefix if prefix.endswith("/") or not prefix else prefix + "/",
                           role=model.get("ExecutionRoleArn"),
                           cache=(container.get("MultiModelConfig") or {}).get("ModelCacheSetting") != "Disabled",
                           max_loaded=limit)


def _variant_routes(deployment: dict[str, Any], instance_rows: list[Row[Any]]) -> tuple[list[VariantRoute], str]:
    """The deployment's variants with their complete InService instances, and its execution mode."""
    by_variant: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)
    for inst in sorted(instance_rows, key=lambda r: (r.created_at, r.instance_id, r.position)):
        if inst.deployment == deployment.get("Deployment") and inst.status == "InService" and inst.url:
            by_variant[inst.variant].setdefault(inst.instance_id, {})[inst.container] = inst.url
    variants = []
    mode = "Single"
    for v in deployment.get("Variants") or []:
        model = v["Model"]
        hostnames = tuple(container_hostnames(model))
        mode = execution_mode(model)
        instances = tuple(InstanceRoute(instance_id, dict(urls))
                          for instance_id, urls in by_variant.get(v["VariantName"], {}).items()
                          if set(urls) == set(hostnames))
        variants.append(VariantRoute(name=v["VariantName"], weight=float(v["CurrentWeight"]), containers=hostnames,
                                     images=tuple(c.get("Image") or "" for c in containers_of(model)),
                                     instances=instances, multi_model=multi_model_route(model),
                                     max_concurrency=int((v.get("ServerlessConfig") or {}).get("MaxConcurrency")
                                                         or 0)))
    return variants, mode


def build_route(row: Row[Any], instance_rows: list[Row[Any]]) -> EndpointRoute:
    serving = row.serving or {}
    variants, mode = _variant_routes(serving, instance_rows)
    # A blue/green update shifting traffic: the new fleet serves its share alongside.
    traffic = (row.pending or {}).get("Traffic") if row.serving else None
    canary: list[VariantRoute] = []
    if traffic:
        canary, _ = _variant_routes(row.pending, instance_rows)
    roles = {v["VariantName"]: {"ModelName": v["ModelName"], "ExecutionRoleArn": v["Model"].get("ExecutionRoleArn"),
                                "InstanceType": v.get("InstanceType"), "ServerlessConfig": v.get("ServerlessConfig")}
             for v in [*((row.pending or {}).get("Variants") or [] if traffic else []),
                       *(serving.get("Variants") or [])]}
    return EndpointRoute(arn=row.arn, name=row.name, account_id=row.account_id, region=row.region, status=row.status,
                         mode=mode, variants=tuple(variants), tags=tuple(dict(t) for t in row.tags or []),
                         data_capture=serving.get("DataCaptureConfig"), async_config=serving.get("AsyncInferenceConfig"),
                         extra={"EndpointConfigName": row.config_name, "KmsKeyId": serving.get("KmsKeyId"),
                                "Variants": roles},
                         canary=tuple(canary), canary_fraction=float(traffic["Fraction"]) if traffic else 0.0)


def load_route(conn: Connection, account: str, region: str, name: str) -> EndpointRoute | None:
    c = endpoints_t.c
    row = conn.execute(select(endpoints_t).where((c.account_id == account) & (c.region == region)
                                                 & (c.name_key == name.lower()))).first()
    if row is None:
        return None
    instances = list(conn.execute(select(instances_t).where(instances_t.c.endpoint_id == row.endpoint_id)))
    return build_route(row, instances)


class Router:
    def __init__(self, db: Database, ttl: float = TTL) -> None:
        self.db = db
        self.ttl = ttl
        # (account, region, lower-case name) -> route (None: no such endpoint); read again in the
        # background before it expires (stratum.store.refreshed), so an invocation never waits
        # for the database.
        self._cache: RefreshedCache[tuple[str, str, str], EndpointRoute | None] = RefreshedCache(lambda: self.ttl)

    def route(self, account: str, region: str, name: str) -> EndpointRoute | None:
        return self._cache.get((account, region, name.lower()), lambda: self._load(account, region, name))

    def _load(self, account: str, region: str, name: str) -> EndpointRoute | None:
        with self.db.read() as conn:
            return load_route(conn, account, region, name)

    def invalidate(self, account: str, region: str, name: str) -> None:
        key = (account, region, name.lower())
        self._cache.invalidate(lambda k, _route: k == key)
