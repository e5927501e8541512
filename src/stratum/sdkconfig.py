"""SageMaker Python SDK defaults files, one per generated AWS profile.

The SDK (2.x and 3.x) finds the account id for its default bucket (``sagemaker-<region>-<account>``)
with an STS client it builds itself with an explicit regional endpoint URL
(``sts_regional_endpoint``), which outranks the profile's ``endpoint_url`` and every
``AWS_ENDPOINT_URL*`` setting: that request would leave for AWS. Its telemetry would too. Both are
settled by the SDK's own defaults file (``SageMaker.PythonSDK.Modules``): ``Session.DefaultS3Bucket``
names the bucket, so the SDK asks nothing of STS (it still creates the bucket, through the
profile's endpoint, when it is missing), and ``TelemetryOptOut`` stops the telemetry calls.

A defaults file is not tied to an AWS profile, so one is written per profile, beside the AWS CLI
files: ``<aws dir>/sagemaker/<profile>.yaml``. It is meant for ``SAGEMAKER_ADMIN_CONFIG_OVERRIDE``
(the administrator's file in the SDK's terms), which leaves the user's own defaults file in
place and still able to override these values.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

ENV_VAR = "SAGEMAKER_ADMIN_CONFIG_OVERRIDE"
DIRECTORY = "sagemaker"


def default_bucket(region: str, account_id: str) -> str:
    """The bucket the SDK would name itself after asking STS for the account."""
    return f"sagemaker-{region}-{account_id}"


def config_path(aws_dir: Path, profile: str) -> Path:
    return Path(aws_dir) / DIRECTORY / f"{profile}.yaml"


def document(region: str, account_id: str) -> dict[str, object]:
    return {"SchemaVersion": "1.0",
            "SageMaker": {"PythonSDK": {"Modules": {
                "TelemetryOptOut": True,
                "Session": {"DefaultS3Bucket": default_bucket(region, account_id)}}}}}


def write_sdk_configs(aws_dir: Path, region: str, profiles: Iterable[tuple[str, str]]) -> dict[str, Path]:
    """Write one defaults file per (profile name, account id); returns profile -> path."""
    directory = Path(aws_dir) / DIRECTORY
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    header = ("# SageMaker Python SDK defaults for the Stratum profile {profile} (account {account}).\n"
              "# Use with that profile: export {env}={path}\n")
    for profile, account_id in profiles:
        path = config_path(aws_dir, profile)
        text = header.format(profile=profile, account=account_id, env=ENV_VAR, path=path)
        path.write_text(text + yaml.safe_dump(document(region, account_id), sort_keys=False))
        written[profile] = path
    return written


def sdk_env(aws_dir: Path, profile: str = "default") -> str:
    """The variable assignment that goes with ``profile`` in an ``export`` line."""
    return f"{ENV_VAR}={config_path(aws_dir, profile)}"
