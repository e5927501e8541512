"""Step Arguments against the botocore shape of the request they stand for."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stratum.services.sagemaker.pipelines.definition import parse_definition
from stratum.services.sagemaker.pipelines.parameters import DefinitionError
from stratum.services.sagemaker.pipelines.step_arguments import is_expression, step_errors


def _errors(step_type: str, arguments: Any, **step: Any) -> list[str]:
    operation = {"Training": "CreateTrainingJob", "Processing": "CreateProcessingJob",
                 "Transform": "CreateTransformJob", "Tuning": "CreateHyperParameterTuningJob",
                 "Model": "CreateModel", "RegisterModel": "CreateModelPackage"}[step_type]
    return step_errors("S", step_type, {"Name": "S", "Type": step_type, "Arguments": arguments, **step}, operation)


def test_expressions_are_recognised() -> None:
    assert is_expression({"Get": "Parameters.X"}) and is_expression({"Std:Join": {"On": "", "Values": []}})
    assert is_expression({"Std:JsonGet": {"PropertyFile": {"Get": "Steps.A.PropertyFiles.F"}, "Path": "a"}})
    assert not is_expression({"Get": "x", "Other": 1}) and not is_expression({"Value": 1}) and not is_expression("Get")


def test_expressions_stand_for_any_value() -> None:
    join = {"Std:Join": {"On": "/", "Values": ["s3://b", {"Get": "Execution.PipelineExecutionId"}]}}
    assert _errors("Training", {
        "ResourceConfig": {"InstanceCount": {"Get": "Parameters.N"}, "InstanceType": {"Get": "Parameters.T"}},
        "OutputDataConfig": {"S3OutputPath": join}, "HyperParameters": {"a": {"Get": "Parameters.A"}},
        "InputDataConfig": {"Get": "Parameters.Channels"}}) == []
    assert _errors("Processing", {"Get": "Parameters.Whole"}) == []


def test_unknown_members_wrong_types_and_enums_are_reported_with_their_paths() -> None:
    errors = _errors("Processing", {
        "AppSpecification": {"ImageUri": "i", "ContainerArguments": ["--a", 3]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": True, "InstanceType": "ml.m5.large",
                                                  "VolumeSizeInGB": 1.5}},
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "o", "S3Output": {
            "S3Uri": "s3://b/o", "LocalPath": "/opt/ml/processing/o", "S3UploadMode": "Later"}}]},
        "Environmnt": {}})
    assert "Value 3 at 'Arguments.AppSpecification.ContainerArguments[1]' is not a valid string" in errors
    assert ("Value true at 'Arguments.ProcessingResources.ClusterConfig.InstanceCount' is not a valid integer"
            in errors)
    assert ("Value 1.5 at 'Arguments.ProcessingResources.ClusterConfig.VolumeSizeInGB' is not a valid integer"
            in errors)
    assert any(e.startswith("Value 'Later' at 'Arguments.ProcessingOutputConfig.Outputs[0].S3Output.S3UploadMode' "
                            "must be one of: ") for e in errors)
    assert any(e.startswith("Unknown parameter \"Environmnt\" in 'Arguments', must be one of: ") for e in errors)
    assert len(errors) == 5


def test_members_the_engine_fills_in_may_be_missing() -> None:
    assert _errors("Training", {"OutputDataConfig": {"S3OutputPath": "s3://b/o"}}) == []  # no name, no role
    assert _errors("Model", {"PrimaryContainer": {"Image": "i"}}) == []  # no ModelName
    assert _errors("Tuning", {"HyperParameterTuningJobConfig": {"Strategy": "Bayesian"},
                              "TrainingJobDefinition": {"StaticHyperParameters": {"a": "1"}}}) == []


def test_step_keys_outside_the_step_schema_are_reported() -> None:
    step = {"Name": "S", "Type": "Training", "Argumnts": {}, "CacheConfig": {"Enabled": True}}
    assert step_errors("S", "Training", step, "CreateTrainingJob") == [
        "Unknown key \"Argumnts\" in step 'S', must be one of: Name, Type, Arguments, DependsOn, DisplayName, "
        "Description, CacheConfig, RetryPolicies, PropertyFiles"]


def test_definition_names_the_first_step_that_does_not_fit() -> None:
    text = json.dumps({"Version": "2020-12-01", "Steps": [
        {"Name": "Ok", "Type": "Fail", "Arguments": {"ErrorMessage": "x", "Anything": 1}},
        {"Name": "Bad", "Type": "Transform", "Arguments": {"TransformResources": {"InstanceCount": "2"}}}]})
    with pytest.raises(DefinitionError) as exc:
        parse_definition(text)
    assert str(exc.value) == (
        "1 validation error detected in the Arguments of step 'Bad' (Type Transform, a CreateTransformJob "
        "request): Value '2' at 'Arguments.TransformResources.InstanceCount' is not a valid integer")
