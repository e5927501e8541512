"""First-start bootstrap: the organization and accounts declared in a YAML file (or the defaults),
each with an administrator, and an AWS CLI config/credentials pair with one profile per account.

A bootstrap file given for a data directory that already has an organization is applied: the
accounts it declares that do not exist yet are added to the organization and its `ram_sharing`
setting is set. What it cannot apply (another management account, an account whose declared id
differs from the existing one's, an id taken by another account) is refused with a BootstrapError.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, select, update

from stratum import ids
from stratum.config import Settings
from stratum.protocol.errors import ServiceError
from stratum.sdkconfig import write_sdk_configs
from stratum.services.iam.store import ensure_aws_managed_policies
from stratum.services.organizations import accounts as acct
from stratum.services.organizations import structure
from stratum.services.organizations.tables import organizations
from stratum.store.db import Database

DEFAULT_ACCOUNTS = ("dev", "test", "prod", "shared-services", "hub")
ENDPOINT_RECORD = "endpoint.json"  # in the data directory: the endpoint the last `serve` listened on

log = logging.getLogger(__name__)


class BootstrapError(ValueError):
    """A bootstrap file that cannot be read or applied (one line, for the user)."""


@dataclass
class BootstrapSpec:
    accounts: list[dict[str, Any]] = field(default_factory=lambda: [{"name": n} for n in DEFAULT_ACCOUNTS])
    ram_sharing: bool = True


def load_spec(path: Path | None) -> BootstrapSpec:
    if path is None:
        return BootstrapSpec()
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise BootstrapError(f"cannot read the bootstrap file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise BootstrapError(f"{path}: not a valid YAML file{line}") from None
    if not isinstance(data, dict):
        raise BootstrapError(f"{path}: the bootstrap file must be a mapping")
    spec = BootstrapSpec()
    if "accounts" in data:
        entries = data["accounts"]
        if not isinstance(entries, list) or not entries:
            raise BootstrapError(f"{path}: 'accounts' must be a non-empty list")
        spec.accounts = []
        for entry in entries:
            if isinstance(entry, str):
                entry = {"name": entry}
            if not isinstance(entry, dict) or "name" not in entry:
                raise BootstrapError(f"{path}: every account needs a name")
            entry["name"] = str(entry["name"])
            if "id" in entry:
                entry["id"] = str(entry["id"]).zfill(12)
            spec.accounts.append(entry)
    names = [e["name"] for e in spec.accounts]
    if len(set(names)) != len(names):
        raise BootstrapError(f"{path}: an account name is declared twice")
    org = data.get("organization") or {}
    if not isinstance(org, dict):
        raise BootstrapError(f"{path}: 'organization' must be a mapping")
    spec.ram_sharing = bool(org.get("ram_sharing", True))
    return spec


def bootstrap(db: Database, settings: Settings) -> list[acct.AdminKey]:
    """Create what the spec declares and is missing; idempotent across restarts."""
    spec = load_spec(settings.bootstrap_file)
    with db.begin() as conn:
        ensure_aws_managed_policies(conn)
        try:
            if not acct.list_accounts(conn):
                # The first declared account is the organization's management account.
                first, *rest = spec.accounts
                org_id = acct.ensure_organization(conn, first.get("id") or ids.account_id(), spec.ram_sharing)
                management_id = conn.execute(select(organizations.c.management_account_id)).scalar_one()
                acct.create_account(conn, first["name"], management_id, first.get("email"), org_id)
                for entry in rest:
                    acct.create_account(conn, entry["name"], entry.get("id"), entry.get("email"), org_id)
            elif settings.bootstrap_file is not None:
                _apply_to_existing(conn, spec, settings.bootstrap_file)
            structure.place_declared(conn, spec.accounts)  # each account's optional `ou: A/B`
        except (ServiceError, ValueError) as exc:  # an invalid name, id or OU path in the file
            message = exc.message if isinstance(exc, ServiceError) else str(exc)
            raise BootstrapError(f"{settings.bootstrap_file or 'bootstrap'}: {message}") from None
        keys = acct.admin_keys(conn)
    write_aws_profiles(settings, keys)
    return keys


def _apply_to_existing(conn: Connection, spec: BootstrapSpec, path: Path) -> None:
    """Add the declared accounts that are missing to the existing organization, or refuse."""
    org = conn.execute(select(organizations)).mappings().first()
    if org is None:
        raise BootstrapError(f"{path}: this data has accounts but no organization to add them to")
    management = acct.find_account(conn, org["management_account_id"])
    first = spec.accounts[0]
    if management is None or first["name"] != management["name"] or \
            first.get("id", management["id"]) != management["id"]:
        held = f"{management['name']} ({management['id']})" if management else org["management_account_id"]
        raise BootstrapError(f"{path}: the organization's management account is {held}, but the file declares "
                             f"{first['name']} first; a bootstrap file cannot change the management account")
    missing = []
    for entry in spec.accounts:
        found = acct.find_account(conn, entry["name"])
        if found is not None:
            if entry.get("id", found["id"]) != found["id"]:
                raise BootstrapError(f"{path}: account {entry['name']} exists with id {found['id']}, "
                                     f"not {entry['id']}")
            continue
        if entry.get("id") and acct.find_account(conn, entry["id"]) is not None:
            raise BootstrapError(f"{path}: account id {entry['id']} (declared for {entry['name']}) belongs to "
                                 "another account")
        missing.append(entry)
    for entry in missing:
        acct.create_account(conn, entry["name"], entry.get("id"), entry.get("email"), org["id"])
    if missing:
        log.info("bootstrap file %s: added accounts %s", path, ", ".join(e["name"] for e in missing))
    if bool(org["ram_sharing_enabled"]) != spec.ram_sharing:
        conn.execute(update(organizations).where(organizations.c.id == org["id"])
                     .values(ram_sharing_enabled=spec.ram_sharing))


def record_endpoint(settings: Settings) -> Path:
    """Note in the data directory the endpoint this server listens on (`stratum profiles` reads it)."""
    path = settings.data_dir / ENDPOINT_RECORD
    path.write_text(json.dumps({"endpoint_url": settings.endpoint_url, "region": settings.region}) + "\n")
    return path


def recorded_endpoint(settings: Settings) -> str | None:
    try:
        value = json.loads((settings.data_dir / ENDPOINT_RECORD).read_text()).get("endpoint_url")
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def write_aws_profiles(settings: Settings, keys: list[acct.AdminKey], endpoint_url: str | None = None
                       ) -> tuple[Path, Path]:
    """Write config + credentials files with a profile per account (endpoint_url included): the
    serving endpoint (settings) unless another is given (`stratum profiles` with a recorded one);
    and a SageMaker SDK defaults file per profile."""
    endpoint_url = endpoint_url or settings.endpoint_url
    target = settings.aws_config_dir
    target.mkdir(parents=True, exist_ok=True)
    config = configparser.ConfigParser()
    creds = configparser.ConfigParser()
    sdk_profiles: list[tuple[str, str]] = []
    for i, key in enumerate(keys):
        names = [key.account_name] + (["default"] if i == 0 else [])
        for name in names:
            sdk_profiles.append((name, key.account_id))
            section = "default" if name == "default" else f"profile {name}"
            config[section] = {"region": settings.region, "endpoint_url": endpoint_url, "output": "json"}
            creds[name] = {"aws_access_key_id": key.access_key_id, "aws_secret_access_key": key.secret_access_key}
    config_path, creds_path = target / "config", target / "credentials"
    with open(config_path, "w") as fh:
        config.write(fh)
    fd = os.open(creds_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        creds.write(fh)
    # The SageMaker SDK's defaults beside them (default bucket, telemetry off): see sdkconfig.
    write_sdk_configs(target, settings.region, sdk_profiles)
    return config_path, creds_path
