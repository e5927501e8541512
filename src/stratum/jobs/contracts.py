"""The SageMaker container contracts on a local directory.

A job's ``<job_dir>/ml`` stands in for ``/opt/ml``. This module lays it out the way the training
toolkit (input/config/*.json, input/data/<channel>, model, output, code) and processing containers
(config/processingjobconfig.json, processing/...) expect, and builds the environment the toolkits
export (SM_*), the execution role's credentials and the Stratum endpoint.

Paths: every ``/opt/ml`` prefix in arguments and environment values is rewritten to the job
directory, and the SM_* variables name the real directories; scripts that hard-code
``/opt/ml/...`` still work through the process isolation (see process.py).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

OPT_ML = "/opt/ml"
CURRENT_HOST = "algo-1"
_OPT_ML_RE = re.compile(r"(?<![\w./-])/opt/ml(?=/|$|[^\w.-])")

# Server environment a job inherits; everything else (credentials, database URLs, STRATUM_*)
# stays with the server.
_INHERITED = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "USER", "LOGNAME", "SHELL",
              "VIRTUAL_ENV", "PYTHONPATH", "LD_LIBRARY_PATH", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES",
              "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY",
              "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


class Layout:
    """The /opt/ml tree of one job."""

    def __init__(self, job_dir: str | Path) -> None:
        self.job_dir = Path(job_dir)
        self.ml = self.job_dir / "ml"

    def real(self, container_path: str) -> Path:
        """Where a container path (/opt/ml/...) lives on the host."""
        if container_path == OPT_ML or container_path.startswith(OPT_ML + "/"):
            return self.ml / container_path[len(OPT_ML):].lstrip("/")
        return Path(container_path)

    @property
    def input(self) -> Path:
        return self.ml / "input"

    @property
    def input_config(self) -> Path:
        return self.ml / "input" / "config"

    @property
    def data(self) -> Path:
        return self.ml / "input" / "data"

    @property
    def model(self) -> Path:
        return self.ml / "model"

    @property
    def output(self) -> Path:
        return self.ml / "output"

    @property
    def output_data(self) -> Path:
        return self.ml / "output" / "data"

    @property
    def code(self) -> Path:
        return self.ml / "code"

    def create_training(self, channels: list[str]) -> None:
        for d in (self.input_config, self.model, self.output_data, self.output / "intermediate", self.code,
                  self.ml / "checkpoints"):
            d.mkdir(parents=True, exist_ok=True)
        for channel in channels:
            (self.data / channel).mkdir(parents=True, exist_ok=True)

    def remap(self, value: str) -> str:
        ml = str(self.ml)
        return _OPT_ML_RE.sub(lambda _m: ml, value)


def identity_environment(endpoint_url: str, credentials: dict[str, str],
                         credentials_token: str | None = None) -> dict[str, str]:
    """How a process gets its role: from Stratum's container-credentials endpoint when it has a
    token and the AWS SDKs accept that endpoint (HTTPS, or a loopback address), so its credentials
    are renewed for as long as it runs, as in SageMaker's containers; else the session itself."""
    from stratum.server import container_credentials

    if credentials_token and container_credentials.usable(endpoint_url):
        return container_credentials.environment(endpoint_url, credentials_token)
    return {"AWS_ACCESS_KEY_ID": credentials["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"]}


def base_environment(spec_region: str, endpoint_url: str, identity: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _INHERITED or k.startswith("LC_")}
    env.update(identity)
    env.update({
        "AWS_DEFAULT_REGION": spec_region,
        "AWS_REGION": spec_region,
        "AWS_ENDPOINT_URL": endpoint_url,
        # No profile files: the role session is the job's only identity.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def instance_type(request: dict[str, Any]) -> str:
    cluster = (request.get("ProcessingResources") or {}).get("ClusterConfig") or {}
    return str((request.get("ResourceConfig") or {}).get("InstanceType") or cluster.get("InstanceType")
               or (request.get("TransformResources") or {}).get("InstanceType") or "ml.m5.large")


def resource_config(request: dict[str, Any]) -> dict[str, Any]:
    itype = instance_type(request)
    return {"current_host": CURRENT_HOST, "hosts": [CURRENT_HOST], "current_instance_type": itype,
            "current_group_name": "homogeneousCluster", "network_interface_name": "eth0",
            "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": itype,
                                 "hosts": [CURRENT_HOST]}]}


def input_data_config(request: dict[str, Any]) -> dict[str, Any]:
    mode = (request.get("AlgorithmSpecification") or {}).get("TrainingInputMode", "File")
    config: dict[str, Any] = {}
    for channel in request.get("InputDataConfig") or []:
        s3 = (channel.get("DataSource") or {}).get("S3DataSource") or {}
        entry: dict[str, Any] = {"TrainingInputMode": channel.get("InputMode") or mode,
                                 "S3DistributionType": s3.get("S3DataDistributionType", "FullyReplicated"),
                                 "RecordWrapperType": channel.get("RecordWrapperType", "None")}
        if channel.get("ContentType"):
            entry["ContentType"] = channel["ContentType"]
        config[channel["ChannelName"]] = entry
    return config


def decode_hyperparameter(value: str) -> Any:
    """The training toolkit JSON-decodes values the SDK JSON-encoded ('"train.py"', '3', 'true')."""
    try:
        return json.loads(value)
    except (ValueError, TypeError):
        return value


def user_args(hyperparameters: dict[str, str]) -> list[str]:
    """Hyperparameters as the toolkit passes them to a script: --name value, sagemaker_* excluded."""
    args: list[str] = []
    for name, raw in hyperparameters.items():
        if name.startswith("sagemaker_") or name.startswith("_"):
            continue
        value = decode_hyperparameter(raw)
        args += [f"--{name}", json.dumps(value) if isinstance(value, dict | list) else str(value)]
    return args


def training_environment(layout: Layout, request: dict[str, Any], job_name: str,
                         program: str | None, submit_dir: str | None) -> dict[str, str]:
    """The SM_* variables of sagemaker-training-toolkit (environment.py), with host paths."""
    hps = dict(request.get("HyperParameters") or {})
    decoded = {k: decode_hyperparameter(v) for k, v in hps.items() if not k.startswith("sagemaker_")}
    channels = [c["ChannelName"] for c in request.get("InputDataConfig") or []]
    rc = resource_config(request)
    module = Path(program).stem if program else ""
    num_cpus = os.cpu_count() or 1
    paths = {"model_dir": str(layout.model), "input_dir": str(layout.input),
             "input_config_dir": str(layout.input_config), "output_dir": str(layout.output),
             "output_data_dir": str(layout.output_data),
             "output_intermediate_dir": str(layout.output / "intermediate")}
    channel_dirs = {c: str(layout.data / c) for c in channels}
    args = user_args(hps)
    training_env: dict[str, Any] = {
        **paths, "channel_input_dirs": channel_dirs, "current_host": CURRENT_HOST, "hosts": [CURRENT_HOST],
        "current_instance_type": rc["current_instance_type"], "current_instance_group": "homogeneousCluster",
        "hyperparameters": decoded, "input_data_config": input_data_config(request), "job_name": job_name,
        "log_level": 20, "master_hostname": CURRENT_HOST, "module_dir": submit_dir or "", "module_name": module,
        "network_interface_name": "eth0", "num_cpus": num_cpus, "num_gpus": 0, "num_neurons": 0,
        "resource_config": rc, "user_entry_point": program or "", "is_master": True,
        "framework_module": None, "additional_framework_parameters": {},
    }
    env = {
        "SM_HOSTS": json.dumps([CURRENT_HOST]), "SM_CURRENT_HOST": CURRENT_HOST,
        "SM_CURRENT_INSTANCE_TYPE": rc["current_instance_type"], "SM_CURRENT_INSTANCE_GROUP": "homogeneousCluster",
        "SM_NETWORK_INTERFACE_NAME": "eth0", "SM_MASTER_ADDR": CURRENT_HOST, "SM_IS_MASTER": "true",
        "SM_HPS": json.dumps(decoded), "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_RESOURCE_CONFIG": json.dumps(rc), "SM_INPUT_DATA_CONFIG": json.dumps(input_data_config(request)),
        "SM_USER_ENTRY_POINT": program or "", "SM_MODULE_NAME": module, "SM_MODULE_DIR": submit_dir or "",
        "SM_FRAMEWORK_PARAMS": "{}", "SM_FRAMEWORK_MODULE": "", "SM_LOG_LEVEL": "20",
        "SM_NUM_CPUS": str(num_cpus), "SM_NUM_GPUS": "0", "SM_NUM_NEURONS": "0",
        "SM_MODEL_DIR": paths["model_dir"], "SM_INPUT_DIR": paths["input_dir"],
        "SM_INPUT_CONFIG_DIR": paths["input_config_dir"], "SM_OUTPUT_DIR": paths["output_dir"],
        "SM_OUTPUT_DATA_DIR": paths["output_data_dir"],
        "SM_OUTPUT_INTERMEDIATE_DIR": paths["output_intermediate_dir"],
        "SM_USER_ARGS": json.dumps(args), "SM_TRAINING_ENV": json.dumps(training_env),
        "TRAINING_JOB_NAME": job_name, "TRAINING_JOB_ARN": "",
    }
    for channel, directory in channel_dirs.items():
        env[f"SM_CHANNEL_{channel.upper()}"] = directory
    for name, value in decoded.items():
        env[f"SM_HP_{name.upper()}"] = json.dumps(value) if isinstance(value, dict | list) else str(value)
    return env


def output_kms_key(kind: str, request: dict[str, Any]) -> str | None:
    """The KmsKeyId a job's outputs are encrypted with: OutputDataConfig (training),
    ProcessingOutputConfig (processing) or TransformOutput (transform)."""
    section = {"training": "OutputDataConfig", "processing": "ProcessingOutputConfig",
               "transform": "TransformOutput"}.get(kind)
    return (request.get(section) or {}).get("KmsKeyId") if section else None


def write_training_config(layout: Layout, request: dict[str, Any]) -> None:
    hps = {k: str(v) for k, v in (request.get("HyperParameters") or {}).items()}
    (layout.input_config / "hyperparameters.json").write_text(json.dumps(hps))
    (layout.input_config / "inputdataconfig.json").write_text(json.dumps(input_data_config(request)))
    (layout.input_config / "resourceconfig.json").write_text(json.dumps(resource_config(request)))
    # SageMaker also hands the container its whole CreateTrainingJob request (the built-in
    # algorithms read their image's version from it).
    (layout.input_config / "trainingjobconfig.json").write_text(json.dumps(request, default=str))


def write_processing_config(layout: Layout, request: dict[str, Any], job_name: str, arn: str) -> None:
    config_dir = layout.ml / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "processingjobconfig.json").write_text(json.dumps(
        {**request, "ProcessingJobName": job_name, "ProcessingJobArn": arn}, default=str))
    (config_dir / "resourceconfig.json").write_text(json.dumps(resource_config(request)))
