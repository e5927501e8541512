"""The `stratum` command: run the server and manage accounts and keys."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stratum.config import Settings


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if getattr(args, "data_dir", None):
        settings.data_dir = Path(args.data_dir).resolve()
    if getattr(args, "database_url", None):
        settings.database_url = args.database_url
    if getattr(args, "host", None):
        settings.host = args.host
    if getattr(args, "port", None):
        settings.port = args.port
    if getattr(args, "region", None):
        settings.region = args.region
    if getattr(args, "permissive", False):
        settings.permissive = True
    if getattr(args, "bootstrap", None):
        settings.bootstrap_file = Path(args.bootstrap)
    if getattr(args, "aws_dir", None):
        settings.aws_dir = Path(args.aws_dir)
    if getattr(args, "executor", None):
        settings.executor = args.executor
    if getattr(args, "ray_address", None):
        settings.ray_address = args.ray_address
    if getattr(args, "network", None):
        settings.network_file = Path(args.network).resolve()
    if getattr(args, "vpc_endpoint", None):
        settings.vpc_endpoint_specs = list(args.vpc_endpoint)
    for name in ("lease_seconds", "objects_dir", "master_key_file"):  # several servers on one database
        if getattr(args, name, None):
            setattr(settings, {"objects_dir": "objects_root"}.get(name, name), args.__dict__[name])
    return settings


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="data directory (default: ./stratum-data or $STRATUM_DATA_DIR)")
    p.add_argument("--database-url", help="SQLAlchemy URL, e.g. postgresql://postgres@127.0.0.1/stratum "
                                          "(default: SQLite in the data directory)")
    p.add_argument("--region", help="default region (us-east-1)")
    p.add_argument("--host", help="listen address (127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (4747)")
    p.add_argument("--bootstrap", help="YAML file declaring the organization's accounts")
    p.add_argument("--aws-dir", help="where to write the AWS CLI config/credentials (default: <data-dir>/aws)")


def cmd_serve(args: argparse.Namespace) -> int:
    from stratum.server.runner import serve

    settings = _settings(args)
    aws = settings.aws_config_dir
    banner = (f"Stratum listening on {settings.endpoint_url}  (data: {settings.data_dir})\n"
              f"Use it with the generated profiles (one per account):\n"
              f"  export AWS_CONFIG_FILE={aws / 'config'} AWS_SHARED_CREDENTIALS_FILE={aws / 'credentials'}\n"
              f"  aws --profile dev sagemaker list-pipelines\n"
              f"  python -c \"import boto3; print(boto3.Session(profile_name='dev').client('sts')"
              f".get_caller_identity()['Arn'])\"")
    if settings.permissive:
        banner += "\nPERMISSIVE MODE: unknown or missing credentials act as the first account's administrator."
    from stratum.server.listeners import NetworkConfigError, vpc_endpoints

    try:
        for endpoint in vpc_endpoints(settings):
            banner += f"\nVPC endpoint {endpoint.id} listening on http://{endpoint.address}"
    except NetworkConfigError as exc:
        print(f"stratum: {exc}", file=sys.stderr)
        return 2
    serve(settings, on_ready=banner)
    return 0


def _open(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from stratum.bootstrap import bootstrap
    from stratum.store.db import Database

    settings = _settings(args)
    db = Database(settings.db_url)
    db.migrate()
    bootstrap(db, settings)
    return settings, db


def cmd_accounts(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from stratum.bootstrap import write_aws_profiles
    from stratum.services.organizations import accounts as acct
    from stratum.services.organizations.tables import organizations

    settings, db = _open(args)
    if args.action == "list":
        with db.read() as conn:
            for a in acct.list_accounts(conn):
                print(f"{a['id']}  {a['name']}")
        return 0
    with db.begin() as conn:
        # --standalone: an account outside the organization (RAM shares reach it by invitation only).
        org = None if args.standalone else conn.execute(select(organizations.c.id)).scalar()
        key = acct.create_account(conn, args.name, args.id, args.email, org)
        keys = acct.admin_keys(conn)
    write_aws_profiles(settings, keys)
    print(json.dumps({"AccountId": key.account_id, "Name": key.account_name, "AccessKeyId": key.access_key_id,
                      "SecretAccessKey": key.secret_access_key}, indent=2))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from stratum.services.iam import store as iam
    from stratum.services.organizations import accounts as acct

    _settings_, db = _open(args)
    with db.begin() as conn:
        account = acct.find_account(conn, args.account)
        if account is None:
            print(f"no such account: {args.account}", file=sys.stderr)
            return 2
        if args.action == "create":
            row = iam.create_access_key(conn, account["id"], args.user)
            print(json.dumps({"AccountId": account["id"], "UserName": args.user,
                              "AccessKeyId": row["access_key_id"],
                              "SecretAccessKey": row["secret_access_key"]}, indent=2))
        else:
            from sqlalchemy import select

            from stratum.services.iam.tables import iam_access_keys
            for r in conn.execute(select(iam_access_keys).where(iam_access_keys.c.account_id == account["id"])):
                print(f"{r.access_key_id}  {r.user_name}  {r.status}")
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    from stratum.bootstrap import write_aws_profiles
    from stratum.services.organizations import accounts as acct

    settings, db = _open(args)
    with db.read() as conn:
        config, creds = write_aws_profiles(settings, acct.admin_keys(conn))
    print(f"export AWS_CONFIG_FILE={config} AWS_SHARED_CREDENTIALS_FILE={creds}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from stratum.store.db import Database

    Database(_settings(args).db_url).migrate()
    print("database is at the latest revision")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from stratum.jobs.logs import log_path, read_log
    from stratum.jobs.tables import sagemaker_jobs
    from stratum.services.organizations import accounts as acct
    from stratum.store.db import Database

    settings = _settings(args)
    db = Database(settings.db_url)
    with db.read() as conn:
        account = acct.find_account(conn, args.account)
        if account is None:
            print(f"no such account: {args.account}", file=sys.stderr)
            return 2
        query = select(sagemaker_jobs).where((sagemaker_jobs.c.account_id == account["id"])
                                             & (sagemaker_jobs.c.name_key == args.job_name.lower())
                                             & (sagemaker_jobs.c.kind != "tuning"))
        if args.type:
            query = query.where(sagemaker_jobs.c.kind == args.type)
        rows = list(conn.execute(query))
    db.dispose()
    if not rows:
        print(f"no {args.type or 'processing, training or transform'} job named {args.job_name} in account "
              f"{args.account}", file=sys.stderr)
        return 1
    if len(rows) > 1:
        kinds = ", ".join(sorted(r.kind for r in rows))
        print(f"several jobs are named {args.job_name} ({kinds}): choose one with --type", file=sys.stderr)
        return 2
    row = rows[0]
    sys.stdout.write(read_log(log_path(settings.data_dir, row.account_id, row.region, row.kind, row.name)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stratum", description="Self-hosted, multi-account SageMaker-compatible MLOps")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the server")
    _common(p)
    p.add_argument("--permissive", action="store_true",
                   help="accept any credentials as the first account's admin (throwaway local use only)")
    p.add_argument("--network", help="YAML file declaring VPC endpoint listeners (vpc_endpoints: id, vpc, "
                                     "listen, policy/policy_file); $STRATUM_NETWORK")
    p.add_argument("--vpc-endpoint", action="append", metavar="vpce-ID=HOST:PORT[:POLICY_FILE]",
                   help="an extra listener whose requests carry aws:SourceVpce=vpce-ID (repeatable)")
    p.add_argument("--executor", choices=["local", "ray"], help="where SageMaker jobs run (local)")
    p.add_argument("--ray-address", help="Ray cluster for --executor ray: auto, host:port or ray://host:port "
                                         "(default: start a local Ray instance)")
    p.add_argument("--lease-seconds", type=float, help="claim lease of executions and jobs: how soon another "
                                                      "server takes over a dead one's work (30; $STRATUM_LEASE_SECONDS)")
    p.add_argument("--objects-dir", type=Path, help="object store root, shared by every server of one database "
                                                    "(<data-dir>/objects; $STRATUM_OBJECTS_DIR)")
    p.add_argument("--master-key-file", type=Path, help="master key file, the same for every server of one "
                                                        "database (<data-dir>/master.key; $STRATUM_MASTER_KEY_FILE)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("logs", help="print the log of a processing, training or transform job")
    _common(p)
    p.add_argument("job_name")
    p.add_argument("--account", default="dev", help="account name or id (dev)")
    p.add_argument("--type", choices=["training", "processing", "transform"])
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("accounts", help="list or create accounts")
    _common(p)
    p.add_argument("action", choices=["list", "create"])
    p.add_argument("--name")
    p.add_argument("--id", help="12-digit account id (random if omitted)")
    p.add_argument("--email")
    p.add_argument("--standalone", action="store_true",
                   help="create the account outside the organization (it gets RAM share invitations)")
    p.set_defaults(func=cmd_accounts)

    p = sub.add_parser("keys", help="create or list access keys of an account's IAM users")
    _common(p)
    p.add_argument("action", choices=["create", "list"])
    p.add_argument("--account", required=True, help="account name or id")
    p.add_argument("--user", default="admin")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("profiles", help="(re)write the AWS CLI config/credentials with a profile per account")
    _common(p)
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser("db", help="migrate the database to the latest revision")
    _common(p)
    p.add_argument("action", choices=["upgrade"])
    p.set_defaults(func=cmd_db)

    from stratum.engine.functions_cli import add_parser as add_lambda_parser

    add_lambda_parser(sub, _common, _open)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "accounts" and args.action == "create" and not args.name:
        print("--name is required", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
