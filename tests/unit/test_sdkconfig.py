"""The SageMaker SDK defaults files written beside the AWS profiles: one per profile, naming that
account's default bucket and opting out of telemetry, and the export line that goes with them."""

from __future__ import annotations

from pathlib import Path

import yaml

from stratum.bootstrap import write_aws_profiles
from stratum.config import Settings
from stratum.sdkconfig import sdk_env
from stratum.services.organizations.accounts import AdminKey


def test_a_defaults_file_per_profile(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, region="eu-west-1")
    keys = [AdminKey("111111111111", "dev", "AKIA1", "s1"), AdminKey("222222222222", "test", "AKIA2", "s2")]
    config, _ = write_aws_profiles(settings, keys)
    sdk_dir = config.parent / "sagemaker"
    assert sorted(p.name for p in sdk_dir.iterdir()) == ["default.yaml", "dev.yaml", "test.yaml"]
    for profile, account in (("default", "111111111111"), ("dev", "111111111111"), ("test", "222222222222")):
        doc = yaml.safe_load((sdk_dir / f"{profile}.yaml").read_text())
        assert doc == {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {
            "TelemetryOptOut": True, "Session": {"DefaultS3Bucket": f"sagemaker-eu-west-1-{account}"}}}}}
    assert sdk_env(config.parent) == f"SAGEMAKER_ADMIN_CONFIG_OVERRIDE={sdk_dir / 'default.yaml'}"
