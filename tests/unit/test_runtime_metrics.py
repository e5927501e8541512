"""Invocation metrics: one sample per count metric per invocation, latencies only when measured,
aggregated per endpoint, variant and minute; the /metrics counters follow the flushes."""

from __future__ import annotations

from typing import Any

from stratum.services.sagemaker_runtime.metrics import InvocationMetrics


def test_samples_are_aggregated_per_endpoint_variant_and_minute() -> None:
    metrics = InvocationMetrics(db=None)  # type: ignore[arg-type]  # take() needs no database
    record: dict[str, Any] = {"account": "111122223333", "region": "us-east-1", "endpoint": "ep"}
    metrics.record(**record, variant="A", status=200, model_error=False, model_us=100.0, overhead_us=10.0)
    metrics.record(**record, variant="A", status=200, model_error=False, model_us=300.0, overhead_us=30.0)
    metrics.record(**record, variant="A", status=404, model_error=True, model_us=None, overhead_us=None)
    metrics.record(**record, variant="B", status=0, model_error=True, model_us=None, overhead_us=None)
    metrics.record(**record, variant="B", status=503, model_error=True, model_us=None, overhead_us=None)
    taken = metrics.take()
    by_variant = {key[3]: stats for key, stats in taken.items()}
    a, b = by_variant["A"], by_variant["B"]
    assert (a["Invocations"].count, a["Invocations"].total) == (3, 3)
    assert (a["Invocation4XXErrors"].count, a["Invocation4XXErrors"].total) == (3, 1)  # Average = rate
    assert a["InvocationModelErrors"].total == 1 and a["Invocation5XXErrors"].total == 0
    latency = a["ModelLatency"]
    assert (latency.count, latency.total, latency.minimum, latency.maximum) == (2, 400.0, 100.0, 300.0)
    assert a["OverheadLatency"].total == 40.0
    assert b["InvocationModelErrors"].total == 2 and b["Invocation5XXErrors"].total == 1  # a timeout is neither
    assert "ModelLatency" not in b
    assert metrics.take() == {}  # each sample once
    lines = metrics.prometheus()
    assert 'stratum_endpoint_invocations_total{endpoint="ep",variant="A",metric="Invocations"} 3' in lines
    assert 'stratum_endpoint_invocations_total{endpoint="ep",variant="B",metric="InvocationModelErrors"} 2' in lines
