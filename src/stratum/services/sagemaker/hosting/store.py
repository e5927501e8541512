"""Endpoint configs and endpoints: validation, storage and the changes the API asks for.

Everything here runs inside the caller's transaction with plain arguments (no authorization): an
accepted request is one transaction, so nothing is ever half-written. The models a config names
are described by the caller before the transaction and handed in as ``models`` (name -> the
DescribeModel document); an endpoint keeps a snapshot of them in its deployment, so a model or
config deleted later does not change what an endpoint runs.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from stratum.hosting import events
from stratum.hosting.tables import sagemaker_endpoint_configs as configs_t
from stratum.hosting.tables import sagemaker_endpoints as endpoints_t
from stratum.jobs.models import RESOLVED, containers_of
from stratum.jobs.store import model_arn, now
from stratum.services.sagemaker.hosting import errors
from stratum.services.sagemaker.paging import named_listing
from stratum.store.claims import ClaimKey, Claims

ENDPOINT = "endpoint"  # the claims kind: the server that runs an endpoint's processes
CONFIG_KEYS = ("ProductionVariants", "DataCaptureConfig", "KmsKeyId", "AsyncInferenceConfig", "ExplainerConfig",
               "ShadowProductionVariants", "ExecutionRoleArn", "VpcConfig", "EnableNetworkIsolation",
               "MetricsConfig")
# What an endpoint keeps of each model: the DescribeModel document with the resolved containers
# (RESOLVED: a ModelPackageName container as its package's image and model data).
MODEL_KEYS = ("ModelName", "ModelArn", "PrimaryContainer", "Containers", "InferenceExecutionConfig",
              "ExecutionRoleArn", "VpcConfig", "EnableNetworkIsolation", RESOLVED)
# An endpoint being changed: another change is refused until it settles.
BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")


def config_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:endpoint-config/{name.lower()}"


def endpoint_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:endpoint/{name.lower()}"


def resolved_image(image: str) -> str:
    """What SageMaker records as the image it resolved a tag to: the repository with a digest.
    Stratum runs no registry, so the digest is derived from the image URI (stable per URI)."""
    repository = image.split("@", 1)[0]
    last = repository.rsplit("/", 1)
    if ":" in last[-1]:
        repository = repository[: repository.rfind(":")]
    if "@" in image:
        return image
    return f"{repository}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


# ---------------------------------------------------------------------------------- endpoint configs
def model_names(request: dict[str, Any]) -> list[str]:
    return [str(v["ModelName"]) for v in request.get("ProductionVariants") or [] if v.get("ModelName")]


def check_config(request: dict[str, Any]) -> None:
    variants = request.get("ProductionVariants") or []
    if not variants:
        raise errors.validation("1 validation error detected: Value '[]' at 'productionVariants' failed to satisfy "
                                "constraint: Member must have length greater than or equal to 1")
    if len(variants) > 10:
        raise errors.validation("An endpoint configuration can have at most 10 production variants.")
    seen: set[str] = set()
    for variant in variants:
        name = variant["VariantName"]
        if name.lower() in seen:
            raise errors.validation(f"Variant name {name} is duplicated. Variant names must be unique within an "
                                    "endpoint configuration.")
        seen.add(name.lower())
        if not variant.get("ModelName"):
            raise errors.validation(f"ModelName is required for production variant {name}.")
        serverless = variant.get("ServerlessConfig")
        if serverless:
            if variant.get("InstanceType") or variant.get("InitialInstanceCount") is not None:
                raise errors.validation("ServerlessConfig cannot be specified with InstanceType or "
                                        "InitialInstanceCount.")
            # The ranges (1024-6144 MB, 1-200) are the shapes'; these are the API's own checks.
            if int(serverless["MemorySizeInMB"]) % 1024:
                raise errors.validation(f"MemorySizeInMB {serverless['MemorySizeInMB']} of production variant "
                                        f"{name} is not valid: specify 1024, 2048, 3072, 4096, 5120 or 6144.")
            provisioned = serverless.get("ProvisionedConcurrency")
            if provisioned is not None and int(provisioned) > int(serverless["MaxConcurrency"]):
                raise errors.validation(f"ProvisionedConcurrency ({provisioned}) of production variant {name} must "
                                        f"be less than or equal to MaxConcurrency ({serverless['MaxConcurrency']}).")
        else:
            if not variant.get("InstanceType"):
                raise errors.validation(f"InstanceType is required for production variant {name}.")
            if variant.get("InitialInstanceCount") is None:
                raise errors.validation(f"InitialInstanceCount is required for production variant {name}.")
            if int(variant["InitialInstanceCount"]) < 1:
                raise errors.validation("InitialInstanceCount must be at least 1.")
        if variant.get("InitialVariantWeight") is not None and float(variant["InitialVariantWeight"]) < 0:
            raise errors.validation("InitialVariantWeight must be greater than or equal to 0.")
    capture = request.get("DataCaptureConfig")
    if capture:
        percent = int(capture.get("InitialSamplingPercentage", 0))
        if not 0 <= percent <= 100:
            raise errors.validation("InitialSamplingPercentage must be between 0 and 100.")
        if not str(capture.get("DestinationS3Uri", "")).startswith(("s3://", "https://")):
            raise errors.validation("DestinationS3Uri must be an S3 URI.")
        if not capture.get("CaptureOptions"):
            raise errors.validation("CaptureOptions must have at least one entry.")
    if request.get("AsyncInferenceConfig") and len(variants) > 1:
        raise errors.validation("Asynchronous inference endpoints support one production variant.")


def check_models(account: str, region: str, request: dict[str, Any], known: set[str]) -> None:
    """A config names existing models (``known``: the lower-cased names that exist)."""
    for name in model_names(request):
        if name.lower() not in known:
            raise errors.validation(f'Could not find model "{model_arn(region, account, name)}".')


def get_config(conn: Connection, account: str, region: str, name: str) -> Row[Any] | None:
    c = configs_t.c
    return conn.execute(select(configs_t).where((c.account_id == account) & (c.region == region)
                                                & (c.name_key == name.lower()))).first()


def create_config(conn: Connection, account: str, region: str, request: dict[str, Any],
                  tags: list[dict[str, str]]) -> str:
    name = request["EndpointConfigName"]
    arn = config_arn(region, account, name)
    if get_config(conn, account, region, name) is not None:
        raise errors.config_exists(arn)
    body = {k: request[k] for k in CONFIG_KEYS if request.get(k) is not None}
    try:
        with conn.begin_nested():
            conn.execute(insert(configs_t).values(account_id=account, region=region, name_key=name.lower(),
                                                  name=name, arn=arn, request=body, tags=tags, created_at=now()))
    except IntegrityError:
        raise errors.config_exists(arn) from None
    return arn


def delete_config(conn: Connection, row: Row[Any]) -> None:
    c = configs_t.c
    conn.execute(delete(configs_t).where((c.account_id == row.account_id) & (c.region == row.region)
                                         & (c.name_key == row.name_key)))



def list_configs(conn: Connection, account: str, region: str, params: dict[str, Any]
                 ) -> tuple[list[Row[Any]], str | None]:
    return named_listing(conn, configs_t, "endpoint-configs", account, region, params)


# --------------------------------------------------------------------------------------- deployments
def model_snapshot(description: dict[str, Any]) -> dict[str, Any]:
    return {k: description[k] for k in MODEL_KEYS if description.get(k) is not None}


def deployment(config: Row[Any], models: dict[str, dict[str, Any]], number: int,
               current: dict[str, Any] | None = None, retain: bool = False,
               exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The deployment of ``config``: its variants with the models they run. With ``retain`` the
    variants that keep their name keep the endpoint's current weights and instance counts (and the
    endpoint keeps its DataCaptureConfig), except the properties in ``exclude``."""
    started = time.time()
    request = config.request
    previous = {v["VariantName"]: v for v in (current or {}).get("Variants") or []}
    variants = []
    for pv in request["ProductionVariants"]:
        model = model_snapshot(models[pv["ModelName"].lower()])
        images = [c.get("Image") or "" for c in containers_of(model)]
        serverless = pv.get("ServerlessConfig")
        count = 1 if serverless else int(pv["InitialInstanceCount"])
        weight = float(pv.get("InitialVariantWeight", 1.0))
        old = previous.get(pv["VariantName"]) if retain else None
        if old is not None:
            if "DesiredInstanceCount" not in exclude and not serverless:
                count = int(old["DesiredInstanceCount"])
            if "DesiredWeight" not in exclude:
                weight = float(old["DesiredWeight"])
        variants.append({
            "VariantName": pv["VariantName"], "ModelName": pv["ModelName"], "Model": model,
            "InstanceType": pv.get("InstanceType"), "AcceleratorType": pv.get("AcceleratorType"),
            "ServerlessConfig": serverless, "DesiredInstanceCount": count, "CurrentInstanceCount": 0,
            "DesiredWeight": weight, "CurrentWeight": weight,
            "DeployedImages": [{"SpecifiedImage": image, "ResolvedImage": resolved_image(image),
                                "ResolutionTime": started} for image in images],
            "Status": {"Status": "Creating", "StatusMessage": "Launching instances", "StartTime": started}})
    capture = request.get("DataCaptureConfig")
    if retain and current is not None and "DataCaptureConfig" not in exclude:
        capture = current.get("DataCaptureConfig")
    return {"Deployment": number, "ConfigName": config.name, "StartTime": started, "Variants": variants,
            "DataCaptureConfig": capture, "AsyncInferenceConfig": request.get("AsyncInferenceConfig"),
            "KmsKeyId": request.get("KmsKeyId")}


# ----------------------------------------------------------------------------------------- endpoints
def get_endpoint(conn: Connection, account: str, region: str, name: str, lock: bool = False) -> Row[Any] | None:
    c = endpoints_t.c
    query = select(endpoints_t).where((c.account_id == account) & (c.region == region) & (c.name_key == name.lower()))
    return conn.execute(query.with_for_update() if lock else query).first()


def create_endpoint(conn: Connection, claims: Claims, account: str, region: str, name: str, config: Row[Any],
                    models: dict[str, dict[str, Any]], tags: list[dict[str, str]]) -> str:
    """Record the endpoint (Creating) and claim it for this server, which starts its instances."""
    arn = endpoint_arn(region, account, name)
    if get_endpoint(conn, account, region, name) is not None:
        raise errors.endpoint_exists(arn)
    endpoint_id = uuid.uuid4().hex
    at = now()
    try:
        with conn.begin_nested():
            conn.execute(insert(endpoints_t).values(
                endpoint_id=endpoint_id, account_id=account, region=region, name_key=name.lower(), name=name,
                arn=arn, status="Creating", failure_reason=None, config_name=config.name, serving=None,
                pending=deployment(config, models, 1), generation=1, tags=tags, created_at=at,
                last_modified_at=at))
    except IntegrityError:
        raise errors.endpoint_exists(arn) from None
    events.state_changed(conn, endpoint_id, at)
    claims.insert(conn, ClaimKey(ENDPOINT, account, region, endpoint_id))
    return arn


def check_deployment_config(config: dict[str, Any]) -> None:
    """UpdateEndpoint's DeploymentConfig: a blue/green policy whose traffic routing has the step
    size its type needs (the shapes have checked the ranges already)."""
    if config.get("RollingUpdatePolicy"):
        raise errors.validation("RollingUpdatePolicy is not supported by Stratum: use BlueGreenUpdatePolicy.")
    policy = config.get("BlueGreenUpdatePolicy")
    if not policy:
        if config.get("AutoRollbackConfiguration"):
            raise errors.validation("AutoRollbackConfiguration requires a BlueGreenUpdatePolicy.")
        return
    routing = policy["TrafficRoutingConfiguration"]
    kind = routing["Type"]
    for field_name, needed in (("CanarySize", kind == "CANARY"), ("LinearStepSize", kind == "LINEAR")):
        size = routing.get(field_name)
        if needed and not size:
            raise errors.validation(f"{field_name} must be specified for TrafficRoutingConfiguration Type {kind}.")
        if not needed and size:
            raise errors.validation(f"{field_name} is not valid for TrafficRoutingConfiguration Type {kind}.")
        if size and size["Type"] == "CAPACITY_PERCENT" and int(size["Value"]) >= 100:
            raise errors.validation(f"{field_name} Value must be less than 100 when its Type is CAPACITY_PERCENT.")


def update_endpoint(conn: Connection, row: Row[Any], config: Row[Any], models: dict[str, dict[str, Any]],
                    retain: bool, exclude: frozenset[str], deployment_config: dict[str, Any] | None = None) -> None:
    """UpdateEndpoint: the new config's deployment becomes pending; the serving one keeps serving.
    A DeploymentConfig's blue/green policy shifts the traffic to it in steps (hosting service)."""
    if row.status == "Failed":
        raise errors.failed_endpoint(row.arn)
    if row.status in BUSY:
        raise errors.in_progress(row.arn)
    if deployment_config:
        check_deployment_config(deployment_config)
    number = row.generation + 1
    pending = deployment(config, models, number, row.serving, retain, exclude)
    if deployment_config:
        pending["DeploymentConfig"] = deployment_config
    _set(conn, row, status="Updating", failure_reason=None, pending=pending, generation=number)


def update_weights(conn: Connection, row: Row[Any], desired: list[dict[str, Any]]) -> None:
    """UpdateEndpointWeightsAndCapacities on the serving deployment."""
    if row.status == "Failed":
        raise errors.failed_endpoint(row.arn)
    if row.status in BUSY:
        raise errors.in_progress(row.arn)
    serving = dict(row.serving)
    variants = {v["VariantName"]: dict(v) for v in serving["Variants"]}
    missing = [d["VariantName"] for d in desired if d["VariantName"] not in variants]
    if missing:
        raise errors.validation(f"The variant(s) \"[{', '.join(missing)}]\" is/are not present in the endpoint "
                                f"\"{row.arn}\".")
    names = [d["VariantName"] for d in desired]
    if len(set(names)) != len(names):
        raise errors.validation("Variant names must be unique in DesiredWeightsAndCapacities.")
    started = time.time()
    for change in desired:
        variant = variants[change["VariantName"]]
        if change.get("DesiredWeight") is not None:
            if float(change["DesiredWeight"]) < 0:
                raise errors.validation("DesiredWeight must be greater than or equal to 0.")
            variant["DesiredWeight"] = float(change["DesiredWeight"])
        if change.get("DesiredInstanceCount") is not None:
            if variant.get("ServerlessConfig"):
                raise errors.validation(f"DesiredInstanceCount cannot be set for the serverless variant "
                                        f"{variant['VariantName']}.")
            if int(change["DesiredInstanceCount"]) < 1:
                raise errors.validation("DesiredInstanceCount must be at least 1.")
            variant["DesiredInstanceCount"] = int(change["DesiredInstanceCount"])
        if change.get("DesiredWeight") is None and change.get("DesiredInstanceCount") is None:
            raise errors.validation(f"Specify DesiredWeight or DesiredInstanceCount for variant "
                                    f"{variant['VariantName']}.")
        variant["Status"] = {"Status": "Updating", "StatusMessage": "Updating weights and capacities",
                             "StartTime": started}
    serving["Variants"] = [variants[v["VariantName"]] for v in serving["Variants"]]
    if sum(float(v["DesiredWeight"]) for v in serving["Variants"]) <= 0:
        raise errors.validation("The sum of the variant weights must be greater than 0.")
    _set(conn, row, status="Updating", failure_reason=None, serving=serving, generation=row.generation + 1)


def mark_deleting(conn: Connection, row: Row[Any]) -> None:
    _set(conn, row, status="Deleting", generation=row.generation + 1)


def _set(conn: Connection, row: Row[Any], **values: Any) -> None:
    conn.execute(update(endpoints_t).where(endpoints_t.c.endpoint_id == row.endpoint_id)
                 .values(last_modified_at=now(), **values))
    if values.get("status", row.status) != row.status:
        events.state_changed(conn, row.endpoint_id, now())


def list_endpoints(conn: Connection, account: str, region: str, params: dict[str, Any]
                   ) -> tuple[list[Row[Any]], str | None]:
    status = params.get("StatusEquals")
    return named_listing(conn, endpoints_t, "endpoints", account, region, params,
                         sort_columns={"Status": endpoints_t.c.status},
                         where=(lambda q: q.where(endpoints_t.c.status == status)) if status else None)


def endpoint_rows(conn: Connection, account: str, region: str) -> list[Row[Any]]:
    c = endpoints_t.c
    return list(conn.execute(select(endpoints_t).where((c.account_id == account) & (c.region == region))
                             .order_by(c.created_at)))
