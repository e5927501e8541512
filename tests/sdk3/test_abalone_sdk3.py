"""The SageMaker MLOps template's abalone model-build pipeline written with the SDK 3.x APIs, as a
3.x user writes it (the 2.x version is tests/abalone_pipeline.py): preprocess (ScriptProcessor on
the scikit-learn image) -> train (ModelTrainer on the built-in XGBoost 1.0-1 image) -> evaluate
(ScriptProcessor on the XGBoost image, the template's unchanged evaluate.py) -> a condition on the
test MSE read with JsonGet from evaluation.json -> register the model with its metrics into a model
package group (ModelStep over ModelBuilder.register), or a Fail step. Upserted and run with only
the environment the server printed."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from test_sdk3 import REGION, SKLEARN_IMAGE_VERSION, _role, _timed

SCRIPTS = Path(__file__).resolve().parents[1] / "abalone"  # the template's scripts, unchanged
DATASET = Path(__file__).resolve().parents[1] / "data" / "abalone-dataset.csv"
XGBOOST_VERSION = "1.0-1"  # the template's: its container pickles the booster, which evaluate.py reads
PREPROCESS, TRAIN, EVALUATE = "PreprocessAbaloneData", "TrainAbaloneModel", "EvaluateAbaloneModel"
CHECK, REGISTER, FAIL = "CheckMSEAbaloneEvaluation", "RegisterAbaloneModel", "AbaloneMSEFail"


def _read_s3(uri: str) -> bytes:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bytes(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def _abalone_pipeline(session: Any, *, role: str, name: str, group: str, input_data_url: str) -> Any:
    """The template's get_pipeline, in the 3.x APIs."""
    from sagemaker.core import image_uris
    from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.core.processing import ScriptProcessor
    from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
    from sagemaker.core.training.configs import Compute, InputData, OutputDataConfig
    from sagemaker.core.workflow.conditions import ConditionLessThanOrEqualTo
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterString
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep
    from sagemaker.mlops.workflow.model_step import ModelStep
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import ProcessingStep, TrainingStep
    from sagemaker.serve.model_builder import ModelBuilder
    from sagemaker.train import ModelTrainer

    bucket = session.default_bucket()
    processing_instance_type = ParameterString(name="ProcessingInstanceType", default_value="ml.m5.xlarge")
    model_approval_status = ParameterString(name="ModelApprovalStatus", default_value="PendingManualApproval")
    input_data = ParameterString(name="InputDataUrl", default_value=input_data_url)
    mse_threshold = ParameterFloat(name="MseThreshold", default_value=6.0)

    def output(name: str, path: str) -> ProcessingOutput:
        # A local path as the S3 URI: the SDK makes it s3://<bucket>/<pipeline>/<execution>/<step>/output/<name>.
        return ProcessingOutput(output_name=name, s3_output=ProcessingS3Output(
            s3_uri=path, local_path=path, s3_upload_mode="EndOfJob"))

    def input_(name: str, source: Any, path: str) -> ProcessingInput:
        return ProcessingInput(input_name=name, s3_input=ProcessingS3Input(
            s3_uri=source, local_path=path, s3_data_type="S3Prefix", s3_input_mode="File"))

    # Processing: feature engineering.
    sklearn_processor = ScriptProcessor(
        image_uri=image_uris.retrieve("sklearn", region=REGION, version=SKLEARN_IMAGE_VERSION),
        command=["python3"], instance_type=processing_instance_type, instance_count=1,
        base_job_name="abalone3-preprocess", sagemaker_session=session, role=role)
    step_process = ProcessingStep(name=PREPROCESS, step_args=sklearn_processor.run(
        outputs=[output("train", "/opt/ml/processing/train"),
                 output("validation", "/opt/ml/processing/validation"),
                 output("test", "/opt/ml/processing/test")],
        code=str(SCRIPTS / "preprocess.py"), arguments=["--input-data", input_data]))
    outputs = step_process.properties.ProcessingOutputConfig.Outputs

    # Training: the built-in XGBoost algorithm.
    image_uri = image_uris.retrieve("xgboost", region=REGION, version=XGBOOST_VERSION, py_version="py3",
                                    instance_type="ml.m5.xlarge")
    trainer = ModelTrainer(
        training_image=image_uri, compute=Compute(instance_type="ml.m5.xlarge", instance_count=1),
        output_data_config=OutputDataConfig(s3_output_path=f"s3://{bucket}/abalone3/AbaloneTrain"),
        base_job_name="abalone3-train", role=role, sagemaker_session=session,
        hyperparameters={"objective": "reg:linear", "num_round": 50, "max_depth": 5, "eta": 0.2, "gamma": 4,
                         "min_child_weight": 6, "subsample": 0.7})
    step_train = TrainingStep(name=TRAIN, step_args=trainer.train(input_data_config=[
        InputData(channel_name="train", data_source=outputs["train"].S3Output.S3Uri, content_type="text/csv"),
        InputData(channel_name="validation", data_source=outputs["validation"].S3Output.S3Uri,
                  content_type="text/csv")]))
    model_data = step_train.properties.ModelArtifacts.S3ModelArtifacts

    # Processing: evaluation of the model on the test split.
    evaluator = ScriptProcessor(image_uri=image_uri, command=["python3"], instance_type=processing_instance_type,
                                instance_count=1, base_job_name="abalone3-eval", sagemaker_session=session,
                                role=role)
    evaluation_report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
    step_eval = ProcessingStep(name=EVALUATE, property_files=[evaluation_report], step_args=evaluator.run(
        inputs=[input_("model", model_data, "/opt/ml/processing/model"),
                input_("test", outputs["test"].S3Output.S3Uri, "/opt/ml/processing/test")],
        outputs=[output("evaluation", "/opt/ml/processing/evaluation")],
        code=str(SCRIPTS / "evaluate.py")))

    # Registration, with the evaluation report as the model's statistics.
    model_metrics = ModelMetrics(model_statistics=MetricsSource(
        s3_uri=Join(on="/", values=[
            step_eval.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri, "evaluation.json"]),
        content_type="application/json"))
    builder = ModelBuilder(image_uri=image_uri, s3_model_data_url=model_data, role_arn=role,
                           sagemaker_session=session)
    step_register = ModelStep(name=REGISTER, step_args=builder.register(
        model_package_group_name=group, content_types=["text/csv"], response_types=["text/csv"],
        inference_instances=["ml.t2.medium", "ml.m5.large"], transform_instances=["ml.m5.large"],
        approval_status=model_approval_status, model_metrics=model_metrics))

    # Condition: register when the test MSE is within the threshold, fail otherwise.
    step_fail = FailStep(name=FAIL, error_message=Join(on=" ", values=["Execution failed due to MSE >",
                                                                       mse_threshold]))
    cond_lte = ConditionLessThanOrEqualTo(
        left=JsonGet(step_name=step_eval.name, property_file=evaluation_report,
                     json_path="regression_metrics.mse.value"),
        right=mse_threshold)
    step_cond = ConditionStep(name=CHECK, conditions=[cond_lte], if_steps=[step_register], else_steps=[step_fail])
    return Pipeline(name=name, parameters=[processing_instance_type, model_approval_status, input_data,
                                           mse_threshold],
                    steps=[step_process, step_train, step_eval, step_cond], sagemaker_session=session)


@pytest.mark.slow
def test_abalone_pipeline_trains_evaluates_and_registers(user: dict[str, str]) -> None:
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    session = PipelineSession()
    suffix = uuid.uuid4().hex[:8]
    data = session.upload_data(str(DATASET), key_prefix=f"abalone3-{suffix}/dataset")
    role = _role("AbaloneExecution")
    group = f"AbalonePackageGroup-{suffix}"
    pipeline = _abalone_pipeline(session, role=role, name=f"AbalonePipeline-{suffix}", group=group,
                                 input_data_url=data)
    started = time.monotonic()
    pipeline.upsert(role_arn=role, description="abalone model build, SDK 3.x")
    execution = pipeline.start()
    execution.wait(delay=2, max_attempts=150)

    sm = session.sagemaker_client
    steps = {s["StepName"]: s for s in execution.list_steps()}
    assert execution.describe()["PipelineExecutionStatus"] == "Succeeded", steps
    register_step = next(n for n in steps if n.startswith(REGISTER))
    assert set(steps) == {PREPROCESS, TRAIN, EVALUATE, CHECK, register_step}, steps
    assert all(s["StepStatus"] == "Succeeded" for s in steps.values()), steps
    assert steps[CHECK]["Metadata"]["Condition"]["Outcome"] == "True"

    # The evaluation report the condition read, written by the template's evaluate.py.
    eval_job = sm.describe_processing_job(
        ProcessingJobName=steps[EVALUATE]["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[1])
    eval_uri = eval_job["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    report = json.loads(_read_s3(f"{eval_uri}/evaluation.json"))
    mse = report["regression_metrics"]["mse"]["value"]
    assert 0 < mse <= 6.0 and report["regression_metrics"]["mse"]["standard_deviation"] > 0
    train_job = sm.describe_training_job(
        TrainingJobName=steps[TRAIN]["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[1])
    assert train_job["AlgorithmSpecification"]["TrainingImage"].endswith(f"/sagemaker-xgboost:{XGBOOST_VERSION}-cpu-py3")
    assert {m["MetricName"] for m in train_job["FinalMetricDataList"]} == {"train:rmse", "validation:rmse"}

    # The model package: the only one in the group, with the evaluation report as its metrics.
    packages = sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    package_arn = steps[register_step]["Metadata"]["RegisterModel"]["Arn"]
    assert [p["ModelPackageArn"] for p in packages] == [package_arn]
    package = sm.describe_model_package(ModelPackageName=package_arn)
    assert package["ModelPackageGroupName"] == group
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["ModelMetrics"]["ModelQuality"] == {"Statistics": {
        "ContentType": "application/json", "S3Uri": f"{eval_uri}/evaluation.json"}}
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == train_job["ModelArtifacts"]["S3ModelArtifacts"]
    assert container["Image"] == train_job["AlgorithmSpecification"]["TrainingImage"]
    assert package["MetadataProperties"]["GeneratedBy"] == execution.arn
    _timed(f"abalone pipeline (test MSE {mse:.4f})", started)
