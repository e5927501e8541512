"""StartPipelineExecution parameter resolution and ListPipelineParametersForExecution rendering."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from stratum.services.sagemaker.pipelines.definition import (
    DefinitionError,
    ParameterSpec,
    PipelineDefinition,
    coerce_value,
    parameters_for_listing,
    parse_definition,
    resolve_parameters,
)


def _no_network(*_args: Any, **_kwargs: Any) -> None:
    raise AssertionError("the SageMaker SDK tried to reach the network during a unit test")


@pytest.fixture(scope="module")
def offline_sdk() -> Iterator[None]:
    # Same guard as test_pipeline_definition.py: importing sagemaker creates boto3 sessions.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "secret")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
        mp.setattr(socket.socket, "connect", _no_network)
        pytest.importorskip("sagemaker")
        yield


@pytest.fixture(scope="module")
def sdk_defn(offline_sdk: None) -> PipelineDefinition:
    """Every parameter flavour the SDK can declare, referenced from a Fail step."""
    import boto3
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import Join
    from sagemaker.workflow.parameters import (
        ParameterBoolean,
        ParameterFloat,
        ParameterInteger,
        ParameterString,
    )
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.pipeline_context import PipelineSession

    params = [
        ParameterString("Mode", default_value="fast", enum_values=["fast", "slow"]),
        ParameterString("InputData"),
        ParameterInteger("Epochs", default_value=3),
        ParameterInteger("Seed"),
        ParameterFloat("LearningRate", default_value=0.001),
        ParameterFloat("Threshold"),
        ParameterBoolean("Debug", default_value=False),
        ParameterBoolean("Publish"),
    ]
    session = PipelineSession(
        boto_session=boto3.Session(region_name="us-east-1", aws_access_key_id="A", aws_secret_access_key="B"),
        default_bucket="stratum-bucket",
    )
    fail = FailStep(name="Report", error_message=Join(on=",", values=params))
    pipeline = Pipeline(name="params", parameters=params, steps=[fail], sagemaker_session=session)
    return parse_definition(pipeline.definition())


REQUIRED = [
    {"Name": "InputData", "Value": "s3://b/in"},
    {"Name": "Seed", "Value": "42"},
    {"Name": "Threshold", "Value": "0.5"},
    {"Name": "Publish", "Value": "true"},
]


def with_values(**overrides: str) -> list[dict[str, str]]:
    supplied = {entry["Name"]: entry["Value"] for entry in REQUIRED}
    supplied.update(overrides)
    return [{"Name": name, "Value": value} for name, value in supplied.items()]


def error_of(defn: PipelineDefinition, supplied: Any) -> str:
    with pytest.raises(DefinitionError) as exc_info:
        resolve_parameters(defn, supplied)
    return str(exc_info.value)


def test_sdk_declarations(sdk_defn: PipelineDefinition) -> None:
    specs = sdk_defn.parameters
    assert [(s.name, s.type, s.default) for s in specs.values()] == [
        ("Mode", "String", "fast"),
        ("InputData", "String", None),
        ("Epochs", "Integer", 3),
        ("Seed", "Integer", None),
        ("LearningRate", "Float", 0.001),
        ("Threshold", "Float", None),
        ("Debug", "Boolean", False),
        ("Publish", "Boolean", None),
    ]
    assert specs["Mode"].enum_values == ["fast", "slow"]
    assert [s.name for s in specs.values() if s.required] == ["InputData", "Seed", "Threshold", "Publish"]


def test_defaults_fill_in_and_values_are_typed(sdk_defn: PipelineDefinition) -> None:
    resolved = resolve_parameters(sdk_defn, REQUIRED)
    assert resolved == {
        "Mode": "fast",
        "InputData": "s3://b/in",
        "Epochs": 3,
        "Seed": 42,
        "LearningRate": 0.001,
        "Threshold": 0.5,
        "Debug": False,
        "Publish": True,
    }
    assert list(resolved) == list(sdk_defn.parameters)
    assert type(resolved["Threshold"]) is float and type(resolved["Seed"]) is int


def test_values_sent_by_sdk_pipeline_start(sdk_defn: PipelineDefinition) -> None:
    # Pipeline.start(parameters=...) sends str(value), so Python bools arrive as "True"/"False".
    from sagemaker.workflow.pipeline import format_start_parameters

    supplied = format_start_parameters(
        {
            "InputData": "s3://b/x",
            "Seed": 7,
            "Threshold": 1e-05,
            "Publish": True,
            "Debug": True,
            "LearningRate": 2.0,
            "Mode": "slow",
        }
    )
    resolved = resolve_parameters(sdk_defn, supplied)
    assert resolved["Threshold"] == 1e-05 and resolved["Publish"] is True and resolved["Debug"] is True
    assert resolved["LearningRate"] == 2.0 and resolved["Seed"] == 7 and resolved["Mode"] == "slow"


def test_none_supplied_means_empty_list(sdk_defn: PipelineDefinition) -> None:
    assert error_of(sdk_defn, None).startswith("Parameter 'InputData' has no default value")


def test_unknown_parameter(sdk_defn: PipelineDefinition) -> None:
    assert (
        error_of(sdk_defn, with_values(Nope="1"))
        == "Parameter 'Nope' is not defined in the pipeline definition"
    )


def test_duplicate_parameter(sdk_defn: PipelineDefinition) -> None:
    supplied = [*REQUIRED, {"Name": "Seed", "Value": "1"}]
    assert error_of(sdk_defn, supplied) == "Parameter 'Seed' is supplied more than once"


def test_missing_required_value(sdk_defn: PipelineDefinition) -> None:
    supplied = [entry for entry in REQUIRED if entry["Name"] != "Threshold"]
    assert error_of(sdk_defn, supplied) == (
        "Parameter 'Threshold' has no default value, so a value must be supplied in PipelineParameters"
    )


def test_empty_value_is_rejected(sdk_defn: PipelineDefinition) -> None:
    assert error_of(sdk_defn, with_values(InputData="")) == (
        "Parameter 'InputData' value \"\" is too short (length: 0, required minimum: 1)"
    )


def test_overlong_value_is_rejected(sdk_defn: PipelineDefinition) -> None:
    assert error_of(sdk_defn, with_values(InputData="x" * 1025)) == (
        "Parameter 'InputData' value is too long (length: 1025, maximum: 1024)"
    )


@pytest.mark.parametrize(
    "supplied",
    [{"Name": "Seed"}, {"Value": "1"}, {"Name": "Seed", "Value": 1}, "Seed=1", None],
)
def test_malformed_entry(sdk_defn: PipelineDefinition, supplied: Any) -> None:
    assert (
        error_of(sdk_defn, [supplied]) == "Each entry of PipelineParameters needs a string 'Name' and 'Value'"
    )


def test_supplied_not_a_list(sdk_defn: PipelineDefinition) -> None:
    assert error_of(sdk_defn, {"Seed": "1"}) == "PipelineParameters must be a list"


# "\u0663" is ARABIC-INDIC DIGIT THREE, which Python's int() would accept.
@pytest.mark.parametrize("value", ["1.5", "abc", "1e3", " 1", "1_000", "\u0663", "2.0"])
def test_integer_rejects(sdk_defn: PipelineDefinition, value: str) -> None:
    assert (
        error_of(sdk_defn, with_values(Seed=value))
        == f"Value '{value}' for parameter 'Seed' is not a valid Integer"
    )


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("-3", -3), ("+4", 4), ("007", 7)])
def test_integer_accepts(sdk_defn: PipelineDefinition, value: str, expected: int) -> None:
    assert resolve_parameters(sdk_defn, with_values(Seed=value))["Seed"] == expected


@pytest.mark.parametrize("value", ["abc", "nan", "inf", "-Infinity", "1e400", "1,5", "0x10", " 1.0", "1_0.0"])
def test_float_rejects(sdk_defn: PipelineDefinition, value: str) -> None:
    assert error_of(sdk_defn, with_values(Threshold=value)) == (
        f"Value '{value}' for parameter 'Threshold' is not a valid Float"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", 1.0), ("0.5", 0.5), (".5", 0.5), ("5.", 5.0), ("-2.5e-3", -0.0025), ("1E2", 100.0)],
)
def test_float_accepts(sdk_defn: PipelineDefinition, value: str, expected: float) -> None:
    resolved = resolve_parameters(sdk_defn, with_values(Threshold=value))["Threshold"]
    assert resolved == expected and type(resolved) is float


@pytest.mark.parametrize(
    ("value", "expected"), [("true", True), ("FALSE", False), ("True", True), ("fAlSe", False)]
)
def test_boolean_is_case_insensitive(sdk_defn: PipelineDefinition, value: str, expected: bool) -> None:
    assert resolve_parameters(sdk_defn, with_values(Publish=value))["Publish"] is expected


@pytest.mark.parametrize("value", ["yes", "1", "0", "t", "true "])
def test_boolean_rejects(sdk_defn: PipelineDefinition, value: str) -> None:
    assert error_of(sdk_defn, with_values(Publish=value)) == (
        f"Value '{value}' for parameter 'Publish' is not a valid Boolean (expected true or false)"
    )


def test_enum_violation(sdk_defn: PipelineDefinition) -> None:
    assert error_of(sdk_defn, with_values(Mode="medium")) == (
        "Value 'medium' for parameter 'Mode' is not one of its EnumValues: fast, slow"
    )


def test_enum_is_case_sensitive(sdk_defn: PipelineDefinition) -> None:
    assert "is not one of its EnumValues" in error_of(sdk_defn, with_values(Mode="FAST"))


def hand_written(*parameters: dict[str, Any]) -> PipelineDefinition:
    return parse_definition(
        json.dumps({"Version": "2020-12-01", "Parameters": list(parameters), "Steps": []})
    )


def test_typed_enum_on_integer_parameter() -> None:
    defn = hand_written({"Name": "K", "Type": "Integer", "DefaultValue": 5, "EnumValues": ["5", "10"]})
    # Compared as integers, so "010" is the same value as the declared "10".
    assert resolve_parameters(defn, [{"Name": "K", "Value": "010"}]) == {"K": 10}
    assert (
        error_of(defn, [{"Name": "K", "Value": "7"}])
        == "Value '7' for parameter 'K' is not one of its EnumValues: 5, 10"
    )


def test_no_parameters() -> None:
    defn = hand_written()
    assert resolve_parameters(defn, []) == {}
    assert parameters_for_listing(defn, {}) == []


def test_listing_in_definition_order_with_service_formatting(sdk_defn: PipelineDefinition) -> None:
    resolved = resolve_parameters(sdk_defn, with_values(Threshold="1", Publish="TRUE"))
    assert parameters_for_listing(sdk_defn, resolved) == [
        {"Name": "Mode", "Value": "fast"},
        {"Name": "InputData", "Value": "s3://b/in"},
        {"Name": "Epochs", "Value": "3"},
        {"Name": "Seed", "Value": "42"},
        {"Name": "LearningRate", "Value": "0.001"},
        {"Name": "Threshold", "Value": "1.0"},
        {"Name": "Debug", "Value": "false"},
        {"Name": "Publish", "Value": "true"},
    ]


def test_listing_floats_match_python_str() -> None:
    defn = hand_written({"Name": "F", "Type": "Float", "DefaultValue": 1e-05})
    assert parameters_for_listing(defn, resolve_parameters(defn, [])) == [{"Name": "F", "Value": "1e-05"}]


def test_listing_skips_unresolved_names(sdk_defn: PipelineDefinition) -> None:
    assert parameters_for_listing(sdk_defn, {"Seed": 1, "Unknown": 2}) == [{"Name": "Seed", "Value": "1"}]


def test_coerce_value_rejects_unknown_type() -> None:
    spec = ParameterSpec(name="X", type="Decimal", default=None, enum_values=None)
    with pytest.raises(DefinitionError, match="^Parameter 'X' has unsupported Type 'Decimal'$"):
        coerce_value(spec, "1")
