"""First-start bootstrap: the organization and accounts declared in a YAML file (or the defaults),
each with an administrator, and an AWS CLI config/credentials pair with one profile per account."""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from stratum import ids
from stratum.config import Settings
from stratum.sdkconfig import write_sdk_configs
from stratum.services.iam.store import ensure_aws_managed_policies
from stratum.services.organizations import accounts as acct
from stratum.services.organizations.tables import organizations
from stratum.store.db import Database

DEFAULT_ACCOUNTS = ("dev", "test", "prod", "shared-services", "hub")


@dataclass
class BootstrapSpec:
    accounts: list[dict[str, Any]] = field(default_factory=lambda: [{"name": n} for n in DEFAULT_ACCOUNTS])
    ram_sharing: bool = True


def load_spec(path: Path | None) -> BootstrapSpec:
    if path is None:
        return BootstrapSpec()
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the bootstrap file must be a mapping")
    spec = BootstrapSpec()
    if "accounts" in data:
        entries = data["accounts"]
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{path}: 'accounts' must be a non-empty list")
        spec.accounts = []
        for entry in entries:
            if isinstance(entry, str):
                entry = {"name": entry}
            if not isinstance(entry, dict) or "name" not in entry:
                raise ValueError(f"{path}: every account needs a name")
            if "id" in entry:
                entry["id"] = str(entry["id"]).zfill(12)
            spec.accounts.append(entry)
    org = data.get("organization") or {}
    spec.ram_sharing = bool(org.get("ram_sharing", True))
    return spec


def bootstrap(db: Database, settings: Settings) -> list[acct.AdminKey]:
    """Create what the spec declares and is missing; idempotent across restarts."""
    spec = load_spec(settings.bootstrap_file)
    with db.begin() as conn:
        ensure_aws_managed_policies(conn)
        if not acct.list_accounts(conn):
            # The first declared account is the organization's management account.
            first, *rest = spec.accounts
            org_id = acct.ensure_organization(conn, first.get("id") or ids.account_id(), spec.ram_sharing)
            management_id = conn.execute(select(organizations.c.management_account_id)).scalar_one()
            acct.create_account(conn, first["name"], management_id, first.get("email"), org_id)
            for entry in rest:
                acct.create_account(conn, entry["name"], entry.get("id"), entry.get("email"), org_id)
        keys = acct.admin_keys(conn)
    write_aws_profiles(settings, keys)
    return keys


def write_aws_profiles(settings: Settings, keys: list[acct.AdminKey]) -> tuple[Path, Path]:
    """Write config + credentials files with a profile per account (endpoint_url included), and a
    SageMaker SDK defaults file per profile."""
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
            config[section] = {"region": settings.region, "endpoint_url": settings.endpoint_url, "output": "json"}
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
