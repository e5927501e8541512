"""API throughput and server-CPU benchmark: Stratum vs moto_server, side by side in one run.

For DescribePipeline, ListPipelines and StartPipelineExecution at 1, 4 and 16 concurrent clients it
measures requests per second and the server process's CPU time per request (user+system of the
server process and its children, from psutil, before/after each phase, divided by the requests).

* Stratum runs as a real server subprocess on embedded defaults (SQLite in a temporary data
  directory), SigV4 verification and authorization on; requests are signed with account "dev"'s
  keys. moto_server gets the very same requests (it checks neither signatures nor policies).
* Requests are built before each timed phase with botocore itself (the service model's serializer
  and ``SigV4Auth``), one signed request per timed request, each StartPipelineExecution with its own
  ClientRequestToken; then a minimal keep-alive HTTP/1.1 client (bench/loadgen.py) sends the raw
  bytes from a separate process. No boto3 call is ever timed.
* Every response must be HTTP 200; any other outcome is counted and reported loudly, and makes the
  run exit with status 1.

Usage: python bench/api.py [--requests 2000] [--quick] [--json out.json]
       python bench/api.py --servers stratum --ops DescribePipeline --concurrency 4 --cprofile /tmp/s.prof
"""

from __future__ import annotations

import argparse
import concurrent.futures
import configparser
import dataclasses
import http.client
import json
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import botocore
import psutil
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loadgen  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
REGION = "us-east-1"
PIPELINE = "bench-pipeline"
EXTRA_PIPELINES = 50
ROLE_NAME = "bench-pipeline-role"
DEFINITION = json.dumps({
    "Version": "2020-12-01",
    "Parameters": [{"Name": "P", "Type": "String", "DefaultValue": "x"}],
    "Steps": [{"Name": "F", "Type": "Fail", "Arguments": {"ErrorMessage": "x"}}],
})
TRUST_POLICY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
})
TARGET_CPU_RATIO = 5.0
TARGET_DESCRIBE_CPU_MS = 0.5
TARGETS = ("server CPU per request at least 5x lower than moto's (under 0.5 ms for DescribePipeline "
           "on this machine) and higher throughput than moto at every concurrency")


# --------------------------------------------------------------------------------------------------
# Operations
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Op:
    service: str
    name: str
    params: Callable[[], dict[str, Any]]
    expect: str  # a key (JSON) or element (XML) every 200 response must contain
    share: float = 1.0  # fraction of --requests sent per phase


OPS: dict[str, Op] = {
    "DescribePipeline": Op("sagemaker", "DescribePipeline", lambda: {"PipelineName": PIPELINE}, "PipelineArn"),
    "ListPipelines": Op("sagemaker", "ListPipelines", dict, "PipelineSummaries"),
    "StartPipelineExecution": Op(
        "sagemaker", "StartPipelineExecution",
        lambda: {"PipelineName": PIPELINE, "ClientRequestToken": uuid.uuid4().hex}, "PipelineExecutionArn",
        share=0.5),
    # Not in the default set: the cheapest signed call, to tell framework+SigV4 cost from handler cost.
    "GetCallerIdentity": Op("sts", "GetCallerIdentity", dict, "GetCallerIdentityResult"),
}
DEFAULT_OPS = ["DescribePipeline", "ListPipelines", "StartPipelineExecution"]


# --------------------------------------------------------------------------------------------------
# Building signed requests with botocore (outside any timed section)
# --------------------------------------------------------------------------------------------------
class RequestBuilder:
    """Serializes an operation with botocore's own serializer and signs it with botocore's SigV4Auth,
    then renders the raw HTTP/1.1 bytes, with the headers boto3 itself would send."""

    def __init__(self, port: int, access_key: str, secret_key: str) -> None:
        self.port = port
        self.endpoint = f"http://{HOST}:{port}"
        self.credentials = Credentials(access_key, secret_key)
        self.session = boto3.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                                     region_name=REGION)
        self._clients: dict[str, Any] = {}
        self.user_agent = (f"Boto3/{boto3.__version__} md/Botocore#{botocore.__version__} ua/2.1 "
                           f"lang/python#{platform.python_version()} Botocore/{botocore.__version__} stratum-bench")

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint)
        return self._clients[service]

    def build(self, op: Op) -> bytes:
        client = self._client(op.service)
        model = client.meta.service_model
        operation = model.operation_model(op.name)
        serialized = client._serializer.serialize_to_request(op.params(), operation)
        body = serialized["body"]
        headers = dict(serialized["headers"])
        if isinstance(body, dict):  # query protocol (STS, IAM)
            body = urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
        if isinstance(body, str):
            body = body.encode()
        path = serialized["url_path"]
        if serialized.get("query_string"):
            path += "?" + urlencode(serialized["query_string"], doseq=True)
        request = AWSRequest(method=serialized["method"], url=self.endpoint + path, data=body, headers=headers)
        request.headers["User-Agent"] = self.user_agent
        SigV4Auth(self.credentials, model.signing_name, REGION).add_auth(request)
        # boto3 adds these after signing (they are not signed).
        request.headers["amz-sdk-invocation-id"] = str(uuid.uuid4())
        request.headers["amz-sdk-request"] = "attempt=1; max=3"
        lines = [f"{serialized['method']} {path} HTTP/1.1", f"Host: {HOST}:{self.port}"]
        for name, value in request.headers.items():
            if name.lower() in ("host", "content-length"):
                continue
            lines.append(f"{name}: {value.decode() if isinstance(value, bytes) else value}")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def build_many(self, op: Op, n: int) -> list[bytes]:
        return [self.build(op) for _ in range(n)]


# --------------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, timeout: float = 2.0) -> int:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def send_raw(port: int, raw: bytes) -> int:
    """Send one raw request on a fresh connection; return the HTTP status."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(raw)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data[9:12]) if data.startswith(b"HTTP/") else 0


def tampered(raw: bytes) -> bytes:
    """The same request with the last hex digit of its signature changed."""
    i = raw.index(b"Signature=") + len(b"Signature=") + 63
    return raw[:i] + (b"0" if raw[i:i + 1] != b"0" else b"1") + raw[i + 1:]


@dataclass
class Server:
    name: str
    label: str
    port: int
    popen: subprocess.Popen[bytes]
    log_path: Path
    access_key: str = "bench"
    secret_key: str = "bench"
    notes: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu_seconds(self) -> float:
        """User+system CPU of the server process, its reaped children and its live descendants."""
        proc = psutil.Process(self.pid)
        t = proc.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in proc.children(recursive=True):
            try:
                ct = child.cpu_times()
                total += ct.user + ct.system
            except psutil.NoSuchProcess:
                pass
        return total

    def main_thread_cpu(self) -> float:
        """User+system CPU of the server's main thread (Stratum: the uvicorn event loop)."""
        for t in psutil.Process(self.pid).threads():
            if t.id == self.pid:
                return t.user_time + t.system_time
        return 0.0

    def settle(self, interval: float = 0.2, quiet: float = 0.004, limit: float = 10.0) -> float:
        """Wait until the server is idle (background work finished); return the CPU seconds seen."""
        start = self.cpu_seconds()
        last = start
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            time.sleep(interval)
            now = self.cpu_seconds()
            if now - last < quiet:
                break
            last = now
        return self.cpu_seconds() - start

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(f"{self.label} exited with {self.popen.returncode}; log tail:\n{self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def _wait_ready(server: Server, path: str, ok: Callable[[int], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            if ok(http_get(server.port, path)):
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.label} not ready after {timeout:.0f}s; log tail:\n{server.log_tail()}")


# `python -c` bootstrap for --cprofile: cProfile on the main thread (uvicorn's event loop) and on every
# thread started later (pipeline engine, worker pools), dumped at exit to PATH (all threads),
# PATH.main and PATH.threads. `python -m cProfile` would see the main thread only. Each profiler
# counts its own thread's CPU time (time.thread_time), not wall time, so time spent waiting on
# locks, sockets or SQLite's busy timeout does not show up as cost.
PROFILE_BOOTSTRAP = """
import cProfile, pstats, sys, threading, time
out = sys.argv[1]
argv = sys.argv[2:]
main_prof = cProfile.Profile(time.thread_time)
thread_profs = []
def _hook(frame, event, arg):
    prof = cProfile.Profile(time.thread_time)
    thread_profs.append(prof)
    prof.enable()
threading.setprofile(_hook)
main_prof.enable()
try:
    from stratum.cli import main
    rc = main(argv)
finally:
    main_prof.disable()
    main_prof.dump_stats(out + '.main')
    both = pstats.Stats(main_prof)
    done = []
    for prof in thread_profs:
        try:
            prof.create_stats()
            done.append(prof)
        except Exception:
            pass
    if done:
        pstats.Stats(*done).dump_stats(out + '.threads')
        both.add(*done)
    both.dump_stats(out)
sys.exit(rc)
"""


def start_stratum(workdir: Path, cprofile: str | None) -> Server:
    data_dir = workdir / "stratum-data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATUM_", "AWS_"))}
    serve = ["serve", "--data-dir", str(data_dir), "--port", str(port)]
    if cprofile:
        cmd = [str(VENV_BIN / "python"), "-c", PROFILE_BOOTSTRAP, cprofile, *serve]
    else:
        cmd = [str(VENV_BIN / "python"), "-m", "stratum.cli", *serve]
    log_path = workdir / "stratum.log"
    popen = subprocess.Popen(cmd, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=workdir)
    server = Server("stratum", "Stratum", port, popen, log_path)
    _wait_ready(server, "/_stratum/health", lambda status: status == 200)
    creds = configparser.ConfigParser()
    creds.read(data_dir / "aws" / "credentials")
    server.access_key = creds["dev"]["aws_access_key_id"]
    server.secret_key = creds["dev"]["aws_secret_access_key"]
    return server


def start_moto(workdir: Path) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOTO_", "AWS_"))}
    log_path = workdir / "moto.log"
    popen = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", HOST, "-p", str(port)],
                             stdout=log_path.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=workdir)
    server = Server("moto", "moto_server", port, popen, log_path)
    _wait_ready(server, "/moto-api/", lambda status: status < 500)
    return server


def setup_pipelines(server: Server, pipelines: bool) -> dict[str, Any]:
    """Create the execution role, the benchmark pipeline and the extra ones, with plain boto3."""
    session = boto3.Session(aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
                            region_name=REGION)
    endpoint = f"http://{HOST}:{server.port}"
    sts = session.client("sts", endpoint_url=endpoint)
    iam = session.client("iam", endpoint_url=endpoint)
    sm = session.client("sagemaker", endpoint_url=endpoint)
    identity = sts.get_caller_identity()
    role_arn = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=TRUST_POLICY)["Role"]["Arn"]
    if not pipelines:
        return {"account": identity["Account"], "caller": identity["Arn"], "role_arn": role_arn}
    for i in range(EXTRA_PIPELINES + 1):
        name = PIPELINE if i == 0 else f"bench-extra-{i:03d}"
        sm.create_pipeline(PipelineName=name, PipelineDefinition=DEFINITION, RoleArn=role_arn,
                           ClientRequestToken=uuid.uuid4().hex)
    described = sm.describe_pipeline(PipelineName=PIPELINE)
    listed = sm.list_pipelines(**OPS["ListPipelines"].params())
    return {"account": identity["Account"], "caller": identity["Arn"], "role_arn": role_arn,
            "pipeline_arn": described["PipelineArn"], "list_page_size": len(listed["PipelineSummaries"]),
            "list_has_next_token": "NextToken" in listed}


# --------------------------------------------------------------------------------------------------
# Phases
# --------------------------------------------------------------------------------------------------
@dataclass
class PhaseResult:
    server: str
    op: str
    concurrency: int
    requests: int
    elapsed: float
    server_cpu: float
    client_cpu: float
    ok: int
    errors: int
    connects: int
    detail: dict[str, Any]
    foreign_cores: float = 0.0  # CPU used by other processes on the machine during the phase
    main_thread_cpu: float = 0.0  # the server's main thread (Stratum: the event loop)
    deferred_cpu: float = 0.0  # server CPU after the last response, until idle (background work)

    @property
    def main_ms(self) -> float:
        return 1000.0 * self.main_thread_cpu / self.requests

    @property
    def deferred_ms(self) -> float:
        return 1000.0 * self.deferred_cpu / self.requests

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def cpu_ms(self) -> float:
        return 1000.0 * self.server_cpu / self.requests

    @property
    def client_cpu_ms(self) -> float:
        return 1000.0 * self.client_cpu / self.requests


def check_body(op: Op, body: str) -> str | None:
    if op.expect not in body:
        return f"200 response without {op.expect!r}: {body[:300]!r}"
    return None


def _busy_seconds() -> float:
    """Machine-wide busy CPU seconds (all cores), including time stolen by the hypervisor."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


class LoadGen:
    """The load generator's process (one persistent worker) and the CPU accounting around it."""

    def __init__(self) -> None:
        self.pool = concurrent.futures.ProcessPoolExecutor(max_workers=1,
                                                           mp_context=multiprocessing.get_context("spawn"))
        self.proc = psutil.Process(self.pool.submit(os.getpid).result())
        self.me = psutil.Process()

    def _own(self) -> float:
        a, b = self.proc.cpu_times(), self.me.cpu_times()
        return a.user + a.system + b.user + b.system

    def run(self, server: Server, requests: list[bytes], concurrency: int) -> tuple[dict[str, Any], float, float]:
        """(load generator result, server CPU seconds in the window, CPU cores used by other processes)."""
        main0 = server.main_thread_cpu()
        cpu0, own0, busy0 = server.cpu_seconds(), self._own(), _busy_seconds()
        t0 = time.perf_counter()
        out = self.pool.submit(loadgen.run_phase, HOST, server.port, requests, concurrency).result()
        wall = time.perf_counter() - t0
        cpu1, own1, busy1 = server.cpu_seconds(), self._own(), _busy_seconds()
        foreign = max(0.0, (busy1 - busy0) - (cpu1 - cpu0) - (own1 - own0)) / wall
        out["server_cpu_at_last_response"] = cpu1 - cpu0
        out["main_thread_cpu0"] = main0
        return out, cpu0, foreign

    def shutdown(self) -> None:
        self.pool.shutdown()


def run_phase(lg: LoadGen, server: Server, builder: RequestBuilder, op: Op, concurrency: int, n: int,
              retries: int = 0, noisy: float = 0.15) -> PhaseResult:
    """One timed phase; repeated (up to ``retries`` times) while other processes on the machine used
    more than ``noisy`` of a core during it, keeping the quietest attempt."""
    best: PhaseResult | None = None
    for _attempt in range(retries + 1):
        result = _run_phase_once(lg, server, builder, op, concurrency, n)
        if best is None or result.foreign_cores < best.foreign_cores:
            best = result
        if result.foreign_cores <= noisy or result.errors:
            break
        print(f"    (other processes used {result.foreign_cores:.2f} cores during {server.label} {op.name} "
              f"c={concurrency}: repeating)", flush=True)
    assert best is not None
    return best


def _run_phase_once(lg: LoadGen, server: Server, builder: RequestBuilder, op: Op, concurrency: int,
                    n: int) -> PhaseResult:
    requests = builder.build_many(op, n)  # signed right before the phase (valid 15 minutes)
    server.check_alive()
    server.settle()
    out, cpu0, foreign = lg.run(server, requests, concurrency)
    server.settle()  # CPU still spent on the phase's requests after the last response counts too
    cpu1 = server.cpu_seconds()
    main_cpu = server.main_thread_cpu() - out["main_thread_cpu0"]
    deferred = (cpu1 - cpu0) - out["server_cpu_at_last_response"]
    ok = out["statuses"].get(200, 0)
    problem = check_body(op, out["first_ok_body"]) if ok else None
    errors = n - ok
    if problem:
        out["errors"][problem] = out["errors"].get(problem, 0) + 1
        errors = max(errors, 1)
    return PhaseResult(server.name, op.name, concurrency, n, out["elapsed"], cpu1 - cpu0, out["client_cpu"],
                       ok, errors, out["connects"], out, foreign, main_cpu, deferred)


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def fmt_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = " | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))
    sep = "-+-".join("-" * w for w in widths)
    body = "\n".join(" | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
    return f"{line}\n{sep}\n{body}"


def report(results: list[PhaseResult], ops: list[str], concurrencies: list[int], servers: list[Server],
           setup: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    by_key = {(r.server, r.op, r.concurrency): r for r in results}
    have = {s.name for s in servers}
    out: list[str] = []
    verdicts: list[dict[str, Any]] = []
    for op_name in ops:
        title = op_name
        if op_name == "ListPipelines":
            title += " (summaries per page: " + ", ".join(
                f"{s.label} {setup[s.name].get('list_page_size', '?')}" for s in servers if s.name in setup) + ")"
        out.append(f"\n{title}")
        rows: list[list[str]] = []
        for c in concurrencies:
            s = by_key.get(("stratum", op_name, c))
            m = by_key.get(("moto", op_name, c))

            def cell(r: PhaseResult | None, fmt: str, attr: str) -> str:
                if r is None:
                    return "-"
                text = format(getattr(r, attr), fmt)
                return text + (" !ERR" if r.errors else "")

            row = [str(c), cell(s, ",.0f", "rps"), cell(m, ",.0f", "rps")]
            if s and m:
                thr_ratio = s.rps / m.rps if m.rps else float("inf")
                cpu_ratio = m.cpu_ms / s.cpu_ms if s.cpu_ms else float("inf")
                thr_ok = thr_ratio > 1.0 and not (s.errors or m.errors)
                cpu_ok = cpu_ratio >= TARGET_CPU_RATIO and not (s.errors or m.errors)
                if op_name == "DescribePipeline":
                    cpu_ok = cpu_ok and s.cpu_ms < TARGET_DESCRIBE_CPU_MS
                row += [f"{thr_ratio:.2f}x", cell(s, ".3f", "cpu_ms"), cell(m, ".3f", "cpu_ms"),
                        f"{cpu_ratio:.2f}x", verdict(thr_ok), verdict(cpu_ok)]
                verdicts.append({"op": op_name, "concurrency": c, "throughput_ratio": thr_ratio,
                                 "cpu_ratio": cpu_ratio, "throughput_pass": thr_ok, "cpu_pass": cpu_ok})
            else:
                row += ["-", cell(s, ".3f", "cpu_ms"), cell(m, ".3f", "cpu_ms"), "-", "-", "-"]
            rows.append(row)
        header = ["conc", "Stratum req/s", "moto req/s", "ratio", "Stratum CPU ms/req", "moto CPU ms/req",
                  "CPU ratio (moto/Stratum)", "throughput", "CPU target"]
        out.append(fmt_table(rows, header))
        # Load generator sanity line: its CPU per request, so a reader can see it was not saturated.
        parts = []
        for name in ("stratum", "moto"):
            if name not in have:
                continue
            rs = [by_key[(name, op_name, c)] for c in concurrencies if (name, op_name, c) in by_key]
            if rs:
                parts.append(f"{name}: " + ", ".join(
                    f"c={r.concurrency} {r.client_cpu_ms:.3f} ms/req ({100 * r.client_cpu / r.elapsed:.0f}% "
                    f"of a core, {r.connects} conn, others {r.foreign_cores:.2f} cores)" for r in rs))
        out.append("  load generator CPU (and CPU of other processes on the machine): " + "; ".join(parts))
    return "\n".join(out), verdicts


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu_model, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "boto3": boto3.__version__, "loadavg_at_start": os.getloadavg()}


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------
def run_round(lg: LoadGen, servers: list[Server], builders: dict[str, RequestBuilder], ops: list[str],
              concurrencies: list[int], n: int, args: argparse.Namespace, results: list[PhaseResult]) -> None:
    """One round of timed phases: every operation and concurrency, the servers alternating."""
    for op_name in ops:
        op = OPS[op_name]
        count = max(1, int(n * op.share))
        for c in concurrencies:
            for server in servers:
                r = run_phase(lg, server, builders[server.name], op, c, count, args.retries, args.noisy)
                results.append(r)
                flag = f"  !!! {r.errors} ERRORS" if r.errors else ""
                print(f"  {op_name:<24} c={c:<3} {server.label:<11} {r.rps:>8,.0f} req/s  "
                      f"server {r.cpu_ms:6.3f} ms/req (main thread {r.main_ms:5.3f}, other threads "
                      f"{r.cpu_ms - r.main_ms:5.3f}; after last response {r.deferred_ms:5.3f})  "
                      f"client {r.client_cpu_ms:6.3f} ms/req  "
                      f"other processes {r.foreign_cores:4.2f} cores{flag}", flush=True)


def combine_rounds(results: list[PhaseResult]) -> list[PhaseResult]:
    """One result per (server, operation, concurrency): with several rounds, the median CPU per
    request and the median throughput over the rounds (errors and requests summed, so that an
    error in any round still marks the cell)."""
    groups: dict[tuple[str, str, int], list[PhaseResult]] = {}
    for r in results:
        groups.setdefault((r.server, r.op, r.concurrency), []).append(r)
    combined = []
    for rounds in groups.values():
        if len(rounds) == 1:
            combined.append(rounds[0])
            continue
        by_cpu = sorted(rounds, key=lambda r: r.cpu_ms)
        mid = by_cpu[len(by_cpu) // 2]
        rps = statistics.median(r.rps for r in rounds)
        combined.append(dataclasses.replace(
            mid, elapsed=mid.requests / rps if rps else mid.elapsed,
            errors=sum(r.errors for r in rounds),
            foreign_cores=max(r.foreign_cores for r in rounds),
            detail={**mid.detail, "rounds": [{"cpu_ms": r.cpu_ms, "rps": r.rps} for r in rounds]}))
    return combined


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000,
                        help="requests per timed phase for Describe/List (StartPipelineExecution: half)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 requests per phase, short warm-up")
    parser.add_argument("--concurrency", default="1,4,16", help="comma-separated client counts (1,4,16)")
    parser.add_argument("--ops", default=",".join(DEFAULT_OPS),
                        help=f"comma-separated operations among {', '.join(OPS)}")
    parser.add_argument("--servers", default="stratum,moto", help="stratum,moto (default both)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed requests per operation and server")
    parser.add_argument("--list-max-results", type=int, metavar="N",
                        help="send MaxResults=N with ListPipelines (default: none, each server's default page)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--cprofile", metavar="PATH",
                        help="run Stratum under cProfile (all threads), writing PATH, PATH.main and "
                             "PATH.threads on exit (inflates its CPU)")
    parser.add_argument("--retries", type=int, default=1,
                        help="repeat a phase up to N times while other processes load the machine (1)")
    parser.add_argument("--noisy", type=float, default=0.15, metavar="CORES",
                        help="CPU of other processes during a phase above which it is repeated (0.15)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every timed phase N times, in N interleaved rounds; each figure is then "
                             "the median over the rounds (1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs)")
    args = parser.parse_args()

    n = 200 if args.quick else args.requests
    warmup = args.warmup if args.warmup is not None else (50 if args.quick else 300)
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    ops = [o for o in args.ops.split(",") if o]
    unknown = [o for o in ops if o not in OPS]
    if unknown:
        parser.error(f"unknown operation(s): {', '.join(unknown)}")
    wanted = [s for s in args.servers.split(",") if s]
    if args.list_max_results:
        max_results = args.list_max_results
        OPS["ListPipelines"] = Op("sagemaker", "ListPipelines", lambda: {"MaxResults": max_results},
                                  "PipelineSummaries")
    machine = machine_info()
    started = datetime.now(UTC)

    print(f"Stratum API benchmark  {started:%Y-%m-%d %H:%M} UTC")
    print(f"machine: nproc={machine['nproc']}  cpu={machine['cpu'] or '?'}  python={machine['python']} "
          f"({machine['implementation']})  boto3={machine['boto3']}  "
          f"loadavg={'/'.join(f'{x:.2f}' for x in machine['loadavg_at_start'])}")
    print(f"requests per phase: {n} (StartPipelineExecution: {max(1, int(n * 0.5))}), warm-up {warmup} per op; "
          f"concurrency {concurrencies}")

    workdir = Path(tempfile.mkdtemp(prefix="stratum-bench-"))
    servers: list[Server] = []
    results: list[PhaseResult] = []
    setup: dict[str, Any] = {}
    lg = LoadGen()
    try:
        if "stratum" in wanted:
            servers.append(start_stratum(workdir, args.cprofile))
        if "moto" in wanted:
            servers.append(start_moto(workdir))
        builders: dict[str, RequestBuilder] = {}
        for server in servers:
            try:
                setup[server.name] = setup_pipelines(
                    server, any(OPS[o].service == "sagemaker" for o in ops))
            except botocore.exceptions.ClientError as exc:
                raise SystemExit(f"setup failed on {server.label}: {exc}") from None
            builders[server.name] = RequestBuilder(server.port, server.access_key, server.secret_key)
            info = setup[server.name]
            page = (f"; ListPipelines default page = {info['list_page_size']} summaries"
                    f"{' (+NextToken)' if info['list_has_next_token'] else ''}") if "list_page_size" in info else ""
            print(f"{server.label:<11} pid {server.pid} port {server.port}: caller {info['caller']}{page}")
            probe = builders[server.name].build(OPS[ops[0]])
            good, bad_sig = send_raw(server.port, probe), send_raw(server.port, tampered(probe))
            info["signature_check"] = {"valid": good, "tampered": bad_sig}
            print(f"{'':<11} {ops[0]} with a valid signature: HTTP {good}; with a tampered one: HTTP {bad_sig}"
                  f" ({'signatures verified' if bad_sig in (400, 403) else 'signatures NOT checked'})")
        # Idle CPU of each server: tells whether background activity pollutes the per-request figures.
        for server in servers:
            server.settle()
            c0 = server.cpu_seconds()
            time.sleep(2.0)
            idle = (server.cpu_seconds() - c0) / 2.0
            server.notes.append(f"idle CPU {1000 * idle:.1f} ms/s")
            print(f"{server.label:<11} idle CPU: {1000 * idle:.1f} ms per second")
        # Warm-up: the load generator process and each server, every operation, untimed.
        for server in servers:
            for op_name in ops:
                r = run_phase(lg, server, builders[server.name], OPS[op_name], 4,
                              max(1, int(warmup * OPS[op_name].share)))
                if r.errors:
                    print(f"!!! warm-up {op_name} on {server.label}: {r.errors} errors: "
                          f"{r.detail['errors']} {r.detail['error_samples'][:2]}")
        # Timed phases, the two servers alternating phase by phase; with --rounds, the whole
        # sequence again, so that every cell's rounds are spread over the run.
        for round_no in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f"round {round_no}/{args.rounds}", flush=True)
            run_round(lg, servers, builders, ops, concurrencies, n, args, results)
    finally:
        lg.shutdown()
        for server in servers:
            server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"(kept {workdir})")

    if args.rounds > 1:
        print(f"\nEach figure below is the median over {args.rounds} rounds.")
    table, verdicts = report(combine_rounds(results), ops, concurrencies, servers, setup)
    print(table)
    pages = {name: info["list_page_size"] for name, info in setup.items() if "list_page_size" in info}
    if "ListPipelines" in ops and len(set(pages.values())) > 1:
        print(f"\nNOTE: ListPipelines pages differ ({', '.join(f'{k} {v} summaries' for k, v in pages.items())}"
              f"{', MaxResults=' + str(args.list_max_results) if args.list_max_results else ', default MaxResults'}):"
              f" the ListPipelines rows do not compare equal work; see --list-max-results.")
    print(f"\nTarget: {TARGETS}")
    for v in verdicts:
        print(f"  {v['op']:<24} c={v['concurrency']:<3} throughput {v['throughput_ratio']:.2f}x "
              f"{verdict(v['throughput_pass'])}   CPU {v['cpu_ratio']:.2f}x"
              f"{' (<0.5 ms)' if v['op'] == 'DescribePipeline' else ''} {verdict(v['cpu_pass'])}")
    if verdicts:
        all_pass = all(v["throughput_pass"] and v["cpu_pass"] for v in verdicts)
        print(f"  overall: {verdict(all_pass)}")

    noisy = [r for r in results if r.foreign_cores > args.noisy]
    if noisy:
        print(f"\nWARNING: other processes used more than {args.noisy} of a core during "
              f"{len(noisy)} phase(s), even after retries; their throughput figures are understated:")
        for r in noisy:
            print(f"  {r.server} {r.op} c={r.concurrency}: {r.foreign_cores:.2f} cores")

    bad = [r for r in results if r.errors]
    if bad:
        print("\n" + "!" * 100)
        print("!!! THE BENCHMARK HAD ERRORS: the figures of these phases are NOT valid")
        for r in bad:
            print(f"!!!   {r.server} {r.op} c={r.concurrency}: {r.errors}/{r.requests} failed; "
                  f"statuses {r.detail['statuses']} {r.detail['errors']}")
            for status, body in r.detail["error_samples"][:2]:
                print(f"!!!     HTTP {status}: {body[:300]}")
        print("!" * 100)

    if args.json:
        doc = {
            "started": started.isoformat(), "machine": machine, "requests": n, "warmup": warmup,
            "concurrency": concurrencies, "rounds": args.rounds, "targets": TARGETS, "setup": setup,
            "list_max_results": args.list_max_results,
            "servers": {s.name: {"label": s.label, "notes": s.notes} for s in servers},
            "results": [{"server": r.server, "op": r.op, "concurrency": r.concurrency, "requests": r.requests,
                         "elapsed_s": r.elapsed, "rps": r.rps, "server_cpu_ms_per_req": r.cpu_ms,
                         "client_cpu_ms_per_req": r.client_cpu_ms, "ok": r.ok, "errors": r.errors,
                         "connections": r.connects, "statuses": r.detail["statuses"],
                         "other_processes_cores": r.foreign_cores,
                         "server_main_thread_cpu_ms_per_req": r.main_ms,
                         "server_cpu_after_last_response_ms_per_req": r.deferred_ms,
                         "error_detail": r.detail["errors"]} for r in results],
            "verdicts": verdicts,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2))
        print(f"\nwrote {args.json}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
