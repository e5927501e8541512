"""Endpoints under traffic, through the unmodified boto3 sagemaker-runtime client: UpdateEndpoint to a
new model while several clients invoke without pause loses no request, and the answers switch from
the old model to the new one; the time from CreateEndpoint to InService is reported."""

from __future__ import annotations

import threading
import time

import pytest
from stratum_testing import StratumServer
from test_hosting_endpoints import config, script_model, wait_in_service
from test_jobs_support import uid

pytestmark = pytest.mark.slow

BODY = "1,2\n"  # w = [1, 10]: 21 + the model's bias
OLD, NEW = "21.5", "31"


def test_update_under_continuous_traffic_fails_no_request(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = uid("traffic")
    config(sm, f"{name}-a", script_model(server, f"{name}-a", bias=0.5))
    config(sm, f"{name}-b", script_model(server, f"{name}-b", bias=10))
    started = time.monotonic()
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-a")
    wait_in_service(sm, name)
    print(f"\n[{server.backend}] CreateEndpoint -> InService (script model): {time.monotonic() - started:.2f}s")

    answers: list[list[str]] = [[] for _ in range(4)]
    failures: list[str] = []
    stop = threading.Event()

    def client(i: int) -> None:
        runtime = server.client("sagemaker-runtime")  # no retries: a failed request shows
        while not stop.is_set():
            try:
                out = runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=BODY)
                answers[i].append(out["Body"].read().decode().strip())
            except Exception as exc:  # every failure counts: none is allowed
                failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    sm.update_endpoint(EndpointName=name, EndpointConfigName=f"{name}-b")
    deadline = time.monotonic() + 120
    while sm.describe_endpoint(EndpointName=name)["EndpointConfigName"] != f"{name}-b" or \
            sm.describe_endpoint(EndpointName=name)["EndpointStatus"] != "InService":
        assert time.monotonic() < deadline, "the update never completed"
        time.sleep(0.5)
    time.sleep(7.0)  # beyond the old instances' drain: they are gone, the traffic must not notice
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert failures == [], failures[:5]
    for sequence in answers:
        assert sequence and sequence[0] == OLD and sequence[-1] == NEW, sequence[:3] + sequence[-3:]
        assert set(sequence) == {OLD, NEW}
        # Once a client has seen the new model it never sees the old one again.
        assert OLD not in sequence[sequence.index(NEW):]
    total = sum(len(s) for s in answers)
    print(f"[{server.backend}] {total} invocations across the update, none failed")
    sm.delete_endpoint(EndpointName=name)
