"""Helpers to run a real Stratum server in a subprocess and talk to it with the real clients."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

REGION = "us-east-1"
PG_ADMIN_URL = os.environ.get("STRATUM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


_SHARED_LOCK = threading.Lock()
_SHARED: list[boto3.Session] = []


def _shared_session() -> boto3.Session:
    if not _SHARED:
        _SHARED.append(boto3.Session(region_name=REGION))
    return _SHARED[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_pg_database() -> str:
    import psycopg

    name = "stratum_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stop_process(proc: subprocess.Popen[Any] | None) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 15 s."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kill_process(proc: subprocess.Popen[Any] | None) -> None:
    if proc is not None:
        proc.kill()
        proc.wait()


class StratumServer:
    def __init__(self, data_dir: Path, database_url: str | None = None, extra_args: list[str] | None = None,
                 backend: str = "sqlite", log_path: Path | None = None) -> None:
        self.data_dir = data_dir
        self.log_path = log_path or data_dir / "server.log"  # servers sharing a data dir log apart
        self.database_url = database_url
        self.backend = backend
        self.extra_args = extra_args or []
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._keys: dict[str, tuple[str, str, str]] = {}

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StratumServer:
        cmd = [sys.executable, "-m", "stratum.cli", "serve", "--data-dir", str(self.data_dir),
               "--port", str(self.port), *self.extra_args]
        if self.database_url:
            cmd += ["--database-url", self.database_url]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/_stratum/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("server did not become healthy")
        self._load_keys()
        return self

    def _load_keys(self) -> None:
        import configparser

        creds = configparser.ConfigParser()
        creds.read(self.data_dir / "aws" / "credentials")
        from stratum.services.organizations.accounts import list_accounts
        from stratum.store.db import Database

        db = Database(self.database_url or f"sqlite:///{self.data_dir / 'stratum.db'}")
        try:
            with db.read() as conn:
                ids = {a["name"]: a["id"] for a in list_accounts(conn)}
        finally:
            db.dispose()
        for name, account_id in ids.items():
            section = creds[name]
            self._keys[name] = (account_id, section["aws_access_key_id"], section["aws_secret_access_key"])

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def kill(self) -> None:
        """Hard stop (SIGKILL), as a crash would."""
        kill_process(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    # ---------------------------------------------------------------------------- client helpers
    def account_id(self, account: str) -> str:
        return self._keys[account][0]

    def creds(self, account: str = "dev") -> tuple[str, str]:
        _, ak, sk = self._keys[account]
        return ak, sk

    def session(self, account: str = "dev", **creds: Any) -> boto3.Session:
        if not creds:
            ak, sk = self.creds(account)
            creds = {"aws_access_key_id": ak, "aws_secret_access_key": sk}
        return boto3.Session(region_name=REGION, **creds)

    def client(self, service: str, account: str = "dev", *, retries: int = 0, **creds: Any) -> Any:
        if not creds:
            ak, sk = self.creds(account)
            creds = {"aws_access_key_id": ak, "aws_secret_access_key": sk}
        cfg = Config(retries={"max_attempts": retries + 1, "mode": "standard"}, s3={"addressing_style": "path"})
        # One shared session loads each service model once (a fresh session per client costs
        # ~0.25 s); credentials are passed per client, so the shared session holds none.
        with _SHARED_LOCK:
            return _shared_session().client(service, endpoint_url=self.endpoint_url, config=cfg,
                                            region_name=REGION, **creds)

    def env(self, account: str = "dev") -> dict[str, str]:
        ak, sk = self.creds(account)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": sk, "AWS_DEFAULT_REGION": REGION,
                    "AWS_ENDPOINT_URL": self.endpoint_url, "AWS_CONFIG_FILE": os.devnull,
                    "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
        return env

    def aws_cli(self, *args: str, account: str = "dev", check: bool = True) -> subprocess.CompletedProcess[str]:
        aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or "aws"
        return subprocess.run([aws, *args], env=self.env(account), capture_output=True, text=True, check=check,
                              timeout=120)


# The backends every integration test runs on, and a server of its own for a test (the fixtures in
# conftest.py use these too; tests import them from here, not from conftest, which is not one module).
BACKENDS = [b.strip() for b in os.environ.get("STRATUM_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]


def make_server(tmp_path_factory: pytest.TempPathFactory, backend: str, extra_args: list[str] | None = None
                ) -> StratumServer:
    data_dir = tmp_path_factory.mktemp(f"stratum-{backend}")
    url = create_pg_database() if backend == "postgresql" else None
    return StratumServer(data_dir, url, extra_args, backend=backend)


def close_server(server: StratumServer) -> None:
    server.stop()
    if server.database_url:
        drop_pg_database(server.database_url)


def sagemaker_role(server: StratumServer, prefix: str) -> str:
    """A new role in the default account that SageMaker may assume, with AmazonSageMakerFullAccess
    (SageMaker APIs, S3 objects in buckets named *sagemaker*, such as the default bucket)."""
    iam = server.client("iam")
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                       "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    iam.attach_role_policy(RoleName=name, PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")
    return str(arn)


def pipeline_role(server: StratumServer, name: str = "pipeline") -> str:
    """The role ``name`` in the default account (created once per server): SageMaker may assume it and
    it may invoke any Lambda function, as pipelines with Lambda steps need."""
    iam = server.client("iam")
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        pass
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                       "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="invoke-functions", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*"}]}))
    return str(arn)
