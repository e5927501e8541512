"""Lambda layers: names and ARNs as the API accepts them, their versions in the database, and the
views the API shows. A version's archive lives in the function code store (by SHA-256), so a layer
and a function with the same zip share it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from stratum.services.lambda_.catalog import revision
from stratum.services.lambda_.code import sha256_b64
from stratum.services.lambda_.names import invalid, not_found
from stratum.services.lambda_.tables import lambda_layer_versions, lambda_layers

MAX_LAYERS = 5  # per function, as Lambda allows
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,140}")
_LAYER_ARN = re.compile(r"arn:(aws[a-zA-Z-]*)?:lambda:([a-z]{2}(?:-gov)?-[a-z]+-\d{1}):(\d{12}):layer:"
                        r"([a-zA-Z0-9_-]+)")
_VERSION_ARN = re.compile(_LAYER_ARN.pattern + r":([0-9]+)")
NOT_FOUND = "The resource you requested does not exist."


@dataclass(frozen=True)
class LayerRef:
    account_id: str
    region: str
    name: str

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:layer:{self.name}"

    def version_arn(self, version: int) -> str:
        return f"{self.arn}:{version}"


def parse_layer_name(value: str, account_id: str, region: str) -> LayerRef:
    """A LayerName parameter: a name (of the caller's account) or a layer ARN."""
    m = _LAYER_ARN.fullmatch(value)
    if m is not None:
        if m.group(2) != region:
            raise invalid(f"Layers from '{m.group(2)}' are not reachable in this region ('{region}')")
        return LayerRef(m.group(3), region, m.group(4))
    if not _NAME.fullmatch(value):
        raise invalid(f"1 validation error detected: Value '{value}' at 'layerName' failed to satisfy constraint: "
                      "Member must satisfy regular expression pattern: (arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:"
                      "\\d{12}:layer:[a-zA-Z0-9-_]+)|[a-zA-Z0-9-_]+")
    return LayerRef(account_id, region, value)


def parse_version_arn(value: str, region: str) -> tuple[LayerRef, int]:
    m = _VERSION_ARN.fullmatch(value)
    if m is None:
        raise invalid(f"1 validation error detected: Value '{value}' at 'arn' failed to satisfy constraint: "
                      "Member must satisfy regular expression pattern: arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:"
                      "\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+")
    if m.group(2) != region:
        raise invalid(f"Layers from '{m.group(2)}' are not reachable in this region ('{region}')")
    return LayerRef(m.group(3), region, m.group(4)), int(m.group(5))


def _where(ref: LayerRef, version: int | None = None) -> Any:
    t = lambda_layer_versions.c
    clause = (t.account_id == ref.account_id) & (t.region == ref.region) & (t.layer_name == ref.name)
    return clause if version is None else clause & (t.version == version)


def publish(conn: Connection, ref: LayerRef, config: dict[str, Any], sha: str, size: int) -> dict[str, Any]:
    """A new version, numbered after the last one the layer ever had."""
    t = lambda_layers.c
    where = (t.account_id == ref.account_id) & (t.region == ref.region) & (t.name == ref.name)
    last = conn.execute(select(t.last_version).where(where).with_for_update()).scalar()
    if last is None:
        version = 1
        conn.execute(insert(lambda_layers).values(account_id=ref.account_id, region=ref.region, name=ref.name,
                                                  last_version=1))
    else:
        version = last + 1
        conn.execute(update(lambda_layers).where(where).values(last_version=version))
    row = {"account_id": ref.account_id, "region": ref.region, "layer_name": ref.name, "version": version,
           "config": config, "code_sha256": sha, "code_size": size, "policy": [], "policy_revision": revision()}
    conn.execute(insert(lambda_layer_versions).values(**row))
    return row


def get_version(conn: Connection, ref: LayerRef, version: int, *, lock: bool = False) -> dict[str, Any] | None:
    query = select(lambda_layer_versions).where(_where(ref, version))
    row = conn.execute(query.with_for_update() if lock else query).mappings().first()
    return dict(row) if row is not None else None


def versions(conn: Connection, ref: LayerRef) -> list[dict[str, Any]]:
    """Newest first, as ListLayerVersions lists them."""
    query = select(lambda_layer_versions).where(_where(ref)).order_by(lambda_layer_versions.c.version.desc())
    return [dict(r) for r in conn.execute(query).mappings()]


def account_versions(conn: Connection, account_id: str, region: str) -> list[dict[str, Any]]:
    t = lambda_layer_versions.c
    query = (select(lambda_layer_versions).where((t.account_id == account_id) & (t.region == region))
             .order_by(t.layer_name, t.version.desc()))
    return [dict(r) for r in conn.execute(query).mappings()]


def delete_version(conn: Connection, ref: LayerRef, version: int) -> None:
    conn.execute(delete(lambda_layer_versions).where(_where(ref, version)))


def set_policy(conn: Connection, ref: LayerRef, version: int, policy: list[dict[str, Any]]) -> str:
    new_revision = revision()
    conn.execute(update(lambda_layer_versions).where(_where(ref, version))
                 .values(policy=policy, policy_revision=new_revision))
    return new_revision


def compatible(row: dict[str, Any], runtime: str | None, architecture: str | None) -> bool:
    config = row["config"]
    return ((not runtime or runtime in (config.get("CompatibleRuntimes") or []))
            and (not architecture or architecture in (config.get("CompatibleArchitectures") or [])))


def _ref_of(row: dict[str, Any]) -> LayerRef:
    return LayerRef(row["account_id"], row["region"], row["layer_name"])


def list_item(row: dict[str, Any]) -> dict[str, Any]:
    """A LayerVersionsListItem."""
    return {"LayerVersionArn": _ref_of(row).version_arn(row["version"]), "Version": row["version"],
            **{k: v for k, v in row["config"].items() if v not in (None, [])}}


def view(row: dict[str, Any], location: str) -> dict[str, Any]:
    """PublishLayerVersion / GetLayerVersion output."""
    ref = _ref_of(row)
    return {"Content": {"Location": location, "CodeSha256": sha256_b64(row["code_sha256"]),
                        "CodeSize": row["code_size"]},
            "LayerArn": ref.arn, **list_item(row)}


def not_found_error() -> Exception:
    return not_found(NOT_FOUND)
