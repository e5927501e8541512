"""Pipeline expressions and conditions: Get (parameters, execution variables, step properties),
Std:Join, Std:JsonGet (property files and S3 URIs), and every condition type."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stratum.engine.expressions import (
    EvalContext,
    ExpressionError,
    evaluate_condition,
    evaluate_conditions,
    get_path,
    json_path,
    match_step,
    parse_path,
    resolve,
)

PROCESSING = {
    "ProcessingJobName": "pipelines-abc-Prep-1",
    "ProcessingOutputConfig": {"Outputs": [
        {"OutputName": "train", "S3Output": {"S3Uri": "s3://bucket/prep/train", "LocalPath": "/opt/ml/train"}},
        {"OutputName": "evaluation", "S3Output": {"S3Uri": "s3://bucket/prep/eval/"}},
    ]},
}
TRAINING = {"ModelArtifacts": {"S3ModelArtifacts": "s3://bucket/model.tar.gz"},
            "FinalMetricDataList": [{"MetricName": "validation:rmse", "Value": 2.5}]}
FILES = {("bucket", "prep/eval/evaluation.json"): json.dumps({"regression_metrics": {"mse": {"value": 3.5}},
                                                               "list": [{"v": 1}, {"v": 2}]}).encode(),
         ("bucket", "bad.json"): b"{not json"}


def read_s3(bucket: str, key: str) -> bytes:
    try:
        return FILES[(bucket, key)]
    except KeyError:
        raise ExpressionError(f"NoSuchKey s3://{bucket}/{key}") from None


def context(**overrides: Any) -> EvalContext:
    props: dict[str, Any] = {"Prep": PROCESSING, "Train": TRAINING, "Fn": {"OutputParameters": {"n": 7, "s": "x"}},
                             "my.step": {"Out": 1}}
    files = {("Prep", "EvalReport"): ("evaluation", "evaluation.json")}
    base: dict[str, Any] = {
        "parameters": {"Threshold": 0.5, "Epochs": 3, "Deploy": True, "Name": "abc"},
        "execution": {"PipelineExecutionId": "exec123", "PipelineName": "pipe"},
        "experiment": {"ExperimentName": "pipe", "TrialName": "exec123"},
        "step_properties": props.get,
        "step_names": frozenset({"Prep", "Train", "Fn", "my.step", "my"}),
        "property_files": lambda s, f: files.get((s, f)),
        "read_s3": read_s3,
    }
    base.update(overrides)
    return EvalContext(**base)


def test_get_parameters_execution_and_experiment() -> None:
    ctx = context()
    assert resolve({"Get": "Parameters.Threshold"}, ctx) == 0.5
    assert resolve({"Get": "Parameters.Deploy"}, ctx) is True
    assert resolve({"Get": "Execution.PipelineExecutionId"}, ctx) == "exec123"
    assert resolve({"Get": "PipelineExperimentConfig.TrialName"}, ctx) == "exec123"
    with pytest.raises(ExpressionError, match="Parameter 'Nope' is undefined"):
        resolve({"Get": "Parameters.Nope"}, ctx)
    with pytest.raises(ExpressionError, match="TrainingJobName"):
        resolve({"Get": "Execution.TrainingJobName"}, ctx)


def test_step_property_paths() -> None:
    ctx = context()
    assert resolve({"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}, ctx) == \
        "s3://bucket/prep/train"
    assert resolve({"Get": 'Steps.Prep.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri'}, ctx) == \
        "s3://bucket/prep/eval/"
    assert resolve({"Get": "Steps.Prep.ProcessingOutputConfig.Outputs[0].OutputName"}, ctx) == "train"
    assert resolve({"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}, ctx) == "s3://bucket/model.tar.gz"
    assert resolve({"Get": "Steps.Train.FinalMetricDataList['validation:rmse'].Value"}, ctx) == 2.5
    assert resolve({"Get": "Steps.Fn.OutputParameters['n']"}, ctx) == 7
    # A hand-written name with a dot wins over its shorter prefix.
    assert resolve({"Get": "Steps.my.step.Out"}, ctx) == 1
    with pytest.raises(ExpressionError, match="has no property 'ModelArtifacts.Nope'"):
        resolve({"Get": "Steps.Train.ModelArtifacts.Nope"}, ctx)
    with pytest.raises(ExpressionError, match="has no properties"):
        resolve({"Get": "Steps.Prep.X"}, context(step_properties=lambda _n: None))


def test_resolve_copies_data_and_nested_expressions() -> None:
    ctx = context()
    args = {"Environment": {"A": "b", "Get": "not an expression"}, "List": [1, {"Get": "Parameters.Epochs"}],
            "Uri": {"Std:Join": {"On": "/", "Values": ["s3:/", "b", {"Get": "Parameters.Name"}, 5, True]}}}
    assert resolve(args, ctx) == {"Environment": {"A": "b", "Get": "not an expression"}, "List": [1, 3],
                                  "Uri": "s3://b/abc/5/true"}
    with pytest.raises(ExpressionError, match="Unsupported expression"):
        resolve({"Get": "Other.X"}, ctx)
    assert resolve({"Std:Join": {"On": "-", "Values": [{"Get": "Parameters.Threshold"}, 1]}}, ctx) == "0.5-1"


def test_json_get_on_property_file_and_s3_uri() -> None:
    ctx = context()
    by_file = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Prep.PropertyFiles.EvalReport"},
                               "Path": "regression_metrics.mse.value"}}
    assert resolve(by_file, ctx) == 3.5
    by_uri = {"Std:JsonGet": {"S3Uri": {"Std:Join": {"On": "/", "Values": [
        {"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"}, "evaluation.json"]}},
        "Path": "list[1].v"}}
    # The joined prefix ends with '/': Std:Join keeps the double slash, exactly as written.
    with pytest.raises(ExpressionError, match="NoSuchKey"):
        resolve(by_uri, ctx)
    by_uri["Std:JsonGet"]["S3Uri"] = "s3://bucket/prep/eval/evaluation.json"
    assert resolve(by_uri, ctx) == 2
    with pytest.raises(ExpressionError, match="not in valid JSON"):
        resolve({"Std:JsonGet": {"S3Uri": "s3://bucket/bad.json", "Path": "a"}}, ctx)
    with pytest.raises(ExpressionError, match="does not exist"):
        resolve({"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Prep.PropertyFiles.EvalReport"}, "Path": "x.y"}},
                ctx)
    with pytest.raises(ExpressionError, match="declares no property file"):
        resolve({"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Prep.PropertyFiles.Other"}, "Path": "x"}}, ctx)
    with pytest.raises(ExpressionError, match="not an S3 URI"):
        resolve({"Std:JsonGet": {"S3Uri": "https://x/y", "Path": "x"}}, ctx)


def test_paths() -> None:
    assert parse_path(".A.B['x'][0]") == ["A", "B", "x", 0]
    assert parse_path("A[\"k.1\"].C") == ["A", "k.1", "C"]
    with pytest.raises(ExpressionError):
        parse_path(".A[x]")
    assert get_path({"a": [{"Name": "n", "v": 1}]}, ["a", "n", "v"]) == 1
    assert json_path({"a": {"b": [5, 6]}}, "$.a.b[1]") == 6
    assert match_step("A.B.C", frozenset({"A", "A.B"})) == "A.B"
    assert match_step("A.X", frozenset({"A", "A.B"})) == "A"
    assert match_step("Z.X", frozenset({"A"})) is None


@pytest.mark.parametrize(("kind", "left", "right", "expected"), [
    ("Equals", 1, 1.0, True),
    ("Equals", "a", "a", True),
    ("Equals", True, "true", True),
    ("GreaterThan", 3, 2.5, True),
    ("GreaterThan", 2, 2, False),
    ("GreaterThanOrEqualTo", 2, 2, True),
    ("LessThan", 1.5, 2, True),
    ("LessThanOrEqualTo", 3, 2, False),
    ("LessThan", "0.2", 0.5, True),  # a numeric string (Lambda/Callback output) against a number
    ("GreaterThan", "b", "a", True),
])
def test_comparisons(kind: str, left: Any, right: Any, expected: bool) -> None:
    assert evaluate_condition({"Type": kind, "LeftValue": left, "RightValue": right}, context()) is expected


def test_comparison_of_different_types_fails() -> None:
    with pytest.raises(ExpressionError, match="not of the same type"):
        evaluate_condition({"Type": "Equals", "LeftValue": "abc", "RightValue": 3}, context())
    with pytest.raises(ExpressionError, match="not of the same type"):
        evaluate_condition({"Type": "GreaterThan", "LeftValue": [1], "RightValue": 3}, context())


def test_in_not_or_and_conjunction() -> None:
    ctx = context()
    assert evaluate_condition({"Type": "In", "QueryValue": {"Get": "Parameters.Epochs"}, "Values": [1, 3.0]}, ctx)
    assert not evaluate_condition({"Type": "In", "QueryValue": "z", "Values": ["a", 1]}, ctx)
    assert evaluate_condition({"Type": "Not", "Condition": {"Type": "Equals", "LeftValue": 1, "RightValue": 2}}, ctx)
    assert evaluate_condition({"Type": "Or", "Conditions": [
        {"Type": "Equals", "LeftValue": 1, "RightValue": 2},
        {"Type": "GreaterThan", "LeftValue": {"Get": "Parameters.Threshold"}, "RightValue": 0.1}]}, ctx)
    both = [{"Type": "Equals", "LeftValue": 1, "RightValue": 1},
            {"Type": "LessThan", "LeftValue": {"Get": "Steps.Fn.OutputParameters['n']"}, "RightValue": 5}]
    assert evaluate_conditions(both[:1], ctx) is True
    assert evaluate_conditions(both, ctx) is False  # the list is ANDed
    assert evaluate_conditions([], ctx) is True
    with pytest.raises(ExpressionError, match="not supported"):
        evaluate_condition({"Type": "Xor"}, ctx)
