"""Named network entry points: the default listener plus one listener per declared VPC endpoint.

On AWS a request that reaches a service through an interface or gateway VPC endpoint carries
``aws:SourceVpce`` (and ``aws:SourceVpc``) in its request context and is also checked against the
endpoint's policy. Stratum models an endpoint as an extra listen address: whatever arrives there is
"inside the VPC", whatever arrives on the default listener is not. All listeners are served by the
same process and share one application state.

Declared either in a network file (``stratum serve --network network.yaml``)::

    vpc_endpoints:
      - id: vpce-0a1b2c3d4e5f67890
        vpc: vpc-0123456789abcdef0          # optional: aws:SourceVpc
        listen: 127.0.0.1:4750
        policy_file: s3-endpoint-policy.json # optional, relative to this file; or `policy:` inline

or on the command line, repeatable: ``--vpc-endpoint vpce-0abc=127.0.0.1:4750[:policy.json]``.

Plain HTTP only, so ``aws:SecureTransport`` is false on every listener.
"""

from __future__ import annotations

import json
import re
import socket
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from stratum.policy import MalformedPolicyDocument, Policy, parse_policy

if TYPE_CHECKING:
    from stratum.config import Settings

_VPCE_ID = re.compile(r"^vpce-[0-9a-z]{1,32}$")
_VPC_ID = re.compile(r"^vpc-[0-9a-z]{1,32}$")


class NetworkConfigError(ValueError):
    """The network configuration is unusable; the message says where and why."""


@dataclass(frozen=True)
class VpcEndpoint:
    id: str
    host: str
    port: int
    vpc_id: str | None = None
    policy_text: str | None = None  # endpoint policy document (None: AWS's default full access)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def policy(self) -> Policy | None:
        return _endpoint_policy(self.policy_text, self.id) if self.policy_text else None


@lru_cache(maxsize=64)
def _endpoint_policy(text: str, endpoint_id: str) -> Policy:
    return parse_policy(text, kind="endpoint", name=f"{endpoint_id} endpoint policy")


# ---------------------------------------------------------------------------------------- parsing
def parse_address(text: str, where: str) -> tuple[str, int]:
    """``host:port`` or ``[ipv6]:port``."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise NetworkConfigError(f"{where}: {text!r} is not host:port")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise NetworkConfigError(f"{where}: {text!r} is not host:port")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise NetworkConfigError(f"{where}: {text!r} is not host:port (port 1-65535)")
    return host, int(port_text)


def parse_endpoint_flag(spec: str) -> VpcEndpoint:
    """``vpce-0abc=127.0.0.1:4750[:policy.json]`` (IPv6 hosts in brackets)."""
    where = f"--vpc-endpoint {spec}"
    endpoint_id, sep, rest = spec.partition("=")
    if not sep:
        raise NetworkConfigError(f"{where}: expected vpce-ID=HOST:PORT[:POLICY_FILE]")
    if rest.startswith("["):
        close = rest.find("]")
        head, tail = rest[:close + 1], rest[close + 1:]
        port, _, policy_file = tail.lstrip(":").partition(":")
        address = f"{head}:{port}"
    else:
        host, _, remainder = rest.partition(":")
        port, _, policy_file = remainder.partition(":")
        address = f"{host}:{port}"
    host, port_number = parse_address(address, where)
    policy = _read_policy_file(Path(policy_file), where) if policy_file else None
    return _endpoint(endpoint_id, host, port_number, None, policy, where)


def load_network_file(path: Path) -> list[VpcEndpoint]:
    where = str(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise NetworkConfigError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        # YAML's messages span lines (with a caret under the column): one line for the CLI.
        raise NetworkConfigError(f"{where}: not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise NetworkConfigError(f"{where}: expected a mapping with a 'vpc_endpoints' list")
    unknown = sorted(set(data) - {"vpc_endpoints"})
    if unknown:
        raise NetworkConfigError(f"{where}: unknown key {unknown[0]!r} (expected 'vpc_endpoints')")
    entries = data.get("vpc_endpoints") or []
    if not isinstance(entries, list):
        raise NetworkConfigError(f"{where}: 'vpc_endpoints' must be a list")
    return [_entry(entry, path, f"{where}: vpc_endpoints[{i}]") for i, entry in enumerate(entries)]


def _entry(entry: Any, path: Path, where: str) -> VpcEndpoint:
    if not isinstance(entry, dict):
        raise NetworkConfigError(f"{where}: expected a mapping")
    unknown = sorted(set(entry) - {"id", "vpc", "listen", "policy", "policy_file"})
    if unknown:
        raise NetworkConfigError(f"{where}: unknown key {unknown[0]!r}")
    for required in ("id", "listen"):
        if not entry.get(required):
            raise NetworkConfigError(f"{where}: '{required}' is required")
    if "policy" in entry and "policy_file" in entry:
        raise NetworkConfigError(f"{where}: give either 'policy' or 'policy_file', not both")
    host, port = parse_address(str(entry["listen"]), where)
    policy: str | None = None
    if entry.get("policy") is not None:
        inline = entry["policy"]
        policy = inline if isinstance(inline, str) else json.dumps(inline)
    elif entry.get("policy_file"):
        policy = _read_policy_file(path.parent / str(entry["policy_file"]), where)
    vpc = entry.get("vpc")
    return _endpoint(str(entry["id"]), host, port, str(vpc) if vpc else None, policy, where)


def _read_policy_file(path: Path, where: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise NetworkConfigError(f"{where}: cannot read policy file {path}: {exc.strerror or exc}") from None


def _endpoint(endpoint_id: str, host: str, port: int, vpc_id: str | None, policy: str | None,
              where: str) -> VpcEndpoint:
    if not _VPCE_ID.match(endpoint_id):
        raise NetworkConfigError(f"{where}: {endpoint_id!r} is not a VPC endpoint id (vpce-...)")
    if vpc_id is not None and not _VPC_ID.match(vpc_id):
        raise NetworkConfigError(f"{where}: {vpc_id!r} is not a VPC id (vpc-...)")
    if policy is not None:
        try:
            _endpoint_policy(policy, endpoint_id)
        except MalformedPolicyDocument as exc:
            raise NetworkConfigError(f"{where}: endpoint policy of {endpoint_id}: {exc}") from None
    return VpcEndpoint(endpoint_id, host, port, vpc_id, policy)


# ------------------------------------------------------------------------------------ the setup
@lru_cache(maxsize=16)
def _load(network_file: str | None, specs: tuple[str, ...]) -> tuple[VpcEndpoint, ...]:
    endpoints = load_network_file(Path(network_file)) if network_file else []
    endpoints.extend(parse_endpoint_flag(spec) for spec in specs)
    ids = Counter(e.id for e in endpoints)
    duplicate = next((i for i, n in ids.items() if n > 1), None)
    if duplicate:
        raise NetworkConfigError(f"VPC endpoint {duplicate} is declared more than once")
    return tuple(endpoints)


def vpc_endpoints(settings: Settings) -> tuple[VpcEndpoint, ...]:
    """The endpoints the settings declare (parsed once; raises NetworkConfigError)."""
    network_file = getattr(settings, "network_file", None)
    specs = tuple(getattr(settings, "vpc_endpoint_specs", None) or ())
    if not network_file and not specs:
        return ()
    return _load(str(network_file) if network_file else None, specs)


def endpoint_index(settings: Settings) -> dict[str, VpcEndpoint]:
    return {e.id: e for e in vpc_endpoints(settings)}


@dataclass
class Routes:
    """Which endpoint a connection came through, from its local address."""

    by_address: dict[tuple[str, int], str]
    by_port: dict[int, str]


def routes(bound: list[tuple[str | None, socket.socket]]) -> Routes:
    """``bound`` pairs each listening socket with its endpoint id (None: the default listener).

    A port used by one listener only identifies it whatever address the client dialled; a port
    shared by listeners on different addresses needs the exact local address.
    """
    listeners_on: dict[int, set[str | None]] = {}
    for endpoint_id, sock in bound:
        listeners_on.setdefault(sock.getsockname()[1], set()).add(endpoint_id)
    by_address: dict[tuple[str, int], str] = {}
    by_port: dict[int, str] = {}
    for endpoint_id, sock in bound:
        if endpoint_id is None:
            continue
        host, port = sock.getsockname()[:2]
        by_address[(host, port)] = endpoint_id
        if listeners_on[port] == {endpoint_id}:
            by_port[port] = endpoint_id
    return Routes(by_address, by_port)


def bind(host: str, port: int, what: str) -> list[socket.socket]:
    """Bound (not yet listening) TCP sockets for every address ``host`` resolves to (``localhost``
    may be both 127.0.0.1 and ::1), as asyncio's create_server would bind them; uvicorn listens."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise NetworkConfigError(f"{what}: cannot resolve {host!r}: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    seen: set[tuple[int, Any]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise NetworkConfigError(f"{what}: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sockets


def bind_all(settings: Settings) -> list[tuple[str | None, socket.socket]]:
    """Bind the default listener and every endpoint listener, or none of them."""
    bound: list[tuple[str | None, socket.socket]] = []
    try:
        bound.extend((None, sock) for sock in bind(settings.host, settings.port, "default listener"))
        for endpoint in vpc_endpoints(settings):
            bound.extend((endpoint.id, sock) for sock in bind(endpoint.host, endpoint.port,
                                                               f"VPC endpoint {endpoint.id}"))
    except NetworkConfigError:
        for _, sock in bound:
            sock.close()
        raise
    return bound
