"""`stratum lambda ...`: declare Lambda functions from the command line (a shortcut for the Lambda
API's CreateFunction / UpdateFunctionCode, see stratum.engine.functions).

    stratum lambda register --account dev --name check --handler lambdas.check:handler --path ./src
    stratum lambda register --account dev --name notify --command "bash notify.sh" --timeout 30
    stratum lambda load functions.yaml
    stratum lambda list [--account dev]
    stratum lambda delete --account dev --name check

A running server sees changes at once (its warm environments of a replaced function are recycled
when idle).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stratum.engine.functions import (
    DEFAULT_TIMEOUT_SECONDS,
    FunctionError,
    FunctionSpec,
    list_functions,
    load_file,
    register,
    remove,
    resolve_account,
)


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None],
               open_db: Callable[[argparse.Namespace], Any]) -> None:
    p = sub.add_parser("lambda", help="create Lambda functions from a directory (a CreateFunction shortcut)")
    common(p)
    p.add_argument("action", choices=["register", "list", "delete", "load"],
                   help="register, list or delete a function, or load the functions of a YAML file")
    p.add_argument("file", nargs="?", help="functions YAML file (load)")
    p.add_argument("--account", help="account name or id")
    p.add_argument("--name", help="function name (the last part of its ARN)")
    p.add_argument("--handler", help="Python callable 'package.module:function', called as handler(event, context)")
    p.add_argument("--command", help="command run with the event as JSON on stdin, printing the result as JSON")
    p.add_argument("--path", help="directory zipped as the function's code")
    p.add_argument("--role", help="execution role ARN (without it the function has no AWS credentials)")
    p.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_SECONDS, help="seconds (default 120)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="environment variable")
    p.set_defaults(func=lambda args: run(args, open_db))


def run(args: argparse.Namespace, open_db: Callable[[argparse.Namespace], Any]) -> int:
    settings, db = open_db(args)
    region = args.region or settings.region
    try:
        with db.begin() as conn:
            if args.action == "load":
                if not args.file:
                    raise FunctionError("usage: stratum lambda load FILE")
                for spec in load_file(conn, Path(args.file).resolve(), region, Path(settings.data_dir)):
                    print(spec.arn)
                return 0
            if args.action == "list":
                account = resolve_account(conn, args.account) if args.account else None
                for row in list_functions(conn, account, region):
                    config = row["config"]
                    print(json.dumps({"FunctionArn": f"arn:aws:lambda:{region}:{row['account_id']}:function:"
                                                     f"{row['function_name']}", "Runtime": config.get("Runtime"),
                                      "Handler": config.get("Handler"), "Timeout": config.get("Timeout")}))
                return 0
            if not args.account or not args.name:
                raise FunctionError("--account and --name are required")
            account = resolve_account(conn, args.account)
            if args.action == "delete":
                if not remove(conn, account, region, args.name):
                    raise FunctionError(f"No function {args.name} in account {account} ({region})")
                return 0
            env = {}
            for item in args.env:
                key, sep, value = item.partition("=")
                if not sep:
                    raise FunctionError(f"--env needs KEY=VALUE, got {item!r}")
                env[key] = value
            spec = FunctionSpec(account_id=account, region=region, name=args.name, handler=args.handler,
                                command=shlex.split(args.command) if args.command else None,
                                code_path=str(Path(args.path).resolve()) if args.path else None,
                                environment=env, timeout_seconds=args.timeout, role=args.role)
            register(conn, spec, Path(settings.data_dir))
            print(spec.arn)
            return 0
    except FunctionError as exc:  # a user error: one line, as every `stratum` command prints them
        print(f"stratum: {exc}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
