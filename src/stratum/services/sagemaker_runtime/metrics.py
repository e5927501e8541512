"""Endpoint invocation metrics, as SageMaker publishes them: namespace AWS/SageMaker, dimensions
EndpointName and VariantName; Invocations, Invocation4XXErrors, Invocation5XXErrors,
InvocationModelErrors (counts) and ModelLatency, OverheadLatency (microseconds). Multi-model
endpoints add their model loading metrics there (ModelCacheHit, a 1 or 0 per invocation;
ModelLoadingWaitTime, ModelDownloadingTime, ModelLoadingTime, ModelUnloadingTime in microseconds)
and the instance metric LoadedModelCount under /aws/sagemaker/Endpoints (one sample per instance,
published when it changes and once a minute).

Recording is one list append on the request's path; a background thread aggregates the samples
and publishes them (one StatisticValues datapoint per metric, endpoint, variant and minute) to the
CloudWatch store every ``FLUSH_SECONDS`` and at shutdown, and updates the /metrics counters."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from time import time
from typing import TYPE_CHECKING, Any

from stratum.store.db import Database

if TYPE_CHECKING:
    from stratum.services.sagemaker_runtime.multimodel import Loading

log = logging.getLogger("stratum.sagemaker_runtime.metrics")

NAMESPACE = "AWS/SageMaker"
FLUSH_SECONDS = 10.0
COUNTS = ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors", "InvocationModelErrors")
LATENCIES = ("ModelLatency", "OverheadLatency")
LOADING_TIMES = ("ModelLoadingWaitTime", "ModelDownloadingTime", "ModelLoadingTime", "ModelUnloadingTime")
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
# (account, region, endpoint, variant, minute epoch seconds)
Key = tuple[str, str, str, str, int]


class _Stat:
    __slots__ = ("count", "total", "minimum", "maximum")

    def __init__(self) -> None:
        self.count = 0.0
        self.total = 0.0
        self.minimum = float("inf")
        self.maximum = float("-inf")

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if value < self.minimum:
            self.minimum = value
        if value > self.maximum:
            self.maximum = value


class InvocationMetrics:
    name = "sagemaker-runtime metrics"

    def __init__(self, db: Database, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.db = db
        self.flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._samples: deque[tuple[str, str, str, str, int, int, bool, float | None, float | None]] = deque()
        # Totals for the Prometheus endpoint, as of the last flush: (endpoint, variant, metric) -> count
        self.totals: dict[tuple[str, str, str], float] = {}
        # Multi-model endpoints: (key, metric, value) samples, and LoadedModelCount per instance:
        # (account, region, endpoint, variant, instance) -> [models loaded, published since it changed]
        self._extra: deque[tuple[Key, str, float]] = deque()
        self._loaded: dict[tuple[str, str, str, str, str], list[Any]] = {}
        self._loaded_minute = 0
        # (account, region, endpoint, instance) -> whether that instance still serves the endpoint
        self.instance_serves: Callable[[str, str, str, str], bool] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, account: str, region: str, endpoint: str, variant: str, *, status: int, model_error: bool,
               model_us: float | None, overhead_us: float | None) -> None:
        """One invocation that reached a variant: ``status`` is the model's answer (a container's
        non-2xx counts as a 4XX or 5XX error and a model error, as on AWS; 0: no answer) and the
        latencies in microseconds (None: not measured). One append: the flush aggregates."""
        self._samples.append((account, region, endpoint, variant, int(time()) // 60 * 60, status, model_error,
                              model_us, overhead_us))

    def record_loading(self, account: str, region: str, endpoint: str, variant: str, loading: Loading) -> None:
        """How a multi-model invocation found its model (see multimodel.Loading)."""
        key = (account, region, endpoint, variant, int(time()) // 60 * 60)
        self._extra.append((key, "ModelCacheHit", 1.0 if loading.cache_hit else 0.0))
        if not loading.cache_hit:
            self._extra.append((key, "ModelLoadingWaitTime", loading.wait_us))
        for name, value in (("ModelDownloadingTime", loading.download_us), ("ModelLoadingTime", loading.load_us)):
            if value is not None:
                self._extra.append((key, name, value))
        for value in loading.unload_us:
            self._extra.append((key, "ModelUnloadingTime", value))

    def set_loaded_models(self, account: str, region: str, endpoint: str, variant: str, instance: str,
                          count: int) -> None:
        self._loaded[(account, region, endpoint, variant, instance)] = [float(count), False]


    def take(self) -> dict[Key, dict[str, _Stat]]:
        """The samples recorded since the last call, aggregated per endpoint, variant and minute."""
        with self._lock:  # one taker at a time; record() only appends to the deque (thread-safe)
            queue = self._samples
            samples = [queue.popleft() for _ in range(len(queue))]
            pending: dict[Key, dict[str, _Stat]] = {}
            totals = self.totals
            for account, region, endpoint, variant, minute, status, model_error, model_us, overhead_us in samples:
                key = (account, region, endpoint, variant, minute)
                stats = pending.get(key)
                if stats is None:
                    stats = pending[key] = {name: _Stat() for name in COUNTS}
                errors = ("Invocation4XXErrors" if 400 <= status < 500 else
                          "Invocation5XXErrors" if status >= 500 else None)
                # Every count metric gets a sample per invocation (0 or 1), as SageMaker's do: their
                # Sum is the count and their Average the rate.
                stats["Invocations"].add(1.0)
                for name in COUNTS[1:]:
                    stats[name].add(1.0 if name == errors or (model_error and name == "InvocationModelErrors")
                                    else 0.0)
                for name, value in (("ModelLatency", model_us), ("OverheadLatency", overhead_us)):
                    if value is not None:
                        stat = stats.get(name)
                        if stat is None:
                            stat = stats[name] = _Stat()
                        stat.add(value)
                for name in ("Invocations", errors, "InvocationModelErrors" if model_error else None):
                    if name is not None:
                        total_key = (endpoint, variant, name)
                        totals[total_key] = totals.get(total_key, 0.0) + 1.0
            extra = self._extra
            for key, name, value in [extra.popleft() for _ in range(len(extra))]:
                stats = pending.setdefault(key, {})
                stat = stats.get(name)
                if stat is None:
                    stat = stats[name] = _Stat()
                stat.add(value)
        return pending

    def _take_loaded(self) -> dict[tuple[str, str, str, str], _Stat]:
        """LoadedModelCount: every instance's count once a minute, and whenever it changed."""
        minute = int(time()) // 60 * 60
        every = minute != self._loaded_minute
        self._loaded_minute = minute
        stats: dict[tuple[str, str, str, str], _Stat] = {}
        for key, entry in list(self._loaded.items()):
            account, region, endpoint, variant, instance = key
            if every and self.instance_serves is not None and not self.instance_serves(account, region, endpoint,
                                                                                        instance):
                del self._loaded[key]  # the instance is gone (endpoint deleted or updated)
                continue
            if every or not entry[1]:
                entry[1] = True
                stats.setdefault((account, region, endpoint, variant), _Stat()).add(entry[0])
        return stats

    def flush(self) -> int:
        """Publish what was recorded since the last flush; returns the number of datapoints."""
        with self._flushing:  # a flush returns once whatever was recorded before it is written
            return self._flush()

    def _flush(self) -> int:
        from stratum.services.cloudwatch import datapoints

        pending = self.take()
        loaded = self._take_loaded()
        if not pending and not loaded:
            return 0
        now = datetime.now(UTC)
        written = 0
        with self.db.begin() as conn:
            stamp = datetime.fromtimestamp(int(time()) // 60 * 60, UTC)
            for (account, region, endpoint, variant), stat in loaded.items():
                dims = datapoints.sorted_dimensions([{"Name": "EndpointName", "Value": endpoint},
                                                     {"Name": "VariantName", "Value": variant}])
                point = {"timestamp": stamp, "unit": "None", "storage_resolution": 60, "sample_count": stat.count,
                         "sum": stat.total, "minimum": stat.minimum, "maximum": stat.maximum, "values": None}
                datapoints.put(conn, datapoints.MetricRef(account, region, INSTANCE_NAMESPACE, "LoadedModelCount",
                                                          dims), [point], now)
                written += 1
            for (account, region, endpoint, variant, minute), stats in pending.items():
                dims = datapoints.sorted_dimensions([{"Name": "EndpointName", "Value": endpoint},
                                                     {"Name": "VariantName", "Value": variant}])
                stamp = datetime.fromtimestamp(minute, UTC)
                for name, stat in stats.items():
                    unit = "Microseconds" if name in LATENCIES or name in LOADING_TIMES else "None"
                    point: dict[str, Any] = {"timestamp": stamp, "unit": unit, "storage_resolution": 60,
                                             "sample_count": stat.count, "sum": stat.total,
                                             "minimum": stat.minimum, "maximum": stat.maximum, "values": None}
                    datapoints.put(conn, datapoints.MetricRef(account, region, NAMESPACE, name, dims), [point], now)
                    written += 1
        return written

    # ------------------------------------------------------------------ BackgroundService
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sagemaker-runtime-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._safe_flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self._safe_flush()

    def _safe_flush(self) -> None:
        try:
            self.flush()
        except Exception:
            log.exception("publishing endpoint invocation metrics failed")

    def prometheus(self) -> list[str]:
        """Counter lines for /metrics."""
        lines = ["# HELP stratum_endpoint_invocations_total Endpoint invocations by endpoint, variant and outcome.",
                 "# TYPE stratum_endpoint_invocations_total counter"]
        for (endpoint, variant, metric), value in sorted(dict(self.totals).items()):
            lines.append(f'stratum_endpoint_invocations_total{{endpoint="{_label(endpoint)}",'
                         f'variant="{_label(variant)}",metric="{metric}"}} {value:g}')
        return lines


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
