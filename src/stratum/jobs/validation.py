"""What the Create*Job operations reject beyond the botocore shape validation, and the IAM
condition keys SageMaker sets for them."""

from __future__ import annotations

import re
from typing import Any

from stratum.protocol.errors import ServiceError

PROCESSING_ROOT = "/opt/ml/processing/"


def validation(message: str) -> ServiceError:
    return ServiceError("ValidationException", message, 400)


def _s3_uri(value: str, what: str) -> None:
    if not re.match(r"^s3://[^/]+(/.*)?$", value or ""):
        raise validation(f"{what}: {value!r} is not a valid S3 URI (s3://bucket/prefix)")


def check_processing(request: dict[str, Any]) -> None:
    inputs = request.get("ProcessingInputs") or []
    outputs = (request.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    names = [i["InputName"] for i in inputs] + [o["OutputName"] for o in outputs]
    if len(set(names)) != len(names):
        raise validation("ProcessingInputs and ProcessingOutputs must have unique names.")
    paths: list[str] = []
    for inp in inputs:
        s3 = inp.get("S3Input")
        if s3 is None:
            if inp.get("DatasetDefinition"):
                raise validation(f"Input {inp['InputName']}: DatasetDefinition inputs are not supported by Stratum.")
            raise validation(f"Input {inp['InputName']}: S3Input is required.")
        _s3_uri(s3["S3Uri"], f"Input {inp['InputName']}")
        local = s3.get("LocalPath")
        if not local:
            raise validation(f"Input {inp['InputName']}: LocalPath is required for S3Input.")
        _local_path(local, inp["InputName"])
        paths.append(local.rstrip("/"))
    for out in outputs:
        s3 = out.get("S3Output")
        if s3 is None:
            if out.get("FeatureStoreOutput"):
                raise validation(f"Output {out['OutputName']}: FeatureStoreOutput is not supported by Stratum.")
            raise validation(f"Output {out['OutputName']}: S3Output is required.")
        _s3_uri(s3["S3Uri"], f"Output {out['OutputName']}")
        _local_path(s3["LocalPath"], out["OutputName"])
        paths.append(s3["LocalPath"].rstrip("/"))
    if len(set(paths)) != len(paths):
        raise validation("Each ProcessingInput and ProcessingOutput must have a unique LocalPath.")


def _local_path(path: str, name: str) -> None:
    if not path.startswith(PROCESSING_ROOT) or ".." in path.split("/"):
        raise validation(f"LocalPath {path} of {name} must be a path under {PROCESSING_ROOT}")


def check_training(request: dict[str, Any]) -> None:
    algorithm = request.get("AlgorithmSpecification") or {}
    if not algorithm.get("TrainingImage"):
        if algorithm.get("AlgorithmName"):
            raise validation("AlgorithmName (algorithm resources) is not supported by Stratum: give TrainingImage.")
        raise validation("AlgorithmSpecification.TrainingImage is required.")
    check_metric_definitions(algorithm.get("MetricDefinitions") or [])
    _s3_uri(request["OutputDataConfig"]["S3OutputPath"], "OutputDataConfig.S3OutputPath")
    channels = request.get("InputDataConfig") or []
    names = [c["ChannelName"] for c in channels]
    if len(set(names)) != len(names):
        raise validation("Channel names in InputDataConfig must be unique.")
    for channel in channels:
        s3 = (channel.get("DataSource") or {}).get("S3DataSource")
        if s3 is None:
            raise validation(f"Channel {channel['ChannelName']}: only S3DataSource is supported by Stratum.")
        _s3_uri(s3["S3Uri"], f"Channel {channel['ChannelName']}")
    for key, value in (request.get("HyperParameters") or {}).items():
        if len(key) > 256 or len(str(value)) > 2500:
            raise validation(f"Hyperparameter {key[:40]}: keys are at most 256 and values 2500 characters.")


def check_metric_definitions(definitions: list[dict[str, str]]) -> None:
    if len(definitions) > 40:
        raise validation("At most 40 MetricDefinitions are allowed.")
    for definition in definitions:
        try:
            re.compile(definition["Regex"])
        except re.error as exc:
            raise validation(f"MetricDefinitions {definition['Name']}: invalid Regex: {exc}") from None


def check_transform(request: dict[str, Any]) -> None:
    source = request["TransformInput"]["DataSource"]["S3DataSource"]
    _s3_uri(source["S3Uri"], "TransformInput.DataSource.S3DataSource.S3Uri")
    _s3_uri(request["TransformOutput"]["S3OutputPath"], "TransformOutput.S3OutputPath")


def condition_keys(request: dict[str, Any], kind: str) -> dict[str, Any]:
    """sagemaker:* condition keys of a Create* request (IAM service authorization reference)."""
    keys: dict[str, Any] = {}
    if kind == "processing":
        network = request.get("NetworkConfig") or {}
        vpc = network.get("VpcConfig") or {}
        cluster = request["ProcessingResources"]["ClusterConfig"]
        keys["sagemaker:InstanceTypes"] = [cluster.get("InstanceType")] if cluster.get("InstanceType") else []
        keys["sagemaker:NetworkIsolation"] = bool(network.get("EnableNetworkIsolation", False))
        keys["sagemaker:InterContainerTrafficEncryption"] = bool(network.get("EnableInterContainerTrafficEncryption",
                                                                             False))
        if cluster.get("VolumeKmsKeyId"):
            keys["sagemaker:VolumeKmsKey"] = cluster["VolumeKmsKeyId"]
        if (request.get("ProcessingOutputConfig") or {}).get("KmsKeyId"):
            keys["sagemaker:OutputKmsKey"] = request["ProcessingOutputConfig"]["KmsKeyId"]
        runtime = (request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    elif kind == "training":
        vpc = request.get("VpcConfig") or {}
        resources = request.get("ResourceConfig") or {}
        types = [resources["InstanceType"]] if resources.get("InstanceType") else []
        types += [g["InstanceType"] for g in resources.get("InstanceGroups") or [] if g.get("InstanceType")]
        keys["sagemaker:InstanceTypes"] = types
        keys["sagemaker:NetworkIsolation"] = bool(request.get("EnableNetworkIsolation", False))
        keys["sagemaker:InterContainerTrafficEncryption"] = bool(request.get("EnableInterContainerTrafficEncryption",
                                                                             False))
        if resources.get("VolumeKmsKeyId"):
            keys["sagemaker:VolumeKmsKey"] = resources["VolumeKmsKeyId"]
        if (request.get("OutputDataConfig") or {}).get("KmsKeyId"):
            keys["sagemaker:OutputKmsKey"] = request["OutputDataConfig"]["KmsKeyId"]
        runtime = (request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    elif kind == "transform":
        vpc = {}
        resources = request["TransformResources"]
        keys["sagemaker:InstanceTypes"] = [resources["InstanceType"]]
        if resources.get("VolumeKmsKeyId"):
            keys["sagemaker:VolumeKmsKey"] = resources["VolumeKmsKeyId"]
        if request["TransformOutput"].get("KmsKeyId"):
            keys["sagemaker:OutputKmsKey"] = request["TransformOutput"]["KmsKeyId"]
        runtime = None
    elif kind == "tuning":
        from stratum.jobs.tuning import definition_of

        definition = definition_of(request)
        vpc = definition.get("VpcConfig") or {}
        resources = definition.get("ResourceConfig") or {}
        keys["sagemaker:InstanceTypes"] = [resources["InstanceType"]] if resources.get("InstanceType") else []
        keys["sagemaker:NetworkIsolation"] = bool(definition.get("EnableNetworkIsolation", False))
        runtime = (definition.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    else:  # model
        vpc = request.get("VpcConfig") or {}
        keys["sagemaker:NetworkIsolation"] = bool(request.get("EnableNetworkIsolation", False))
        runtime = None
    if vpc.get("Subnets"):
        keys["sagemaker:VpcSubnets"] = list(vpc["Subnets"])
    if vpc.get("SecurityGroupIds"):
        keys["sagemaker:VpcSecurityGroupIds"] = list(vpc["SecurityGroupIds"])
    if runtime is not None:
        keys["sagemaker:MaxRuntimeInSeconds"] = int(runtime)
    if not keys.get("sagemaker:InstanceTypes"):
        keys.pop("sagemaker:InstanceTypes", None)
    return keys
