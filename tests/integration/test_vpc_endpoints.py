"""VPC endpoint listeners: aws:SourceVpce / aws:SourceVpc in the request context and endpoint
policies, against a real server started with endpoint listeners."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from authz_testing import client
from botocore.exceptions import ClientError
from stratum_testing import BACKENDS, StratumServer, create_pg_database, drop_pg_database, free_port

from stratum.services.registry import PROVIDERS

VPCE_A = "vpce-0a1b2c3d4e5f60001"  # in VPC_A, no endpoint policy (AWS's default: full access)
VPCE_B = "vpce-0a1b2c3d4e5f60002"  # endpoint policy allowing s3:GetObject only
VPCE_C = "vpce-0a1b2c3d4e5f60003"  # same port as the default listener, on 127.0.0.2
VPC_A = "vpc-0feedfacecafe0001"
GET_ONLY = {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}]}


class EndpointServer:
    def __init__(self, server: StratumServer, urls: dict[str, str]) -> None:
        self.server = server
        self.urls = urls

    def client(self, service: str, via: str | None = None, account: str = "dev") -> Any:
        return client(self.server, service, account=account, endpoint_url=self.urls[via] if via else None)


@pytest.fixture(scope="module", params=BACKENDS)
def vpc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndpointServer]:
    data_dir = tmp_path_factory.mktemp(f"stratum-vpce-{request.param}")
    port_a, port_b = free_port(), free_port()
    (data_dir / "get-only.json").write_text(json.dumps(GET_ONLY))
    (data_dir / "network.yaml").write_text(
        f"vpc_endpoints:\n  - id: {VPCE_A}\n    vpc: {VPC_A}\n    listen: 127.0.0.1:{port_a}\n")
    url = create_pg_database() if request.param == "postgresql" else None
    server = StratumServer(data_dir, url, backend=request.param)
    server.extra_args = ["--network", str(data_dir / "network.yaml"),
                         "--vpc-endpoint", f"{VPCE_B}=127.0.0.1:{port_b}:{data_dir / 'get-only.json'}",
                         "--vpc-endpoint", f"{VPCE_C}=127.0.0.2:{server.port}"]
    server.start()
    try:
        yield EndpointServer(server, {VPCE_A: f"http://127.0.0.1:{port_a}", VPCE_B: f"http://127.0.0.1:{port_b}",
                                      VPCE_C: f"http://127.0.0.2:{server.port}"})
    finally:
        server.stop()
        if url:
            drop_pg_database(url)


def _bucket(vpc: EndpointServer, policy: dict[str, Any] | None = None) -> str:
    name = f"vpce-{uuid.uuid4().hex[:12]}"
    s3 = vpc.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="seed.txt", Body=b"seed")
    if policy is not None:
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
    return name


def _deny_unless(bucket: str, operator: str, key: str, value: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyNoVPC", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {operator: {key: value}}}]}


def _denied(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as err:
        call(*args, **kwargs)
    assert err.value.response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException"), err.value.response
    return str(err.value.response["Error"]["Message"])


def test_deny_no_vpc_bucket_policy_allows_only_the_endpoint(vpc: EndpointServer) -> None:
    bucket = f"vpce-{uuid.uuid4().hex[:12]}"
    s3 = vpc.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(
        _deny_unless(bucket, "StringNotEquals", "aws:SourceVpce", VPCE_A)))

    through = vpc.client("s3", via=VPCE_A)
    through.put_object(Bucket=bucket, Key="model.tar.gz", Body=b"weights")
    assert through.get_object(Bucket=bucket, Key="model.tar.gz")["Body"].read() == b"weights"
    assert [o["Key"] for o in through.list_objects_v2(Bucket=bucket)["Contents"]] == ["model.tar.gz"]

    message = _denied(s3.get_object, Bucket=bucket, Key="model.tar.gz")
    assert "with an explicit deny in a resource-based policy" in message
    _denied(s3.put_object, Bucket=bucket, Key="direct.txt", Body=b"x")
    # Another endpoint is not the designated one either.
    _denied(vpc.client("s3", via=VPCE_C).get_object, Bucket=bucket, Key="model.tar.gz")
    # Even the owner's admin can only manage the bucket from inside the VPC now.
    _denied(s3.delete_bucket_policy, Bucket=bucket)
    through.delete_bucket_policy(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="model.tar.gz")["Body"].read() == b"weights"


def test_endpoint_policy_limits_what_passes_through(vpc: EndpointServer) -> None:
    bucket = _bucket(vpc)
    via_b = vpc.client("s3", via=VPCE_B)
    assert via_b.get_object(Bucket=bucket, Key="seed.txt")["Body"].read() == b"seed"
    message = _denied(via_b.put_object, Bucket=bucket, Key="new.txt", Body=b"x")
    assert message.endswith("because no VPC endpoint policy allows the s3:PutObject action")
    # The endpoint policy applies to every service reached through the endpoint...
    message = _denied(vpc.client("iam", via=VPCE_B).list_users)
    assert "no VPC endpoint policy allows the iam:ListUsers action" in message
    # ...and not at all to the default listener or another endpoint.
    vpc.client("s3").put_object(Bucket=bucket, Key="direct.txt", Body=b"x")
    vpc.client("s3", via=VPCE_A).put_object(Bucket=bucket, Key="via-a.txt", Body=b"x")


def test_source_vpc_comes_from_the_endpoint_declaration(vpc: EndpointServer) -> None:
    bucket = _bucket(vpc)
    vpc.client("s3", via=VPCE_A).put_bucket_policy(Bucket=bucket, Policy=json.dumps(
        _deny_unless(bucket, "StringNotEquals", "aws:SourceVpc", VPC_A)))
    assert vpc.client("s3", via=VPCE_A).get_object(Bucket=bucket, Key="seed.txt")["Body"].read() == b"seed"
    _denied(vpc.client("s3").get_object, Bucket=bucket, Key="seed.txt")
    _denied(vpc.client("s3", via=VPCE_C).get_object, Bucket=bucket, Key="seed.txt")  # endpoint without a VPC id
    vpc.client("s3", via=VPCE_A).delete_bucket_policy(Bucket=bucket)


def test_listener_on_the_same_port_at_another_address(vpc: EndpointServer) -> None:
    bucket = _bucket(vpc)
    vpc.client("s3", via=VPCE_C).put_bucket_policy(Bucket=bucket, Policy=json.dumps(
        _deny_unless(bucket, "StringNotEquals", "aws:SourceVpce", VPCE_C)))
    assert vpc.client("s3", via=VPCE_C).get_object(Bucket=bucket, Key="seed.txt")["Body"].read() == b"seed"
    _denied(vpc.client("s3").get_object, Bucket=bucket, Key="seed.txt")


def test_source_ip_is_absent_through_an_endpoint(vpc: EndpointServer) -> None:
    """As on AWS: through an endpoint there is aws:VpcSourceIp, never aws:SourceIp, so an
    IP allow-list written with aws:SourceIp locks out the VPC."""
    bucket = _bucket(vpc)
    vpc.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(
        _deny_unless(bucket, "NotIpAddress", "aws:SourceIp", "127.0.0.0/8")))
    assert vpc.client("s3").get_object(Bucket=bucket, Key="seed.txt")["Body"].read() == b"seed"
    _denied(vpc.client("s3", via=VPCE_A).get_object, Bucket=bucket, Key="seed.txt")
    vpc.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(
        _deny_unless(bucket, "NotIpAddress", "aws:VpcSourceIp", "127.0.0.1/32")))
    assert vpc.client("s3", via=VPCE_A).get_object(Bucket=bucket, Key="seed.txt")["Body"].read() == b"seed"
    _denied(vpc.client("s3").get_object, Bucket=bucket, Key="seed.txt")
    vpc.client("s3", via=VPCE_A).delete_bucket_policy(Bucket=bucket)


def test_cross_account_request_through_the_endpoint(vpc: EndpointServer) -> None:
    """A bucket shared with another account, but only for requests from inside the VPC."""
    bucket = f"vpce-{uuid.uuid4().hex[:12]}"
    vpc.client("s3").create_bucket(Bucket=bucket)
    vpc.client("s3").put_object(Bucket=bucket, Key="seed.txt", Body=b"seed")
    prod = vpc.server.account_id("prod")
    policy = _deny_unless(bucket, "StringNotEquals", "aws:SourceVpce", VPCE_A)
    policy["Statement"].append({"Sid": "ProdReads", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{prod}:root"},
                                "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"})
    vpc.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert vpc.client("s3", via=VPCE_A, account="prod").get_object(
        Bucket=bucket, Key="seed.txt")["Body"].read() == b"seed"
    _denied(vpc.client("s3", account="prod").get_object, Bucket=bucket, Key="seed.txt")


def test_kms_key_policy_deny_no_vpc(vpc: EndpointServer) -> None:
    if "kms" not in PROVIDERS:
        pytest.skip("this build has no KMS service yet")
    kms = vpc.client("kms")
    account = vpc.server.account_id("dev")
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Enable IAM policies", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "DenyNoVPC", "Effect": "Deny", "Principal": "*", "Action": ["kms:Encrypt", "kms:Decrypt"],
         "Resource": "*", "Condition": {"StringNotEquals": {"aws:SourceVpce": VPCE_A}}}]}
    key_id = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]["KeyId"]
    blob = vpc.client("kms", via=VPCE_A).encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"]
    assert vpc.client("kms", via=VPCE_A).decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"
    _denied(kms.encrypt, KeyId=key_id, Plaintext=b"secret")
    _denied(kms.decrypt, CiphertextBlob=blob)


def test_bad_endpoint_flag_is_refused(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "stratum.cli", "serve", "--data-dir", str(tmp_path),
                             "--port", str(free_port()), "--vpc-endpoint", "endpoint-1=127.0.0.1:4999"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "'endpoint-1' is not a VPC endpoint id" in result.stderr


def test_bad_endpoint_policy_is_refused(tmp_path: Path) -> None:
    (tmp_path / "net.yaml").write_text(
        "vpc_endpoints:\n  - id: vpce-0abc\n    listen: 127.0.0.1:4999\n"
        "    policy: {Statement: [{Effect: Maybe, Action: '*', Resource: '*'}]}\n")
    result = subprocess.run([sys.executable, "-m", "stratum.cli", "serve", "--data-dir", str(tmp_path),
                             "--network", str(tmp_path / "net.yaml")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "endpoint policy of vpce-0abc" in result.stderr and "Invalid effect: Maybe" in result.stderr


def test_port_in_use_is_reported(tmp_path: Path, vpc: EndpointServer) -> None:
    taken = vpc.urls[VPCE_A].rsplit(":", 1)[1]
    result = subprocess.run([sys.executable, "-m", "stratum.cli", "serve", "--data-dir", str(tmp_path),
                             "--port", str(free_port()), "--vpc-endpoint", f"vpce-0abc=127.0.0.1:{taken}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"VPC endpoint vpce-0abc: cannot listen on 127.0.0.1:{taken}" in result.stderr

