"""EventBridge: how many events per second the pattern matcher decides against 100 rules.

In-process, no server: 100 compiled patterns of the kinds rules use (exact source and
detail-type, prefix, anything-but, numeric ranges, exists, wildcard, $or over nested detail
fields), each event matched against all of them, as ``delivery.fan_out`` does for a bus with 100
enabled rules. The issue's target: at least 20,000 events/s.

Usage: python bench/events.py [--events 20000] [--rules 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

from stratum.services.events.patterns import compile_pattern


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rules", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    nodes = [compile_pattern(rule(i)) for i in range(args.rules)]
    rng = random.Random(7)
    events = [event(rng) for _ in range(args.events)]
    rates = []
    for _ in range(args.runs):
        started = time.perf_counter()
        matched = sum(1 for e in events for n in nodes if n.matches(e))
        elapsed = time.perf_counter() - started
        rates.append(args.events / elapsed)
    print(f"{args.events} events x {args.rules} rules: {matched} matches; "
          f"median {statistics.median(rates):,.0f} events/s (runs: {', '.join(f'{r:,.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
