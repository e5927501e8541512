"""EventBridge: how many events per second the pattern matcher decides against 100 rules, and how
long an event takes from PutEvents to an API destination.

1. Matching, in-process, no server: 100 compiled patterns of the kinds rules use (exact source
   and detail-type, prefix, anything-but, numeric ranges, exists, wildcard, $or over nested detail
   fields), each event matched against all of them, three ways: through the RuleIndex, as
   ``delivery.fan_out`` does for a bus with 100 enabled rules (target: at least 20,000 events/s);
   every rule over the event flattened once; every rule walked over the raw event (the baseline:
   the matcher's fallback for events whose arrays hold several objects, close to how every event
   was matched before). Rates per second of wall time and per second of this process's CPU time
   (the second is steadier on a shared machine).
2. Delivery (``--deliveries N``, 0 to skip): a real server (SQLite), a rule whose target is an API
   destination (API-key connection) pointing at a local HTTP server; N events put one after the
   other, each timed from before PutEvents until the HTTP server has received it, beside the
   same client's PutEvents alone (the request without delivery). Target: p99 under 50 ms.

Usage: python bench/events.py [--events 20000] [--rules 100] [--runs 3] [--deliveries 200]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3

from stratum.services.events.patterns import RuleIndex, compile_pattern, flatten


def rule(i: int) -> dict[str, Any]:
    group = f"group-{i % 20}"
    kinds: list[dict[str, Any]] = [
        {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Model Package State Change"],
         "detail": {"ModelPackageGroupName": [group], "ModelApprovalStatus": ["Approved"]}},
        {"source": [{"prefix": "com.example."}], "detail": {"build": {"number": [{"numeric": [">", i, "<=", i + 50]}]}}},
        {"source": ["com.example.ci"], "detail": {"status": [{"anything-but": ["failed", "aborted"]}],
                                                  "branch": [{"wildcard": f"release/{i}*"}]}},
        {"detail-type": [{"equals-ignore-case": "build"}], "detail": {"$or": [
            {"tags": [f"t{i}"]}, {"owner": [{"exists": True}], "priority": [{"numeric": ["<", i % 5]}]}]}},
    ]
    return kinds[i % len(kinds)]


def event(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.5:
        return {"version": "0", "id": "x", "source": "aws.sagemaker", "account": "111122223333",
                "detail-type": "SageMaker Model Package State Change", "time": "2026-12-07T10:00:00Z",
                "region": "us-east-1", "resources": ["arn:aws:sagemaker:us-east-1:111122223333:model-package/g/1"],
                "detail": {"ModelPackageGroupName": f"group-{rng.randrange(40)}",
                           "ModelApprovalStatus": rng.choice(["Approved", "Rejected", "PendingManualApproval"]),
                           "ModelPackageVersion": rng.randrange(100)}}
    return {"version": "0", "id": "y", "source": "com.example.ci", "account": "111122223333", "detail-type": "Build",
            "time": "2026-12-07T10:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"build": {"number": rng.randrange(200)}, "status": rng.choice(["ok", "failed"]),
                       "branch": f"release/{rng.randrange(100)}.1", "tags": [f"t{rng.randrange(100)}", "ci"],
                       "owner": "team", "priority": rng.randrange(5)}}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def delivery_latency(n: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import api  # bench/api.py: server start-up

    arrived: dict[str, float] = {}
    seen = threading.Condition()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            with seen:
                arrived[json.loads(body)["detail"]["n"]] = time.perf_counter()
                seen.notify_all()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        server = api.start_stratum(Path(tmp), None)
        try:
            session = boto3.Session(aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
                                    region_name=api.REGION)
            events = session.client("events", endpoint_url=f"http://127.0.0.1:{server.port}")
            iam = session.client("iam", endpoint_url=f"http://127.0.0.1:{server.port}")
            role = iam.create_role(RoleName="bench-destinations", AssumeRolePolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                        "Principal": {"Service": "events.amazonaws.com"}}]}))
            iam.put_role_policy(RoleName="bench-destinations", PolicyName="invoke", PolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "events:InvokeApiDestination",
                                                        "Resource": "*"}]}))
            connection = events.create_connection(Name="bench", AuthorizationType="API_KEY", AuthParameters={
                "ApiKeyAuthParameters": {"ApiKeyName": "X-Api-Key", "ApiKeyValue": "bench"}})["ConnectionArn"]
            destination = events.create_api_destination(
                Name="bench", ConnectionArn=connection, HttpMethod="POST",
                InvocationEndpoint=f"http://127.0.0.1:{httpd.server_address[1]}/hook")["ApiDestinationArn"]
            events.put_rule(Name="bench", EventPattern=json.dumps({"source": ["bench.delivery"]}))
            events.put_targets(Rule="bench", Targets=[{"Id": "hook", "Arn": destination,
                                                       "RoleArn": role["Role"]["Arn"]}])
            latencies, puts = [], []
            for i in range(-10, n):  # the first 10 warm up (connections, sessions, caches)
                entry = {"Source": "bench.delivery", "DetailType": "tick", "Detail": json.dumps({"n": i})}
                started = time.perf_counter()
                events.put_events(Entries=[entry])
                put_done = time.perf_counter()
                with seen:
                    if not seen.wait_for(lambda i=i: i in arrived, timeout=30):
                        raise RuntimeError(f"event {i} was not delivered in 30 s")
                if i >= 0:
                    latencies.append((arrived[i] - started) * 1000)
                    puts.append((put_done - started) * 1000)
        finally:
            server.stop()
            httpd.shutdown()
    p99 = _percentile(latencies, 0.99)
    print(f"PutEvents -> API destination, {n} events one after the other (ms):")
    print(f"  delivered   p50 {_percentile(latencies, 0.5):7.2f}  p99 {p99:7.2f}  max {max(latencies):7.2f}")
    print(f"  PutEvents   p50 {_percentile(puts, 0.5):7.2f}  p99 {_percentile(puts, 0.99):7.2f}  (the request alone)")
    print(f"  target p99 under 50 ms: {'met' if p99 < 50 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--deliveries", type=int, default=200)
    args = parser.parse_args()
    nodes = [compile_pattern(rule(i)) for i in range(args.rules)]
    index = RuleIndex(nodes)  # as delivery matches a bus's rules
    rng = random.Random(7)
    events = [event(rng) for _ in range(args.events)]

    def every_rule(e: dict[str, Any]) -> int:
        flat: dict[tuple[str, ...], list[Any]] = {}
        if flatten(e, index.trie, flat):
            return sum(1 for n in nodes if n.flat_matches(flat))
        return sum(1 for n in nodes if n.matches_tree(e))

    ways = {"index (delivery)": lambda e: len(index.match(e)),
            "every rule": every_rule,
            "tree walk": lambda e: sum(1 for n in nodes if n.matches_tree(e))}
    rates: dict[str, list[float]] = {name: [] for name in ways}
    cpu_rates: dict[str, list[float]] = {name: [] for name in ways}
    counts = {}
    for _ in range(args.runs):  # the ways interleaved, same events
        for name, count in ways.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            counts[name] = sum(count(e) for e in events)
            rates[name].append(args.events / (time.perf_counter() - started))
            cpu_rates[name].append(args.events / max(time.process_time() - cpu_started, 1e-9))
    assert len(set(counts.values())) == 1, counts  # the index finds exactly what a full scan finds
    print(f"{args.events} events x {args.rules} rules, {counts['every rule']} matches (events/s, median of {args.runs}):")
    baseline = statistics.median(rates["tree walk"])
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"  {name:18} {median:9,.0f}  x{median / baseline:5.1f}   (runs: {', '.join(f'{r:,.0f}' for r in values)};"
              f" per CPU second {statistics.median(cpu_rates[name]):,.0f})")
    index_rate = statistics.median(rates["index (delivery)"])
    print(f"  target 20,000 events/s through the index: {'met' if index_rate >= 20000 else 'NOT met'}")
    if args.deliveries:
        delivery_latency(args.deliveries)


if __name__ == "__main__":
    main()
