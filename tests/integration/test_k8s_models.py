"""Model, EndpointConfig and Endpoint applied as YAML serve predictions (InvokeEndpoint through boto3);
an endpoint moves to a new EndpointConfig by an edit of its spec; ModelPackageGroup and ModelPackage
register a model whose approval is changed from kubectl."""

from __future__ import annotations

import io
import tarfile
import uuid

import pytest
from k8s_testing import (  # noqa: F401
    Cluster,
    Operator,
    condition,
    k8s_cluster,
    operator,
    status_of,
    stratum,
    wait_for,
)
from stratum_testing import StratumServer, sagemaker_role

pytest.importorskip("kopf")

# "endpoint" alone is the core Endpoints resource on a real cluster.
EP = "endpoints.sagemaker.services.k8s.aws"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _model_data(stratum: StratumServer, transform: str) -> str:
    """A model.tar.gz whose inference.py answers ``transform`` of the request body."""
    script = ("def model_fn(d):\n    return None\n"
              f"def transform_fn(model, body, content_type, accept):\n    return {transform}, 'text/plain'\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = script.encode()
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    s3 = stratum.client("s3")
    bucket = f"sagemaker-k8s-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="model.tar.gz", Body=buffer.getvalue())
    return f"s3://{bucket}/model.tar.gz"


def _model_yaml(name: str, role: str, data: str) -> str:
    return f"""
apiVersion: sagemaker.services.k8s.aws/v1alpha1
kind: Model
metadata:
  name: {name}
spec:
  modelName: {name}
  executionRoleARN: {role}
  primaryContainer:
    image: {IMAGE}
    modelDataURL: {data}
    environment:
      SAGEMAKER_PROGRAM: inference.py
---
apiVersion: sagemaker.services.k8s.aws/v1alpha1
kind: EndpointConfig
metadata:
  name: {name}
spec:
  endpointConfigName: {name}
  productionVariants:
    - variantName: AllTraffic
      modelName: {name}
      instanceType: ml.m5.large
      initialInstanceCount: 1
"""


def test_model_endpoint_config_and_endpoint_serve_predictions(k8s_cluster: Cluster, operator: Operator,
                                                              stratum: StratumServer) -> None:
    role = sagemaker_role(stratum, "k8s-hosting")
    first, second, endpoint = _name("rev"), _name("up"), _name("ep")
    k8s_cluster.apply(_model_yaml(first, role, _model_data(stratum, "body[::-1]")))
    k8s_cluster.apply(f"""
apiVersion: sagemaker.services.k8s.aws/v1alpha1
kind: Endpoint
metadata:
  name: {endpoint}
spec:
  endpointName: {endpoint}
  endpointConfigName: {first}
""")
    wait_for(lambda: status_of(k8s_cluster, EP, endpoint, "endpointStatus") == "InService", 120,
             "the endpoint to be InService")
    runtime = stratum.client("sagemaker-runtime")
    out = runtime.invoke_endpoint(EndpointName=endpoint, Body=b"abc", ContentType="text/plain")
    assert out["Body"].read() == b"cba"
    ep = k8s_cluster.get(EP, endpoint)
    assert ep is not None
    assert ep["status"]["productionVariants"][0]["variantName"] == "AllTraffic"
    assert condition(ep, "ACK.ResourceSynced")["status"] == "True"  # type: ignore[index]
    model = k8s_cluster.get("model", first)
    assert model is not None and model["status"]["ackResourceMetadata"]["arn"].endswith(f":model/{first}")
    assert condition(model, "ACK.ResourceSynced")["message"] == "Resource synced successfully"  # type: ignore[index]
    assert "InService" in k8s_cluster.kubectl("get", EP, endpoint).stdout

    # ACK's endpoint update: a new EndpointConfig named in the spec -> UpdateEndpoint.
    k8s_cluster.apply(_model_yaml(second, role, _model_data(stratum, "body.upper()")))
    wait_for(lambda: status_of(k8s_cluster, "endpointconfig", second, "ackResourceMetadata"), 30, "the config")
    k8s_cluster.kubectl("patch", EP, endpoint, "--type=merge", "-p",
                        f'{{"spec": {{"endpointConfigName": "{second}"}}}}')
    sm = stratum.client("sagemaker")
    wait_for(lambda: sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"] == second
             and sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService", 120,
             "the endpoint to move to the new config")
    out = runtime.invoke_endpoint(EndpointName=endpoint, Body=b"abc", ContentType="text/plain")
    assert out["Body"].read() == b"ABC"

    k8s_cluster.kubectl("delete", EP, endpoint, "--timeout=60s")
    with pytest.raises(sm.exceptions.ClientError):
        sm.describe_endpoint(EndpointName=endpoint)
    for name in (first, second):
        k8s_cluster.kubectl("delete", "endpointconfig", name, "--timeout=30s")
        k8s_cluster.kubectl("delete", "model", name, "--timeout=30s")
    with pytest.raises(sm.exceptions.ClientError):
        sm.describe_model(ModelName=first)


def test_model_package_group_and_approval(k8s_cluster: Cluster, operator: Operator, stratum: StratumServer) -> None:
    group, package = _name("group"), _name("pkg")
    data = _model_data(stratum, "body")
    k8s_cluster.apply(f"""
apiVersion: sagemaker.services.k8s.aws/v1alpha1
kind: ModelPackageGroup
metadata:
  name: {group}
spec:
  modelPackageGroupName: {group}
  modelPackageGroupDescription: registered from kubectl
---
apiVersion: sagemaker.services.k8s.aws/v1alpha1
kind: ModelPackage
metadata:
  name: {package}
spec:
  modelPackageGroupName: {group}
  modelPackageDescription: version one
  modelApprovalStatus: PendingManualApproval
  inferenceSpecification:
    containers:
      - image: {IMAGE}
        modelDataURL: {data}
    supportedContentTypes: [text/csv]
    supportedResponseMIMETypes: [text/csv]
""")
    wait_for(lambda: status_of(k8s_cluster, "modelpackage", package, "modelPackageStatus") == "Completed", 30,
             "the model package")
    assert status_of(k8s_cluster, "modelpackagegroup", group, "modelPackageGroupStatus") == "Completed"
    arn = status_of(k8s_cluster, "modelpackage", package, "ackResourceMetadata")["arn"]
    sm = stratum.client("sagemaker")
    assert sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "PendingManualApproval"
    k8s_cluster.kubectl("patch", "modelpackage", package, "--type=merge", "-p",
                        '{"spec": {"modelApprovalStatus": "Approved"}}')
    wait_for(lambda: sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Approved", 15,
             "UpdateModelPackage")
    packages = sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    assert len(packages) == 1  # the update did not register a second version
    k8s_cluster.kubectl("delete", "modelpackage", package, "--timeout=30s")
    k8s_cluster.kubectl("delete", "modelpackagegroup", group, "--timeout=30s")
    with pytest.raises(sm.exceptions.ClientError):
        sm.describe_model_package_group(ModelPackageGroupName=group)


def test_region_annotation(k8s_cluster: Cluster, operator: Operator, stratum: StratumServer) -> None:
    """services.k8s.aws/region puts the resource in that region (ACK), not the operator's default."""
    group = _name("west")
    k8s_cluster.apply({"apiVersion": "sagemaker.services.k8s.aws/v1alpha1", "kind": "ModelPackageGroup",
                       "metadata": {"name": group, "annotations": {"services.k8s.aws/region": "us-west-2"}},
                       "spec": {"modelPackageGroupName": group}})
    metadata = wait_for(lambda: (status_of(k8s_cluster, "modelpackagegroup", group, "ackResourceMetadata") or {}
                                 ).get("arn") and status_of(k8s_cluster, "modelpackagegroup", group,
                                                            "ackResourceMetadata"), 20, "the group")
    assert metadata["region"] == "us-west-2" and metadata["arn"].startswith("arn:aws:sagemaker:us-west-2:")
    west = stratum.session().client("sagemaker", region_name="us-west-2", endpoint_url=stratum.endpoint_url)
    assert west.describe_model_package_group(ModelPackageGroupName=group)["ModelPackageGroupArn"] == metadata["arn"]
    with pytest.raises(stratum.client("sagemaker").exceptions.ClientError):
        stratum.client("sagemaker").describe_model_package_group(ModelPackageGroupName=group)
    k8s_cluster.kubectl("delete", "modelpackagegroup", group, "--timeout=30s")
