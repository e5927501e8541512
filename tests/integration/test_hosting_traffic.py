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


def test_canary_update_shifts_a_share_first_and_an_alarm_rolls_the_next_one_back(server: StratumServer) -> None:
    """UpdateEndpoint with a CANARY blue/green policy: while the canary waits about half of the
    answers come from the new model, then all of them; a second update watched by a CloudWatch
    alarm is rolled back when the alarm goes into ALARM during its canary: the old model answers
    alone again and FailureReason says why."""
    sm, cw = server.client("sagemaker"), server.client("cloudwatch")
    runtime = server.client("sagemaker-runtime")
    name = uid("canary")
    for suffix, bias in (("a", 0.5), ("b", 10), ("c", 100)):
        config(sm, f"{name}-{suffix}", script_model(server, f"{name}-{suffix}", bias=bias))
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-a")
    wait_in_service(sm, name)

    def answer() -> str:
        return str(runtime.invoke_endpoint(EndpointName=name, ContentType="text/csv", Body=BODY)["Body"]
                   .read().decode().strip())

    def first(value: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while answer() != value:
            assert time.monotonic() < deadline, f"no answer {value} came"

    policy = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
        "Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50}, "WaitIntervalInSeconds": 10},
        "TerminationWaitInSeconds": 0}}
    sm.update_endpoint(EndpointName=name, EndpointConfigName=f"{name}-b", DeploymentConfig=policy)
    first(NEW)
    canary_at = time.monotonic()
    sample = [answer() for _ in range(80)]
    assert time.monotonic() - canary_at < 10, "the sample outlasted the canary wait"
    share = sample.count(NEW) / len(sample)
    assert set(sample) == {OLD, NEW} and 0.25 < share < 0.75, share
    described = sm.describe_endpoint(EndpointName=name)
    assert described["EndpointStatus"] == "Updating" and "PendingDeploymentSummary" in described
    assert described["LastDeploymentConfig"] == policy
    deadline = time.monotonic() + 60
    while sm.describe_endpoint(EndpointName=name)["EndpointStatus"] != "InService":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    shifted_after = time.monotonic() - canary_at
    assert shifted_after >= 9.5  # not before WaitIntervalInSeconds
    assert {answer() for _ in range(30)} == {NEW}
    print(f"\n[{server.backend}] canary: {share * 100:.0f}% of {len(sample)} answers from the new model, "
          f"all of them {shifted_after:.1f}s after the canary began")

    alarm = uid("rollback")
    cw.put_metric_alarm(AlarmName=alarm, Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors",
                        Dimensions=[{"Name": "EndpointName", "Value": name}, {"Name": "VariantName",
                                                                             "Value": "AllTraffic"}],
                        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                        ComparisonOperator="GreaterThanOrEqualToThreshold")
    watched = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
        "Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50}, "WaitIntervalInSeconds": 600}},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm}]}}
    sm.update_endpoint(EndpointName=name, EndpointConfigName=f"{name}-c", DeploymentConfig=watched)
    first("121")
    cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="errors seen during the update")
    deadline = time.monotonic() + 30
    while (d := sm.describe_endpoint(EndpointName=name))["EndpointStatus"] != "InService":
        assert time.monotonic() < deadline, "the update was not rolled back"
        time.sleep(0.2)
    assert d["EndpointConfigName"] == f"{name}-b" and alarm in d["FailureReason"]
    assert "PendingDeploymentSummary" not in d
    assert {answer() for _ in range(30)} == {NEW}
    sm.delete_endpoint(EndpointName=name)
