"""Instance metrics of endpoints, published as SageMaker does: namespace ``/aws/sagemaker/Endpoints``,
dimensions ``EndpointName`` and ``VariantName``, CPUUtilization and MemoryUtilization (percent, the
average over the variant's instances; CPU is of one core per 100 %, as SageMaker reports it). The
processes sampled are each instance's model servers (and whatever they started)."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from stratum.jobs.metrics import _point, _ProcessSampler
from stratum.store.db import Database

if TYPE_CHECKING:
    from stratum.hosting.instances import LocalInstance

NAMESPACE = "/aws/sagemaker/Endpoints"
PUBLISH_SECONDS = 10.0


class EndpointMetrics:
    def __init__(self, db: Database, interval: float = PUBLISH_SECONDS) -> None:
        self.db = db
        self.interval = interval
        self._samplers: dict[tuple[str, str], _ProcessSampler] = {}
        self._next = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def publish(self, endpoints: list[tuple[str, str, str, list[LocalInstance]]]) -> None:
        """``endpoints``: (account, region, endpoint name, its instances on this server)."""
        from stratum.services.cloudwatch import datapoints

        self._next = time.monotonic() + self.interval
        now = datetime.now(UTC)
        seen: set[tuple[str, str]] = set()
        rows: list[tuple[datapoints.MetricRef, float]] = []
        for account, region, name, instances in endpoints:
            usage: dict[str, list[tuple[float, float]]] = defaultdict(list)
            for inst in instances:
                if inst.state != "ready" or inst.draining_until is not None:
                    continue
                cpu = memory = 0.0
                complete = True
                for hostname, server in inst.servers.items():
                    key = (inst.instance_id, hostname)
                    seen.add(key)
                    sampler = self._samplers.setdefault(key, _ProcessSampler())
                    sample = sampler.sample(int(server.pid))
                    if sample is None:
                        complete = False
                        continue
                    cpu, memory = cpu + sample[0], memory + sample[1]
                if complete:
                    usage[inst.variant].append((cpu, memory))
            for variant, samples in usage.items():
                dims = (("EndpointName", name), ("VariantName", variant))
                for index, metric in enumerate(("CPUUtilization", "MemoryUtilization")):
                    value = sum(s[index] for s in samples) / len(samples)
                    rows.append((datapoints.MetricRef(account, region, NAMESPACE, metric, dims), value))
        for key in set(self._samplers) - seen:
            del self._samplers[key]
        if not rows:
            return
        with self.db.begin() as conn:
            for ref, value in rows:
                datapoints.put(conn, ref, [_point(now, value, "Percent")], now)

