"""InvokeEndpoint latency and throughput, side by side with calling the same model server directly.

For each concurrency (default 1 and 8 clients) it times the same number of requests two ways, in
alternating phases: POST /invocations straight to the model server, and InvokeEndpoint through
Stratum (SigV4-signed, authorized, forwarded to that model server). It prints p50 / p99 latency
and requests per second of both and the difference: what Stratum adds to an invocation.

* The endpoint is created through the real API (CreateModel / CreateEndpointConfig /
  CreateEndpoint, then the endpoint_in_service waiter) and the model server the hosting supervisor
  started for it is found among the server's child processes (its --port). ``--static-route``
  instead runs the server with a route to a model server this script starts itself (for a server
  without the endpoint control plane; the route is what the supervisor would publish).
* The model server is Stratum's own (stratum.algorithms.serving) with an inference script that
  answers its input unchanged, so the difference is the forwarding path, not the model.
* The Stratum server's CPU time (user + system, from psutil) per InvokeEndpoint is printed too.
* Requests are built and signed before each phase with botocore's serializer and SigV4Auth (one
  signed request per timed request); a separate process sends them over keep-alive connections,
  each connection one request after the other, and records each request's latency.

Usage: python bench/hosting.py [--requests 2000] [--concurrency 1,8] [--payload 64] [--rounds 2]
       python bench/hosting.py --static-route
"""

from __future__ import annotations

import argparse
import asyncio
import configparser
import io
import json
import multiprocessing
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import psutil
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
REGION = "us-east-1"
ENDPOINT = "bench-endpoint"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
SCRIPT = ("def model_fn(model_dir):\n    return None\n\n\n"
          "def transform_fn(model, body, content_type, accept):\n    return body, content_type\n")
TARGET = "Stratum adds under 1 ms at p50 and under 5 ms at p99 at 8 clients"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 90.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


# ------------------------------------------------------------------------------------ servers
def start_model_server(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    model_dir = workdir / "model"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "code" / "inference.py").write_text(SCRIPT)
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src"), "SAGEMAKER_PROGRAM": "inference.py"}
    argv = [sys.executable, "-m", "stratum.algorithms.serving", "--runtime", "python", "--image", IMAGE, "--port",
            str(port), "--model-dir", str(model_dir)]
    proc = subprocess.Popen(argv, env=env,
                            stdout=open(workdir / "model.log", "ab"), stderr=subprocess.STDOUT)
    wait_http(f"http://{HOST}:{port}/ping")
    return proc, port


def start_stratum(workdir: Path, port: int, static_route: dict[str, Any] | None,
                  profile: str | None = None) -> subprocess.Popen[bytes]:
    data_dir = workdir / "data"
    if static_route is None:
        argv = [sys.executable, "-m", "stratum.cli", "serve", "--data-dir", str(data_dir), "--port", str(port)]
    else:
        routes = workdir / "routes.json"
        routes.write_text(json.dumps(static_route))
        argv = [sys.executable, str(Path(__file__).resolve()), "--serve-static", str(routes), "--data-dir",
                str(data_dir), "--port", str(port)] + (["--profile", profile] if profile else [])
    proc = subprocess.Popen(argv, stdout=open(workdir / "server.log", "ab"), stderr=subprocess.STDOUT,
                            env={**_env(), "PYTHONPATH": str(ROOT / "src")})
    wait_http(f"http://{HOST}:{port}/_stratum/health")
    return proc


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def serve_static(routes_file: Path, data_dir: Path, port: int, profile: str | None = None) -> None:
    """A Stratum server whose endpoint routes come from a file (for --static-route)."""
    import uvicorn

    sys.path.insert(0, str(ROOT / "src"))
    from stratum.config import Settings
    from stratum.hosting.routes import EndpointRoute, InstanceRoute, VariantRoute
    from stratum.server.asgi import StratumApp
    from stratum.server.runner import http_config, prepare

    spec = json.loads(routes_file.read_text())
    state = prepare(Settings(data_dir=data_dir, port=port))
    account = _account_id(state, "dev")
    variants = tuple(VariantRoute(v["name"], 1.0, ("primary",), ("bench",),
                                  (InstanceRoute("i-0", {"primary": v["url"]}),)) for v in spec["variants"])
    route = EndpointRoute(f"arn:aws:sagemaker:{REGION}:{account}:endpoint/{spec['name']}", spec["name"], account,
                          REGION, "InService", "Single", variants)

    class Static:
        def route(self, account_id: str, region: str, name: str) -> EndpointRoute | None:
            return route if (account_id, region, name) == (account, REGION, spec["name"]) else None

    if getattr(state, "hosting", None) is None:
        state.hosting = Static()  # type: ignore[attr-defined]
    else:  # a server with the control plane: its supervisor runs, but invocations follow this route
        state.hosting.route = Static().route  # type: ignore[method-assign]
    if profile:  # the event loop's thread, in CPU time; written when the server stops
        import cProfile

        profiler = cProfile.Profile(time.thread_time)

        class _Dump:  # uvicorn ends the process with the signal it caught: written at shutdown
            name = "profile"

            def start(self) -> None:
                pass

            def stop(self) -> None:
                profiler.dump_stats(profile)

        state.add_background(_Dump())
        profiler.enable()
    uvicorn.Server(http_config(StratumApp(state), HOST, port)).run()


def _account_id(state: Any, name: str) -> str:
    from stratum.services.organizations.accounts import list_accounts

    with state.db.read() as conn:
        return next(a["id"] for a in list_accounts(conn) if a["name"] == name)


def create_endpoint(session: boto3.Session, endpoint_url: str) -> None:
    """Model, endpoint config and endpoint through the SageMaker API; waits until InService."""
    sm = session.client("sagemaker", endpoint_url=endpoint_url)
    s3 = session.client("s3", endpoint_url=endpoint_url)
    iam = session.client("iam", endpoint_url=endpoint_url)
    role = iam.create_role(RoleName="bench-hosting", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    iam.attach_role_policy(RoleName="bench-hosting", PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")
    bucket = "sagemaker-bench-hosting"
    s3.create_bucket(Bucket=bucket)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(SCRIPT)
        tar.addfile(info, io.BytesIO(SCRIPT.encode()))
    s3.put_object(Bucket=bucket, Key="model.tar.gz", Body=buffer.getvalue())
    sm.create_model(ModelName=ENDPOINT, ExecutionRoleArn=role, PrimaryContainer={
        "Image": IMAGE, "ModelDataUrl": f"s3://{bucket}/model.tar.gz",
        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"}})
    sm.create_endpoint_config(EndpointConfigName=ENDPOINT, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": ENDPOINT, "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=ENDPOINT)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=ENDPOINT, WaiterConfig={"Delay": 1, "MaxAttempts": 300})


def model_server_port(server: subprocess.Popen[bytes]) -> int:
    """The port of the model server the supervisor started (a descendant of the server process)."""
    for child in psutil.Process(server.pid).children(recursive=True):
        argv = child.cmdline()
        if "stratum.algorithms.serving" in argv and "--port" in argv:
            return int(argv[argv.index("--port") + 1])
    raise RuntimeError("no model server process found under the Stratum server")


# ------------------------------------------------------------------------------------ requests
def signed_invocations(credentials: Credentials, port: int, payload: bytes, n: int) -> list[bytes]:
    session = boto3.Session(region_name=REGION)
    client = session.client("sagemaker-runtime", endpoint_url=f"http://{HOST}:{port}", aws_access_key_id="x",
                            aws_secret_access_key="x")
    operation = client.meta.service_model.operation_model("InvokeEndpoint")
    out = []
    for _ in range(n):
        serialized = client._serializer.serialize_to_request(
            {"EndpointName": ENDPOINT, "Body": payload, "ContentType": "text/csv", "Accept": "text/csv"}, operation)
        body = serialized["body"]
        request = AWSRequest(method="POST", url=f"http://{HOST}:{port}{serialized['url_path']}", data=body,
                             headers=dict(serialized["headers"]))
        SigV4Auth(credentials, "sagemaker", REGION).add_auth(request)
        lines = [f"POST {serialized['url_path']} HTTP/1.1", f"Host: {HOST}:{port}"]
        lines += [f"{k}: {v.decode() if isinstance(v, bytes) else v}" for k, v in request.headers.items()
                  if k.lower() not in ("host", "content-length")]
        lines.append(f"Content-Length: {len(body)}")
        out.append(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    return out


def direct_invocations(port: int, payload: bytes, n: int) -> list[bytes]:
    head = (f"POST /invocations HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: text/csv\r\nAccept: text/csv\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()
    return [head + payload] * n


# ------------------------------------------------------------------------------------ load
async def _connection(port: int, requests: list[bytes], latencies: list[float], statuses: dict[int, int],
                      opened: asyncio.Event, ready: list[int], concurrency: int) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    ready.append(1)
    if len(ready) == concurrency:
        opened.set()
    await opened.wait()  # every connection is open before the first request: connecting is not timed
    for raw in requests:
        started = time.perf_counter()
        writer.write(raw)
        status_line = await reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1
    writer.close()


def _phase(port: int, requests: list[bytes], concurrency: int, out: Any) -> None:
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # pragma: no cover
        run = asyncio.run
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def main() -> float:
        shares = [requests[k::concurrency] for k in range(concurrency)]
        opened, ready = asyncio.Event(), []
        tasks = [asyncio.ensure_future(_connection(port, share, latencies, statuses, opened, ready, concurrency))
                 for share in shares]
        await opened.wait()
        started = time.perf_counter()
        await asyncio.gather(*tasks)
        return time.perf_counter() - started

    elapsed = run(main())
    out.put({"elapsed": elapsed, "latencies": latencies, "statuses": statuses})


def run_phase(port: int, requests: list[bytes], concurrency: int) -> dict[str, Any]:
    """The requests sent from a separate process (its CPU is not the server's)."""
    queue: Any = multiprocessing.get_context("fork").Queue()
    proc = multiprocessing.get_context("fork").Process(target=_phase, args=(port, requests, concurrency, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return dict(result)


def _cpu(server: subprocess.Popen[bytes]) -> tuple[float, float]:
    """User and system CPU seconds of the Stratum server process (its own threads, not its children)."""
    times = psutil.Process(server.pid).cpu_times()
    return float(times.user), float(times.system)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ------------------------------------------------------------------------------------ main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per phase")
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--payload", type=int, default=64, help="request body bytes")
    parser.add_argument("--rounds", type=int, default=2, help="phases per path and concurrency, interleaved")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--static-route", action="store_true",
                        help="run the server with a published route instead of creating the endpoint")
    parser.add_argument("--profile", metavar="PATH",
                        help="(with --static-route) cProfile the server's event loop thread into PATH")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--serve-static", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_static:
        serve_static(Path(args.serve_static), Path(args.data_dir), args.port, args.profile)
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="stratum-bench-hosting-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        port = free_port()
        if args.static_route:
            model, model_port = start_model_server(workdir)
            processes.append(model)
            server = start_stratum(workdir, port, {"name": ENDPOINT, "variants": [
                {"name": "AllTraffic", "url": f"http://{HOST}:{model_port}"}]}, args.profile)
            processes.insert(0, server)
        else:
            server = start_stratum(workdir, port, None)
            processes.append(server)
        creds = configparser.ConfigParser()
        creds.read(workdir / "data" / "aws" / "credentials")
        ak, sk = creds["dev"]["aws_access_key_id"], creds["dev"]["aws_secret_access_key"]
        credentials = Credentials(ak, sk)
        if not args.static_route:
            create_endpoint(boto3.Session(aws_access_key_id=ak, aws_secret_access_key=sk, region_name=REGION),
                            f"http://{HOST}:{port}")
            model_port = model_server_port(server)
        payload = b",".join(b"1.5" for _ in range(max(1, args.payload // 4)))[:args.payload]
        print(f"model server on port {model_port}; Stratum on port {port}; payload {len(payload)} bytes; "
              f"{args.requests} requests per phase, {args.rounds} round(s)", flush=True)
        run_phase(model_port, direct_invocations(model_port, payload, args.warmup), 2)
        run_phase(port, signed_invocations(credentials, port, payload, args.warmup), 2)

        results: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            for _ in range(args.rounds):
                for path in ("direct", "stratum"):
                    requests = (direct_invocations(model_port, payload, args.requests) if path == "direct"
                                else signed_invocations(credentials, port, payload, args.requests))
                    cpu0 = _cpu(server)
                    result = run_phase(model_port if path == "direct" else port, requests, concurrency)
                    cpu1 = _cpu(server)
                    result["server_cpu_ms"] = (sum(cpu1) - sum(cpu0)) * 1000 / len(requests)
                    result["server_sys_ms"] = (cpu1[1] - cpu0[1]) * 1000 / len(requests)
                    bad = {s: n for s, n in result["statuses"].items() if s != 200}
                    if bad:
                        print(f"ERROR: {path} at {concurrency} clients answered {bad}", flush=True)
                        return 1
                    results.setdefault((path, concurrency), []).append(result)
        return report(results, args.json)
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if args.keep:
            print(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def report(results: dict[tuple[str, int], list[dict[str, Any]]], json_path: str | None) -> int:
    rows = []
    summary: dict[str, Any] = {}
    ok = True
    for concurrency in sorted({c for _, c in results}):
        figures = {}
        for path in ("direct", "stratum"):
            runs = results[(path, concurrency)]
            latencies = [x for r in runs for x in r["latencies"]]
            rps = statistics.median(len(r["latencies"]) / r["elapsed"] for r in runs)
            figures[path] = (percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000, rps)
            cpu = statistics.median(r["server_cpu_ms"] for r in runs)
            system = statistics.median(r["server_sys_ms"] for r in runs)
            rows.append(f"{path:>8} {concurrency:>3} clients  p50 {figures[path][0]:7.3f} ms  "
                        f"p99 {figures[path][1]:7.3f} ms  {rps:8.0f} req/s"
                        + (f"  Stratum CPU {cpu:.3f} ms/req ({system:.3f} system)" if path == "stratum" else ""))
        added50 = figures["stratum"][0] - figures["direct"][0]
        added99 = figures["stratum"][1] - figures["direct"][1]
        rows.append(f"   added {concurrency:>3} clients  p50 {added50:+7.3f} ms  p99 {added99:+7.3f} ms")
        summary[str(concurrency)] = {"direct": figures["direct"], "stratum": figures["stratum"],
                                     "added_p50_ms": added50, "added_p99_ms": added99}
        if concurrency == 8:
            ok = added50 < 1.0 and added99 < 5.0
    print("\n".join(rows))
    slow_model = any(v["direct"][0] > 20 for v in summary.values())
    if slow_model:
        print("NOTE: the model server itself takes over 20 ms per answer: the difference is measured, but "
              "the target says little about the forwarding")
    print(f"target: {TARGET}: {'met' if ok else 'NOT met'}{' (slow model server)' if slow_model else ''}")
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
