"""Hosting logic without a server: deployments (retained variant properties), resolved images,
config validation, execution modes, routes and their cache."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import insert

from stratum.hosting.router import Router, build_route, execution_mode
from stratum.hosting.tables import sagemaker_endpoint_instances, sagemaker_endpoints
from stratum.protocol.errors import ServiceError
from stratum.services.sagemaker.hosting import store
from stratum.store.db import Database

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def _model(*images: str, mode: str | None = None) -> dict[str, Any]:
    if len(images) == 1:
        return {"ModelName": "m", "PrimaryContainer": {"Image": images[0]}}
    model: dict[str, Any] = {"ModelName": "m", "Containers": [
        {"Image": image, "ContainerHostname": f"c{i}"} for i, image in enumerate(images)]}
    if mode:
        model["InferenceExecutionConfig"] = {"Mode": mode}
    return model


def _config(*variants: dict[str, Any], **extra: Any) -> SimpleNamespace:
    return SimpleNamespace(name="cfg", request={"ProductionVariants": list(variants), **extra})


def _variant(name: str, count: int = 1, weight: float | None = None, **extra: Any) -> dict[str, Any]:
    v: dict[str, Any] = {"VariantName": name, "ModelName": "m", "InstanceType": "ml.m5.large",
                         "InitialInstanceCount": count, **extra}
    if weight is not None:
        v["InitialVariantWeight"] = weight
    return v


def test_resolved_image_is_a_stable_digest_of_the_repository() -> None:
    resolved = store.resolved_image(IMAGE)
    assert resolved.startswith("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost@sha256:")
    assert resolved == store.resolved_image(IMAGE) != store.resolved_image(IMAGE.replace("1.7-1", "1.5-1"))
    assert store.resolved_image("localhost:5000/img").startswith("localhost:5000/img@sha256:")
    assert store.resolved_image("repo/img@sha256:abc") == "repo/img@sha256:abc"


def test_deployment_defaults_and_retained_properties() -> None:
    models = {"m": _model(IMAGE)}
    capture = {"InitialSamplingPercentage": 10, "DestinationS3Uri": "s3://b/new", "CaptureOptions": [{}]}
    first = store.deployment(_config(_variant("A", 2), _variant("B", 1, 3.0)), models, 1)
    a, b = first["Variants"]
    assert (a["DesiredInstanceCount"], a["DesiredWeight"], a["CurrentInstanceCount"]) == (2, 1.0, 0)
    assert (b["DesiredInstanceCount"], b["DesiredWeight"]) == (1, 3.0)
    assert a["DeployedImages"][0]["SpecifiedImage"] == IMAGE and a["Status"]["Status"] == "Creating"
    current = {**first, "DataCaptureConfig": {"DestinationS3Uri": "s3://b/old"},
               "Variants": [{**a, "DesiredInstanceCount": 5, "DesiredWeight": 0.25}, b]}
    config = _config(_variant("A", 1, 1.0), _variant("C", 1), DataCaptureConfig=capture)
    fresh = store.deployment(config, models, 2, current)
    assert [(v["VariantName"], v["DesiredInstanceCount"], v["DesiredWeight"]) for v in fresh["Variants"]] == [
        ("A", 1, 1.0), ("C", 1, 1.0)]
    assert fresh["DataCaptureConfig"] == capture
    kept = store.deployment(config, models, 2, current, retain=True)
    assert [(v["VariantName"], v["DesiredInstanceCount"], v["DesiredWeight"]) for v in kept["Variants"]] == [
        ("A", 5, 0.25), ("C", 1, 1.0)]
    assert kept["DataCaptureConfig"] == {"DestinationS3Uri": "s3://b/old"}
    partly = store.deployment(config, models, 2, current, retain=True,
                              exclude=frozenset({"DesiredWeight", "DataCaptureConfig"}))
    assert [(v["DesiredInstanceCount"], v["DesiredWeight"]) for v in partly["Variants"]] == [(5, 1.0), (1, 1.0)]
    assert partly["DataCaptureConfig"] == capture
    serverless = store.deployment(_config({"VariantName": "S", "ModelName": "m",
                                           "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}),
                                  models, 1)
    assert serverless["Variants"][0]["DesiredInstanceCount"] == 1


@pytest.mark.parametrize("request_, message", [
    ({"ProductionVariants": []}, "Member must have length greater than or equal to 1"),
    ({"ProductionVariants": [_variant("A"), _variant("a")]}, "Variant name a is duplicated"),
    ({"ProductionVariants": [{"VariantName": "A", "ModelName": "m", "InitialInstanceCount": 1}]},
     "InstanceType is required"),
    ({"ProductionVariants": [_variant("A", 0)]}, "InitialInstanceCount must be at least 1"),
    ({"ProductionVariants": [{**_variant("A"), "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 1}}]},
     "ServerlessConfig cannot be specified with InstanceType"),
    ({"ProductionVariants": [{"VariantName": "A", "ModelName": "m",
                              "ServerlessConfig": {"MemorySizeInMB": 1500, "MaxConcurrency": 1}}]},
     "MemorySizeInMB 1500 of production variant A is not valid"),
    ({"ProductionVariants": [{"VariantName": "A", "ModelName": "m", "ServerlessConfig": {
        "MemorySizeInMB": 2048, "MaxConcurrency": 2, "ProvisionedConcurrency": 3}}]},
     "ProvisionedConcurrency (3) of production variant A must be less than or equal to MaxConcurrency (2)"),
    ({"ProductionVariants": [_variant("A"), _variant("B")], "AsyncInferenceConfig": {"OutputConfig": {}}},
     "one production variant"),
])
def test_config_validation(request_: dict[str, Any], message: str) -> None:
    with pytest.raises(ServiceError) as exc:
        store.check_config(request_)
    assert exc.value.code == "ValidationException" and message in exc.value.message


def test_execution_mode() -> None:
    assert execution_mode(_model(IMAGE)) == "Single"
    assert execution_mode(_model(IMAGE, IMAGE)) == "Serial"  # SageMaker's default
    assert execution_mode(_model(IMAGE, IMAGE, mode="Direct")) == "Direct"


def _endpoint_row(serving: dict[str, Any] | None, status: str = "InService") -> SimpleNamespace:
    return SimpleNamespace(endpoint_id="e1", arn="arn:aws:sagemaker:us-east-1:111111111111:endpoint/ep", name="ep",
                           account_id="111111111111", region="us-east-1", status=status, serving=serving,
                           config_name="cfg", tags=[{"Key": "k", "Value": "v"}], pending=None)


def _instance(instance_id: str, container: str, status: str = "InService", deployment: int = 1,
              variant: str = "A", position: int = 0) -> SimpleNamespace:
    return SimpleNamespace(instance_id=instance_id, container=container, status=status, deployment=deployment,
                           variant=variant, position=position, url=f"http://127.0.0.1/{instance_id}/{container}",
                           created_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_route_has_only_complete_in_service_instances_of_the_serving_deployment() -> None:
    two = _model(IMAGE, IMAGE, mode="Direct")
    serving = store.deployment(_config(_variant("A", 2, 2.0)), {"m": two}, 1)
    serving["Variants"][0]["CurrentWeight"] = 2.0
    rows = [_instance("i-1", "c0"), _instance("i-1", "c1", position=1),
            _instance("i-2", "c0"), _instance("i-2", "c1", status="Restarting", position=1),
            _instance("i-3", "c0", deployment=0), _instance("i-3", "c1", deployment=0, position=1),
            _instance("i-4", "c0", status="Draining"), _instance("i-4", "c1", status="Draining", position=1)]
    route = build_route(_endpoint_row(serving), rows)  # type: ignore[arg-type]
    assert route.mode == "Direct" and route.status == "InService" and route.tags == ({"Key": "k", "Value": "v"},)
    [variant] = route.variants
    assert (variant.name, variant.weight, variant.containers, variant.images) == ("A", 2.0, ("c0", "c1"),
                                                                                  (IMAGE, IMAGE))
    assert [(i.instance_id, i.urls) for i in variant.instances] == [
        ("i-1", {"c0": "http://127.0.0.1/i-1/c0", "c1": "http://127.0.0.1/i-1/c1"})]
    creating = build_route(_endpoint_row(None, "Creating"), [])  # type: ignore[arg-type]
    assert creating.status == "Creating" and creating.variants == ()


def test_router_caches_and_invalidates(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.migrate()
    try:
        now = datetime.now(UTC)
        serving = store.deployment(_config(_variant("A")), {"m": _model(IMAGE)}, 1)
        with db.begin() as conn:
            conn.execute(insert(sagemaker_endpoints).values(
                endpoint_id="e1", account_id="111111111111", region="us-east-1", name_key="ep", name="Ep",
                arn="arn", status="InService", config_name="cfg", serving=serving, generation=1, tags=[],
                created_at=now, last_modified_at=now))
            conn.execute(insert(sagemaker_endpoint_instances).values(
                instance_id="i-1", container="container-1", endpoint_id="e1", deployment=1, variant="A", position=0,
                url="http://127.0.0.1:1", owner="me", status="InService", created_at=now, updated_at=now))
        router = Router(db, ttl=60)
        route = router.route("111111111111", "us-east-1", "EP")
        assert route is not None and route.variants[0].instances[0].urls == {"container-1": "http://127.0.0.1:1"}
        assert router.route("111111111111", "us-east-1", "missing") is None
        with db.begin() as conn:
            conn.execute(sagemaker_endpoints.delete())
        assert router.route("111111111111", "us-east-1", "ep") is route  # cached: no query
        router.invalidate("111111111111", "us-east-1", "Ep")
        assert router.route("111111111111", "us-east-1", "ep") is None
    finally:
        db.dispose()


def test_supervisor_transitions_never_overwrite_a_newer_change(tmp_path: Path) -> None:
    from stratum.hosting import records

    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.migrate()
    try:
        now = datetime.now(UTC)
        pending = store.deployment(_config(_variant("A", 2)), {"m": _model(IMAGE)}, 1)
        with db.begin() as conn:
            conn.execute(insert(sagemaker_endpoints).values(
                endpoint_id="e1", account_id="111111111111", region="us-east-1", name_key="ep", name="ep",
                arn="arn", status="Creating", config_name="cfg", serving=None, pending=pending, generation=1, tags=[],
                created_at=now, last_modified_at=now))
            seen = records.endpoints(conn, ["e1"])["e1"]
        with db.begin() as conn:
            assert records.deployed(conn, seen)
            row = records.endpoints(conn, ["e1"])["e1"]
        assert row.status == "InService" and row.pending is None
        [variant] = row.serving["Variants"]
        assert (variant["CurrentInstanceCount"], variant["Status"]) == (2, None)
        with db.begin() as conn:
            store.update_weights(conn, row, [{"VariantName": "A", "DesiredInstanceCount": 3}])
        with db.begin() as conn:  # decided on the row before the update: not written
            assert not records.set_status(conn, row, "SystemUpdating")
            updating = records.endpoints(conn, ["e1"])["e1"]
        assert updating.status == "Updating" and updating.serving["Variants"][0]["DesiredInstanceCount"] == 3
        with db.begin() as conn:  # the new instance could not start: back to what it served
            assert records.failed(conn, updating, "no capacity")
            back = records.endpoints(conn, ["e1"])["e1"]
        assert back.status == "InService" and back.failure_reason == "no capacity"
        assert back.serving["Variants"][0]["DesiredInstanceCount"] == 2
        with db.begin() as conn:
            with pytest.raises(ServiceError) as exc:
                store.update_weights(conn, back, [{"VariantName": "B", "DesiredWeight": 1.0}])
        assert 'The variant(s) "[B]" is/are not present in the endpoint "arn".' == exc.value.message
    finally:
        db.dispose()


def test_route_carries_multi_model_settings_and_serverless_concurrency() -> None:
    multi = {"ModelName": "m", "ExecutionRoleArn": "arn:aws:iam::111111111111:role/r", "PrimaryContainer": {
        "Image": IMAGE, "Mode": "MultiModel", "ModelDataUrl": "s3://b/models",
        "Environment": {"STRATUM_MAX_LOADED_MODELS": "3"}, "MultiModelConfig": {"ModelCacheSetting": "Disabled"}}}
    serverless = {"VariantName": "A", "ModelName": "m", "ServerlessConfig": {"MemorySizeInMB": 2048,
                                                                            "MaxConcurrency": 4}}
    route = build_route(_endpoint_row(store.deployment(_config(serverless), {"m": multi}, 1)),  # type: ignore[arg-type]
                        [])
    [variant] = route.variants
    assert variant.max_concurrency == 4
    assert variant.multi_model is not None
    assert (variant.multi_model.prefix, variant.multi_model.role, variant.multi_model.cache,
            variant.multi_model.max_loaded) == ("s3://b/models/", "arn:aws:iam::111111111111:role/r", False, 3)
    single = build_route(_endpoint_row(store.deployment(_config(_variant("A")), {"m": _model(IMAGE)}, 1)),  # type: ignore[arg-type]
                         [])
    assert single.variants[0].multi_model is None and single.variants[0].max_concurrency == 0


def test_blue_green_steps_and_rollback() -> None:
    from stratum.hosting import deployments

    def routing(kind: str, size: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"Type": kind, "WaitIntervalInSeconds": 10}
        if size:
            out["CanarySize" if kind == "CANARY" else "LinearStepSize"] = size
        return out

    assert deployments.steps(routing("ALL_AT_ONCE"), 4) == [1.0]
    assert deployments.steps(routing("CANARY", {"Type": "CAPACITY_PERCENT", "Value": 20}), 4) == [0.2, 1.0]
    assert deployments.steps(routing("CANARY", {"Type": "INSTANCE_COUNT", "Value": 1}), 4) == [0.25, 1.0]
    assert deployments.steps(routing("LINEAR", {"Type": "CAPACITY_PERCENT", "Value": 30}), 4) == [0.3, 0.6, 0.9, 1.0]
    pending = {"StartTime": 0.0, "Variants": [{"DesiredInstanceCount": 2}], "DeploymentConfig": {
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing("CANARY", {"Type": "CAPACITY_PERCENT",
                                                                                    "Value": 50}),
                                  "TerminationWaitInSeconds": 5, "MaximumExecutionTimeoutInSeconds": 600}}}
    assert deployments.next_step(pending, 1.0, []) == ("shift", {"Step": 0, "Fraction": 0.5, "Since": 1.0})
    pending["Traffic"] = {"Step": 0, "Fraction": 0.5, "Since": 1.0}
    assert deployments.next_step(pending, 10.0, []) is None
    assert deployments.next_step(pending, 11.0, []) == ("shift", {"Step": 1, "Fraction": 1.0, "Since": 11.0})
    pending["Traffic"] = {"Step": 1, "Fraction": 1.0, "Since": 11.0}
    assert deployments.next_step(pending, 25.0, []) is None  # baking (10 s) and termination wait (5 s)
    assert deployments.next_step(pending, 26.0, []) == ("deployed", None)
    kind, reason = deployments.next_step(pending, 12.0, ["high-errors"])  # type: ignore[misc]
    assert kind == "rollback" and "high-errors" in reason
    assert deployments.next_step(pending, 601.0, [])[0] == "rollback"  # type: ignore[index]
