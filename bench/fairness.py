"""Fairness benchmark: one client's largest inputs must not stall another account's requests.

A victim client (account "dev") sends DescribePipeline at a steady rate and records every request's
latency, first on an idle server, then while an attacker (account "test", its own connections and
process) sends, back to back, the largest inputs the API takes:

* IAM TagUser with 50 tags of the maximum key and value sizes (accepted), and with 8,000 tags
  (403 KB; refused with ValidationError, the request that froze the server for 13 s);
* IAM PutRolePolicy with an inline policy at the role quota (10,240 characters without
  whitespace, wildcard-heavy), CreatePolicyVersion + DeletePolicyVersion with a managed policy at
  its quota (6,144), and PutRolePolicy with a document at the model's 131,072-character maximum
  (over the quota: refused with LimitExceeded where the quota is enforced);
* SageMaker UpdatePipeline with a definition just under the 1 MB maximum;
* S3 HeadObject of a 1,024-byte key by a user whose policy has dozens of five-star wildcard
  patterns that never match (the case that took 18 s per request with backtracking regexes).

Both run in the same server in the same run; the figures side by side are the victim's
DescribePipeline latency percentiles idle and under load (target: p99 under 20 ms loaded), and
what each attacker request cost. Loopback only; every phase is bounded in time and requests.

Usage: python bench/fairness.py [--duration 15] [--rate 100] [--attackers 2] [--json out.json]
       python bench/fairness.py --src /path/to/other/checkout     # the same run against other code
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
import api  # noqa: E402  (bench/api.py: server start-up, request building)
from harness import account_keys  # noqa: E402

HOST = api.HOST
REGION = api.REGION
TARGET_P99_MS = 20.0
VICTIM_PIPELINE = "fair-victim"
BIG_PIPELINE = "fair-big"
KEY_LENGTH = 1024  # S3's maximum key length in bytes (--key-length)
VICTIM_TIMEOUT = 120.0  # a victim request unanswered this long ends the phase (counted as a timeout)


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------
def max_tags(n: int) -> list[dict[str, str]]:
    """n tags with IAM's maximum key (128) and value (256) lengths."""
    return [{"Key": f"k{i:05d}".ljust(128, "k"), "Value": "v" * 256} for i in range(n)]


def wildcard_policy(budget: int, bucket: str) -> str:
    """An identity policy of about ``budget`` non-whitespace characters: Resource patterns with five
    or more stars that a long key of "a"s never matches (worst case for a backtracking matcher)."""
    patterns: list[str] = []
    statement = {"Effect": "Allow", "Action": ["s3:GetObject", "s3:Put*"], "Resource": patterns}
    doc = {"Version": "2012-10-17", "Statement": [statement]}
    i = 0
    while True:
        pattern = f"arn:aws:s3:::{bucket}/*a*a*a*a*a*{i:03d}b"
        patterns.append(pattern)
        if len(json.dumps(doc, separators=(",", ":"))) > budget:
            patterns.pop()
            return json.dumps(doc, separators=(",", ":"))
        i += 1


def padded_policy(size: int) -> str:
    """A valid identity policy of exactly ``size`` characters (none of them whitespace)."""
    head = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/'
    tail = '"}]}'
    return head + "x" * (size - len(head) - len(tail)) + tail


def big_definition(limit: int = 1_048_576) -> str:
    """A valid pipeline definition just under SageMaker's 1 MB maximum: Fail steps in a chain."""
    steps: list[dict[str, Any]] = []
    doc = {"Version": "2020-12-01", "Parameters": [{"Name": "P", "Type": "String", "DefaultValue": "x"}],
           "Steps": steps}
    message = "m" * 900
    size = len(json.dumps(doc))
    i = 0
    while True:
        step: dict[str, Any] = {"Name": f"S{i:04d}", "Type": "Fail", "Arguments": {"ErrorMessage": message}}
        if i:
            step["DependsOn"] = [f"S{i - 1:04d}"]
        grow = len(json.dumps(step)) + 2
        if size + grow > limit - 64:
            return json.dumps(doc)
        steps.append(step)
        size += grow
        i += 1


# --------------------------------------------------------------------------------------------------
# Raw requests
# --------------------------------------------------------------------------------------------------
@dataclass
class Kind:
    name: str
    service: str
    operation: str
    params: dict[str, Any]
    note: str
    creds: str = "attacker"  # which credentials sign it
    unique: str = ""  # a parameter made unique per request (e.g. a name to create), else ""


class Signer(api.RequestBuilder):
    """bench/api.py's builder with S3's signer (x-amz-content-sha256) for S3 requests."""

    def build_params(self, service: str, operation: str, params: dict[str, Any]) -> bytes:
        if service != "s3":
            return self.build(api.Op(service, operation, lambda: params, ""))
        client = self._client(service)
        model = client.meta.service_model
        serialized = client._serializer.serialize_to_request(params, model.operation_model(operation))
        body = serialized["body"] or b""
        path = serialized["url_path"]
        request = AWSRequest(method=serialized["method"], url=self.endpoint + path, data=body,
                             headers=dict(serialized["headers"]))
        request.headers["User-Agent"] = self.user_agent
        S3SigV4Auth(self.credentials, "s3", REGION).add_auth(request)
        lines = [f"{serialized['method']} {path} HTTP/1.1", f"Host: {HOST}:{self.port}"]
        for name, value in request.headers.items():
            if name.lower() not in ("host", "content-length"):
                lines.append(f"{name}: {value.decode() if isinstance(value, bytes) else value}")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def read_response(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    """Read one HTTP/1.1 response with Content-Length from a keep-alive socket."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    head_end = buf.index(b"\r\n\r\n")
    head = bytes(buf[:head_end]).lower()
    status = int(head[9:12])
    i = head.find(b"\r\ncontent-length:")
    length = int(head[i + 17:head.find(b"\r\n", i + 2) if head.find(b"\r\n", i + 2) > 0 else len(head)]) \
        if i >= 0 else 0
    end = head_end + 4 + length
    while len(buf) < end:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    body = bytes(buf[head_end + 4:end])
    del buf[:end]
    return status, body


# --------------------------------------------------------------------------------------------------
# The two clients (each in its own process)
# --------------------------------------------------------------------------------------------------
def victim(port: int, requests: list[bytes], rate: float, start_at: float) -> dict[str, Any]:
    """Send ``requests`` one at a time at ``rate`` per second from ``start_at``; every latency in ms.

    A latency runs from the request's scheduled time, not from when it could be sent: when the
    server stalls, the requests that should have gone out meanwhile count their wait too (else one
    request would carry a 70 s stall and the rest look fast: "coordinated omission"). The time
    from sending to the answer is kept as ``service_ms``.
    """
    while time.time() < start_at:
        time.sleep(0.001)
    sock = socket.create_connection((HOST, port), timeout=VICTIM_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    latencies: list[float] = []
    service: list[float] = []
    statuses: Counter[int] = Counter()
    interval = 1.0 / rate
    t0 = time.perf_counter()
    for i, raw in enumerate(requests):
        due = t0 + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent = time.perf_counter()
        try:
            sock.sendall(raw)
            status, _ = read_response(sock, buf)
        except OSError:  # timed out: the server is stalled; stop here, counting it
            latencies.append(1000.0 * (time.perf_counter() - due))
            statuses[0] += 1
            break
        done = time.perf_counter()
        latencies.append(1000.0 * (done - due))
        service.append(1000.0 * (done - sent))
        statuses[status] += 1
    sock.close()
    return {"latencies_ms": latencies, "service_ms": service, "statuses": dict(statuses),
            "elapsed": time.perf_counter() - t0}


def _attack_connection(port: int, kinds: list[tuple[str, list[bytes]]], conn_id: int, connections: int,
                       deadline: float, out: list[tuple[str, int, float]]) -> None:
    sock = socket.create_connection((HOST, port), timeout=300)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    i = conn_id
    while time.time() < deadline:
        name, variants = kinds[i % len(kinds)]
        raw = variants[((i // len(kinds)) * connections + conn_id) % len(variants)]
        i += 1
        sent = time.perf_counter()
        try:
            sock.sendall(raw)
            status, _ = read_response(sock, buf)
        except OSError:
            out.append((name, 0, 1000.0 * (time.perf_counter() - sent)))
            sock.close()
            sock = socket.create_connection((HOST, port), timeout=300)
            buf = bytearray()
            continue
        out.append((name, status, 1000.0 * (time.perf_counter() - sent)))
    sock.close()


def attacker(port: int, kinds: list[tuple[str, list[bytes]]], connections: int, start_at: float,
             deadline: float) -> list[tuple[str, int, float]]:
    """``connections`` keep-alive connections sending the kinds round-robin until ``deadline``."""
    while time.time() < start_at:
        time.sleep(0.001)
    out: list[tuple[str, int, float]] = []
    threads = [threading.Thread(target=_attack_connection, args=(port, kinds, k, connections, deadline, out))
               for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


# --------------------------------------------------------------------------------------------------
# Set-up
# --------------------------------------------------------------------------------------------------
def client(port: int, service: str, keys: tuple[str, str]) -> Any:
    return boto3.client(service, endpoint_url=f"http://{HOST}:{port}", region_name=REGION,
                        aws_access_key_id=keys[0], aws_secret_access_key=keys[1],
                        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"},
                                      read_timeout=300))


def setup(port: int, victim_keys: tuple[str, str], attacker_keys: tuple[str, str]) -> dict[str, Any]:
    """Victim: a pipeline. Attacker: a user and a role to tag and give policies, a managed policy,
    a pipeline to update, a bucket, and a user whose policy is wildcard-heavy (with its own key)."""
    v_iam, v_sm = client(port, "iam", victim_keys), client(port, "sagemaker", victim_keys)
    trust = api.TRUST_POLICY
    role = v_iam.create_role(RoleName="fair-victim-role", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    v_sm.create_pipeline(PipelineName=VICTIM_PIPELINE, PipelineDefinition=api.DEFINITION, RoleArn=role)
    iam, sm, s3 = (client(port, s, attacker_keys) for s in ("iam", "sagemaker", "s3"))
    account = client(port, "sts", attacker_keys).get_caller_identity()["Account"]
    a_role = iam.create_role(RoleName="fair-role", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.create_user(UserName="fair-tags")
    sm.create_pipeline(PipelineName=BIG_PIPELINE, PipelineDefinition=api.DEFINITION, RoleArn=a_role)
    bucket = f"fair-{account}"
    s3.create_bucket(Bucket=bucket)
    iam.create_user(UserName="fair-wild")
    wild_arn = iam.create_policy(PolicyName="fair-wild", PolicyDocument=wildcard_policy(6144, bucket))["Policy"]["Arn"]
    iam.attach_user_policy(UserName="fair-wild", PolicyArn=wild_arn)
    key = iam.create_access_key(UserName="fair-wild")["AccessKey"]
    return {"account": account, "bucket": bucket,
            "wild_keys": (key["AccessKeyId"], key["SecretAccessKey"])}


def attack_kinds(info: dict[str, Any], key_length: int) -> list[Kind]:
    bucket = info["bucket"]
    return [
        Kind("TagUser 50 max-size tags", "iam", "TagUser", {"UserName": "fair-tags", "Tags": max_tags(50)},
             "accepted"),
        Kind("TagUser 8,000 tags", "iam", "TagUser", {"UserName": "fair-tags", "Tags": max_tags(8000)},
             "over the 50-tag limit"),
        Kind("PutRolePolicy 10,240 chars, wildcards", "iam", "PutRolePolicy",
             {"RoleName": "fair-role", "PolicyName": "wild", "PolicyDocument": wildcard_policy(10_240, bucket)},
             "at the role quota"),
        Kind("CreatePolicy 6,144 chars", "iam", "CreatePolicy",
             {"PolicyName": "fair-max", "PolicyDocument": padded_policy(6144)}, "at the managed quota",
             unique="PolicyName"),
        Kind("PutRolePolicy 131,072 chars", "iam", "PutRolePolicy",
             {"RoleName": "fair-role", "PolicyName": "huge", "PolicyDocument": padded_policy(131_072)},
             "model maximum, over the quota"),
        Kind("UpdatePipeline ~1 MB definition", "sagemaker", "UpdatePipeline",
             {"PipelineName": BIG_PIPELINE, "PipelineDefinition": big_definition()}, "model maximum"),
        Kind(f"HeadObject {key_length}-byte key, wildcard policy", "s3", "HeadObject",
             {"Bucket": bucket, "Key": "a" * key_length}, "5-star patterns, no match", creds="wild"),
    ]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(latencies: list[float]) -> dict[str, float]:
    return {"n": len(latencies), "p50": pct(latencies, 0.50), "p90": pct(latencies, 0.90),
            "p99": pct(latencies, 0.99), "max": max(latencies) if latencies else float("nan")}


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per phase (15)")
    parser.add_argument("--rate", type=float, default=100.0, help="victim DescribePipeline requests per second (100)")
    parser.add_argument("--attackers", type=int, default=2, help="attacker connections (2)")
    parser.add_argument("--key-length", type=int, default=KEY_LENGTH,
                        help=f"S3 key length for the wildcard case ({KEY_LENGTH}, S3's maximum)")
    parser.add_argument("--kinds", default="", help="comma-separated substrings: only the attacker kinds that match")
    parser.add_argument("--src", help="run the server from this checkout's src/ (default: this one's)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--cprofile", metavar="PATH",
                        help="run the server under cProfile (as bench/api.py does): PATH, PATH.main (the event "
                             "loop's thread) and PATH.threads")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (server log)")
    args = parser.parse_args()
    if args.src:
        os.environ["PYTHONPATH"] = str(Path(args.src).resolve() / "src")
    else:
        os.environ["PYTHONPATH"] = str(api.ROOT / "src")

    started = datetime.now(UTC)
    machine = api.machine_info()
    print(f"Stratum fairness benchmark  {started:%Y-%m-%d %H:%M} UTC  (server code: {os.environ['PYTHONPATH']})")
    print(f"machine: nproc={machine['nproc']}  cpu={machine['cpu'] or '?'}  python={machine['python']}  "
          f"loadavg={'/'.join(f'{x:.2f}' for x in machine['loadavg_at_start'])}")
    n_victim = int(args.duration * args.rate)
    workdir = Path(tempfile.mkdtemp(prefix="stratum-fairness-"))
    server = api.start_stratum(workdir, args.cprofile)
    ctx = multiprocessing.get_context("spawn")
    results: dict[str, Any] = {}
    try:
        data_dir = workdir / "stratum-data"
        victim_keys, attacker_keys = account_keys(data_dir, "dev"), account_keys(data_dir, "test")
        info = setup(server.port, victim_keys, attacker_keys)
        kinds = attack_kinds(info, args.key_length)
        if args.kinds:
            wanted = [w.strip().lower() for w in args.kinds.split(",") if w.strip()]
            kinds = [k for k in kinds if any(w in k.name.lower() for w in wanted)]
        signers = {"attacker": Signer(server.port, *attacker_keys), "wild": Signer(server.port, *info["wild_keys"])}
        victim_signer = Signer(server.port, *victim_keys)
        describe = api.Op("sagemaker", "DescribePipeline", lambda: {"PipelineName": VICTIM_PIPELINE}, "")
        print(f"victim: account dev, DescribePipeline at {args.rate:.0f}/s for {args.duration:.0f} s per phase; "
              f"attacker: account {info['account']}, {args.attackers} connections:")
        raw_kinds: list[tuple[str, list[bytes]]] = []
        sizes: dict[str, int] = {}
        # A kind that creates something gets distinct requests, enough for the whole phase.
        variants = max(1, int(args.duration * 40 / max(1, len(kinds))) * args.attackers)
        for kind in kinds:
            params = [{**kind.params, kind.unique: f"{kind.params[kind.unique]}-{j}"} for j in range(variants)] \
                if kind.unique else [kind.params]
            raws = [signers[kind.creds].build_params(kind.service, kind.operation, p) for p in params]
            raw_kinds.append((kind.name, raws))
            sizes[kind.name] = len(raws[0])
            print(f"  {kind.name:<44} {len(raws[0]):>10,} bytes  ({kind.note})")
        with ctx.Pool(2) as pool:
            # Idle: the victim alone.
            requests = victim_signer.build_many(describe, n_victim)
            start_at = time.time() + 1.0
            idle = pool.apply_async(victim, (server.port, requests, args.rate, start_at)).get()
            # Loaded: the victim and the attacker over the same window.
            requests = victim_signer.build_many(describe, n_victim)
            start_at = time.time() + 1.0
            deadline = start_at + args.duration
            cpu0 = server.cpu_seconds()
            attack_async = pool.apply_async(attacker, (server.port, raw_kinds, args.attackers, start_at, deadline))
            loaded = pool.apply_async(victim, (server.port, requests, args.rate, start_at)).get()
            attacks = attack_async.get()
            server_cpu = server.cpu_seconds() - cpu0
    finally:
        server.stop()
        if args.keep:
            print(f"(kept {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    idle_s, loaded_s = summarize(idle["latencies_ms"]), summarize(loaded["latencies_ms"])
    print("\nvictim DescribePipeline latency from each request's scheduled time, ms (same client, same "
          "server, same run;\n'sent p99': from when it was sent):")
    print(f"  {'phase':<8} {'requests':>8} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>9} {'sent p99':>9}  statuses")
    for label, s, raw in (("idle", idle_s, idle), ("loaded", loaded_s, loaded)):
        print(f"  {label:<8} {s['n']:>8} {s['p50']:>8.2f} {s['p90']:>8.2f} {s['p99']:>8.2f} {s['max']:>9.2f} "
              f"{pct(raw['service_ms'], 0.99):>9.2f}  {raw['statuses']}")
    by_kind: dict[str, list[tuple[int, float]]] = {}
    for name, status, ms in attacks:
        by_kind.setdefault(name, []).append((status, ms))
    print(f"\nattacker requests during the loaded phase (server CPU {server_cpu:.1f} s over the phase):")
    print(f"  {'kind':<44} {'sent':>5} {'median ms':>10} {'max ms':>9}  statuses")
    kinds_out = {}
    for name, _ in raw_kinds:
        rows = by_kind.get(name, [])
        ms = [m for _, m in rows]
        statuses = dict(Counter(s for s, _ in rows))
        kinds_out[name] = {"sent": len(rows), "median_ms": pct(ms, 0.5), "max_ms": max(ms) if ms else None,
                           "statuses": statuses, "bytes": sizes[name]}
        print(f"  {name:<44} {len(rows):>5} {pct(ms, 0.5):>10.1f} {max(ms) if ms else float('nan'):>9.1f}  {statuses}")
    ok = loaded_s["p99"] < TARGET_P99_MS and set(loaded["statuses"]) == {200}
    print(f"\nTarget: victim p99 under {TARGET_P99_MS:.0f} ms while loaded: "
          f"{'PASS' if ok else 'FAIL'} (p99 {loaded_s['p99']:.2f} ms loaded, {idle_s['p99']:.2f} ms idle)")
    results = {"started": started.isoformat(), "machine": machine, "duration": args.duration, "rate": args.rate,
               "attackers": args.attackers, "server_src": os.environ["PYTHONPATH"],
               "victim": {"idle": idle_s, "loaded": loaded_s, "idle_statuses": idle["statuses"],
                          "loaded_statuses": loaded["statuses"],
                          "idle_sent_p99": pct(idle["service_ms"], 0.99),
                          "loaded_sent_p99": pct(loaded["service_ms"], 0.99)},
               "attacker": kinds_out, "server_cpu_loaded_s": server_cpu, "pass": ok}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
