"""The `stratum` command: run the server and manage accounts and keys."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from stratum.config import Settings
from stratum.sdkconfig import sdk_env


class CliError(Exception):
    """A user error: printed as one line on stderr, the command exits with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if getattr(args, "data_dir", None):
        settings.data_dir = Path(args.data_dir).resolve()
        settings.data_dir_given = True
    if getattr(args, "database_url", None):
        settings.database_url = args.database_url
    if getattr(args, "host", None):
        settings.host = args.host
    if getattr(args, "port", None) is not None:
        settings.port = args.port
    if getattr(args, "region", None):
        settings.region = args.region
    if getattr(args, "permissive", False):
        settings.permissive = True
    if getattr(args, "bootstrap", None):
        settings.bootstrap_file = Path(args.bootstrap).resolve()
    if getattr(args, "aws_dir", None):
        settings.aws_dir = Path(args.aws_dir).resolve()
    if getattr(args, "executor", None):
        settings.executor = args.executor
    if getattr(args, "ray_address", None):
        settings.ray_address = args.ray_address
    if getattr(args, "ray_token_file", None):
        settings.ray_token_file = Path(args.ray_token_file).resolve()
    if getattr(args, "network", None):
        settings.network_file = Path(args.network).resolve()
    if getattr(args, "vpc_endpoint", None):
        settings.vpc_endpoint_specs = list(args.vpc_endpoint)
    for name in ("lease_seconds", "objects_dir", "master_key_file"):  # several servers on one database
        if getattr(args, name, None):
            setattr(settings, {"objects_dir": "objects_root"}.get(name, name), args.__dict__[name])
    return settings


def _common(p: argparse.ArgumentParser) -> None:
    """The options every command takes: where the data is."""
    p.add_argument("--data-dir", help="data directory ($STRATUM_DATA_DIR, else ./stratum-data)")
    p.add_argument("--database-url", help="postgresql://USER@HOST:PORT/NAME ($STRATUM_DATABASE_URL; default: "
                                          "SQLite in the data directory)")
    p.add_argument("--region", help="default region ($STRATUM_REGION, else us-east-1)")


def _where(settings: Settings) -> str:
    if settings.database_url:
        from stratum.store.provision import shown

        return f"the database {shown(settings.database_url)}"
    return str(settings.data_dir)


def _open(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The existing Stratum data the command works on (never a new organization)."""
    from stratum.store.db import Database
    from stratum.store.provision import has_stratum_data, parse

    settings = _settings(args)
    if settings.database_url and parse(settings.database_url).get_backend_name() == "postgresql":
        found = has_stratum_data(settings.database_url)
    else:
        # SQLite: look for the file first (connecting would create it).
        url = parse(settings.db_url)
        found = bool(url.database) and Path(url.database).is_file() and has_stratum_data(settings.db_url)
    if not found:
        raise CliError(f"no Stratum data in {_where(settings)}: start `stratum serve` with it first, or "
                       "point --data-dir / STRATUM_DATA_DIR (and --database-url) at existing data")
    db = Database(settings.db_url)
    db.migrate()
    return settings, db


def cmd_serve(args: argparse.Namespace) -> int:
    from stratum.bootstrap import load_spec
    from stratum.server.runner import serve
    from stratum.store.provision import ensure_database, parse, shown

    settings = _settings(args)
    settings.check_serving()
    if settings.database_url:
        parse(settings.database_url)
        if not settings.data_dir_given:
            # Objects, job logs and the master key are files: their place must not depend on
            # the directory the server happens to be started from.
            raise CliError("with --database-url, give --data-dir DIR (or STRATUM_DATA_DIR): the object store, "
                           "job logs and the master key live there", 2)
    load_spec(settings.bootstrap_file)  # a bad file is refused before anything starts
    if settings.database_url:
        created = ensure_database(settings.database_url)
        if created:
            print(f"created the PostgreSQL database {created} ({shown(settings.database_url)})", flush=True)

    def banner() -> str:
        aws = settings.aws_config_dir
        text = (f"Stratum listening on {settings.endpoint_url}  (data: {settings.data_dir})\n"
                f"  database: {shown(settings.db_url)}\n"
                f"  objects: {settings.objects_dir}  master key: {settings.master_key_source}\n"
                f"Use it with the generated profiles (one per account):\n"
                f"  export AWS_CONFIG_FILE={aws / 'config'} AWS_SHARED_CREDENTIALS_FILE={aws / 'credentials'} "
                f"{sdk_env(aws)}\n"
                f"  aws --profile dev sagemaker list-pipelines\n"
                f"  python -c \"import boto3; print(boto3.Session(profile_name='dev').client('sts')"
                f".get_caller_identity()['Arn'])\"")
        if settings.permissive:
            text += "\nPERMISSIVE MODE: unknown or missing credentials act as the first account's administrator."
        for endpoint in vpc_endpoints(settings):
            text += f"\nVPC endpoint {endpoint.id} listening on http://{endpoint.address}"
        return text

    from stratum.server.listeners import NetworkConfigError, vpc_endpoints

    try:
        vpc_endpoints(settings)
    except NetworkConfigError as exc:
        raise CliError(str(exc), 2) from None
    serve(settings, on_ready=banner)
    return 0


def cmd_accounts(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from stratum.services.organizations import accounts as acct
    from stratum.services.organizations.tables import organizations

    settings, db = _open(args)
    if args.action == "list":
        with db.read() as conn:
            for a in acct.list_accounts(conn):
                print(f"{a['id']}  {a['name']}")
        return 0
    if not args.name:
        raise CliError("accounts create needs --name", 2)
    with db.begin() as conn:
        # --standalone: an account outside the organization (RAM shares reach it by invitation only).
        org = None if args.standalone else conn.execute(select(organizations.c.id)).scalar()
        key = acct.create_account(conn, args.name, args.id, args.email, org)
    print(json.dumps({"AccountId": key.account_id, "Name": key.account_name, "AccessKeyId": key.access_key_id,
                      "SecretAccessKey": key.secret_access_key}, indent=2))
    print(f"run `stratum profiles` to add a profile {key.account_name} to the AWS CLI files", file=sys.stderr)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from stratum.services.iam import store as iam
    from stratum.services.organizations import accounts as acct

    _settings_, db = _open(args)
    with db.begin() as conn:
        account = acct.find_account(conn, args.account)
        if account is None:
            raise CliError(f"no such account: {args.account}", 2)
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
    from stratum.bootstrap import recorded_endpoint, write_aws_profiles
    from stratum.services.organizations import accounts as acct

    settings, db = _open(args)
    endpoint = args.endpoint_url or recorded_endpoint(settings)
    if not endpoint:
        raise CliError(f"no endpoint recorded in {settings.data_dir} (the server has not run with it): "
                       "give --endpoint-url http://HOST:PORT", 2)
    if args.endpoint_url:
        _check_endpoint(args.endpoint_url)
    with db.read() as conn:
        keys = acct.admin_keys(conn)
    try:
        config, creds = write_aws_profiles(settings, keys, endpoint_url=endpoint)
    except OSError as exc:
        raise CliError(f"cannot write the AWS CLI files in {settings.aws_config_dir}: {exc.strerror}", 2) from None
    print(f"export AWS_CONFIG_FILE={config} AWS_SHARED_CREDENTIALS_FILE={creds} {sdk_env(config.parent)}")
    return 0


def _check_endpoint(url: str) -> None:
    """An endpoint the AWS CLI and boto3 accept as endpoint_url: http(s)://HOST[:PORT]."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.path in ("", "/")
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        valid = False
    if not valid:
        raise CliError(f"--endpoint-url must be http://HOST:PORT (or https://), got {url!r}", 2)


def cmd_db(args: argparse.Namespace) -> int:
    from stratum.store.db import Database
    from stratum.store.provision import ensure_database, parse, shown

    settings = _settings(args)
    parse(settings.db_url)
    if settings.database_url:
        ensure_database(settings.database_url)
    Database(settings.db_url).migrate()
    print(f"{shown(settings.db_url)} is at the latest revision")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from stratum.jobs.logs import log_path, read_log
    from stratum.jobs.tables import sagemaker_jobs
    from stratum.services.organizations import accounts as acct

    settings, db = _open(args)
    with db.read() as conn:
        account = acct.find_account(conn, args.account)
        if account is None:
            raise CliError(f"no such account: {args.account}", 2)
        query = select(sagemaker_jobs).where((sagemaker_jobs.c.account_id == account["id"])
                                             & (sagemaker_jobs.c.name_key == args.job_name.lower())
                                             & (sagemaker_jobs.c.kind != "tuning"))
        if args.type:
            query = query.where(sagemaker_jobs.c.kind == args.type)
        rows = list(conn.execute(query))
    db.dispose()
    if not rows:
        raise CliError(f"no {args.type or 'processing, training or transform'} job named {args.job_name} in "
                       f"account {args.account}")
    if len(rows) > 1:
        kinds = ", ".join(sorted(r.kind for r in rows))
        raise CliError(f"several jobs are named {args.job_name} ({kinds}): choose one with --type", 2)
    row = rows[0]
    sys.stdout.write(read_log(log_path(settings.data_dir, row.account_id, row.region, row.kind, row.name)))
    return 0


def cmd_operator(args: argparse.Namespace) -> int:
    try:
        from stratum.operator.main import OperatorError, Options, run
    except ImportError as exc:  # kopf is an optional extra
        raise CliError(f"the operator needs kopf: pip install 'stratum[operator]' ({exc})", 2) from exc
    if args.workers < 1:
        raise CliError("--workers must be at least 1", 2)
    try:
        run(Options(endpoint_url=args.endpoint_url, region=args.region, namespaces=args.namespace,
                    system_namespace=args.system_namespace, carm_dir=args.carm_dir, workers=args.workers,
                    liveness=args.liveness))
    except OperatorError as exc:
        raise CliError(str(exc), 2) from exc
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("stratum")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stratum", description="Self-hosted, multi-account SageMaker-compatible "
                                     "MLOps. Every command finds its data with --data-dir, $STRATUM_DATA_DIR or "
                                     "./stratum-data (and --database-url / $STRATUM_DATABASE_URL).")
    parser.add_argument("--version", action="version", version=f"stratum {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("serve", help="run the server (creates the organization on first start)",
                       description="Run the server. On first start it creates the organization (the default "
                                   "accounts or those of --bootstrap) and writes the AWS CLI profiles for "
                                   "the endpoint it listens on.")
    _common(p)
    p.add_argument("--host", help="listen address ($STRATUM_HOST, else 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port ($STRATUM_PORT, else 4747; 0: any free port)")
    p.add_argument("--bootstrap", help="YAML file declaring the organization's accounts; for existing data the "
                                       "accounts it adds are created, a conflicting file is refused")
    p.add_argument("--aws-dir", help="where to write the AWS CLI config/credentials (default: <data-dir>/aws)")
    p.add_argument("--permissive", action="store_true",
                   help="accept any credentials as the first account's admin (throwaway local use only)")
    p.add_argument("--network", help="YAML file declaring VPC endpoint listeners (vpc_endpoints: id, vpc, "
                                     "listen, policy/policy_file); $STRATUM_NETWORK")
    p.add_argument("--vpc-endpoint", action="append", metavar="vpce-ID=HOST:PORT[:POLICY_FILE]",
                   help="an extra listener whose requests carry aws:SourceVpce=vpce-ID (repeatable)")
    p.add_argument("--executor", choices=["local", "ray"], help="where SageMaker jobs run (local)")
    p.add_argument("--ray-address", help="Ray cluster for --executor ray: auto, host:port or ray://host:port "
                                         "(default: start a local Ray instance)")
    p.add_argument("--ray-token-file", help="token of a Ray cluster with token authentication "
                                            "($STRATUM_RAY_TOKEN_FILE; default: the token Ray finds itself, "
                                            "RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)")
    p.add_argument("--lease-seconds", type=float, help="claim lease of executions and jobs: how soon another "
                                                      "server takes over a dead one's work (30; $STRATUM_LEASE_SECONDS)")
    p.add_argument("--objects-dir", type=Path, help="object store root, shared by every server of one database "
                                                    "(<data-dir>/objects; $STRATUM_OBJECTS_DIR)")
    p.add_argument("--master-key-file", type=Path, help="master key file, the same for every server of one "
                                                        "database (<data-dir>/master.key; $STRATUM_MASTER_KEY_FILE)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("logs", help="print the log of a processing, training or transform job")
    _common(p)
    p.add_argument("job_name", help="the job's name")
    p.add_argument("--account", default="dev", help="account name or id (dev)")
    p.add_argument("--type", choices=["training", "processing", "transform"],
                   help="the job's kind, when jobs of several kinds have this name")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("accounts", help="list or create accounts")
    _common(p)
    p.add_argument("action", choices=["list", "create"], help="list: id and name of every account; create: a "
                   "new account with an admin user and its access key (printed as JSON)")
    p.add_argument("--name", help="the new account's name (create)")
    p.add_argument("--id", help="12-digit account id (create; random if omitted)")
    p.add_argument("--email", help="the account's email (create; default NAME@stratum.local)")
    p.add_argument("--standalone", action="store_true",
                   help="create the account outside the organization (it gets RAM share invitations)")
    p.set_defaults(func=cmd_accounts)

    p = sub.add_parser("keys", help="create or list access keys of an account's IAM users")
    _common(p)
    p.add_argument("action", choices=["create", "list"], help="create: a new access key (printed as JSON); "
                   "list: the account's access keys")
    p.add_argument("--account", required=True, help="account name or id")
    p.add_argument("--user", default="admin", help="IAM user name (create; admin)")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("profiles", help="(re)write the AWS CLI config/credentials with a profile per account",
                       description="Write the AWS CLI config/credentials with a profile per account, for the "
                                   "endpoint the server last listened on with this data (or --endpoint-url).")
    _common(p)
    p.add_argument("--endpoint-url", help="the server's endpoint, http://HOST:PORT (default: the one `stratum "
                                          "serve` recorded in the data directory)")
    p.add_argument("--aws-dir", help="where to write the AWS CLI config/credentials (default: <data-dir>/aws)")
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser("db", help="create (PostgreSQL) and migrate the database to the latest revision")
    _common(p)
    p.add_argument("action", choices=["upgrade"], help="upgrade: apply the migrations (also done at start)")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("operator", help="run the ACK-compatible Kubernetes operator (needs the 'operator' extra)",
                       description="Serve the AWS Controllers for Kubernetes (ACK) SageMaker custom resources "
                                   "against Stratum: watch them in the cluster of $KUBECONFIG (or the pod's service "
                                   "account) and reconcile them through Stratum's API with the AWS credentials of "
                                   "the environment.")
    p.add_argument("--endpoint-url", default=os.environ.get("STRATUM_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL"),
                   help="Stratum's endpoint, http://HOST:PORT ($STRATUM_ENDPOINT_URL, $AWS_ENDPOINT_URL)")
    p.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
                   help="region of resources without a region annotation ($AWS_REGION; us-east-1)")
    p.add_argument("--namespace", action="append", default=[], metavar="NS",
                   help="watch only this namespace (repeatable; default: every namespace)")
    p.add_argument("--system-namespace", default=os.environ.get("ACK_SYSTEM_NAMESPACE", "ack-system"),
                   help="namespace of the ack-role-account-map ConfigMap ($ACK_SYSTEM_NAMESPACE; ack-system)")
    p.add_argument("--carm-dir", type=Path, default=os.environ.get("STRATUM_CARM_DIR"),
                   help="the ack-role-account-map ConfigMap mounted as a directory (one file per account ID, "
                        "holding the role ARN); read besides the ConfigMap itself ($STRATUM_CARM_DIR)")
    p.add_argument("--workers", type=int, default=8, help="resources reconciled at once (8)")
    p.add_argument("--liveness", metavar="URL", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    p.set_defaults(func=cmd_operator)

    from stratum.engine.functions_cli import add_parser as add_lambda_parser

    add_lambda_parser(sub, _common, _open)
    return parser


def main(argv: list[str] | None = None) -> int:
    from stratum.bootstrap import BootstrapError
    from stratum.config import SettingsError
    from stratum.protocol.errors import ServiceError
    from stratum.store.provision import DatabaseUrlError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        return _fail(str(exc), exc.code)
    except (BootstrapError, DatabaseUrlError, SettingsError) as exc:
        return _fail(str(exc), 2)
    except ServiceError as exc:  # the domain's own refusal: duplicate account, unknown user, ...
        return _fail(f"{exc.code}: {exc.message}", 1)
    except KeyboardInterrupt:
        return 130


def _fail(message: str, code: int) -> int:
    print(f"stratum: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
