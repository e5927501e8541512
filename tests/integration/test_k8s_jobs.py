"""Jobs and notebook kinds through the same table-driven reconciler: a TrainingJob runs to Completed with
its model artifacts in status, a ProcessingJob deleted while it runs is stopped (ACK: delete = Stop),
a failing job is ACK.Terminal, and notebook lifecycle configs / instances are created, updated and
deleted (an instance is stopped before its deletion, as ACK does)."""

from __future__ import annotations

import base64
import uuid

import pytest
from k8s_testing import (  # noqa: F401
    Cluster,
    Operator,
    condition,
    k8s_cluster,
    operator,
    spec_from_request,
    status_of,
    stratum,
    wait_for,
)
from stratum_testing import StratumServer, sagemaker_role
from test_jobs_support import processing_request, upload_abalone, xgboost_training_request

pytest.importorskip("kopf")
pytest.importorskip("xgboost")

API = "sagemaker.services.k8s.aws/v1alpha1"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _apply(cluster: Cluster, kind: str, plural: str, name: str, request: dict) -> None:
    cluster.apply({"apiVersion": API, "kind": kind, "metadata": {"name": name},
                   "spec": spec_from_request(cluster, plural, request)})


def test_training_job_completes_with_its_artifacts(k8s_cluster: Cluster, operator: Operator,
                                                   stratum: StratumServer) -> None:
    name = _name("train")
    data = upload_abalone(stratum, f"k8s-{name}")
    _apply(k8s_cluster, "TrainingJob", "trainingjobs", name, xgboost_training_request(stratum, name, data, num_round=5))
    wait_for(lambda: status_of(k8s_cluster, "trainingjob", name, "trainingJobStatus") == "Completed", 180,
             "the training job")
    job = k8s_cluster.get("trainingjob", name)
    assert job is not None
    assert job["status"]["modelArtifacts"]["s3ModelArtifacts"].endswith("/output/model.tar.gz")
    assert job["status"]["secondaryStatus"] == "Completed"
    assert condition(job, "ACK.ResourceSynced")["message"] == "TrainingJob is in Completed status."  # type: ignore[index]
    assert "Completed" in k8s_cluster.kubectl("get", "trainingjob", name).stdout
    k8s_cluster.kubectl("delete", "trainingjob", name, "--timeout=30s")  # finished: nothing to stop
    assert stratum.client("sagemaker").describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "Completed"


def test_failing_job_is_terminal(k8s_cluster: Cluster, operator: Operator, stratum: StratumServer) -> None:
    name = _name("fail")
    _apply(k8s_cluster, "ProcessingJob", "processingjobs", name,
           processing_request(stratum, name, "import sys\nsys.exit('boom')\n"))
    terminal = wait_for(lambda: condition(k8s_cluster.get("processingjob", name), "ACK.Terminal"), 120,
                        "ACK.Terminal")
    assert terminal["message"] == "ProcessingJob status reached terminal state: Failed. Check the FailureReason."
    assert status_of(k8s_cluster, "processingjob", name, "failureReason")
    k8s_cluster.kubectl("delete", "processingjob", name, "--timeout=30s")


def test_deleting_a_running_processing_job_stops_it(k8s_cluster: Cluster, operator: Operator,
                                                    stratum: StratumServer) -> None:
    name = _name("proc")
    _apply(k8s_cluster, "ProcessingJob", "processingjobs", name,
           processing_request(stratum, name, "import time\ntime.sleep(120)\n"))
    wait_for(lambda: status_of(k8s_cluster, "processingjob", name, "processingJobStatus") == "InProgress", 60,
             "the job to run")
    k8s_cluster.kubectl("delete", "processingjob", name, "--timeout=60s")
    status = stratum.client("sagemaker").describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"]
    assert status == "Stopped"


def test_notebook_lifecycle_config_and_instance(k8s_cluster: Cluster, operator: Operator,
                                                stratum: StratumServer) -> None:
    config, instance = _name("lcc"), _name("nb")
    script = base64.b64encode(b"#!/bin/bash\necho started\n").decode()
    k8s_cluster.apply({"apiVersion": API, "kind": "NotebookInstanceLifecycleConfig", "metadata": {"name": config},
                       "spec": {"notebookInstanceLifecycleConfigName": config, "onStart": [{"content": script}]}})
    wait_for(lambda: status_of(k8s_cluster, "notebookinstancelifecycleconfig", config, "ackResourceMetadata"), 20,
             "the lifecycle config")
    sm = stratum.client("sagemaker")
    changed = base64.b64encode(b"#!/bin/bash\necho changed\n").decode()
    k8s_cluster.kubectl("patch", "notebookinstancelifecycleconfig", config, "--type=merge", "-p",
                        f'{{"spec": {{"onStart": [{{"content": "{changed}"}}]}}}}')
    wait_for(lambda: sm.describe_notebook_instance_lifecycle_config(
        NotebookInstanceLifecycleConfigName=config)["OnStart"][0]["Content"] == changed, 15, "the update")

    k8s_cluster.apply({"apiVersion": API, "kind": "NotebookInstance", "metadata": {"name": instance},
                       "spec": {"notebookInstanceName": instance, "instanceType": "ml.t3.medium",
                                "roleARN": sagemaker_role(stratum, "k8s-notebook"), "lifecycleConfigName": config}})
    wait_for(lambda: status_of(k8s_cluster, "notebookinstance", instance, "notebookInstanceStatus") == "InService",
             120, "the notebook instance")
    assert status_of(k8s_cluster, "notebookinstance", instance, "url")
    k8s_cluster.kubectl("delete", "notebookinstance", instance, "--timeout=120s")
    with pytest.raises(sm.exceptions.ClientError):
        sm.describe_notebook_instance(NotebookInstanceName=instance)
    k8s_cluster.kubectl("delete", "notebookinstancelifecycleconfig", config, "--timeout=30s")
    with pytest.raises(sm.exceptions.ClientError):
        sm.describe_notebook_instance_lifecycle_config(NotebookInstanceLifecycleConfigName=config)


def test_transform_job_writes_predictions(k8s_cluster: Cluster, operator: Operator, stratum: StratumServer) -> None:
    from test_jobs_support import SKLEARN_IMAGE, bucket, get, put, tarball
    from test_jobs_support import sagemaker_role as jobs_role  # S3 access to the jobs' bucket
    from test_jobs_transform import INFERENCE, transform_request

    name = _name("tr")
    artifacts = put(stratum, f"models/{name}/model.tar.gz", tarball({
        "weights.json": '{"w": [1, 10], "b": 0.5}', "code/inference.py": INFERENCE}))
    stratum.client("sagemaker").create_model(ModelName=name, ExecutionRoleArn=jobs_role(stratum), PrimaryContainer={
        "Image": SKLEARN_IMAGE, "ModelDataUrl": artifacts,
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}})
    source = put(stratum, f"batch/{name}/in/a.csv", "1,2\n3,4\n").rsplit("/", 1)[0]
    output = f"s3://{bucket(stratum)}/batch/{name}/out"
    _apply(k8s_cluster, "TransformJob", "transformjobs", name,
           transform_request(name, name, source, output, BatchStrategy="SingleRecord"))
    wait_for(lambda: status_of(k8s_cluster, "transformjob", name, "transformJobStatus") == "Completed", 120,
             "the transform job")
    assert get(stratum, f"{output}/a.csv.out").decode() == "21.5\n43.5\n"
    k8s_cluster.kubectl("delete", "transformjob", name, "--timeout=30s")


def test_hyper_parameter_tuning_job_finds_the_best(k8s_cluster: Cluster, operator: Operator,
                                                   stratum: StratumServer) -> None:
    from test_jobs_tuning import tuning_request

    name = _name("hpo")[:20]
    _apply(k8s_cluster, "HyperParameterTuningJob", "hyperparametertuningjobs", name,
           tuning_request(stratum, name, "Grid", {"CategoricalParameterRanges": [
               {"Name": "booster", "Values": ["a", "b"]}]}, None, parallel=2))
    wait_for(lambda: status_of(k8s_cluster, "hyperparametertuningjob", name, "hyperParameterTuningJobStatus")
             == "Completed", 240, "the tuning job")
    best = status_of(k8s_cluster, "hyperparametertuningjob", name, "bestTrainingJob")
    assert best["tunedHyperParameters"]["booster"] == '"b"' or best["tunedHyperParameters"]["booster"] == "b"
    assert best["finalHyperParameterTuningJobObjectiveMetric"]["metricName"] == "validation:loss"
    k8s_cluster.kubectl("delete", "hyperparametertuningjob", name, "--timeout=30s")
