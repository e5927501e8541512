"""What the benchmarks share: a free loopback port, a Stratum server subprocess on its embedded
defaults, the keys `stratum serve` writes for each account, and percentiles."""

from __future__ import annotations

import configparser
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, port: int, timeout: float = 60) -> subprocess.Popen[bytes]:
    """`stratum serve` on ``data_dir`` (SQLite), its output in ``data_dir/server.log``; returns once
    the health check answers."""
    proc = subprocess.Popen([sys.executable, "-m", "stratum.cli", "serve", "--data-dir", str(data_dir),
                             "--port", str(port)], stdout=open(data_dir / "server.log", "wb"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stratum/health", timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start: " + (data_dir / "server.log").read_text()[-2000:])


def account_keys(data_dir: Path, account: str = "dev") -> tuple[str, str]:
    """The access key pair of an account's profile in the credentials file the server wrote."""
    creds = configparser.ConfigParser()
    creds.read(data_dir / "aws" / "credentials")
    return creds[account]["aws_access_key_id"], creds[account]["aws_secret_access_key"]


def account_session(data_dir: Path, account: str = "dev", region: str = REGION) -> boto3.Session:
    access_key, secret_key = account_keys(data_dir, account)
    return boto3.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]
