"""Parsing of VPC endpoint declarations and the listener routing table."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from stratum.config import Settings
from stratum.server.listeners import (
    NetworkConfigError,
    load_network_file,
    parse_endpoint_flag,
    routes,
    vpc_endpoints,
)

POLICY = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}]}


def test_flag_forms(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps(POLICY))
    plain = parse_endpoint_flag("vpce-0abc=127.0.0.1:4750")
    assert (plain.id, plain.host, plain.port, plain.policy) == ("vpce-0abc", "127.0.0.1", 4750, None)
    with_policy = parse_endpoint_flag(f"vpce-0abc=localhost:4750:{tmp_path / 'p.json'}")
    assert with_policy.policy is not None and with_policy.policy.kind == "endpoint"
    v6 = parse_endpoint_flag(f"vpce-0abc=[::1]:4751:{tmp_path / 'p.json'}")
    assert (v6.host, v6.port, v6.address) == ("::1", 4751, "[::1]:4751")


@pytest.mark.parametrize("flag, message", [
    ("vpce-0abc", "expected vpce-ID=HOST:PORT"),
    ("endpoint-1=127.0.0.1:4999", "is not a VPC endpoint id"),
    ("vpce-0abc=127.0.0.1:notaport", "is not host:port"),
    ("vpce-0abc=127.0.0.1:70000", "is not host:port"),
    ("vpce-0abc=127.0.0.1:4999:/nonexistent/policy.json", "cannot read policy file"),
])
def test_bad_flags(flag: str, message: str) -> None:
    with pytest.raises(NetworkConfigError, match=message):
        parse_endpoint_flag(flag)


def test_network_file(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "s3.json").write_text(json.dumps(POLICY))
    (tmp_path / "net.yaml").write_text(
        "vpc_endpoints:\n"
        "  - id: vpce-0aaa\n    vpc: vpc-0123\n    listen: 127.0.0.1:4750\n    policy_file: policies/s3.json\n"
        "  - id: vpce-0bbb\n    listen: 127.0.0.1:4751\n"
        "    policy: {Statement: [{Effect: Allow, Principal: '*', Action: 'kms:*', Resource: '*'}]}\n")
    first, second = load_network_file(tmp_path / "net.yaml")
    assert (first.id, first.vpc_id, first.port) == ("vpce-0aaa", "vpc-0123", 4750)
    assert first.policy is not None and second.policy is not None
    assert second.policy.statements[0].matches_action("kms:decrypt")


@pytest.mark.parametrize("text, message", [
    ("- just a list", "expected a mapping"),
    ("vpc_endpoint: []", "unknown key 'vpc_endpoint'"),
    ("vpc_endpoints:\n  - listen: 127.0.0.1:1\n", "'id' is required"),
    ("vpc_endpoints:\n  - id: vpce-1\n    listen: 127.0.0.1:1\n    vpc: subnet-1\n", "is not a VPC id"),
    ("vpc_endpoints:\n  - id: vpce-1\n    listen: 127.0.0.1:1\n    colour: red\n", "unknown key 'colour'"),
    ("vpc_endpoints: [", "not valid YAML"),
])
def test_bad_network_files(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "net.yaml").write_text(text)
    with pytest.raises(NetworkConfigError, match=message):
        load_network_file(tmp_path / "net.yaml")


def test_duplicate_ids(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, vpc_endpoint_specs=["vpce-1=127.0.0.1:1", "vpce-1=127.0.0.1:2"])
    with pytest.raises(NetworkConfigError, match="declared more than once"):
        vpc_endpoints(settings)


def test_routes_tell_listeners_apart() -> None:
    socks = []
    try:
        for host in ("127.0.0.1", "127.0.0.2", "127.0.0.1"):
            s = socket.socket()
            s.bind((host, 0 if not socks else socks[0].getsockname()[1] if host == "127.0.0.2" else 0))
            socks.append(s)
        default, same_port, own_port = socks
        table = routes([(None, default), ("vpce-same", same_port), ("vpce-own", own_port)])
        shared = default.getsockname()[1]
        assert table.by_address[("127.0.0.2", shared)] == "vpce-same"
        assert shared not in table.by_port  # shared with the default listener: address needed
        assert table.by_port[own_port.getsockname()[1]] == "vpce-own"
    finally:
        for s in socks:
            s.close()
