"""The operator's pure parts: the resources table against the service model and the vendored CRDs,
spec <-> API casing, the comparison that decides an update, and ACK's condition rules."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import boto3
import pytest
import yaml

from stratum.operator import conditions as cond
from stratum.operator.casing import to_api, to_k8s
from stratum.operator.reconcile import _matches
from stratum.operator.resources import GROUP, KINDS

CRDS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "crds"
MODEL = boto3.Session(region_name="us-east-1")._session.get_service_model("sagemaker")


def _crd(plural: str) -> dict:
    return dict(yaml.safe_load((CRDS / f"{GROUP}_{plural}.yaml").read_text()))


@pytest.mark.parametrize("kind", list(KINDS.values()), ids=list(KINDS))
def test_table_names_real_operations_and_a_vendored_crd(kind) -> None:
    crd = _crd(kind.plural)
    assert crd["spec"]["names"]["kind"] == kind.kind
    ops = set(MODEL.operation_names)
    for op in (kind.create, kind.describe, kind.update, kind.delete, kind.stop_before_delete):
        assert op is None or op in ops, op
    assert kind.describe_key in MODEL.operation_model(kind.describe).input_shape.members
    output = MODEL.operation_model(kind.describe).output_shape.members
    assert kind.arn_field in output
    assert kind.status_field is None or kind.status_field in output
    if kind.name_field:  # the spec's name field is what the Create operation takes
        assert kind.name_field in MODEL.operation_model(kind.create).input_shape.members
    # Every status field of the CRD (but ACK's own) is a member of the Describe output.
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    described = {m.lower() for m in output}
    missing = {p for p in status if p not in ("ackResourceMetadata", "conditions") and p.lower() not in described}
    assert missing <= {"stoppedByControllerMetadata"}, missing  # set by ACK's notebook hooks, not Describe


def test_every_vendored_sagemaker_crd_is_served() -> None:
    plurals = {p.name.split("_", 1)[1].removesuffix(".yaml") for p in CRDS.glob(f"{GROUP}_*.yaml")}
    assert plurals == {k.plural for k in KINDS.values()}


def test_spec_to_api_follows_the_shape_ignoring_case_and_drops_unknown_keys() -> None:
    shape = MODEL.operation_model("CreateModel").input_shape
    spec = {"modelName": "m", "executionRoleARN": "arn:r", "notAField": 1,
            "primaryContainer": {"image": "i", "modelDataURL": "s3://b/k", "environment": {"lowerKey": "v"}},
            "tags": [{"key": "a", "value": "b"}]}
    assert to_api(spec, shape) == {"ModelName": "m", "ExecutionRoleArn": "arn:r", "Tags": [{"Key": "a", "Value": "b"}],
                                   "PrimaryContainer": {"Image": "i", "ModelDataUrl": "s3://b/k",
                                                        "Environment": {"lowerKey": "v"}}}


def test_api_to_status_follows_the_crd_schema() -> None:
    schema = _crd("endpoints")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    out = to_k8s({"EndpointStatus": "InService", "CreationTime": when, "Unknown": 1,
                  "ProductionVariants": [{"VariantName": "v", "CurrentWeight": 1.0,
                                          "DeployedImages": [{"ResolutionTime": when}]}]}, schema)
    assert out == {"endpointStatus": "InService", "creationTime": "2026-01-02T03:04:05Z",
                   "productionVariants": [{"variantName": "v", "currentWeight": 1.0,
                                           "deployedImages": [{"resolutionTime": "2026-01-02T03:04:05Z"}]}]}


def test_matches_treats_omitted_fields_as_defaults_and_documents_as_json() -> None:
    assert _matches({"A": 1}, {"A": 1.0, "B": 2})
    assert not _matches({"A": 1}, {"A": 2})
    assert not _matches([1, 2], [1])
    assert _matches('{"a": 1, "b": [1]}', '{"b": [1], "a": 1}', document=True)
    assert not _matches('{"a": 1}', '{"a": 2}', document=True)


def test_ready_is_derived_and_transition_times_are_kept() -> None:
    first = cond.merge(None, [cond.condition(cond.SYNCED, False, "PipelineExecution is in Executing status.")])
    ready = {c["type"]: c for c in first}[cond.READY]
    assert ready["status"] == "False" and ready["message"] == "PipelineExecution is in Executing status."
    again = cond.merge(first, [cond.condition(cond.SYNCED, False, "PipelineExecution is in Executing status.")])
    assert again == first  # nothing changed: an identical status, so no write
    terminal = cond.merge(first, [cond.condition(cond.TERMINAL, True, "InvalidParameterValue: x"),
                                  cond.condition(cond.SYNCED, False, cond.NOT_SYNCED_MESSAGE)])
    by_type = {c["type"]: c for c in terminal}
    assert by_type[cond.READY] == {**by_type[cond.READY], "status": "False", "reason": cond.TERMINAL,
                                   "message": "InvalidParameterValue: x"}


def test_go_keyword_fields_keep_acks_trailing_underscore() -> None:
    """ACK spells `Type` as `type_` (a Go keyword); both directions match it."""
    shape = MODEL.operation_model("CreateHyperParameterTuningJob").input_shape
    spec = {"hyperParameterTuningJobConfig": {"hyperParameterTuningJobObjective": {"type_": "Minimize",
                                                                                    "metricName": "loss"}}}
    api = to_api(spec, shape)
    assert api["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"] == {"Type": "Minimize",
                                                                                         "MetricName": "loss"}
    schema = _crd("hyperparametertuningjobs")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert to_k8s(api, schema) == spec
