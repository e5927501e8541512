"""Declaring Lambda functions from the command line or a YAML file: a shortcut that creates (or
replaces) real Lambda functions, the same ones the Lambda API manages and Lambda steps invoke.

``stratum lambda register`` / ``stratum lambda load FILE`` / ``STRATUM_FUNCTIONS_FILE`` at server
start take this format::

    functions:
      - name: check-metrics           # the name in arn:aws:lambda:<region>:<account>:function:<name>
        account: dev                  # account name or 12-digit id
        region: us-east-1             # default: the server's region
        handler: lambdas.metrics:handler   # or lambdas.metrics.handler, as Lambda writes it
        path: ./lambdas-src           # zipped as the function's code (relative to this file)
        timeout: 120                  # seconds (default 120)
        role: arn:aws:iam::222222222222:role/fn   # optional: the function's execution role
        environment: {STAGE: test}
      - name: notify
        account: dev
        command: ["bash", "notify.sh"]

A ``handler`` function is a python3.11 Lambda function whose code is the zipped ``path``; a
``command`` function has runtime ``provided.al2023`` and runs the command once per invocation in
the unzipped ``path`` (the event as JSON on stdin, its result as JSON on stdout). Without a
``role`` the function runs without AWS credentials (the Lambda API itself requires one).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

DEFAULT_TIMEOUT_SECONDS = 120
MAX_TIMEOUT_SECONDS = 900  # Lambda's own ceiling

_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_HANDLER = re.compile(r"[A-Za-z_][\w.]*[:.][A-Za-z_]\w*")
# Lambda's RoleArn shape: what CreateFunction accepts, so the CLI shortcut accepts no more.
_ROLE = re.compile(r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")
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
    role: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"

    @property
    def lambda_handler(self) -> str:
        """``pkg.mod:func`` as Lambda writes handlers: ``pkg.mod.func``."""
        return (self.handler or "").replace(":", ".")

    def validate(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise FunctionError(f"Invalid function name '{self.name}': use 1-64 letters, digits, '-' or '_'.")
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
        if self.role is not None and not (isinstance(self.role, str) and _ROLE.fullmatch(self.role)):
            raise FunctionError(f"Function '{self.name}' role must be an IAM role ARN "
                                f"(arn:aws:iam::ACCOUNT:role/NAME), got {self.role!r}.")
        if self.code_path is not None and not Path(self.code_path).is_dir():
            raise FunctionError(f"Function '{self.name}' path {self.code_path} is not a directory.")


def parse_function_arn(value: str, account_id: str, region: str) -> tuple[str, str, str] | None:
    """(account, region, name) a Lambda step's FunctionArn designates; a bare name is looked up in
    the pipeline's own account and region."""
    m = _ARN.fullmatch(value)
    if m is not None:
        return m.group(2), m.group(1), m.group(3)
    if _NAME.fullmatch(value):
        return account_id, region, value
    return None


def register(conn: Connection, spec: FunctionSpec, data_dir: Path) -> None:
    """Create or replace the Lambda function ``spec`` declares."""
    from stratum.functions.runtime import COMMAND_KEY
    from stratum.services.lambda_ import catalog, code, configs
    from stratum.services.lambda_.names import FunctionRef

    spec.validate()
    data = code.zip_directory(Path(spec.code_path) if spec.code_path else None)
    sha, size = code.store_zip(data_dir, data)
    code.task_root(data_dir, sha)
    at = catalog.now()
    config = configs.defaults(spec.name)
    config.update({"Timeout": int(spec.timeout_seconds), "Description": "declared with stratum lambda",
                   "CodeSha256": code.sha256_b64(sha), "CodeSize": size, "RevisionId": catalog.revision(),
                   "LastModified": catalog.last_modified(at)})
    if spec.command is not None:
        config.update({"Runtime": "provided.al2023", "Handler": shlex.join(spec.command), COMMAND_KEY: spec.command})
    else:
        config.update({"Runtime": "python3.11", "Handler": spec.lambda_handler})
    if spec.role:
        config["Role"] = spec.role
    if spec.environment:
        config["Environment"] = {"Variables": dict(spec.environment)}
    ref = FunctionRef(spec.account_id, spec.region, spec.name, None)
    if get_function(conn, spec.account_id, spec.region, spec.name) is None:
        catalog.create_function(conn, ref, config, sha, {}, at)
    else:
        catalog.set_latest(conn, ref, config, sha)


def get_function(conn: Connection, account_id: str, region: str, name: str) -> dict[str, Any] | None:
    """The function's $LATEST configuration, or None."""
    from stratum.services.lambda_ import catalog
    from stratum.services.lambda_.names import FunctionRef

    row = catalog.get_version(conn, FunctionRef(account_id, region, name, None), "$LATEST")
    return dict(row["config"]) if row else None


def list_functions(conn: Connection, account_id: str | None, region: str) -> list[dict[str, Any]]:
    from stratum.services.lambda_ import catalog
    from stratum.services.organizations.accounts import list_accounts

    accounts = [account_id] if account_id else [str(a["id"]) for a in list_accounts(conn)]
    return [{"account_id": a, **row} for a in accounts for row in catalog.list_functions(conn, a, region)]


def remove(conn: Connection, account_id: str, region: str, name: str) -> bool:
    from stratum.services.lambda_ import catalog
    from stratum.services.lambda_.names import FunctionRef

    if get_function(conn, account_id, region, name) is None:
        return False
    catalog.delete_function(conn, FunctionRef(account_id, region, name, None))
    return True


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
        # YAML's messages span lines (with a caret under the column): one line for the CLI.
        raise FunctionError(f"Cannot read functions file {path}: {' '.join(str(exc).split())}") from None
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
        environment = entry.get("environment") or {}
        if not isinstance(environment, dict):
            raise FunctionError(f"Function {entry['name']!r} in {path}: 'environment' must be a mapping.")
        timeout = entry.get("timeout", DEFAULT_TIMEOUT_SECONDS)
        if isinstance(timeout, bool) or not isinstance(timeout, int):
            raise FunctionError(f"Function {entry['name']!r} in {path}: 'timeout' must be a whole number of "
                                f"seconds, got {timeout!r}.")
        spec = FunctionSpec(account_id=resolve_account(conn, entry["account"]),
                            region=str(entry.get("region") or default_region), name=str(entry["name"]),
                            handler=entry.get("handler"), command=command, code_path=code_path,
                            environment={str(k): str(v) for k, v in environment.items()},
                            timeout_seconds=timeout,
                            role=entry.get("role"))
        spec.validate()
        specs.append(spec)
    return specs


def load_file(conn: Connection, path: Path, default_region: str, data_dir: Path) -> list[FunctionSpec]:
    specs = specs_from_yaml(conn, path, default_region)
    for spec in specs:
        register(conn, spec, data_dir)
    return specs
