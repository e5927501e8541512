"""Pipeline definition parsing, validation and DAG construction.

Positive cases use JSON produced by the real SageMaker Python SDK 2.x (built offline with a
PipelineSession); negative cases use hand-written JSON shaped like the SDK's output.
"""

from __future__ import annotations

import copy
import json
import socket
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from stratum.services.sagemaker.pipelines.definition import (
    EXECUTION_VARIABLES,
    KNOWN_STEP_TYPES,
    DefinitionError,
    PipelineDefinition,
    parse_definition,
)

ROLE = "arn:aws:iam::111122223333:role/R"
IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/img:latest"


def _no_network(*_args: Any, **_kwargs: Any) -> None:
    raise AssertionError("the SageMaker SDK tried to reach the network during a unit test")


@pytest.fixture(scope="module")
def offline_sdk() -> Iterator[None]:
    """Import and drive the SageMaker SDK with no way to reach AWS.

    Importing sagemaker already creates boto3 sessions (JumpStart region config), so the
    import itself must happen inside the guard: credentials come from the environment, the
    instance-metadata probe is disabled, and any socket connection fails the test.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "secret")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
        mp.setattr(socket.socket, "connect", _no_network)
        pytest.importorskip("sagemaker")
        # The SDK phones home from estimator.fit(). Opting out via sagemaker_config would work
        # but re-validates the config schema on every lookup (~6 s), so stub the sender; if a
        # future SDK renames it, the SDK swallows the blocked connection error itself.
        mp.setattr(
            "sagemaker.telemetry.telemetry_logging._send_telemetry_request",
            lambda *_args, **_kwargs: None,
            raising=False,
        )
        yield


@pytest.fixture(scope="module")
def sdk_definitions(offline_sdk: None) -> dict[str, str]:
    """Definitions compiled by the SDK, keyed by scenario name."""
    # The SDK warns that a PipelineSession starts no jobs and that the Lambda is not updated:
    # both are exactly what these tests want.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _build_sdk_definitions()


def _build_sdk_definitions() -> dict[str, str]:
    import boto3
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from sagemaker.lambda_helper import Lambda
    from sagemaker.processing import ProcessingInput, ProcessingOutput, ScriptProcessor
    from sagemaker.workflow.callback_step import CallbackOutput, CallbackStep
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import (
        ConditionEquals,
        ConditionGreaterThanOrEqualTo,
        ConditionIn,
        ConditionNot,
        ConditionOr,
    )
    from sagemaker.workflow.execution_variables import ExecutionVariables
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import Join, JsonGet
    from sagemaker.workflow.lambda_step import LambdaOutput, LambdaStep
    from sagemaker.workflow.parameters import (
        ParameterBoolean,
        ParameterFloat,
        ParameterInteger,
        ParameterString,
    )
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.pipeline_context import PipelineSession
    from sagemaker.workflow.properties import PropertyFile
    from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TrainingStep

    boto_session = boto3.Session(
        region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret"
    )
    session = PipelineSession(boto_session=boto_session, default_bucket="stratum-bucket")

    instance_type = ParameterString(
        "InstanceType", default_value="ml.m5.large", enum_values=["ml.m5.large", "ml.m5.xlarge"]
    )
    instance_count = ParameterInteger("InstanceCount", default_value=1)
    threshold = ParameterFloat("Threshold", default_value=0.7)
    flag = ParameterBoolean("Flag", default_value=False)
    input_data = ParameterString("InputData")

    # Explicit S3 code/output locations keep the SDK from uploading or creating a bucket.
    processor = ScriptProcessor(
        image_uri=IMAGE,
        command=["python3"],
        role=ROLE,
        instance_type=instance_type,
        instance_count=instance_count,
        sagemaker_session=session,
    )
    evaluation = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
    preprocess = ProcessingStep(
        name="Preprocess",
        step_args=processor.run(
            code="s3://stratum-bucket/code/pre.py",
            inputs=[ProcessingInput(source=input_data, destination="/opt/ml/processing/input")],
            outputs=[
                ProcessingOutput(
                    output_name="train",
                    source="/opt/ml/processing/train",
                    destination="s3://stratum-bucket/t",
                ),
                ProcessingOutput(
                    output_name="evaluation",
                    source="/opt/ml/processing/evaluation",
                    destination="s3://stratum-bucket/e",
                ),
            ],
        ),
        property_files=[evaluation],
        cache_config=CacheConfig(enable_caching=True, expire_after="P1D"),
    )
    estimator = Estimator(
        image_uri=IMAGE,
        role=ROLE,
        instance_type="ml.m5.large",
        instance_count=1,
        output_path="s3://stratum-bucket/out",
        sagemaker_session=session,
    )
    train_uri = preprocess.properties.ProcessingOutputConfig.Outputs["train"].S3Output.S3Uri
    train = TrainingStep(
        name="Train", step_args=estimator.fit(inputs={"train": TrainingInput(s3_data=train_uri)})
    )
    fail = FailStep(
        name="Fail",
        error_message=Join(
            on=" ", values=["Accuracy below", threshold, "in", ExecutionVariables.PIPELINE_EXECUTION_ID]
        ),
    )
    check = ConditionStep(
        name="CheckAccuracy",
        conditions=[
            ConditionGreaterThanOrEqualTo(
                left=JsonGet(
                    step_name=preprocess.name, property_file=evaluation, json_path="metrics.accuracy"
                ),
                right=threshold,
            )
        ],
        if_steps=[train],
        else_steps=[fail],
    )
    ml = Pipeline(
        name="ml",
        parameters=[instance_type, instance_count, threshold, flag, input_data],
        steps=[preprocess, check],
        sagemaker_session=session,
    )

    count = ParameterInteger("N", default_value=2)
    status = LambdaOutput(output_name="status")
    notify = LambdaStep(
        name="Notify",
        lambda_func=Lambda(function_arn="arn:aws:lambda:us-east-1:111122223333:function:f", session=session),
        inputs={"n": count},
        outputs=[status],
    )
    done = CallbackOutput(output_name="done")
    wait = CallbackStep(
        name="Wait",
        sqs_queue_url="https://sqs.us-east-1.amazonaws.com/111122223333/q",
        inputs={"status": status},
        outputs=[done],
        depends_on=["Notify"],
    )
    inner = ConditionStep(
        name="Inner",
        conditions=[ConditionIn(value=done, in_values=["a", "b"])],
        if_steps=[FailStep(name="InnerFail", error_message="inner")],
    )
    outer = ConditionStep(
        name="Outer",
        conditions=[
            ConditionOr(
                conditions=[
                    ConditionNot(
                        expression=ConditionEquals(left=notify.properties.Outputs["status"], right="ok")
                    )
                ]
            )
        ],
        if_steps=[inner],
    )
    lam = Pipeline(name="lam", parameters=[count], steps=[notify, wait, outer], sagemaker_session=session)

    return {"ml": ml.definition(), "lambda": lam.definition()}


# --- SDK-produced definitions ------------------------------------------------------------


def test_sdk_ml_pipeline_parses_into_expected_dag(sdk_definitions: dict[str, str]) -> None:
    defn = parse_definition(sdk_definitions["ml"])

    assert isinstance(defn, PipelineDefinition)
    assert defn.version == "2020-12-01"
    assert list(defn.parameters) == ["InstanceType", "InstanceCount", "Threshold", "Flag", "InputData"]
    assert list(defn.steps) == ["Preprocess", "CheckAccuracy", "Train", "Fail"]
    assert {n: s.type for n, s in defn.steps.items()} == {
        "Preprocess": "Processing",
        "CheckAccuracy": "Condition",
        "Train": "Training",
        "Fail": "Fail",
    }
    assert defn.dag == {
        "Preprocess": set(),
        # Std:JsonGet PropertyFile reference.
        "CheckAccuracy": {"Preprocess"},
        # Branch membership plus the S3Uri Get on Preprocess's output.
        "Train": {"CheckAccuracy", "Preprocess"},
        "Fail": {"CheckAccuracy"},
    }
    assert defn.edges is defn.dag
    assert defn.topological_order() == ["Preprocess", "CheckAccuracy", "Train", "Fail"]
    check = defn.steps["CheckAccuracy"]
    assert (check.if_steps, check.else_steps) == (["Train"], ["Fail"])
    assert defn.steps["Train"].parent == "CheckAccuracy"
    assert defn.steps["Preprocess"].property_files == ["EvaluationReport"]
    assert defn.top_level_steps == ["Preprocess", "CheckAccuracy"]
    assert defn.experiment_config == {
        "ExperimentName": {"Get": "Execution.PipelineName"},
        "TrialName": {"Get": "Execution.PipelineExecutionId"},
    }
    assert defn.raw == json.loads(sdk_definitions["ml"])


def test_sdk_parameters_are_typed(sdk_definitions: dict[str, str]) -> None:
    params = parse_definition(sdk_definitions["ml"]).parameters

    assert params["InstanceType"].enum_values == ["ml.m5.large", "ml.m5.xlarge"]
    assert params["InstanceType"].default == "ml.m5.large"
    assert (params["InstanceCount"].type, params["InstanceCount"].default) == ("Integer", 1)
    assert (params["Threshold"].type, params["Threshold"].default) == ("Float", 0.7)
    # ParameterBoolean(default_value=False) is emitted as DefaultValue false, not dropped.
    assert (params["Flag"].type, params["Flag"].default) == ("Boolean", False)
    assert params["InputData"].default is None and params["InputData"].required


def test_sdk_lambda_callback_nested_conditions(sdk_definitions: dict[str, str]) -> None:
    defn = parse_definition(sdk_definitions["lambda"])

    assert defn.dag == {
        "Notify": set(),
        "Wait": {"Notify"},  # explicit DependsOn plus OutputParameters reference
        "Outer": {"Notify"},  # reference inside Or -> Not -> Equals
        "Inner": {"Outer", "Wait"},  # nested in Outer's IfSteps, In QueryValue on Wait
        "InnerFail": {"Inner"},
    }
    assert defn.steps["Wait"].depends_on == ["Notify"]
    assert defn.steps["Outer"].if_steps == ["Inner"]
    assert defn.steps["Inner"].parent == "Outer"
    assert defn.topological_order() == ["Notify", "Wait", "Outer", "Inner", "InnerFail"]


def test_known_step_types_match_sdk_enum(offline_sdk: None) -> None:
    from sagemaker.workflow.steps import StepTypeEnum

    assert {t.value for t in StepTypeEnum} == KNOWN_STEP_TYPES


def test_execution_variables_match_sdk(offline_sdk: None) -> None:
    import sagemaker.workflow.execution_variables as ev

    sdk_names = {v.name for v in vars(ev.ExecutionVariables).values() if isinstance(v, ev.ExecutionVariable)}
    assert sdk_names == EXECUTION_VARIABLES


# --- hand-written definitions ------------------------------------------------------------


def base() -> dict[str, Any]:
    """A small definition in the SDK's shape: Processing -> Condition(JsonGet) -> Train | Fail."""
    return {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": [
            {"Name": "InputData", "Type": "String", "DefaultValue": "s3://b/in"},
            {"Name": "Threshold", "Type": "Float", "DefaultValue": 0.7},
        ],
        "PipelineExperimentConfig": {
            "ExperimentName": {"Get": "Execution.PipelineName"},
            "TrialName": {"Get": "Execution.PipelineExecutionId"},
        },
        "Steps": [
            {
                "Name": "Preprocess",
                "Type": "Processing",
                "Arguments": {
                    "ProcessingInputs": [
                        {"InputName": "in", "S3Input": {"S3Uri": {"Get": "Parameters.InputData"}}}
                    ],
                    "ProcessingOutputConfig": {
                        "Outputs": [{"OutputName": "evaluation", "S3Output": {"S3Uri": "s3://b/e"}}]
                    },
                },
                "PropertyFiles": [
                    {"PropertyFileName": "Eval", "OutputName": "evaluation", "FilePath": "evaluation.json"}
                ],
            },
            {
                "Name": "Check",
                "Type": "Condition",
                "Arguments": {
                    "Conditions": [
                        {
                            "Type": "GreaterThanOrEqualTo",
                            "LeftValue": {
                                "Std:JsonGet": {
                                    "PropertyFile": {"Get": "Steps.Preprocess.PropertyFiles.Eval"},
                                    "Path": "metrics.accuracy",
                                }
                            },
                            "RightValue": {"Get": "Parameters.Threshold"},
                        }
                    ],
                    "IfSteps": [
                        {
                            "Name": "Train",
                            "Type": "Training",
                            "Arguments": {
                                "InputDataConfig": [
                                    {
                                        "ChannelName": "train",
                                        "DataSource": {
                                            "S3DataSource": {
                                                "S3Uri": {
                                                    "Get": "Steps.Preprocess.ProcessingOutputConfig."
                                                    "Outputs['evaluation'].S3Output.S3Uri"
                                                }
                                            }
                                        },
                                    }
                                ]
                            },
                        }
                    ],
                    "ElseSteps": [
                        {
                            "Name": "Fail",
                            "Type": "Fail",
                            "Arguments": {
                                "ErrorMessage": {
                                    "Std:Join": {
                                        "On": " ",
                                        "Values": ["below", {"Get": "Parameters.Threshold"}],
                                    }
                                }
                            },
                        }
                    ],
                },
            },
        ],
    }


def parse(doc: Any) -> PipelineDefinition:
    return parse_definition(json.dumps(doc))


def error_of(doc: Any) -> str:
    with pytest.raises(DefinitionError) as exc_info:
        parse(doc)
    return str(exc_info.value)


def step(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """Find a step dict by name anywhere in ``doc`` (for mutation in tests)."""
    pending = list(doc["Steps"])
    while pending:
        item = pending.pop()
        if item["Name"] == name:
            return item
        args = item.get("Arguments", {})
        pending.extend(args.get("IfSteps", []) + args.get("ElseSteps", []))
    raise KeyError(name)


def test_base_definition_is_valid() -> None:
    defn = parse(base())
    assert defn.dag == {
        "Preprocess": set(),
        "Check": {"Preprocess"},
        "Train": {"Check", "Preprocess"},
        "Fail": {"Check"},
    }


def test_definition_error_is_value_error() -> None:
    assert issubclass(DefinitionError, ValueError)


# Document-level errors.


def test_invalid_json() -> None:
    with pytest.raises(DefinitionError) as exc_info:
        parse_definition('{"Version": ')
    assert (
        str(exc_info.value)
        == "Pipeline definition is not valid JSON: Expecting value: line 1 column 13 (char 12)"
    )


def test_nan_is_not_json() -> None:
    with pytest.raises(
        DefinitionError, match="^Pipeline definition is not valid JSON: NaN is not a valid JSON value"
    ):
        parse_definition('{"Version": "2020-12-01", "Steps": [], "Metadata": {"x": NaN}}')


def test_deeply_nested_json() -> None:
    with pytest.raises(DefinitionError, match="^Pipeline definition is not valid JSON: nested too deeply$"):
        parse_definition("[" * 100_000 + "]" * 100_000)


def test_bytes_input_is_accepted() -> None:
    assert parse_definition(json.dumps(base()).encode()).version == "2020-12-01"


def test_non_string_input() -> None:
    with pytest.raises(DefinitionError, match="^Pipeline definition must be a JSON string$"):
        parse_definition(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("doc", [[], "x", 1, None])
def test_not_an_object(doc: Any) -> None:
    assert error_of(doc) == "Pipeline definition must be a JSON object"


@pytest.mark.parametrize("version", ["2021-01-01", 20201201, None])
def test_unsupported_version(version: Any) -> None:
    doc = base()
    doc["Version"] = version
    assert error_of(doc) == (
        f"Pipeline definition Version {json.dumps(version)} is not supported; supported versions: 2020-12-01"
    )


def test_missing_version_defaults_to_2020_12_01() -> None:
    # The published schema makes Version optional; only a wrong value is rejected.
    doc = base()
    del doc["Version"]
    assert parse(doc).version == "2020-12-01"


def test_metadata_must_be_object() -> None:
    doc = base()
    doc["Metadata"] = []
    assert error_of(doc) == "Pipeline definition 'Metadata' must be an object"


def test_experiment_config_must_be_object() -> None:
    doc = base()
    doc["PipelineExperimentConfig"] = "x"
    assert error_of(doc) == "Pipeline definition 'PipelineExperimentConfig' must be an object"


def test_experiment_config_unknown_property() -> None:
    doc = base()
    doc["PipelineExperimentConfig"]["TrialName"] = {"Get": "PipelineExperimentConfig.Bogus"}
    assert error_of(doc) == (
        "PipelineExperimentConfig references unknown PipelineExperimentConfig property 'Bogus'; "
        "supported: ExperimentName, TrialName"
    )


def test_experiment_config_can_reference_itself_and_parameters() -> None:
    doc = base()
    doc["PipelineExperimentConfig"]["TrialName"] = {
        "Std:Join": {
            "On": "-",
            "Values": [{"Get": "PipelineExperimentConfig.ExperimentName"}, {"Get": "Parameters.InputData"}],
        }
    }
    parse(doc)


# Parameters.


def test_parameters_not_a_list() -> None:
    doc = base()
    doc["Parameters"] = {"Name": "X"}
    assert error_of(doc) == "Pipeline definition 'Parameters' must be a list"


def test_parameters_absent_is_empty() -> None:
    doc = base()
    del doc["Parameters"]
    doc["Steps"] = [{"Name": "F", "Type": "Fail", "Arguments": {"ErrorMessage": "x"}}]
    assert parse(doc).parameters == {}


def test_parameter_not_an_object() -> None:
    doc = base()
    doc["Parameters"].append("X")
    assert error_of(doc) == "Pipeline definition parameter #3 must be an object"


@pytest.mark.parametrize("entry", [{"Type": "String"}, {"Name": "", "Type": "String"}, {"Name": 5}])
def test_parameter_missing_name(entry: dict[str, Any]) -> None:
    doc = base()
    doc["Parameters"].insert(0, entry)
    assert error_of(doc) == "Pipeline definition parameter #1 is missing 'Name'"


def test_parameter_unknown_type() -> None:
    doc = base()
    doc["Parameters"].append({"Name": "X", "Type": "Double"})
    assert (
        error_of(doc)
        == "Parameter 'X' has unsupported Type \"Double\"; expected one of String, Integer, Boolean, Float"
    )


def test_parameter_type_defaults_to_string() -> None:
    doc = base()
    doc["Parameters"].append({"Name": "X", "DefaultValue": "v"})
    spec = parse(doc).parameters["X"]
    assert (spec.type, spec.default) == ("String", "v")


def test_duplicate_parameter() -> None:
    doc = base()
    doc["Parameters"].append({"Name": "InputData", "Type": "String"})
    assert error_of(doc) == "Pipeline definition has duplicate parameter name 'InputData'"


@pytest.mark.parametrize(
    ("type_", "default"),
    [
        ("String", 1),
        ("Integer", "1"),
        ("Integer", 1.5),
        ("Integer", True),
        ("Float", "0.5"),
        ("Float", False),
        ("Boolean", "true"),
        ("Boolean", 0),
        ("String", {"Get": "Parameters.InputData"}),
    ],
)
def test_default_not_matching_type(type_: str, default: Any) -> None:
    doc = base()
    doc["Parameters"].append({"Name": "X", "Type": type_, "DefaultValue": default})
    assert (
        error_of(doc) == f"Parameter 'X' DefaultValue {json.dumps(default)} does not match its Type '{type_}'"
    )


@pytest.mark.parametrize(
    ("type_", "default", "expected"),
    [("Integer", 3.0, 3), ("Float", 0, 0.0), ("Float", 2, 2.0), ("Boolean", True, True), ("String", "", "")],
)
def test_default_normalised(type_: str, default: Any, expected: Any) -> None:
    doc = base()
    doc["Parameters"].append({"Name": "X", "Type": type_, "DefaultValue": default})
    value = parse(doc).parameters["X"].default
    assert value == expected and type(value) is type(expected)


def test_null_default_means_required() -> None:
    doc = base()
    doc["Parameters"].append({"Name": "X", "Type": "Integer", "DefaultValue": None})
    assert parse(doc).parameters["X"].required


def test_enum_values_must_contain_default() -> None:
    doc = base()
    doc["Parameters"].append({"Name": "X", "Type": "String", "DefaultValue": "c", "EnumValues": ["a", "b"]})
    assert error_of(doc) == "Parameter 'X' DefaultValue \"c\" is not one of its EnumValues: a, b"


@pytest.mark.parametrize("enum_values", [[], "a", ["a", 1]])
def test_enum_values_malformed(enum_values: Any) -> None:
    doc = base()
    doc["Parameters"].append({"Name": "X", "Type": "String", "EnumValues": enum_values})
    assert error_of(doc) == "Parameter 'X' EnumValues must be a non-empty list of strings"


def test_enum_values_on_integer_are_typed() -> None:
    doc = base()
    doc["Parameters"].append({"Name": "X", "Type": "Integer", "DefaultValue": 2, "EnumValues": ["1", "2"]})
    assert parse(doc).parameters["X"].enum_values == ["1", "2"]
    doc["Parameters"][-1]["EnumValues"] = ["1", "two"]
    assert error_of(doc) == "Parameter 'X' EnumValues entry 'two' is not a valid Integer"


# Steps.


def test_steps_missing() -> None:
    doc = base()
    del doc["Steps"]
    assert error_of(doc) == "Pipeline definition is missing 'Steps'"


@pytest.mark.parametrize("steps", [{}, "x", None])
def test_steps_not_a_list(steps: Any) -> None:
    doc = base()
    doc["Steps"] = steps
    assert error_of(doc) == "Pipeline definition 'Steps' must be a list"


def test_empty_steps_is_valid() -> None:
    doc = base()
    doc["Steps"] = []
    assert parse(doc).topological_order() == []


def test_step_not_an_object() -> None:
    doc = base()
    doc["Steps"].append(["x"])
    assert error_of(doc) == "Step #3 in Steps must be an object"


def test_step_missing_name() -> None:
    doc = base()
    doc["Steps"].append({"Type": "Fail"})
    assert error_of(doc) == "Step #3 in Steps is missing 'Name'"


def test_nested_step_missing_name_says_where() -> None:
    doc = base()
    step(doc, "Check")["Arguments"]["ElseSteps"].append({"Type": "Fail"})
    assert error_of(doc) == "Step #2 in ElseSteps of step 'Check' is missing 'Name'"


def test_step_missing_type() -> None:
    doc = base()
    doc["Steps"].append({"Name": "X"})
    assert error_of(doc) == "Step 'X' is missing 'Type'"


def test_step_unknown_type() -> None:
    doc = base()
    doc["Steps"].append({"Name": "X", "Type": "Notebook"})
    assert error_of(doc) == (
        "Step 'X' has unsupported Type 'Notebook'; supported types: " + ", ".join(sorted(KNOWN_STEP_TYPES))
    )


@pytest.mark.parametrize("type_", sorted(KNOWN_STEP_TYPES - {"Condition"}))
def test_every_known_step_type_is_accepted(type_: str) -> None:
    doc = base()
    doc["Steps"].append({"Name": "X", "Type": type_, "Arguments": {}})
    assert parse(doc).steps["X"].type == type_


def test_duplicate_top_level_step() -> None:
    doc = base()
    doc["Steps"].append({"Name": "Preprocess", "Type": "Fail"})
    assert error_of(doc) == (
        "Pipeline definition has duplicate step name 'Preprocess'; step names must be unique, "
        "including steps nested in Condition IfSteps/ElseSteps"
    )


def test_duplicate_between_branch_and_top_level() -> None:
    doc = base()
    doc["Steps"].append({"Name": "Fail", "Type": "Fail"})
    assert "duplicate step name 'Fail'" in error_of(doc)


def test_duplicate_between_if_and_else_branches() -> None:
    doc = base()
    step(doc, "Check")["Arguments"]["ElseSteps"].append({"Name": "Train", "Type": "Training"})
    assert "duplicate step name 'Train'" in error_of(doc)


def test_condition_requires_conditions_list() -> None:
    doc = base()
    del step(doc, "Check")["Arguments"]["Conditions"]
    assert error_of(doc) == "Condition step 'Check' Arguments must contain a 'Conditions' list"


def test_condition_arguments_must_be_object() -> None:
    doc = base()
    step(doc, "Check")["Arguments"] = []
    assert error_of(doc) == "Condition step 'Check' Arguments must be an object"


def test_condition_branch_must_be_list() -> None:
    doc = base()
    step(doc, "Check")["Arguments"]["IfSteps"] = {"Name": "Train"}
    assert error_of(doc) == "Condition step 'Check' IfSteps must be a list"


def test_condition_branches_may_be_absent() -> None:
    doc = base()
    del step(doc, "Check")["Arguments"]["IfSteps"]
    defn = parse(doc)
    assert defn.steps["Check"].if_steps == [] and "Train" not in defn.steps


# DependsOn.


def test_depends_on_missing_step() -> None:
    doc = base()
    step(doc, "Preprocess")["DependsOn"] = ["Nope"]
    assert error_of(doc) == (
        "Step 'Preprocess' DependsOn step 'Nope', which is not defined in the pipeline definition"
    )


@pytest.mark.parametrize("depends_on", ["Preprocess", [1], {"Preprocess": 1}])
def test_depends_on_malformed(depends_on: Any) -> None:
    doc = base()
    step(doc, "Fail")["DependsOn"] = depends_on
    assert error_of(doc) == "Step 'Fail' DependsOn must be a list of step names"


def test_depends_on_adds_edge() -> None:
    doc = base()
    doc["Steps"].append({"Name": "After", "Type": "Fail", "DependsOn": ["Train", "Fail"]})
    defn = parse(doc)
    assert defn.dag["After"] == {"Train", "Fail"}
    assert defn.steps["After"].depends_on == ["Train", "Fail"]
    assert defn.topological_order()[-1] == "After"


# References.


def test_get_missing_step_deep_in_arguments() -> None:
    doc = base()
    channel = step(doc, "Train")["Arguments"]["InputDataConfig"][0]
    channel["DataSource"]["S3DataSource"]["S3Uri"] = {
        "Get": "Steps.Nope.ProcessingOutputConfig.Outputs['x'].S3Output.S3Uri"
    }
    assert (
        error_of(doc)
        == "Step 'Train' references step 'Nope', which is not defined in the pipeline definition"
    )


def test_get_missing_step_with_index_suffix() -> None:
    doc = base()
    step(doc, "Fail")["Arguments"]["ErrorMessage"] = {"Get": "Steps.Nope['x']"}
    assert (
        error_of(doc) == "Step 'Fail' references step 'Nope', which is not defined in the pipeline definition"
    )


def test_get_missing_parameter_in_join_values() -> None:
    doc = base()
    step(doc, "Fail")["Arguments"]["ErrorMessage"]["Std:Join"]["Values"].append({"Get": "Parameters.Nope"})
    assert (
        error_of(doc)
        == "Step 'Fail' references parameter 'Nope', which is not defined in the pipeline definition"
    )


def test_get_missing_parameter_in_condition_right_value() -> None:
    doc = base()
    step(doc, "Check")["Arguments"]["Conditions"][0]["RightValue"] = {"Get": "Parameters.Limit"}
    assert (
        error_of(doc)
        == "Step 'Check' references parameter 'Limit', which is not defined in the pipeline definition"
    )


def test_get_missing_step_in_condition_left_value() -> None:
    doc = base()
    step(doc, "Check")["Arguments"]["Conditions"][0]["LeftValue"] = {"Get": "Steps.Eval.ProcessingJobStatus"}
    assert (
        error_of(doc)
        == "Step 'Check' references step 'Eval', which is not defined in the pipeline definition"
    )


def test_json_get_property_file_missing_step() -> None:
    doc = base()
    json_get = step(doc, "Check")["Arguments"]["Conditions"][0]["LeftValue"]["Std:JsonGet"]
    json_get["PropertyFile"] = {"Get": "Steps.Evaluate.PropertyFiles.Eval"}
    assert (
        error_of(doc)
        == "Step 'Check' references step 'Evaluate', which is not defined in the pipeline definition"
    )


def test_json_get_undeclared_property_file() -> None:
    doc = base()
    json_get = step(doc, "Check")["Arguments"]["Conditions"][0]["LeftValue"]["Std:JsonGet"]
    json_get["PropertyFile"] = {"Get": "Steps.Preprocess.PropertyFiles.Metrics"}
    assert error_of(doc) == (
        "Step 'Check' references property file 'Metrics' of step 'Preprocess', "
        "which that step does not declare in PropertyFiles"
    )


def test_json_get_s3_uri_form_references_step() -> None:
    # The @step decorator's form: JsonGet over a Join-built S3 URI.
    doc = base()
    step(doc, "Fail")["Arguments"]["ErrorMessage"] = {
        "Std:JsonGet": {
            "S3Uri": {
                "Std:Join": {
                    "On": "/",
                    "Values": ["s3://b", {"Get": "Steps.Train.OutputDataConfig.S3OutputPath"}],
                }
            },
            "Path": "Return",
        }
    }
    # Train and Fail sit in opposite branches; the reference still orders them.
    assert parse(doc).dag["Fail"] == {"Check", "Train"}


def test_property_files_malformed() -> None:
    doc = base()
    step(doc, "Preprocess")["PropertyFiles"] = [{"OutputName": "evaluation"}]
    assert error_of(doc) == "Step 'Preprocess' has a PropertyFiles entry without 'PropertyFileName'"
    step(doc, "Preprocess")["PropertyFiles"] = {}
    assert error_of(doc) == "Step 'Preprocess' PropertyFiles must be a list"


def test_unknown_execution_variable() -> None:
    doc = base()
    step(doc, "Fail")["Arguments"]["ErrorMessage"]["Std:Join"]["Values"].append({"Get": "Execution.JobName"})
    assert error_of(doc) == (
        "Step 'Fail' references unknown execution variable 'JobName'; supported: "
        + ", ".join(sorted(EXECUTION_VARIABLES))
    )


@pytest.mark.parametrize("variable", sorted(EXECUTION_VARIABLES))
def test_known_execution_variables(variable: str) -> None:
    doc = base()
    step(doc, "Fail")["Arguments"]["ErrorMessage"] = {"Get": f"Execution.{variable}"}
    parse(doc)


def test_unknown_get_namespace() -> None:
    doc = base()
    step(doc, "Fail")["Arguments"]["ErrorMessage"] = {"Get": "Pipeline.Name"}
    assert error_of(doc) == (
        "Step 'Fail' has an unsupported Get expression 'Pipeline.Name'; expected Steps.<step>..., "
        "Parameters.<name>, Execution.<variable> or PipelineExperimentConfig.<property>"
    )


def test_get_must_be_string() -> None:
    doc = base()
    step(doc, "Fail")["Arguments"]["ErrorMessage"] = {"Get": ["Parameters", "InputData"]}
    assert (
        error_of(doc)
        == 'Step \'Fail\' has a Get expression that is not a string: ["Parameters", "InputData"]'
    )


def test_object_with_get_key_among_others_is_data() -> None:
    doc = base()
    step(doc, "Train")["Arguments"]["Environment"] = {"Get": "not-an-expression", "Other": "x"}
    parse(doc)


def test_references_outside_arguments_are_checked() -> None:
    # Lambda/Callback/EMR steps carry expressions next to Arguments too.
    doc = base()
    doc["Steps"].append(
        {"Name": "Q", "Type": "Callback", "Arguments": {}, "SqsQueueUrl": {"Get": "Parameters.QueueUrl"}}
    )
    assert (
        error_of(doc)
        == "Step 'Q' references parameter 'QueueUrl', which is not defined in the pipeline definition"
    )


def test_step_names_are_matched_whole() -> None:
    doc = base()
    doc["Steps"].append({"Name": "Pre", "Type": "Fail", "Arguments": {"ErrorMessage": "x"}})
    doc["Steps"].append(
        {
            "Name": "X",
            "Type": "Fail",
            "Arguments": {"ErrorMessage": {"Get": "Steps.Preprocess.ProcessingJobName"}},
        }
    )
    assert parse(doc).dag["X"] == {"Preprocess"}


# Cycles.


def test_two_step_cycle_via_depends_on() -> None:
    doc = base()
    doc["Steps"] = [
        {"Name": "A", "Type": "Fail", "DependsOn": ["B"]},
        {"Name": "B", "Type": "Fail", "DependsOn": ["A"]},
    ]
    assert error_of(doc) == "Pipeline definition has a cycle: A -> B -> A"


def test_three_step_cycle_via_references_reads_upstream_first() -> None:
    doc = base()
    doc["Steps"] = [
        # A reads C, B reads A, C reads B: execution would flow C -> A -> B -> C.
        {"Name": "A", "Type": "Fail", "Arguments": {"ErrorMessage": {"Get": "Steps.C.ErrorMessage"}}},
        {"Name": "B", "Type": "Fail", "Arguments": {"ErrorMessage": {"Get": "Steps.A.ErrorMessage"}}},
        {"Name": "C", "Type": "Fail", "Arguments": {"ErrorMessage": {"Get": "Steps.B.ErrorMessage"}}},
    ]
    assert error_of(doc) == "Pipeline definition has a cycle: A -> B -> C -> A"


def test_self_reference_is_a_cycle() -> None:
    doc = base()
    step(doc, "Preprocess")["DependsOn"] = ["Preprocess"]
    assert error_of(doc) == "Pipeline definition has a cycle: Preprocess -> Preprocess"


def test_condition_reading_its_own_branch_is_a_cycle() -> None:
    doc = base()
    step(doc, "Check")["Arguments"]["Conditions"][0]["RightValue"] = {
        "Get": "Steps.Train.FinalMetricDataList[0].Value"
    }
    assert error_of(doc) == "Pipeline definition has a cycle: Check -> Train -> Check"


def test_cycle_reported_after_acyclic_prefix() -> None:
    doc = base()
    doc["Steps"] = [
        {"Name": "Root", "Type": "Fail"},
        {"Name": "A", "Type": "Fail", "DependsOn": ["Root", "B"]},
        {"Name": "B", "Type": "Fail", "DependsOn": ["A"]},
    ]
    assert error_of(doc) == "Pipeline definition has a cycle: A -> B -> A"


# Ordering.


def test_topological_order_ties_follow_document_order() -> None:
    doc = base()
    doc["Steps"] = [
        {"Name": "Z", "Type": "Fail"},
        {"Name": "Y", "Type": "Fail", "DependsOn": ["X"]},
        {"Name": "X", "Type": "Fail"},
        {"Name": "W", "Type": "Fail", "DependsOn": ["Z"]},
    ]
    assert parse(doc).topological_order() == ["Z", "X", "Y", "W"]


def test_parse_does_not_mutate_input_structure() -> None:
    doc = base()
    snapshot = copy.deepcopy(doc)
    defn = parse(doc)
    assert defn.raw == snapshot
