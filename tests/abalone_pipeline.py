"""The abalone model-build pipeline of the SageMaker MLOps project template, written with the
unmodified SageMaker Python SDK 2.x: preprocess (SKLearnProcessor) -> train (built-in XGBoost) ->
evaluate (ScriptProcessor on the XGBoost image) -> condition on the test MSE read with JsonGet ->
register the model (ModelStep over Model.register) or fail (FailStep with a Join message).

The scripts the processing steps run live in tests/abalone/; evaluate.py is the template's own,
unchanged (tests/abalone/SOURCE.md): it unpickles the model as the template's XGBoost 1.0-1 image
writes it. Only the instance types, the quick training (num_round) and the MseThreshold parameter
differ from the template.
"""

from __future__ import annotations

from pathlib import Path

from sagemaker import image_uris
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.model import Model
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.processing import ProcessingInput, ProcessingOutput, ScriptProcessor
from sagemaker.sklearn.processing import SKLearnProcessor
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionLessThanOrEqualTo
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.parameters import ParameterFloat, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TrainingStep

SCRIPTS = Path(__file__).resolve().parent / "abalone"
XGBOOST_VERSION = "1.0-1"  # the template's: its container pickles the booster

# Step names (the template's).
PREPROCESS = "PreprocessAbaloneData"
TRAIN = "TrainAbaloneModel"
EVALUATE = "EvaluateAbaloneModel"
CHECK = "CheckMSEAbaloneEvaluation"
REGISTER = "RegisterAbaloneModel"
REGISTER_STEP = f"{REGISTER}-RegisterModel"  # ModelStep names its RegisterModel step so
FAIL = "AbaloneMSEFail"
FAIL_MESSAGE_PREFIX = "Execution failed due to MSE >"


def get_pipeline(session: PipelineSession, *, role: str, pipeline_name: str, model_package_group_name: str,
                 input_data_url: str, base_job_prefix: str = "abalone", num_round: int = 50,
                 cache_config: CacheConfig | None = None) -> Pipeline:
    region = session.boto_region_name
    bucket = session.default_bucket()

    processing_instance_type = ParameterString(name="ProcessingInstanceType", default_value="ml.m5.xlarge")
    training_instance_type = ParameterString(name="TrainingInstanceType", default_value="ml.m5.xlarge")
    model_approval_status = ParameterString(name="ModelApprovalStatus", default_value="PendingManualApproval")
    input_data = ParameterString(name="InputDataUrl", default_value=input_data_url)
    mse_threshold = ParameterFloat(name="MseThreshold", default_value=6.0)

    # Processing: feature engineering.
    sklearn_processor = SKLearnProcessor(framework_version="1.2-1", instance_type=processing_instance_type,
                                         instance_count=1, base_job_name=f"{base_job_prefix}-preprocess",
                                         sagemaker_session=session, role=role)
    step_args = sklearn_processor.run(
        outputs=[ProcessingOutput(output_name="train", source="/opt/ml/processing/train"),
                 ProcessingOutput(output_name="validation", source="/opt/ml/processing/validation"),
                 ProcessingOutput(output_name="test", source="/opt/ml/processing/test")],
        code=str(SCRIPTS / "preprocess.py"),
        arguments=["--input-data", input_data])
    step_process = ProcessingStep(name=PREPROCESS, step_args=step_args, cache_config=cache_config)

    # Training: the built-in XGBoost algorithm.
    model_path = f"s3://{bucket}/{base_job_prefix}/AbaloneTrain"
    image_uri = image_uris.retrieve(framework="xgboost", region=region, version=XGBOOST_VERSION,
                                    py_version="py3", instance_type="ml.m5.xlarge")
    xgb_train = Estimator(image_uri=image_uri, instance_type=training_instance_type, instance_count=1,
                          output_path=model_path, base_job_name=f"{base_job_prefix}-train",
                          sagemaker_session=session, role=role)
    xgb_train.set_hyperparameters(objective="reg:linear", num_round=num_round, max_depth=5, eta=0.2, gamma=4,
                                  min_child_weight=6, subsample=0.7)
    step_args = xgb_train.fit(inputs={
        "train": TrainingInput(
            s3_data=step_process.properties.ProcessingOutputConfig.Outputs["train"].S3Output.S3Uri,
            content_type="text/csv"),
        "validation": TrainingInput(
            s3_data=step_process.properties.ProcessingOutputConfig.Outputs["validation"].S3Output.S3Uri,
            content_type="text/csv"),
    })
    step_train = TrainingStep(name=TRAIN, step_args=step_args, cache_config=cache_config)

    # Processing: evaluation of the model on the test split.
    script_eval = ScriptProcessor(image_uri=image_uri, command=["python3"], instance_type=processing_instance_type,
                                  instance_count=1, base_job_name=f"{base_job_prefix}-eval",
                                  sagemaker_session=session, role=role)
    step_args = script_eval.run(
        inputs=[ProcessingInput(source=step_train.properties.ModelArtifacts.S3ModelArtifacts,
                                destination="/opt/ml/processing/model"),
                ProcessingInput(source=step_process.properties.ProcessingOutputConfig.Outputs["test"].S3Output.S3Uri,
                                destination="/opt/ml/processing/test")],
        outputs=[ProcessingOutput(output_name="evaluation", source="/opt/ml/processing/evaluation")],
        code=str(SCRIPTS / "evaluate.py"))
    evaluation_report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
    step_eval = ProcessingStep(name=EVALUATE, step_args=step_args, property_files=[evaluation_report])

    # Registration, with the evaluation report as the model's statistics.
    model_metrics = ModelMetrics(model_statistics=MetricsSource(
        s3_uri=Join(on="/", values=[
            step_eval.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri, "evaluation.json"]),
        content_type="application/json"))
    model = Model(image_uri=image_uri, model_data=step_train.properties.ModelArtifacts.S3ModelArtifacts,
                  sagemaker_session=session, role=role)
    step_args = model.register(content_types=["text/csv"], response_types=["text/csv"],
                               inference_instances=["ml.t2.medium", "ml.m5.large"],
                               transform_instances=["ml.m5.large"],
                               model_package_group_name=model_package_group_name,
                               approval_status=model_approval_status, model_metrics=model_metrics)
    step_register = ModelStep(name=REGISTER, step_args=step_args)

    # Condition: register when the test MSE is within the threshold, fail otherwise.
    step_fail = FailStep(name=FAIL, error_message=Join(on=" ", values=[FAIL_MESSAGE_PREFIX, mse_threshold]))
    cond_lte = ConditionLessThanOrEqualTo(
        left=JsonGet(step_name=step_eval.name, property_file=evaluation_report,
                     json_path="regression_metrics.mse.value"),
        right=mse_threshold)
    step_cond = ConditionStep(name=CHECK, conditions=[cond_lte], if_steps=[step_register], else_steps=[step_fail])

    return Pipeline(name=pipeline_name,
                    parameters=[processing_instance_type, training_instance_type, model_approval_status, input_data,
                                mse_threshold],
                    steps=[step_process, step_train, step_eval, step_cond], sagemaker_session=session)
