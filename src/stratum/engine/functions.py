"""Local Lambda functions: the registry Lambda steps call into.

Stratum has no Lambda service. A function is registered per account and region under its name,
and runs either a Python callable ``package.module:function`` (called as ``handler(event,
context)`` in a fresh interpreter) or a command (the event as JSON on stdin, the result as JSON on
stdout). Register with ``stratum lambda register`` or declare them in a YAML file loaded with
``stratum lambda load FILE`` or at server start through ``STRATUM_FUNCTIONS_FILE``:

    functions:
      - name: check-metrics           # the name in arn:aws:lambda:<region>:<account>:function:<name>
        account: dev                  # account name or 12-digit id
        region: us-east-1             # default: the server's region
        handler: lambdas.metrics:handler
        path: ./lambdas-src           # added to PYTHONPATH (relative to this file)
        timeout: 120                  # seconds (default 120)
        environment: {STAGE: test}
      - name: notify
        account: dev
        command: ["bash", "notify.sh"]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from stratum.engine.tables import stratum_lambda_functions as functions_t

DEFAULT_TIMEOUT_SECONDS = 120
MAX_TIMEOUT_SECONDS = 900  # Lambda's own ceiling

_NAME = re.compile(r"[a-zA-Z0-9_-]{1,140}")
_HANDLER = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_ARN = re.compile(r"arn:aws[a-z\-]*:lambda:([a-z0-9\-]+):(\d{12}):function:([a-zA-Z0-9_-]+)(?::([\w$-]+))?")


class FunctionError(ValueError):
    """A function declaration is invalid."""


@dataclass
class FunctionSpec:
    account_id: str
    region: str
    name: str
    handler: str | None = None
    command: list[str] | None = None
    code_path: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"

    def validate(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise FunctionError(f"Invalid function name '{self.name}': use 1-140 letters, digits, '-' or '_'.")
        if (self.handler is None) == (self.command is None):
            raise FunctionError(f"Function '{self.name}' needs exactly one of 'handler' or 'command'.")
        if self.handler is not None and not _HANDLER.fullmatch(self.handler):
            raise FunctionError(f"Function '{self.name}' handler must look like 'package.module:function'.")
        if self.command is not None and (not isinstance(self.command, list) or not self.command
                                         or not all(isinstance(a, str) for a in self.command)):
            raise FunctionError(f"Function '{self.name}' command must be a non-empty list of strings.")
        if not 1 <= int(self.timeout_seconds) <= MAX_TIMEOUT_SECONDS:
            raise FunctionError(f"Function '{self.name}' timeout must be between 1 and {MAX_TIMEOUT_SECONDS} s.")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.environment.items()):
            raise FunctionError(f"Function '{self.name}' environment must map strings to strings.")


def parse_function_arn(value: str, account_id: str, region: str) -> tuple[str, str, str] | None:
    """(account, region, name) a Lambda step's FunctionArn designates; a bare name or
    ``function:name`` is looked up in the pipeline's own account and region. A version or alias
    qualifier is accepted and ignored: local functions have one version."""
    m = _ARN.fullmatch(value)
    if m is not None:
        return m.group(2), m.group(1), m.group(3)
    if _NAME.fullmatch(value):
        return account_id, region, value
    return None


def _row_to_spec(row: Any) -> FunctionSpec:
    return FunctionSpec(account_id=row.account_id, region=row.region, name=row.name, handler=row.handler,
                        command=row.command, code_path=row.code_path, environment=dict(row.environment or {}),
                        timeout_seconds=int(row.timeout_seconds))


def get_function(conn: Connection, account_id: str, region: str, name: str) -> FunctionSpec | None:
    row = conn.execute(select(functions_t).where(
        (functions_t.c.account_id == account_id) & (functions_t.c.region == region)
        & (functions_t.c.name == name))).first()
    return _row_to_spec(row) if row is not None else None


def list_functions(conn: Connection, account_id: str | None = None) -> list[FunctionSpec]:
    query = select(functions_t).order_by(functions_t.c.account_id, functions_t.c.region, functions_t.c.name)
    if account_id is not None:
        query = query.where(functions_t.c.account_id == account_id)
    return [_row_to_spec(r) for r in conn.execute(query)]


def register(conn: Connection, spec: FunctionSpec) -> None:
    """Create or replace a function."""
    spec.validate()
    remove(conn, spec.account_id, spec.region, spec.name)
    conn.execute(insert(functions_t).values(
        account_id=spec.account_id, region=spec.region, name=spec.name, handler=spec.handler, command=spec.command,
        code_path=spec.code_path, environment=spec.environment or None, timeout_seconds=int(spec.timeout_seconds),
        created_at=datetime.now(UTC)))


def remove(conn: Connection, account_id: str, region: str, name: str) -> bool:
    result = conn.execute(delete(functions_t).where(
        (functions_t.c.account_id == account_id) & (functions_t.c.region == region) & (functions_t.c.name == name)))
    return bool(result.rowcount)


def resolve_account(conn: Connection, name_or_id: str) -> str:
    from stratum.services.organizations import accounts

    found = accounts.find_account(conn, str(name_or_id))
    if found is None:
        raise FunctionError(f"No such account: {name_or_id}")
    return str(found["id"])


def specs_from_yaml(conn: Connection, path: Path, default_region: str) -> list[FunctionSpec]:
    """Parse a functions file (see the module docstring); accounts may be given by name."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise FunctionError(f"Cannot read functions file {path}: {exc}") from None
    entries = doc.get("functions") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise FunctionError(f"Functions file {path} must hold a 'functions' list.")
    specs: list[FunctionSpec] = []
    for entry in entries:
        if not isinstance(entry, dict) or "name" not in entry or "account" not in entry:
            raise FunctionError(f"Each function in {path} needs at least 'name' and 'account'.")
        code_path = entry.get("path")
        if code_path is not None:
            code_path = str((path.parent / str(code_path)).resolve())
        command = entry.get("command")
        if isinstance(command, str):
            command = ["/bin/sh", "-c", command]
        spec = FunctionSpec(account_id=resolve_account(conn, entry["account"]),
                            region=str(entry.get("region") or default_region), name=str(entry["name"]),
                            handler=entry.get("handler"), command=command, code_path=code_path,
                            environment={str(k): str(v) for k, v in (entry.get("environment") or {}).items()},
                            timeout_seconds=int(entry.get("timeout", DEFAULT_TIMEOUT_SECONDS)))
        spec.validate()
        specs.append(spec)
    return specs


def load_file(conn: Connection, path: Path, default_region: str) -> list[FunctionSpec]:
    specs = specs_from_yaml(conn, path, default_region)
    for spec in specs:
        register(conn, spec)
    return specs
