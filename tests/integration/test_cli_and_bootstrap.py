"""The `stratum` CLI, generated AWS CLI profiles, bootstrap files and the opt-in permissive mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import boto3
import pytest
from stratum_testing import StratumServer


def _profile_env(server: StratumServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_CONFIG_FILE"] = str(server.data_dir / "aws" / "config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(server.data_dir / "aws" / "credentials")
    return env


def _stratum(server: StratumServer, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "stratum.cli", *args, "--data-dir", str(server.data_dir)]
    if server.database_url:
        cmd += ["--database-url", server.database_url]
    cmd += ["--port", str(server.port)]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)


def test_generated_profiles_work_with_aws_cli_and_boto3(server: StratumServer) -> None:
    env = _profile_env(server)
    aws = os.path.join(os.path.dirname(sys.executable), "aws")
    out = subprocess.run([aws, "--profile", "test", "sts", "get-caller-identity"], env=env,
                         capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout)["Account"] == server.account_id("test")
    out = subprocess.run([aws, "--profile", "dev", "sagemaker", "list-pipelines"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "PipelineSummaries" in json.loads(out.stdout)
    old = {k: os.environ.get(k) for k in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")}
    os.environ.update({k: env[k] for k in old})
    try:
        for name in ("dev", "test", "prod", "shared-services", "hub"):
            ident = boto3.Session(profile_name=name).client("sts").get_caller_identity()
            assert ident["Arn"] == f"arn:aws:iam::{server.account_id(name)}:user/admin"
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_cli_creates_accounts_and_keys_the_server_accepts(server: StratumServer) -> None:
    name = "cli-" + os.urandom(3).hex()
    created = json.loads(_stratum(server, "accounts", "create", "--name", name).stdout)
    assert len(created["AccountId"]) == 12
    listed = _stratum(server, "accounts", "list").stdout
    assert f"{created['AccountId']}  {name}" in listed
    sts = server.client("sts", aws_access_key_id=created["AccessKeyId"],
                        aws_secret_access_key=created["SecretAccessKey"])
    assert sts.get_caller_identity()["Account"] == created["AccountId"]
    key = json.loads(_stratum(server, "keys", "create", "--account", name).stdout)
    sts2 = server.client("sts", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    assert sts2.get_caller_identity()["Arn"].endswith(":user/admin")
    # The profiles were rewritten with the new account.
    assert f"[{name}]" in (server.data_dir / "aws" / "credentials").read_text()


@pytest.fixture
def declared_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    data_dir = tmp_path_factory.mktemp("declared")
    spec = data_dir / "accounts.yaml"
    spec.write_text("organization:\n  ram_sharing: true\naccounts:\n"
                    "  - {name: tools, id: '111111111111'}\n  - {name: dev, id: '222222222222'}\n"
                    "  - name: prod\n")
    srv = StratumServer(data_dir, extra_args=["--bootstrap", str(spec)])
    srv.start()
    yield srv
    srv.stop()


def test_bootstrap_file_declares_accounts(declared_server: StratumServer) -> None:
    assert declared_server.account_id("tools") == "111111111111"
    assert declared_server.account_id("dev") == "222222222222"
    assert len(declared_server.account_id("prod")) == 12
    ident = declared_server.client("sts", "dev").get_caller_identity()
    assert ident["Arn"] == "arn:aws:iam::222222222222:user/admin"


@pytest.fixture
def permissive_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    srv = StratumServer(tmp_path_factory.mktemp("permissive"), extra_args=["--permissive"])
    srv.start()
    yield srv
    srv.stop()


def test_permissive_mode_maps_any_credentials_to_the_first_account(permissive_server: StratumServer) -> None:
    anyone = boto3.client("sts", endpoint_url=permissive_server.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    assert anyone.get_caller_identity()["Account"] == permissive_server.account_id("dev")
    # Unsigned JSON requests too.
    req = urllib.request.Request(f"{permissive_server.endpoint_url}/", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/x-amz-json-1.1",
                                          "X-Amz-Target": "SageMaker.ListPipelines"})
    with urllib.request.urlopen(req) as resp:
        assert "PipelineSummaries" in json.loads(resp.read())
    # Known keys still act as themselves.
    assert permissive_server.client("sts", "prod").get_caller_identity()["Account"] == \
        permissive_server.account_id("prod")


def test_default_mode_is_not_permissive(server: StratumServer) -> None:
    anyone = boto3.client("sts", endpoint_url=server.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    with pytest.raises(anyone.exceptions.ClientError):
        anyone.get_caller_identity()
