"""A step whose Arguments do not fit the request it stands for (a misspelled key, a wrong type) is
a ValidationException at CreatePipeline / UpdatePipeline naming the step and the path; pipeline
expressions are accepted wherever a value may be."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stratum_testing import StratumServer
from test_sagemaker_pipelines import _uid, role

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def training_step(arguments: dict[str, Any], **step: Any) -> dict[str, Any]:
    return {"Name": "Train", "Type": "Training", "Arguments": arguments, **step}


def good_arguments() -> dict[str, Any]:
    return {
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        "OutputDataConfig": {"S3OutputPath": {"Std:Join": {"On": "/", "Values": ["s3://bucket",
                                                                                  {"Get": "Parameters.Prefix"}]}}},
        "ResourceConfig": {"InstanceCount": {"Get": "Parameters.Count"}, "InstanceType": "ml.m5.large",
                           "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "HyperParameters": {"num_round": "10", "max_depth": {"Get": "Parameters.Prefix"}},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": {"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}}}}],
    }


def definition(*steps: dict[str, Any]) -> str:
    prep = {"Name": "Prep", "Type": "Processing", "Arguments": {
        "AppSpecification": {"ImageUri": IMAGE, "ContainerArguments": ["--n", {"Get": "Parameters.Prefix"}]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                  "VolumeSizeInGB": 5}},
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "train", "S3Output": {
            "S3Uri": "s3://bucket/train", "LocalPath": "/opt/ml/processing/train", "S3UploadMode": "EndOfJob"}}]}}}
    return json.dumps({"Version": "2020-12-01", "Parameters": [
        {"Name": "Prefix", "Type": "String", "DefaultValue": "p"},
        {"Name": "Count", "Type": "Integer", "DefaultValue": 1}], "Steps": [prep, *steps]})


def _create_error(server: StratumServer, text: str) -> str:
    with pytest.raises(ClientError) as exc:
        server.client("sagemaker").create_pipeline(PipelineName=_uid(), RoleArn=role(server), PipelineDefinition=text)
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return exc.value.response["Error"]["Message"]


def test_fitting_arguments_with_expressions_are_accepted(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = _uid()
    sm.create_pipeline(PipelineName=name, RoleArn=role(server), PipelineDefinition=definition(
        training_step(good_arguments())))
    assert json.loads(sm.describe_pipeline(PipelineName=name)["PipelineDefinition"])["Steps"][1]["Name"] == "Train"


def test_misspelled_step_key_names_the_step(server: StratumServer) -> None:
    step = {"Name": "Train", "Type": "Training", "Argumnts": good_arguments()}
    message = _create_error(server, definition(step))
    assert "step 'Train'" in message and 'Unknown key "Argumnts"' in message


def test_misspelled_argument_names_the_path(server: StratumServer) -> None:
    arguments = good_arguments()
    arguments["ResourceConfig"]["InstanceCont"] = arguments["ResourceConfig"].pop("InstanceCount")
    message = _create_error(server, definition(training_step(arguments)))
    assert message.startswith("1 validation error detected in the Arguments of step 'Train' (Type Training, "
                              "a CreateTrainingJob request): ")
    assert "Unknown parameter \"InstanceCont\" in 'Arguments.ResourceConfig', must be one of: " in message
    assert "InstanceCount" in message


def test_wrong_types_name_the_path(server: StratumServer) -> None:
    arguments = good_arguments()
    arguments["StoppingCondition"]["MaxRuntimeInSeconds"] = "600"
    arguments["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataType"] = "Prefix"
    arguments["HyperParameters"]["eta"] = 0.2
    message = _create_error(server, definition(training_step(arguments)))
    assert message.startswith("3 validation errors detected in the Arguments of step 'Train'")
    assert "Value '600' at 'Arguments.StoppingCondition.MaxRuntimeInSeconds' is not a valid integer" in message
    assert "Value 'Prefix' at 'Arguments.InputDataConfig[0].DataSource.S3DataSource.S3DataType' must be one of" in message
    assert "Value 0.2 at 'Arguments.HyperParameters.eta' is not a valid string" in message


def test_nested_and_other_step_types_are_checked(server: StratumServer) -> None:
    register = {"Name": "Register", "Type": "RegisterModel", "Arguments": {
        "ModelPackageGroupName": "g", "ModelApprovalStatus": "Approved",
        "InferenceSpecification": {"Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://b/m.tar.gz"}],
                                   "SupportedContentTypes": "text/csv"}}}
    condition = {"Name": "Check", "Type": "Condition", "Arguments": {
        "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 1}], "IfSteps": [register], "ElseSteps": []}}
    message = _create_error(server, definition(condition))
    assert "step 'Register' (Type RegisterModel, a CreateModelPackage request)" in message
    assert "Value 'text/csv' at 'Arguments.InferenceSpecification.SupportedContentTypes' is not a valid list" in message


def test_update_pipeline_checks_the_new_definition(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = _uid()
    sm.create_pipeline(PipelineName=name, RoleArn=role(server), PipelineDefinition=definition(
        training_step(good_arguments())))
    arguments = good_arguments()
    arguments["OutputDataConfig"]["KmsKeyID"] = "alias/x"
    with pytest.raises(ClientError) as exc:
        sm.update_pipeline(PipelineName=name, PipelineDefinition=definition(training_step(arguments)))
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert "Unknown parameter \"KmsKeyID\" in 'Arguments.OutputDataConfig'" in exc.value.response["Error"]["Message"]
    assert [v["PipelineVersionId"] for v in sm.list_pipeline_versions(PipelineName=name)["PipelineVersionSummaries"]
            ] == [1]
